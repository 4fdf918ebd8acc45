"""Stage adapter: float NCHW -> float NCHW between two models' contracts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _checks as ck
from . import _cpu
from .prepost import METHODS, POST_INTERPOLATIONS

__all__ = ["adapt"]


def adapt(
    batch: np.ndarray,
    size: tuple[int, int] | None = None,
    *,
    scale: float | Sequence[float] = 1.0,
    offset: float | Sequence[float] = 0.0,
    src_order: str = "RGB",
    dst_order: str = "RGB",
    dtype: object = None,
    interpolation: str = "bilinear",
    out: np.ndarray | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """float32/float16 ``(N, C, H, W)`` -> float32/float16 ``(N, C, H', W')``, one fused pass.

    Per output value: resize to ``size = (H', W')`` (None: keep) with ``interpolation``
    ("bilinear" as :func:`postprocess`, a zero-weight tap never read; "area"), then
    ``y = value * scale[c] + offset[c]`` per OUTPUT channel ``c`` (build them with
    :class:`Affine`, e.g. ``range_mapping(-1, 1).inverse().then(normalization(...))``).
    ``src_order != dst_order`` swaps channels 0 and 2 (C must be 3 or 4). ``dtype``: output
    float32 or float16 (default: the batch's, or ``out``'s); float16 results are the float32
    results rounded to nearest even. ``batch`` may have any (aligned) strides; ``out`` is a
    C-contiguous array of exactly the output shape, filled and returned.
    """
    fn = "adapt"
    batch = ck.check_float_batch(fn, batch, channels=None)
    n, c, h, w = batch.shape
    if c > ck.MAX_CHANNELS:
        raise ValueError(
            f"{fn}: batch has {c} channels (shape {batch.shape}); expected at most "
            f"{ck.MAX_CHANNELS}"
        )
    oh, ow = (h, w) if size is None else ck.check_size(fn, "size", size)
    if size is None and not (h <= ck.MAX_SIZE and w <= ck.MAX_SIZE):
        raise ValueError(f"{fn}: batch has shape {batch.shape}; larger than {ck.MAX_SIZE}")
    sc = ck.per_channel(fn, "scale", scale, c)
    of = ck.per_channel(fn, "offset", offset, c)
    swap = ck.check_order(fn, "src_order", src_order) != ck.check_order(fn, "dst_order", dst_order)
    if swap and c not in (3, 4):
        raise ValueError(
            f"{fn}: src_order {src_order!r} != dst_order {dst_order!r} needs 3 or 4 channels; "
            f"batch has {c}"
        )
    method = METHODS[ck.check_choice(fn, "interpolation", interpolation, POST_INTERPOLATIONS)]
    nthreads = ck.check_threads(fn, num_threads)
    dt = None if dtype is None else ck.check_dtype(fn, "dtype", dtype)
    shape = (n, c, oh, ow)
    if out is None:
        out = np.empty(shape, dtype=batch.dtype if dt is None else dt)
    else:
        ck.check_out(fn, out, shape, dt, [("batch", batch)])
    chmap = np.arange(c, dtype=np.intp)
    if swap:
        chmap[[0, 2]] = chmap[[2, 0]]
    f16 = batch.dtype == ck.F16
    src = batch.view(np.uint16) if f16 else batch
    _cpu.adapt_batch(src, f16, ck.as_bytes(out), out.itemsize, chmap, sc, of, method, nthreads)
    return out
