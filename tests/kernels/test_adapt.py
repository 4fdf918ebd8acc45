"""adapt: float NCHW -> float NCHW (resize, range, dtype, channel order) between models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina.kernels import adapt, normalization, range_mapping

from . import layouts
from .reference import adapt_ref

F32 = np.float32
F16 = np.float16
RNG = np.random.default_rng(1618)


def rand_batch(n, c, h, w, rng=RNG, dtype=F32):
    return rng.standard_normal((n, c, h, w)).astype(dtype)


def specials(b, rng=RNG):
    b = b.copy()
    idx = rng.integers(0, b.size, max(1, b.size // 12))
    b.flat[idx] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0, 3e38], F32), idx.size)
    return b


@pytest.mark.parametrize("size", [None, (9, 11), (20, 30), (4, 5), (1, 1), (3, 1000)])
@pytest.mark.parametrize("interpolation", ["bilinear", "area"])
@pytest.mark.parametrize("c", [1, 3, 4, 7])
def test_matches_reference_exactly(size, interpolation, c):
    b = (
        specials(rand_batch(2, c, 9, 11))
        if interpolation == "bilinear"
        else rand_batch(2, c, 9, 11)
    )
    kw = {"scale": tuple(np.linspace(0.5, 2, c)), "offset": 0.25, "interpolation": interpolation}
    np.testing.assert_array_equal(adapt(b, size, **kw), adapt_ref(b, size, **kw))


def test_identity_is_a_copy():
    b = specials(rand_batch(2, 3, 8, 8))
    out = adapt(b)
    np.testing.assert_array_equal(out, b)
    assert not np.shares_memory(out, b)


def test_channel_swap_and_per_output_channel_mapping():
    b = rand_batch(1, 3, 4, 5)
    got = adapt(b, scale=(1, 2, 3), offset=(0, 0, 10), src_order="RGB", dst_order="BGR")
    np.testing.assert_array_equal(got[0, 0], b[0, 2])
    np.testing.assert_array_equal(got[0, 2], b[0, 0] * F32(3) + F32(10))


def test_range_conversion_between_model_contracts():
    # model A outputs [-1, 1] RGB; model B wants ImageNet-normalised BGR at half size
    b = rng_img = np.clip(rand_batch(1, 3, 64, 64) * 0.3, -1, 1)
    to_pixels = range_mapping(-1, 1).inverse()
    to_b = to_pixels.then(normalization((0.406, 0.456, 0.485), (0.225, 0.224, 0.229)))
    got = adapt(b, (32, 32), dst_order="BGR", **to_b)  # mapping per OUTPUT channel
    pix = (rng_img[0].transpose(1, 2, 0) + 1) * 127.5
    want = cv2.resize(pix, (32, 32), interpolation=cv2.INTER_LINEAR)[:, :, ::-1] / 255.0
    want = (want - (0.406, 0.456, 0.485)) / (0.225, 0.224, 0.229)
    np.testing.assert_allclose(got[0].transpose(1, 2, 0), want, atol=2e-5)


def test_area_close_to_cv2_on_float_planes():
    b = rand_batch(1, 3, 90, 60)
    got = adapt(b, (30, 25), interpolation="area")[0].transpose(1, 2, 0)
    want = cv2.resize(
        np.ascontiguousarray(b[0].transpose(1, 2, 0)), (25, 30), interpolation=cv2.INTER_AREA
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


STRIDED = {
    "reversed": lambda b: b[:, ::-1, ::-1, ::-2],
    "step": lambda b: b[::2, :, 1::2, ::3],
    "nhwc": lambda b: np.ascontiguousarray(b.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
    "broadcast": lambda b: np.broadcast_to(b[:1, :, :1], (2, b.shape[1], 5, b.shape[3])),
}


@pytest.mark.parametrize("name", sorted(STRIDED))
@pytest.mark.parametrize("dtype", [F32, F16])
def test_non_contiguous_batches(name, dtype):
    with np.errstate(over="ignore"):
        view = STRIDED[name](specials(rand_batch(4, 3, 12, 30)).astype(dtype))
    for size in (None, (7, 13)):
        got = adapt(view, size, scale=2.0, dtype=F32)
        np.testing.assert_array_equal(
            got, adapt(np.ascontiguousarray(view), size, scale=2.0, dtype=F32)
        )
        np.testing.assert_array_equal(got, adapt_ref(view, size, scale=2.0, dtype=F32))


def test_out_buffer():
    b = rand_batch(2, 3, 8, 8)
    out = np.full((2, 3, 4, 4), np.nan, F16)
    assert adapt(b, (4, 4), out=out) is out
    np.testing.assert_array_equal(out, adapt_ref(b, (4, 4), dtype=F16))
    with pytest.raises(
        ValueError, match=r"out has dtype float16 and shape \(2, 3, 4, 4\); expected float32"
    ):
        adapt(b, (4, 4), out=out, dtype=F32)
    with pytest.raises(ValueError, match=r"out overlaps the memory of batch"):
        adapt(b, out=b)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.sampled_from([1, 3, 4]),
    hw=layouts.sizes(12, 30, thin=12),
    out_hw=layouts.sizes(12, 40, thin=12),
    interpolation=st.sampled_from(["bilinear", "area"]),
    src16=st.booleans(),
    out16=st.booleans(),
    layout=layouts.layouts(),
    seed=st.integers(0, 2**31),
)
def test_property_matches_reference(n, c, hw, out_hw, interpolation, src16, out16, layout, seed):
    # sizes from 1x1 to 4096 wide (in and out), any layout (strided with negative steps, NHWC,
    # broadcast), float32/float16 in and out
    rng = np.random.default_rng(seed)
    (h, w), (oh, ow) = hw, out_hw
    b = layouts.lay_out(rand_batch(n, c, h, w, rng, F16 if src16 else F32), layout, rng)
    kw = {
        "scale": 1.5,
        "offset": -0.5,
        "interpolation": interpolation,
        "dtype": F16 if out16 else F32,
    }
    got = adapt(b, (oh, ow), **kw)
    want = adapt_ref(b.astype(F32), (oh, ow), **kw)
    np.testing.assert_array_equal(got, want)


BAD = {
    "dtype": (
        (np.zeros((1, 3, 4, 4), np.float64),),
        {},
        r"batch has dtype float64; expected float32 or float16",
    ),
    "ndim": (
        (np.zeros((3, 4, 4), F32),),
        {},
        r"batch has shape \(3, 4, 4\); expected \(N, C, H, W\)",
    ),
    "empty": ((np.zeros((0, 3, 4, 4), F32),), {}, r"expected a non-empty batch"),
    "channels": ((np.zeros((1, 65, 2, 2), F32),), {}, r"batch has 65 channels"),
    "swap 1 channel": (
        (np.zeros((1, 1, 2, 2), F32),),
        {"dst_order": "BGR"},
        r"needs 3 or 4 channels",
    ),
    "scale length": (
        (np.zeros((1, 4, 2, 2), F32),),
        {"scale": (1, 2, 3)},
        r"scale has shape \(3,\); expected a finite number or 4 finite",
    ),
    "size": ((np.zeros((1, 3, 2, 2), F32), (0, 2)), {}, r"size is \(0, 2\)"),
    "interp": (
        (np.zeros((1, 3, 2, 2), F32),),
        {"interpolation": "bilinear-u8"},
        r"interpolation is 'bilinear-u8'",
    ),
    "out dtype": (
        (np.zeros((1, 3, 2, 2), F32),),
        {"dtype": np.int8},
        r"dtype is <class 'numpy.int8'>; expected float32 or float16",
    ),
    "threads": ((np.zeros((1, 3, 2, 2), F32),), {"num_threads": 0}, r"num_threads is 0"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_validation(case):
    args, kwargs, match = BAD[case]
    with pytest.raises(ValueError, match=match) as info:
        adapt(*args, **kwargs)
    assert str(info.value).startswith("adapt: ")
