"""Alpha kernels (matte_to_alpha, keep_shadow, merge_shadow, premultiply) against the numpy
references in alpha_reference.py and against what they are for.

Exact: the resize (bit for bit equal to ``adapt``), the ramp, the shadow and the integer
kernels. The guided filter: within 1 uint8 level of the reference (docs/kernels.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina import kernels as K
from vetrina.kernels.alpha import resized_matte

from .alpha_reference import (
    box_mean_ref,
    keep_shadow_ref,
    matte_to_alpha_ref,
    merge_shadow_ref,
    premultiply_ref,
    resize_matte_ref,
)

RNG = np.random.default_rng(2024)


def rand_matte(h: int, w: int, rng=RNG, spread: float = 0.0) -> np.ndarray:
    """Values in [0, 1] (spread > 0: also outside it, for the clamp)."""
    m = rng.random((h, w), dtype=np.float32)
    if spread:
        m = m * np.float32(1 + 2 * spread) - np.float32(spread)
    return m


def rand_image(h: int, w: int, c: int = 3, rng=RNG) -> np.ndarray:
    return rng.integers(0, 256, (h, w, c), dtype=np.uint8)


def smooth_guide(h: int, w: int, rng=RNG) -> np.ndarray:
    """A guide with structure (gradients, a disc, noise) rather than pure noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255.0 / max(w - 1, 1), yy * 255.0 / max(h - 1, 1), (xx + yy) % 97], -1)
    disc = (yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 4) ** 2
    base[disc] = 255 - base[disc]
    base += rng.normal(0, 6, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def assert_within_one(got: np.ndarray, want: np.ndarray, min_exact: float = 0.99) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype == np.uint8
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max(initial=0) <= 1, f"max difference {diff.max()}"
    assert np.mean(diff == 0) >= min_exact, f"only {np.mean(diff == 0):.4f} exact"


# ---------------------------------------------------------------------------------------------
# matte_to_alpha: resize and ramp (exact)
# ---------------------------------------------------------------------------------------------

SIZES = [
    ((40, 30), (97, 61)),  # up
    ((320, 320), (1024, 683)),  # the service's case: up on one axis more than the other
    ((64, 48), (32, 24)),  # integer down
    ((37, 53), (20, 30)),  # down
    ((20, 90), (41, 30)),  # mixed
    ((16, 24), (16, 24)),  # identity
    ((1, 1), (5, 7)),
    ((6, 4), (1, 1)),
]


@pytest.mark.parametrize(("src", "size"), SIZES, ids=str)
def test_resize_is_adapt_bit_for_bit(src, size):
    m = rand_matte(*src)
    got = resized_matte(m, size)
    want = K.adapt(m[None, None], size=size)[0, 0]
    assert got.dtype == np.float32 and got.shape == size
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(got, resize_matte_ref(m, size))


@pytest.mark.parametrize("level", [0, 1, 2])
def test_resize_is_the_same_at_every_simd_level(level):
    """The row engine has scalar, SSE2 and AVX2 paths (exact 2x, gathered taps): same bits."""
    from vetrina.kernels import _cpu

    m = rand_matte(40, 30)
    g = smooth_guide(80, 60)
    old = _cpu.set_simd(level)
    try:
        got = [resized_matte(m, (80, 60)), resized_matte(m, (97, 61)),
               K.matte_to_alpha(m, (80, 60), guide=g, radius=3)]  # fmt: skip
    finally:
        _cpu.set_simd(old)
    np.testing.assert_array_equal(got[0], K.adapt(m[None, None], size=(80, 60))[0, 0])
    np.testing.assert_array_equal(got[1], resize_matte_ref(m, (97, 61)))
    np.testing.assert_array_equal(got[2], K.matte_to_alpha(m, (80, 60), guide=g, radius=3))


@pytest.mark.parametrize(("src", "size"), SIZES, ids=str)
def test_resize_only_equals_reference(src, size):
    m = rand_matte(*src, spread=0.2)
    got = K.matte_to_alpha(m, size)
    assert got.dtype == np.uint8 and got.shape == size and got.flags.c_contiguous
    np.testing.assert_array_equal(got, matte_to_alpha_ref(m, size))
    # out-of-range values are clamped before the resize
    clamped = np.clip(m, 0, 1)
    np.testing.assert_array_equal(resized_matte(m, size), K.adapt(clamped[None, None], size)[0, 0])


@pytest.mark.parametrize(
    ("low", "high"),
    [(0.0, 1.0), (0.2, 0.8), (0.5, 0.5), (0.0, 0.0), (1.0, 1.0), (0.3, 0.31), (0.0, 0.1)],
)
def test_ramp_equals_reference(low, high):
    m = rand_matte(23, 17)
    m[0, :5] = [0.0, 0.5, 1.0, low, high]
    got = K.matte_to_alpha(m, (50, 33), low=low, high=high)
    np.testing.assert_array_equal(got, matte_to_alpha_ref(m, (50, 33), low=low, high=high))
    same = K.matte_to_alpha(m, m.shape, low=low, high=high)
    if low == high:
        np.testing.assert_array_equal(same, np.where(m >= low, 255, 0))
    else:
        t = np.clip((m.astype(np.float64) - low) / (high - low), 0, 1)
        np.testing.assert_array_equal(same, np.floor(t * 255 + 0.5))


def test_rounding_and_specials():
    vals = np.array([[0.5 / 255, 0.49 / 255, 254.5 / 255, 1.0, 0.0, np.nan, np.inf, -np.inf,
                      -0.0, 2.0]], np.float32)  # fmt: skip
    got = K.matte_to_alpha(vals, vals.shape)
    t = np.floor(np.clip(vals[0].astype(np.float64), 0, 1) * 255 + 0.5)
    t[5] = 0  # NaN -> 0
    assert got[0].tolist() == t.astype(int).tolist()
    assert got[0, 5] == 0 and got[0, 6] == 255 and got[0, 7] == 0
    # the 4-D model output form
    np.testing.assert_array_equal(
        K.matte_to_alpha(vals[None, None], (3, 20)), K.matte_to_alpha(vals, (3, 20))
    )


def test_strided_matte_and_threads():
    big = rand_matte(60, 80)
    m = big[::2, ::-3]
    want = matte_to_alpha_ref(np.ascontiguousarray(m), (77, 55))
    for nt in (None, 1, 2, 3):
        np.testing.assert_array_equal(K.matte_to_alpha(m, (77, 55), num_threads=nt), want)


# ---------------------------------------------------------------------------------------------
# matte_to_alpha: guided filter (within 1 level)
# ---------------------------------------------------------------------------------------------

GUIDED = [
    ((40, 30), (97, 61), 4, 1e-3, 3),
    ((40, 30), (97, 61), 8, 1e-2, 4),
    ((80, 80), (256, 171), 8, 1e-3, 3),
    ((32, 32), (64, 200), 1, 1e-4, 3),
    ((20, 20), (150, 40), 30, 1e-3, 4),
    ((10, 10), (31, 29), 5, 1e-6, 3),
]


@pytest.mark.parametrize(("src", "size", "r", "eps", "ch"), GUIDED, ids=str)
def test_guided_within_one_level_of_reference(src, size, r, eps, ch):
    m = rand_matte(*src)
    g = smooth_guide(*size)
    if ch == 4:
        g = np.concatenate([g, RNG.integers(0, 256, (*size, 1), dtype=np.uint8)], axis=2)
    got = K.matte_to_alpha(m, size, guide=g, radius=r, eps=eps)
    want = matte_to_alpha_ref(m, size, guide=g, radius=r, eps=eps)
    assert_within_one(got, want)
    if ch == 4:  # the guide's alpha is ignored
        g2 = g.copy()
        g2[..., 3] = 0
        np.testing.assert_array_equal(K.matte_to_alpha(m, size, guide=g2, radius=r, eps=eps), got)


def test_guided_with_ramp_and_strided_guide():
    m = rand_matte(30, 40)
    big = smooth_guide(130, 200)
    g = big[::2, ::-2]  # (65, 100), negative column stride
    kw = {"guide": g, "radius": 6, "eps": 1e-3, "low": 0.25, "high": 0.75}
    got = K.matte_to_alpha(m, (65, 100), **kw)
    want = matte_to_alpha_ref(m, (65, 100), **{**kw, "guide": np.ascontiguousarray(g)})
    assert_within_one(got, want)
    hard = K.matte_to_alpha(m, (65, 100), **{**kw, "low": 0.5, "high": 0.5})
    assert set(np.unique(hard)) <= {0, 255}


def test_guided_results_do_not_depend_on_threads():
    m = rand_matte(50, 50)
    g = smooth_guide(300, 200)  # several bands of rows
    runs = [K.matte_to_alpha(m, (300, 200), guide=g, radius=5, num_threads=n) for n in (1, 2, 3)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r, runs[0])


def test_radius_zero_ignores_the_guide():
    m = rand_matte(12, 9)
    g = rand_image(30, 20)
    np.testing.assert_array_equal(
        K.matte_to_alpha(m, (30, 20), guide=g, radius=0), K.matte_to_alpha(m, (30, 20))
    )


@settings(max_examples=25, deadline=None)
@given(
    mh=st.integers(1, 12), mw=st.integers(1, 12), h=st.integers(1, 24), w=st.integers(1, 24),
    radius=st.integers(0, 30), eps=st.sampled_from([1e-8, 1e-5, 1e-3, 0.1, 10.0]),
    ramp=st.sampled_from([(0.0, 1.0), (0.1, 0.9), (0.5, 0.5), (0.0, 0.02)]),
    channels=st.sampled_from([3, 4]), seed=st.integers(0, 2**31),
)  # fmt: skip
def test_property_against_reference(mh, mw, h, w, radius, eps, ramp, channels, seed):
    rng = np.random.default_rng(seed)
    m = rand_matte(mh, mw, rng, spread=0.1)
    g = rand_image(h, w, channels, rng) if rng.random() < 0.5 else smooth_guide(h, w, rng)
    if g.shape[2] != channels:
        g = np.concatenate([g, np.full((h, w, 1), 7, np.uint8)], axis=2)
    kw = {"guide": g, "radius": radius, "eps": eps, "low": ramp[0], "high": ramp[1]}
    got = K.matte_to_alpha(m, (h, w), **kw)
    want = matte_to_alpha_ref(m, (h, w), **kw)
    if radius == 0:
        np.testing.assert_array_equal(got, want)
    else:
        assert_within_one(got, want, min_exact=0.0)
        assert np.mean(got == want) >= 0.95


# ---------------------------------------------------------------------------------------------
# edge cases
# ---------------------------------------------------------------------------------------------


def test_one_pixel():
    m = np.array([[0.25]], np.float32)
    g = np.array([[[10, 20, 30]]], np.uint8)
    assert K.matte_to_alpha(m, (1, 1)).tolist() == [[64]]
    # one pixel: var = cov = 0, a = 0, q = p
    assert K.matte_to_alpha(m, (1, 1), guide=g, radius=3).tolist() == [[64]]
    up = K.matte_to_alpha(m, (3, 4), guide=np.zeros((3, 4, 3), np.uint8), radius=1)
    assert (up == 64).all()


def test_size_equal_to_input_is_the_matte():
    m = rand_matte(33, 21)
    np.testing.assert_array_equal(resized_matte(m, (33, 21)), m)
    np.testing.assert_array_equal(K.matte_to_alpha(m, (33, 21)), np.floor(m * 255.0 + 0.5))


def test_huge_radius_is_the_whole_image():
    m = rand_matte(8, 6)
    g = smooth_guide(20, 30)
    got = K.matte_to_alpha(m, (20, 30), guide=g, radius=500)
    assert_within_one(got, matte_to_alpha_ref(m, (20, 30), guide=g, radius=500))
    # every window is the whole image: equal to radius = max(H, W) exactly
    np.testing.assert_array_equal(got, K.matte_to_alpha(m, (20, 30), guide=g, radius=30))
    np.testing.assert_array_equal(got, K.matte_to_alpha(m, (20, 30), guide=g, radius=16384))


def test_tiny_eps():
    m = rand_matte(16, 16)
    g = smooth_guide(64, 64)
    kw = {"guide": g, "radius": 4, "eps": 1e-8}
    assert_within_one(K.matte_to_alpha(m, (64, 64), **kw), matte_to_alpha_ref(m, (64, 64), **kw))


@pytest.mark.parametrize("grey", [0, 128, 255])
def test_constant_guide_is_a_double_box_filter(grey):
    """A flat guide has no edges to follow: var = cov = 0 exactly, a = 0, q = box(box(p))."""
    m = rand_matte(10, 12)
    g = np.full((40, 36, 3), grey, np.uint8)
    got = K.matte_to_alpha(m, (40, 36), guide=g, radius=3, eps=1e-8)
    p = resize_matte_ref(m, (40, 36))
    want = np.floor(np.clip(box_mean_ref(box_mean_ref(p, 3), 3), 0, 1) * 255 + 0.5)
    assert_within_one(got, want.astype(np.uint8), min_exact=0.995)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_constant_matte_stays_constant(value):
    m = np.full((8, 8), value, np.float32)
    got = K.matte_to_alpha(m, (50, 40), guide=smooth_guide(50, 40), radius=6, eps=1e-6)
    assert (got == round(value * 255)).all()


def test_guided_filter_snaps_the_edge_to_the_photo():
    """A hard-edged object: its matte at 1/4 resolution, upsampled 4x, has a blurred and
    blocky edge; the guided filter with the photo (sharp edge) puts it back where the photo's
    edge is: fewer misclassified pixels than the plain resize."""
    H = W = 192
    yy, xx = np.mgrid[0:H, 0:W]
    # an irregular shape: a disc with a wavy border
    ang = np.arctan2(yy - 96, xx - 96)
    truth = np.hypot(yy - 96, xx - 96) < 60 + 9 * np.sin(5 * ang)
    rng = np.random.default_rng(7)
    photo = np.where(truth[..., None], [200, 60, 40], [235, 235, 230]).astype(np.float64)
    photo = np.clip(photo + rng.normal(0, 4, photo.shape), 0, 255).astype(np.uint8)
    matte = truth.reshape(48, 4, 48, 4).mean(axis=(1, 3)).astype(np.float32)  # area 1/4
    plain = K.matte_to_alpha(matte, (H, W)) >= 128
    guided = K.matte_to_alpha(matte, (H, W), guide=photo, radius=4, eps=1e-4) >= 128
    wrong_plain = int(np.count_nonzero(plain != truth))
    wrong_guided = int(np.count_nonzero(guided != truth))
    assert wrong_guided < wrong_plain * 0.5, (wrong_guided, wrong_plain)


# ---------------------------------------------------------------------------------------------
# keep_shadow
# ---------------------------------------------------------------------------------------------


def shadow_scene(h=60, w=80, rng=RNG):
    """A light background with a soft multiplicative shadow, a product with alpha 255."""
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.full((h, w, 3), (228, 226, 230), np.float64)
    dark = 0.6 * np.exp(-(((yy - 0.7 * h) / (0.12 * h)) ** 2 + ((xx - w / 2) / (0.3 * w)) ** 2))
    img = bg * (1 - dark[..., None]) + rng.normal(0, 1.5, bg.shape)
    alpha = np.zeros((h, w), np.uint8)
    box = (slice(int(0.2 * h), int(0.6 * h)), slice(int(0.3 * w), int(0.7 * w)))
    img[box] = (30, 90, 200)
    alpha[box] = 255
    alpha[box[0].start - 1, box[1]] = 128  # a soft product edge
    return np.clip(img, 0, 255).astype(np.uint8), alpha, dark


@pytest.mark.parametrize(
    "kw",
    [{}, {"strength": 1.5}, {"min_darkening": 0.0}, {"background": 229}, {"background": 1},
     {"strength": 0.0}, {"min_darkening": 1.0}, {"background": 255, "strength": 3.0}],
    ids=str,
)  # fmt: skip
def test_keep_shadow_equals_reference(kw):
    img, alpha, _ = shadow_scene()
    got = K.keep_shadow(img, alpha, **kw)
    assert got.dtype == np.uint8 and got.shape == alpha.shape and got.flags.c_contiguous
    np.testing.assert_array_equal(got, keep_shadow_ref(img, alpha, **kw))


def test_keep_shadow_recovers_the_darkening():
    img, alpha, dark = shadow_scene(rng=np.random.default_rng(3))
    got = K.keep_shadow(img, alpha).astype(np.float64) / 255
    outside = alpha == 0
    err = np.abs(got - np.where(dark >= 0.04, dark, 0))[outside]
    assert err.max() < 0.06  # min_darkening (0.04) cuts the faint tail, plus the noise
    assert err.mean() < 0.01
    assert (K.keep_shadow(img, alpha)[alpha == 255] == 0).all()


def test_keep_shadow_rgba_strided_and_threads():
    img, alpha, _ = shadow_scene()
    rgba = np.concatenate([img, np.full((*alpha.shape, 1), 9, np.uint8)], axis=2)[:, ::-1]
    a = alpha[:, ::-1]
    want = keep_shadow_ref(np.ascontiguousarray(rgba), np.ascontiguousarray(a))
    for nt in (1, 2, 3):
        np.testing.assert_array_equal(K.keep_shadow(rgba, a, num_threads=nt), want)


def test_keep_shadow_without_background_pixels_is_zero():
    img = rand_image(5, 6)
    assert not K.keep_shadow(img, np.full((5, 6), 255, np.uint8)).any()
    assert not K.keep_shadow(img, np.full((5, 6), 1, np.uint8)).any()
    # a black background cannot be darkened
    assert not K.keep_shadow(np.zeros((5, 6, 3), np.uint8), np.zeros((5, 6), np.uint8)).any()


def test_keep_shadow_median_is_the_lower_median():
    img = np.zeros((1, 4, 3), np.uint8)
    img[0, :, :] = np.array([100, 200, 50, 150])[:, None]
    alpha = np.zeros((1, 4), np.uint8)
    got = K.keep_shadow(img, alpha, min_darkening=0.0)
    # sorted 50, 100, 150, 200: lower median 100
    want = np.floor(np.clip(1 - np.array([100, 200, 50, 150]) / 100, 0, 1) * 255 + 0.5)
    assert got[0].tolist() == want.astype(int).tolist()


# ---------------------------------------------------------------------------------------------
# merge_shadow and premultiply
# ---------------------------------------------------------------------------------------------


def all_alpha_pairs(rng=RNG) -> tuple[np.ndarray, np.ndarray]:
    """Every (A, S) pair, random colours."""
    a, s = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgba = rng.integers(0, 256, (256, 256, 4), dtype=np.uint8)
    rgba[..., 3] = a
    return rgba, s.astype(np.uint8)


def test_merge_shadow_equals_reference():
    rgba, s = all_alpha_pairs()
    got = K.merge_shadow(rgba, s)
    assert got.dtype == np.uint8 and got.shape == rgba.shape and got.flags.c_contiguous
    np.testing.assert_array_equal(got, merge_shadow_ref(rgba, s))
    # no shadow: the product is unchanged where it is visible (a > 0)
    same = K.merge_shadow(rgba, np.zeros_like(s))
    vis = rgba[..., 3] > 0
    np.testing.assert_array_equal(same[vis], rgba[vis])
    assert not same[~vis].any()


def test_merge_shadow_composites_like_a_darkened_background():
    rgba, s = all_alpha_pairs()
    merged = K.merge_shadow(rgba, s)
    on_white = K.composite(merged, 255).astype(int)
    darkened = (255 - s.astype(np.uint8))[..., None].repeat(3, axis=2)
    want = K.composite(rgba, darkened).astype(int)
    assert np.abs(on_white - want).max() <= 1


def test_merge_shadow_strided_and_threads():
    rgba, s = all_alpha_pairs()
    r2, s2 = rgba[::3, ::-2], s[::3, ::-2]
    want = merge_shadow_ref(np.ascontiguousarray(r2), np.ascontiguousarray(s2))
    for nt in (1, 2):
        np.testing.assert_array_equal(K.merge_shadow(r2, s2, num_threads=nt), want)


def test_premultiply():
    rgba, _ = all_alpha_pairs()
    got = K.premultiply(rgba)
    np.testing.assert_array_equal(got, premultiply_ref(rgba))
    np.testing.assert_array_equal(got[..., 3], rgba[..., 3])
    for bg in (255, 0, (10, 200, 30), rand_image(256, 256)):
        d = K.composite(got, bg, alpha="premultiplied").astype(int) - K.composite(rgba, bg)
        assert np.abs(d).max() <= 1
    np.testing.assert_array_equal(K.premultiply(rgba[::-1, ::2]), premultiply_ref(rgba[::-1, ::2]))


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------

M = np.zeros((4, 5), np.float32)
G = np.zeros((8, 10, 3), np.uint8)


@pytest.mark.parametrize(
    ("args", "kw", "err", "match"),
    [
        (([[0.5]], (4, 4)), {}, TypeError, r"matte_to_alpha: matte has type list; expected a "
                                           r"numpy float32"),
        ((M.astype(np.float64), (4, 4)), {}, ValueError, r"matte has dtype float64; expected "
                                                        r"float32"),
        ((np.zeros((2, 1, 4, 5), np.float32), (4, 4)), {}, ValueError,
         r"matte has shape \(2, 1, 4, 5\); expected \(h, w\) or \(1, 1, h, w\)"),
        ((np.zeros((0, 5), np.float32), (4, 4)), {}, ValueError, r"matte has shape \(0, 5\)"),
        ((M, (0, 4)), {}, ValueError, r"matte_to_alpha: size is \(0, 4\)"),
        ((M, (4, 16385)), {}, ValueError, r"size is \(4, 16385\)"),
        ((M, 5), {}, ValueError, r"size is 5; expected \(height, width\)"),
        ((M, (8, 10)), {"guide": G[:, :9]}, ValueError,
         r"guide has shape \(8, 9, 3\); expected a uint8 RGB\(A\) image of shape \(8, 10, 3\|4\)"),
        ((M, (8, 10)), {"guide": G[..., :1]}, ValueError, r"guide has shape \(8, 10, 1\)"),
        ((M, (8, 10)), {"guide": G.astype(np.float32)}, ValueError,
         r"guide has dtype float32; expected uint8"),
        ((M, (8, 10)), {"guide": [1]}, TypeError, r"guide has type list"),
        ((M, (8, 10)), {"guide": G, "radius": -1}, ValueError,
         r"radius is -1; expected an int in 0\.\.16384"),
        ((M, (8, 10)), {"guide": G, "radius": 2.0}, ValueError, r"radius is 2\.0"),
        ((M, (8, 10)), {"radius": 2}, ValueError, r"radius is 2 but guide is None"),
        ((M, (8, 10)), {"guide": G, "radius": 2, "eps": 0}, ValueError,
         r"eps is 0; expected a number in \[1e-08, 10000\]"),
        ((M, (8, 10)), {"eps": float("nan")}, ValueError, r"eps is nan"),
        ((M, (8, 10)), {"low": -0.1}, ValueError, r"low is -0\.1; expected a number in \[0, 1\]"),
        ((M, (8, 10)), {"high": 1.5}, ValueError, r"high is 1\.5"),
        ((M, (8, 10)), {"low": 0.6, "high": 0.4}, ValueError,
         r"low is 0\.6 and high is 0\.4; expected low <= high"),
        ((M, (8, 10)), {"low": True}, ValueError, r"low is True"),
        ((M, (8, 10)), {"num_threads": 0}, ValueError, r"num_threads is 0"),
    ],
)  # fmt: skip
def test_matte_to_alpha_errors(args, kw, err, match):
    with pytest.raises(err, match=match):
        K.matte_to_alpha(*args, **kw)


IMG = np.zeros((6, 7, 3), np.uint8)
A = np.zeros((6, 7), np.uint8)
RGBA = np.zeros((6, 7, 4), np.uint8)


@pytest.mark.parametrize(
    ("fn", "args", "kw", "err", "match"),
    [
        (K.keep_shadow, (IMG[..., :1], A), {}, ValueError,
         r"keep_shadow: image has shape \(6, 7, 1\); expected a uint8 RGB\(A\)"),
        (K.keep_shadow, (IMG, A[:, :6]), {}, ValueError,
         r"keep_shadow: alpha has dtype uint8 and shape \(6, 6\); expected uint8 of shape "
         r"\(6, 7\)"),
        (K.keep_shadow, (IMG, A.astype(np.float32)), {}, ValueError, r"alpha has dtype float32"),
        (K.keep_shadow, (IMG, None), {}, TypeError, r"alpha has type NoneType"),
        (K.keep_shadow, ("x", A), {}, TypeError, r"image has type str"),
        (K.keep_shadow, (IMG, A), {"strength": -1}, ValueError,
         r"strength is -1; expected a number in \[0, 1000\]"),
        (K.keep_shadow, (IMG, A), {"min_darkening": 2}, ValueError, r"min_darkening is 2"),
        (K.keep_shadow, (IMG, A), {"background": 0}, ValueError,
         r"background is 0; expected None .* or a grey level in 1\.\.255"),
        (K.keep_shadow, (IMG, A), {"background": 12.5}, ValueError, r"background is 12\.5"),
        (K.merge_shadow, (IMG, A), {}, ValueError,
         r"merge_shadow: rgba has shape \(6, 7, 3\); expected \(H, W, 4\) uint8"),
        (K.merge_shadow, (RGBA, A.T), {}, ValueError, r"merge_shadow: shadow has dtype uint8 "
                                                      r"and shape \(7, 6\)"),
        (K.merge_shadow, (RGBA, A), {"num_threads": 2000}, ValueError, r"num_threads is 2000"),
        (K.premultiply, (RGBA.astype(np.int16),), {}, ValueError,
         r"premultiply: rgba has dtype int16; expected uint8"),
        (K.premultiply, (RGBA[..., 0],), {}, ValueError,
         r"premultiply: rgba has shape \(6, 7\); expected"),
    ],
)  # fmt: skip
def test_other_errors(fn, args, kw, err, match):
    with pytest.raises(err, match=match):
        fn(*args, **kw)
