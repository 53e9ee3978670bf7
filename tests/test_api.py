"""The Python API (evalkit.api): run / load / evaluate, a user's Backend instance and a plain
callable as backends, DataFrames out."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

import evalkit
from evalkit.api import CallableBackend

SMALL = ["protocol.pairs_per_fold=10", "progress=false", "det_plot=false", "bootstrap.replicates=50"]


@pytest.fixture(scope="module")
def api_run(tmp_path_factory, lfw_root):
    """evalkit.run on the small LFW View 2 config (the lfw_run's 200 comparisons)."""
    return evalkit.run(SMALL, folder=tmp_path_factory.mktemp("api") / "run", data_dir=lfw_root.parent)


def test_run_returns_the_run_folder_and_its_tables(api_run):
    m = json.loads((api_run.folder / "metrics.json").read_text())
    assert api_run.metrics == m and api_run.kind == "verification"
    s = api_run.scores
    assert len(s) == m["protocol"]["n_comparisons"] == 200
    assert list(s.columns[:8]) == ["sample_a", "sample_b", "subject_a", "subject_b", "mated", "fold", "score", "failed"]
    rows = list(csv.DictReader((api_run.folder / "scores.csv").open()))
    assert [float(r["score"]) if r["score"] else None for r in rows] == [None if np.isnan(v) else v for v in s["score"]]
    bg = api_run.by_group()
    assert bg.index.names == ["attribute", "group"]
    male = m["groups"]["sex"]["male"]
    for rate in ("fmr", "fnmr"):
        for field, key in (("rate", "rate"), ("errors", "errors"), ("n", "n"), ("subjects", "subjects"),
                           ("upper", "upper"), ("small", "small")):
            got = bg.loc[("sex", "male"), (rate, field)]
            assert (None if pd.isna(got) else got) == male[rate][key], (rate, field)
        assert bg.loc[("sex", "male"), (rate, "ci_high")] == male[rate]["ci"][1]
    assert bg.loc[("sex", "male"), ("fnmr", "boot_low")] == male["fnmr"]["ci_boot"][0]
    assert bg.loc[("sex", "female"), ("fnmr", "small")] == m["groups"]["sex"]["female"]["fnmr"]["small"]
    assert bg.loc[("sex", "male"), ("fte", "errors")] == m["failures"]["by_group"]["sex"]["male"]["fte"]["errors"]
    assert bg.loc[("overall", "all"), ("fmr", "n")] == m["overall"]["fmr"]["n"] == 100
    assert bg.loc[("sex", "mixed"), ("fmr", "n")] == m["mixed"]["sex"]["fmr"]["n"]
    assert ("sex x race", "male x caucasian") in bg.index
    fnmr = api_run.by_group("fnmr")
    assert fnmr.loc[("race", "caucasian"), "rate"] == m["groups"]["race"]["caucasian"]["fnmr"]["rate"]
    est = api_run.estimates()[("sex", "male", "fnmr")]
    assert est.errors == male["fnmr"]["errors"] and est.ci == male["fnmr"]["ci"]
    assert api_run.threshold.value == m["threshold"]["value"] and api_run.threshold.policy == "global_fmr"
    with pytest.raises(KeyError, match="did you mean 'fnmr'"):
        api_run.by_group("fnmrr")
    d = api_run.disparity()
    n = 0
    for attr, summaries in m["disparity"].items():
        for name, want in summaries.items():
            if isinstance(want, dict) and "value" in want and "by_group" not in want:
                got = d.loc[(attr, name, "")]
                assert (None if pd.isna(got["value"]) else got["value"]) == want["value"]
                assert (None if pd.isna(got["reason"]) else got["reason"]) == want.get("reason")
                n += 1
    assert n == len(d[d.index.get_level_values("group") == ""]) > 5


def test_load_gives_the_same_object_as_run(api_run):
    again = evalkit.load(api_run.folder)
    assert again.metrics == api_run.metrics
    pd.testing.assert_frame_equal(again.by_group(), api_run.by_group())
    pd.testing.assert_frame_equal(again.disparity(), api_run.disparity())
    pd.testing.assert_frame_equal(again.scores, api_run.scores)
    assert again.config["protocol"]["pairs_per_fold"] == 10
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        evalkit.load(api_run.folder / "nowhere")


def test_evaluate_on_the_runs_own_scores_reproduces_its_rates(api_run):
    """evaluate() with the run's scores.csv and threshold recomputes the run's per-group rates."""
    m = api_run.metrics
    ev = evalkit.evaluate(api_run.scores, threshold=m["threshold"]["value"], bootstrap=0)
    for attr in ("sex", "race"):
        for g, e in m["groups"][attr].items():
            got = ev.metrics["groups"][attr][g]
            for k in ("fmr", "fnmr"):
                for f in ("rate", "errors", "n", "subjects", "ci", "upper", "small", "small_reason"):
                    assert got[k][f] == e[k][f], (attr, g, k, f)
            assert got["eer"] == e["eer"] and got["accuracy"] == e["accuracy"]
    assert ev.folder is None and len(ev.scores) == len(api_run.scores)


def test_evaluate_against_a_hand_computation():
    """Rates per group at a fixed threshold counted by hand with pandas, intervals from scipy."""
    rng = np.random.default_rng(7)
    people = [f"p{i}" for i in range(40)]
    sex = {p: ("f" if i % 3 == 0 else "m") for i, p in enumerate(people)}
    imgs = [(f"{p}/{k}", p) for p in people for k in range(3)]
    rows = []
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            (a, pa), (b, pb) = imgs[i], imgs[j]
            if pa != pb and rng.random() > 0.15:
                continue
            mated = pa == pb
            rows.append({"sample_a": a, "sample_b": b, "subject_a": pa, "subject_b": pb,
                         "score": rng.normal(0.4 if mated else 0.9, 0.2)})
    scores = pd.DataFrame(rows)
    scores.loc[3, "score"] = np.nan                                    # one failed comparison
    labels = pd.DataFrame({"sample": [a for a, _ in imgs], "sex": [sex[p] for _, p in imgs]})
    t = 0.6
    ev = evalkit.evaluate(scores, labels, threshold=t)
    s = scores.assign(mated=scores.subject_a == scores.subject_b,
                      ga=scores.subject_a.map(sex), gb=scores.subject_b.map(sex))
    s["match"] = s.score <= t                                          # NaN (failed) -> no match
    for g in ("f", "m"):
        mine = s[(s.ga == g) & (s.gb == g)]
        gen, imp = mine[mine.mated], mine[~mine.mated]
        e = ev.metrics["groups"]["sex"][g]
        assert (e["fnmr"]["errors"], e["fnmr"]["n"]) == (int((~gen.match).sum()), len(gen))
        assert (e["fmr"]["errors"], e["fmr"]["n"]) == (int(imp.match.sum()), len(imp))
        ci = binomtest(int((~gen.match).sum()), len(gen)).proportion_ci(0.95, method="exact")
        assert e["fnmr"]["ci"] == pytest.approx([ci.low, ci.high], abs=1e-12)
        assert e["fnmr"]["subjects"] == len(set(mine.subject_a) | set(mine.subject_b))
        row = ev.by_group("fmr").loc[("sex", g)]
        assert row["errors"] == int(imp.match.sum()) and row["n"] == len(imp)
    mixed = s[s.ga != s.gb]
    assert ev.metrics["mixed"]["sex"]["fmr"]["n"] == int((~mixed.mated).sum())
    from sklearn.metrics import confusion_matrix

    tn, fp, fn, tp = confusion_matrix(s.mated, s.match).ravel()
    assert (ev.metrics["overall"]["fmr"]["errors"], ev.metrics["overall"]["fnmr"]["errors"]) == (fp, fn)
    with pytest.raises(ValueError, match="mated=True but subjects"):
        evalkit.evaluate(scores.assign(mated=True), labels, threshold=t)
    with pytest.raises(ValueError, match="lacks column"):
        evalkit.evaluate(scores.drop(columns="subject_b"), labels, threshold=t)


def _image(root, sample_id: str):
    """The LFW image file of a sample id ("Aaron_Peirsol/Aaron_Peirsol_0001")."""
    return root / f"{sample_id}.jpg"


def read_rgb(path) -> np.ndarray:
    import cv2

    return cv2.imread(str(path))[:, :, ::-1]


def _thumbnail(img: np.ndarray) -> np.ndarray:
    import cv2

    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    h, w = g.shape
    v = cv2.resize(g[h // 4: 3 * h // 4, w // 4: 3 * w // 4], (8, 8), interpolation=cv2.INTER_AREA)
    v = v.astype(np.float32).ravel()
    return (v - v.mean()) / (np.linalg.norm(v - v.mean()) or 1.0)


def test_a_user_backend_instance_runs_end_to_end_on_real_lfw(tmp_path, lfw_root):
    from tests.plugins.example import Thumbnail

    r = evalkit.run(["protocol.pairs_per_fold=3", *SMALL[1:]], backend=Thumbnail(side=8), folder=tmp_path / "run",
                    data_dir=lfw_root.parent)
    m = r.metrics
    assert m["backend"]["name"] == "thumbnail" and m["backend"]["fingerprint"] == {"backend": "thumbnail", "side": 8,
                                                                                   "version": 1}
    assert m["protocol"]["n_comparisons"] == 60 and r.config["backend"]["instance"] == "tests.plugins.example.Thumbnail"
    # the scores are the instance's own: recompute a few by hand
    s = r.scores.dropna(subset=["score"]).head(3)
    t = Thumbnail(side=8)
    root = lfw_root / "lfw-deepfunneled"
    for _, row in s.iterrows():
        pa, pb = _image(root, row.sample_a), _image(root, row.sample_b)
        assert row.score == pytest.approx(float(np.linalg.norm(t.embed_one(str(pa)) - t.embed_one(str(pb)))), abs=1e-5)


def test_a_plain_callable_runs_end_to_end_and_its_fingerprint_is_explicit(tmp_path, lfw_root):
    with pytest.raises(ValueError, match="needs version="):
        evalkit.run(SMALL, backend=_thumbnail, folder=tmp_path / "x", data_dir=lfw_root.parent)
    r = evalkit.run(["protocol.pairs_per_fold=3", *SMALL[1:]], backend=_thumbnail, backend_version="1",
                    folder=tmp_path / "run", data_dir=lfw_root.parent)
    fp = r.metrics["backend"]["fingerprint"]
    assert fp == {"backend": "callable", "name": "_thumbnail", "function": "tests.test_api._thumbnail", "version": "1"}
    assert r.metrics["backend"]["distance"] == "cosine"
    # the same function as a Backend gives the same scores (cosine distance of unit vectors)
    b = CallableBackend(_thumbnail, version="1")
    row = r.scores.dropna(subset=["score"]).iloc[0]
    root = lfw_root / "lfw-deepfunneled"
    va, vb = (b.embed_one(str(_image(root, s))) for s in (row.sample_a, row.sample_b))
    assert row.score == pytest.approx(1 - float(va @ vb) / float(np.linalg.norm(va) * np.linalg.norm(vb)), abs=1e-5)
    # a callable that finds no face in dark images: a recorded failure per image, never dropped
    dark = lambda img: None if img.mean() < 100 else _thumbnail(img)   # noqa: E731
    r2 = evalkit.run(["protocol.pairs_per_fold=3", *SMALL[1:]], backend=CallableBackend(dark, version="x", name="dark"),
                     folder=tmp_path / "dark", data_dir=lfw_root.parent)
    used = {s for s in np.concatenate([r2.scores.sample_a, r2.scores.sample_b])}
    n_dark = sum(read_rgb(_image(root, s)).mean() < 100 for s in used)
    assert 0 < n_dark < len(used)
    assert r2.metrics["failures"]["images"]["by_reason"] == {"no_face": n_dark}
    failed_rows = list(csv.DictReader((r2.folder / "failures.csv").open()))
    assert len(failed_rows) == n_dark and {r["reason"] for r in failed_rows} == {"no_face"}


def test_run_accepts_a_backend_name_and_a_config(tmp_path, lfw_root, api_run):
    r = evalkit.run(config=api_run.folder, folder=tmp_path / "again")
    assert r.metrics == api_run.metrics                      # same config + same cache -> same numbers
    with pytest.raises(ValueError, match="only key=value overrides"):
        evalkit.run(["backend=lbph"], config=api_run.folder)
