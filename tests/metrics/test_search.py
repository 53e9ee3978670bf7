"""1:N search engine and metrics against a plain-Python brute-force loop on small seeded embeddings.

The reference (``brute``) loops over probes and gallery images one pair at a time (np.linalg.norm /
a dot product on single vectors), keeps each enrolled subject's best score in a dict and derives
ranks, best non-mates and candidate lists by counting: nothing from evalkit's vectorised code.
Rates are then counted from the reference per probe, following the definitions in
``evalkit.metrics.search`` (NISTIR 8271 sec. 3).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from scipy import stats

from evalkit.metrics.search import (NO_RANK, bootstrap_interval, cluster_bootstrap_rates, cmc_hits,
                                    false_candidate_matrix, mated_misses, nonmated_false_positives, probe_validity,
                                    search)
from evalkit.metrics.search_summary import rate_entry, summarise_search

INF = math.inf
DISTANCES = ("euclidean", "euclidean_l2", "cosine")


# --------------------------------------------------------------------------- synthetic data


def make_data(seed: int = 7, d: int = 8):
    """45 enrolled subjects (1-3 gallery images; subject 4 with every image failed, subject 9 with
    one of its two failed), mated probes that are noisy copies of one of their mate's images (some
    mates enrolled only in the larger galleries), non-mated probes from 25 outside subjects (1-3
    probes each), one failed mated and one failed non-mated probe, a mated probe of subject 4."""
    rng = np.random.default_rng(seed)
    C = 45
    n_img = rng.choice([1, 1, 1, 2, 3], size=C)
    n_img[4], n_img[9] = 2, 2
    centre = rng.normal(size=(C, d))
    gallery, gcol = [], []
    for c in range(C):
        for _ in range(n_img[c]):
            gallery.append(centre[c] + rng.normal(scale=0.3, size=d))
            gcol.append(c)
    gallery = np.array(gallery)
    gcol = np.array(gcol)
    gallery[gcol == 4] = np.nan
    gallery[np.flatnonzero(gcol == 9)[0]] = np.nan
    # shuffle gallery rows: the engine must not rely on rows being grouped by column
    perm = rng.permutation(len(gcol))
    gallery, gcol = gallery[perm], gcol[perm]

    probes, pmate, psubj = [], [], []
    mated_cols = rng.choice(C, size=60, replace=True)
    for i, c in enumerate(mated_cols):
        imgs = np.flatnonzero(gcol == c)
        base = centre[c] if np.isnan(gallery[imgs]).all() else gallery[imgs[rng.integers(len(imgs))]]
        if np.isnan(base).any():
            base = centre[c]
        probes.append(base + rng.normal(scale=rng.uniform(0.2, 1.6), size=d))
        pmate.append(c)
        psubj.append(f"enr{c:02d}")
    probes.append(centre[4] + rng.normal(scale=0.3, size=d))     # its mate cannot be returned
    pmate.append(4)
    psubj.append("enr04")
    for s in range(25):
        ctr = rng.normal(size=d)
        for _ in range(int(rng.integers(1, 4))):
            probes.append(ctr + rng.normal(scale=0.4, size=d))
            pmate.append(-1)
            psubj.append(f"out{s:02d}")
    probes = np.array(probes)
    pmate = np.array(pmate)
    psubj = np.array(psubj)
    probes[3] = np.nan                                          # failed mated probe
    probes[np.flatnonzero(pmate < 0)[2]] = np.nan               # failed non-mated probe
    # labels per subject (consistent within a subject)
    sex_c = rng.choice(["F", "M"], size=C)
    race_c = rng.choice(["a", "b", "c"], size=C)
    sex_o = {f"out{s:02d}": x for s, x in enumerate(rng.choice(["F", "M"], size=25))}
    race_o = {f"out{s:02d}": x for s, x in enumerate(rng.choice(["a", "b", "c"], size=25))}
    psex = np.array([sex_c[m] if m >= 0 else sex_o[s] for m, s in zip(pmate, psubj)])
    prace = np.array([race_c[m] if m >= 0 else race_o[s] for m, s in zip(pmate, psubj)])
    return dict(probes=probes, gallery=gallery, gcol=gcol, pmate=pmate, psubj=psubj, C=C,
                probe_groups={"sex": psex, "race": prace}, column_groups={"sex": sex_c, "race": race_c})


SIZES = [12, 30, 45]
L = 6


def pair_distance(p, g, distance: str) -> float:
    if np.isnan(p).any() or np.isnan(g).any():
        return INF
    if distance == "euclidean":
        return float(np.linalg.norm(p - g))
    if distance == "euclidean_l2":
        return float(np.linalg.norm(p / np.linalg.norm(p) - g / np.linalg.norm(g)))
    if distance == "cosine":
        return float(1.0 - np.dot(p, g) / (np.linalg.norm(p) * np.linalg.norm(g)))
    raise AssertionError(distance)


def brute(probes, gallery, gcol, pmate, sizes, L, distance):
    """Per probe: per-subject best score (dict), mate score, rank / best non-mate per size, top-L list."""
    C = int(max(gcol)) + 1
    out = {"best": [], "mate_score": [], "rank": [], "best_nonmate": [], "top": []}
    for i in range(len(probes)):
        best = {c: INF for c in range(C)}
        for j in range(len(gallery)):
            dd = pair_distance(probes[i], gallery[j], distance)
            if dd < best[int(gcol[j])]:
                best[int(gcol[j])] = dd
        m = int(pmate[i])
        ms = best[m] if m >= 0 else INF
        ranks, bnm = [], []
        for n in sizes:
            others = [best[c] for c in range(n) if c != m]
            bnm.append(min(others) if others else INF)
            if m < 0 or m >= n:
                ranks.append(0)
            elif ms == INF:
                ranks.append(NO_RANK)
            else:
                ranks.append(1 + sum(1 for c in range(n) if c != m and best[c] <= ms))
        finite = sorted((best[c], c) for c in range(C) if best[c] < INF)
        out["best"].append(best)
        out["mate_score"].append(ms)
        out["rank"].append(ranks)
        out["best_nonmate"].append(bnm)
        out["top"].append(finite[:L])
    return out


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def refs(data):
    return {dist: brute(data["probes"], data["gallery"], data["gcol"], data["pmate"], SIZES, L, dist)
            for dist in DISTANCES}


def _near_tie_free(ref, i, tol, lists=True):
    """No near-tie that float32 rounding could flip in probe i's rank or candidate list: no subject
    within tol of the mate's score, no two of the L + 1 nearest subjects within tol."""
    v = np.sort([x for x in ref["best"][i].values() if x < INF])
    ms = ref["mate_score"][i]
    if ms < INF and (np.abs(v - ms) <= tol).sum() > 1:
        return False
    return not lists or len(v) < 2 or np.diff(v[:L + 1]).min() > tol


# --------------------------------------------------------------------------- engine vs brute force


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_engine_matches_brute_force(data, refs, distance, dtype):
    ref = refs[distance]
    res = search(data["probes"], data["gallery"], data["gcol"], data["pmate"], sizes=SIZES, candidates=L,
                 distance=distance, dtype=dtype)
    tol = 1e-10 if dtype == np.float64 else 2e-5
    P = len(data["pmate"])
    assert res.sizes.tolist() == SIZES and res.candidates == L and res.n_probes == P
    assert res.probe_ok.tolist() == [not np.isnan(p).any() for p in data["probes"]]
    assert res.column_ok.tolist() == [c not in (4,) for c in range(data["C"])]
    ms = np.array(ref["mate_score"])
    fin = np.isfinite(ms)
    assert (np.isfinite(res.mate_score) == fin).all()
    np.testing.assert_allclose(res.mate_score[fin], ms[fin], rtol=0, atol=tol)
    bnm = np.array(ref["best_nonmate"])
    assert (np.isfinite(res.best_nonmate) == np.isfinite(bnm)).all()
    np.testing.assert_allclose(res.best_nonmate[np.isfinite(bnm)], bnm[np.isfinite(bnm)], rtol=0, atol=tol)
    rk = np.array(ref["rank"], dtype=np.int64)
    checked = 0
    for i in range(P):
        if dtype == np.float32 and not _near_tie_free(ref, i, 1e-5):
            continue
        checked += 1
        assert res.rank[i].tolist() == rk[i].tolist(), i
        top = ref["top"][i]
        cols = [c for c in res.top_column[i].tolist() if c >= 0]
        assert cols == [c for _, c in top], i
        np.testing.assert_allclose(res.top_score[i, :len(top)], [s for s, _ in top], rtol=0, atol=tol)
        assert np.isinf(res.top_score[i, len(top):]).all() and (res.top_column[i, len(top):] == -1).all()
    assert checked >= P - 3
    # the cases the data is built to contain
    assert res.rank[3].tolist() == [r if r == 0 else NO_RANK for r in rk[3]]        # failed mated probe
    i4 = int(np.flatnonzero(data["pmate"] == 4)[-1])
    assert res.rank[i4].tolist() == [NO_RANK] * 3 and res.mate_score[i4] == INF
    assert (res.rank[data["pmate"] < 0] == 0).all()
    assert ((rk == 0) & (data["pmate"][:, None] >= 0)).any()          # mates outside the small gallery
    assert (rk[:, -1][(rk[:, -1] > 0) & (rk[:, -1] < NO_RANK)] > 1).any()   # not every mate at rank 1
    failed_nm = np.flatnonzero((data["pmate"] < 0) & ~res.probe_ok)
    assert len(failed_nm) == 1 and np.isinf(res.best_nonmate[failed_nm]).all()
    assert (res.top_column[~res.probe_ok] == -1).all()


@pytest.mark.parametrize("distance", DISTANCES)
def test_row_blocks_give_identical_results(data, distance):
    args = (data["probes"], data["gallery"], data["gcol"], data["pmate"])
    one = search(*args, sizes=SIZES, candidates=L, distance=distance, memory_budget_mb=1024, dtype=np.float64)
    many = search(*args, sizes=SIZES, candidates=L, distance=distance, memory_budget_mb=0.01, dtype=np.float64)
    assert one.block_rows == one.n_probes
    assert 1 < many.block_rows < many.n_probes // 4          # several row blocks
    # decisions are identical; scores agree to rounding only: BLAS uses other kernels for other
    # block shapes, so even float64 distances differ in the last bits (measured: 3e-15)
    for f in ("rank", "top_column", "probe_ok", "column_ok"):
        np.testing.assert_array_equal(getattr(one, f), getattr(many, f), err_msg=f)
    for f in ("mate_score", "best_nonmate", "top_score"):
        a, b = getattr(one, f), getattr(many, f)
        assert (np.isfinite(a) == np.isfinite(b)).all()
        np.testing.assert_allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=0, atol=1e-12, err_msg=f)


def test_candidates_capped_and_full_gallery_list(data):
    """L >= C: the list is every finite subject, sorted."""
    res = search(data["probes"], data["gallery"], data["gcol"], data["pmate"], candidates=500, dtype=np.float64)
    assert res.candidates == data["C"]
    ref = brute(data["probes"][:10], data["gallery"], data["gcol"], data["pmate"][:10], [data["C"]], data["C"],
                "euclidean")
    for i in range(10):
        top = ref["top"][i]
        assert [c for c in res.top_column[i] if c >= 0] == [c for _, c in top]


# --------------------------------------------------------------------------- exact ties (integer vectors)


def test_pessimistic_ties_on_integer_embeddings():
    """Integer-valued vectors make euclidean distances exact in both the engine and the loop, so
    ties are real: a tied subject counts against the mate; ties in the candidate list go to the lower
    enrolment column."""
    rng = np.random.default_rng(3)
    C, d = 30, 3
    gallery = rng.integers(0, 3, size=(C, d)).astype(np.float64)
    gallery[7] = gallery[2]                  # two subjects with the same image: tied for every probe
    gcol = np.arange(C)
    probes = np.vstack([gallery[rng.integers(0, C, 40)] + rng.integers(-1, 2, size=(40, d)),
                        rng.integers(0, 3, size=(15, d))]).astype(np.float64)
    pmate = np.r_[rng.integers(0, C, 40), np.full(15, -1)]
    pmate[:4] = [2, 7, 2, 7]
    probes[:4] = gallery[2]
    sizes, L_ = [10, 20, 30], 4
    ref = brute(probes, gallery, gcol, pmate, sizes, L_, "euclidean")
    for dtype in (np.float64, np.float32):
        res = search(probes, gallery, gcol, pmate, sizes=sizes, candidates=L_, dtype=dtype)
        assert res.rank.tolist() == [list(r) for r in ref["rank"]]
        np.testing.assert_allclose(res.best_nonmate, np.array(ref["best_nonmate"]), rtol=1e-6)
        # mates 2 and 7 at distance 0, each tied with the other: rank 2 once both are enrolled
        assert res.rank[:4].tolist() == [[2, 2, 2]] * 4
        ties = 0
        for i in range(len(pmate)):
            top = ref["top"][i]
            assert res.top_column[i].tolist() == [c for _, c in top], (i, res.top_column[i], top)
            ties += len({s for s, _ in top}) < len(top)
        assert ties > 10                   # the lists really have ties to break
    # thresholds exactly at score values: a score equal to the threshold is returned (<=)
    res = search(probes, gallery, gcol, pmate, sizes=sizes, candidates=L_, dtype=np.float64)
    valid = np.ones(len(pmate), bool)
    data = {"pmate": pmate}
    for t in np.unique([b[-1] for b in ref["best_nonmate"]] + [m for m in ref["mate_score"]])[:6]:
        for s in range(len(sizes)):
            (nm_, miss_), (nn_, fp_) = brute_rates(data, ref, valid, t, L_, s)
            assert int(mated_misses(res, t, size_index=s)[1].sum()) == miss_
            assert int(nonmated_false_positives(res, t, size_index=s)[1].sum()) == fp_
        cg = np.array(["x", "y", "z"])[gcol % 3]
        pg = np.array(["u", "v"])[np.arange(len(pmate)) % 2]
        for probes_sel in (pmate < 0, pmate >= 0):
            assert false_candidate_matrix(res, t, pg, cg, probes_sel) == brute_false_candidates(
                data, ref, t, L_, probes_sel, pg, cg)


# --------------------------------------------------------------------------- metric functions vs brute force


def _safe_thresholds(ref, n: int = 5):
    """Thresholds spread over the mate and best non-mate scores, each midway between two adjacent
    subject scores (far from every score, so float32 rounding cannot flip a decision)."""
    every = np.unique([x for b in ref["best"] for x in b.values() if x < INF])
    key = [x for x in ref["mate_score"] if x < INF] + [b[-1] for b in ref["best_nonmate"] if b[-1] < INF]
    out = []
    for q in np.quantile(key, np.linspace(0.1, 0.7, n)):
        j = np.searchsorted(every, q)
        t = (every[j - 1] + every[j]) / 2
        assert np.abs(every - t).min() > 1e-5
        out.append(float(t))
    return out


def brute_rates(data, ref, valid, t, R, size_pos):
    """(counted, misses) of FNIR(N, R, T) and (counted, fps) of FPIR(N, T), by loop."""
    n_m = miss = n_nm = fp = 0
    for i, m in enumerate(data["pmate"]):
        if not valid[i]:
            continue
        if m >= 0:
            r = ref["rank"][i][size_pos]
            if r == 0:
                continue
            n_m += 1
            if not (r <= R and ref["mate_score"][i] <= t):
                miss += 1
        else:
            n_nm += 1
            if ref["best_nonmate"][i][size_pos] <= t:
                fp += 1
    return (n_m, miss), (n_nm, fp)


def brute_validity(data, policy):
    out = []
    for i, m in enumerate(data["pmate"]):
        ok = not np.isnan(data["probes"][i]).any()
        if m >= 0:
            ok = ok and not np.isnan(data["gallery"][data["gcol"] == m]).all()
        out.append(True if policy == "nonmatch" else ok)
    return np.array(out)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("policy", ["nonmatch", "exclude"])
def test_rates_match_brute_force(data, refs, distance, dtype, policy):
    ref = refs[distance]
    res = search(data["probes"], data["gallery"], data["gcol"], data["pmate"], sizes=SIZES, candidates=L,
                 distance=distance, dtype=dtype)
    valid = probe_validity(res, policy)
    np.testing.assert_array_equal(valid, brute_validity(data, policy))
    if policy == "exclude":   # failed mated probe, failed non-mated probe, probes of subject 4
        assert (~valid).sum() == 2 + (data["pmate"] == 4).sum() >= 3
    near_tie = np.array([dtype == np.float32 and not _near_tie_free(ref, i, 1e-5, lists=False)
                         for i in range(res.n_probes)])
    assert not near_tie.any(), "the seeded data has a float32 near-tie: pick another seed"
    for t in _safe_thresholds(ref):
        for s, n in enumerate(SIZES):
            (nm_, miss_), (nn_, fp_) = brute_rates(data, ref, valid, t, L, s)
            c, m = mated_misses(res, t, size_index=s, valid=valid)
            assert (int(c.sum()), int(m.sum())) == (nm_, miss_)
            c, f = nonmated_false_positives(res, t, size_index=s, valid=valid)
            assert (int(c.sum()), int(f.sum())) == (nn_, fp_)
            for R in (1, 2, 4):
                (nm_, miss_), _ = brute_rates(data, ref, valid, t, R, s)
                c, m = mated_misses(res, t, rank=R, size_index=s, valid=valid)
                assert (int(c.sum()), int(m.sum())) == (nm_, miss_)
    assert 0 < nonmated_false_positives(res, _safe_thresholds(ref)[-1], valid=valid)[1].sum()
    for s in range(len(SIZES)):
        # FNIR at rank 1 (no threshold) and CMC(k) for every k
        (nm_, miss1), _ = brute_rates(data, ref, valid, INF, 1, s)
        c, m = mated_misses(res, None, 1, size_index=s, valid=valid)
        assert (int(c.sum()), int(m.sum())) == (nm_, miss1)
        c, hits = cmc_hits(res, size_index=s, valid=valid)
        assert hits.shape == (res.n_probes, L)
        for k in range(1, L + 1):
            want = sum(1 for i in range(res.n_probes) if valid[i] and data["pmate"][i] >= 0
                       and 0 < ref["rank"][i][s] <= k)
            assert int(hits[:, k - 1].sum()) == want
        assert int(c.sum()) - int(hits[:, 0].sum()) == miss1          # FNIR(rank 1) = 1 - CMC(1)
        c, hits = cmc_hits(res, 3, size_index=s, valid=valid)
        assert hits.shape[1] == 3


def brute_false_candidates(data, ref, t, R, probes, pg, cg):
    plabels = sorted(set(pg[probes]))
    clabels = sorted(set(cg))
    fc = {(a, b): 0 for a in plabels for b in clabels}
    pw = dict(fc)
    n = {a: 0 for a in plabels}
    for i in np.flatnonzero(probes):
        n[pg[i]] += 1
        seen = set()
        for s, c in ref["top"][i][:R]:
            if s <= t and c != data["pmate"][i]:
                fc[(pg[i], cg[c])] += 1
                seen.add(cg[c])
        for b in seen:
            pw[(pg[i], b)] += 1
    return {"probe_labels": plabels, "candidate_labels": clabels,
            "false_candidates": [[fc[(a, b)] for b in clabels] for a in plabels],
            "probes_with": [[pw[(a, b)] for b in clabels] for a in plabels], "n_probes": [n[a] for a in plabels]}


@pytest.mark.parametrize("distance", DISTANCES)
def test_false_candidate_matrix(data, refs, distance):
    ref = refs[distance]
    res = search(data["probes"], data["gallery"], data["gcol"], data["pmate"], sizes=SIZES, candidates=L,
                 distance=distance)
    nonmated = data["pmate"] < 0
    t = _safe_thresholds(ref)[-1]
    for attr in ("sex", "race"):
        pg, cg = data["probe_groups"][attr], data["column_groups"][attr]
        for probes, R in ((nonmated, None), (~nonmated, None), (nonmated, 2), (np.ones(len(nonmated), bool), 3)):
            got = false_candidate_matrix(res, t, pg, cg, None if probes is nonmated and R is None else probes, rank=R)
            want = brute_false_candidates(data, ref, t, R or L, probes, pg, cg)
            assert got == want
        assert sum(map(sum, got["false_candidates"])) > 0


# --------------------------------------------------------------------------- summarise_search vs brute force


def _summary(data, res, policy="nonmatch", threshold_policy="fixed", t=None, target=0.1, audit=(), boot=None):
    P = res.n_probes
    G = len(data["gcol"])
    image_failures = (["no_face" if np.isnan(r).any() else None for r in data["gallery"]]
                      + ["no_face" if np.isnan(r).any() else None for r in data["probes"]])
    image_groups = {a: np.r_[data["column_groups"][a][data["gcol"]], data["probe_groups"][a]]
                    for a in data["probe_groups"]}
    assert len(image_failures) == G + P
    return summarise_search(
        res, probe_subjects=data["psubj"], probe_groups=data["probe_groups"], column_groups=data["column_groups"],
        threshold_policy=threshold_policy, target_fpir=target, threshold_value=t, failure_policy=policy,
        confidence=0.95, image_failures=image_failures, image_groups=image_groups, header={"experiment": "t"},
        min_count=(5, 10), intersections=[["sex", "race"]], bootstrap=boot, audit=audit)


def _check_entry(e, counted, errors, subjects):
    counted = np.asarray(counted, bool)
    k, n = int((np.asarray(errors, bool) & counted).sum()), int(counted.sum())
    assert (e["errors"], e["n"]) == (k, n)
    assert e["subjects"] == len(set(subjects[counted]))
    assert e["estimable"] == (n > 0)
    if n == 0:
        assert e["rate"] is None
        return
    assert e["rate"] == pytest.approx(k / n, abs=1e-15)
    lo = 0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k)
    assert e["ci"] == pytest.approx([lo, hi], abs=1e-12)
    if k == 0:   # exact one-sided bound: (1 - b)^n = 0.05
        assert e["upper"] == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-9)
    else:
        assert e["upper"] is None


def _per_probe(data, ref, valid, t, s):
    """Brute-force per-probe flags at size position s: (mated counted, miss at T with R = L, miss at
    rank 1, non-mated counted, false positive)."""
    P = len(data["pmate"])
    mc, miss, miss1, nc, fp = (np.zeros(P, bool) for _ in range(5))
    for i in range(P):
        if not valid[i]:
            continue
        r = ref["rank"][i][s]
        if data["pmate"][i] >= 0 and r > 0:
            mc[i] = True
            miss[i] = not (r <= L and ref["mate_score"][i] <= t)
            miss1[i] = not r <= 1
        elif data["pmate"][i] < 0:
            nc[i] = True
            fp[i] = ref["best_nonmate"][i][s] <= t
    return mc, miss, miss1, nc, fp


@pytest.mark.parametrize("policy", ["nonmatch", "exclude"])
def test_summary_matches_brute_force(data, refs, policy):
    ref = refs["euclidean"]
    res = search(data["probes"], data["gallery"], data["gcol"], data["pmate"], sizes=SIZES, candidates=L,
                 dtype=np.float64)
    t = _safe_thresholds(ref)[3]
    ta = _safe_thresholds(ref)[4]
    out = _summary(data, res, policy, t=t, audit=[{"threshold": ta, "source": "vendor"}])
    subj = data["psubj"]
    valid = brute_validity(data, policy)
    s = out["search"]
    o, gs = out["overall"], out["groups"]
    assert out["threshold"]["policy"] == "fixed" and out["threshold"]["value"] == t
    assert s["gallery_size"] == SIZES[-1] and s["candidates"] == L
    mc, miss, miss1, nc, fp = _per_probe(data, ref, valid, t, -1)
    _check_entry(o["fpir"], nc, fp, subj)
    _check_entry(o["fnir"], mc, miss, subj)
    _check_entry(o["fnir_rank1"], mc, miss1, subj)
    assert 0 < o["fpir"]["errors"] < o["fpir"]["n"]
    assert 0 < o["fnir"]["errors"] < o["fnir"]["n"]
    # failed searches
    fs = s["failed_searches"]
    n4 = int((data["pmate"] == 4).sum())       # probes of the subject whose every gallery image failed
    assert (fs["mated_probe_failed"], fs["mate_not_enrolled"], fs["nonmated_probe_failed"]) == (1, n4, 1)
    assert fs["excluded"] == (0 if policy == "nonmatch" else 2 + n4)
    for attr, pg in data["probe_groups"].items():
        groups = gs[attr]
        assert sorted(groups) == sorted(set(pg))
        for g, e in groups.items():
            m = pg == g
            _check_entry(e["fpir"], nc & m, fp, subj)
            _check_entry(e["fnir"], mc & m, miss, subj)
            _check_entry(e["fnir_rank1"], mc & m, miss1, subj)
            n_subj_nm = len(set(subj[nc & m]))
            assert e["fpir"]["small"] == (n_subj_nm < 5 or int((nc & m).sum()) < 10)
            n_subj_m = len(set(subj[mc & m]))
            assert e["fnir"]["small"] == e["fnir_rank1"]["small"] == (n_subj_m < 5 or int((mc & m).sum()) < 10)
        # CMC per group and overall
        for g, e in s["cmc"]["groups"][attr].items():
            m = pg == g
            want = [sum(1 for i in range(len(pg)) if mc[i] and m[i] and ref["rank"][i][-1] <= k) for k in range(1, L + 1)]
            assert e["hits"] == want and e["n"] == int((mc & m).sum())
            assert e["rate"] == pytest.approx([h / e["n"] for h in want])
        # false candidates at the operating threshold, non-mated and mated probes
        fc = s["false_candidates"][attr]
        cg = data["column_groups"][attr]
        want_nm = brute_false_candidates(data, ref, t, L, nc, pg, cg)
        want_m = brute_false_candidates(data, ref, t, L, valid & (data["pmate"] >= 0), pg, cg)
        assert fc["candidate_labels"] == want_nm["candidate_labels"]
        for k in ("false_candidates", "probes_with", "n_probes"):
            assert fc["nonmated"][k] == want_nm[k] and fc["mated"][k] == want_m[k]
        labels = sorted(set(cg))
        assert fc["gallery_subjects"] == {g: int((cg == g).sum()) for g in labels}
        assert fc["gallery_share"] == pytest.approx({g: (cg == g).mean() for g in labels})
    # CMC overall
    cmc = s["cmc"]
    assert cmc["ranks"] == list(range(1, L + 1))
    assert cmc["overall"]["hits"] == [int((mc & (np.array([r[-1] for r in ref["rank"]]) <= k)).sum())
                                      for k in range(1, L + 1)]
    # by gallery size
    bgs = s["by_gallery_size"]
    assert bgs["sizes"] == SIZES
    for j in range(len(SIZES)):
        mc_j, miss_j, _, nc_j, fp_j = _per_probe(data, ref, valid, t, j)
        _check_entry(bgs["overall"]["fpir"][j], nc_j, fp_j, subj)
        _check_entry(bgs["overall"]["fnir"][j], mc_j, miss_j, subj)
        for g, e in bgs["groups"]["race"].items():
            m = data["probe_groups"]["race"] == g
            _check_entry(e["fpir"][j], nc_j & m, fp_j, subj)
            _check_entry(e["fnir"][j], mc_j & m, miss_j, subj)
    assert bgs["overall"]["fnir"][0]["n"] < bgs["overall"]["fnir"][-1]["n"]      # nested: fewer mated at 12
    # intersections
    inter = out["intersections"]["sex x race"]
    lab = np.array([f"{a} x {b}" for a, b in zip(data["probe_groups"]["sex"], data["probe_groups"]["race"])])
    for g, e in inter.items():
        _check_entry(e["fpir"], nc & (lab == g), fp, subj)
    # audit at the vendor threshold
    (a,) = s["audit"]
    assert a["threshold"] == ta and a["source"] == "vendor" and a["gallery_size"] == SIZES[-1]
    mc, miss, _, nc, fp = _per_probe(data, ref, valid, ta, -1)
    _check_entry(a["overall"]["fpir"], nc, fp, subj)
    _check_entry(a["overall"]["fnir"], mc, miss, subj)
    n_false = sum(1 for i in np.flatnonzero(nc) for sc, c in ref["top"][i] if sc <= ta)
    assert a["overall"]["false_candidates"] == n_false > 0
    for attr, pg in data["probe_groups"].items():
        assert sorted(a["groups"][attr]) == sorted(set(pg[nc]))
        for g, e in a["groups"][attr].items():
            m = pg == g
            _check_entry(e["fpir"], nc & m, fp, subj)
            assert e["false_candidates"] == sum(1 for i in np.flatnonzero(nc & m) for sc, c in ref["top"][i] if sc <= ta)
            assert e["share_of_falsely_matched"] == pytest.approx((fp & m).sum() / fp.sum())
            assert e["share_of_nonmated_probes"] == pytest.approx((nc & m).sum() / nc.sum())
        assert sum(e["share_of_falsely_matched"] for e in a["groups"][attr].values()) == pytest.approx(1)
        want = brute_false_candidates(data, ref, ta, L, nc, pg, data["column_groups"][attr])
        assert a["false_candidates"][attr]["nonmated"]["false_candidates"] == want["false_candidates"]


@pytest.mark.parametrize("target", [0.05, 0.1, 0.25])
def test_global_fpir_threshold(data, refs, target):
    res = search(data["probes"], data["gallery"], data["gcol"], data["pmate"], sizes=SIZES, candidates=L,
                 dtype=np.float64)
    ref = refs["euclidean"]
    out = _summary(data, res, threshold_policy="global_fpir", target=target)
    thr = out["threshold"]
    t = thr["value"]
    # the engine's non-mated best scores are the loop's
    nm = np.flatnonzero(data["pmate"] < 0)
    best = [res.best_nonmate[i, -1] for i in nm]
    assert best == pytest.approx([ref["best_nonmate"][i][-1] for i in nm], abs=1e-10)
    n = len(best)
    fp = sum(1 for b in best if b <= t)
    assert thr["n"] == n and thr["achieved"] == fp / n and thr["rate"] == "fpir" and thr["target"] == target
    assert fp / n <= target
    nxt = min(b for b in best if b > t)           # nudge the threshold up to the next non-mated best score
    assert sum(1 for b in best if b <= nxt) / n > target
    assert out["overall"]["fpir"]["rate"] == fp / n
    assert out["overall"]["fpir"]["errors"] == fp
    assert thr["resolvable"] == (math.floor(target * n) >= 1)


def test_summary_bootstrap_uses_documented_stream(data, refs):
    res = search(data["probes"], data["gallery"], data["gcol"], data["pmate"], sizes=SIZES, candidates=L,
                 dtype=np.float64)
    t = _safe_thresholds(refs["euclidean"])[3]
    out = _summary(data, res, t=t, boot={"replicates": 300, "seed": 11})
    assert out["bootstrap"]["replicates"] == 300
    c, f = nonmated_false_positives(res, t)
    reps = loop_cluster_bootstrap(c, f, data["psubj"], 300, 11, "fpir|all")
    lo, hi = np.quantile(reps[np.isfinite(reps)], [0.025, 0.975])
    assert out["overall"]["fpir"]["ci_boot"] == pytest.approx([lo, hi], abs=1e-12)
    for e in out["groups"]["sex"].values():
        assert e["fnir"]["ci_boot"] is not None and e["fnir"]["ci_boot"][0] <= e["fnir"]["rate"] <= e["fnir"]["ci_boot"][1]


def test_ratio_to_reference_against_hand_computation(data, refs):
    """Each group's rate over the reference's (the group with most probe subjects); the interval is
    the percentile interval of the ratio of the two groups' loop-bootstrap replicates."""
    res = search(data["probes"], data["gallery"], data["gcol"], data["pmate"], sizes=SIZES, candidates=L,
                 dtype=np.float64)
    t = _safe_thresholds(refs["euclidean"])[3]
    out = _summary(data, res, t=t, boot={"replicates": 200, "seed": 4})
    valid = probe_validity(res, "nonmatch")
    for attr, labels in data["probe_groups"].items():
        groups = out["groups"][attr]
        for rate in ("fpir", "fnir"):
            block = out["disparity"][attr][f"{rate}_ratio_to_reference"]
            ok = [g for g, e in groups.items() if g not in ("unlabelled", "conflict", "multiple") and not e[rate]["small"]]
            if not ok:
                assert block["reference"] is None
                continue
            ref = max(sorted(ok), key=lambda g: groups[g][rate]["subjects"])
            assert block["reference"] == ref and set(block["by_group"]) == set(ok) - {ref}
            if rate == "fpir":
                c, e = nonmated_false_positives(res, t, valid=valid)
            else:
                c, e = mated_misses(res, t, valid=valid)
            reps = {g: loop_cluster_bootstrap(c & (labels == g), e, data["psubj"], 200, 4, f"{rate}|{attr}|{g}")[:, 0]
                    for g in ok}
            k = lambda h: (e & c & (labels == h)).sum() / (c & (labels == h)).sum()  # noqa: E731
            mm = out["disparity"][attr][f"{rate}_max_min_ratio"]
            if len(ok) >= 2 and mm["value"] is not None:   # the interval of the named highest over lowest group
                hi, lo = max(ok, key=k), min(ok, key=k)
                assert mm["value"] == pytest.approx(k(hi) / k(lo)) and mm["ci_of"] == f"{hi} / {lo}"
                with np.errstate(invalid="ignore", divide="ignore"):
                    x = reps[hi] / reps[lo]
                x = x[np.isfinite(x)]
                if mm["ci"] is not None:
                    assert mm["ci"] == pytest.approx(list(np.quantile(x, [0.025, 0.975])), abs=1e-12)
                    assert mm["ci"][0] <= mm["value"] <= mm["ci"][1]
            for g, entry in block["by_group"].items():
                if k(ref) == 0:
                    assert entry["value"] is None and "reference" in entry["reason"]
                    continue
                assert entry["value"] == pytest.approx(k(g) / k(ref))
                with np.errstate(invalid="ignore", divide="ignore"):
                    x = reps[g] / reps[ref]
                x = x[np.isfinite(x)]
                if entry["ci"] is not None:
                    assert entry["ci"] == pytest.approx(list(np.quantile(x, [0.025, 0.975])), abs=1e-12)


def test_rate_entry_clopper_pearson():
    subj = np.array([f"s{i // 3}" for i in range(60)])
    rng = np.random.default_rng(1)
    for k_target in (0, 1, 7, 60):
        counted = np.ones(60, bool)
        errors = np.zeros(60, bool)
        errors[rng.choice(60, k_target, replace=False)] = True
        e = rate_entry(counted, errors, subj, 0.95)
        _check_entry(e, counted, errors, subj)
        assert e["ci_boot"] is None and "bootstrap off" in e["ci_boot_reason"]


# --------------------------------------------------------------------------- cluster bootstrap


def loop_cluster_bootstrap(counted, errors, subjects, replicates, seed, label):
    """Reference: per replicate, multinomial draw counts of the subjects with a counted probe (the
    documented stream), then sum the probes of the drawn subjects in a loop."""
    counted = np.asarray(counted, bool)
    errors = np.asarray(errors, float)
    if counted.ndim == 1:
        counted, errors = counted[:, None], errors[:, None]
    counted = np.broadcast_to(counted, errors.shape)
    subjects = np.asarray(subjects).astype(str)
    names = sorted({subjects[i] for i in range(len(subjects)) if counted[i].any()})
    n = len(names)
    pos = {s: j for j, s in enumerate(names)}
    rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, zlib.crc32(label.encode())]))
    out = np.empty((replicates, errors.shape[1]))
    for r in range(replicates):
        draws = rng.multinomial(n, [1.0 / n] * n)
        for k in range(errors.shape[1]):
            num = den = 0.0
            for i in range(len(subjects)):
                if counted[i, k]:
                    w = draws[pos[subjects[i]]]
                    num += w * errors[i, k]
                    den += w
            out[r, k] = num / den if den else np.nan
    return out


def test_cluster_bootstrap_matches_loop():
    rng = np.random.default_rng(5)
    P = 90
    subjects = np.array([f"s{rng.integers(0, 25):02d}" for _ in range(P)])
    counted = rng.random(P) < 0.8
    errors = rng.random(P) < 0.3
    got = cluster_bootstrap_rates(counted, errors, subjects, replicates=150, seed=9, label="fnir|sex|F")
    want = loop_cluster_bootstrap(counted, errors, subjects, 150, 9, "fnir|sex|F")
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # 2-D: counted per column (e.g. gallery sizes), errors per column
    c2 = rng.random((P, 3)) < 0.7
    e2 = rng.random((P, 3)) < 0.2
    got = cluster_bootstrap_rates(c2, e2, subjects, replicates=60, seed=2**40 + 3, label="size_fpir|all")
    want = loop_cluster_bootstrap(c2, e2, subjects, 60, 2**40 + 3, "size_fpir|all")
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    # the stream depends on the label and the seed, and the point estimate is the centre
    other = cluster_bootstrap_rates(counted, errors, subjects, replicates=150, seed=9, label="fnir|sex|M")
    assert not np.array_equal(other, cluster_bootstrap_rates(counted, errors, subjects, replicates=150, seed=9,
                                                             label="fnir|sex|F"))
    # nothing counted: NaN replicates, and the interval says why
    none = cluster_bootstrap_rates(np.zeros(P, bool), errors, subjects, replicates=10)
    assert none.shape == (10, 1) and np.isnan(none).all()
    iv = bootstrap_interval(none, 0.95)[0]
    assert math.isnan(iv.lo) and iv.reason


def test_one_probe_per_subject_is_a_row_bootstrap():
    rng = np.random.default_rng(8)
    n = 120
    errors = rng.random(n) < 0.2
    subjects = np.array([f"p{i}" for i in range(n)])
    cl = cluster_bootstrap_rates(np.ones(n, bool), errors, subjects, replicates=6000, seed=1)[:, 0]
    row = errors[rng.integers(0, n, size=(6000, n))].mean(axis=1)
    assert abs(cl.mean() - row.mean()) < 0.003
    assert cl.std() == pytest.approx(row.std(), rel=0.05)
    np.testing.assert_allclose(np.quantile(cl, [0.025, 0.5, 0.975]), np.quantile(row, [0.025, 0.5, 0.975]),
                               atol=0.0085)      # one error is 1/120


def test_cluster_bootstrap_coverage_under_within_subject_correlation():
    """Subjects with strongly correlated errors (per-subject error probability ~ Beta(0.2, 1.8),
    true rate 0.1, 10 probes each): the cluster interval covers the true rate near 95%, the row
    bootstrap (probes resampled as if independent) undercovers."""
    rng = np.random.default_rng(2024)
    n_subj, m, true = 50, 10, 0.1
    subjects = np.repeat([f"s{i:02d}" for i in range(n_subj)], m)
    cover_cl = cover_row = 0
    reps = 300
    for r in range(reps):
        p = rng.beta(0.2, 1.8, size=n_subj)
        errors = rng.random((n_subj, m)) < p[:, None]
        e = errors.ravel()
        cl = cluster_bootstrap_rates(np.ones(e.size, bool), e, subjects, replicates=400, seed=r)
        lo, hi = np.quantile(cl, [0.025, 0.975])
        cover_cl += lo <= true <= hi
        W = rng.multinomial(e.size, np.full(e.size, 1 / e.size), size=400)
        row = W @ e / e.size
        lo, hi = np.quantile(row, [0.025, 0.975])
        cover_row += lo <= true <= hi
    cover_cl, cover_row = cover_cl / reps, cover_row / reps
    assert 0.88 <= cover_cl <= 0.99, cover_cl
    assert cover_row < 0.8, cover_row
    assert cover_cl - cover_row > 0.15


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors(data):
    X, G, col, mate = data["probes"], data["gallery"], data["gcol"], data["pmate"]
    with pytest.raises(ValueError, match="probe_vectors must be 2-D"):
        search(X[0], G, col, mate)
    with pytest.raises(ValueError, match="gallery_vectors must be 2-D"):
        search(X, G.ravel(), col, mate)
    with pytest.raises(ValueError, match="differ in dimension"):
        search(X, G[:, :5], col, mate)
    with pytest.raises(ValueError, match="one entry per gallery row"):
        search(X, G, col[:-1], mate)
    with pytest.raises(ValueError, match="one per probe row"):
        search(X, G, col, mate[:-1])
    with pytest.raises(ValueError, match="gallery is empty"):
        search(X, G[:0], col[:0], mate)
    gap = col.copy()
    gap[gap == 3] = 44     # column 3 has no image
    with pytest.raises(ValueError, match="every column 0..C-1"):
        search(X, G, gap, mate)
    with pytest.raises(ValueError, match="every column"):
        search(X, G, np.where(col == 0, -1, col), mate)
    with pytest.raises(ValueError, match=r"probe_mate must be -1 or a column in 0\.\.44"):
        search(X, G, col, np.where(mate == 0, 45, mate))
    with pytest.raises(ValueError, match="probe_mate must be -1"):
        search(X, G, col, np.where(mate < 0, -2, mate))
    for sizes in ([30, 12, 45], [12, 30], [12, 12, 45], [0, 45], [12, 30, 46], []):
        with pytest.raises(ValueError, match="sizes must be strictly ascending, >= 1 and end at the 45 enrolled"):
            search(X, G, col, mate, sizes=sizes)
    for L_ in (0, -3):
        with pytest.raises(ValueError, match="candidates must be >= 1"):
            search(X, G, col, mate, candidates=L_)
    res = search(X, G, col, mate, sizes=SIZES, candidates=L)
    with pytest.raises(ValueError, match="failure_policy must be 'nonmatch' or 'exclude'"):
        probe_validity(res, "drop")
    with pytest.raises(ValueError, match="rank must be >= 1"):
        mated_misses(res, 1.0, rank=0)
    with pytest.raises(ValueError, match="threshold must be finite"):
        nonmated_false_positives(res, math.inf)
    with pytest.raises(ValueError, match=r"gallery size 13 was not searched; sizes are \[12, 30, 45\]"):
        res.size_index(13)
    assert res.size_index(30) == 1 and res.size_index(None) == 2
    with pytest.raises(ValueError, match="threshold.policy=calibrated is not available with protocol=search"):
        _summary(data, res, threshold_policy="calibrated")
    only_mated = search(X[mate >= 0], G, col, mate[mate >= 0])
    with pytest.raises(ValueError, match="no non-mated probes"):
        _summary({**data, "psubj": data["psubj"][mate >= 0],
                  "probes": X[mate >= 0], "probe_groups": {a: v[mate >= 0] for a, v in data["probe_groups"].items()}},
                 only_mated, threshold_policy="global_fpir")
