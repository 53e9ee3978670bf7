"""Block products on a GPU: the same distance blocks as ``evalkit.scoring.BlockDistance``,
computed by CuPy (``pip install evalkit[gpu]``) and handed back as numpy arrays, so the
exhaustive and search engines keep one accounting (per-group counts, kept scores, candidate
lists) whichever device scored the block.

``device="cpu"`` is ``BlockDistance`` itself. ``device="cuda"`` moves the prepared matrices to
the GPU once, then per block runs the same operations in the same order and precision (a float32
GEMM by cuBLAS, ``-2 g + |x|^2 + |y|^2``, clip at 0, square root; or ``1 - g`` for cosine) and
copies the block back. cuBLAS sums the products in another order than the CPU's BLAS, so a
score can differ from the CPU one in its last bit or two (about 1e-7 relative): counts are
identical to the CPU path except for a comparison whose score lies within that of a threshold,
and identical between a GPU run and its sharded GPU run (same blocks). chi2 has no product form
and stays on the CPU.
"""

from __future__ import annotations

import numpy as np

from .scoring import BlockDistance

DEVICES = ("cpu", "cuda")


def gpu_unavailable_reason() -> str | None:
    """Why ``device="cuda"`` cannot run here (None: it can)."""
    try:
        import cupy
    except Exception as exc:   # not installed, or a CUDA library missing
        return f"CuPy is not importable ({type(exc).__name__}: {exc}); pip install 'evalkit[gpu]' on a GPU machine"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no CUDA device"
    except Exception as exc:
        return f"no usable CUDA device ({type(exc).__name__}: {exc})"
    return None


class ArrayModuleBlocks:
    """``BlockDistance.block`` written against an array module ``xp`` (CuPy on a GPU). With
    ``xp=numpy`` it is the CPU computation, operation for operation (tests check that)."""

    def __init__(self, prepared: BlockDistance, xp, to_host=None):
        if prepared.distance == "chi2":
            raise ValueError("chi2 has no matrix-product form: use device=cpu")
        self.distance = prepared.distance
        self.dtype = prepared.dtype
        self.xp = xp
        self.to_host = to_host or (lambda a, out: np.copyto(out, a) if out is not None else a)
        self.X = xp.asarray(prepared.X)
        self.Y = self.X if prepared.Y is prepared.X else xp.asarray(prepared.Y)
        if self.distance in ("euclidean", "euclidean_l2"):
            self.sx = xp.asarray(prepared.sx)
            self.sy = self.sx if prepared.sy is prepared.sx else xp.asarray(prepared.sy)

    def block(self, r0: int, r1: int, c0: int, c1: int, out: np.ndarray | None = None) -> np.ndarray:
        xp = self.xp
        g = xp.matmul(self.X[r0:r1], self.Y[c0:c1].T)
        if self.distance == "cosine":
            xp.subtract(1, g, out=g)
        else:
            g *= -2
            g += self.sx[r0:r1, None]
            g += self.sy[None, c0:c1]
            xp.maximum(g, 0, out=g)
            xp.sqrt(g, out=g)
        if out is None:
            out = np.empty(g.shape, dtype=self.dtype)
        self.to_host(g, out)
        return out


def block_distance(X, Y, distance: str, dtype=np.float64, chunk_bytes: int = 64 << 20, device: str = "cpu"):
    """A ``BlockDistance`` (device cpu) or its GPU twin (device cuda; raises with the reason when
    no GPU / CuPy is there). Both have ``.block(r0, r1, c0, c1, out=None) -> numpy array``."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    bd = BlockDistance(X, Y, distance, dtype=dtype, chunk_bytes=chunk_bytes)
    if device == "cpu":
        return bd
    why = gpu_unavailable_reason()
    if why:
        raise RuntimeError(f"device=cuda: {why}")
    import cupy

    def to_host(a, out):
        a.get(out=out)

    return ArrayModuleBlocks(bd, cupy, to_host)
