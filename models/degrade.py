"""Synthetic degradations of product photos: the problems of supplier-sent images.

The restoration models are trained on pairs (degraded, clean) made on the fly from the
procedural catalog (:mod:`vetrina.models.catalog`). Each degradation is a realistic defect
(washed-out contrast, wrong white balance, wrong exposure, sensor noise, soft focus, an
upscaled thumbnail) at a strength that is clearly visible but still recoverable.

:func:`degrade` applies each requested kind independently with probability ``p`` (always at
least one), in a fixed physical order, and returns the parameters it used so that tests and
reports can see what happened. Everything is drawn from the caller's ``np.random.Generator``,
so the result is deterministic given its state. Only numpy and OpenCV are used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

__all__ = ["FOUNDATION_KINDS", "KINDS", "ORDER", "degrade", "degrade_batch"]

KINDS: tuple[str, ...] = ("contrast", "cast", "exposure", "noise", "blur", "downscale")

#: The kinds the foundation restoration model is trained to undo.
FOUNDATION_KINDS: tuple[str, ...] = ("contrast", "cast", "noise")

#: Order of application: scene/camera tone problems first, then optics and resampling, then
#: sensor noise last (noise on top of blur, as in a real capture, not blurred away).
ORDER: tuple[str, ...] = ("exposure", "cast", "contrast", "blur", "downscale", "noise")

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)

#: White-balance errors: direction of the per-channel gain change (R, G, B).
_TINTS: dict[str, tuple[float, float, float]] = {
    "warm": (1.0, 0.0, -1.0),
    "cool": (-1.0, 0.0, 1.0),
    "green": (-0.5, 1.0, -0.5),
    "magenta": (0.5, -1.0, 0.5),
}

Params = dict[str, Any]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * rng.random())


def _contrast(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Blend toward the image mean (a flat, hazy photo). factor 1 = unchanged."""
    factor = _u(rng, 0.45, 0.8)
    mean = float(x.mean())
    return x * np.float32(factor) + np.float32(mean * (1.0 - factor)), {
        "factor": factor,
        "mean": mean,
    }


def _cast(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Wrong white balance: per-channel gains along a tint, overall brightness kept."""
    names = tuple(_TINTS)
    tint = names[min(int(rng.random() * len(names)), len(names) - 1)]
    strength = _u(rng, 0.08, 0.2)
    gains = 1.0 + strength * np.asarray(_TINTS[tint]) + rng.normal(0.0, 0.015, 3)
    gains = np.clip(gains / float(gains @ _LUMA), 0.75, 1.25)
    return x * gains.astype(np.float32), {
        "tint": tint,
        "strength": strength,
        "gains": tuple(float(g) for g in gains),
    }


def _exposure(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Under- or over-exposure by 0.4 to 1 stop: a gain with highlight clipping, and a tone
    curve that crushes shadows when under and washes them out when over."""
    stops = _u(rng, 0.4, 1.0) * (1.0 if rng.random() < 0.5 else -1.0)
    gain = 2.0 ** (stops / 2.2)  # one stop in linear light, in gamma-encoded values
    gamma = 2.0 ** (-0.15 * stops)
    y = np.clip(x * np.float32(gain / 255.0), 0.0, 1.0)
    return np.power(y, np.float32(gamma)) * np.float32(255.0), {
        "stops": stops,
        "gain": gain,
        "gamma": gamma,
    }


def _noise(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Gaussian sensor noise, sigma 3-14 (0-255 units), partly chroma (per-channel) noise."""
    sigma = _u(rng, 3.0, 14.0)
    chroma = _u(rng, 0.2, 0.6)
    h, w = x.shape[:2]
    luma = rng.standard_normal((h, w, 1), dtype=np.float32)
    col = rng.standard_normal((h, w, 3), dtype=np.float32)
    n = luma * np.float32(np.sqrt(1.0 - chroma)) + col * np.float32(np.sqrt(chroma))
    return x + n * np.float32(sigma), {"sigma": sigma, "chroma": chroma}


def _blur(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Soft focus: Gaussian blur, sigma 0.6-1.6 px."""
    sigma = _u(rng, 0.6, 1.6)
    return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101), {"sigma": sigma}


def _downscale(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """An upscaled thumbnail: down by 2-3x with INTER_AREA, back up with INTER_LINEAR."""
    factor = _u(rng, 2.0, 3.0)
    h, w = x.shape[:2]
    sh, sw = max(1, round(h / factor)), max(1, round(w / factor))
    small = cv2.resize(x, (sw, sh), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), {
        "factor": factor,
        "size": (sh, sw),
    }


_APPLY: dict[str, Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, Params]]] = {
    "contrast": _contrast,
    "cast": _cast,
    "exposure": _exposure,
    "noise": _noise,
    "blur": _blur,
    "downscale": _downscale,
}


def _check_kinds(kinds: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError(f"kinds is empty; choose from {', '.join(KINDS)}")
    for k in kinds:
        if k not in _APPLY:
            raise ValueError(f"unknown degradation kind {k!r}; valid: {', '.join(KINDS)}")
    return tuple(k for k in ORDER if k in kinds)


def _check_image(image: np.ndarray, name: str = "image") -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"{name} must be uint8 (H, W, 3) RGB, got {image.dtype} with shape {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {image.shape}")


def _check_common(rng: np.random.Generator, p: float) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")


def degrade(
    image: np.ndarray,
    rng: np.random.Generator,
    kinds: Sequence[str] = FOUNDATION_KINDS,
    *,
    p: float = 0.7,
) -> tuple[np.ndarray, dict[str, Params]]:
    """Degrade a uint8 (H, W, 3) RGB image; returns (degraded copy, {kind: params}).

    Each kind in ``kinds`` is applied with probability ``p`` (at least one always is), in the
    fixed order :data:`ORDER`; the returned dict lists the applied kinds in that order.
    """
    _check_image(image)
    _check_common(rng, p)
    order = _check_kinds(kinds)
    chosen = [k for k in order if rng.random() < p]
    if not chosen:
        chosen = [order[min(int(rng.random() * len(order)), len(order) - 1)]]
    x = image.astype(np.float32)
    params: dict[str, Params] = {}
    for k in chosen:
        x, params[k] = _APPLY[k](x, rng)
    np.clip(x, 0.0, 255.0, out=x)
    x += np.float32(0.5)
    return x.astype(np.uint8), params


def degrade_batch(
    images: np.ndarray,
    rng: np.random.Generator,
    kinds: Sequence[str] = FOUNDATION_KINDS,
    *,
    p: float = 0.7,
) -> np.ndarray:
    """:func:`degrade` over a uint8 (N, H, W, 3) batch, each image drawing its own kinds."""
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError(
            "images must be a uint8 (N, H, W, 3) array, got "
            + (f"shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__)
        )
    if images.dtype != np.uint8 or images.shape[3] != 3:
        raise ValueError(
            f"images must be uint8 (N, H, W, 3) RGB, got {images.dtype} with shape {images.shape}"
        )
    _check_common(rng, p)
    _check_kinds(kinds)
    out = np.empty_like(images)
    for i in range(images.shape[0]):
        out[i], _ = degrade(images[i], rng, kinds, p=p)
    return out
