"""preprocess interpolation modes: area (antialiased), bilinear-u8 (OpenCV-exact) and lanczos
(PIL-compatible), against the numpy reference (bit for bit) and against OpenCV / PIL."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vetrina.kernels import _cpu, preprocess

from . import layouts
from .reference import area_taps, cv_resize_u8, lanczos3, lanczos_taps, preprocess_ref, sinpi

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


def _big_block_images():
    """Integer-factor area blocks of 16843010+ pixels, where 255 * pixels passes 2**32 (a
    32-bit block sum wrapped: 8192 x 8192 of 255 -> 1 x 1 gave 63). Broadcast views (no
    memory; zero strides) and one real packed image (the SIMD-capable layout)."""
    rng = np.random.default_rng(7)
    row = rng.integers(0, 256, (1, 8192, 3), dtype=np.uint8)
    return [
        ("8192x8192 of 255", np.broadcast_to(np.uint8(255), (8192, 8192, 3)), (1, 1)),
        ("4105x4105 gray", np.broadcast_to(np.uint8(255), (4105, 4105)), (1, 1)),
        ("random rows", np.broadcast_to(row, (8192, 8192, 3)), (1, 2)),
        ("8212x4106 of 250 to 2x1", np.broadcast_to(np.uint8(250), (8212, 4106, 4)), (2, 1)),
        ("wide 17 rows", np.broadcast_to(np.uint8(255), (17, 1 << 20)), (1, 1)),
        ("packed 4105x4105", np.full((4105, 4105, 3), 255, np.uint8), (1, 1)),
    ]


def test_area_integer_factor_sums_past_32_bits():
    old = _cpu.set_simd(2)
    try:
        for name, img, size in _big_block_images():
            want = preprocess_ref([img], size, scale=1.0, interpolation="area")
            want = want[0].transpose(1, 2, 0)
            if img.min() == img.max():  # the mean, up to the rounding of sum * (1 / area)
                assert np.abs(want - F32(img.flat[0])).max() < 1e-3, (name, want)
            for level in (0, 2):  # blocks past 257 pixels take the scalar sums at any level
                _cpu.set_simd(level)
                np.testing.assert_array_equal(values(img, size, "area"), want, err_msg=name)
        # mapped (the default 1/255 scale) and float16: the same values through the map
        img = np.broadcast_to(np.uint8(255), (8192, 8192, 3))
        for dt in (np.float32, np.float16):
            got = preprocess([img], (1, 1), interpolation="area", dtype=dt)
            np.testing.assert_array_equal(
                got, preprocess_ref([img], (1, 1), interpolation="area", dtype=dt)
            )
            assert (got == dt(1)).all()
    finally:
        _cpu.set_simd(old)


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
    size=layouts.sizes(24, 48, thin=24),
    interpolation=st.sampled_from(["bilinear", "area", "bilinear-u8"]),
    fit=st.sampled_from(["stretch", "letterbox", "crop"]),
    dtype=st.sampled_from([np.float32, np.float16]),
    swap=st.booleans(),
)
def test_property_modes_match_reference(imgs, size, interpolation, fit, dtype, swap):
    dh, dw = size
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


# ---------------------------------------------------------------------------------------
# lanczos: PIL's Image.resize(..., LANCZOS) weights in float32
# ---------------------------------------------------------------------------------------

LANCZOS_SIZES = [
    (683, 1024, 320, 320),  # rembg's input size from a photo
    (37, 53, 20, 30),
    (5, 7, 40, 31),
    (7, 5, 7, 5),
    (1, 1, 3, 5),
    (9, 1, 2, 1),
    (3, 3, 8, 9),
    (2, 4096, 1, 1000),
    (60, 20, 15, 80),
    (49, 98, 1, 2),
    (300, 2, 3, 2),
]


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A synthetic photo: smooth shading, saturated flat regions with hard edges (the
    ringing of Lanczos' negative lobes), fine texture and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w].astype(np.float64)
    img = 120 + 80 * np.sin(x / (w / 5) + np.array([0, 2, 4])[:, None, None]) * np.cos(y / (h / 3))
    img = img.transpose(1, 2, 0) + rng.normal(0, 12, (h, w, 3))
    img[(x - w / 3) ** 2 + (y - h / 2) ** 2 < (min(h, w) / 4) ** 2] = 255
    img[int(h * 0.7) :, : w // 4] = 0
    img[: h // 5, int(w * 0.6) :] = (255, 0, 0)
    img[:, int(w * 0.8) : int(w * 0.8) + 3] = 250 * ((np.arange(h) // 2) % 2)[:, None, None]
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("sh", "sw", "dh", "dw"), LANCZOS_SIZES)
@pytest.mark.parametrize("c", [None, 3, 4])
def test_lanczos_matches_reference_exactly(sh, sw, dh, dw, c):
    img = rand_img(sh, sw, c)
    kw = {"scale": (0.5, -1 / 255, 2.0), "offset": (-0.25, 1.0, 3.5), "src_order": "BGR"}
    got = preprocess([img], (dh, dw), interpolation="lanczos", **kw)
    want = preprocess_ref([img], (dh, dw), interpolation="lanczos", **kw)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fit", ["letterbox", "crop"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_lanczos_fits_match_reference(fit, dtype):
    imgs = [photo(90, 61), rand_img(20, 70, 4), rand_img(13, 9, None), rand_img(1, 40, 1)]
    for size in [(32, 48), (64, 16), (120, 150)]:
        kw = {"interpolation": "lanczos", "fit": fit, "pad_value": (114, 0, 255), "dtype": dtype}
        got, places = preprocess(imgs, size, return_placements=True, **kw)
        np.testing.assert_array_equal(got, preprocess_ref(imgs, size, **kw))
        # the content is the window resized on its own (crop-then-resize; taps never leave it)
        for i, p in enumerate(places):
            (y, x, h, w), (t, left, ch, cw) = p.src_box, p.dst_box
            window = imgs[i][y : y + h, x : x + w]
            alone = preprocess([window], (ch, cw), **{**kw, "fit": "stretch"})[0]
            np.testing.assert_array_equal(got[i][:, t : t + ch, left : left + cw], alone)


def test_lanczos_tap_tables_equal_reference():
    for src, dst in [(1024, 320), (683, 320), (7, 40), (1, 5), (5, 1), (100, 100), (3000, 7)]:
        index, n, weight = _cpu.lanczos_table(src, dst)
        taps = lanczos_taps(src, dst)
        assert index.shape[1] == max(len(t) for t in taps)
        for d, t in enumerate(taps):
            assert n[d] == len(t)
            assert index[d, : n[d]].tolist() == [k for k, _ in t]
            assert weight[d, : n[d]].tobytes() == np.array([w for _, w in t], F32).tobytes()
            assert not weight[d, n[d] :].any()
            assert abs(sum(float(w) for _, w in t) - 1) < 1e-6


def test_lanczos_kernel_values():
    # sin(pi x) to a few ulps, exact zeros at the integers (so identity sizes copy)
    xs = np.linspace(-3, 3, 20001)
    got = np.array([sinpi(float(x)) for x in xs])
    # (np.sin(np.pi * x) itself carries the rounding of pi * x: up to ~1.8e-15 at |x| = 3)
    np.testing.assert_allclose(got, np.sin(np.pi * xs), rtol=0, atol=4e-15)
    np.testing.assert_allclose(sinpi(1e-9), np.pi * 1e-9, rtol=1e-15)
    assert all(sinpi(float(k)) == 0.0 for k in range(-3, 4))
    assert lanczos3(0.0) == 1.0 and lanczos3(3.0) == 0.0 and lanczos3(-3.0) == 0.0
    assert lanczos3(1.0) == 0.0 and lanczos3(-1.5) < 0 < lanczos3(2.5) < lanczos3(0.5)
    index, _, weight = _cpu.lanczos_table(9, 9)  # identity: weight 1 on the pixel itself
    assert (weight[np.arange(9), np.arange(9) - index[:, 0]] == 1).all()
    assert (np.count_nonzero(weight, axis=1) == 1).all()


@pytest.mark.parametrize("c", [None, 3, 4])
def test_lanczos_identity_size_is_exact(c):
    img = rand_img(31, 17, c)
    got = values(img, (31, 17), "lanczos")
    src = img.reshape(31, 17, -1)
    want = np.repeat(src, 3, axis=2) if src.shape[2] == 1 else src[:, :, :3]
    np.testing.assert_array_equal(got, want.astype(F32))


@pytest.mark.parametrize(
    "size", [(320, 320), (200, 517), (97, 31), (683, 1024), (700, 1100), (1, 1)]
)
@pytest.mark.parametrize("kind", ["photo", "noise", "gray"])
def test_lanczos_within_one_level_of_pil(size, kind):
    pytest.importorskip("PIL")
    from PIL import Image

    img = {
        "photo": lambda: photo(683, 1024, 1),
        "noise": lambda: rand_img(683, 1024, 3),
        "gray": lambda: photo(683, 1024, 2)[:, :, 1],
    }[kind]()
    h, w = size
    want = np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.LANCZOS))
    want = want.reshape(h, w, -1).astype(np.int16)
    v = values(img, size, "lanczos")
    # not clamped: the vertical pass' ringing leaves [0, 255] (PIL clamps, rounds to uint8)
    if kind == "photo" and size in [(320, 320), (700, 1100)]:
        assert v.min() < -0.5 or v.max() > 255.5
    got = np.clip(np.floor(v + 0.5), 0, 255).astype(np.int16)
    assert np.abs(got - want).max() <= 1


def test_lanczos_antialiases_where_bilinear_aliases():
    y, x = np.mgrid[:256, :256]
    img = np.repeat((((y + x) % 2) * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    assert np.abs(values(img, (63, 63), "lanczos") - 127.5).max() < 4


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_lanczos_num_threads_and_simd_levels_do_not_change_the_result(threads):
    imgs = [photo(300, 200), rand_img(9, 500, 4), rand_img(128, 128, 1)[::-1, ::2]]
    kw = {"interpolation": "lanczos", "fit": "letterbox", "scale": (1 / 58.4, 0.5, 3e-39)}
    want = preprocess(imgs, (97, 41), **kw)
    old = _cpu.set_simd(2)
    try:
        for level in (0, 1, 2):
            _cpu.set_simd(level)
            got = preprocess(imgs, (97, 41), num_threads=threads, **kw)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    finally:
        _cpu.set_simd(old)
    f16 = preprocess(imgs, (97, 41), num_threads=threads, dtype=np.float16, **kw)
    np.testing.assert_array_equal(f16, want.astype(np.float16))


def test_lanczos_strided_and_broadcast_sources():
    base = photo(80, 120)
    row = rand_img(1, 300, 3)
    imgs = [
        base[::-1],
        base[:, ::-1],
        base[::3, ::2],
        base[:, :, ::-1],
        np.broadcast_to(row, (50, 300, 3)),
    ]
    for im in imgs:
        got = preprocess([im], (37, 29), interpolation="lanczos", scale=1.0)
        np.testing.assert_array_equal(
            got, preprocess_ref([im], (37, 29), interpolation="lanczos", scale=1.0)
        )
        np.testing.assert_array_equal(
            got,
            preprocess([np.ascontiguousarray(im)], (37, 29), interpolation="lanczos", scale=1.0),
        )


def test_lanczos_tall_windows_without_the_row_ring():
    # a 1100 -> 1 vertical window: 1100 cached rows of 2048 x 3 floats per thread exceed the
    # ring budget (64 MiB) with 3 threads (the two-row cache is used), not with 1
    img = rand_img(1100, 2048, None)
    want = preprocess_ref([img], (1, 2048), interpolation="lanczos")
    for threads in (1, 3):
        got = preprocess([img], (1, 2048), interpolation="lanczos", num_threads=threads)
        np.testing.assert_array_equal(got, want)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    imgs=st.lists(strided_images(), min_size=1, max_size=3),
    size=layouts.sizes(24, 48, thin=24),
    fit=st.sampled_from(["stretch", "letterbox", "crop"]),
    dtype=st.sampled_from([np.float32, np.float16]),
)
def test_property_lanczos_matches_reference(imgs, size, fit, dtype):
    dh, dw = size
    kw = {"interpolation": "lanczos", "fit": fit, "pad_value": 7, "dtype": dtype}
    got = preprocess(imgs, (dh, dw), **kw)
    np.testing.assert_array_equal(got, preprocess_ref(imgs, (dh, dw), **kw))
