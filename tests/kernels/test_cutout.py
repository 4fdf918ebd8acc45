"""Cut-out kernels against numpy and OpenCV: the RGBA cut-out (every SIMD level, strided
views, sizes around the vector widths), the outline edge statistics (cv2.morphologyEx and
cv2.Sobel), the histogram percentile (np.percentile), and bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vetrina import kernels as K
from vetrina.kernels import _cpu
from vetrina.kernels.cutout import percentile_of_squares


def _image(h, w, c, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def _cutout_ref(colour, alpha, swap):
    rgb = colour[:, :, 2::-1] if swap else colour[:, :, :3]
    want = np.dstack([rgb, alpha])
    want[alpha == 0] = 0
    return want


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 70),
    channels=st.sampled_from([3, 4]),
    swap=st.booleans(),
    level=st.sampled_from([0, 1, 2]),
    view=st.sampled_from(["contiguous", "cropped", "every other column", "reversed channels"]),
    seed=st.integers(0, 2**16),
)
def test_cutout_is_numpys_at_every_simd_level(h, w, channels, swap, level, view, seed):
    rng = np.random.default_rng(seed)
    colour = _image(h + 2, 2 * w + 2, channels, seed)
    alpha = (rng.integers(0, 3, (h + 2, 2 * w + 2)) * 127).astype(np.uint8)
    if view == "contiguous":
        colour, alpha = colour[:h, :w].copy(), alpha[:h, :w].copy()
    elif view == "cropped":
        colour, alpha = colour[1 : h + 1, 1 : w + 1], alpha[1 : h + 1, 1 : w + 1]
    elif view == "every other column":
        colour, alpha = colour[:h, ::2][:, :w], alpha[:h, ::2][:, :w]
    else:
        colour, alpha = colour[:h, :w, ::-1], alpha[:h, :w]
    old = _cpu.set_simd(level)
    try:
        got = K.cutout(colour, alpha, swap=swap, num_threads=1)
    finally:
        _cpu.set_simd(old)
    assert got.flags.c_contiguous and got.shape == (h, w, 4)
    np.testing.assert_array_equal(got, _cutout_ref(colour, alpha, swap))
    assert not np.shares_memory(got, colour)


def test_cutout_of_a_photo_with_threads():
    colour = _image(683, 1024, 3, 5)
    alpha = np.zeros((683, 1024), np.uint8)
    alpha[100:600, 200:800] = 255
    alpha[300:310] = 77
    want = _cutout_ref(colour, alpha, True)
    for threads in (1, 2, 3):
        np.testing.assert_array_equal(K.cutout(colour, alpha, swap=True, num_threads=threads), want)


def _outline_ref(grey, alpha, q=75.0):
    """The direct computation: OpenCV's morphological gradient and float Sobel."""
    inside = (alpha >= 128).astype(np.uint8)
    outline = cv2.morphologyEx(inside, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    g = grey.astype(np.float32)
    dx, dy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    squares = dx.astype(np.int64) ** 2 + dy.astype(np.int64) ** 2
    magnitude = np.sqrt(squares.astype(np.float32))
    mean = float(magnitude[outline].astype(np.float64).mean()) if outline.any() else None
    typical = float(np.percentile(np.sqrt(squares[::2, ::2].astype(np.float64)), q))
    return mean, int(outline.sum()), typical


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    q=st.floats(0, 100),
    smooth=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_outline_edges_equal_opencvs_morphology_and_sobel(h, w, q, smooth, seed):
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
    if smooth:
        grey = cv2.GaussianBlur(grey, (0, 0), 2.0)
    alpha = np.zeros((h, w), np.uint8)
    y0, x0 = rng.integers(0, h), rng.integers(0, w)
    alpha[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = 200
    alpha[rng.random((h, w)) < 0.05] ^= 255  # stray pixels in and out
    mean, pixels, typical = _outline_ref(grey, alpha, q)
    for threads in (1, 2):
        got = K.outline_edges(grey, alpha, percentile=q, num_threads=threads)
        assert got.outline_pixels == pixels
        if mean is None:
            assert got.outline_mean is None
        else:
            assert got.outline_mean == pytest.approx(mean, rel=1e-12)
        assert got.typical == pytest.approx(typical, rel=1e-12, abs=1e-9)


def test_outline_edges_on_a_photo_sized_view():
    photo = cv2.GaussianBlur(_image(683, 1024, 1, 3)[:, :, 0], (0, 0), 3.0)
    alpha = np.zeros((700, 1100), np.uint8)
    cv2.circle(alpha, (500, 350), 250, 255, -1)
    view = alpha[5:688, 50:1074]  # a strided view: rows longer than the image
    mean, pixels, typical = _outline_ref(photo, view)
    got = K.outline_edges(photo, view)
    assert got.outline_pixels == pixels > 0
    assert got.outline_mean == pytest.approx(mean, rel=1e-12)
    assert got.typical == pytest.approx(typical, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.int32, st.integers(1, 300), elements=st.integers(0, 2_080_800)),
    st.floats(0, 100),
)
def test_percentile_of_squares_is_numpys(squares, q):
    want = np.percentile(np.sqrt(squares.astype(np.float64)), q)
    assert percentile_of_squares(squares, q) == pytest.approx(want, rel=1e-12, abs=1e-9)


def test_percentile_of_squares_with_many_ties_and_far_values():
    values = np.concatenate([np.zeros(5000, np.int32), np.full(3, 2_080_800, np.int32)])
    values = np.concatenate([values, np.arange(2040, 2060, dtype=np.int32)])
    np.random.default_rng(0).shuffle(values)
    for q in (0, 50, 99.5, 99.9, 100):
        want = np.percentile(np.sqrt(values.astype(np.float64)), q)
        assert percentile_of_squares(values, q) == pytest.approx(want, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize(
    ("values", "q", "message"),
    [
        (np.array([3, -1], np.int32), 50, "lie in \\[0, 2\\*\\*22\\)"),
        (np.array([1 << 22], np.int64), 50, "lie in"),
        (np.array([], np.int32), 50, "no values"),
        (np.array([1.0]), 50, "integer array"),
        (np.array([1, 2], np.int32), 100.5, "q is 100.5"),
    ],
)
def test_percentile_of_squares_refuses_what_it_cannot_rank(values, q, message):
    with pytest.raises((ValueError, TypeError), match=message):
        percentile_of_squares(values, q)
    with pytest.raises(ValueError, match="2\\*\\*22"):
        _cpu.rank_pair(np.array([5, -7, 1], np.int32), 0, 1)  # the C check behind it


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda g, a: K.cutout(g[:, :, :2], a), "expected \\(H, W, 3\\) or \\(H, W, 4\\)"),
        (lambda g, a: K.cutout(g[:, :, 0], a), "colour has shape \\(6, 8\\)"),
        (lambda g, a: K.cutout(g, a[:, :-1]), "alpha has dtype uint8 and shape"),
        (lambda g, a: K.cutout(g.astype(np.float32), a), "expected uint8"),
        (lambda g, a: K.cutout(g, a.astype(np.int16)), "alpha has dtype int16"),
        (lambda g, a: K.cutout(g, a, num_threads=-1), "num_threads"),
        (lambda g, a: K.outline_edges(g, a), "grey has dtype uint8 and shape \\(6, 8, 3\\)"),
        (lambda g, a: K.outline_edges(g[:, :, 0], a[:3]), "alpha has dtype uint8"),
        (lambda g, a: K.outline_edges(g[:0, :, 0], a[:0]), "non-empty"),
        (lambda g, a: K.outline_edges(g[:, :, 0], a, cut=0), "cut is 0"),
        (lambda g, a: K.outline_edges(g[:, :, 0], a, percentile=101), "percentile is 101"),
        (lambda g, a: K.outline_edges(list(g), a), "grey has type list"),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    grey, alpha = _image(6, 8, 3), np.zeros((6, 8), np.uint8)
    with pytest.raises((ValueError, TypeError), match=message):
        call(grey, alpha)
