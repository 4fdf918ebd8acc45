"""The cutout helpers of the matte stage: the RGB guide and the empty-matte check against
the direct computation (the kernels behind them: tests/kernels/test_cutout.py)."""

from __future__ import annotations

import numpy as np
import pytest

from vetrina.framing import rgb_guide
from vetrina.stages import MatteStage


def _photo(h, w, c, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


@pytest.mark.parametrize("channels", [3, 4])
def test_rgb_guide(channels):
    colour = _photo(20, 30, channels)
    assert rgb_guide(colour, "RGB") is colour
    got = rgb_guide(colour, "BGR")
    np.testing.assert_array_equal(got[:, :, :3], colour[:, :, 2::-1])
    assert got.flags.c_contiguous


def test_follows_edges_on_a_drawn_product_and_a_blank_photo():
    photo = np.full((120, 160, 3), 240, np.uint8)
    photo[30:90, 40:120] = (200, 30, 30)  # a red box: strong edges along its border
    alpha = np.zeros((120, 160), np.uint8)
    alpha[30:90, 40:120] = 255
    assert MatteStage.follows_edges(photo, alpha)
    blank = np.full_like(photo, 240)
    assert not MatteStage.follows_edges(blank, alpha)
    assert not MatteStage.follows_edges(photo, np.zeros_like(alpha))  # no outline at all


def _follows_edges_reference(guide, alpha):
    """The check written the direct way: float Sobel over the whole photo, np.percentile."""
    import cv2

    inside = (alpha >= 128).astype(np.uint8)
    outline = cv2.morphologyEx(inside, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    if not outline.any():
        return False
    grey = cv2.cvtColor(guide, cv2.COLOR_RGB2GRAY).astype(np.float32)
    edges = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    typical = float(np.percentile(edges[::2, ::2], 75))
    return float(edges[outline].mean()) >= max(MatteStage.EDGE_FLOOR, typical)


@pytest.mark.parametrize("seed", range(12))
def test_follows_edges_agrees_with_the_direct_computation(seed):
    import cv2

    rng = np.random.default_rng(seed)
    h, w = rng.integers(40, 160, 2)
    photo = cv2.GaussianBlur(_photo(h, w, 3, seed), (0, 0), float(rng.uniform(0.5, 6)))
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    photo[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.integers(0, 256, 3)
    alpha = np.zeros((h, w), np.uint8)
    dy, dx = rng.integers(-6, 7, 2)  # the matte's box, off the drawn one by a few pixels
    alpha[max(0, y0 + dy) : y0 + dy + h // 3, max(0, x0 + dx) : x0 + dx + w // 3] = 255
    assert MatteStage.follows_edges(photo, alpha) == _follows_edges_reference(photo, alpha)


@pytest.mark.parametrize("channels", [3, 4])
def test_follows_edges_reads_the_photo_in_its_order(channels):
    photo = np.full((120, 160, channels), 240, np.uint8)
    photo[30:90, 40:120, :3] = (200, 30, 30)
    alpha = np.zeros((120, 160), np.uint8)
    alpha[30:90, 40:120] = 255
    bgr = np.ascontiguousarray(photo[:, :, [2, 1, 0, 3][:channels]])
    assert MatteStage.follows_edges(bgr, alpha, "BGR") == MatteStage.follows_edges(photo, alpha)
    # (255, 0, 158) on (0, 0, 255): grey 94 on 29 read as RGB, 76 on 76 read as BGR
    photo[:] = (0, 0, 255, 255)[:channels]
    photo[30:90, 40:120, :3] = (255, 0, 158)
    assert MatteStage.follows_edges(photo, alpha, "RGB")
    assert not MatteStage.follows_edges(photo, alpha, "BGR")
