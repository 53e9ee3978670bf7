"""Parsing of each named dataset's annotation files, on the exact sample lines of their formats
and on malformed variants: every malformed input is a DatasetError naming the file and the line
(or a kept sample whose missing image becomes a recorded failure)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from evalkit.data import adience, bfw, celeba, diveface, fairface, morph, rfw, utkface, vggface2
from evalkit.data.adapters import adapter, info_text, per_subject
from evalkit.data.csv_table import load_csv_dataset
from evalkit.data.samples import CONFLICT, UNLABELLED, DatasetError


def raises_at(path, line, *words):
    """pytest.raises for a DatasetError whose message names ``path`` and ``line`` (and words)."""
    pattern = re.escape(f"{path}, line {line}") + "".join(f"(?s:.*){re.escape(w)}" for w in words)
    return pytest.raises(DatasetError, match=pattern)


# -- RFW ---------------------------------------------------------------------------------------

def test_rfw_pair_lines_and_folds(tmp_path):
    p = tmp_path / "African_pairs.txt"
    lines = []
    for f in range(10):
        lines += ["m.0c7mh2\t1\t2", "m.0c7mh2\t1\tm.0bdxs5\t3"]
    p.write_text("\n".join(lines) + "\n")
    rows = rfw.read_pairs(p)
    assert len(rows) == 20
    assert rows[0] == (1, 0, "m.0c7mh2", 1, "m.0c7mh2", 2)
    assert rows[1] == (2, 0, "m.0c7mh2", 1, "m.0bdxs5", 3)
    assert [r[1] for r in rows] == [f for f in range(10) for _ in range(2)]


@pytest.mark.parametrize("bad,line,words", [
    ("m.0c7mh2\t1\t2\t3\t4", 2, ("5 field",)),
    ("m.0c7mh2\tone\t2", 2, ("'one'",)),
    ("m.0c7mh2\t1\tm.0c7mh2\t3", 2, ("same identity",)),
])
def test_rfw_malformed_pair_lines(tmp_path, bad, line, words):
    p = tmp_path / "Asian_pairs.txt"
    p.write_text("m.1\t1\t2\n" + bad + "\n")
    with raises_at(p, line, *words):
        rfw.read_pairs(p, folds=1)


def test_rfw_folds_must_divide(tmp_path):
    p = tmp_path / "Indian_pairs.txt"
    p.write_text("m.1\t1\t2\n" * 7)
    with pytest.raises(DatasetError, match="7 pair lines do not split into 10 equal folds"):
        rfw.read_pairs(p)


def test_rfw_people(tmp_path):
    p = tmp_path / "African_people.txt"
    p.write_text("m.0c7mh2\t3\nm.0bdxs5\t10\n")
    assert rfw.read_people(p) == {"m.0c7mh2": 3, "m.0bdxs5": 10}
    p.write_text("m.0c7mh2\t3\nm.0bdxs5\n")
    with raises_at(p, 2, "id<TAB>count"):
        rfw.read_people(p)


def test_rfw_pair_naming_absent_image_is_kept_as_missing(tmp_path):
    """A pair naming an image that is not on disk: the image is a sample whose file is missing
    (a recorded missing-file failure downstream), not a silent drop."""
    d = tmp_path / "test" / "data" / "African" / "m.1"
    d.mkdir(parents=True)
    (d / "m.1_0001.jpg").write_bytes(b"x")
    (d / "m.1_0002.jpg").write_bytes(b"x")
    t = tmp_path / "test" / "txts" / "African"
    t.mkdir(parents=True)
    (t / "African_pairs.txt").write_text("m.1\t1\t2\nm.1\t1\tm.2\t4\n" * 10)
    s = rfw.load_rfw(tmp_path, races=["African"])
    assert s.ids.tolist() == ["African/m.1/m.1_0001", "African/m.1/m.1_0002", "African/m.2/m.2_0004"]
    assert not (tmp_path / "test/data/African/m.2/m.2_0004.jpg").exists()
    assert s.paths[2] == str(tmp_path / "test/data/African/m.2/m.2_0004.jpg")
    assert s.attributes["race"].tolist() == ["african"] * 3

    class Cfg:
        root, races = str(tmp_path), ["African"]

    class Proto:
        folds, cross_race_impostors, seed = 10, 0, 0

    p = rfw.official_pairs(Cfg, s, Proto)
    assert len(p) == 20 and p.mated.sum() == 10 and sorted(set(p.fold.tolist())) == list(range(10))


def test_rfw_unknown_race():
    with pytest.raises(DatasetError, match="unknown RFW subset"):
        rfw.load_rfw("/nowhere", races=["african"])


# -- BFW ---------------------------------------------------------------------------------------

BFW_HEADER = "ID,fold,p1,p2,label,id1,id2,att1,att2,vgg16,resnet50,senet50,a1,a2,g1,g2,e1,e2,sphereface"
BFW_ROW = ("0,1,asian_females/n000009/0010_01.jpg,asian_females/n000009/0043_01.jpg,1,0,0,asian_females,"
           "asian_females,0.820,0.703,0.679,AF,AF,F,F,A,A,0.393")
BFW_IMPOSTOR = ("1,2,asian_females/n000009/0010_01.jpg,black_males/n000100/0001_01.jpg,0,0,7,asian_females,"
                "black_males,0.1,0.1,0.1,AF,BM,F,M,A,B,0.0")


def test_bfw_sample_rows(tmp_path):
    p = tmp_path / "bfw-v0.1.5-datatable.csv"
    p.write_text("\n".join([BFW_HEADER, BFW_ROW, BFW_IMPOSTOR]) + "\n")
    rows, header = bfw.read_datatable(p)
    assert header[-1] == "sphereface"
    r = rows[0]
    assert (r.lineno, r.fold, r.label, r.subj1, r.subj2, r.sex1, r.race1) == (2, 1, 1, "n000009", "n000009", "female", "asian")
    assert (rows[1].sex2, rows[1].race2, rows[1].label) == ("male", "black", 0)


@pytest.mark.parametrize("row,words", [
    (BFW_ROW.replace(",AF,AF,F,F,A,A,", ",AF,AF,F,F,A,X,"), ("unknown e2 code 'X'",)),
    (BFW_ROW.replace(",AF,AF,F,F,", ",AF,AX,F,F,"), ("unknown a2 code 'AX'",)),
    (BFW_ROW.replace(",AF,AF,F,F,", ",AF,AF,F,M,"), ("a2='AF' disagrees",)),
    (BFW_ROW.replace(",1,0,0,", ",0,0,0,"), ("label=0", "n000009")),
    (BFW_ROW.replace("0,1,asian", "0,one,asian"), ("fold must be an integer",)),
    (BFW_ROW + ",extra", ("20 fields",)),
    (BFW_ROW.replace("asian_females/n000009/0043_01.jpg", "0043_01.jpg"), ("p2 must look like",)),
])
def test_bfw_malformed_rows(tmp_path, row, words):
    p = tmp_path / "bfw-datatable.csv"
    p.write_text("\n".join([BFW_HEADER, BFW_ROW, row]) + "\n")
    with raises_at(p, 3, *words):
        bfw.read_datatable(p)


def test_bfw_missing_column(tmp_path):
    p = tmp_path / "bfw-datatable.csv"
    p.write_text(BFW_HEADER.replace(",e1,e2", "") + "\n")
    with raises_at(p, 1, "lacks column(s) ['e1', 'e2']"):
        bfw.read_datatable(p)


def test_bfw_subject_labelled_twice_differently(tmp_path):
    (tmp_path / "bfw" / "asian_females" / "n000009").mkdir(parents=True)
    (tmp_path / "bfw" / "asian_females" / "n000009" / "0010_01.jpg").write_bytes(b"x")
    other = BFW_ROW.replace(",AF,AF,F,F,A,A,", ",IF,IF,F,F,I,I,").replace("0,1,", "1,1,", 1)
    p = tmp_path / "bfw-datatable.csv"
    p.write_text("\n".join([BFW_HEADER, BFW_ROW, other]) + "\n")
    with raises_at(p, 3, "subject 'n000009' is female/indian here but female/asian on line 2"):
        bfw.load_bfw(tmp_path)


# -- VGGFace2 ----------------------------------------------------------------------------------

def test_vggface2_meta_quoted_names_leading_spaces(tmp_path):
    p = tmp_path / "identity_meta.csv"
    p.write_text('Class_ID, Name, Sample_Num, Flag, Gender\n'
                 'n000001, "14th_Dalai_Lama", 424, 0, m\n'
                 'n000002, "A_Fine_Frenzy", 315, 1, f\n'
                 'n000003, "Abdullah, King", 300, 1, m\n')
    m = vggface2.read_meta(p)
    assert m["n000001"]["name"] == "14th_Dalai_Lama" and m["n000001"]["sex"] == "male" and m["n000001"]["flag"] == "0"
    assert m["n000002"]["sex"] == "female" and m["n000002"]["sample_num"] == 315
    assert m["n000003"]["name"] == "Abdullah, King"


@pytest.mark.parametrize("row,words", [
    ('n000002, "X", 315, 1, x', ("unknown Gender code 'x'",)),
    ('n000002, "X", 315, 2, f', ("unknown Flag code '2'",)),
    ('n000002, X, Y, 315, 1, f', ("6 fields", "double quotes")),
    ('2, "X", 315, 1, f', ("Class_ID must look like",)),
    ('n000001, "X", 315, 1, f', ("listed twice",)),
])
def test_vggface2_malformed(tmp_path, row, words):
    p = tmp_path / "identity_meta.csv"
    p.write_text('Class_ID, Name, Sample_Num, Flag, Gender\nn000001, "14th_Dalai_Lama", 424, 0, m\n' + row + "\n")
    with raises_at(p, 3, *words):
        vggface2.read_meta(p)


# -- CelebA ------------------------------------------------------------------------------------

def _celeba_attr(n_declared=2, rows=("000001.jpg -1  1  1", "000002.jpg  1 -1  1")):
    return f"{n_declared}\n5_o_Clock_Shadow Male Young \n" + "\n".join(rows) + "\n"


def test_celeba_files(tmp_path):
    (tmp_path / "identity_CelebA.txt").write_text("000001.jpg 2880\n000002.jpg 2937\n")
    (tmp_path / "list_attr_celeba.txt").write_text(_celeba_attr())
    assert celeba.read_identities(tmp_path / "identity_CelebA.txt") == {"000001.jpg": ("2880", 1), "000002.jpg": ("2937", 2)}
    names, values = celeba.read_attributes(tmp_path / "list_attr_celeba.txt")
    assert names == ["5_o_Clock_Shadow", "Male", "Young"] and values["000001.jpg"] == ["-1", "1", "1"]
    s = celeba.load_celeba(tmp_path, ["Male", "Young"], per_subject_attrs=[])
    assert s.attributes["sex"].tolist() == ["male", "female"] and s.attributes["young"].tolist() == ["young", "young"]
    assert s.subjects.tolist() == ["2880", "2937"] and s.ids.tolist() == ["000001", "000002"]
    with pytest.raises(DatasetError, match="'Yung' is not in .*did you mean 'Young'"):
        celeba.load_celeba(tmp_path, ["Yung"])


@pytest.mark.parametrize("text,line,words", [
    (_celeba_attr(3), 1, ("declares 3 images, the file lists 2",)),
    (_celeba_attr(rows=("000001.jpg -1  1  1", "000002.jpg  1 -1")), 4, ("2 values for 3 attributes",)),
    (_celeba_attr(rows=("000001.jpg -1  1  1", "000002.jpg  1  0  1")), 4, ("must be 1 or -1, got '0'",)),
    ("two\nMale\n", 1, ("first line must be the number of images",)),
])
def test_celeba_malformed_attributes(tmp_path, text, line, words):
    p = tmp_path / "list_attr_celeba.txt"
    p.write_text(text)
    with raises_at(p, line, *words):
        celeba.read_attributes(p)


def test_celeba_sex_per_subject_conflict(tmp_path):
    (tmp_path / "identity_CelebA.txt").write_text("000001.jpg 7\n000002.jpg 7\n")
    (tmp_path / "list_attr_celeba.txt").write_text(_celeba_attr())
    s = celeba.load_celeba(tmp_path, ["Male"])
    assert s.attributes["sex"].tolist() == [CONFLICT, CONFLICT]
    assert "1 subject(s) whose images disagree" in s.label_sources["sex"]


# -- Adience -----------------------------------------------------------------------------------

ADIENCE_HEADER = "user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\tfiducial_yaw_angle\tfiducial_score"
ADIENCE_ROW = "30601258@N03\t10399646885_67c7d20df9_o.jpg\t1\t(25, 32)\tf\t0\t414\t1086\t1383\t-115\t30\t17"


@pytest.mark.parametrize("text,mode,label,official", [
    ("(25, 32)", "unlabelled", "25-32", True), ("(0, 2)", "unlabelled", "0-2", True),
    ("(60, 100)", "unlabelled", "60-100", True), ("None", "unlabelled", UNLABELLED, True),
    ("(38, 42)", "unlabelled", UNLABELLED, False), ("(38, 42)", "keep", "38-42", False),
    ("35", "unlabelled", UNLABELLED, False), ("35", "keep", "35", False),
])
def test_adience_age_strings(text, mode, label, official):
    assert adience.age_band(text, mode) == (label, official)


def test_adience_fold_rows(tmp_path):
    p = tmp_path / "fold_0_data.txt"
    p.write_text("\n".join([ADIENCE_HEADER, ADIENCE_ROW, ADIENCE_ROW.replace("\t1\t(25, 32)\tf", "\t2\t(38, 42)\tu")]) + "\n")
    rows = adience.read_fold(p)
    assert rows[0]["user_id"] == "30601258@N03" and rows[0]["face_id"] == "1"
    assert (rows[0]["age"], rows[0]["sex"]) == ("25-32", "female")
    assert (rows[1]["age"], rows[1]["official"], rows[1]["sex"]) == (UNLABELLED, False, UNLABELLED)
    with raises_at(p, 3, "(38, 42)", "not one of Adience's eight official bands"):
        adience.read_fold(p, "error")
    s = adience.load_adience(tmp_path, folds=[0])
    assert s.subjects.tolist() == ["30601258@N03/1", "30601258@N03/2"]
    assert s.paths[0] == str(tmp_path / "faces/30601258@N03/coarse_tilt_aligned_face.1.10399646885_67c7d20df9_o.jpg")
    assert "1 image(s) with a non-official age string made 'unlabelled'" in s.label_sources["age"]


@pytest.mark.parametrize("row,words", [
    (ADIENCE_ROW.replace("(25, 32)", "twenty"), ("age 'twenty' is neither",)),
    (ADIENCE_ROW.replace("\tf\t", "\tx\t"), ("unknown gender code 'x'",)),
    ("30601258@N03\t10399646885_67c7d20df9_o.jpg\t1", ("3 tab-separated fields",)),
    (ADIENCE_ROW.replace("\t1\t", "\tone\t", 1), ("numeric face_id",)),
])
def test_adience_malformed(tmp_path, row, words):
    p = tmp_path / "fold_1_data.txt"
    p.write_text("\n".join([ADIENCE_HEADER, ADIENCE_ROW, row]) + "\n")
    with raises_at(p, 3, *words):
        adience.read_fold(p)


def test_adience_missing_column(tmp_path):
    p = tmp_path / "fold_0_data.txt"
    p.write_text(ADIENCE_HEADER.replace("\tgender", "") + "\n")
    with raises_at(p, 1, "lacks column(s) ['gender']"):
        adience.read_fold(p)


# -- UTKFace -----------------------------------------------------------------------------------

def test_utkface_names():
    assert utkface.parse_name("26_0_2_20170104023102422.jpg.chip.jpg") == ("26", "0", "2", "20170104023102422")
    assert utkface.labels_of("26_0_2_20170104023102422.jpg.chip.jpg", "x") == ("18-29", "male", "asian")
    assert utkface.labels_of("61_1_3_20170109150557335.jpg", "x") == (">=60", "female", "indian")
    assert utkface.parse_name("39_1_20170116174525125.jpg.chip.jpg") is None


@pytest.mark.parametrize("name,words", [
    ("39_1_20170116174525125.jpg.chip.jpg", "four fields"),
    ("26_0_5_20170104023102422.jpg.chip.jpg", "race code '5' is unknown"),
    ("26_2_0_20170104023102422.jpg.chip.jpg", "gender code '2' is unknown"),
    ("200_0_0_20170104023102422.jpg.chip.jpg", "age '200' is not an integer 0..116"),
])
def test_utkface_bad_names(tmp_path, name, words):
    d = tmp_path / "UTKFace"
    d.mkdir()
    (d / "26_0_2_20170104023102422.jpg.chip.jpg").write_bytes(b"x")
    (d / name).write_bytes(b"x")
    with pytest.raises(DatasetError, match=re.escape(str(d / name)) + ".*" + re.escape(words)):
        utkface.load_utkface(tmp_path)
    s = utkface.load_utkface(tmp_path, bad_names="unlabelled")
    assert len(s) == 2 and UNLABELLED in s.attributes["race"].tolist() + s.attributes["sex"].tolist() + s.attributes["age"].tolist()
    assert len(set(s.subjects)) == 2


# -- FairFace ----------------------------------------------------------------------------------

def test_fairface_rows_and_mangled_ages(tmp_path):
    p = tmp_path / "fairface_label_val.csv"
    p.write_text("file,age,gender,race,service_test\n"
                 "val/1.jpg,3-9,Male,East Asian,False\n"
                 "val/2.jpg,50-59,Female,Indian,True\n"
                 "val/3.jpg,03-Sep,Female,Black,True\n"
                 "val/4.jpg,Oct-19,Male,Latino_Hispanic,False\n"
                 "val/5.jpg,more than 70,Male,Middle Eastern,False\n")
    rows, repaired = fairface.read_labels(p)
    assert [r["age"] for r in rows] == ["3-9", "50-59", "3-9", "10-19", "more than 70"]
    assert repaired == 2
    assert [r["race"] for r in rows] == ["east_asian", "indian", "black", "latino_hispanic", "middle_eastern"]
    with raises_at(p, 4, "'03-Sep' is the age bin '3-9' turned into a date"):
        fairface.read_labels(p, "error")
    s = fairface.load_fairface(tmp_path)
    assert "2 value(s) a spreadsheet had turned into dates" in s.label_sources["age"]
    assert len(set(s.subjects)) == 5


@pytest.mark.parametrize("row,words", [
    ("val/9.jpg,Jan-05,Male,White,False", ("'Jan-05' is not a FairFace age bin", "nor a known spreadsheet")),
    ("val/9.jpg,43717,Male,White,False", ("'43717' is not a FairFace age bin",)),
    ("val/9.jpg,20-29,Man,White,False", ("unknown gender code 'Man'",)),
    ("val/9.jpg,20-29,Male,Asian,False", ("unknown race code 'Asian'",)),
    ("val/9.jpg,20-29,Male", ("3 fields, the header has 5",)),
])
def test_fairface_malformed(tmp_path, row, words):
    p = tmp_path / "fairface_label_val.csv"
    p.write_text("file,age,gender,race,service_test\nval/1.jpg,3-9,Male,White,False\n" + row + "\n")
    with raises_at(p, 3, *words):
        fairface.read_labels(p)


# -- DiveFace, MORPH ---------------------------------------------------------------------------

def test_diveface_lists(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "Group1_Female.txt").write_text("100016927@N02_identity_1/9469948405_7.jpg\n"
                                                         "100016927@N02_identity_1/9471360370_8.jpg\n")
    (tmp_path / "files" / "Group3_Male.txt").write_text("10014693@N05_identity_11/3050915561_2.jpg\n")
    s = diveface.load_diveface(tmp_path, megaface="/mega")
    assert s.subjects.tolist() == ["100016927@N02_identity_1"] * 2 + ["10014693@N05_identity_11"]
    assert s.attributes["race"].tolist() == ["east_asian", "east_asian", "caucasian"]
    assert s.attributes["sex"].tolist() == ["female", "female", "male"]
    assert s.paths[0] == "/mega/100016927@N02_identity_1/9469948405_7.jpg"
    assert "lists missing" in s.label_sources["race"]
    (tmp_path / "files" / "Group2_Male.txt").write_text("ok@N1_identity_0/1_1.jpg\n100016927@N02_identity_1/x.jpg\n")
    with raises_at(tmp_path / "files" / "Group2_Male.txt", 2, "also in Group1_Female"):
        diveface.load_diveface(tmp_path)
    (tmp_path / "files" / "Group2_Male.txt").write_text("no_slash.jpg\n")
    with raises_at(tmp_path / "files" / "Group2_Male.txt", 1, "expected '<identity>/<image>.jpg'"):
        diveface.load_diveface(tmp_path)


MORPH_HEADER = "id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo"


def test_morph_rows(tmp_path):
    p = tmp_path / "morph_2008_nonCommercial.csv"
    p.write_text(MORPH_HEADER + "\n3265,0,06/15/1967,01/10/1986,B,M,0,18,0,0,Album2/003265_00M18.JPG\n"
                 "3265,1,06/15/1967,02/10/1990,W,M,0,22,4,0,Album2/003265_01M22.JPG\n"
                 "4000,0,01/01/1970,01/01/2000,H,F,0,30,0,0,Album2/004000_00F30.JPG\n")
    s = morph.load_morph(tmp_path)
    assert s.subjects.tolist() == ["3265", "3265", "4000"]
    assert s.attributes["race"].tolist() == [CONFLICT, CONFLICT, "hispanic"]
    assert s.attributes["age"].tolist() == ["18-29", "18-29", "30-44"]
    assert "1 subject(s) whose images disagree" in s.label_sources["race"]
    p.write_text(MORPH_HEADER + "\n3265,0,,,X,M,0,18,0,0,Album2/a.JPG\n")
    with raises_at(p, 2, "unknown race code 'X'"):
        morph.load_morph(tmp_path)
    p.write_text(MORPH_HEADER.replace(",photo", "") + "\n")
    with raises_at(p, 1, "lacks column(s) ['photo']"):
        morph.load_morph(tmp_path)


# -- shared rules, CSV per-subject labels, data info ----------------------------------------

def test_per_subject_rule():
    labels, conflicts = per_subject(np.array(["a", "a", "b", "b", "c"]),
                                    np.array(["female", UNLABELLED, "male", "female", UNLABELLED]))
    assert labels.tolist() == ["female", "female", CONFLICT, CONFLICT, UNLABELLED] and conflicts == 1


def test_csv_per_subject_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("path,subject,sex,age\na.jpg,alice,female,17\nb.jpg,alice,,25\nc.jpg,bob,male,40\nd.jpg,bob,female,61\n")
    s = load_csv_dataset(p, per_subject=["sex"])
    assert s.attributes["sex"].tolist() == ["female", "female", CONFLICT, CONFLICT]
    assert s.attributes["age"].tolist() == ["<18", "18-29", "30-44", ">=60"]   # per image (default age bands)
    assert "per subject" in s.label_sources["sex"] and "per image" in s.label_sources["age"]
    per_image = load_csv_dataset(p)
    assert per_image.attributes["sex"].tolist() == ["female", UNLABELLED, "male", "female"]
    with pytest.raises(DatasetError, match="per-subject attribute 'sexx'.*did you mean 'sex'"):
        load_csv_dataset(p, per_subject=["sexx"])


@pytest.mark.parametrize("name", ["rfw", "bfw", "vggface2", "celeba", "adience", "utkface", "fairface", "diveface", "morph"])
def test_data_info_text(name, tmp_path):
    text = info_text(name, tmp_path)
    info = adapter(name).INFO
    for part in (info.request, info.terms, info.labels, info.protocols, f"Configured root: {tmp_path}"):
        assert part in text
    assert info.documented_from.split(":")[0] in ("official", "secondary")
    assert "not found" in info_text(name, tmp_path / "absent")


def test_cli_data_info(tmp_path, capsys):
    from evalkit.cli import main

    (tmp_path / "fairface_label_val.csv").write_text("file,age,gender,race,service_test\nval/1.jpg,03-Sep,Male,White,True\n")
    assert main(["data", "info", "fairface", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Where to request it" in out and "val: 1 labelled images, 0 present on disk, 1 spreadsheet-mangled" in out
    assert "fairface_label_train.csv: MISSING" in out
