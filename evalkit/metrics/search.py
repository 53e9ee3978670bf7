"""One-to-many (1:N) search: probes against a gallery of enrolled subjects, per demographic group.

The engine (:func:`search`) scores every probe against every gallery image in chunks of matrix
products (``evalkit.scoring.BlockDistance``), reduces images to enrolled subjects (a subject's
score is its best image's), and keeps per probe only what the metrics need, for every nested
gallery size at once:

- the score of the probe's mate (the enrolled subject it shows; ``+inf`` for none/failure);
- the mate's rank in each gallery (``1 + #{other enrolled subjects scoring <= the mate}``: ties
  count against the mate, the pessimistic convention);
- the best non-mate score in each gallery (a false candidate is possible iff it is <= threshold);
- the candidate list of the full gallery: the ``candidates`` nearest subjects by argpartition,
  nearest first (ties broken by enrolment order).

No loop runs over pairs; memory is bounded by ``memory_budget_mb``.

The metrics are pure functions of that result and a threshold. Scores are DISTANCES: a candidate
is returned when its distance is ``<= threshold`` and its rank is within the candidate list.
Definitions (NIST FRVT/FRTE 1:N, Grother, Ngan & Hanaoka, NISTIR 8271 "Face Recognition Vendor
Test Part 2: Identification", 2019, sec. 3; ISO/IEC 19795-1:2021 for rank-based identification):

- FNIR(N, R, T): the fraction of mated searches (the probe's subject is enrolled in the gallery
  of N subjects) whose mate is NOT returned within the top R ranks at a distance <= T.
  "FNIR at the threshold" is FNIR(N, L, T) with L the candidate-list length; "FNIR at rank 1" is
  FNIR(N, 1, no threshold) = 1 - CMC(1).
- FPIR(N, T): the fraction of non-mated searches (the probe's subject is not enrolled) that
  return one or more candidates at a distance <= T, i.e. whose best score is <= T.
- CMC(k): the rank-k identification rate, the fraction of mated searches whose mate is at rank
  <= k (no threshold); CMC(k) = 1 - FNIR(N, k, no threshold).

Failures: a probe without an embedding returns no candidates (a miss when mated, a correct
rejection when non-mated; NIST's convention for failed templates in FRVT 1:N); an enrolled subject
none of whose gallery images has an embedding can never be returned. The caller's failure policy
decides whether such probes enter the rates (``nonmatch``) or are left out and counted
(``exclude``): see ``probe_validity``.

Intervals that respect subjects: :func:`cluster_bootstrap_rates` resamples probe SUBJECTS (all of
a subject's probes together) within each group. A gallery subject that attracts many probes (a
"lamb") also correlates searches; resampling the gallery as well is not done (stated in reports).
"""

from __future__ import annotations

import hashlib
import time
import zlib
from dataclasses import dataclass

import numpy as np

from .bootstrap import percentile_interval
from .rates import MAX_THRESHOLD, check_threshold

__all__ = ["SearchResult", "search", "search_shard", "search_merge", "probe_validity", "mated_misses", "nonmated_false_positives", "cmc_hits",
           "false_candidate_matrix", "cluster_bootstrap_rates", "NO_RANK"]

#: Rank given to a mate that can never be returned (failed probe, failed enrolment).
NO_RANK = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class SearchResult:
    """What :func:`search` keeps per probe (P probes, S gallery sizes, L candidates).

    Attributes:
        sizes: (S,) gallery sizes in enrolled subjects, ascending; the last is the full gallery.
        candidates: L, the candidate-list length (at most the full gallery size).
        probe_mate: (P,) column of the probe's enrolled subject, -1 for a non-mated probe.
        probe_ok: (P,) the probe has an embedding.
        column_ok: (C,) the enrolled subject has at least one gallery image with an embedding.
        mate_score: (P,) distance to the mate (its best gallery image); +inf when non-mated, when
            the probe or every image of the mate failed.
        rank: (P, S) the mate's rank in each gallery: 0 when the probe is non-mated or its mate
            is not enrolled in that gallery; NO_RANK when the mate score is +inf.
        best_nonmate: (P, S) smallest distance to a subject other than the mate in each gallery.
        top_column, top_score: (P, L) the full gallery's candidate list, nearest first.
    """

    sizes: np.ndarray
    candidates: int
    probe_mate: np.ndarray
    probe_ok: np.ndarray
    column_ok: np.ndarray
    mate_score: np.ndarray
    rank: np.ndarray
    best_nonmate: np.ndarray
    top_column: np.ndarray
    top_score: np.ndarray
    distance: str
    seconds: float
    block_rows: int

    @property
    def n_probes(self) -> int:
        return len(self.probe_mate)

    def size_index(self, size: int | None) -> int:
        """Index of a gallery size in ``sizes`` (None: the full gallery)."""
        if size is None:
            return len(self.sizes) - 1
        hit = np.flatnonzero(self.sizes == int(size))
        if not len(hit):
            raise ValueError(f"gallery size {size} was not searched; sizes are {self.sizes.tolist()}")
        return int(hit[0])


def _check_vectors(v, name: str) -> np.ndarray:
    v = np.asarray(v)
    if v.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x dimensions), got shape {v.shape}")
    return v


def search(probe_vectors, gallery_vectors, gallery_column, probe_mate, *, sizes=None, candidates: int = 50,
           distance: str = "euclidean", probe_ok=None, gallery_ok=None, memory_budget_mb: float = 256.0,
           dtype=np.float32, device: str = "cpu") -> SearchResult:
    """Search every probe against the gallery; see the module docstring for what is kept.

    Args:
        probe_vectors: (P, d) probe embeddings.
        gallery_vectors: (G, d) gallery image embeddings.
        gallery_column: (G,) enrolled-subject column of each gallery image, 0..C-1, every column
            present. The gallery of size n is columns 0..n-1.
        probe_mate: (P,) column of each probe's subject, -1 when it is not enrolled.
        sizes: ascending gallery sizes (default: only the full gallery, C); the largest must be C.
        candidates: candidate-list length L (capped at C).
        probe_ok, gallery_ok: embedding present (default: rows without NaN).
        memory_budget_mb: bound on the score block and its temporaries.
        dtype: float32 (one GEMM per block, as the exhaustive protocol) or float64.
        device: "cpu" or "cuda" (the block products through CuPy, ``evalkit.accel``; the rest
            of the work is the same code on the CPU).

    The same work split into jobs: :func:`search_shard` searches one contiguous range of the
    probe blocks (the same blocks as here, so the same products bit for bit) and
    :func:`search_merge` puts the partials together into exactly this function's result.

    Raises:
        ValueError: shapes or columns that do not fit, sizes not ascending or not ending at C.
    """
    t0 = time.perf_counter()
    prep = _search_prep(probe_vectors, gallery_vectors, gallery_column, probe_mate, sizes, candidates, distance,
                        probe_ok, gallery_ok, memory_budget_mb, dtype)
    part = _search_blocks(prep, 0, len(prep["blocks"]), device)
    return _search_result([part], prep, time.perf_counter() - t0)


SEARCH_PARTIAL_FORMAT = "evalkit.search-partial/1"


def search_shard(probe_vectors, gallery_vectors, gallery_column, probe_mate, *, shard_index: int,
                 shard_count: int, device: str = "cpu", **kwargs) -> dict:
    """Search shard ``shard_index`` of ``shard_count`` of the probes (arguments as :func:`search`):
    a contiguous range of the probe blocks, balanced by probe count. Returns a partial (plain
    arrays: the range's mate scores, ranks, best non-mate scores and candidate lists) for
    :func:`search_merge`; ``evalkit.metrics.exhaustive.save_partial`` writes it."""
    from .exhaustive import shard_range

    prep = _search_prep(probe_vectors, gallery_vectors, gallery_column, probe_mate, **_search_kwargs(kwargs))
    rows = np.array([r1 - r0 for r0, r1 in prep["blocks"]], dtype=np.float64)
    b0, b1 = shard_range(rows, shard_index, shard_count)
    part = _search_blocks(prep, b0, b1, device)
    part["shard"] = np.array([int(shard_index), int(shard_count)], dtype=np.int64)
    return part


def search_merge(partials, probe_vectors, gallery_vectors, gallery_column, probe_mate, **kwargs) -> SearchResult:
    """The :func:`search` result from the partials of every shard, exactly (byte for byte). The
    arguments must be those the shards had (checked against each partial's signature)."""
    t0 = time.perf_counter()
    kwargs.pop("device", None)
    prep = _search_prep(probe_vectors, gallery_vectors, gallery_column, probe_mate, **_search_kwargs(kwargs))
    return _search_result(list(partials), prep, time.perf_counter() - t0)


def _search_kwargs(kwargs: dict) -> dict:
    allowed = {"sizes": None, "candidates": 50, "distance": "euclidean", "probe_ok": None, "gallery_ok": None,
               "memory_budget_mb": 256.0, "dtype": np.float32}
    unknown = set(kwargs) - set(allowed)
    if unknown:
        raise TypeError(f"unknown arguments {sorted(unknown)}")
    return {**allowed, **kwargs}


def _search_prep(probe_vectors, gallery_vectors, gallery_column, probe_mate, sizes, candidates, distance,
                 probe_ok, gallery_ok, memory_budget_mb, dtype) -> dict:
    P = _check_vectors(probe_vectors, "probe_vectors")
    G = _check_vectors(gallery_vectors, "gallery_vectors")
    if P.shape[1] != G.shape[1]:
        raise ValueError(f"probe and gallery embeddings differ in dimension ({P.shape[1]} vs {G.shape[1]})")
    col = np.asarray(gallery_column, dtype=np.int64)
    mate = np.asarray(probe_mate, dtype=np.int64)
    if col.shape != (len(G),) or mate.shape != (len(P),):
        raise ValueError("gallery_column must have one entry per gallery row and probe_mate one per probe row")
    if len(G) == 0:
        raise ValueError("the gallery is empty")
    n_col = int(col.max()) + 1
    if col.min() < 0 or len(np.unique(col)) != n_col:
        raise ValueError("gallery_column must use every column 0..C-1 (a subject without gallery images is not enrolled)")
    if mate.min(initial=-1) < -1 or mate.max(initial=-1) >= n_col:
        raise ValueError(f"probe_mate must be -1 or a column in 0..{n_col - 1}")
    sizes = np.asarray([n_col] if sizes is None else sizes, dtype=np.int64)
    if sizes.ndim != 1 or not len(sizes) or (np.diff(sizes) <= 0).any() or sizes[0] < 1 or sizes[-1] != n_col:
        raise ValueError(f"sizes must be strictly ascending, >= 1 and end at the {n_col} enrolled subjects; got {sizes.tolist()}")
    L = int(min(int(candidates), n_col))
    if L < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates!r}")
    p_ok = ~np.isnan(P).any(axis=1) if probe_ok is None else np.asarray(probe_ok, bool) & ~np.isnan(P).any(axis=1)
    g_ok = ~np.isnan(G).any(axis=1) if gallery_ok is None else np.asarray(gallery_ok, bool) & ~np.isnan(G).any(axis=1)
    column_ok = np.zeros(n_col, dtype=bool)
    column_ok[col[g_ok]] = True
    item = np.dtype(dtype).itemsize
    # bytes per block entry: the image block, its subject reduction, argpartition's copy of it and
    # its int64 indices, and a bool mask
    rows = int(max(1, min(len(P), memory_budget_mb * 2 ** 20 // max(1, (3 * item + 9) * len(G)))))
    blocks = [(r0, min(len(P), r0 + rows)) for r0 in range(0, len(P), rows)]
    h = hashlib.sha256()
    for part in (repr((len(P), len(G), n_col, L, distance, np.dtype(dtype).str, blocks, sizes.tolist())).encode(),
                 col.tobytes(), mate.tobytes(), p_ok.tobytes(), g_ok.tobytes()):
        h.update(part)
    return {"P": P, "G": G, "col": col, "mate": mate, "n_col": n_col, "sizes": sizes, "L": L, "p_ok": p_ok,
            "g_ok": g_ok, "column_ok": column_ok, "rows": rows, "blocks": blocks, "distance": distance,
            "dtype": dtype, "signature": h.hexdigest()}


def _search_blocks(prep: dict, b0: int, b1: int, device: str = "cpu") -> dict:
    """Search the probe rows of blocks ``b0:b1``: the partial of one shard."""
    from ..accel import block_distance

    P, G, col, mate, n_col, sizes, L = (prep[k] for k in ("P", "G", "col", "mate", "n_col", "sizes", "L"))
    p_ok, g_ok, distance = prep["p_ok"], prep["g_ok"], prep["distance"]
    blocks = prep["blocks"][b0:b1]
    lo = blocks[0][0] if blocks else 0
    hi = blocks[-1][1] if blocks else 0
    # gallery images sorted by column, so a subject's images are one contiguous run of columns
    order = np.argsort(col, kind="stable")
    col_sorted = col[order]
    multi = len(col) != n_col
    run_starts = np.flatnonzero(np.r_[True, col_sorted[1:] != col_sorted[:-1]])
    seg = np.r_[0, sizes[:-1]]          # column segments [sizes[j-1], sizes[j])
    # NaN rows would poison the GEMM (failed rows are set to inf below); copies only where needed:
    # a 300,000 x 512 gallery is 600 MB
    Pz = P[lo:hi] if p_ok[lo:hi].all() else np.where(p_ok[lo:hi, None], P[lo:hi], 0)
    Gz = G if g_ok.all() else np.where(g_ok[:, None], G, 0)
    if (order != np.arange(len(order))).any():
        Gz = Gz[order]
    bd = block_distance(Pz, Gz, distance, dtype=prep["dtype"], device=device)

    n_p, n_s = hi - lo, len(sizes)
    mate_score = np.full(n_p, np.inf)
    rank = np.zeros((n_p, n_s), dtype=np.int64)
    best_nonmate = np.full((n_p, n_s), np.inf)
    top_column = np.full((n_p, L), -1, dtype=np.int64)
    top_score = np.full((n_p, L), np.inf)
    bad_cols = ~g_ok[order]
    any_bad = bool(bad_cols.any())
    normalised = distance in ("cosine", "euclidean_l2")
    bounds = np.r_[seg, n_col]
    # buffers reused by every block (fresh arrays of this size cost page faults on each block):
    # the image block, the per-subject block, the partition copy, one mask
    rows = prep["rows"]
    d_buf = np.empty(rows * len(G), dtype=prep["dtype"])
    s_buf = np.empty(rows * n_col, dtype=prep["dtype"]) if multi else None
    p_buf = np.empty(rows * n_col, dtype=prep["dtype"]) if L < n_col else None
    m_buf = np.empty(rows * max(n_col, len(G)), dtype=bool)
    for a0, a1 in blocks:
        r0, r1 = a0 - lo, a1 - lo       # rows of this shard's arrays
        b = r1 - r0
        D = bd.block(r0, r1, 0, len(G), out=d_buf[: b * len(G)].reshape(b, len(G)))
        if normalised:
            nan = np.isnan(D, out=m_buf[: D.size].reshape(D.shape))
            D[nan] = np.inf             # a zero vector has no direction, so no score
        if any_bad:
            D[:, bad_cols] = np.inf
        D[~p_ok[a0:a1]] = np.inf
        # (rows, C) per subject; a subject whose every image failed is +inf already
        S = np.minimum.reduceat(D, run_starts, axis=1, out=s_buf[: b * n_col].reshape(b, n_col)) if multi else D
        m = mate[a0:a1]
        mated = np.flatnonzero(m >= 0)
        ms = np.full(b, np.inf)
        ms[mated] = S[mated, m[mated]]
        mate_score[r0:r1] = ms
        mask = m_buf[: b * n_col].reshape(b, n_col)
        # candidate list (full gallery): the L smallest, ties broken by lower column. The L-th
        # smallest score per row from an in-place partition of a copy; the list is then every
        # column scoring <= it, in column order (where more than L do, i.e. a tie straddles the
        # list's end, those < it and the lowest-column ties), sorted by score (stable).
        if L < n_col:
            P_ = p_buf[: b * n_col].reshape(b, n_col)
            np.copyto(P_, S)
            P_.partition(L - 1, axis=1)
            kth = P_[:, L - 1].copy()
            np.less_equal(S, kth[:, None], out=mask)
            pos = _true_positions(mask)
            counts = np.bincount(pos // n_col, minlength=b)
            if (counts == L).all():
                idx = (pos % n_col).reshape(b, L)
            else:
                idx = np.empty((b, L), dtype=np.int64)
                starts = np.r_[0, np.cumsum(counts)]
                cols = pos % n_col
                for i in range(b):
                    c = cols[starts[i]:starts[i + 1]]
                    if len(c) > L:
                        sc = S[i, c]
                        below = c[sc < kth[i]]
                        c = np.r_[below, c[sc == kth[i]][:L - len(below)]] if np.isfinite(kth[i]) else \
                            np.r_[below, c[~(sc < kth[i])][:L - len(below)]]
                        c.sort()
                    idx[i] = c
        else:
            idx = np.broadcast_to(np.arange(n_col), (b, n_col)).copy()
        vals = np.take_along_axis(S, idx, axis=1)
        o = np.argsort(vals, axis=1, kind="stable")
        top_column[r0:r1] = np.take_along_axis(idx, o, axis=1)
        top_score[r0:r1] = np.take_along_axis(vals, o, axis=1)
        # the mate out of the way: best non-mate per nested gallery, and the mate's rank in each
        S[mated, m[mated]] = np.inf
        best_nonmate[r0:r1] = np.minimum.accumulate(np.minimum.reduceat(S, seg, axis=1), axis=1)
        if len(mated):
            le = np.less_equal(S, ms[:, None], out=mask)
            ahead = np.cumsum(np.stack([np.count_nonzero(le[mated, s0:s1] if len(mated) < b else le[:, s0:s1], axis=1)
                                        for s0, s1 in zip(bounds[:-1], bounds[1:])], axis=1), axis=1)
            rk = 1 + ahead
            rk[~np.isfinite(ms[mated])] = NO_RANK
            rk[m[mated, None] >= sizes[None, :]] = 0          # mate not enrolled in that gallery
            rank[r0 + mated] = rk
        del S, D
    top_column[~np.isfinite(top_score)] = -1   # an infinite "candidate" is no candidate
    return {"format": np.array(SEARCH_PARTIAL_FORMAT), "signature": np.array(prep["signature"]),
            "blocks": np.array([b0, b1], dtype=np.int64), "rows": np.array([lo, hi], dtype=np.int64),
            "mate_score": mate_score, "rank": rank, "best_nonmate": best_nonmate, "top_column": top_column,
            "top_score": top_score}


def _true_positions(mask: np.ndarray) -> np.ndarray:
    """Flat positions of the True entries of a C-contiguous bool array, ascending. Sparse masks
    (a candidate list per row of a wide block) are found a machine word at a time: 8 bytes are
    tested at once and only the words holding a True are looked into."""
    flat = mask.reshape(-1)
    if flat.size % 8:
        return np.flatnonzero(flat)
    words = np.flatnonzero(flat.view(np.uint64))
    pos = (words[:, None] * 8 + np.arange(8)).reshape(-1)
    return pos[flat[pos]]


def _search_result(partials: list, prep: dict, seconds: float) -> SearchResult:
    for p in partials:
        if str(p.get("format", "")) != SEARCH_PARTIAL_FORMAT:
            raise ValueError(f"not a search partial (format {p.get('format')!r})")
        if str(p["signature"]) != prep["signature"]:
            raise ValueError("a partial was computed for other inputs or settings (signature mismatch): "
                             "merge with the same probes, gallery and protocol settings as the shards")
    partials = sorted(partials, key=lambda p: int(p["blocks"][0]))
    at = 0
    for p in partials:
        b0, b1 = (int(x) for x in p["blocks"])
        if b1 > b0 and b0 != at:
            raise ValueError(f"shards do not cover the probe blocks once (block {min(at, b0)} missing or twice)")
        at = max(at, b1)
    if at != len(prep["blocks"]):
        raise ValueError(f"shards cover probe blocks 0..{at - 1} of {len(prep['blocks'])}: a shard is missing")
    keys = ("mate_score", "rank", "best_nonmate", "top_column", "top_score")
    full = {k: (partials[0][k] if len(partials) == 1 else np.concatenate([p[k] for p in partials])) for k in keys}
    return SearchResult(sizes=prep["sizes"], candidates=prep["L"], probe_mate=prep["mate"], probe_ok=prep["p_ok"],
                        column_ok=prep["column_ok"], distance=prep["distance"], seconds=seconds,
                        block_rows=prep["rows"], **full)


# --------------------------------------------------------------------------- metrics at a threshold


def probe_validity(res: SearchResult, failure_policy: str) -> np.ndarray:
    """Probes that enter the rates. ``nonmatch``: every probe (a failure returns no candidates:
    a miss when mated, a correct rejection when non-mated). ``exclude``: probes without an
    embedding and mated probes whose mate has no gallery embedding are left out (the caller
    counts them)."""
    if failure_policy == "nonmatch":
        return np.ones(res.n_probes, dtype=bool)
    if failure_policy != "exclude":
        raise ValueError(f"failure_policy must be 'nonmatch' or 'exclude', got {failure_policy!r}")
    mate_ok = np.ones(res.n_probes, dtype=bool)
    m = res.probe_mate >= 0
    mate_ok[m] = res.column_ok[res.probe_mate[m]]
    return res.probe_ok & mate_ok


def _threshold(threshold) -> float:
    return MAX_THRESHOLD if threshold is None else check_threshold(threshold)


def mated_misses(res: SearchResult, threshold=None, rank: int | None = None, size_index: int = -1,
                 valid=None) -> tuple[np.ndarray, np.ndarray]:
    """Per probe: (counted, miss) for FNIR(N, R, T) at gallery ``sizes[size_index]``.

    counted: a mated probe whose mate is enrolled in that gallery (and ``valid``); miss: its mate
    is not returned at rank <= R (default: the candidate-list length) with distance <= T
    (``None``: no threshold). FNIR = misses / counted (NISTIR 8271 sec. 3)."""
    R = res.candidates if rank is None else int(rank)
    if R < 1:
        raise ValueError(f"rank must be >= 1, got {rank!r}")
    t = _threshold(threshold)
    rk = res.rank[:, size_index]
    counted = (res.probe_mate >= 0) & (rk > 0)
    if valid is not None:
        counted &= np.asarray(valid, bool)
    hit = counted & (rk <= R) & (res.mate_score <= t)
    return counted, counted & ~hit


def nonmated_false_positives(res: SearchResult, threshold, size_index: int = -1,
                             valid=None) -> tuple[np.ndarray, np.ndarray]:
    """Per probe: (counted, false_positive) for FPIR(N, T) at gallery ``sizes[size_index]``.

    counted: a non-mated probe (and ``valid``); false positive: it returns at least one candidate,
    i.e. its best score in that gallery is <= T (NISTIR 8271 sec. 3)."""
    t = _threshold(threshold)
    counted = res.probe_mate < 0
    if valid is not None:
        counted &= np.asarray(valid, bool)
    return counted, counted & (res.best_nonmate[:, size_index] <= t)


def cmc_hits(res: SearchResult, max_rank: int | None = None, size_index: int = -1,
             valid=None) -> tuple[np.ndarray, np.ndarray]:
    """Per probe: (counted, hits) with hits (P, K) True where the mate is at rank <= k, k = 1..K
    (K = ``max_rank``, default the candidate-list length). CMC(k) = hits[:, k-1].sum() / counted.sum()
    (ISO/IEC 19795-1 rank-k identification rate; no threshold)."""
    K = res.candidates if max_rank is None else int(max_rank)
    counted, _ = mated_misses(res, None, 1, size_index, valid)
    rk = res.rank[:, size_index]
    hits = counted[:, None] & (rk[:, None] <= np.arange(1, K + 1)[None, :])
    return counted, hits


def false_candidate_matrix(res: SearchResult, threshold, probe_groups, column_groups, probes=None,
                           rank: int | None = None) -> dict:
    """Who is falsely returned for whom: among ``probes`` (a mask; default every non-mated probe),
    the candidates returned at distance <= T within the top R ranks (default the whole list)
    that are not the probe's mate, by (probe group) x (candidate group).

    Returns ``{probe_labels, candidate_labels, false_candidates, probes_with, n_probes}``:
    false_candidates[i][j] counts returned false candidates of group j for probes of group i;
    probes_with[i][j] counts probes of group i with at least one false candidate of group j;
    n_probes[i] counts the probes of group i. Only the full gallery's candidate list is kept, so
    this is at the full gallery size."""
    t = _threshold(threshold)
    R = res.candidates if rank is None else min(int(rank), res.candidates)
    sel = (res.probe_mate < 0) if probes is None else np.asarray(probes, bool)
    pg = np.asarray(probe_groups).astype(str)
    cg = np.asarray(column_groups).astype(str)
    plabels = np.unique(pg[sel]).tolist()
    clabels = np.unique(cg).tolist()
    cols, sc = res.top_column[sel, :R], res.top_score[sel, :R]
    returned = (sc <= t) & (cols >= 0) & (cols != res.probe_mate[sel, None])
    pi = np.searchsorted(plabels, pg[sel])
    ci = np.searchsorted(clabels, cg[np.where(cols >= 0, cols, 0)])
    k, m = len(plabels), len(clabels)
    fc = np.zeros((k, m), dtype=np.int64)
    rows = np.broadcast_to(pi[:, None], cols.shape)
    np.add.at(fc, (rows[returned], ci[returned]), 1)
    has = np.zeros((len(pi), m), dtype=bool)
    has[np.broadcast_to(np.arange(len(pi))[:, None], cols.shape)[returned], ci[returned]] = True
    pw = np.zeros((k, m), dtype=np.int64)
    np.add.at(pw, pi, has.astype(np.int64))
    return {"probe_labels": plabels, "candidate_labels": clabels, "false_candidates": fc.tolist(),
            "probes_with": pw.tolist(), "n_probes": np.bincount(pi, minlength=k).tolist()}


# --------------------------------------------------------------------------- intervals


def _group_seed(seed: int, label: str) -> np.random.SeedSequence:
    """A per-group random stream: a group's interval does not depend on which other groups exist."""
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(label.encode())])


def cluster_bootstrap_rates(counted, errors, subjects, *, replicates: int = 1000, seed: int = 0,
                            label: str = "all") -> np.ndarray:
    """Replicates of rate(s) under the probe-subject cluster bootstrap.

    ``counted`` (P,) or (P, K) marks the probes in each rate's denominator, ``errors`` (P,) or
    (P, K) the events (misses, false positives, rank-k hits; only counted entries are used),
    ``subjects`` (P,) the probe's subject. Each replicate draws as many subjects as have a counted
    probe, uniformly with replacement, and takes every probe of a drawn subject (the cluster
    bootstrap, Davison & Hinkley 1997, sec. 3.8): rate_k = sum_s c_s e_sk / sum_s c_s n_sk with
    c_s the subject's draw count and e_sk, n_sk its events and counted probes. Returns
    (replicates, K) rates, NaN where a replicate has no counted probe; seeded per ``(seed, label)``.
    Vectorised: one multinomial draw and two matrix products per block of replicates."""
    e = np.asarray(errors, dtype=np.float64)
    P = e.shape[0]
    e2 = e.reshape(P, -1)
    c2 = np.broadcast_to(np.asarray(counted, bool).reshape(P, -1), e2.shape)
    anyc = c2.any(axis=1)
    subj = np.asarray(subjects).astype(str)[anyc]
    if not len(subj):
        return np.full((replicates, e2.shape[1]), np.nan)
    _, code = np.unique(subj, return_inverse=True)
    n_c = int(code.max()) + 1
    E = np.zeros((n_c, e2.shape[1]))
    N = np.zeros((n_c, e2.shape[1]))
    np.add.at(E, code, np.where(c2[anyc], e2[anyc], 0.0))
    np.add.at(N, code, c2[anyc].astype(np.float64))
    rng = np.random.default_rng(_group_seed(seed, label))
    out = np.empty((replicates, e2.shape[1]))
    block = max(1, min(replicates, 2_000_000 // n_c))
    for s in range(0, replicates, block):
        r = min(block, replicates - s)
        W = rng.multinomial(n_c, np.full(n_c, 1.0 / n_c), size=r).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:s + r] = (W @ E) / (W @ N)
    return out


def bootstrap_interval(reps: np.ndarray, confidence: float):
    """Percentile interval per column of :func:`cluster_bootstrap_rates` output: list of
    ``bootstrap.Interval``."""
    return [percentile_interval(reps[:, k], confidence, what="the rate") for k in range(reps.shape[1])]
