"""preprocess interpolation modes: area (antialiased) and bilinear-u8 (OpenCV-exact), against
the numpy reference (bit for bit) and against OpenCV itself."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vetrina.kernels import preprocess

from .reference import area_taps, cv_resize_u8, preprocess_ref

F32 = np.float32
RNG = np.random.default_rng(314)


def rand_img(h: int, w: int, c: int | None = 3, rng=RNG) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def values(img, size, interpolation, **kw):
    """preprocess with scale 1 -> (h, w, 3) float32 values."""
    return preprocess([img], size, scale=1.0, interpolation=interpolation, **kw)[0].transpose(
        1, 2, 0
    )


# (src_h, src_w, dst_h, dst_w): integer factors (box rule), fractional downscales, upscales,
# identity, 1-pixel and very wide cases
AREA_SIZES = [
    (64, 64, 32, 32),
    (96, 60, 24, 20),
    (90, 90, 30, 30),
    (1024, 1024, 256, 256),
    (37, 53, 20, 30),
    (100, 100, 33, 71),
    (49, 98, 1, 2),
    (7, 5, 7, 5),
    (5, 7, 40, 31),
    (3, 3, 8, 9),
    (1, 1, 3, 5),
    (9, 1, 2, 1),
    (2, 4096, 1, 1000),
    (1, 4093, 1, 17),
]


# ---------------------------------------------------------------------------------------
# area
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sh", "sw", "dh", "dw"), AREA_SIZES)
@pytest.mark.parametrize("c", [None, 3, 4])
def test_area_matches_reference_exactly(sh, sw, dh, dw, c):
    img = rand_img(sh, sw, c)
    kw = {"scale": (0.5, -1 / 255, 2.0), "offset": (-0.25, 1.0, 3.5), "src_order": "BGR"}
    got = preprocess([img], (dh, dw), interpolation="area", **kw)
    np.testing.assert_array_equal(got, preprocess_ref([img], (dh, dw), interpolation="area", **kw))


@pytest.mark.parametrize(("sh", "sw", "dh", "dw"), AREA_SIZES)
def test_area_equals_cv2_inter_area_on_float_input(sh, sw, dh, dw):
    # Same pixel-area tables and accumulation order as OpenCV: equal on float32 input, for
    # downscales, integer factors and upscales alike (mixed directions: see the next test).
    img = rand_img(sh, sw, 3)
    if (sh - dh) * (sw - dw) < 0:
        pytest.skip("mixed directions")
    want = cv2.resize(img.astype(F32), (dw, dh), interpolation=cv2.INTER_AREA).reshape(dh, dw, 3)
    np.testing.assert_allclose(values(img, (dh, dw), "area"), want, rtol=0, atol=1e-4)


@pytest.mark.parametrize(("sh", "sw", "dh", "dw"), [(60, 20, 15, 80), (9, 200, 30, 50)])
def test_area_mixed_directions_is_per_axis(sh, sw, dh, dw):
    # Down on one axis and up on the other: vetrina resamples each axis with its own area
    # rule (antialiased where it shrinks); OpenCV uses its 2-tap upscale formula on both
    # axes. Per axis, each step equals OpenCV on that axis alone.
    img = rand_img(sh, sw, 3).astype(F32)
    step = cv2.resize(img, (dw, sh), interpolation=cv2.INTER_AREA)
    want = cv2.resize(step, (dw, dh), interpolation=cv2.INTER_AREA)
    got = values(img.astype(np.uint8), (dh, dw), "area")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)


def test_area_integer_factor_is_the_block_mean():
    img = rand_img(40, 60, 3)
    got = values(img, (10, 20), "area")
    want = img.reshape(10, 4, 20, 3, 3).astype(np.int64).sum(axis=(1, 3)).astype(F32)
    np.testing.assert_array_equal(got, want * (F32(1) / F32(12)))


def test_area_antialiases_where_bilinear_aliases():
    # a 1-pixel checkerboard averages to mid grey under area; bilinear at 4x picks samples
    y, x = np.mgrid[:256, :256]
    img = np.repeat((((y + x) % 2) * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    area = values(img, (64, 64), "area")
    assert np.abs(area - 127.5).max() < 1e-4
    assert np.abs(values(img, (63, 63), "area") - 127.5).max() < 8
    assert np.abs(values(img, (63, 63), "bilinear") - 127.5).max() > 60


def test_area_weights_sum_to_one():
    for src, dst in [(100, 33), (1024, 300), (7, 3), (5, 9), (3, 1000), (1000, 999)]:
        for taps in area_taps(src, dst):
            assert abs(sum(float(w) for _, w in taps) - 1) < 2e-3


# ---------------------------------------------------------------------------------------
# bilinear-u8: bit-exact OpenCV uint8 INTER_LINEAR, and so cv2.dnn.blobFromImages
# ---------------------------------------------------------------------------------------


U8_SIZES = [
    (37, 53, 20, 90),
    (64, 64, 32, 32),
    (1024, 1024, 256, 256),
    (1024, 1024, 512, 512),
    (1000, 750, 384, 288),
    (5, 7, 40, 3),
    (1, 1, 4, 6),
    (6, 4, 1, 1),
    (3, 1000, 2, 4096),
    (33, 47, 33, 47),
    (31, 63, 15, 31),
]


@pytest.mark.parametrize(("sh", "sw", "dh", "dw"), U8_SIZES)
@pytest.mark.parametrize("c", [None, 3, 4])
def test_bilinear_u8_equals_cv2_resize_bit_for_bit(sh, sw, dh, dw, c):
    img = rand_img(sh, sw, c)
    want = cv2.resize(img, (dw, dh), interpolation=cv2.INTER_LINEAR).reshape(dh, dw, -1)
    want = want[:, :, [0, 0, 0]] if want.shape[2] == 1 else want[:, :, :3]
    np.testing.assert_array_equal(values(img, (dh, dw), "bilinear-u8"), want.astype(F32))
    cv = cv2.resize(img, (dw, dh), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(
        cv_resize_u8(img.reshape(sh, sw, -1), dh, dw).reshape(cv.shape), cv
    )


def test_bilinear_u8_random_sizes_equal_cv2():
    rng = np.random.default_rng(11)
    for _ in range(60):
        sh, sw, dh, dw = (int(v) for v in rng.integers(1, 120, 4))
        img = rand_img(sh, sw, 3, rng)
        want = cv2.resize(img, (dw, dh), interpolation=cv2.INTER_LINEAR).astype(F32)
        np.testing.assert_array_equal(values(img, (dh, dw), "bilinear-u8"), want)


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("shapes", [[(61, 45), (20, 100), (256, 256)], [(128, 96)] * 3])
def test_bilinear_u8_matches_blob_from_images_with_resize(swap, shapes):
    imgs = [rand_img(h, w) for h, w in shapes]
    sf, mean = 1 / 127.5, (104.0, 117.0, 123.0)
    blob = cv2.dnn.blobFromImages(imgs, scalefactor=sf, size=(64, 48), mean=mean, swapRB=swap)
    got = preprocess(
        imgs,
        (48, 64),
        scale=sf,
        offset=[-m * sf for m in mean],
        src_order="BGR",
        dst_order="RGB" if swap else "BGR",
        interpolation="bilinear-u8",
    )
    np.testing.assert_allclose(got, blob, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------
# every mode: reference and contiguous copies, property-based
# ---------------------------------------------------------------------------------------


@st.composite
def strided_images(draw):
    h = draw(st.integers(1, 40))
    w = draw(st.one_of(st.integers(1, 40), st.integers(1000, 4096)))
    if w > 40:
        h = min(h, 3)
    c = draw(st.sampled_from([None, 1, 3, 4]))
    sy = draw(st.sampled_from([1, 2, -1]))
    sx = draw(st.sampled_from([1, 2, -1]))
    base = rand_img(h * abs(sy), w * abs(sx), c, np.random.default_rng(draw(st.integers(0, 99))))
    view = base[::sy, ::sx]
    if c in (3, 4) and draw(st.booleans()):
        view = view[:, :, ::-1]
    return view


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    imgs=st.lists(strided_images(), min_size=1, max_size=3),
    dh=st.integers(1, 24),
    dw=st.one_of(st.integers(1, 48), st.integers(1000, 2048)),
    interpolation=st.sampled_from(["bilinear", "area", "bilinear-u8"]),
    fit=st.sampled_from(["stretch", "letterbox", "crop"]),
    dtype=st.sampled_from([np.float32, np.float16]),
    swap=st.booleans(),
)
def test_property_modes_match_reference(imgs, dh, dw, interpolation, fit, dtype, swap):
    kw = {
        "scale": (1 / 58.4, 1 / 57.1, 1 / 57.4),
        "offset": (-2.1, -2.0, -1.8),
        "dst_order": "BGR" if swap else "RGB",
        "interpolation": interpolation,
        "fit": fit,
        "pad_value": (114, 0, 255),
        "dtype": dtype,
    }
    got = preprocess(imgs, (dh, dw), **kw)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, preprocess_ref(imgs, (dh, dw), **kw))
    copies = [np.ascontiguousarray(im) for im in imgs]
    np.testing.assert_array_equal(got, preprocess(copies, (dh, dw), num_threads=1, **kw))
