"""The cutout helpers of the matte stage against plain numpy: RGBA assembly, the RGB guide,
and the partition-based percentile of the empty-matte check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vetrina.framing import cutout_pixels, rgb_guide
from vetrina.stages import MatteStage, _percentile_of_squares


def _photo(h, w, c, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("swap", [False, True])
def test_cutout_pixels_matches_numpy(channels, swap):
    colour = _photo(37, 53, channels)
    alpha = np.random.default_rng(1).integers(0, 3, (37, 53)).astype(np.uint8) * 100
    rgb = colour[:, :, 2::-1] if swap else colour[:, :, :3]
    want = np.dstack([rgb, alpha])
    want[alpha == 0] = 0
    got = cutout_pixels(colour, alpha, swap=swap)
    assert got.flags.c_contiguous and got.shape == (37, 53, 4)
    np.testing.assert_array_equal(got, want)
    assert not np.shares_memory(got, colour)


@pytest.mark.parametrize("channels", [3, 4])
def test_rgb_guide(channels):
    colour = _photo(20, 30, channels)
    assert rgb_guide(colour, "RGB") is colour
    got = rgb_guide(colour, "BGR")
    np.testing.assert_array_equal(got[:, :, :3], colour[:, :, 2::-1])
    assert got.flags.c_contiguous


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.int32, st.integers(1, 300), elements=st.integers(0, 2_080_800)),
    st.floats(0, 100),
)
def test_percentile_of_squares_is_numpys(squares, q):
    want = np.percentile(np.sqrt(squares.astype(np.float64)), q)
    assert _percentile_of_squares(squares.copy(), q) == pytest.approx(want, rel=1e-12, abs=1e-9)


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
