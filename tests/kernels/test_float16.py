"""float16 conversion of the kernels: numpy's ``astype(np.float16)`` bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from vetrina.kernels import _cpu, adapt, postprocess, preprocess

from .reference import postprocess_ref

F32 = np.float32
F16 = np.float16


def to_f16(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=F32).ravel()
    out = np.empty(x.size, np.uint16)
    _cpu.f32_to_f16_bits(x, out)
    return out.view(F16)


def same_bits(a: np.ndarray, b: np.ndarray) -> None:
    a, b = a.view(np.uint16), b.view(np.uint16)
    nan = np.isnan(a.view(F16))
    np.testing.assert_array_equal(nan, np.isnan(b.view(F16)))
    np.testing.assert_array_equal(a[~nan], b[~nan])


def test_every_float16_survives_the_round_trip():
    bits = np.arange(1 << 16, dtype=np.uint16)
    back = np.empty(bits.size, F32)
    _cpu.f16_bits_to_f32(bits, back)
    np.testing.assert_array_equal(back, bits.view(F16).astype(F32))  # exact widening
    same_bits(to_f16(back), bits.view(F16))


def test_rounding_matches_numpy_around_every_float16():
    # each float16 value, its midpoints with both neighbours and the floats next to them:
    # ties to even, subnormals, the overflow threshold (65520) and signed zeros
    h = np.arange(1 << 16, dtype=np.uint16).view(F16).astype(F32)
    h = h[np.isfinite(h)]
    h = np.sort(h)
    mids = ((h[1:].astype(np.float64) + h[:-1]) / 2).astype(F32)
    x = np.concatenate([h, mids, np.nextafter(mids, F32(np.inf)), np.nextafter(mids, F32(-np.inf))])
    x = np.concatenate([x, [65519.996, 65520.0, 65536.0, 1e30, -1e30, 3.4e38, 1e-10, -1e-10]])
    x = x.astype(F32)
    with np.errstate(over="ignore"):
        same_bits(to_f16(x), x.astype(F16))


def test_random_bit_patterns_match_numpy():
    x = np.random.default_rng(5).integers(0, 1 << 32, 2_000_000, dtype=np.uint32).view(F32)
    with np.errstate(over="ignore"):
        same_bits(to_f16(x), x.astype(F16))


def test_specials():
    x = np.array([np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0, 65504.0, -65504.0], F32)
    got = to_f16(x)
    assert np.isposinf(got[0]) and np.isneginf(got[1]) and np.isnan(got[2:4]).all()
    assert got.view(np.uint16)[4] == 0 and got.view(np.uint16)[5] == 0x8000
    np.testing.assert_array_equal(got[6:], [65504.0, -65504.0])


@pytest.mark.parametrize("interpolation", ["bilinear", "area", "bilinear-u8"])
@pytest.mark.parametrize("size", [(64, 48), (32, 24), (100, 100)])
def test_preprocess_float16_is_float32_result_rounded(interpolation, size):
    rng = np.random.default_rng(1)
    imgs = [
        rng.integers(0, 256, (64, 48, 3), dtype=np.uint8),
        rng.integers(0, 256, (30, 90, 4), dtype=np.uint8),
    ]
    kw = {"scale": 1 / 58.4, "offset": -2.1, "interpolation": interpolation, "fit": "letterbox"}
    f32 = preprocess(imgs, size, **kw)
    f16 = preprocess(imgs, size, dtype=np.float16, **kw)
    assert f16.dtype == F16
    same_bits(f16, f32.astype(F16))
    out = np.empty_like(f16)
    assert preprocess(imgs, size, out=out, **kw) is out  # dtype taken from out
    same_bits(out, f16)


def test_postprocess_accepts_float16_batches():
    rng = np.random.default_rng(2)
    b16 = (rng.standard_normal((2, 3, 17, 23)) * 0.4 + 0.5).astype(F16)
    b16.flat[::7] = np.nan
    for sizes in (None, [(34, 46), (5, 90)]):
        got = postprocess(b16, sizes)
        want = postprocess_ref(b16.astype(F32), sizes)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
        got32 = postprocess(b16.astype(F32), sizes)
        for g, w in zip(got, got32, strict=True):
            np.testing.assert_array_equal(g, w)


def test_adapt_dtype_conversions():
    rng = np.random.default_rng(3)
    b = rng.standard_normal((2, 3, 9, 11)).astype(F32)
    same_bits(adapt(b, dtype=F16), b.astype(F16))
    np.testing.assert_array_equal(adapt(b.astype(F16)), b.astype(F16))
    np.testing.assert_array_equal(adapt(b.astype(F16), dtype=F32), b.astype(F16).astype(F32))


def _hard_floats() -> np.ndarray:
    h = np.arange(1 << 16, dtype=np.uint16).view(F16).astype(F32)
    h = np.sort(h[np.isfinite(h)])
    mids = ((h[1:].astype(np.float64) + h[:-1]) / 2).astype(F32)
    rand = np.random.default_rng(8).integers(0, 1 << 32, 1 << 18, dtype=np.uint32).view(F32)
    return np.concatenate(
        [h, mids, np.nextafter(mids, F32(np.inf)), np.nextafter(mids, F32(-np.inf)), rand]
    ).astype(F32)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_vectorised_conversion_in_the_kernels_matches_numpy(level):
    # the float16 writers of preprocess/adapt (SSE2 path, and scalar tails) on every hard case
    x = _hard_floats()
    w = 16381  # rows of an odd length: the scalar tail runs too
    x = x[: x.size // w * w]
    batch = x.reshape(1, 1, -1, w)
    old = _cpu.set_simd(level)
    try:
        got = adapt(batch, dtype=F16)
    finally:
        _cpu.set_simd(old)
    with np.errstate(over="ignore", invalid="ignore"):
        want = (batch * F32(1) + F32(0)).astype(F16)  # the kernel computes value * 1 + 0
    same_bits(got, want)
