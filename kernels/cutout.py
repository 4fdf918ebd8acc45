"""Cut-out kernels: a photo and its alpha -> the RGBA cut-out; the edges under a matte's outline.

* :func:`cutout` -- colour (3 or 4 channels, RGB or BGR) + alpha -> RGBA in one pass, every
  pixel whose alpha is 0 all zero (no colour where nothing shows: smaller PNGs, nothing hidden
  in transparent pixels);
* :func:`outline_edges` -- the mean 3x3 Sobel magnitude of the grey photo along the outline of
  ``alpha >= cut`` and a percentile of the magnitude over the photo (every 4th pixel): a
  salient-object net draws an outline even on a blank photo, and there it crosses no edge.

Every argument is validated first (``ValueError``/``TypeError`` naming the function, the
argument, the value and what is expected). Numerics: docs/kernels.md, "Cut-out kernels".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks as ck
from . import _cpu
from .alpha import _real, check_plane

__all__ = ["OutlineEdges", "cutout", "outline_edges"]


def cutout(
    colour: np.ndarray, alpha: np.ndarray, *, swap: bool = False, num_threads: int | None = None
) -> np.ndarray:
    """uint8 (H, W, 3|4) colour + uint8 (H, W) alpha -> C-contiguous (H, W, 4): the colour's
    first three channels (reversed when ``swap``: RGB <-> BGR), then ``alpha``; all four
    bytes 0 where ``alpha`` is 0. A 4th colour channel is ignored (combine it into ``alpha``)."""
    fn = "cutout"
    if isinstance(colour, np.ndarray) and (colour.ndim != 3 or colour.shape[2] not in (3, 4)):
        raise ValueError(
            f"{fn}: colour has shape {colour.shape}; expected (H, W, 3) or (H, W, 4) uint8 "
            "(grey photos: np.repeat(grey[:, :, None], 3, axis=2))"
        )
    img = ck.check_image(fn, 0, colour, name="colour")
    a = check_plane(fn, "alpha", alpha, img.shape[:2])
    nthreads = ck.check_threads(fn, num_threads)
    out = np.empty((*img.shape[:2], 4), dtype=np.uint8)
    _cpu.cutout_rgba(img, a, out, bool(swap), nthreads)
    return out


@dataclass(frozen=True)
class OutlineEdges:
    """What :func:`outline_edges` measured."""

    outline_mean: float | None
    """Mean Sobel magnitude along the outline; None when ``alpha`` has no outline."""
    outline_pixels: int
    """How many pixels the outline has."""
    typical: float
    """The asked percentile of the Sobel magnitude of every 4th pixel (even rows, even
    columns), ``np.percentile``'s linear rule."""


def outline_edges(
    grey: np.ndarray,
    alpha: np.ndarray,
    *,
    cut: int = 128,
    percentile: float = 75.0,
    num_threads: int | None = None,
) -> OutlineEdges:
    """Edge strength of the grey photo under the outline of ``alpha >= cut``, and typically.

    ``grey``: uint8 (H, W), e.g. ``cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)``; ``alpha``:
    uint8 (H, W). The outline is ``cv2.morphologyEx(mask, MORPH_GRADIENT, 3x3 ones) > 0`` of
    ``mask = alpha >= cut`` (the window clipped at the borders); the magnitude is
    ``sqrt(dx^2 + dy^2)`` of ``cv2.spatialGradient``'s 3x3 Sobel derivatives (BORDER_REFLECT_101),
    exact in integers, its square root in float32 and the outline's sum in float64. One pass,
    no full-size derivative or mask planes.
    """
    fn = "outline_edges"
    if not isinstance(grey, np.ndarray):
        raise TypeError(
            f"{fn}: grey has type {type(grey).__name__}; expected a numpy uint8 array (H, W)"
        )
    if grey.dtype != ck.U8 or grey.ndim != 2 or 0 in grey.shape:
        raise ValueError(
            f"{fn}: grey has dtype {grey.dtype} and shape {grey.shape}; expected a non-empty "
            "uint8 (H, W) image (cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))"
        )
    a = check_plane(fn, "alpha", alpha, grey.shape)
    if not ck.is_int(cut) or not 1 <= int(cut) <= 255:  # type: ignore[call-overload]
        raise ValueError(f"{fn}: cut is {cut!r}; expected an int in 1..255")
    q = _real(fn, "percentile", percentile, 0.0, 100.0, "a number in [0, 100]")
    nthreads = ck.check_threads(fn, num_threads)
    h, w = grey.shape
    sums = np.empty(h, dtype=np.float64)
    counts = np.empty(h, dtype=np.int64)
    squares = np.empty(((h + 1) // 2, (w + 1) // 2), dtype=np.int32)
    rows = np.ascontiguousarray(grey), np.ascontiguousarray(a)
    _cpu.edge_rows(*rows, int(cut), sums, counts, squares, nthreads)  # type: ignore[call-overload]
    pixels = int(counts.sum())
    mean = float(sums.sum()) / pixels if pixels else None
    return OutlineEdges(mean, pixels, _percentile(squares.reshape(-1), q))


def percentile_of_squares(squares: np.ndarray, q: float) -> float:
    """``np.percentile(np.sqrt(squares), q)`` (linear interpolation) without a sort: the
    square root keeps the order, so the two order statistics around the ``q``-th position
    come from a histogram selection over the int32 ``squares`` (in [0, 2^22))."""
    fn = "percentile_of_squares"
    if not isinstance(squares, np.ndarray) or squares.dtype.kind not in "iu":
        raise TypeError(f"{fn}: squares must be a numpy integer array")
    if squares.size == 0:
        raise ValueError(f"{fn}: no values")
    if squares.min() < 0 or squares.max() >= 1 << 22:
        raise ValueError(f"{fn}: squares must lie in [0, 2**22) (3x3 Sobel squares of 8 bits do)")
    q = _real(fn, "q", q, 0.0, 100.0, "a number in [0, 100]")
    values = np.ascontiguousarray(squares, dtype=np.int32).reshape(-1)
    return _percentile(values, q)


def _percentile(values: np.ndarray, q: float) -> float:
    """:func:`percentile_of_squares` of checked C-contiguous int32 values in [0, 2^22)."""
    pos = q / 100.0 * (values.size - 1)
    lo = int(pos)
    hi = min(lo + 1, values.size - 1)
    low, high = _cpu.rank_pair(values, lo, hi)
    a, b = float(np.sqrt(low)), float(np.sqrt(high))
    return a + (pos - lo) * (b - a)
