"""Image metrics for parity checks: SSIM over NCHW batches and CIEDE2000 colour difference.

Both take the output's value range, so an image in [-1, 1], [0, 1] or [0, 255] is judged the
same way; the colour difference is measured where a shopper sees it, on the uint8 images the
runtime would write.
"""

from __future__ import annotations

import numpy as np

from vetrina.contract import TensorSpec


def to_uint8(x: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Map values in ``value_range`` linearly onto 0..255, clip and round (as the runtime's
    postprocess does)."""
    lo, hi = value_range
    u = (x.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(u), 0, 255).astype(np.uint8)


def batch_ssim(actual: np.ndarray, expected: np.ndarray, data_range: float) -> float:
    """The lowest SSIM over the images of an NCHW batch (the worst image decides).

    Per image: scikit-image's SSIM (7x7 uniform window, smaller for tiny images) averaged over
    channels. Values are clipped to ``data_range`` by the caller.
    """
    from skimage.metrics import structural_similarity

    if actual.shape != expected.shape or actual.ndim != 4:
        raise ValueError(
            f"batch_ssim: need equal NCHW shapes, got {actual.shape}, {expected.shape}"
        )
    n, _, h, w = actual.shape
    if n == 0:
        return 1.0
    win = min(7, h, w)
    win -= 1 - win % 2  # odd
    if win < 3:
        # Too small for a window: fall back to one global SSIM term per image.
        return min(_global_ssim(a, e, data_range) for a, e in zip(actual, expected, strict=True))
    scores = [
        structural_similarity(
            e.astype(np.float64),
            a.astype(np.float64),
            data_range=data_range,
            channel_axis=0,
            win_size=win,
        )
        for a, e in zip(actual, expected, strict=True)
    ]
    return float(min(scores))


def _global_ssim(a: np.ndarray, e: np.ndarray, data_range: float) -> float:
    a, e = a.astype(np.float64).ravel(), e.astype(np.float64).ravel()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ma, me = a.mean(), e.mean()
    cov = ((a - ma) * (e - me)).mean()
    return float(
        ((2 * ma * me + c1) * (2 * cov + c2)) / ((ma**2 + me**2 + c1) * (a.var() + e.var() + c2))
    )


def delta_e_2000(
    actual: np.ndarray, expected: np.ndarray, tensor: TensorSpec
) -> tuple[float, float]:
    """(mean, max) CIEDE2000 colour difference between two NCHW RGB/BGR batches, measured on
    their uint8 images (sRGB, D65) in ``tensor``'s range and channel order."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    if tensor.range is None or tensor.channels not in ("RGB", "BGR"):
        raise ValueError(f"delta_e_2000: {tensor.name!r} is not an RGB/BGR image with a range")
    labs = []
    for x in (actual, expected):
        u = to_uint8(x, tensor.range).transpose(0, 2, 3, 1)
        if tensor.channels == "BGR":
            u = u[..., ::-1]
        labs.append(rgb2lab(u.astype(np.float64) / 255.0))
    de = deltaE_ciede2000(labs[1], labs[0])
    return (float(de.mean()), float(de.max())) if de.size else (0.0, 0.0)
