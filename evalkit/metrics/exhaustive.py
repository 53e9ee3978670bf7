"""Exhaustive all-vs-all verification counts, per group, without keeping every score.

Every unordered pair ``i < j`` of the images given is compared once: a *genuine* (mated)
comparison when both images show the same subject, an *impostor* (non-mated) one otherwise. On
LFW (13,233 images) that is 87.5 million comparisons, too many to hand over as a score table, so
scoring and counting are fused here: the embedding matrix is scored in row blocks (one float32
matrix product of a block of rows against all later rows, upper triangle only; see
``evalkit.scoring.BlockDistance``). Per block only three passes touch every score: gathering the
genuine ones (by index), one ``score <= max(thresholds)`` test and one ``score < cut-off`` test
for the kept impostor list. The matches found are binned per label cell and threshold with one
``np.bincount`` over combined integer codes; totals per cell come from the label counts
(combinatorics), minus the genuine comparisons. No Python loop runs over pairs and no array
larger than a block is built.

Definitions (the conventions of ``evalkit.metrics.rates`` and ``evalkit.metrics.groups``):

- scores are distances; a comparison is a match when ``score <= threshold``;
- false non-match: a genuine comparison that is not a match; false match: an impostor comparison
  that is a match (ISO/IEC 19795-1:2021, ISO/IEC 2382-37);
- a comparison touching an image that failed to enrol (``ok`` False) has no score and is never a
  match. ``failure_policy="nonmatch"`` counts it as a non-match (a false non-match when genuine,
  ISO/IEC 19795-1 generalised rates, as NIST FRVT/FRTE 1:1 reports do); ``"exclude"`` leaves it
  out of the rates. Either way the number of such comparisons is reported (``failed_*``);
- group cell ``(a, b)`` of an attribute holds the comparisons whose two images are labelled ``a``
  and ``b``; group ``g`` is the diagonal cell ``(g, g)`` (both sides labelled g); the off-diagonal
  cells are the cross-group ("mixed") comparisons, kept as a full symmetric label x label matrix
  (NIST FRVT's cross-demographic false-match matrices, NISTIR 8280 section 5);
- one threshold for everyone, chosen on all impostor comparisons at a target FMR (NISTIR 8280);
  see ``ExhaustiveResult.threshold_at_fmr``.

Scores kept. Genuine scores (few: 242 thousand on LFW) are always kept with their pair indices.
Impostor scores are kept in full when asked (``keep_scores=True``) or, with ``"auto"``, when
24 bytes per impostor comparison (float32 score + two int32 indices, doubled while the list is
sorted) fit in half the memory budget. Otherwise only the ``topk`` smallest impostor distances are kept, exactly, with their
pair indices. That is enough for everything below the cut-off ``impostor_cutoff`` (the largest kept
distance): every impostor comparison with a distance below it is in the list, so

- ``threshold_at_fmr`` is exact (identical to ``rates.threshold_at_fmr`` on all impostor scores)
  for any target with ``floor(target * n_impostor) < topk``, i.e. for FMRs down to ``1 / n`` and
  up to about ``topk / n`` (on LFW with the default topk of 1,000,000: up to 1.1%);
- ``counts_at`` gives exact overall and per-group counts at any threshold below the cut-off.

Why top-k rather than a histogram: a fixed-bin histogram can only place a threshold to within
one bin, while a verification audit needs the low-FMR end exactly, which is exactly the region
the top-k list covers. Above the cut-off (FMR above about ``topk / n``) the list says nothing;
asking there raises and says how large ``topk`` must be. Counts at the ``thresholds`` given to
``exhaustive_counts`` are exact at any value.

Precision: distances are computed in float32 with the norm expansion, so they agree with
``evalkit.scoring.pair_distances`` (float64) to about 1e-6 (dlib-scale vectors); only a score
within that of a threshold could be classified differently than by the float64 path. All
counting against the float32 scores is exact (a float64 threshold ``t`` is replaced by the largest
float32 ``<= t``, which accepts exactly the same float32 scores). A float32 product can differ in
its last bit between block shapes, so results are bit-reproducible for a given ``block_rows``
(or memory budget, from which it is derived), BLAS and machine.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Mapping, Sequence

import numpy as np

from ..scoring import _check_distance, _check_failure_policy
from .rates import check_labels as _labels
from .rates import MAX_THRESHOLD, ThresholdChoice, _check_target, check_threshold

__all__ = ["Counts", "CrossCounts", "ExhaustiveResult", "exhaustive_counts", "exhaustive_protocol",
           "exhaustive_shard", "exhaustive_merge", "save_partial", "load_partial", "shard_range",
           "float32_threshold"]

_MB = 2 ** 20
#: bytes per impostor score in the kept list at its peak: 12 kept (float32 distance + two int32
#: indices), doubled while the list is sorted (a permutation and one re-ordered copy)
_BYTES_PER_KEPT_PEAK = 24
#: working bytes per comparison in a block: float32 scores, a bool mask, and room for the
#: index arrays of the matches / kept scores found in it (few at audit thresholds)
_BYTES_PER_PAIR = 16
#: the same when every impostor score is kept (flat, row and column indices of each score)
_BYTES_PER_PAIR_KEEP = 32


def float32_threshold(thresholds) -> np.ndarray:
    """The largest float32 ``<= t`` for each float64 ``t``: ``x32 <= t`` iff ``x32 <= result``."""
    t = np.asarray(thresholds, dtype=np.float64)
    with np.errstate(over="ignore"):
        t32 = t.astype(np.float32)            # beyond float32's range: inf, then stepped down below
    too_big = t32.astype(np.float64) > t
    t32[too_big] = np.nextafter(t32[too_big], np.float32(-np.inf))
    return t32


# ----------------------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class Counts:
    """Counts of one set of comparisons at each threshold, under the result's failure policy.

    ``n_genuine`` / ``n_impostor`` include the failed comparisons under ``nonmatch`` and leave
    them out under ``exclude``; ``false_nonmatches[k]`` counts genuine comparisons with score
    ``> thresholds[k]`` (failures included under ``nonmatch``), ``false_matches[k]`` impostor
    comparisons with score ``<= thresholds[k]`` (failures are never matches). ``failed_genuine``
    and ``failed_impostor`` count the comparisons touching a failed image, under either policy.
    """

    n_genuine: int
    n_impostor: int
    false_nonmatches: np.ndarray
    false_matches: np.ndarray
    failed_genuine: int
    failed_impostor: int

    def fnmr(self) -> np.ndarray:
        """FNMR per threshold (NaN without genuine comparisons)."""
        return self.false_nonmatches / self.n_genuine if self.n_genuine else np.full(len(self.false_nonmatches), np.nan)

    def fmr(self) -> np.ndarray:
        """FMR per threshold (NaN without impostor comparisons)."""
        return self.false_matches / self.n_impostor if self.n_impostor else np.full(len(self.false_matches), np.nan)

    def as_dict(self) -> dict:
        return {"n_genuine": self.n_genuine, "n_impostor": self.n_impostor,
                "false_nonmatches": self.false_nonmatches.tolist(), "false_matches": self.false_matches.tolist(),
                "failed_genuine": self.failed_genuine, "failed_impostor": self.failed_impostor}


def _counts(comp_g, fail_g, fnm_c, comp_i, fail_i, fm, policy) -> Counts:
    add = policy == "nonmatch"
    fail_g, fail_i = int(fail_g), int(fail_i)
    return Counts(
        n_genuine=int(comp_g) + (fail_g if add else 0),
        n_impostor=int(comp_i) + (fail_i if add else 0),
        false_nonmatches=np.asarray(fnm_c, dtype=np.int64) + (fail_g if add else 0),
        false_matches=np.asarray(fm, dtype=np.int64),
        failed_genuine=fail_g, failed_impostor=fail_i)


@dataclass(frozen=True, eq=False)
class CrossCounts:
    """One attribute's label x label count matrices (symmetric: ``M[a, b] == M[b, a]`` counts the
    comparisons with one image labelled ``a`` and the other ``b``; the diagonal is the groups).

    ``completed_*`` count comparisons with a score, ``failed_*`` those touching a failed image;
    ``false_nonmatches`` / ``false_matches`` (``(L, L, T)``) are among the completed comparisons.
    ``group``, ``mixed`` and ``cell`` apply the failure policy and return ``Counts``.
    """

    attribute: str
    labels: tuple
    failure_policy: str
    completed_genuine: np.ndarray
    failed_genuine: np.ndarray
    completed_impostor: np.ndarray
    failed_impostor: np.ndarray
    false_nonmatches: np.ndarray
    false_matches: np.ndarray

    def cell(self, a: str, b: str) -> Counts:
        i, j = self.labels.index(a), self.labels.index(b)
        return _counts(self.completed_genuine[i, j], self.failed_genuine[i, j], self.false_nonmatches[i, j],
                       self.completed_impostor[i, j], self.failed_impostor[i, j], self.false_matches[i, j],
                       self.failure_policy)

    def group(self, label: str) -> Counts:
        """Comparisons whose two images are both labelled ``label``."""
        return self.cell(label, label)

    def mixed(self) -> Counts:
        """Every comparison whose two images carry different labels (the upper triangle)."""
        iu = np.triu_indices(len(self.labels), k=1)
        return _counts(self.completed_genuine[iu].sum(), self.failed_genuine[iu].sum(),
                       self.false_nonmatches[iu].sum(axis=0), self.completed_impostor[iu].sum(),
                       self.failed_impostor[iu].sum(), self.false_matches[iu].sum(axis=0), self.failure_policy)


@dataclass(frozen=True, eq=False)
class ExhaustiveResult:
    """What ``exhaustive_counts`` found. Indices refer to the rows of the embedding matrix given.

    Attributes:
        thresholds: the thresholds counted at, in the order given.
        overall: ``Counts`` over all comparisons.
        groups: attribute -> ``CrossCounts``.
        genuine_a, genuine_b, genuine_scores, genuine_failed: every genuine comparison (``a < b``);
            the score of a failed one is ``+inf``.
        impostor_a, impostor_b, impostor_scores: the kept completed impostor comparisons, sorted by
            score (all of them when ``impostor_complete``, else the ``topk`` smallest); int32
            indices (``a < b``) and float32 scores, to keep a full list of 87 M at 12 bytes each.
        impostor_cutoff: every completed impostor score ``< impostor_cutoff`` is in the list
            (``inf`` when complete).
        n_images, n_failed_images, n_comparisons: sizes; ``seconds``, ``block_rows``, ``n_blocks``:
            how the work went.
    """

    thresholds: np.ndarray
    distance: str
    failure_policy: str
    overall: Counts
    groups: dict
    genuine_a: np.ndarray
    genuine_b: np.ndarray
    genuine_scores: np.ndarray
    genuine_failed: np.ndarray
    impostor_a: np.ndarray
    impostor_b: np.ndarray
    impostor_scores: np.ndarray
    impostor_complete: bool
    impostor_cutoff: float
    n_images: int
    n_failed_images: int
    n_comparisons: int
    seconds: float
    block_rows: int
    n_blocks: int
    _labels: dict = field(repr=False, default_factory=dict)   # attribute -> (labels, codes per row)
    _ok: np.ndarray | None = field(repr=False, default=None)

    @property
    def n_impostor(self) -> int:
        """Impostor comparisons under the failure policy (failed ones included under nonmatch)."""
        return self.overall.n_impostor

    def threshold_at_fmr(self, target_fmr: float) -> ThresholdChoice:
        """The threshold at a target FMR, set on all impostor comparisons.

        Definition and tie rule exactly as ``evalkit.metrics.rates.threshold_at_fmr`` (NIST
        FRVT/FRTE 1:1, NISTIR 8280): with ``s`` all impostor scores sorted (failed ones ``+inf``
        under ``nonmatch``), ``n`` their number and ``k = floor(target * n)``, the threshold is the
        largest float below ``s[k]``. Exact whenever ``s[k]`` is among the kept scores, i.e.
        ``k < len(impostor_scores)`` or all impostor scores are kept.

        Raises:
            ValueError: bad target; no impostor comparison; ``k`` beyond the kept top-k (the
            message says how large ``topk`` would have to be).
        """
        target = _check_target(target_fmr)
        n = self.n_impostor
        if n == 0:
            raise ValueError("threshold_at_fmr needs at least one impostor comparison")
        k = math.floor(Fraction(repr(target)) * n)
        s = self.impostor_scores
        if k < len(s):
            threshold = float(np.nextafter(np.float64(s[k]), -np.inf))
        elif self.impostor_complete:
            threshold = MAX_THRESHOLD   # s[k] is a failure (+inf) or k == n: every finite score matches
        else:
            raise ValueError(
                f"a target FMR of {target:g} over {n:,} impostor comparisons needs the {k + 1:,} smallest "
                f"impostor scores; only the {len(s):,} smallest were kept: rerun with topk >= {k + 1} "
                "or keep_scores=True")
        achieved = int(np.searchsorted(s, float32_threshold([threshold])[0], side="right")) / n
        return ThresholdChoice(threshold=threshold, target_fmr=target, achieved_fmr=achieved,
                               n_impostor=n, resolvable=bool(k >= 1))

    def counts_at(self, thresholds: Sequence[float]) -> tuple[Counts, dict]:
        """Exact overall and per-attribute counts at any thresholds below ``impostor_cutoff``.

        Computed from the kept genuine scores (all of them), the kept impostor scores and the
        exact per-cell impostor totals, so no second pass over the embeddings is needed.
        Returns ``(overall, {attribute: CrossCounts})`` in the shapes of ``overall`` / ``groups``.

        Raises:
            ValueError: a threshold at or above the cut-off when not every impostor score is kept.
        """
        t = np.asarray([check_threshold(x) for x in thresholds], dtype=np.float64)
        if not self.impostor_complete and len(t) and t.max() >= self.impostor_cutoff:
            raise ValueError(f"threshold {t.max()!r} is not below the kept impostor cut-off "
                             f"{self.impostor_cutoff!r}: counts there need a larger topk")
        T = len(t)
        order = np.argsort(t, kind="stable")
        t32 = float32_threshold(t[order])
        inv = np.empty(T, dtype=np.int64)
        inv[order] = np.arange(T)
        g_done = ~self.genuine_failed
        # bin = number of thresholds below the score; a match at threshold k iff bin <= k
        g_bin = np.searchsorted(t32, self.genuine_scores[g_done].astype(np.float32), side="left")
        # impostor scores are sorted: only the prefix up to the largest threshold can match
        n_pre = int(np.searchsorted(self.impostor_scores, t32[-1], side="right")) if T else 0
        i_bin = np.searchsorted(t32, self.impostor_scores[:n_pre], side="left")
        g_match = np.cumsum(np.bincount(g_bin, minlength=T + 1))[:T]
        i_match = np.cumsum(np.bincount(i_bin, minlength=T + 1))[:T]
        overall = _counts(g_done.sum(), self.overall.failed_genuine, (g_done.sum() - g_match)[inv],
                          self._completed_impostor_total(), self.overall.failed_impostor, i_match[inv],
                          self.failure_policy)
        groups = {}
        ga, gb = self.genuine_a[g_done], self.genuine_b[g_done]
        ia, ib = self.impostor_a[:n_pre], self.impostor_b[:n_pre]
        for attr, cc in self.groups.items():
            labels, codes = self._labels[attr]
            L = len(labels)
            gm = np.cumsum(_cell_bincount(codes[ga], codes[gb], L, g_bin, T + 1), axis=2)[:, :, :T]
            fm = np.cumsum(_cell_bincount(codes[ia], codes[ib], L, i_bin, T + 1), axis=2)[:, :, :T]
            fnm = cc.completed_genuine[:, :, None] - gm
            groups[attr] = CrossCounts(attr, cc.labels, self.failure_policy, cc.completed_genuine,
                                       cc.failed_genuine, cc.completed_impostor, cc.failed_impostor,
                                       fnm[:, :, inv], fm[:, :, inv])
        return overall, groups

    def _completed_impostor_total(self) -> int:
        o = self.overall
        return o.n_impostor - (o.failed_impostor if self.failure_policy == "nonmatch" else 0)


def _symmetrise_upper(m: np.ndarray) -> np.ndarray:
    """Copy the upper triangle (``a <= b``) onto the lower one."""
    L = m.shape[0]
    il = np.tril_indices(L, k=-1)
    m = m.copy()
    m[il] = m[(il[1], il[0])]
    return m


# ----------------------------------------------------------------------------------------- engine


def _encode(values, n: int, name: str) -> tuple[tuple, np.ndarray]:
    labels, codes = np.unique(_labels(values, n, name), return_inverse=True)   # the group label rule
    return tuple(str(x) for x in labels), codes.reshape(-1).astype(np.int64)


def _pair_totals(codes: np.ndarray, L: int) -> np.ndarray:
    """Unordered pairs ``i < j`` per label cell, as a symmetric (L, L) matrix (combinatorics)."""
    h = np.bincount(codes, minlength=L).astype(np.int64)
    out = np.outer(h, h)
    out[np.diag_indices(L)] = h * (h - 1) // 2
    return out


def _cell_bincount(la, lb, L: int, extra: np.ndarray | None = None, n_extra: int = 1) -> np.ndarray:
    """Count items per unordered label cell (and per ``extra`` bin): symmetric (L, L[, n_extra])."""
    lo, hi = np.minimum(la, lb), np.maximum(la, lb)
    code = lo * L + hi
    if extra is not None:
        code = code * n_extra + extra
    c = np.bincount(code, minlength=L * L * n_extra).astype(np.int64)
    c = c.reshape((L, L, n_extra)) if extra is not None else c.reshape(L, L)
    return _symmetrise_upper(c)


def exhaustive_counts(
    emb: np.ndarray,
    ok: np.ndarray,
    subjects: np.ndarray,
    groups: Mapping[str, np.ndarray] | None = None,
    thresholds: Sequence[float] = (),
    distance: str = "euclidean",
    failure_policy: str = "nonmatch",
    block_rows: int | None = None,
    memory_budget_mb: float = 1024.0,
    keep_scores: bool | str = "auto",
    topk: int = 1_000_000,
    device: str = "cpu",
) -> ExhaustiveResult:
    """Count every genuine and impostor comparison among the rows of ``emb``, per group.

    How: rows are ordered by subject (so each subject's genuine pairs sit in a contiguous run),
    then scored block by block (rows ``r0:r1`` against rows ``r0:n``, float32 GEMM, upper triangle
    only). Per block, only three things touch every score: recording the genuine ones (gathered
    by index), one ``score <= max(thresholds)`` test, and one ``score < cut-off`` test for the kept
    impostor list. The matches found (few at audit thresholds) are binned per label cell and
    threshold with one ``np.bincount`` on combined codes. Totals per cell need no pass at all:
    pairs per label cell follow from the label counts (``h_a h_b``, ``h_a (h_a - 1) / 2``), minus
    the genuine ones, which are all kept.

    The same work split into jobs: :func:`exhaustive_shard` scores one contiguous range of the
    blocks (the same blocks, so the same float32 products) and returns a partial result,
    :func:`exhaustive_merge` combines the partials into exactly this function's result. This
    function is that merge of a single shard.

    Args:
        emb: ``(n, d)`` embeddings (rows of failed images may hold anything, e.g. NaN).
        ok: ``(n,)`` bool, False for an image that failed to enrol. A non-finite row marked ok
            raises ``ValueError``.
        subjects: ``(n,)`` subject id per row; equal ids make a genuine comparison.
        groups: attribute -> ``(n,)`` label per row (strings; ``"unlabelled"`` etc. are ordinary
            labels). ``None``: overall counts only.
        thresholds: finite distance thresholds to count at (any order; counts come back in it).
        distance: one of ``evalkit.scoring.DISTANCES``.
        failure_policy: ``"nonmatch"`` or ``"exclude"`` (see the module docstring).
        block_rows: rows per block; ``None`` derives it from ``memory_budget_mb``.
        memory_budget_mb: rough bound on the working memory: blocks get a quarter of it (about 16
            bytes per comparison in a block), the full impostor list, when kept under ``"auto"``,
            at most a half.
        keep_scores: ``True`` keep every impostor score; ``False`` keep the ``topk`` smallest;
            ``"auto"`` keep all when ``24 * n_impostor`` bytes (12 kept per score, doubled while
            sorted) fit in half the budget.
        topk: how many of the smallest impostor scores to keep when not keeping all.
        device: ``"cpu"`` (numpy) or ``"cuda"``: the block products on a GPU through CuPy
            (``evalkit.accel``); the accounting is the same code on the CPU.

    Returns:
        ``ExhaustiveResult``; counts at ``thresholds`` are exact (for the float32 scores).
    """
    t_start = time.perf_counter()
    plan = _make_plan(emb, ok, subjects, groups, thresholds, distance, failure_policy, block_rows,
                      memory_budget_mb, keep_scores, topk)
    part = _score_blocks(plan, emb, 0, len(plan.blocks), device)
    return _merge(plan, [part], time.perf_counter() - t_start)


def exhaustive_shard(emb, ok, subjects, groups=None, *, shard_index: int, shard_count: int, device: str = "cpu",
                     **kwargs) -> dict:
    """Score shard ``shard_index`` of ``shard_count`` of the block grid (arguments as
    :func:`exhaustive_counts`); returns a partial result for :func:`exhaustive_merge` (plain
    arrays, see :func:`save_partial`).

    The blocks are those of the one-process run (same rows per block, so the same float32
    products, bit for bit, on the same BLAS), split into contiguous ranges of about equal numbers
    of comparisons. A partial holds the genuine scores of its blocks, its impostor matches at the
    thresholds (row, column, threshold bin), and its kept impostor scores: all of them under
    ``keep_scores``, else its own ``topk`` smallest, which contain every score of the global
    ``topk`` smallest that falls in its blocks.
    """
    plan = _make_plan(emb, ok, subjects, groups, kwargs.pop("thresholds", ()), kwargs.pop("distance", "euclidean"),
                      kwargs.pop("failure_policy", "nonmatch"), kwargs.pop("block_rows", None),
                      kwargs.pop("memory_budget_mb", 1024.0), kwargs.pop("keep_scores", "auto"),
                      kwargs.pop("topk", 1_000_000))
    if kwargs:
        raise TypeError(f"unknown arguments {sorted(kwargs)}")
    b0, b1 = shard_range(plan.pair_counts, shard_index, shard_count)
    part = _score_blocks(plan, emb, b0, b1, device)
    part["shard"] = np.array([int(shard_index), int(shard_count)], dtype=np.int64)
    return part


def exhaustive_merge(partials: Sequence[dict], ok, subjects, groups=None, **kwargs) -> ExhaustiveResult:
    """Combine the partials of every shard into the :func:`exhaustive_counts` result, exactly
    (same counts, same kept scores in the same order, byte for byte). ``ok``, ``subjects``,
    ``groups`` and the keyword arguments must be those the shards were run with (checked: each
    partial carries a signature of the plan); the embeddings are not needed.

    Raises:
        ValueError: a partial from another plan, or shards missing / overlapping.
    """
    t_start = time.perf_counter()
    kwargs.pop("device", None)
    n = len(np.asarray(ok))
    plan = _make_plan(np.zeros((n, 1), np.float32), ok, subjects, groups, kwargs.pop("thresholds", ()),
                      kwargs.pop("distance", "euclidean"), kwargs.pop("failure_policy", "nonmatch"),
                      kwargs.pop("block_rows", None), kwargs.pop("memory_budget_mb", 1024.0),
                      kwargs.pop("keep_scores", "auto"), kwargs.pop("topk", 1_000_000), check_emb=False)
    if kwargs:
        raise TypeError(f"unknown arguments {sorted(kwargs)}")
    return _merge(plan, list(partials), time.perf_counter() - t_start)


def shard_range(costs: np.ndarray, index: int, count: int) -> tuple[int, int]:
    """Items ``[b0, b1)`` of shard ``index`` of ``count``: contiguous ranges of about equal total
    cost (an item belongs to the shard its cost's midpoint falls in). Deterministic; depends only
    on the costs and the count. Some shards are empty when there are fewer items than shards."""
    index, count = int(index), int(count)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index must be in 0..count-1 and count >= 1, got index {index}, count {count}")
    c = np.asarray(costs, dtype=np.float64)
    if not len(c):
        return 0, 0
    total = c.sum()
    mid = np.cumsum(c) - c / 2
    owner = np.minimum((mid * count // total).astype(np.int64), count - 1) if total > 0 else \
        np.minimum(np.arange(len(c)) * count // len(c), count - 1)
    b0 = int(np.searchsorted(owner, index, side="left"))
    b1 = int(np.searchsorted(owner, index, side="right"))
    return b0, b1


PARTIAL_FORMAT = "evalkit.exhaustive-partial/1"


def save_partial(path, partial: dict) -> None:
    """Write a partial (exhaustive or search) as an npz of plain arrays (no pickle), atomically."""
    from ..shard import save_npz_atomic

    save_npz_atomic(path, partial)


def load_partial(path) -> dict:
    """Read a partial written by :func:`save_partial`."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@dataclass
class _Plan:
    n: int
    distance: str
    failure_policy: str
    thr: np.ndarray
    t_order: np.ndarray
    t32: np.ndarray
    enc: dict
    ok: np.ndarray
    perm: np.ndarray
    okp: np.ndarray
    gi: np.ndarray
    gj: np.ndarray
    g_start: np.ndarray
    g_fail: np.ndarray
    n_ok: int
    n_imp_done: int
    keep_all: bool
    K: int
    blocks: list
    pair_counts: np.ndarray
    signature: str


def _make_plan(emb, ok, subjects, groups, thresholds, distance, failure_policy, block_rows, memory_budget_mb,
               keep_scores, topk, check_emb: bool = True) -> _Plan:
    """Everything about the work that does not need a score: checks, row order, genuine pairs,
    the blocks. Cheap (linear in images + genuine pairs), so each shard and the merge redo it."""
    _check_distance(distance)
    _check_failure_policy(failure_policy)
    if keep_scores not in (True, False, "auto") or isinstance(keep_scores, (int, float)) and not isinstance(keep_scores, bool):
        raise ValueError(f"keep_scores must be True, False or 'auto', got {keep_scores!r}")
    if int(topk) < 1:
        raise ValueError(f"topk must be >= 1, got {topk!r}")
    if block_rows is not None and int(block_rows) < 1:
        raise ValueError(f"block_rows must be >= 1 or None, got {block_rows!r}")
    if not memory_budget_mb > 0:
        raise ValueError(f"memory_budget_mb must be > 0, got {memory_budget_mb!r}")
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise ValueError(f"emb must be 2-D (n, d), got shape {emb.shape}")
    n = emb.shape[0]
    ok = np.asarray(ok)
    if ok.shape != (n,) or ok.dtype != bool:
        raise ValueError(f"ok must be a bool array of length {n}")
    if check_emb:
        bad = np.flatnonzero(ok & ~np.isfinite(emb).all(axis=1))
        if len(bad):
            raise ValueError(f"row {bad[0]} is marked ok but holds a non-finite value")
    thr = np.asarray([check_threshold(x) for x in thresholds], dtype=np.float64)
    t_order = np.argsort(thr, kind="stable")
    t32 = float32_threshold(thr[t_order])           # sorted, float32: same decisions on float32 scores
    _, subj_codes = _encode(subjects, n, "subjects")
    enc = {a: _encode(v, n, f"groups[{a!r}]") for a, v in dict(groups or {}).items()}

    # order rows by subject so each subject's genuine pairs form a contiguous run
    perm = np.argsort(subj_codes, kind="stable")
    sc = subj_codes[perm]
    okp = ok[perm]
    # every genuine pair (i < j, permuted rows), sorted by i; row r's pairs are gi[start[r]:start[r+1]]
    run_end = np.searchsorted(sc, sc, side="right")
    per_row = (run_end - np.arange(n) - 1).astype(np.int64)
    gi = np.repeat(np.arange(n, dtype=np.int64), per_row)
    first = np.cumsum(per_row) - per_row
    gj = gi + 1 + (np.arange(len(gi)) - np.repeat(first, per_row))
    g_start = np.r_[first, len(gi)].astype(np.int64)
    g_fail = ~(okp[gi] & okp[gj])
    n_ok = int(okp.sum())
    n_imp_done = n_ok * (n_ok - 1) // 2 - int((~g_fail).sum())

    keep_all = bool(keep_scores is True or (keep_scores == "auto"
                                            and n_imp_done * _BYTES_PER_KEPT_PEAK <= 0.5 * memory_budget_mb * _MB))
    per_pair = _BYTES_PER_PAIR_KEEP if keep_all else _BYTES_PER_PAIR
    pairs_per_block = max(1, int(0.25 * memory_budget_mb * _MB / per_pair))
    blocks = []
    r0 = 0
    while r0 < n - 1:
        m = n - r0
        b = int(block_rows) if block_rows is not None else max(1, pairs_per_block // m)
        r1 = min(n, r0 + b)
        blocks.append((r0, r1))
        r0 = r1
    pair_counts = np.array([(r1 - r0) * (n - r0) for r0, r1 in blocks], dtype=np.float64)
    h = hashlib.sha256()
    for part in (repr((n, distance, failure_policy, keep_all, int(topk), blocks)).encode(), t32.tobytes(),
                 okp.tobytes(), sc.tobytes(), perm.tobytes()):
        h.update(part)
    return _Plan(n=n, distance=distance, failure_policy=failure_policy, thr=thr, t_order=t_order, t32=t32, enc=enc,
                 ok=ok, perm=perm, okp=okp, gi=gi, gj=gj, g_start=g_start, g_fail=g_fail, n_ok=n_ok,
                 n_imp_done=n_imp_done, keep_all=keep_all, K=int(topk), blocks=blocks, pair_counts=pair_counts,
                 signature=h.hexdigest())


def _score_blocks(plan: _Plan, emb, b0: int, b1: int, device: str = "cpu") -> dict:
    """Score blocks ``b0:b1`` of the plan: the partial result of one shard (see exhaustive_shard)."""
    from ..accel import block_distance

    n, T, K, t32 = plan.n, len(plan.t32), plan.K, plan.t32
    t_max = t32[-1] if T else None
    blocks = plan.blocks[b0:b1]
    X = np.array(np.asarray(emb)[plan.perm], dtype=np.float32)
    X[~plan.okp] = np.nan                 # failed rows give NaN scores: never kept, never matched
    bd = block_distance(X, None, plan.distance, dtype=np.float32, chunk_bytes=64 * _MB, device=device)
    g_lo = int(plan.g_start[blocks[0][0]]) if blocks else 0
    g_hi = int(plan.g_start[blocks[-1][1]]) if blocks else 0
    g_scores = np.empty(g_hi - g_lo, dtype=np.float32)
    gi, gj, g_start = plan.gi, plan.gj, plan.g_start
    m_rows: list[np.ndarray] = []            # matches at the largest threshold: rows, cols, bins
    m_cols: list[np.ndarray] = []
    m_bins: list[np.ndarray] = []
    kept_d: list[np.ndarray] = []
    kept_r: list[np.ndarray] = []
    kept_c: list[np.ndarray] = []
    n_kept = 0
    dropped = False
    cutoff_finite = False
    cutoff = np.float32(np.inf)              # every impostor score < cutoff is kept
    buf = mask = None
    for r0, r1 in blocks:
        m = n - r0
        b = r1 - r0
        if buf is None or buf.size < b * m:
            buf = np.empty(b * m, dtype=np.float32)
            mask = np.empty(b * m, dtype=bool)      # reused: a fresh mask per block costs page faults
        D = bd.block(r0, r1, r0, n, out=buf[: b * m].reshape(b, m))
        flat_d = D.reshape(-1)
        # not comparisons: the diagonal and below in the leading square (j <= i)
        for i in range(b):
            D[i, : i + 1] = np.inf
        # genuine comparisons: record them all, then take them out of the impostor path
        gs = slice(g_start[r0], g_start[r1])
        grow, gcol = gi[gs] - r0, gj[gs] - r0
        g_scores[g_start[r0] - g_lo:g_start[r1] - g_lo] = D[grow, gcol]
        D[grow, gcol] = np.inf
        # impostor matches at the largest threshold (NaN = failed, +inf = not an impostor: never)
        if T:
            sel = _true_positions(np.less_equal(flat_d, t_max, out=mask[: flat_d.size]))
            if len(sel):
                m_rows.append(sel // m + r0)
                m_cols.append(sel % m + r0)
                m_bins.append(np.searchsorted(t32, flat_d[sel], side="left").astype(np.int16))
        # impostor scores: all, or the smallest K so far (ties at the cut-off: lowest rows first)
        if plan.keep_all:
            sel = np.flatnonzero(flat_d < cutoff)            # cutoff is +inf: every completed impostor
            q, rem = np.divmod(sel, m)
            kept_d.append(flat_d[sel])
            kept_r.append((q + r0).astype(np.int32))
            kept_c.append((rem + r0).astype(np.int32))
            del sel, q, rem
        else:
            if not np.isfinite(cutoff) and flat_d.size >= K:
                kth = np.partition(flat_d, K - 1)[K - 1]     # NaN sorts last, +inf before it
                if np.isfinite(kth):
                    cutoff = np.nextafter(kth, np.float32(np.inf))
                    cutoff_finite = True
            sel = _true_positions(np.less(flat_d, cutoff, out=mask[: flat_d.size]))
            if len(sel):
                q, rem = np.divmod(sel, m)
                kept_d.append(flat_d[sel])
                kept_r.append((q + r0).astype(np.int32))
                kept_c.append((rem + r0).astype(np.int32))
                n_kept += len(sel)
                if n_kept > 2 * K:
                    d, r, c = _smallest_k(np.concatenate(kept_d), np.concatenate(kept_r), np.concatenate(kept_c), K)
                    kept_d[:], kept_r[:], kept_c[:] = [d], [r], [c]
                    cutoff, n_kept, dropped, cutoff_finite = d.max(), len(d), True, True
    del buf, mask
    d = _cat(kept_d, np.float32)
    del kept_d
    r, c = _cat(kept_r, np.int32), _cat(kept_c, np.int32)
    del kept_r, kept_c
    if not plan.keep_all and len(d) > K:
        d, r, c = _smallest_k(d, r, c, K)
        dropped = True
    return {"format": np.array(PARTIAL_FORMAT), "signature": np.array(plan.signature),
            "blocks": np.array([b0, b1], dtype=np.int64), "g_range": np.array([g_lo, g_hi], dtype=np.int64),
            "g_scores": g_scores, "m_rows": _cat(m_rows, np.int64), "m_cols": _cat(m_cols, np.int64),
            "m_bins": _cat(m_bins, np.int16), "kept_d": d, "kept_r": r, "kept_c": c,
            "dropped": np.array(dropped), "cutoff_finite": np.array(cutoff_finite)}


def _true_positions(mask: np.ndarray) -> np.ndarray:
    """Positions of the True entries of a 1-D bool array, ascending; sparse masks are scanned a
    machine word (8 entries) at a time."""
    if mask.size % 8:
        return np.flatnonzero(mask)
    words = np.flatnonzero(mask.view(np.uint64))
    pos = (words[:, None] * 8 + np.arange(8)).reshape(-1)
    return pos[mask[pos]]


def _cat(parts: list, dtype) -> np.ndarray:
    if not parts:
        return np.empty(0, dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _smallest_k(d, r, c, K):
    """The K smallest scores in the order (score, row, column): deterministic whichever way the
    candidates were gathered, so shards and one process keep the same list."""
    if len(d) <= K:
        return d, r, c
    kth = np.partition(d, K - 1)[K - 1]
    below = np.flatnonzero(d < kth)
    tie = np.flatnonzero(d == kth)
    need = K - len(below)
    if len(tie) > need:
        tie = tie[np.lexsort((c[tie], r[tie]))[:need]]
    sel = np.concatenate([below, tie])
    return d[sel], r[sel], c[sel]


def _merge(plan: _Plan, partials: list, seconds: float) -> ExhaustiveResult:
    """Combine partials covering every block once into the result (see exhaustive_merge)."""
    n, T, K = plan.n, len(plan.t32), plan.K
    for p in partials:
        if str(p.get("format", "")) != PARTIAL_FORMAT:
            raise ValueError(f"not an exhaustive partial (format {p.get('format')!r})")
        if str(p["signature"]) != plan.signature:
            raise ValueError("a partial was computed for other inputs or settings (signature mismatch): "
                             "merge with the same images, labels, thresholds and protocol settings as the shards")
    partials = sorted(partials, key=lambda p: (int(p["blocks"][0]), int(p["blocks"][1])))
    at = 0
    for p in partials:
        b0, b1 = (int(x) for x in p["blocks"])
        if b0 != at and b1 > b0:
            raise ValueError(f"shards do not cover the block grid once: blocks {at}..{b0 - 1} missing or "
                             f"{b0}..{at - 1} twice" if b0 > at else f"blocks {b0}..{at - 1} are in two shards")
        at = max(at, b1)
    if at != len(plan.blocks):
        raise ValueError(f"shards cover blocks 0..{at - 1} of {len(plan.blocks)}: a shard is missing")
    gi, gj, g_fail, okp, perm, t32 = plan.gi, plan.gj, plan.g_fail, plan.okp, plan.perm, plan.t32
    g_scores = np.empty(len(gi), dtype=np.float32)
    for p in partials:
        lo, hi = (int(x) for x in p["g_range"])
        g_scores[lo:hi] = p["g_scores"]
    d_all = _cat([p["kept_d"] for p in partials], np.float32)
    r_all = _cat([p["kept_r"] for p in partials], np.int32)
    c_all = _cat([p["kept_c"] for p in partials], np.int32)
    dropped = any(bool(p["dropped"]) for p in partials)
    finite = any(bool(p["cutoff_finite"]) for p in partials)
    if plan.keep_all:
        if len(d_all) != plan.n_imp_done:   # the combinatorial count and the scores found must agree
            raise RuntimeError(f"internal error: {len(d_all)} impostor scores found, {plan.n_imp_done} expected")
        o = np.argsort(d_all)               # the input is in block order however it was sharded
    else:
        if len(d_all) > K:
            d_all, r_all, c_all = _smallest_k(d_all, r_all, c_all, K)
            dropped = True
        o = np.lexsort((c_all, r_all, d_all))
    d_all, r_all, c_all = d_all[o], r_all[o], c_all[o]
    del o
    complete = plan.keep_all or not (dropped or finite)
    cutoff_out = float("inf") if complete or not len(d_all) else float(d_all.max())

    mr = _cat([p["m_rows"] for p in partials], np.int64)
    mc = _cat([p["m_cols"] for p in partials], np.int64)
    mb = _cat([p["m_bins"] for p in partials], np.int16).astype(np.int64)
    g_bin = (np.searchsorted(t32, np.where(g_fail, np.inf, g_scores), side="left")
             if T else np.zeros(len(gi), np.int64))   # thresholds below the score, as for impostors
    failure_policy = plan.failure_policy

    def cross(attr: str, labels: tuple, codes: np.ndarray) -> CrossCounts:
        L = len(labels)
        all_pairs = _pair_totals(codes, L)
        done_pairs = _pair_totals(codes[okp], L)
        g_all = _cell_bincount(codes[gi], codes[gj], L)
        g_done = _cell_bincount(codes[gi][~g_fail], codes[gj][~g_fail], L)
        # completed genuine per threshold bin -> false non-matches at k: bins > k
        gb = _cell_bincount(codes[gi][~g_fail], codes[gj][~g_fail], L, g_bin[~g_fail], T + 1)
        fnm = g_done[:, :, None] - np.cumsum(gb, axis=2)[:, :, :T]
        fm = np.cumsum(_cell_bincount(codes[mr], codes[mc], L, mb, T) if T else np.zeros((L, L, 0), np.int64), axis=2)
        return CrossCounts(attr, labels, failure_policy,
                           completed_genuine=g_done, failed_genuine=g_all - g_done,
                           completed_impostor=done_pairs - g_done,
                           failed_impostor=(all_pairs - done_pairs) - (g_all - g_done),
                           false_nonmatches=fnm, false_matches=fm)

    inv = np.empty(T, dtype=np.int64)
    inv[plan.t_order] = np.arange(T)          # back to the caller's threshold order
    overall = _reorder_counts(cross("", ("all",), np.zeros(n, np.int64)).group("all"), inv)
    group_counts = {a: _reorder_cross(cross(a, lab, codes[perm]), inv) for a, (lab, codes) in plan.enc.items()}

    ga, gb_ = perm[gi], perm[gj]
    perm32 = perm.astype(np.int32)
    ia, ib = perm32[r_all], perm32[c_all]
    del r_all, c_all
    lo = np.minimum(ia, ib)
    np.maximum(ia, ib, out=ib)
    ia = lo
    max_rows = max((r1 - r0 for r0, r1 in plan.blocks), default=0)
    return ExhaustiveResult(
        thresholds=plan.thr, distance=plan.distance, failure_policy=failure_policy, overall=overall,
        groups=group_counts,
        genuine_a=np.minimum(ga, gb_), genuine_b=np.maximum(ga, gb_),
        genuine_scores=np.where(g_fail, np.inf, g_scores.astype(np.float64)), genuine_failed=g_fail,
        impostor_a=ia, impostor_b=ib,
        impostor_scores=d_all, impostor_complete=bool(complete), impostor_cutoff=cutoff_out,
        n_images=n, n_failed_images=int(n - plan.n_ok), n_comparisons=n * (n - 1) // 2,
        seconds=seconds, block_rows=max_rows, n_blocks=len(plan.blocks),
        _labels=dict(plan.enc), _ok=plan.ok.copy())


def _reorder_counts(c: Counts, inv) -> Counts:
    return Counts(c.n_genuine, c.n_impostor, c.false_nonmatches[inv], c.false_matches[inv],
                  c.failed_genuine, c.failed_impostor)


def _reorder_cross(c: CrossCounts, inv) -> CrossCounts:
    return CrossCounts(c.attribute, c.labels, c.failure_policy, c.completed_genuine, c.failed_genuine,
                       c.completed_impostor, c.failed_impostor, c.false_nonmatches[:, :, inv],
                       c.false_matches[:, :, inv])


def exhaustive_protocol(samples, emb: np.ndarray, ok: np.ndarray, max_images_per_subject: int | None = None,
                        seed: int = 0, **kwargs) -> tuple[np.ndarray, ExhaustiveResult]:
    """The exhaustive protocol over a ``Samples`` table: cap, then compare everything.

    Keeps at most ``max_images_per_subject`` images per subject with
    ``evalkit.data.protocols.cap_images_per_subject`` and ``np.random.default_rng(seed)`` (the same
    rows ``generated_pairs`` keeps with that seed), then runs ``exhaustive_counts`` on them with
    every attribute of the table as a grouping. ``emb`` / ``ok`` are per row of ``samples``.

    Returns ``(kept, result)``: ``kept`` the sorted sample rows compared; the result's indices
    (``genuine_a`` ...) are mapped back to sample rows.
    """
    from ..data.protocols import cap_images_per_subject

    kept = cap_images_per_subject(samples, max_images_per_subject, np.random.default_rng(seed))
    res = exhaustive_counts(np.asarray(emb)[kept], np.asarray(ok)[kept], samples.subjects[kept],
                            {a: v[kept] for a, v in samples.attributes.items()}, **kwargs)
    labels = {a: (lab, _expand(codes, kept, len(samples))) for a, (lab, codes) in res._labels.items()}
    ok_full = np.zeros(len(samples), dtype=bool)
    ok_full[kept] = res._ok
    kept32 = kept.astype(np.int32)   # the impostor list can be long: int32 indices, as in the result
    res = replace(
        res, genuine_a=kept[res.genuine_a], genuine_b=kept[res.genuine_b],
        impostor_a=kept32[res.impostor_a], impostor_b=kept32[res.impostor_b], _labels=labels, _ok=ok_full)
    return kept, res


def _expand(codes, kept, n):
    out = np.full(n, -1, dtype=np.int64)
    out[kept] = codes
    return out
