"""vetrina.kernels.postprocess against the numpy reference (bit for bit), and round trips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina.kernels import postprocess, preprocess

from . import layouts
from .reference import postprocess_ref

F32 = np.float32
F16 = np.float16
RNG = np.random.default_rng(99)

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def rand_batch(n: int, h: int, w: int, rng=RNG, spread: float = 1.5) -> np.ndarray:
    return (rng.standard_normal((n, 3, h, w)) * spread + 0.5).astype(F32)


def with_specials(batch: np.ndarray, rng=RNG) -> np.ndarray:
    """Sprinkle NaN, +-inf, huge values and exact .5 boundaries (for scale 255) over a batch."""
    batch = batch.copy()
    specials = np.array(
        [np.nan, np.inf, -np.inf, 3e38, -3e38, 0.5 / 255, 1.5 / 255, 254.5 / 255, -0.0, 1.0],
        dtype=F32,
    )
    idx = rng.integers(0, batch.size, max(1, batch.size // 10))
    batch.flat[idx] = rng.choice(specials, idx.size)
    return batch


def assert_lists_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.uint8 and g.flags.c_contiguous
        assert g.shape == w.shape
        np.testing.assert_array_equal(g, w)


# ---------------------------------------------------------------------------------------
# numpy reference, bit for bit
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sizes",
    [None, [(17, 23), (17, 23)], [(5, 90), (40, 3)], [(1, 1), (1, 4096)], [(34, 46), (8, 11)]],
)
@pytest.mark.parametrize("swap", [False, True])
def test_matches_reference_exactly(sizes, swap):
    batch = with_specials(rand_batch(2, 17, 23))
    kw = {
        "scale": (255.0, 200.0, 100.0),
        "offset": (0.0, 10.0, -3.0),
        "src_order": "RGB",
        "dst_order": "BGR" if swap else "RGB",
    }
    assert_lists_equal(postprocess(batch, sizes, **kw), postprocess_ref(batch, sizes, **kw))


@pytest.mark.parametrize(
    ("h", "w", "th", "tw"), [(2, 4096, 3, 1000), (3, 1000, 2, 4096), (1, 4096, 1, 4096)]
)
def test_wide_images_match_reference(h, w, th, tw):
    batch = with_specials(rand_batch(1, h, w))
    assert_lists_equal(postprocess(batch, [(th, tw)]), postprocess_ref(batch, [(th, tw)]))


def test_rounding_clamp_and_nan_values():
    v = np.array(
        [
            np.nan,
            -np.inf,
            -1e30,
            -1.0,
            -0.5,
            -0.0,
            0.0,
            0.49,
            0.5,
            1.5,
            2.5,
            3.4999,
            127.5,
            254.4,
            254.5,
            254.6,
            255.0,
            255.49,
            255.5,
            256.0,
            1e30,
            np.inf,
        ],
        dtype=F32,
    )
    want = [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 128, 254, 255, 255, 255, 255, 255, 255, 255, 255]
    batch = np.broadcast_to(v, (1, 3, 1, v.size))
    for out in (postprocess(batch, scale=1.0)[0], postprocess_ref(batch, scale=1.0)[0]):
        np.testing.assert_array_equal(out[0, :, 0], want)
        np.testing.assert_array_equal(out[0, :, 2], want)


def test_rounding_is_float32_floor_v_plus_half():
    # v + 0.5 is a float32 addition: the largest float below 0.5 rounds to 1.0 (ties to
    # even), so it becomes 1. Bigger values are exact: prev_float(2.5) -> 2.
    v = np.array([np.nextafter(F32(0.5), F32(0)), np.nextafter(F32(2.5), F32(0))], dtype=F32)
    batch = np.broadcast_to(v, (1, 3, 1, 2))
    np.testing.assert_array_equal(postprocess(batch, scale=1.0)[0][0, :, 0], [1, 2])
    np.testing.assert_array_equal(postprocess_ref(batch, scale=1.0)[0][0, :, 0], [1, 2])


def test_boundary_grid_after_scale():
    # every k + 0.5 (and its float32 neighbours) after v * 255
    k = np.arange(-2, 258, dtype=np.float64)
    v = np.concatenate([(k + 0.5) / 255, np.nextafter((k + 0.5) / 255, 0)]).astype(F32)
    batch = np.stack([v, v[::-1], v * 2]).reshape(1, 3, 1, -1)
    assert_lists_equal(postprocess(batch), postprocess_ref(batch))


def test_non_finite_values_do_not_leak_at_identity_size():
    batch = np.full((1, 3, 5, 5), 0.4, dtype=F32)
    batch[0, :, 2, 2] = (np.nan, np.inf, -np.inf)
    out = postprocess(batch, scale=255.0)[0]
    assert tuple(out[2, 2]) == (0, 255, 0)
    mask = np.ones((5, 5), bool)
    mask[2, 2] = False
    assert (out[mask] == 102).all()
    assert_lists_equal([out], postprocess_ref(batch, scale=255.0))


def test_resize_close_to_cv2_float_resize():
    batch = rand_batch(1, 37, 53, spread=0.3)
    for th, tw in [(20, 90), (74, 106), (37, 53), (5, 7)]:
        got = postprocess(batch, [(th, tw)])[0].astype(np.int32)
        hwc = np.ascontiguousarray(batch[0].transpose(1, 2, 0)) * F32(255)
        want = cv2.resize(hwc, (tw, th), interpolation=cv2.INTER_LINEAR)
        want = np.floor(np.clip(want, 0, 255) + 0.5).astype(np.int32)
        assert np.abs(got - want).max() <= 1


# ---------------------------------------------------------------------------------------
# alpha, channel swap, strides, threads
# ---------------------------------------------------------------------------------------


def test_alpha_reattached():
    batch = rand_batch(3, 10, 12)
    big_alpha = RNG.integers(0, 256, (40, 60), dtype=np.uint8)
    alphas = [big_alpha[::4, ::-5], None, big_alpha[:20, :30].T]
    sizes = [(10, 12), (10, 12), (30, 20)]
    got = postprocess(batch, sizes, alphas=alphas)
    assert [g.shape for g in got] == [(10, 12, 4), (10, 12, 3), (30, 20, 4)]
    np.testing.assert_array_equal(got[0][:, :, 3], alphas[0])
    np.testing.assert_array_equal(got[2][:, :, 3], alphas[2])
    no_alpha = postprocess(batch, sizes)
    for g, n in zip(got, no_alpha, strict=True):
        np.testing.assert_array_equal(g[:, :, :3], n)
    assert_lists_equal(got, postprocess_ref(batch, sizes, alphas=alphas))


def test_channel_swap():
    batch = rand_batch(1, 6, 7)
    rgb = postprocess(batch)[0]
    np.testing.assert_array_equal(postprocess(batch, dst_order="BGR")[0], rgb[:, :, ::-1])
    np.testing.assert_array_equal(postprocess(batch, src_order="BGR")[0], rgb[:, :, ::-1])
    np.testing.assert_array_equal(postprocess(batch, src_order="BGR", dst_order="BGR")[0], rgb)
    # scale/offset follow the BATCH channels, whatever the output order
    out = postprocess(np.zeros((1, 3, 2, 2), F32), offset=(10, 20, 30), dst_order="BGR")[0]
    assert tuple(out[0, 0]) == (30, 20, 10)


def _read_only(b: np.ndarray) -> np.ndarray:
    b = b.copy()
    b.flags.writeable = False
    return b


STRIDED = {
    "reversed_channels": lambda b: b[:, ::-1],
    "step": lambda b: b[:, :, ::2, 1::3],
    "negative": lambda b: b[::-1, :, ::-1, ::-2],
    "from_nhwc": lambda b: np.ascontiguousarray(b.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
    "broadcast": lambda b: np.broadcast_to(b[:1, :, :1], (2, 3, 9, b.shape[3])),
    "read_only": lambda b: _read_only(b),
}


@pytest.mark.parametrize("name", sorted(STRIDED))
@pytest.mark.parametrize("resize", [False, True])
def test_non_contiguous_batch(name, resize):
    view = STRIDED[name](with_specials(rand_batch(2, 18, 25)))
    sizes = [(7, 31), (20, 4)] if resize else None
    got = postprocess(view, sizes, scale=(255, 128, 64))
    assert_lists_equal(got, postprocess(np.ascontiguousarray(view), sizes, scale=(255, 128, 64)))
    assert_lists_equal(got, postprocess_ref(view, sizes, scale=(255, 128, 64)))


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_num_threads_do_not_change_the_result(threads):
    batch = with_specials(rand_batch(2, 40, 50))
    sizes = [(61, 17), (40, 50)]
    assert_lists_equal(postprocess(batch, sizes, num_threads=threads), postprocess(batch, sizes))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3),
    hw=layouts.sizes(10, 40, thin=10),
    sizes=st.one_of(st.none(), st.lists(layouts.sizes(12, 64, thin=12), min_size=3, max_size=3)),
    dtype=st.sampled_from([F32, F16]),
    interpolation=st.sampled_from(["bilinear", "area"]),
    layout=layouts.layouts(),
    swap=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_matches_reference(n, hw, sizes, dtype, interpolation, layout, swap, seed):
    # float32 and float16 batches (widened exactly), both resize modes, any layout (strided
    # with negative steps, NHWC, broadcast), sizes from 1x1 to 4096 wide, NaN/inf
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):  # 3e38 -> inf in float16
        batch = with_specials(rand_batch(n, *hw, rng), rng).astype(dtype)
    batch = layouts.lay_out(batch, layout, rng)
    sizes = None if sizes is None else sizes[:n]
    targets = [hw] * n if sizes is None else sizes
    alphas = [
        rng.integers(0, 256, t, dtype=np.uint8) if rng.random() < 0.5 else None for t in targets
    ]
    kw = {
        "scale": tuple(rng.uniform(-300, 300, 3)),
        "offset": tuple(rng.uniform(-50, 50, 3)),
        "dst_order": "BGR" if swap else "RGB",
        "alphas": alphas,
        "interpolation": interpolation,
    }
    got = postprocess(batch, sizes, **kw)
    assert [g.shape[:2] for g in got] == [tuple(t) for t in targets]
    assert_lists_equal(got, postprocess_ref(batch, sizes, **kw))


@settings(max_examples=40, deadline=None)
@given(
    srcs=st.lists(layouts.sizes(40, 60, thin=8), min_size=1, max_size=3),
    size=layouts.sizes(24, 64, thin=8),
    fit=st.sampled_from(["letterbox", "crop", "stretch"]),
    factor=st.sampled_from([1, 2]),
    mult=st.sampled_from([None, 1, 2]),
    dtype=st.sampled_from([F32, F16]),
    interpolation=st.sampled_from(["bilinear", "area"]),
    layout=layouts.layouts(),
    specials=st.booleans(),
    swap=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_placements_match_reference(
    srcs, size, fit, factor, mult, dtype, interpolation, layout, specials, swap, seed
):
    # undo preprocess' letterbox / crop: the placements of random images, a float32 or float16
    # batch (upscaled x2 like a super-resolution model's output), outputs at the source size
    # or a multiple of it, any layout, fill outside a crop's window
    rng = np.random.default_rng(seed)
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in srcs]
    batch, places = preprocess(imgs, size, fit=fit, dtype=dtype, return_placements=True)
    assert [p.src_hw for p in places] == [tuple(s) for s in srcs]
    if factor > 1:
        batch = np.repeat(np.repeat(batch, factor, 2), factor, 3)
    if specials:
        with np.errstate(over="ignore"):
            batch = with_specials(batch, rng)
    batch = layouts.lay_out(batch, layout, rng)
    sizes = None if mult is None else [(h * mult, w * mult) for h, w in srcs]
    targets = [(h * (mult or 1), w * (mult or 1)) for h, w in srcs]
    kw = {
        "placements": places,
        "fill": tuple(int(v) for v in rng.integers(0, 256, 3)),
        "scale": tuple(rng.uniform(-300, 300, 3)),
        "offset": tuple(rng.uniform(-50, 50, 3)),
        "dst_order": "BGR" if swap else "RGB",
        "alphas": [
            rng.integers(0, 256, t, dtype=np.uint8) if rng.random() < 0.5 else None for t in targets
        ],
        "interpolation": interpolation,
    }
    got = postprocess(batch, sizes, **kw)
    assert [g.shape[:2] for g in got] == targets
    assert_lists_equal(got, postprocess_ref(batch, sizes, **kw))


# ---------------------------------------------------------------------------------------
# round trip preprocess (identity size) -> postprocess (inverse mapping)
# ---------------------------------------------------------------------------------------

ALL_VALUES = np.arange(256 * 3, dtype=np.int64).reshape(16, 48) % 256


@pytest.mark.parametrize(
    ("scale", "offset", "inv_scale", "inv_offset"),
    [
        (1 / 255, 0.0, 255.0, 0.0),
        (1.0, 0.0, 1.0, 0.0),
        (2 / 255, -1.0, 127.5, 127.5),
        (1 / (255 * STD), -MEAN / STD, 255 * STD, 255 * MEAN),
    ],
)
@pytest.mark.parametrize(("src", "dst"), [("RGB", "RGB"), ("RGB", "BGR"), ("BGR", "RGB")])
def test_round_trip_all_values(scale, offset, inv_scale, inv_offset, src, dst):
    img = np.stack([ALL_VALUES, ALL_VALUES[::-1], ALL_VALUES.T.reshape(16, 48)], axis=2)
    img = img.astype(np.uint8)
    blob = preprocess(
        [img], img.shape[:2], scale=scale, offset=offset, src_order=src, dst_order=dst
    )
    back = postprocess(blob, scale=inv_scale, offset=inv_offset, src_order=dst, dst_order=src)
    np.testing.assert_array_equal(back[0], img)


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 8),
    w=st.one_of(st.integers(1, 64), st.integers(1000, 4096)),
    c=st.sampled_from([1, 3, 4]),
    seed=st.integers(0, 2**32 - 1),
    flip=st.booleans(),
)
def test_property_round_trip(h, w, c, seed, flip):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    if flip:
        img = img[::-1, ::-1]
    blob = preprocess([img], (h, w), scale=1 / (255 * STD), offset=-MEAN / STD)
    alphas = [img[:, :, 3]] if c == 4 else None
    back = postprocess(blob, scale=255 * STD, offset=255 * MEAN, alphas=alphas)[0]
    want = np.repeat(img, 3, axis=2) if c == 1 else img
    np.testing.assert_array_equal(back, want)


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------

B = rand_batch(2, 4, 5)
A = np.zeros((4, 5), np.uint8)

BAD_CALLS = {
    "float64 batch": ((B.astype(np.float64),), {}, r"batch has dtype float64; expected float32"),
    "uint8 batch": ((B.astype(np.uint8),), {}, r"batch has dtype uint8"),
    "byteswapped batch": ((B.astype(">f4"),), {}, r"batch has dtype >f4"),
    "3-D batch": ((B[0],), {}, r"batch has shape \(3, 4, 5\); expected \(N, 3, H, W\)"),
    "4 channels": ((np.zeros((1, 4, 4, 5), F32),), {}, r"batch has shape \(1, 4, 4, 5\)"),
    "empty batch": ((B[:0],), {}, r"batch has shape \(0, 3, 4, 5\); expected a non-empty"),
    "zero width": ((B[..., :0],), {}, r"batch has shape \(2, 3, 4, 0\)"),
    "unaligned": (
        (np.frombuffer(b"\0" + bytes(B.nbytes), F32, B.size, 1).reshape(B.shape),),
        {},
        r"batch .* is not aligned",
    ),
    "sizes short": ((B, [(4, 5)]), {}, r"sizes has 1 entries; expected 2"),
    "sizes long": ((B, [(4, 5)] * 3), {}, r"sizes has 3 entries; expected 2"),
    "sizes ndarray": ((B, np.array([[4, 5], [4, 5]])), {}, r"sizes is an ndarray"),
    "sizes item zero": ((B, [(4, 5), (0, 5)]), {}, r"sizes\[1\] is \(0, 5\)"),
    "sizes item big": ((B, [(16385, 5), (4, 5)]), {}, r"sizes\[0\] is \(16385, 5\)"),
    "sizes item scalar": ((B, [(4, 5), 7]), {}, r"sizes\[1\] is 7"),
    "scale nan": ((B,), {"scale": (1, float("nan"), 1)}, r"scale is \(1, nan, 1\)"),
    "offset inf": ((B,), {"offset": float("inf")}, r"offset is inf"),
    "scale shape": ((B,), {"scale": np.ones((3, 1))}, r"scale has shape \(3, 1\)"),
    "order": ((B,), {"dst_order": "bgr"}, r"dst_order is 'bgr'; expected 'RGB' or 'BGR'"),
    "order none": ((B,), {"src_order": None}, r"src_order is None"),
    "threads": ((B,), {"num_threads": 0}, r"num_threads is 0"),
    "alphas short": ((B,), {"alphas": [A]}, r"alphas has 1 entries; expected 2"),
    "alpha shape": ((B,), {"alphas": [A, A.T]}, r"alphas\[1\] has shape \(5, 4\); expected \(4, 5"),
    "alpha 3-D": ((B,), {"alphas": [A[..., None], None]}, r"alphas\[0\] has shape \(4, 5, 1\)"),
    "alpha vs sizes": (
        (B, [(4, 5), (8, 10)]),
        {"alphas": [A, A]},
        r"alphas\[1\] has shape \(4, 5\); expected \(8, 10\)",
    ),
    "alpha dtype": (
        (B,),
        {"alphas": [None, A.astype(F32)]},
        r"alphas\[1\] has dtype float32; expected uint8",
    ),
    "interpolation": ((B,), {"interpolation": "bilinear-u8"}, r"interpolation is 'bilinear-u8'"),
    "fill big": ((B,), {"fill": 256}, r"fill is 256; expected an int or 3 ints in 0\.\.255"),
    "fill short": ((B,), {"fill": (1, 2)}, r"fill is \(1, 2\)"),
    "fill float": ((B,), {"fill": 1.5}, r"fill is 1\.5"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_validation_errors(case):
    args, kwargs, match = BAD_CALLS[case]
    with pytest.raises(ValueError, match=match) as info:
        postprocess(*args, **kwargs)
    assert str(info.value).startswith("postprocess: ")


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([[[[0.0]]]],), {}, r"batch has type list; expected a numpy array"),
        ((B,), {"alphas": [A, [[0]]]}, r"alphas\[1\] has type list; expected None or a uint8"),
        ((B, 5), {}, r"sizes has type int; expected a list or tuple"),
    ],
)
def test_non_arrays_raise_type_error(args, kwargs, match):
    with pytest.raises(TypeError, match=match):
        postprocess(*args, **kwargs)


def test_extension_guards_reject_inconsistent_boxes():
    from vetrina.kernels import _cpu

    ones = np.ones(3, F32)
    fills = np.zeros((2, 3), np.uint8)
    outs = [np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)]
    for box in [(0, 0, 5, 5, 0, 0, 4, 5), (0, 0, 4, 5, 0, 1, 4, 5), (0, 0, 4, 5, 0, 0, 4, 0)]:
        boxes = np.array([box, (0, 0, 4, 5, 0, 0, 4, 5)], dtype=np.intp)
        with pytest.raises(ValueError, match="bad box"):
            _cpu.postprocess_batch(
                B, False, boxes, outs, [None, None], fills, ones, ones, False, 0, 1
            )
