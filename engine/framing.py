"""Output framing: the product cut to its bounding box and centred on a square canvas.

Marketplace main images want the product alone, centred on a square, filling a set share of
it (85 % is a common rule). The alpha (a matte's, or the photo's own) says where the product
is: pixels with alpha >= :data:`ALPHA_CUT` count. Resizing is done on premultiplied colour, so
transparent pixels never bleed their colour into the edge.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

ALPHA_CUT = 128


class EmptyMatteWarning(UserWarning):
    """A photo in which the matting model found no product."""


def combine_alpha(matte: np.ndarray, own: np.ndarray | None) -> np.ndarray:
    """uint8 matte times the photo's own uint8 alpha (when it has one), rounded."""
    if own is None:
        return matte
    product = matte.astype(np.uint16) * own.astype(np.uint16)
    return ((product + 127) // 255).astype(np.uint8)


def rgb_guide(colour: np.ndarray, order: str) -> np.ndarray:
    """The photo as contiguous RGB(A) for the alpha kernels, from uint8 (H, W, 3|4) in
    ``order``: the array itself for RGB, else one channel-swapping pass (a reversed-channel
    view would be copied element by element further down, several times slower)."""
    if order == "RGB":
        return colour
    code = cv2.COLOR_BGRA2RGBA if colour.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(colour, code)


def frame(
    img: np.ndarray,
    *,
    crop: bool,
    canvas: int | None,
    fill: float,
    name: str = "pipeline",
    warn: bool = True,
) -> np.ndarray:
    """uint8 HxW(x3|4) -> RGBA: cropped to the product's bounding box (``crop``) and/or
    centred on a ``canvas`` x ``canvas`` square with its longer side ``fill`` of it
    (transparent margins). No product: an :class:`EmptyMatteWarning` and an empty (fully
    transparent) frame of the canvas size (or the image's)."""
    if img.ndim == 2:
        img = np.dstack([img, img, img])
    if img.shape[2] == 3:
        img = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    inside = img[:, :, 3] >= ALPHA_CUT
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        if warn:
            warnings.warn(
                f"{name}: no product found (the matte is empty); the output is an empty frame",
                EmptyMatteWarning,
                stacklevel=3,
            )
        shape = (canvas, canvas) if canvas else img.shape[:2]
        return np.zeros((*shape, 4), np.uint8)
    if crop:
        img = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    if not canvas:
        return np.ascontiguousarray(img)
    h, w = img.shape[:2]
    factor = fill * canvas / max(h, w)
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    method = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    premultiplied = img.astype(np.float32)
    premultiplied[:, :, :3] *= premultiplied[:, :, 3:4] / 255.0
    small = cv2.resize(premultiplied, (nw, nh), interpolation=method)
    a = np.clip(small[:, :, 3:4], 0.0, 255.0)
    colour = np.where(a > 0, small[:, :, :3] * 255.0 / np.maximum(a, 1e-6), 0.0)
    framed = np.zeros((canvas, canvas, 4), np.uint8)
    y, x = (canvas - nh) // 2, (canvas - nw) // 2
    framed[y : y + nh, x : x + nw, :3] = np.floor(np.clip(colour, 0, 255) + 0.5)
    framed[y : y + nh, x : x + nw, 3] = np.floor(a[:, :, 0] + 0.5)
    return framed
