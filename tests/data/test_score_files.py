"""Vendors' score files (backend=scores): every format error names its line; 1:1 and 1:N runs on
a score file give the per-group rates a hand count of the file gives; the score direction is
honoured by every threshold policy (a similarity file and the same scores negated as a distance
file make identical decisions)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from evalkit.data.score_files import ScoreFileError, read_candidate_lists, read_pair_scores
from evalkit.pipeline import run

from ..conftest import compose_config

IDS = {"A/1", "A/2", "B/1", "C/1"}


def _write(path, text: str):
    path.write_text(text)
    return path


@pytest.mark.parametrize("body, message", [
    ("A/1,A/2,90\nA/1,Z/9,10\n", r":3: unknown sample id 'Z/9' in column sample_b"),
    ("A/1,A/2,90\nB/1,A/1,10\nA/2,A/1,80\n", r":4: duplicate comparison \(A/2, A/1\); first given on line 2"),
    ("A/1,A/2,ninety\n", r":2: score 'ninety' is not a number"),
    ("A/1,A/2,nan\n", r":2: score 'nan' is not finite"),
    ("A/1,A/2,\n", r":2: empty score and no failure reason"),
    ("A/1,A/1,3\n", r":2: sample_a and sample_b are the same image"),
])
def test_pair_file_errors_name_the_line(tmp_path, body, message):
    p = _write(tmp_path / "s.csv", "sample_a,sample_b,score\n" + body)
    with pytest.raises(ScoreFileError, match=message):
        read_pair_scores(p, IDS)


def test_pair_file_failures_and_header(tmp_path):
    p = _write(tmp_path / "s.csv", "sample_a,sample_b,score,failure\nA/1,A/2,,b:no_face\nA/1,B/1,3.5,\n")
    e = read_pair_scores(p, IDS)
    assert e[frozenset(("A/1", "A/2"))].failure == "no_face" and e[frozenset(("A/1", "A/2"))].side == "b"
    assert e[frozenset(("B/1", "A/1"))].score == 3.5
    _write(p, "sample_a,sample_b,score,failure\nA/1,A/2,,no_fase\n")
    with pytest.raises(ScoreFileError, match=r":2: unknown failure reason 'no_fase'.*did you mean 'no_face'"):
        read_pair_scores(p, IDS)
    _write(p, "a,b,similarity\nA/1,A/2,1\n")
    with pytest.raises(ScoreFileError, match=r":1: header .* is neither"):
        read_pair_scores(p, IDS)


@pytest.mark.parametrize("body, message", [
    ("A/1,1,B/1,80\nA/1,3,C/1,70\n", r":3: probe A/1: rank 3 where rank 2 was expected"),
    ("A/1,1,B/1,80\nA/1,2,C/1,90\n", r":3: probe A/1: rank 2 has a better score \(90\) than rank 1 \(80\)"),
    ("A/1,1,B/1,80\nA/1,2,B/1,70\n", r":3: probe A/1: candidate B/1 listed twice"),
    ("A/1,one,B/1,80\n", r":2: rank 'one' is not an integer"),
    ("A/1,1,Q/1,80\n", r":2: unknown sample id 'Q/1' in column candidate"),
    ("A/1,,,\nA/1,1,B/1,80\n", r":3: probe A/1 was given as having no candidates on line 2"),
])
def test_candidate_file_errors_name_the_line(tmp_path, body, message):
    p = _write(tmp_path / "c.csv", "probe,rank,candidate,score\n" + body)
    with pytest.raises(ScoreFileError, match=message):
        read_candidate_lists(p, IDS, "similarity")


def test_candidate_order_follows_the_direction(tmp_path):
    p = _write(tmp_path / "c.csv", "probe,rank,candidate,score\nA/1,1,B/1,0.2\nA/1,2,C/1,0.5\n")
    assert [c for c, _, _ in read_candidate_lists(p, IDS, "distance")["A/1"].candidates] == ["B/1", "C/1"]
    with pytest.raises(ScoreFileError, match=":3: .*better score"):
        read_candidate_lists(p, IDS, "similarity")


# --------------------------------------------------------------------------- end to end on LFW

PAIRS_RUN = ["dataset=lfw", "protocol.pairs_per_fold=3", "progress=false", "det_plot=false",
             "bootstrap.replicates=20"]


def _protocol_pairs(lfw_samples, data_dir):
    from evalkit.protocols import build_protocol

    cfg = compose_config([*PAIRS_RUN, f"data_dir={data_dir}"])
    return build_protocol(cfg.protocol).plan(cfg, lfw_samples).pairs


def _pair_file(path, lfw_samples, pairs, sign: float = 1.0, drop: int | None = None, fail: int | None = None):
    """A synthetic vendor file: seeded similarities, mated ones higher on average."""
    rng = np.random.default_rng(7)
    rows = []
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_a", "sample_b", "score", "failure"])
        for i, (a, b, m) in enumerate(zip(pairs.a, pairs.b, pairs.mated)):
            s = float(np.clip(rng.normal(70 if m else 35, 15), 0, 100))
            if i == drop:
                continue
            ids = (lfw_samples.ids[a], lfw_samples.ids[b])
            if i == fail:
                w.writerow([*ids, "", "b:no_face"])
                rows.append((ids, None, bool(m)))
                continue
            w.writerow([*(ids if i % 2 else ids[::-1]), repr(sign * s), ""])   # either order
            rows.append((ids, s, bool(m)))
    return rows


def _group(lfw_samples, sid, attr):
    return lfw_samples.attributes[attr][lfw_samples.index_of([sid])[0]]


def _counts(entry, rate):
    if isinstance(entry.get(rate), dict):
        return entry[rate]["errors"], entry[rate]["n"]
    return ((entry["false_matches"], entry["n_impostor"]) if rate == "fmr"
            else (entry["false_nonmatches"], entry["n_genuine"]))


def test_pair_score_file_run_matches_a_hand_count(lfw_samples, data_dir, tmp_path):
    pairs = _protocol_pairs(lfw_samples, data_dir)
    rows = _pair_file(tmp_path / "vendor.csv", lfw_samples, pairs, fail=4)
    cfg = compose_config([*PAIRS_RUN, f"data_dir={data_dir}", "backend=scores", f"backend.path={tmp_path / 'vendor.csv'}",
                          "backend.direction=similarity", "threshold=fixed", "threshold.value=60"])
    m = run(cfg, tmp_path / "run")
    assert m["threshold"]["value"] == 60.0 and m["threshold"]["direction"] == "similarity"
    for g, e in m["groups"]["sex"].items():
        fm = im = fnm = gm = 0
        for (a, b), s, mated in rows:
            if _group(lfw_samples, a, "sex") != g or _group(lfw_samples, b, "sex") != g:
                continue
            match = s is not None and s >= 60.0
            if mated:
                gm += 1
                fnm += not match
            else:
                im += 1
                fm += match
        assert _counts(e, "fmr") == (fm, im) and _counts(e, "fnmr") == (fnm, gm), g
    # the named failed image is counted per group; scores.csv holds the file's own numbers
    fails = list(csv.DictReader(open(tmp_path / "run" / "failures.csv")))
    assert [f["sample"] for f in fails] == [lfw_samples.ids[pairs.b[4]]] and fails[0]["reason"] == "no_face"
    sc = {frozenset((r["sample_a"], r["sample_b"])): r["score"] for r in csv.DictReader(open(tmp_path / "run" / "scores.csv"))}
    for ids, s, _ in rows:
        assert sc[frozenset(ids)] == ("" if s is None else repr(s))


@pytest.mark.parametrize("policy", [["threshold=global_fmr", "threshold.target_fmr=0.1"],
                                    ["threshold=per_group_fmr", "threshold.target_fmr=0.2", "threshold.attribute=sex"],
                                    ["threshold=calibrated", "threshold.calibration=subject_split",
                                     "threshold.target_fmr=0.2"]])
def test_direction_is_honoured_by_every_threshold_policy(lfw_samples, data_dir, tmp_path, policy):
    """The same scores as a similarity file and, negated, as a distance file: identical decisions
    (every group's errors), thresholds reported in each file's own units (negatives of each other)."""
    pairs = _protocol_pairs(lfw_samples, data_dir)
    out = {}
    for direction, sign in (("similarity", 1.0), ("distance", -1.0)):
        f = tmp_path / f"{direction}.csv"
        _pair_file(f, lfw_samples, pairs, sign=sign)
        cfg = compose_config([*PAIRS_RUN, f"data_dir={data_dir}", "backend=scores", f"backend.path={f}",
                              f"backend.direction={direction}", *policy])
        out[direction] = run(cfg, tmp_path / direction)
    s, d = out["similarity"], out["distance"]
    assert s["threshold"]["direction"] == "similarity" and d["threshold"]["direction"] == "distance"
    for attr in ("sex", "race"):
        for g in s["groups"][attr]:
            for rate in ("fmr", "fnmr"):
                assert _counts(s["groups"][attr][g], rate) == _counts(d["groups"][attr][g], rate)
    if s["threshold"]["value"] is not None:
        assert s["threshold"]["value"] == -d["threshold"]["value"]
    else:
        ps, pd = (next(iter(x["threshold"]["per_group"].values())) for x in (s, d))
        assert {g: v["value"] for g, v in ps.items()} == {g: -v["value"] for g, v in pd.items()}
    # the similarity threshold separates as "similarity >= T" on the file's own numbers
    if s["threshold"]["policy"] == "global_fmr":
        rows = list(csv.DictReader(open(tmp_path / "similarity" / "scores.csv")))
        fm = sum(r["mated"] == "0" and float(r["score"]) >= s["threshold"]["value"] for r in rows)
        ov = s["overall"]
        assert fm == (ov["false_matches"] if "false_matches" in ov else ov["fmr"]["errors"])


def test_missing_pairs_are_errors_or_reported_failures(lfw_samples, data_dir, tmp_path):
    pairs = _protocol_pairs(lfw_samples, data_dir)
    _pair_file(tmp_path / "vendor.csv", lfw_samples, pairs, drop=7)
    base = [*PAIRS_RUN, f"data_dir={data_dir}", "backend=scores", f"backend.path={tmp_path / 'vendor.csv'}",
            "backend.direction=similarity", "threshold.target_fmr=0.1"]
    a, b = lfw_samples.ids[pairs.a[7]], lfw_samples.ids[pairs.b[7]]
    with pytest.raises(ScoreFileError, match=rf"1 of the protocol's 60 comparisons have no line: comparison 8 \({a}, {b}\)"):
        run(compose_config(base), tmp_path / "run1")
    m = run(compose_config([*base, "backend.missing=failure"]), tmp_path / "run2")
    rec = json.loads((tmp_path / "run2" / "record.json").read_text())
    assert rec["extraction"]["calls"]["missing_pairs"] == 1
    rows = list(csv.DictReader(open(tmp_path / "run2" / "scores.csv")))
    assert sum(r["failed"] == "1" for r in rows) == 1 and m["protocol"]["n_comparisons"] == 60


def test_candidate_list_file_search_run_matches_a_hand_count(lfw_samples, data_dir, tmp_path):
    """protocol=search on a NIST-style candidate-list file: FPIR and FNIR per group equal a hand
    count of the file at the run's threshold, in the file's direction (distance here)."""
    from evalkit.data.protocols import search_split

    over = ["protocol=search", "threshold=global_fpir", "threshold.target_fpir=0.1", "protocol.max_subjects=60",
            "protocol.max_probes_per_subject=2", "protocol.candidates=5", "progress=false", "det_plot=false",
            "bootstrap.replicates=20", f"data_dir={data_dir}"]
    p = compose_config(over).protocol
    split = search_split(lfw_samples, gallery_images_per_subject=p.gallery_images_per_subject,
                         max_probes_per_subject=p.max_probes_per_subject, nonmated_fraction=p.nonmated_fraction,
                         gallery_sizes=list(p.gallery_sizes), seed=int(p.seed), max_subjects=p.max_subjects)
    rng = np.random.default_rng(3)
    gallery_ids = [lfw_samples.ids[r] for r in split.gallery]
    lists = {}
    with open(tmp_path / "lists.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["probe", "rank", "candidate", "score"])
        for j, row in enumerate(split.probes):
            pid = lfw_samples.ids[row]
            d = rng.uniform(0.5, 1.0, len(gallery_ids))
            if split.probe_mate[j] >= 0:
                d[split.gallery_column == split.probe_mate[j]] = rng.uniform(0.2, 0.8)
            order = np.argsort(d, kind="stable")[:5]
            lists[pid] = [(gallery_ids[k], float(d[k])) for k in order]
            for rank, k in enumerate(order, 1):
                w.writerow([pid, rank, gallery_ids[k], repr(float(d[k]))])
    m = run(compose_config([*over, "backend=scores", f"backend.path={tmp_path / 'lists.csv'}",
                            "backend.direction=distance"]), tmp_path / "run")
    t = m["threshold"]["value"]
    subj = {lfw_samples.ids[r]: lfw_samples.subjects[r] for r in np.r_[split.gallery, split.probes]}
    s = m["search"]
    for g, e in m["groups"]["sex"].items():
        fp = nm = miss = mated = 0
        for j, row in enumerate(split.probes):
            if lfw_samples.attributes["sex"][row] != g:
                continue
            pid = lfw_samples.ids[row]
            if split.probe_mate[j] >= 0:
                mated += 1
                miss += not any(subj[c] == subj[pid] and d <= t for c, d in lists[pid])
            else:
                nm += 1
                fp += any(d <= t for _, d in lists[pid])
        assert (e["fpir"]["errors"], e["fpir"]["n"]) == (fp, nm) and (e["fnir"]["errors"], e["fnir"]["n"]) == (miss, mated)


def test_reports_speak_in_the_files_direction(lfw_samples, data_dir, tmp_path):
    """A similarity run's summary.md and report.html call the threshold a similarity, put it above
    the impostor scores when the target cannot be resolved, and draw the score distributions from
    scores.csv (det_plot=false) on the similarity axis."""
    pairs = _protocol_pairs(lfw_samples, data_dir)
    _pair_file(tmp_path / "vendor.csv", lfw_samples, pairs)
    m = run(compose_config([*PAIRS_RUN, f"data_dir={data_dir}", "backend=scores", f"backend.path={tmp_path / 'vendor.csv'}",
                            "backend.direction=similarity", "threshold.target_fmr=0.001"]), tmp_path / "run")
    assert m["threshold"]["resolvable"] is False
    md = (tmp_path / "run" / "summary.md").read_text()
    assert "(similarity): one threshold for everyone" in md and "sits above every score it was set on" in md
    assert "scores: similarity (higher = more alike)" in md and "distance None" not in md
    html = (tmp_path / "run" / "report.html").read_text()
    assert "similarity (higher = more alike)" in html and "Similarity (higher = more alike; linear scale)" in html
    assert "distance None" not in html and "sits above every score it was set on" in html
    # the threshold sits above every impostor's similarity in the file (nothing matches falsely)
    rows = list(csv.DictReader(open(tmp_path / "run" / "scores.csv")))
    assert max(float(r["score"]) for r in rows if r["mated"] == "0") < m["threshold"]["value"]
