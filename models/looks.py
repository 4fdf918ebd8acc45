"""Deterministic catalog "looks": the paired targets the style editors learn.

A look is a fixed image operation on a uint8 RGB photo. The style recipe
(:mod:`vetrina.models.training.style`) renders catalog products, applies a look and trains a
fast-neural-style TransformerNet to reproduce it. Paired targets are used instead of Gram-matrix
style losses because no pretrained feature network (VGG) can be downloaded here, and a
self-trained catalog classifier's features make a weak style loss; a paired target defines the
look exactly and reproducibly.

Every look is learnable by a fully convolutional net: only local operations (pixelwise curves,
small filters), no dependence on absolute position (no vignette), no randomness (no grain). Pixel
scales (filter radii) are fixed in pixels, so a look is meant for catalog-sized images
(roughly 64-512 px).

* ``vintage``: a soft-focus glow, lowered saturation, a gentle S tone curve, faded blacks and
  dimmed whites, and a warm split-tone (sepia shadows, cream highlights).
* ``cartoon``: edge-preserving (bilateral) smoothing, lightness posterised into soft bands with
  boosted chroma (cel shading), and dark outlines where the smoothed lightness changes sharply.

Only numpy and OpenCV are used (no torch).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["LOOKS", "apply_look", "cartoon", "vintage"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)


def vintage(image: np.ndarray) -> np.ndarray:
    """Faded, warm, softly glowing film look (see the module docstring)."""
    x = image.astype(np.float32) / 255.0
    # Soft focus: a quarter of a Gaussian-blurred copy (halation of old lenses).
    glow = cv2.GaussianBlur(x, (0, 0), sigmaX=1.6, borderType=cv2.BORDER_REFLECT)
    x = 0.75 * x + 0.25 * glow
    # Lowered saturation: 55 % of the chroma around Rec.601 luma.
    luma = x @ _LUMA
    x = luma[..., None] + 0.55 * (x - luma[..., None])
    # Gentle S tone curve (a third of smoothstep), then faded blacks and dimmed whites.
    x = np.clip(x, 0.0, 1.0)
    x = (2.0 / 3.0) * x + (1.0 / 3.0) * (x * x * (3.0 - 2.0 * x))
    x = 0.09 + 0.83 * x
    # Warm split-tone: sepia in the shadows, cream in the highlights.
    luma = (x @ _LUMA)[..., None]
    shadows = (1.0 - luma) ** 2
    highlights = luma**2
    x = (
        x
        + shadows * np.array([0.07, 0.025, -0.035], dtype=np.float32)
        + highlights * np.array([0.03, 0.01, -0.07], dtype=np.float32)
    )
    return _to_uint8(x)


def _soft_bands(v: np.ndarray, levels: int, softness: float) -> np.ndarray:
    """Posterise ``v`` in [0, 1] into ``levels`` flat bands joined by short smooth ramps."""
    t = v * levels
    base = np.floor(t)
    frac = t - base
    # Each band is flat except for a ramp of relative width ``softness`` at its upper edge;
    # band k of ``levels`` maps to k / (levels - 1), so black stays black and white white.
    ramp = np.clip((frac - (1.0 - softness)) / softness, 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)
    return np.minimum(base + ramp, levels - 1) / (levels - 1)


def cartoon(image: np.ndarray) -> np.ndarray:
    """Flat-colour cel-shaded look with dark outlines (see the module docstring)."""
    smooth = image
    for _ in range(2):
        smooth = cv2.bilateralFilter(smooth, 7, 40.0, 3.0, borderType=cv2.BORDER_REFLECT)
    lab = cv2.cvtColor(smooth.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    light = lab[..., 0] / 100.0
    # Cel shading: lightness in 6 soft bands, chroma boosted a little.
    lab[..., 0] = 100.0 * np.clip(_soft_bands(light, 6, 0.35), 0.0, 1.0)
    lab[..., 1:] *= 1.25
    rgb = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0.0, 1.0)
    # Outlines: Sobel gradient of the lightly blurred smooth lightness, softly thresholded.
    soft = cv2.GaussianBlur(light, (0, 0), sigmaX=0.8, borderType=cv2.BORDER_REFLECT)
    gx = cv2.Sobel(soft, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(soft, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    edge = np.clip((np.sqrt(gx * gx + gy * gy) - 0.3) / 0.5, 0.0, 1.0)
    rgb = rgb * (1.0 - 0.85 * edge)[..., None]
    return _to_uint8(rgb)


#: Name -> look function (uint8 HxWx3 RGB -> uint8 HxWx3 RGB).
LOOKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"vintage": vintage, "cartoon": cartoon}


def apply_look(image: np.ndarray, name: str) -> np.ndarray:
    """``image`` (uint8, H x W x 3, RGB, sides >= 2) in look ``name``; same shape and dtype.

    Deterministic; the input is not modified. Raises :class:`ValueError` for an unknown look
    or an image that is not a uint8 RGB array.
    """
    if name not in LOOKS:
        raise ValueError(f"unknown look {name!r}; known: {', '.join(LOOKS)}")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3 (RGB), got shape {image.shape}")
    if min(image.shape[:2]) < 2:
        raise ValueError(f"image sides must be at least 2 px, got {image.shape[:2]}")
    return LOOKS[name](np.ascontiguousarray(image))
