"""Independent numpy references of the alpha kernels (docs/kernels.md, "Alpha kernels"),
written from the contract; they never call the extension.

The resize, the ramp, the shadow and the integer kernels are exact: the kernels must match
them bit for bit. The guided filter is computed here the direct way (float64 box sums from
cumulative sums, not the kernels' running sums), so the kernels are within 1 uint8 level.
"""

from __future__ import annotations

import numpy as np

from .reference import bilinear_skip_zero

F32 = np.float32


def resize_matte_ref(matte: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Clamp to [0, 1] (NaN -> 0, fmax/fmin semantics), then the bilinear rule -> float32."""
    m = np.asarray(matte, dtype=F32)
    m = m[0, 0] if m.ndim == 4 else m
    m = np.fmin(np.fmax(m, F32(0)), F32(1))
    return bilinear_skip_zero(m, *size)


def luma_ref(guide: np.ndarray) -> np.ndarray:
    """I = (0.299 R + 0.587 G + 0.114 B) / 255, float32, left to right."""
    r, g, b = (guide[..., k].astype(F32) for k in range(3))
    return (F32(0.299) * r + F32(0.587) * g + F32(0.114) * b) / F32(255)


def _axis_bounds(n: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(n)
    return np.maximum(i - r, 0), np.minimum(i + r, n - 1) + 1


def box_mean_ref(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window clipped at the borders (sum / pixels inside), float64."""
    x = np.asarray(x, dtype=np.float64)
    h, w = x.shape
    y0, y1 = _axis_bounds(h, r)
    x0, x1 = _axis_bounds(w, r)
    c = np.concatenate([np.zeros((1, w)), np.cumsum(x, axis=0)], axis=0)
    s = c[y1] - c[y0]
    c = np.concatenate([np.zeros((h, 1)), np.cumsum(s, axis=1)], axis=1)
    s = c[:, x1] - c[:, x0]
    return s / ((y1 - y0)[:, None] * (x1 - x0)[None, :]).astype(np.float64)


def guided_ref(p: np.ndarray, guide: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s grey-guide filter of p (float64 result); the luma is centred on its
    midrange first (no change in exact arithmetic, as the kernels do)."""
    lum = luma_ref(guide)
    i = lum.astype(np.float64) - (float(lum.min()) + float(lum.max())) * 0.5
    p = p.astype(np.float64)
    mi, mp = box_mean_ref(i, r), box_mean_ref(p, r)
    var = box_mean_ref(i * i, r) - mi * mi
    cov = box_mean_ref(i * p, r) - mi * mp
    a = cov / (var + eps)
    b = mp - a * mi
    return box_mean_ref(a, r) * i + box_mean_ref(b, r)


def ramp_ref(q: np.ndarray, low: float, high: float) -> np.ndarray:
    """float64 q -> uint8: clip((q - low) / (high - low), 0, 1) * 255 + 0.5, floored;
    low == high: q >= low -> 255."""
    q = np.asarray(q, dtype=np.float64)
    if low == high:
        return np.where(q >= low, 255, 0).astype(np.uint8)
    t = np.clip((q - low) / (high - low), 0.0, 1.0)
    return np.floor(t * 255.0 + 0.5).astype(np.uint8)


def matte_to_alpha_ref(
    matte, size, *, guide=None, radius=0, eps=1e-3, low=0.0, high=1.0
) -> np.ndarray:
    p = resize_matte_ref(matte, size)
    if guide is not None and radius > 0:
        q = guided_ref(p, guide, radius, eps)
    else:
        q = p.astype(np.float64)
    return ramp_ref(q, low, high)


def luma_int_ref(image: np.ndarray) -> np.ndarray:
    """round(0.299 R + 0.587 G + 0.114 B), halves up, exact integers."""
    im = image[..., :3].astype(np.int64)
    return (299 * im[..., 0] + 587 * im[..., 1] + 114 * im[..., 2] + 500) // 1000


def keep_shadow_ref(
    image, alpha, *, strength=1.0, min_darkening=0.04, background=None
) -> np.ndarray:
    lum = luma_int_ref(image)
    if background is None:
        bg_px = np.sort(lum[alpha == 0])
        if bg_px.size == 0 or bg_px[(bg_px.size + 1) // 2 - 1] == 0:
            return np.zeros(alpha.shape, np.uint8)
        background = int(bg_px[(bg_px.size + 1) // 2 - 1])
    d = (1.0 - lum.astype(np.float64) / float(background)) * strength
    d = np.clip(d, 0.0, 1.0)
    d[(d < min_darkening) | (alpha == 255)] = 0.0
    return np.floor(d * 255.0 + 0.5).astype(np.uint8)


def merge_shadow_ref(rgba: np.ndarray, shadow: np.ndarray) -> np.ndarray:
    """Exact integers: N = 255 A + (255 - A) S; A' = round(N / 255); C' = round(255 A C / N)."""
    x = rgba.astype(np.int64)
    a, s = x[..., 3], shadow.astype(np.int64)
    n = 255 * a + (255 - a) * s
    safe = np.maximum(n, 1)
    out = np.zeros(rgba.shape, np.int64)
    out[..., :3] = (510 * a[..., None] * x[..., :3] + safe[..., None]) // (2 * safe[..., None])
    out[..., 3] = (n + 127) // 255
    out[n == 0] = 0
    return out.astype(np.uint8)


def premultiply_ref(rgba: np.ndarray) -> np.ndarray:
    x = rgba.astype(np.int64)
    out = x.copy()
    out[..., :3] = (x[..., :3] * x[..., 3:4] + 127) // 255
    return out.astype(np.uint8)
