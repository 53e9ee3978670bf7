"""LFW adapter: known facts of the real data (see SOURCES.md of the staged copy) and error paths
on small files written to tmp_path."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from evalkit.data.lfw import (
    PROTOCOL_FILES,
    find_images_dir,
    image_sex_labels,
    lfw_pairs,
    lfw_protocol,
    load_lfw,
    race_label,
    read_people,
    read_sex_lists,
    subject_labels,
    subject_sex_by_majority,
)
from evalkit.data.samples import CONFLICT, MULTIPLE, UNLABELLED, DatasetError

CONFLICT_SUBJECTS = {"Allison_Searing", "Claudia_Coslovich", "Elizabeth_Hill", "Erika_Reyes", "Tatiana_Shchegoleva"}


@pytest.fixture(scope="module")
def view2(lfw_samples, lfw_root):
    return lfw_protocol(lfw_samples, lfw_root, "view2")


# ----------------------------------------------------------------------------- real data facts


def test_lfw_counts_and_ids(lfw_samples, lfw_root):
    s = lfw_samples
    assert s.name == "lfw"
    assert len(s) == 13233
    assert len(np.unique(s.subjects)) == 5749
    assert list(s.ids) == sorted(s.ids)
    i = s.index_of(["George_W_Bush/George_W_Bush_0010"])[0]
    assert s.subjects[i] == "George_W_Bush"
    assert s.paths[i] == str(Path(lfw_root).absolute() / "lfw-deepfunneled/George_W_Bush/George_W_Bush_0010.jpg")
    assert all(Path(p).is_absolute() for p in s.paths[:50])
    assert Path(s.paths[i]).is_file()
    assert (s.subjects == "George_W_Bush").sum() == 530
    assert set(s.attribute_names) == {"sex", "race"}


def test_view2_folds(view2):
    assert view2.name == "lfw_view2"
    assert len(view2) == 6000
    for f in range(10):
        in_fold = view2.fold == f
        assert in_fold.sum() == 600
        assert view2.mated[in_fold].sum() == 300
    # file order is kept: fold 0 starts with its 300 matched pairs
    assert view2.mated[:300].all() and not view2.mated[300:600].any()


def test_view1_counts(lfw_samples, lfw_root):
    train = lfw_protocol(lfw_samples, lfw_root, "view1_train")
    test = lfw_protocol(lfw_samples, lfw_root, "view1_test")
    assert (len(train), int(train.mated.sum())) == (2200, 1100)
    assert (len(test), int(test.mated.sum())) == (1000, 500)
    assert (train.fold == -1).all() and (test.fold == -1).all()
    assert PROTOCOL_FILES == {"view2": "pairs.txt", "view1_train": "pairsDevTrain.txt", "view1_test": "pairsDevTest.txt"}


def test_sex_per_genuine_pair(lfw_samples, view2):
    sex = lfw_samples.attributes["sex"]
    genuine = Counter(sex[view2.a[view2.mated]].tolist())
    assert genuine == {"male": 2223, "female": 777}
    # a genuine pair's two images share one subject label (never taken from one image only)
    assert (sex[view2.a] == sex[view2.b])[view2.mated].all()


def test_sex_per_impostor_pair(lfw_samples, view2):
    sex = lfw_samples.attributes["sex"]
    imp = ~view2.mated

    def kind(x, y):
        pair = {x, y}
        if UNLABELLED in pair:
            return "unlabelled"
        if CONFLICT in pair:
            return "conflict:" + "-".join(sorted(pair - {CONFLICT}) or [CONFLICT])
        return "male-male" if pair == {"male"} else "female-female" if pair == {"female"} else "mixed"

    kinds = Counter(kind(x, y) for x, y in zip(sex[view2.a[imp]], sex[view2.b[imp]]))
    # The conflict subjects stay explicit: 3 impostor pairs involve one of them.
    assert kinds == {
        "male-male": 1674,
        "female-female": 176,
        "mixed": 1145,
        "unlabelled": 2,
        "conflict:male": 2,
        "conflict:female": 1,
    }
    # SOURCES.md quotes 1,676 male-male and 1,146 mixed: those are exactly the counts obtained
    # when the five both-lists images are (wrongly) resolved as male.
    resolved = np.where(sex == CONFLICT, "male", sex)
    kinds2 = Counter(kind(x, y) for x, y in zip(resolved[view2.a[imp]], resolved[view2.b[imp]]))
    assert kinds2 == {"male-male": 1676, "female-female": 176, "mixed": 1146, "unlabelled": 2}
    # the two unlabelled impostor pairs are Tara_Kirk's
    unl = [
        (lfw_samples.subjects[a], lfw_samples.subjects[b])
        for a, b in zip(view2.a[imp], view2.b[imp])
        if UNLABELLED in (sex[a], sex[b])
    ]
    assert len(unl) == 2 and all("Tara_Kirk" in p for p in unl)


def test_sex_conflicts_and_unlabelled(lfw_samples, lfw_root):
    subj = subject_labels(lfw_samples, "sex")
    assert {k for k, v in subj.items() if v == CONFLICT} == CONFLICT_SUBJECTS
    assert [k for k, v in subj.items() if v == UNLABELLED] == ["Tara_Kirk"]
    assert subj["Robert_Evans"] == "male" and subj["Yasser_Arafat"] == "male"

    male, female = read_sex_lists(lfw_root / "labels/male_names.txt", lfw_root / "labels/female_names.txt")
    per_image = Counter(image_sex_labels(lfw_samples.ids, male, female).tolist())
    assert per_image[CONFLICT] == 5
    assert per_image[UNLABELLED] == 4
    assert per_image["male"] + per_image["female"] + per_image[CONFLICT] == 13229
    evans = image_sex_labels([f"Robert_Evans/Robert_Evans_000{i}" for i in (1, 2, 3)], male, female)
    assert sorted(evans.tolist()) == ["male", UNLABELLED, UNLABELLED]
    assert image_sex_labels(["Yasser_Arafat/Yasser_Arafat_0005"], male, female)[0] == UNLABELLED


def test_race_subject_counts(lfw_samples):
    subj = subject_labels(lfw_samples, "race")
    counts = Counter(subj.values())
    assert counts == {
        "caucasian": 672,
        "african": 56,
        "latino": 19,
        "eastasian": 15,
        "asianindian": 10,
        MULTIPLE: 91,
        "other": 2,
        "pacificislander": 1,
        UNLABELLED: 5749 - 866,
    }


def test_label_sources_name_files_and_upstreams(lfw_samples):
    src = lfw_samples.label_sources
    assert "labels/male_names.txt" in src["sex"] and "labels/female_names.txt" in src["sex"]
    assert "AFIF4" in src["sex"] and "majority" in src["sex"]
    assert "lfw_race_dict.json" in src["race"] and "mica-race-from-face" in src["race"]


def test_people_file(lfw_root):
    people = read_people(lfw_root / "people.txt")
    assert len(people) == 5749 and sum(people.values()) == 13233
    dev = read_people(lfw_root / "peopleDevTrain.txt")
    assert len(dev) == 4038


# ----------------------------------------------------------------------------- malformed files


def test_malformed_pairs_line(lfw_samples, lfw_root, tmp_path):
    lines = (lfw_root / "pairs.txt").read_text().splitlines()
    lines[4] = "Abel_Pacheco\t1"  # line 5: a matched pair with one image number
    bad = tmp_path / "pairs.txt"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"pairs\.txt, line 5: expected a matched pair"):
        lfw_pairs(lfw_samples, bad, "bad")


def test_pairs_count_must_match_header(lfw_samples, lfw_root, tmp_path):
    lines = (lfw_root / "pairsDevTest.txt").read_text().splitlines()
    short = tmp_path / "pairsDevTest.txt"
    short.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DatasetError, match=r"declares 1 fold\(s\) x 2 x 500 = 1000 pair lines, found 999"):
        lfw_pairs(lfw_samples, short)
    hdr = tmp_path / "hdr.txt"
    hdr.write_text("ten 300\n" + "\n".join(lines[1:]) + "\n")
    with pytest.raises(DatasetError, match=r"hdr\.txt, line 1: expected a header"):
        lfw_pairs(lfw_samples, hdr)


def test_pairs_unknown_image_and_mismatched_format(lfw_samples, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("1\nGeorge_W_Bush\t1\t999\nGeorge_W_Bush\t1\tJohn_Kerry\t8\n")
    with pytest.raises(DatasetError, match=r"p\.txt, line 2: image 'George_W_Bush/George_W_Bush_0999' is not in"):
        lfw_pairs(lfw_samples, f)
    f.write_text("1\nGeorge_W_Bush\t1\t2\nGeorge_W_Bush\t1\tJohn_Kerry\tx\n")
    with pytest.raises(DatasetError, match=r"line 3: expected a mismatched pair"):
        lfw_pairs(lfw_samples, f)
    # a "mismatched" line naming the same person is caught by check_against
    f.write_text("1\nGeorge_W_Bush\t1\t2\nGeorge_W_Bush\t1\tGeorge_W_Bush\t8\n")
    with pytest.raises(DatasetError, match="mated=False"):
        lfw_pairs(lfw_samples, f)


def test_unknown_split_has_hint(lfw_samples, lfw_root):
    with pytest.raises(DatasetError, match="did you mean 'view2'"):
        lfw_protocol(lfw_samples, lfw_root, "veiw2")


# ----------------------------------------------------------------------------- a tiny synthetic root


def _tiny_root(tmp_path: Path, people: str | None = "Alice\t3\nBob\t1\n") -> Path:
    """Images Alice_0001, Alice_0002, Bob_0001 on disk (empty files: nothing here reads pixels)."""
    root = tmp_path / "lfw"
    for name, n in (("Alice", 2), ("Bob", 1)):
        d = root / "lfw-deepfunneled" / name
        d.mkdir(parents=True)
        for i in range(1, n + 1):
            (d / f"{name}_{i:04d}.jpg").write_bytes(b"")
    (root / "lfw-deepfunneled" / ".DS_Store").write_bytes(b"")
    if people is not None:
        n_people = len(people.strip().splitlines())
        (root / "people.txt").write_text(f"1\n{n_people}\n{people}")
    return root


def _labels(root: Path, male: str, female: str, race: str | None = '{"Alice": "eastasian,caucasian"}') -> None:
    (root / "labels").mkdir(exist_ok=True)
    (root / "labels/male_names.txt").write_text(male)
    (root / "labels/female_names.txt").write_text(female)
    if race is not None:
        (root / "labels/lfw_race_dict.json").write_text(race)


def test_union_of_disk_and_people_file(tmp_path):
    root = _tiny_root(tmp_path)
    _labels(root, "Bob_0001.jpg\r\n", "Alice_0001.jpg\r\n\r\nAlice_0002.jpg\r\n")
    s = load_lfw(root)
    assert list(s.ids) == ["Alice/Alice_0001", "Alice/Alice_0002", "Alice/Alice_0003", "Bob/Bob_0001"]
    missing = s.paths[2]
    assert missing.endswith("lfw-deepfunneled/Alice/Alice_0003.jpg") and not Path(missing).exists()
    assert s.attributes["sex"].tolist() == ["female"] * 3 + ["male"]
    assert s.attributes["race"].tolist() == [MULTIPLE] * 3 + [UNLABELLED]


def test_without_people_file_uses_disk_only(tmp_path):
    root = _tiny_root(tmp_path, people=None)
    _labels(root, "", "")
    s = load_lfw(root)
    assert len(s) == 3
    assert set(s.attributes["sex"]) == {UNLABELLED}


def test_missing_label_files_give_unlabelled(tmp_path):
    root = _tiny_root(tmp_path)
    s = load_lfw(root)
    assert set(s.attributes["sex"]) == {UNLABELLED} and set(s.attributes["race"]) == {UNLABELLED}
    assert "missing" in s.label_sources["sex"] and "male_names.txt" in s.label_sources["sex"]
    assert "missing" in s.label_sources["race"] and "lfw_race_dict.json" in s.label_sources["race"]


def test_malformed_label_file(tmp_path):
    root = _tiny_root(tmp_path)
    _labels(root, "Bob_0001.jpg\n", "Alice_0001.jpg\n\nAlice 0002\n")
    with pytest.raises(DatasetError, match=r"female_names\.txt, line 3: expected an LFW image file name"):
        load_lfw(root)
    _labels(root, "Bob_0001.jpg\n", "Alice_0001.jpg\n", race='{"Alice": "eastasian",\n  "Bob": }')
    with pytest.raises(DatasetError, match=r"lfw_race_dict\.json, line 2: invalid JSON"):
        load_lfw(root)
    _labels(root, "Bob_0001.jpg\n", "Alice_0001.jpg\n", race='{"Alice": ["eastasian"]}')
    with pytest.raises(DatasetError, match="must be a string"):
        load_lfw(root)


def test_malformed_people_file(tmp_path):
    root = _tiny_root(tmp_path, people="Alice\tthree\n")
    with pytest.raises(DatasetError, match=r"people\.txt, line 3: expected 'NAME COUNT'"):
        load_lfw(root)


def test_find_images_dir(tmp_path):
    with pytest.raises(DatasetError, match="lfw-deepfunneled.*lfw-deepfunneled.tgz"):
        find_images_dir(tmp_path)
    (tmp_path / "lfw_funneled").mkdir()
    assert find_images_dir(tmp_path).name == "lfw_funneled"
    (tmp_path / "lfw").mkdir()
    assert find_images_dir(tmp_path).name == "lfw"
    assert find_images_dir(tmp_path, "lfw_funneled").name == "lfw_funneled"
    with pytest.raises(DatasetError, match="mine"):
        find_images_dir(tmp_path, "mine")


# ----------------------------------------------------------------------------- label rules


def test_subject_sex_rule():
    subjects = ["a", "a", "a", "b", "b", "c", "d", "d", "e", "f", "f"]
    labels = ["male", "male", "female", "male", "female", CONFLICT, UNLABELLED, "female", UNLABELLED, CONFLICT, UNLABELLED]
    assert subject_sex_by_majority(subjects, labels) == {
        "a": "male",  # majority
        "b": CONFLICT,  # tie
        "c": CONFLICT,  # only a both-lists image
        "d": "female",  # unlabelled images do not vote
        "e": UNLABELLED,
        "f": CONFLICT,
    }


def test_race_label_rule():
    assert race_label("caucasian") == "caucasian"
    assert race_label("latino,caucasian") == MULTIPLE
    assert race_label(None) == UNLABELLED
    assert race_label("") == UNLABELLED
