"""Image and tensor comparison metrics shared by verification, the demo and zoo evaluation."""

from __future__ import annotations

import math

import numpy as np


def max_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute elementwise difference (float64 accumulation)."""
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute elementwise difference (float64 accumulation)."""
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical inputs.

    ``data_range`` is the span of valid values (255 for uint8 images, 1 for [0, 1] tensors).
    """
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ: {a.shape} vs {b.shape}")
    if data_range <= 0:
        raise ValueError(f"psnr: data_range must be positive, got {data_range}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)
