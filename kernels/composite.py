"""Alpha compositing (exact integer kernel) and mask helpers for inpainting (OpenCV).

``composite`` puts an RGBA product cut-out over a background colour or image; the mask
helpers wrap ``cv2.dilate`` / ``cv2.GaussianBlur`` (the right tools for that job) with the
same argument validation as the other kernels.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import cv2
import numpy as np

from . import _checks as ck
from . import _cpu

__all__ = [
    "ALPHA_MODES",
    "MAX_DEFECT_RADIUS",
    "MAX_RADIUS",
    "composite",
    "defect_mask",
    "dilate_mask",
    "feather_mask",
    "structuring_rows",
]

ALPHA_MODES = ("straight", "premultiplied")
"""``alpha`` values of :func:`composite`."""
MAX_RADIUS = 1024
"""Largest mask radius accepted."""
MAX_DEFECT_RADIUS = 64
"""Largest growth of :func:`defect_mask` (a pipeline's ``dilate``; the CUDA twin's limit)."""


def composite(
    rgba: np.ndarray,
    background: int | Sequence[int] | np.ndarray = 255,
    *,
    alpha: str = "straight",
    num_threads: int | None = None,
) -> np.ndarray:
    """uint8 ``(H, W, 4)`` over ``background`` -> C-contiguous uint8 ``(H, W, 3)``.

    ``background``: a grey level (default 255, white), 3 channel values, or a uint8 image of
    the same height and width with 3 or 4 channels (its alpha is ignored); channel order is
    whatever ``rgba`` uses. ``alpha="straight"``: ``out = round((c * a + b * (255 - a)) /
    255)``; ``"premultiplied"`` (colour already multiplied by alpha): ``out = min(255, c +
    round(b * (255 - a) / 255))``. Exact integer arithmetic (ties cannot occur).
    """
    fn = "composite"
    img = ck.check_image(fn, 0, rgba, name="rgba")
    if img.shape[2] != 4:
        raise ValueError(f"{fn}: rgba has shape {rgba.shape}; expected (H, W, 4) uint8")
    h, w = img.shape[:2]
    ck.check_choice(fn, "alpha", alpha, ALPHA_MODES)
    nthreads = ck.check_threads(fn, num_threads)
    if isinstance(background, np.ndarray) and background.ndim >= 2:
        bg = ck.check_image(fn, 0, background, name="background")
        if bg.shape[:2] != (h, w) or bg.shape[2] < 3:
            raise ValueError(
                f"{fn}: background has shape {background.shape}; expected a colour or a uint8 "
                f"image of shape ({h}, {w}, 3|4)"
            )
    else:
        bg = np.broadcast_to(_colour(fn, background), (h, w, 3))
    out = np.empty((h, w, 3), dtype=np.uint8)
    _cpu.composite_rgba(img, bg, out, alpha == "premultiplied", nthreads)
    return out


def _colour(fn: str, value: object) -> np.ndarray:
    vals = [value] * 3 if ck.is_int(value) else value
    if isinstance(vals, np.ndarray):
        vals = vals.tolist()
    if (
        not isinstance(vals, (list, tuple))
        or len(vals) != 3
        or not all(ck.is_int(v) and 0 <= int(v) <= 255 for v in vals)
    ):
        raise ValueError(
            f"{fn}: background is {value!r}; expected an int or 3 ints in 0..255, or a uint8 image"
        )
    return np.array([int(v) for v in vals], dtype=np.uint8)


def _check_mask(fn: str, mask: object) -> np.ndarray:
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{fn}: mask has type {type(mask).__name__}; expected a numpy array")
    if mask.dtype not in (ck.U8, ck.F32):
        raise ValueError(f"{fn}: mask has dtype {mask.dtype}; expected uint8 or float32")
    if mask.ndim != 2 or 0 in mask.shape:
        raise ValueError(f"{fn}: mask has shape {mask.shape}; expected a non-empty (H, W) array")
    return np.ascontiguousarray(mask)


def _check_radius(fn: str, radius: object) -> int:
    if not ck.is_int(radius) or not 0 <= int(radius) <= MAX_RADIUS:
        raise ValueError(f"{fn}: radius is {radius!r}; expected an int in 0..{MAX_RADIUS}")
    return int(radius)


def dilate_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a uint8/float32 ``(H, W)`` mask by ``radius`` pixels (``cv2.dilate`` with an
    elliptical ``2r+1`` kernel; the border does not grow the mask). Radius 0: a copy."""
    fn = "dilate_mask"
    m = _check_mask(fn, mask)
    r = _check_radius(fn, radius)
    if r == 0:
        return m.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(m, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def feather_mask(mask: np.ndarray, radius: int, *, sigma: float | None = None) -> np.ndarray:
    """Soften a uint8/float32 ``(H, W)`` mask edge over about ``radius`` pixels
    (``cv2.GaussianBlur``, kernel ``2r+1``, ``sigma`` default ``r / 2``, replicated border).
    Radius 0: a copy. The dtype is kept (uint8 results are rounded by OpenCV)."""
    fn = "feather_mask"
    m = _check_mask(fn, mask)
    r = _check_radius(fn, radius)
    if sigma is None:
        s = r / 2.0
    elif isinstance(sigma, numbers.Real) and not isinstance(sigma, bool) and 0 < sigma <= 1e4:
        s = float(sigma)
    else:
        raise ValueError(f"{fn}: sigma is {sigma!r}; expected None or a number in (0, 1e4]")
    if r == 0:
        return m.copy()
    return cv2.GaussianBlur(
        m, (2 * r + 1, 2 * r + 1), sigmaX=s, sigmaY=s, borderType=cv2.BORDER_REPLICATE
    )


def structuring_rows(radius: int) -> np.ndarray:
    """Half-widths of the rows of OpenCV's elliptical ``2r+1`` structuring element (the one
    :func:`dilate_mask` uses): row ``dy + r`` covers columns ``-half .. half``. Its rows are
    symmetric intervals (checked), which the CUDA dilation relies on."""
    r = _check_radius("structuring_rows", radius)
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    half = np.count_nonzero(element, axis=1) // 2
    for row, h in zip(element, half, strict=True):
        cols = np.flatnonzero(row) - r
        if cols.size != 2 * h + 1 or cols[0] != -h or cols[-1] != h:  # pragma: no cover - cv2
            raise RuntimeError(f"OpenCV's elliptical element of radius {r} is not row-symmetric")
    return half.astype(np.int32)


def check_defect_args(fn: str, level: float, radius: int, on: float, off: float) -> int:
    """The radius as an int, once ``level``, ``radius``, ``on`` and ``off`` are checked."""
    if not ck.is_int(radius) or not 0 <= int(radius) <= MAX_DEFECT_RADIUS:
        raise ValueError(f"{fn}: radius is {radius!r}; expected an int in 0..{MAX_DEFECT_RADIUS}")
    try:
        finite = bool(np.isfinite(np.array([level, on, off], dtype=np.float64)).all())
    except (TypeError, ValueError):
        finite = False
    if not finite:
        raise ValueError(
            f"{fn}: level, on and off must be finite numbers; got {level}, {on}, {off}"
        )
    return int(radius)


def defect_mask(
    prob: np.ndarray, level: float, radius: int = 0, *, on: float = 1.0, off: float = 0.0
) -> np.ndarray:
    """A detector's probability maps, float32 ``(N, 1, H, W)`` -> an inpainter's masks of the
    same shape: ``on`` where ``prob >= level`` (compared in float32, ``level`` rounded to
    float32 as NumPy does; NaN is no defect), grown by ``radius`` pixels (0..64; the
    elliptical element of :func:`dilate_mask`), ``off`` elsewhere. The pipeline's clean stage
    runs this between its two models; ``kernels/cuda/mask.cu`` is its GPU twin."""
    fn = "defect_mask"
    if not isinstance(prob, np.ndarray):
        raise TypeError(f"{fn}: prob has type {type(prob).__name__}; expected a numpy array")
    if prob.dtype != ck.F32 or prob.ndim != 4 or prob.shape[1] != 1 or 0 in prob.shape:
        raise ValueError(
            f"{fn}: prob is {prob.dtype} {prob.shape}; expected float32 (N, 1, H, W), non-empty"
        )
    radius = check_defect_args(fn, level, radius, on, off)
    hit = prob >= np.float32(level)
    if radius:
        grown = [dilate_mask(h[0].view(np.uint8), radius) for h in hit]
        hit = np.stack(grown)[:, None].astype(bool)
    return np.where(hit, np.float32(on), np.float32(off))
