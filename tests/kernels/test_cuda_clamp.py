"""The clamp kernel (kernels/cuda/clamp.cu, GpuKernels.clamp_async / clamp) against np.clip.

NVRTC compiles clamp.cu for sm_80 and sm_90 in test_cuda_compile.py (every source in
``gpu.SOURCES``); here: its parameter layout, its PTX, and the host emulation of the very same
source (test_cuda_compile.build_emulation), driven by the launcher's own packing, which must
equal ``np.clip(batch, lo, hi)`` bit for bit as ``Handoff.apply`` calls it (scalar bounds as
Python numbers, per-channel bounds as float32 ``[:, None, None]``), NaN and -0 included. The
same comparison runs on a real GPU at the end (skipped without one).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_cuda_compile import EmuBackend, _gpu_module, build_emulation

F32, F16 = np.dtype(np.float32), np.dtype(np.float16)
_UINT = {F32: np.uint32, F16: np.uint16}


def _reference(batch: np.ndarray, lo, hi) -> np.ndarray:
    """Handoff.apply's np.clip (engine/stages.py)."""
    if isinstance(lo, (tuple, list)):
        lo = np.asarray(lo, np.float32)[:, None, None]
    if isinstance(hi, (tuple, list)):
        hi = np.asarray(hi, np.float32)[:, None, None]
    out = batch.copy()
    with np.errstate(over="ignore"):  # float16 batch, scalar bound beyond 65504: inf, as here
        return np.clip(out, lo, hi, out=out)


def _model(batch: np.ndarray, lo, hi) -> np.ndarray:
    """The kernel's documented rule (clamp.cu), in numpy."""
    c = batch.shape[1]
    scalars = np.ndim(lo) == 0 and np.ndim(hi) == 0
    take = not scalars and c > 1
    with np.errstate(over="ignore"):
        if scalars and batch.dtype == F16:
            l16, h16 = np.float16(float(lo)), np.float16(float(hi))
            l32, h32 = np.full(c, l16, np.float32), np.full(c, h16, np.float32)
        else:
            l32 = np.broadcast_to(np.asarray(lo, np.float32), (c,)).copy()
            h32 = np.broadcast_to(np.asarray(hi, np.float32), (c,)).copy()
            if take:
                l32 = np.where(l32 == h32, h32, l32)
        ls, hs = l32.astype(batch.dtype), h32.astype(batch.dtype)
    out = batch.copy()
    v = batch.astype(np.float32)
    for k in range(c):
        vk, ok = v[:, k], out[:, k]
        if take:
            ok[vk <= l32[k]] = ls[k]
            ok[vk >= h32[k]] = hs[k]
        else:
            ok[vk < l32[k]] = ls[k]
            ok[vk > h32[k]] = hs[k]
    return out


def _numpy_quirk(batch: np.ndarray, lo, hi) -> bool:
    """Whether np.clip itself strays from the documented rule, and only in the sign of zeros.

    NumPy picks its clip loop by shape, dtype, bounds and the CPU's SIMD level, and its loops
    disagree on a zero equal to a bound of the other sign (NumPy 2.4 on an AVX2 EPYC keeps it
    for float32 (1, 2, H, W) batches with per-channel bounds; NumPy 2.5.2 on the host of a lent
    H200 kept it for other shapes too). There the GPU is held to the rule, and to np.clip up to
    zero signs."""
    want, rule = _reference(batch, lo, hi), _model(batch, lo, hi)
    u = _UINT[want.dtype]
    differ = want.view(u) != rule.view(u)
    return bool(differ.any()) and bool(((want == 0) & (rule == 0))[differ].all())


def _assert_bits(got: np.ndarray, want: np.ndarray, what: str, zero_sign: bool = True) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, what
    u = _UINT[got.dtype]
    differ = got.view(u) != want.view(u)
    if not zero_sign:
        differ &= ~((got == 0) & (want == 0))
    diff = np.flatnonzero(differ)
    assert diff.size == 0, (
        f"{what}: {diff.size} of {got.size} values differ, first at {diff[0]}: "
        f"{got.ravel()[diff[0]]!r} (bits {got.view(u).ravel()[diff[0]]:#x}) != "
        f"{want.ravel()[diff[0]]!r} (bits {want.view(u).ravel()[diff[0]]:#x})"
    )


def _check(got: np.ndarray, batch: np.ndarray, lo, hi, what: str = "") -> None:
    """got == the documented rule bit for bit, and == np.clip bit for bit (only the sign of
    zeros may differ where NumPy itself is inconsistent)."""
    _assert_bits(got, _model(batch, lo, hi), f"model {what} {lo} {hi}")
    quirk = _numpy_quirk(batch, lo, hi)
    _assert_bits(got, _reference(batch, lo, hi), f"np.clip {what} {lo} {hi}", not quirk)


def _batch(shape, dtype: np.dtype, seed: int, lo=-1.0, hi=1.0) -> np.ndarray:
    """Values around and on the bounds, ±0, ±inf, NaNs (quiet, signalling, negative, with
    payloads), subnormals and random bit patterns."""
    with np.errstate(over="ignore"):  # float16: bounds beyond 65504 become ±inf
        return _batch_values(shape, dtype, seed, lo, hi)


def _batch_values(shape, dtype: np.dtype, seed: int, lo, hi) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    los = np.ravel(np.asarray(lo, np.float64))
    his = np.ravel(np.asarray(hi, np.float64))
    span = max(1.0, float(np.max(np.abs(np.concatenate([los, his])))))
    x = rng.uniform(-2 * span, 2 * span, size).astype(dtype)
    u = _UINT[dtype]
    nbits = 8 * dtype.itemsize
    kinds = rng.integers(0, 8, size)
    random_bits = rng.integers(0, 1 << nbits, size, dtype=np.uint64).astype(u).view(dtype)
    x = np.where(kinds == 0, random_bits, x)
    picks = np.concatenate([los, his]).astype(dtype)  # exactly on a bound
    x = np.where(kinds == 1, picks[rng.integers(0, picks.size, size)], x)
    if dtype == F32:
        special_bits = [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
                        0x7F800001, 0x7FC12345, 0x00000001, 0x80000001, 0x007FFFFF]  # fmt: skip
    else:
        special_bits = [0, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0x7E55, 0x0001,
                        0x8001, 0x03FF, 0x7BFF, 0xFBFF]  # fmt: skip
    specials = np.array(special_bits, dtype=u).view(dtype)
    x = np.where(kinds == 2, specials[rng.integers(0, specials.size, size)], x)
    return np.ascontiguousarray(x.reshape(shape))


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    from vetrina.kernels import gpu

    libs, kernels = build_emulation(tmp_path_factory.mktemp("emu-clamp"))
    return gpu.GpuKernels._with_backend(EmuBackend(libs, kernels))


def _emu_clamp(emu, batch: np.ndarray, lo, hi) -> np.ndarray:
    """clamp_async on an emulated device copy of ``batch``."""
    dev = emu._backend.device_buffer(batch.nbytes)
    dev.view(batch.shape, batch.dtype)[...] = batch
    emu.clamp_async(dev.ptr, batch.shape, lo, hi, dtype=batch.dtype)
    out = dev.view(batch.shape, batch.dtype).copy()
    dev.check()
    return out


# ---------------------------------------------------------------------------------------------
# layout and code
# ---------------------------------------------------------------------------------------------


def test_clamp_is_a_source_with_both_kernels():
    from vetrina.kernels import gpu

    assert "clamp" in gpu.SOURCES
    assert gpu.kernel_names("clamp") == ["vt_clamp_f32", "vt_clamp_f16"]


def test_parameter_layout_matches_the_struct():
    """The packing constants equal the offsets clamp.cu static_asserts (checked by NVRTC and
    by the g++ build of the emulation); the block fits the 4 KiB parameter limit."""
    from vetrina.kernels import gpu

    text = (gpu.SOURCE_DIR / "clamp.cu").read_text()
    at = {f: int(o) for f, o in re.findall(r"VT_AT\(VtClamp, (\w+), (\d+)\)", text)}
    assert at == {
        "hw": 8,
        "c": 16,
        "take": 20,
        "lo": gpu._CLAMP_LO_AT,
        "hi": gpu._CLAMP_HI_AT,
        "lo_h": gpu._CLAMP_LOH_AT,
        "hi_h": gpu._CLAMP_HIH_AT,
    }
    (size,) = re.findall(r"VT_SIZE\(VtClamp, (\d+)\)", text)
    assert int(size) == gpu._CLAMP_SIZE <= 4096
    assert gpu._CLAMP_HEAD.size == gpu._CLAMP_LO_AT == 24
    assert re.search(r"#define VT_CLAMP_MAX_CHANNELS (\d+)", text).group(1) == "64"
    assert gpu._CLAMP_HI_AT - gpu._CLAMP_LO_AT == 4 * gpu.MAX_ADAPT_CHANNELS
    assert gpu._CLAMP_HIH_AT - gpu._CLAMP_LOH_AT == 2 * gpu.MAX_ADAPT_CHANNELS


def test_ptx_reads_bounds_from_the_parameters_without_local_memory():
    """The per-channel bounds are indexed in the parameter space (no copy of the 792-byte
    block to local memory) and compared without flushing subnormals (--ftz=false)."""
    _gpu_module()  # skips without NVRTC
    from vetrina.kernels import nvrtc

    source, headers = nvrtc._read_sources("clamp")
    ptx = nvrtc._nvrtc_compile("clamp", source, headers, "sm_90", target="ptx")[0].decode()
    assert ".local" not in ptx and "local.u" not in ptx
    assert re.search(r"\bld\.param\.f32\b", ptx)
    assert re.search(r"\bsetp\.\w+\.f32\b", ptx) and ".ftz" not in ptx


# ---------------------------------------------------------------------------------------------
# host emulation == np.clip
# ---------------------------------------------------------------------------------------------

_BOUNDS = [
    (0.0, 1.0),
    (-1.0, 1.0),
    (0.0, 255.0),
    (-0.0, 0.0),
    (0.0, -0.0),  # equal values: lo <= hi holds
    (0.5, 0.5),
    (0.1, 0.7),  # not float16 values: rounded to float16 (scalars) or compared in float32
    (-1e-10, 1e-10),  # float16: both round to ±0
    (-3e-8, 3e-8),  # float16 rounding ties at half the smallest subnormal
    (-70000.0, 70000.0),  # beyond float16: ±inf (scalars) or stored as ±inf
    (-1e30, 1e30),
]


@pytest.mark.parametrize("dtype", [F32, F16], ids=str)
@pytest.mark.parametrize("bounds", _BOUNDS, ids=str)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 7, 5), (3, 4, 9, 13), (1, 3, 1, 301)])
def test_scalar_bounds_equal_np_clip(emu, dtype, bounds, shape):
    lo, hi = bounds
    batch = _batch(shape, dtype, seed=hash((shape, bounds)) % 1000, lo=lo, hi=hi)
    _check(_emu_clamp(emu, batch, lo, hi), batch, lo, hi)


_PER_CHANNEL = {
    1: [((0.0,), (1.0,)), ((-0.0,), (0.0,))],
    2: [((0.0, -0.0), (1.0, 0.0)), ((-1.0, 0.5), (-0.5, 0.5))],
    3: [
        ((0.0, -1.0, 10.0), (1.0, 1.0, 255.0)),
        ((-0.0, 0.1, -1e-10), (0.0, 0.7, 1e-10)),
        ((-2.1179, -2.0357, -1.8044), (2.2489, 2.4286, 2.64)),  # ImageNet-normalised [0, 1]
    ],
    4: [((0.0, 0.0, 0.0, 0.25), (1.0, 0.5, 65504.0, 0.25)), ((-7e4, -1, 0, 1), (7e4, 1, 0, 2))],
}


@pytest.mark.parametrize("dtype", [F32, F16], ids=str)
@pytest.mark.parametrize(
    ("c", "k"), [(c, k) for c, cases in _PER_CHANNEL.items() for k in range(len(cases))]
)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_per_channel_bounds_equal_np_clip(emu, dtype, c, k, n):
    lo, hi = _PER_CHANNEL[c][k]
    batch = _batch((n, c, 5, 11), dtype, seed=100 * c + 10 * k + n, lo=lo, hi=hi)
    got = _emu_clamp(emu, batch, lo, hi)
    _check(got, batch, lo, hi, f"c={c}")
    # as lists and float32 arrays too
    _assert_bits(_emu_clamp(emu, batch, list(lo), np.asarray(hi, np.float32)), got, "list")
    # one side a number: still per-channel promotion and loop (float32 comparisons)
    _check(_emu_clamp(emu, batch, lo[0], hi), batch, lo[0], hi, "scalar lo")


@pytest.mark.parametrize("dtype", [F32, F16], ids=str)
def test_ties_and_signed_zeros(emu, dtype):
    """A zero equal to a bound of the other sign: kept with scalar (or one-channel) bounds,
    replaced by the bound with per-channel ones; lo == hi gives hi; NaN is never written."""
    zeros = np.array([0.0, -0.0, np.nan, -np.nan, 2.0, -2.0], dtype)
    batch = np.ascontiguousarray(np.broadcast_to(zeros, (2, 3, 2, 6)))
    u = _UINT[dtype]

    def bits(*values):
        return np.array(values, dtype).view(u).tolist()

    nan, neg_nan = bits(np.nan, -np.nan)
    got = _emu_clamp(emu, batch, 0.0, 1.0)[0, 0, 0]
    assert got.view(u).tolist() == [*bits(0.0, -0.0), nan, neg_nan, *bits(1.0, 0.0)]
    got = _emu_clamp(emu, batch, (0.0,) * 3, (1.0,) * 3)[1, 2, 1]
    assert got.view(u).tolist() == [*bits(0.0, 0.0), nan, neg_nan, *bits(1.0, 0.0)]
    got = _emu_clamp(emu, batch, (-0.0,) * 3, (0.0,) * 3)[0, 1, 0]  # lo == hi: hi
    assert got.view(u).tolist() == [*bits(0.0, 0.0), nan, neg_nan, *bits(0.0, 0.0)]
    got = _emu_clamp(emu, batch, (0.0,) * 3, (-0.0,) * 3)[0, 1, 0]
    assert got.view(u).tolist() == [*bits(-0.0, -0.0), nan, neg_nan, *bits(-0.0, -0.0)]
    got = _emu_clamp(emu, batch[:, :1], (0.0,), (1.0,))[0, 0, 0]  # one channel: as a scalar
    assert got.view(u).tolist() == [*bits(0.0, -0.0), nan, neg_nan, *bits(1.0, 0.0)]
    _check(_emu_clamp(emu, batch, (0.0,) * 3, (-0.0,) * 3), batch, (0.0,) * 3, (-0.0,) * 3)


def test_64_channels_and_nan_bits_kept(emu):
    rng = np.random.default_rng(64)
    lo = tuple(float(v) for v in rng.uniform(-1, 0, 64))
    hi = tuple(float(v) for v in rng.uniform(0, 1, 64))
    for dtype in (F32, F16):
        batch = _batch((2, 64, 3, 3), dtype, seed=7, lo=lo, hi=hi)
        got = _emu_clamp(emu, batch, lo, hi)
        _check(got, batch, lo, hi, str(dtype))
        nan = np.isnan(batch)
        assert nan.any()
        u = _UINT[dtype]
        assert np.array_equal(got.view(u)[nan], batch.view(u)[nan])  # NaN bits untouched


def test_multi_block_strides(emu, monkeypatch):
    """Several planes per grid row and several passes along a plane (the grid-stride loops)."""
    from vetrina.kernels import gpu

    monkeypatch.setattr(gpu, "_MIN_THREADS", 1)  # one block along x: it strides over the plane
    monkeypatch.setattr(gpu, "_MAX_GRID_Y", 2)  # 2 grid rows: each strides over the planes
    backend = emu._backend
    for dtype in (F32, F16):
        batch = _batch((3, 3, 23, 29), dtype, seed=9)  # 667 elements per plane, 9 planes
        backend.launches.clear()
        got = _emu_clamp(emu, batch, (0.0, -0.5, -1.0), (1.0, 0.5, 0.0))
        assert backend.launches == [(f"vt_clamp_{gpu._short(dtype)}", (1, 2, 1), emu.stream.handle)]
        _check(got, batch, (0.0, -0.5, -1.0), (1.0, 0.5, 0.0), str(dtype))


def test_grid_covers_big_planes(emu):
    from vetrina.kernels import gpu

    backend = emu._backend
    batch = _batch((1, 1, 300, 1000), F32, seed=3)
    backend.launches.clear()
    got = _emu_clamp(emu, batch, -1.0, 1.0)
    ((_, grid, _),) = backend.launches
    assert grid[1] == 1 and grid[0] * 256 >= min(300_000, gpu._MIN_THREADS)
    _check(got, batch, -1.0, 1.0, "big plane")


def test_numpy_wrapper_and_stream(emu):
    rng = np.random.default_rng(1)
    for dtype in (F32, F16):
        base = _batch((2, 3, 8, 6), dtype, seed=2)
        strided = np.ascontiguousarray(base[:, :, ::-1])[:, :, ::2]  # any strides are fine
        before = strided.copy()
        got = emu.clamp(strided, (0.0, 0.25, -0.5), (1.0, 0.75, 0.5))
        assert np.array_equal(strided.view(_UINT[dtype]), before.view(_UINT[dtype]))  # untouched
        _check(got, strided, (0.0, 0.25, -0.5), (1.0, 0.75, 0.5), str(dtype))
        _check(emu.clamp(strided, 0.1, 0.9), strided, 0.1, 0.9, "scalar")
    batch = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    backend = emu._backend
    backend.launches.clear()
    dev = backend.device_buffer(batch.nbytes)
    emu.clamp_async(dev.ptr, batch.shape, 0.0, 1.0, stream=1234)
    assert backend.launches[0][2] == 1234


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.sampled_from([1, 2, 3, 4, 7, 64]),
    h=st.integers(1, 9),
    w=st.integers(1, 17),
    f16=st.booleans(),
    per_channel=st.booleans(),
    data=st.data(),
)
def test_property_equals_np_clip(emu, n, c, h, w, f16, per_channel, data):
    dtype = F16 if f16 else F32
    value = st.floats(-1e5, 1e5, allow_nan=False, width=32)
    k = c if per_channel else 1
    pairs = [sorted(data.draw(st.tuples(value, value))) for _ in range(k)]
    lo = tuple(p[0] for p in pairs) if per_channel else pairs[0][0]
    hi = tuple(p[1] for p in pairs) if per_channel else pairs[0][1]
    batch = _batch((n, c, h, w), dtype, seed=data.draw(st.integers(0, 2**32 - 1)), lo=lo, hi=hi)
    got = _emu_clamp(emu, batch, lo, hi)
    _assert_bits(got, _model(batch, lo, hi), f"model {lo} {hi}")
    # NumPy's loop choice (the sign of a zero on a tie) is its own business: values only
    _assert_bits(got, _reference(batch, lo, hi), f"np.clip {lo} {hi}", zero_sign=False)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "lo", "hi", "kw", "match"),
    [
        ((1, 3, 4, 4), 1.0, 0.0, {}, r"clamp_async: lo = 1\.0 > hi = 0\.0; expected lo <= hi"),
        ((1, 3, 4, 4), (0, 2, 0), (1, 1, 1), {}, r"lo\[1\] = 2\.0 > hi\[1\] = 1\.0.*swap"),
        ((1, 3, 4, 4), (0, 0), 1.0, {}, r"clamp_async: lo has shape \(2,\); expected .*3 finite"),
        ((1, 4, 4, 4), 0.0, (1, 1, 1), {}, r"hi has shape \(3,\); expected .*4 finite"),
        ((1, 3, 4, 4), float("nan"), 1.0, {}, r"lo is nan; expected a finite number"),
        ((1, 3, 4, 4), 0.0, 1e39, {}, r"hi is 1e\+39; .*finite also after conversion"),
        ((1, 3, 4, 4), "0", 1.0, {}, r"lo is '0'"),
        ((3, 4, 4), 0.0, 1.0, {}, r"clamp_async: batch_shape is \(3, 4, 4\); expected \(N, C"),
        ((1, 0, 4, 4), 0.0, 1.0, {}, r"batch_shape is \(1, 0, 4, 4\)"),
        ((1, 65, 2, 2), 0.0, 1.0, {}, r"clamp_async: batch has 65 channels; expected at most 64"),
        ((1, 3, 4, 4), 0.0, 1.0, {"dtype": np.uint8}, r"dtype is .*; expected float32 or float16"),
    ],
)
def test_bad_arguments_are_clear_errors(emu, shape, lo, hi, kw, match):
    backend = emu._backend
    dev = backend.device_buffer(4096)
    backend.launches.clear()
    with pytest.raises(ValueError, match=match):
        emu.clamp_async(dev.ptr, shape, lo, hi, **kw)
    assert backend.launches == []


def test_bad_pointers_and_numpy_batches(emu):
    with pytest.raises(ValueError, match=r"clamp_async: batch is a null device pointer"):
        emu.clamp_async(0, (1, 3, 2, 2), 0.0, 1.0)
    with pytest.raises(TypeError, match=r"clamp_async: batch has type str"):
        emu.clamp_async("x", (1, 3, 2, 2), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"clamp: batch has dtype uint8"):
        emu.clamp(np.zeros((1, 3, 2, 2), np.uint8), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"clamp: batch has shape \(3, 2, 2\)"):
        emu.clamp(np.zeros((3, 2, 2), np.float32), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"clamp: lo\[0\] = 1\.0 > hi\[0\] = 0\.0"):
        emu.clamp(np.zeros((1, 2, 2, 2), np.float32), (1.0, 0.0), (0.0, 1.0))


# ---------------------------------------------------------------------------------------------
# a real GPU (skipped without one)
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_gpu_clamp_equals_np_clip():
    from vetrina.kernels import gpu

    reason = gpu.gpu_unavailable_reason()
    if reason is not None:
        pytest.skip(f"needs a CUDA GPU: {reason}")
    with gpu.GpuKernels(0) as gk:
        for dtype in (F32, F16):
            for lo, hi in [(0.0, 1.0), ((-0.0, 0.1, -1e-10), (0.0, 0.7, 1e-10))]:
                batch = _batch((3, 3, 257, 129), dtype, seed=5, lo=lo, hi=hi)
                _check(gk.clamp(batch, lo, hi), batch, lo, hi, "gpu")
            big = _batch((2, 3, 1024, 1536), dtype, seed=6)  # many elements per thread
            _check(gk.clamp(big, -1.0, 1.0), big, -1.0, 1.0, "gpu big")
