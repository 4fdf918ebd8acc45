"""vetrina.kernels.preprocess against the numpy reference, OpenCV, and its own contract."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vetrina.kernels import preprocess

from .reference import preprocess_ref

F32 = np.float32
RNG = np.random.default_rng(20240611)


def rand_img(h: int, w: int, c: int | None = 3, rng=RNG) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def cv_resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


# (src_h, src_w, dst_h, dst_w): down, up, identity, exact 2x, one-pixel and wide cases
SIZES = [
    (37, 53, 37, 53),
    (37, 53, 20, 90),
    (64, 64, 32, 32),
    (5, 7, 40, 3),
    (1, 1, 4, 6),
    (6, 4, 1, 1),
    (1, 17, 1, 5),
    (100, 1, 7, 1),
    (2, 4096, 3, 1000),
    (3, 1000, 2, 4096),
    (1, 4096, 1, 4096),
    (4, 4093, 4, 4096),
]


# ---------------------------------------------------------------------------------------
# numpy reference (exact: same float32 operations in the same order, no FMA in the build)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sh", "sw", "dh", "dw"), SIZES)
@pytest.mark.parametrize("c", [None, 1, 3, 4])
def test_matches_reference_exactly(sh, sw, dh, dw, c):
    img = rand_img(sh, sw, c)
    kw = {"scale": (0.5, -1 / 255, 2.0), "offset": (-0.25, 1.0, 3.5), "src_order": "BGR"}
    got = preprocess([img], (dh, dw), **kw)
    assert got.shape == (1, 3, dh, dw) and got.dtype == F32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, preprocess_ref([img], (dh, dw), **kw))


def test_default_scale_is_float32_one_over_255():
    img = rand_img(9, 11)
    got = preprocess([img], (9, 11))
    np.testing.assert_array_equal(got[0], img.transpose(2, 0, 1).astype(F32) * F32(1 / 255))


@pytest.mark.parametrize("c", [None, 1, 3, 4])
def test_identity_size_gives_exact_mapped_values(c):
    img = rand_img(23, 31, c)
    sc = np.array([1 / 58.395, 1 / 57.12, 1 / 57.375], dtype=F32)
    of = np.array([-123.675 / 58.395, -116.28 / 57.12, -103.53 / 57.375], dtype=F32)
    got = preprocess([img], (23, 31), scale=sc, offset=of)
    src = img.reshape(23, 31, -1).astype(F32)
    for ch in range(3):
        plane = src[:, :, 0 if src.shape[2] == 1 else ch]
        np.testing.assert_array_equal(got[0, ch], plane * sc[ch] + of[ch])


# ---------------------------------------------------------------------------------------
# OpenCV
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sh", "sw", "dh", "dw"), SIZES)
@pytest.mark.parametrize("c", [None, 3])
def test_matches_cv2_resize_within_one_lsb(sh, sw, dh, dw, c):
    # cv2.resize on uint8 uses 11-bit fixed-point weights and rounds: allow 1 LSB.
    img = rand_img(sh, sw, c)
    got = preprocess([img], (dh, dw), scale=1.0)[0]
    want = cv_resize(img, dh, dw).reshape(dh, dw, -1).astype(F32)
    for ch in range(3):
        diff = np.abs(np.floor(got[ch] + F32(0.5)) - want[:, :, 0 if c is None else ch])
        assert diff.max() <= 1


def test_matches_cv2_resize_random_sizes():
    rng = np.random.default_rng(7)
    for _ in range(60):
        sh, sw, dh, dw = (int(v) for v in rng.integers(1, 90, 4))
        img = rand_img(sh, sw, 3, rng)
        got = preprocess([img], (dh, dw), scale=1.0)[0].transpose(1, 2, 0)
        assert np.abs(np.floor(got + F32(0.5)) - cv_resize(img, dh, dw)).max() <= 1


def test_blob_from_images_convention():
    # OpenCV 5 (and 4.x): swapRB is applied first, mean is given in the OUTPUT (swapped)
    # channel order, then (x - mean) * scalefactor; scalefactor is a single number.
    img = np.empty((2, 2, 3), np.uint8)
    img[...] = (10, 20, 30)
    blob = cv2.dnn.blobFromImages([img], scalefactor=2.0, mean=(1, 2, 3), swapRB=True)
    np.testing.assert_array_equal(blob[0, :, 0, 0], [(30 - 1) * 2, (20 - 2) * 2, (10 - 3) * 2])


@pytest.mark.parametrize("swap", [False, True])
def test_matches_blob_from_images_without_resize(swap):
    h, w = 33, 47
    imgs = [rand_img(h, w) for _ in range(3)]
    sf, mean = 1 / 127.5, (104.0, 117.0, 123.0)  # mean in output channel order
    blob = cv2.dnn.blobFromImages(imgs, scalefactor=sf, size=(w, h), mean=mean, swapRB=swap)
    got = preprocess(
        imgs,
        (h, w),
        scale=sf,
        offset=[-m * sf for m in mean],
        src_order="BGR",
        dst_order="RGB" if swap else "BGR",
    )
    assert got.shape == blob.shape
    np.testing.assert_allclose(got, blob, rtol=0, atol=1e-5)


@pytest.mark.parametrize("swap", [False, True])
def test_matches_blob_from_images_with_resize(swap):
    imgs = [rand_img(61, 45), rand_img(20, 100), rand_img(256, 256)]
    sf = 1 / 255
    blob = cv2.dnn.blobFromImages(imgs, scalefactor=sf, size=(64, 48), swapRB=swap)
    got = preprocess(imgs, (48, 64), scale=sf, src_order="BGR", dst_order="RGB" if swap else "BGR")
    # blobFromImages rounds the resized image to uint8 (fixed point) before scaling.
    np.testing.assert_allclose(got, blob, rtol=0, atol=sf * 1 + 1e-6)


# ---------------------------------------------------------------------------------------
# channels, orders, strides, batches, out=, threads
# ---------------------------------------------------------------------------------------


def test_scale_and_offset_accept_numpy_scalars_and_arrays():
    img = rand_img(4, 5)
    want = preprocess([img], (4, 5), scale=(0.5, 0.5, 0.5), offset=(1.0, 2.0, 3.0))
    for scale, offset in [
        (np.float32(0.5), np.array([1, 2, 3])),
        (np.array(0.5), [np.int64(1), 2.0, np.float16(3)]),
        (0.5, np.array([1.0, 2.0, 3.0], dtype=np.float32)),
    ]:
        np.testing.assert_array_equal(preprocess([img], (4, 5), scale=scale, offset=offset), want)


def test_channel_orders():
    img = rand_img(17, 19)
    rgb = preprocess([img], (9, 30))
    np.testing.assert_array_equal(preprocess([img], (9, 30), dst_order="BGR"), rgb[:, ::-1])
    np.testing.assert_array_equal(preprocess([img], (9, 30), src_order="BGR"), rgb[:, ::-1])
    both = preprocess([img], (9, 30), src_order="BGR", dst_order="BGR")
    np.testing.assert_array_equal(both, rgb)
    # per-channel scale/offset refer to OUTPUT channels
    got = preprocess([img], (17, 19), scale=(1, 2, 3), offset=(0, 0, 0), dst_order="BGR")
    np.testing.assert_array_equal(got[0, 0], img[:, :, 2].astype(F32))
    np.testing.assert_array_equal(got[0, 2], img[:, :, 0].astype(F32) * 3)


def test_gray_is_replicated_and_channel_order_does_not_matter():
    img = rand_img(12, 13, None)
    got = preprocess([img, img[:, :, None]], (7, 21), src_order="BGR")
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_array_equal(got[0, 0], got[0, 1])
    np.testing.assert_array_equal(got[0, 0], got[0, 2])


def test_alpha_is_ignored():
    img = rand_img(12, 13, 4)
    other = img.copy()
    other[:, :, 3] = 255 - other[:, :, 3]
    a, b = preprocess([img, other], (20, 5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, preprocess([img[:, :, :3]], (20, 5))[0])


BIG = rand_img(70, 90, 4)
VIEWS = {
    "step": lambda a: a[::2, 1::3, :3],
    "neg_channels": lambda a: a[:, :, 2::-1],
    "neg_rows": lambda a: a[::-1, :, :3],
    "neg_both": lambda a: a[::-3, ::-2, 1:],
    "window": lambda a: a[5:30, 7:40, :3],
    "transposed": lambda a: a.transpose(1, 0, 2)[:, :, :3],
    "plane_2d": lambda a: a[:, :, 1],
    "plane_2d_strided": lambda a: a[::-2, 3::5, 2],
    "broadcast": lambda a: np.broadcast_to(a[:1, :, :3], (40, 90, 3)),
    "fortran": lambda a: np.asfortranarray(a[:, :, :3]),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
@pytest.mark.parametrize("size", [(32, 48), "same"])
def test_strided_inputs_equal_their_contiguous_copy(name, size):
    view = VIEWS[name](BIG)
    size = view.shape[:2] if size == "same" else size
    got = preprocess([view], size, scale=(1.0, 0.5, 0.25), src_order="BGR")
    np.testing.assert_array_equal(
        got, preprocess([np.ascontiguousarray(view)], size, scale=(1.0, 0.5, 0.25), src_order="BGR")
    )


def test_read_only_input():
    img = rand_img(10, 10)
    img.flags.writeable = False
    np.testing.assert_array_equal(preprocess([img], (5, 5)), preprocess_ref([img], (5, 5)))


def test_mixed_sizes_in_one_batch():
    imgs = (rand_img(10, 300), rand_img(300, 10, 1), rand_img(64, 64, 4), rand_img(1, 1, None))
    got = preprocess(imgs, (32, 40), scale=(1, 2, 3), offset=-1.5)
    for i, img in enumerate(imgs):
        np.testing.assert_array_equal(
            got[i], preprocess([img], (32, 40), scale=(1, 2, 3), offset=-1.5)[0]
        )
    np.testing.assert_array_equal(got, preprocess_ref(imgs, (32, 40), scale=(1, 2, 3), offset=-1.5))


def test_out_buffer_is_filled_and_returned():
    imgs = [rand_img(30, 20), rand_img(8, 80)]
    out = np.full((2, 3, 16, 24), np.nan, dtype=F32)
    res = preprocess(imgs, (16, 24), out=out)
    assert res is out
    np.testing.assert_array_equal(out, preprocess_ref(imgs, (16, 24)))


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_num_threads_do_not_change_the_result(threads):
    imgs = [rand_img(50, 70), rand_img(9, 500)]
    want = preprocess(imgs, (33, 41))
    np.testing.assert_array_equal(preprocess(imgs, (33, 41), num_threads=threads), want)


# ---------------------------------------------------------------------------------------
# property tests
# ---------------------------------------------------------------------------------------


@st.composite
def strided_images(draw):
    wide = draw(st.booleans())
    h = draw(st.integers(1, 6 if wide else 48))
    w = draw(st.integers(1, 4096 if wide else 48))
    c = draw(st.sampled_from([None, 1, 3, 4]))
    sy = draw(st.sampled_from([1, 2, -1, -2]))
    sx = draw(st.sampled_from([1, 3, -1]))
    seed = draw(st.integers(0, 2**32 - 1))
    base = rand_img(h * abs(sy), w * abs(sx), c, np.random.default_rng(seed))
    view = base[::sy, ::sx]
    if c in (3, 4) and draw(st.booleans()):
        view = view[:, :, ::-1]
    return view


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    imgs=st.lists(strided_images(), min_size=1, max_size=3),
    dh=st.integers(1, 12),
    dw=st.one_of(st.integers(1, 48), st.integers(1000, 4096)),
    swap=st.booleans(),
    scale=st.one_of(st.floats(-4, 4), st.tuples(*[st.floats(-4, 4)] * 3)),
    offset=st.one_of(st.floats(-4, 4), st.tuples(*[st.floats(-4, 4)] * 3)),
)
def test_property_matches_reference_and_contiguous_copy(imgs, dh, dw, swap, scale, offset):
    kw = {"scale": scale, "offset": offset, "dst_order": "BGR" if swap else "RGB"}
    got = preprocess(imgs, (dh, dw), **kw)
    np.testing.assert_array_equal(got, preprocess_ref(imgs, (dh, dw), **kw))
    copies = [np.ascontiguousarray(im) for im in imgs]
    np.testing.assert_array_equal(got, preprocess(copies, (dh, dw), num_threads=1, **kw))


@settings(max_examples=25, deadline=None)
@given(img=strided_images())
def test_property_identity_size_is_exact(img):
    h, w = img.shape[:2]
    got = preprocess([img], (h, w), scale=1.0)[0]
    src = img.reshape(h, w, -1)
    want = np.repeat(src, 3, axis=2) if src.shape[2] == 1 else src[:, :, :3]
    np.testing.assert_array_equal(got, want.transpose(2, 0, 1).astype(F32))


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------

GOOD = rand_img(8, 8)


def _ro_out():
    out = np.zeros((1, 3, 4, 4), F32)
    out.flags.writeable = False
    return out


BAD_CALLS = {
    "float64 image": (
        ([GOOD, GOOD.astype(np.float64)], (4, 4)),
        {},
        r"images\[1\] has dtype float64; expected uint8",
    ),
    "uint16 image": (([GOOD.astype(np.uint16)], (4, 4)), {}, r"images\[0\] has dtype uint16"),
    "int8 image": (([GOOD.astype(np.int8)], (4, 4)), {}, r"images\[0\] has dtype int8"),
    "bool image": (([GOOD > 3], (4, 4)), {}, r"images\[0\] has dtype bool"),
    "1-D image": (([GOOD.ravel()], (4, 4)), {}, r"images\[0\] has 1 dimensions"),
    "4-D image": (([GOOD[None]], (4, 4)), {}, r"images\[0\] has 4 dimensions"),
    "zero rows": (([GOOD[:0]], (4, 4)), {}, r"images\[0\] has shape \(0, 8, 3\)"),
    "zero cols": (([GOOD[:, :0, 0]], (4, 4)), {}, r"images\[0\] has shape \(8, 0, 1\)"),
    "2 channels": (([GOOD[:, :, :2]], (4, 4)), {}, r"images\[0\] has 2 channels"),
    "5 channels": (([np.zeros((4, 4, 5), np.uint8)], (4, 4)), {}, r"images\[0\] has 5 chan"),
    "empty list": (([], (4, 4)), {}, r"images is empty"),
    "ndarray batch": ((np.zeros((2, 4, 4, 3), np.uint8), (4, 4)), {}, r"images is an ndarray"),
    "size one int": (([GOOD], 4), {}, r"size is 4; expected \(height, width\)"),
    "size 3 ints": (([GOOD], (4, 4, 3)), {}, r"size is \(4, 4, 3\)"),
    "size float": (([GOOD], (4.0, 4)), {}, r"size is \(4.0, 4\)"),
    "size zero": (([GOOD], (0, 4)), {}, r"size is \(0, 4\); expected .* 1\.\.16384"),
    "size negative": (([GOOD], (4, -1)), {}, r"size is \(4, -1\)"),
    "size too big": (([GOOD], (4, 16385)), {}, r"size is \(4, 16385\)"),
    "size bool": (([GOOD], (True, 4)), {}, r"size is \(True, 4\)"),
    "size str": (([GOOD], "44"), {}, r"size is '44'"),
    "scale nan": (([GOOD], (4, 4)), {"scale": float("nan")}, r"scale is nan; expected a fin"),
    "scale inf item": (([GOOD], (4, 4)), {"scale": (1, float("inf"), 1)}, r"scale is \(1, inf"),
    "scale overflows f32": (([GOOD], (4, 4)), {"scale": 1e39}, r"scale is 1e\+39"),
    "scale 2 values": (([GOOD], (4, 4)), {"scale": (1, 2)}, r"scale has shape \(2,\)"),
    "scale str": (([GOOD], (4, 4)), {"scale": "x"}, r"scale is 'x'"),
    "offset inf": (([GOOD], (4, 4)), {"offset": -float("inf")}, r"offset is -inf"),
    "offset 4 values": (([GOOD], (4, 4)), {"offset": [0, 0, 0, 0]}, r"offset has shape \(4,\)"),
    "src_order": (([GOOD], (4, 4)), {"src_order": "rgb"}, r"src_order is 'rgb'; expected 'RGB'"),
    "dst_order": (([GOOD], (4, 4)), {"dst_order": "RGBA"}, r"dst_order is 'RGBA'"),
    "threads zero": (([GOOD], (4, 4)), {"num_threads": 0}, r"num_threads is 0; expected None"),
    "threads negative": (([GOOD], (4, 4)), {"num_threads": -2}, r"num_threads is -2"),
    "threads huge": (([GOOD], (4, 4)), {"num_threads": 2**40}, r"num_threads is 1099511627776"),
    "threads float": (([GOOD], (4, 4)), {"num_threads": 2.0}, r"num_threads is 2\.0"),
    "out shape": (
        ([GOOD], (4, 4)),
        {"out": np.zeros((1, 3, 4, 5), F32)},
        r"out has dtype float32 and shape \(1, 3, 4, 5\); expected float32 of shape",
    ),
    "out batch": (([GOOD], (4, 4)), {"out": np.zeros((2, 3, 4, 4), F32)}, r"out has .*\(2, 3"),
    "out dtype": (
        ([GOOD], (4, 4)),
        {"out": np.zeros((1, 3, 4, 4), np.float64)},
        r"out has dtype float64",
    ),
    "out strided": (
        ([GOOD], (4, 4)),
        {"out": np.zeros((1, 3, 4, 8), F32)[..., ::2]},
        r"out .* is not C-contiguous",
    ),
    "out fortran": (
        ([GOOD], (4, 4)),
        {"out": np.zeros((1, 3, 4, 4), F32, order="F")},
        r"out .* is not C-contiguous",
    ),
    "out read-only": (([GOOD], (4, 4)), {"out": _ro_out()}, r"out is read-only"),
    "interpolation": (
        ([GOOD], (4, 4)),
        {"interpolation": "nearest"},
        r"interpolation is 'nearest'; expected one of 'bilinear', 'area', 'bilinear-u8'",
    ),
    "fit": (([GOOD], (4, 4)), {"fit": "fill"}, r"fit is 'fill'; expected one of 'stretch'"),
    "pad nan": (([GOOD], (4, 4)), {"pad_value": float("nan")}, r"pad_value is nan"),
    "pad 2 values": (([GOOD], (4, 4)), {"pad_value": (1, 2)}, r"pad_value has shape \(2,\)"),
    "dtype float64": (
        ([GOOD], (4, 4)),
        {"dtype": np.float64},
        r"dtype is <class 'numpy.float64'>; expected float32 or float16",
    ),
    "dtype str": (([GOOD], (4, 4)), {"dtype": "half-ish"}, r"dtype is 'half-ish'"),
    "dtype vs out": (
        ([GOOD], (4, 4)),
        {"dtype": np.float16, "out": np.zeros((1, 3, 4, 4), F32)},
        r"out has dtype float32 and shape \(1, 3, 4, 4\); expected float16 of shape",
    ),
    "out float16 shape": (
        ([GOOD], (4, 4)),
        {"out": np.zeros((1, 3, 4, 5), np.float16)},
        r"out has dtype float16 and shape \(1, 3, 4, 5\); expected float16 of shape",
    ),
    "return_placements": (([GOOD], (4, 4)), {"return_placements": "yes"}, r"return_placements is"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_validation_errors(case):
    args, kwargs, match = BAD_CALLS[case]
    with pytest.raises(ValueError, match=match) as info:
        preprocess(*args, **kwargs)
    assert str(info.value).startswith("preprocess: ")


@pytest.mark.parametrize(
    ("shape", "index"),
    [((3, (1 << 20) + 1, 3), 3), (((1 << 20) + 1, 2), 1), ((2**31, 1, 3), 0), ((5, 2**40), 2)],
)
def test_images_larger_than_the_limit_are_rejected_at_the_boundary(shape, index):
    """At the input check, naming the image and the limit (not deep inside plan_fit)."""
    from vetrina.kernels import MAX_IMAGE_SIZE

    assert MAX_IMAGE_SIZE == 1 << 20
    imgs = [GOOD] * 4
    imgs[index] = np.broadcast_to(np.uint8(7), shape)  # no memory
    shown = shape if len(shape) == 3 else (*shape, 1)
    with pytest.raises(
        ValueError,
        match=rf"^preprocess: images\[{index}\] has shape {re.escape(str(shown))}; expected a "
        rf"height and width of at most 1048576 \(MAX_IMAGE_SIZE\)$",
    ):
        preprocess(imgs, (4, 4), interpolation="area")


def test_images_at_the_limit_are_accepted():
    img = np.broadcast_to(np.arange(3, dtype=np.uint8), (2, 1 << 20, 3))
    for interpolation in ("bilinear", "area", "bilinear-u8"):
        got = preprocess([img], (1, 2), scale=1.0, interpolation=interpolation)
        assert (got == np.arange(3, dtype=F32)[None, :, None, None]).all(), interpolation


def test_out_overlapping_an_image_is_rejected():
    raw = np.zeros(4 * 3 * 4 * 4, np.uint8)
    out = raw.view(F32).reshape(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"out overlaps the memory of images\[0\]"):
        preprocess([raw[:48].reshape(4, 4, 3)], (4, 4), out=out)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("not a list", (4, 4)), {}, r"images has type str; expected a list or tuple"),
        (([[[1, 2], [3, 4]]], (4, 4)), {}, r"images\[0\] has type list; expected a numpy uint8"),
        (([GOOD], (1, 1)), {"out": [[[[0.0]]] * 3]}, r"out has type list; expected a numpy array"),
    ],
)
def test_non_arrays_raise_type_error(args, kwargs, match):
    with pytest.raises(TypeError, match=match):
        preprocess(*args, **kwargs)


def test_extension_guards_reject_inconsistent_boxes():
    # The wrappers never pass such boxes; the extension still refuses them (no memory access).
    from vetrina.kernels import _cpu

    out = np.zeros((1, 3, 4, 4), F32).view(np.uint8)
    ones = np.ones(3, F32)
    for box in [
        (0, 0, 9, 8, 0, 0, 4, 4),
        (0, 0, 8, 8, 1, 0, 4, 4),
        (-1, 0, 8, 8, 0, 0, 4, 4),
        (0, 0, 8, 8, 0, 0, 0, 4),
        (7, 7, 2, 1, 0, 0, 4, 4),
    ]:
        boxes = np.array([box], dtype=np.intp)
        with pytest.raises(ValueError, match="bad box"):
            _cpu.preprocess_batch([GOOD], boxes, out, 4, ones, ones, ones, False, 0, 1)
    with pytest.raises(ValueError, match="out shape"):
        _cpu.preprocess_batch(
            [GOOD, GOOD], np.zeros((2, 8), np.intp), out, 4, ones, ones, ones, False, 0, 1
        )
    with pytest.raises(ValueError, match="method"):
        _cpu.preprocess_batch(
            [GOOD],
            np.array([(0, 0, 8, 8, 0, 0, 4, 4)], np.intp),
            out,
            4,
            ones,
            ones,
            ones,
            False,
            7,
            1,
        )


def test_return_placements():
    imgs = [rand_img(30, 60), rand_img(8, 8)]
    batch, places = preprocess(imgs, (16, 16), fit="letterbox", return_placements=True)
    assert batch.shape == (2, 3, 16, 16)
    assert [p.dst_box for p in places] == [(4, 0, 8, 16), (0, 0, 16, 16)]
    assert [p.src_hw for p in places] == [(30, 60), (8, 8)]


@pytest.mark.parametrize("interpolation", ["bilinear", "area", "bilinear-u8"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_num_threads_do_not_change_any_mode(interpolation, threads):
    imgs = [rand_img(50, 70), rand_img(9, 500, 4), rand_img(128, 128)]
    kw = {"interpolation": interpolation, "fit": "letterbox"}
    want = preprocess(imgs, (33, 41), **kw)
    np.testing.assert_array_equal(preprocess(imgs, (33, 41), num_threads=threads, **kw), want)
