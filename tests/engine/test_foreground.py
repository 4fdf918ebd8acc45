"""Foreground colour estimation (blur fusion): undoes known blends, agrees with a direct
full-resolution implementation of the paper's algorithm, touches only blended pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina.errors import InputError
from vetrina.foreground import RADII, estimate_foreground


def _paper(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Forte & Pitie's blur fusion as published (both passes at full resolution), in numpy."""
    image = colour.astype(np.float64) / 255
    a = (alpha.astype(np.float64) / 255)[:, :, None]

    def box(x, r):
        return cv2.blur(x, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)

    fg, bg = image, image
    for r in RADII:
        blurred_a = box(a[:, :, 0], r)[:, :, None]
        mean_fg = box(fg * a, r) / (blurred_a + 1e-5)
        mean_bg = box(bg * (1 - a), r) / (1 - blurred_a + 1e-5)
        fg = np.clip(mean_fg + a * (image - a * mean_fg - (1 - a) * mean_bg), 0, 1)
        bg = mean_bg
    out = colour.copy()
    soft = (alpha > 0) & (alpha < 255)
    out[soft] = np.rint(fg[soft] * 255).astype(np.uint8)
    return out


def _blended_photo(seed: int, h: int = 240, w: int = 320):
    """A product of known colour F on a textured background B, with a soft, wavy edge:
    photo = a F + (1 - a) B, rounded to uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    fg = np.stack(
        [60 + 120 * xx / w, 40 + 80 * yy / h, np.full_like(xx, 30 + 150 * rng.random())], -1
    )
    noise = cv2.GaussianBlur(rng.normal(0, 40, (h, w, 3)).astype(np.float32), (0, 0), 3)
    bg = np.clip(rng.uniform(80, 220, 3).astype(np.float32) + noise, 0, 255)
    radius = min(h, w) * 0.3 + 6 * np.sin(np.arctan2(yy - h / 2, xx - w / 2) * 5)
    dist = np.hypot(yy - h / 2, xx - w / 2) - radius
    a = np.clip(0.5 - dist / 12, 0, 1)  # a 12-px soft edge
    photo = np.clip(a[..., None] * fg + (1 - a[..., None]) * bg + 0.5, 0, 255).astype(np.uint8)
    alpha = np.rint(a * 255).astype(np.uint8)
    return photo, alpha, fg


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_background_share_is_removed_from_soft_edges(seed):
    photo, alpha, fg = _blended_photo(seed)
    got = estimate_foreground(photo, alpha)
    edge = (alpha > 25) & (alpha < 230)
    before = np.abs(photo[edge] - fg[edge]).mean()
    after = np.abs(got[edge] - fg[edge]).mean()
    assert after < before / 3, (before, after)
    assert after < 6, after


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agrees_with_the_papers_algorithm_at_full_resolution(seed):
    """The wide pass runs at 1/4 resolution; the result stays within a few levels."""
    photo, alpha, _ = _blended_photo(seed, 300, 400)
    got = estimate_foreground(photo, alpha).astype(np.int16)
    want = _paper(photo, alpha).astype(np.int16)
    soft = (alpha > 0) & (alpha < 255)
    diff = np.abs(got - want)[soft]
    assert diff.mean() < 0.25 and diff.max() <= 2, (diff.mean(), diff.max())


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    seed=st.integers(0, 2**16),
    levels=st.sampled_from(["binary", "any", "soft"]),
)
def test_only_blended_pixels_change(h, w, seed, levels):
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if levels == "binary":
        alpha = rng.choice(np.array([0, 255], np.uint8), (h, w))
    elif levels == "soft":
        alpha = rng.integers(1, 255, (h, w), dtype=np.uint8)
    else:
        alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
    got = estimate_foreground(colour, alpha)
    assert got.dtype == np.uint8 and got.shape == colour.shape
    hard = (alpha == 0) | (alpha == 255)
    np.testing.assert_array_equal(got[hard], colour[hard])
    if levels == "binary":
        np.testing.assert_array_equal(got, colour)


def test_a_non_contiguous_view_gives_the_same_result():
    photo, alpha, _ = _blended_photo(4, 120, 160)
    wide = np.zeros((120, 160, 4), np.uint8)
    wide[:, :, :3] = photo
    np.testing.assert_array_equal(
        estimate_foreground(wide[:, :, :3], alpha), estimate_foreground(photo, alpha)
    )


@pytest.mark.parametrize(
    ("colour", "alpha", "message"),
    [
        (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4), np.uint8), "colour must be uint8 HxWx3"),
        (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), "colour must be uint8"),
        (
            np.zeros((4, 4, 3), np.uint8),
            np.zeros((4, 5), np.uint8),
            r"alpha must be uint8 \(4, 4\)",
        ),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32), "alpha must be uint8"),
    ],
)
def test_bad_input_is_an_input_error(colour, alpha, message):
    with pytest.raises(InputError, match=message):
        estimate_foreground(colour, alpha)


def test_many_blended_pixels_and_the_coarse_pass_reads_like_cv2_resize():
    """More blended pixels than OpenCV's remap takes in one row (32767), and the coarse
    pass's point reads equal ``cv2.resize`` followed by indexing."""
    from vetrina.foreground import _bilinear_at

    rng = np.random.default_rng(7)
    colour = rng.integers(0, 256, (220, 230, 3), dtype=np.uint8)
    alpha = np.full((220, 230), 128, np.uint8)
    got = estimate_foreground(colour, alpha).astype(np.int16)
    want = _paper(colour, alpha).astype(np.int16)
    assert np.abs(got - want).max() <= 2
    small = rng.random((17, 23, 3)).astype(np.float32)
    ys, xs = np.mgrid[:70, :90]
    np.testing.assert_allclose(
        _bilinear_at(small, (70, 90), ys.ravel(), xs.ravel()),
        cv2.resize(small, (90, 70), interpolation=cv2.INTER_LINEAR).reshape(-1, 3),
        atol=2e-3,
    )
