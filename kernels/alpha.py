"""Alpha (matting) kernels: a background-removal model's matte -> the photo's alpha, shadows.

* :func:`matte_to_alpha` -- low-resolution float matte -> full-resolution uint8 alpha
  (bilinear resize, optional grey-guide guided filter that snaps the edge to the photo, ramp);
* :func:`keep_shadow` -- a soft shadow under the product as an alpha of its own (darkening of
  the background);
* :func:`merge_shadow` -- product RGBA + shadow alpha -> one straight RGBA;
* :func:`premultiply` -- straight -> premultiplied RGBA (for ``composite(..., alpha=
  "premultiplied")`` and GPU compositors).

Every argument is validated first (``ValueError``/``TypeError`` naming the function, the
argument, the value and what is expected). Numerics: docs/kernels.md, "Alpha kernels".
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _checks as ck
from . import _cpu

__all__ = [
    "EPS_RANGE",
    "MAX_ALPHA_RADIUS",
    "keep_shadow",
    "matte_to_alpha",
    "merge_shadow",
    "premultiply",
    "resized_matte",
]

MAX_ALPHA_RADIUS = ck.MAX_SIZE
"""Largest guided-filter radius (a window past every border is the whole image)."""
EPS_RANGE = (1e-8, 1e4)
"""Accepted guided-filter ``eps`` (in luma units squared, the luma in [0, 1]). Below 1e-8 the
coefficients a = cov / (var + eps) amplify float64 rounding of the box sums."""
MAX_STRENGTH = 1e3
"""Largest ``strength`` of :func:`keep_shadow`."""


def _real(fn: str, name: str, value: object, lo: float, hi: float, what: str) -> float:
    """A finite real number in [lo, hi] (bools refused) -> float."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if not ok or not np.isfinite(float(value)) or not lo <= float(value) <= hi:  # type: ignore[arg-type]
        raise ValueError(f"{fn}: {name} is {value!r}; expected {what}")
    return float(value)  # type: ignore[arg-type]


def check_matte(fn: str, matte: object) -> np.ndarray:
    """float32 (h, w) or (1, 1, h, w) -> the (h, w) view (no copy)."""
    if not isinstance(matte, np.ndarray):
        raise TypeError(
            f"{fn}: matte has type {type(matte).__name__}; expected a numpy float32 array "
            f"(h, w) or (1, 1, h, w)"
        )
    if matte.dtype != ck.F32:
        raise ValueError(
            f"{fn}: matte has dtype {matte.dtype}; expected float32 (matte.astype(np.float32))"
        )
    m = matte[0, 0] if matte.ndim == 4 and matte.shape[:2] == (1, 1) else matte
    if m.ndim != 2:
        raise ValueError(f"{fn}: matte has shape {matte.shape}; expected (h, w) or (1, 1, h, w)")
    if 0 in m.shape or max(m.shape) > ck.MAX_SIZE:
        raise ValueError(
            f"{fn}: matte has shape {matte.shape}; expected h and w in 1..{ck.MAX_SIZE}"
        )
    return m


def check_guide(fn: str, guide: object, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3|4) RGB[A] of exactly ``size``."""
    img = ck.check_image(fn, 0, guide, name="guide")
    if img.shape[2] < 3 or img.shape[:2] != size:
        shape = guide.shape  # type: ignore[union-attr]
        raise ValueError(
            f"{fn}: guide has shape {shape}; expected a uint8 RGB(A) image of shape "
            f"({size[0]}, {size[1]}, 3|4) (the output size)"
        )
    return img


def check_ramp(fn: str, low: object, high: object) -> tuple[float, float]:
    """0 <= low <= high <= 1."""
    lo = _real(fn, "low", low, 0.0, 1.0, "a number in [0, 1]")
    hi = _real(fn, "high", high, 0.0, 1.0, "a number in [0, 1]")
    if lo > hi:
        raise ValueError(f"{fn}: low is {low!r} and high is {high!r}; expected low <= high")
    return lo, hi


def check_filter(fn: str, radius: object, eps: object, has_guide: bool) -> tuple[int, float]:
    """radius in 0..MAX_ALPHA_RADIUS (> 0 needs a guide), eps in EPS_RANGE."""
    if not ck.is_int(radius) or not 0 <= int(radius) <= MAX_ALPHA_RADIUS:  # type: ignore[call-overload]
        raise ValueError(f"{fn}: radius is {radius!r}; expected an int in 0..{MAX_ALPHA_RADIUS}")
    lo, hi = EPS_RANGE
    e = _real(fn, "eps", eps, lo, hi, f"a number in [{lo:g}, {hi:g}]")
    if int(radius) > 0 and not has_guide:  # type: ignore[call-overload]
        raise ValueError(
            f"{fn}: radius is {radius!r} but guide is None; the guided filter needs the "
            f"photo as guide (or radius=0 for a plain resize)"
        )
    return int(radius), e  # type: ignore[call-overload]


def clamp_matte(matte: np.ndarray) -> np.ndarray:
    """C-contiguous copy clamped to [0, 1]; NaN -> 0 (fmax ignores NaN), +inf -> 1."""
    return np.ascontiguousarray(np.fmin(np.fmax(matte, np.float32(0)), np.float32(1)))


def matte_to_alpha(
    matte: np.ndarray,
    size: tuple[int, int],
    *,
    guide: np.ndarray | None = None,
    radius: int = 0,
    eps: float = 1e-3,
    low: float = 0.0,
    high: float = 1.0,
    num_threads: int | None = None,
) -> np.ndarray:
    """Low-resolution float32 matte -> full-resolution uint8 alpha ``(H, W)``, C-contiguous.

    ``matte``: float32 ``(h, w)`` or ``(1, 1, h, w)`` (a model output), clamped to [0, 1]
    (NaN -> 0). ``size = (H, W)``. Steps, all documented in docs/kernels.md:

    1. bilinear resize (the ``adapt`` rule, bit for bit);
    2. with ``guide`` (the photo, uint8 ``(H, W, 3|4)`` RGB, alpha ignored) and ``radius > 0``:
       the grey-guide guided filter (He et al. 2010; box means over ``(2r+1)^2`` windows
       clipped at the borders, ``eps`` regularises flat areas): edges follow the photo;
    3. ramp ``clip((q - low) / (high - low), 0, 1)`` (``low == high``: ``q >= low``), then
       ``floor(alpha * 255 + 0.5)``.

    Memory of the guided path: 24 bytes per output pixel (float32 matte and luma, float64
    coefficients) besides the output.
    """
    fn = "matte_to_alpha"
    m = check_matte(fn, matte)
    hw = ck.check_size(fn, "size", size)
    g = None if guide is None else check_guide(fn, guide, hw)
    r, e = check_filter(fn, radius, eps, g is not None)
    lo, hi = check_ramp(fn, low, high)
    nthreads = ck.check_threads(fn, num_threads)
    out = np.empty(hw, dtype=np.uint8)
    _cpu.matte_alpha(clamp_matte(m), out, g, r, e, lo, hi, nthreads)
    return out


def resized_matte(matte: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The float32 ``(H, W)`` matte after step 1 of :func:`matte_to_alpha` (clamp + resize),
    from the same code path: for tests and for inspecting a model's matte."""
    fn = "resized_matte"
    m = check_matte(fn, matte)
    hw = ck.check_size(fn, "size", size)
    out = np.empty(hw, dtype=np.uint8)
    values = np.empty(hw, dtype=np.float32)
    _cpu.matte_alpha(clamp_matte(m), out, None, 0, 1e-3, 0.0, 1.0, 0, values)
    return values


def check_rgba(fn: str, rgba: object, name: str = "rgba") -> np.ndarray:
    img = ck.check_image(fn, 0, rgba, name=name)
    if img.shape[2] != 4:
        raise ValueError(
            f"{fn}: {name} has shape {rgba.shape}; expected (H, W, 4) uint8"  # type: ignore[union-attr]
        )
    return img


def check_plane(fn: str, name: str, plane: object, hw: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W) matching ``hw``."""
    if not isinstance(plane, np.ndarray):
        raise TypeError(
            f"{fn}: {name} has type {type(plane).__name__}; expected a numpy uint8 array (H, W)"
        )
    if plane.dtype != ck.U8 or plane.shape != hw:
        raise ValueError(
            f"{fn}: {name} has dtype {plane.dtype} and shape {plane.shape}; expected uint8 "
            f"of shape {hw}"
        )
    return plane


def check_shadow_args(
    fn: str, strength: object, min_darkening: object, background: object
) -> tuple[float, float, int | None]:
    s = _real(fn, "strength", strength, 0.0, MAX_STRENGTH, f"a number in [0, {MAX_STRENGTH:g}]")
    md = _real(fn, "min_darkening", min_darkening, 0.0, 1.0, "a number in [0, 1]")
    if background is None:
        return s, md, None
    if not ck.is_int(background) or not 1 <= int(background) <= 255:  # type: ignore[call-overload]
        raise ValueError(
            f"{fn}: background is {background!r}; expected None (the median luma of the "
            f"transparent pixels) or a grey level in 1..255"
        )
    return s, md, int(background)  # type: ignore[call-overload]


def median_luma(hist: np.ndarray) -> int:
    """Lower median of an int histogram (the ``(n+1)//2``-th smallest value); -1 if empty."""
    n = int(hist.sum())
    if n == 0:
        return -1
    return int(np.searchsorted(np.cumsum(hist), (n + 1) // 2))


def keep_shadow(
    image: np.ndarray,
    alpha: np.ndarray,
    *,
    strength: float = 1.0,
    min_darkening: float = 0.04,
    background: int | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """The soft shadow around a cut-out product as a uint8 alpha ``(H, W)`` (black shadow).

    A shadow is modelled as a multiplicative darkening of the background: with the integer
    luma ``L = round(0.299 R + 0.587 G + 0.114 B)`` of ``image`` (uint8 ``(H, W, 3|4)`` RGB)
    and the background grey ``B`` -- ``background`` (1..255) or, when None, the lower median
    luma of the pixels where ``alpha`` (uint8 ``(H, W)``, the product's alpha) is 0 --
    ``d = clip((1 - L / B) * strength, 0, 1)``, 0 where ``d < min_darkening`` (noise) or where
    ``alpha == 255`` (the product itself); result ``floor(d * 255 + 0.5)``.

    Returns all zeros when ``background`` is None and no pixel has alpha 0, or when that
    median is 0 (a black background cannot be darkened).
    """
    fn = "keep_shadow"
    img = ck.check_image(fn, 0, image, name="image")
    if img.shape[2] < 3:
        raise ValueError(
            f"{fn}: image has shape {image.shape}; expected a uint8 RGB(A) image (H, W, 3|4)"
        )
    a = check_plane(fn, "alpha", alpha, img.shape[:2])
    s, md, bg = check_shadow_args(fn, strength, min_darkening, background)
    nthreads = ck.check_threads(fn, num_threads)
    out = np.empty(img.shape[:2], dtype=np.uint8)
    if bg is None:
        bg = median_luma(_cpu.shadow_histogram(img, a, nthreads))
        if bg <= 0:
            out.fill(0)
            return out
    _cpu.shadow_alpha(img, a, out, float(bg), s, md, nthreads)
    return out


def merge_shadow(
    rgba: np.ndarray, shadow: np.ndarray, *, num_threads: int | None = None
) -> np.ndarray:
    """Product RGBA (straight alpha) + shadow alpha (black) -> one straight RGBA, C-contiguous.

    ``a' = a + (1 - a) s`` and ``C' = a C / a'`` (0 where ``a' == 0``), exact integers:
    ``N = 255 A + (255 - A) S``, ``A' = round(N / 255)``, ``C' = round(255 A C / N)``, halves
    up. Composited over white the result equals the product over white darkened by ``s``
    (``255 - S``) to 1 level; over any background ``b`` it is the product over ``b (1 - s)``
    up to the roundings.
    """
    fn = "merge_shadow"
    img = check_rgba(fn, rgba)
    sh = check_plane(fn, "shadow", shadow, img.shape[:2])
    nthreads = ck.check_threads(fn, num_threads)
    out = np.empty(img.shape, dtype=np.uint8)
    _cpu.merge_shadow_rgba(img, sh, out, nthreads)
    return out


def premultiply(rgba: np.ndarray, *, num_threads: int | None = None) -> np.ndarray:
    """Straight -> premultiplied RGBA: ``C * A / 255`` rounded (no ties exist), alpha kept.

    ``composite(premultiply(x), bg, alpha="premultiplied")`` equals ``composite(x, bg)`` to 1
    level.
    """
    fn = "premultiply"
    img = check_rgba(fn, rgba)
    nthreads = ck.check_threads(fn, num_threads)
    out = np.empty(img.shape, dtype=np.uint8)
    _cpu.premultiply_rgba(img, out, nthreads)
    return out
