"""Foreground colour estimation: the product's own colour under a soft matte edge.

A pixel on a soft edge was captured as a blend, ``I = a * F + (1 - a) * B``. Cutting it out
with alpha ``a`` but colour ``I`` keeps the background's share in it: a product shot on
grass gets a green rim, on a dark backdrop a dark one, and the rim shows on any new
background. (rembg's default cutout is worse still: it stores ``a * I``, premultiplied, in a
straight-alpha PNG, so every soft edge turns dark -- danielgatis/rembg#474.)

:func:`estimate_foreground` solves for ``F`` with *blur fusion* (Forte and Pitie, "Approximate
Fast Foreground Colour Estimation", ICIP 2021): local means of the foreground and background
colours, weighted by ``a`` and ``1 - a`` over a box window, then the residual of the
compositing equation put back on the foreground by ``a``. Two passes, a wide window for a
first estimate and a narrow one to refine it, as in the paper; box filters make it O(1) per
pixel whatever the window. Only blended pixels (0 < a < 1) change.

On 12 rendered 1024x683 products composited over textured, shadowed and tinted backgrounds
(known foreground, true alpha), the mean error of the edge colours (0.1 < a < 0.9) drops from
37.4 levels (the photo's colour) to 9.4, in about 20 ms per photo on one core
(`benchmarks/foreground.py`).
"""

from __future__ import annotations

import cv2
import numpy as np

from .errors import InputError

RADII = (90, 6)
"""Box-window radii of the two passes, in pixels (the paper's)."""

COARSE = 4
"""The wide pass runs at 1/4 resolution: its window is 181 px wide, so its local means are
smooth. On the 12 photos above the result stays within 2 levels of the full-resolution
algorithm (mean 0.1 over the blended pixels), and the time drops from 140 ms to about 20."""

_EPS = np.float32(1e-5)


def estimate_foreground(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) colour and uint8 (H, W) alpha -> uint8 (H, W, 3) foreground colour.

    Only pixels with 0 < alpha < 255 change; the channel order is kept (each channel is
    solved on its own)."""
    if colour.dtype != np.uint8 or colour.ndim != 3 or colour.shape[2] != 3:
        raise InputError(
            f"foreground: colour must be uint8 HxWx3, got {colour.dtype} {colour.shape}"
        )
    if alpha.dtype != np.uint8 or alpha.shape != colour.shape[:2]:
        raise InputError(
            f"foreground: alpha must be uint8 {colour.shape[:2]}, got {alpha.dtype} {alpha.shape}"
        )
    out = colour.copy()
    soft = (alpha > 0) & (alpha < 255)
    if not soft.any():
        return out  # nothing blended: every colour is already the foreground's
    wide, narrow = RADII
    h, w = alpha.shape
    ys, xs = np.nonzero(soft)
    top, bottom = max(0, ys.min() - narrow), min(h, ys.max() + narrow + 1)
    left, right = max(0, xs.min() - narrow), min(w, xs.max() + narrow + 1)
    box = (slice(top, bottom), slice(left, right))
    yb, xb = ys - top, xs - left
    image = colour[box].astype(np.float32) * np.float32(1 / 255)
    a = alpha[box].astype(np.float32) * np.float32(1 / 255)
    pixel, pixel_a = image[yb, xb], a[yb, xb, None]
    # pass 1, coarse: local foreground and background means over the wide window
    small = (max(1, -(-w // COARSE)), max(1, -(-h // COARSE)))
    image_s = cv2.resize(colour, small, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    a_s = cv2.resize(alpha, small, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    fg_s, bg_s = _local_means(image_s, image_s, a_s, max(1, round(wide / COARSE)))
    fg1 = _bilinear_at(fg_s, (h, w), ys, xs)  # only where needed: the blended pixels
    bg1 = cv2.resize(bg_s, (w, h), interpolation=cv2.INTER_LINEAR)[box]
    f1 = _solve(pixel, pixel_a, fg1, bg1[yb, xb])
    # pass 2, full resolution, narrow window, inside the box
    fg_in = image  # the foreground estimate: the photo where opaque...
    fg_in[yb, xb] = f1  # ...pass 1 where blended (its weight a is zero where clear)
    fg2, bg2 = _local_means(fg_in, bg1, a, narrow)
    f2 = _solve(pixel, pixel_a, fg2[yb, xb], bg2[yb, xb])
    out[ys, xs] = np.rint(f2 * np.float32(255)).astype(np.uint8)
    return out


def _local_means(
    fg: np.ndarray, bg: np.ndarray, a: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-weighted box means of the foreground and (1 - alpha)-weighted of the background."""
    size = (2 * radius + 1, 2 * radius + 1)
    a3 = a[:, :, None]
    blurred_a = cv2.blur(a, size, borderType=cv2.BORDER_REFLECT)[:, :, None]
    mean_fg = cv2.blur(fg * a3, size, borderType=cv2.BORDER_REFLECT)
    mean_fg /= blurred_a + _EPS
    mean_bg = cv2.blur(bg * (1 - a3), size, borderType=cv2.BORDER_REFLECT)
    mean_bg /= (1 - blurred_a) + _EPS
    return mean_fg, mean_bg


def _bilinear_at(small: np.ndarray, size: tuple[int, int], ys: np.ndarray, xs: np.ndarray):
    """``small`` (h, w, 3) resized bilinearly to ``size`` as ``cv2.resize`` does (pixel
    centres aligned, edges clamped), read at the points (``ys``, ``xs``) only."""
    (sh, sw), (h, w) = small.shape[:2], size
    fy = np.clip((ys + 0.5) * (sh / h) - 0.5, 0, sh - 1)
    fx = np.clip((xs + 0.5) * (sw / w) - 0.5, 0, sw - 1)
    y0, x0 = np.floor(fy).astype(np.intp), np.floor(fx).astype(np.intp)
    y1, x1 = np.minimum(y0 + 1, sh - 1), np.minimum(x0 + 1, sw - 1)
    wy, wx = (fy - y0).astype(np.float32)[:, None], (fx - x0).astype(np.float32)[:, None]
    top = small[y0, x0] * (1 - wx) + small[y0, x1] * wx
    bottom = small[y1, x0] * (1 - wx) + small[y1, x1] * wx
    return top * (1 - wy) + bottom * wy


def _solve(image: np.ndarray, a: np.ndarray, mean_fg: np.ndarray, mean_bg: np.ndarray):
    """The compositing equation's residual, given to the foreground in proportion to alpha."""
    residual = image - a * mean_fg - (1 - a) * mean_bg
    return np.clip(mean_fg + a * residual, 0.0, 1.0)
