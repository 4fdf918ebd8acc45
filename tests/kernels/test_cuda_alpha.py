"""The CUDA alpha kernels (kernels/cuda/alpha.cu via vetrina.kernels.gpu_alpha) against the
CPU kernels: on the host emulation (alpha.cu compiled as C++, run one thread at a time through
GpuAlpha's own argument packing; needs only a C++ compiler) and on a real GPU (skipped
without one). NVRTC compilation for sm_80/sm_90 is covered by test_cuda_compile.py, which
compiles every entry of gpu.SOURCES.

Tolerances: bit-exact for the resize, ramp, shadow and RGBA kernels; the guided filter sums
in another order than the CPU and is within 1 uint8 level (docs/kernels.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from vetrina import kernels as cpu
from vetrina.kernels.alpha import resized_matte

from .test_cuda_gpu import _REASON, Case, _assert_close

F32 = np.float32


def _guide(h: int, w: int, c: int, seed: int) -> np.ndarray:
    """Structured guide: gradients, a disc, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.stack([xx * 255.0 / max(w - 1, 1), yy * 255.0 / max(h - 1, 1), (xx * 3 + yy) % 101], -1)
    disc = (yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 4) ** 2
    g[disc] = 255 - g[disc]
    g = np.clip(g + rng.normal(0, 5, g.shape), 0, 255).astype(np.uint8)
    if c == 4:
        g = np.concatenate([g, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], axis=2)
    return g


MATTE_CASES = [
    Case("plain-up", src=(20, 15), size=(61, 47)),
    Case("plain-down-ramp", src=(40, 50), size=(17, 23), low=0.2, high=0.7, specials=True),
    Case("plain-threshold", src=(9, 9), size=(30, 20), low=0.5, high=0.5),
    Case("plain-identity", src=(16, 24), size=(16, 24)),
    Case("plain-one-pixel", src=(1, 1), size=(5, 3)),
    Case("guided-r4", src=(20, 15), size=(61, 47), guide=3, radius=4),
    Case("guided-r1-rgba", src=(12, 12), size=(40, 70), guide=4, radius=1, eps=1e-4),
    Case("guided-r8-ramp", src=(30, 20), size=(90, 60), guide=3, radius=8, low=0.1, high=0.9),
    Case("guided-huge-radius", src=(6, 5), size=(25, 33), guide=3, radius=200),
    Case("guided-tiny-eps", src=(10, 10), size=(40, 40), guide=3, radius=3, eps=1e-8),
    Case("guided-flat-guide", src=(10, 10), size=(30, 30), guide=0, radius=5),
    Case("guided-one-pixel", src=(3, 3), size=(1, 1), guide=3, radius=2),
]


def check_matte_case(ga, case: Case, exact: bool) -> None:
    rng = np.random.default_rng(len(case.name))
    m = rng.random(case["src"], dtype=np.float32) * F32(1.2) - F32(0.1)
    if case.get("specials"):
        m.flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
    h, w = case["size"]
    kw = {"low": case.get("low", 0.0), "high": case.get("high", 1.0)}
    if "guide" in case:
        c = case["guide"]
        g = np.full((h, w, 3), 77, np.uint8) if c == 0 else _guide(h, w, c, len(case.name))
        kw.update(guide=g, radius=case["radius"], eps=case.get("eps", 1e-3))
    got = ga.matte_to_alpha(m, (h, w), **kw)
    want = cpu.matte_to_alpha(m, (h, w), **kw)
    if "guide" in case:  # another summation order: within 1 level, nearly always equal
        _assert_close(got, want, False, f"matte_to_alpha {case}")
        assert np.mean(got == want) >= 0.98, f"{case}: {np.mean(got == want):.4f} equal"
    else:
        _assert_close(got, want, exact, f"matte_to_alpha {case}")


SHADOW_CASES = [
    Case("median", kw={}),
    Case("median-rgba-strong", kw={"strength": 2.0, "min_darkening": 0.0}, channels=4),
    Case("fixed-background", kw={"background": 240}),
    Case("no-background-pixels", kw={}, opaque=True),
    Case("black-background", kw={}, black=True),
]


def check_shadow_case(ga, case: Case, exact: bool) -> None:
    rng = np.random.default_rng(len(case.name))
    h, w = 37, 53
    yy, xx = np.mgrid[0:h, 0:w]
    dark = 0.5 * np.exp(-(((yy - 25) / 6.0) ** 2 + ((xx - 26) / 15.0) ** 2))
    img = np.full((h, w, 3), 0.0 if case.get("black") else 235.0) * (1 - dark[..., None])
    img = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    if case.get("channels") == 4:
        img = np.concatenate([img, np.full((h, w, 1), 3, np.uint8)], axis=2)
    alpha = np.zeros((h, w), np.uint8)
    alpha[5:20, 15:40] = 255
    alpha[20, 15:40] = 100
    if case.get("opaque"):
        alpha[:] = 1
    got = ga.keep_shadow(img, alpha, **case["kw"])
    _assert_close(got, cpu.keep_shadow(img, alpha, **case["kw"]), exact, f"keep_shadow {case}")


def check_rgba_ops(ga, exact: bool) -> None:
    rng = np.random.default_rng(11)
    a, s = np.meshgrid(np.arange(256), np.arange(0, 256, 3), indexing="ij")
    rgba = rng.integers(0, 256, (*a.shape, 4), dtype=np.uint8)
    rgba[..., 3] = a
    shadow = s.astype(np.uint8)
    _assert_close(ga.merge_shadow(rgba, shadow), cpu.merge_shadow(rgba, shadow), exact, "merge")
    _assert_close(ga.premultiply(rgba), cpu.premultiply(rgba), exact, "premultiply")
    bgs = [255, (10, 200, 30), rng.integers(0, 256, (*a.shape, 4), dtype=np.uint8)]
    for bg in bgs:
        for mode in ("straight", "premultiplied"):
            got = ga.composite(rgba, bg, alpha=mode)
            _assert_close(got, cpu.composite(rgba, bg, alpha=mode), exact, f"composite {mode}")


# ---------------------------------------------------------------------------------------------
# host emulation
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    """GpuAlpha over the host emulation of alpha.cu alone (faster than every source)."""
    from vetrina.kernels import gpu
    from vetrina.kernels.gpu_alpha import GpuAlpha

    from .test_cuda_compile import EmuBackend, build_emulation

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gpu, "SOURCES", ("alpha",))
        libs, kernels = build_emulation(tmp_path_factory.mktemp("emu-alpha"))
    backend = EmuBackend(libs, kernels)
    return GpuAlpha(gpu.GpuKernels._with_backend(backend))


@pytest.mark.parametrize("case", MATTE_CASES, ids=str)
def test_emulated_matte_to_alpha_equals_cpu(emu, case):
    check_matte_case(emu, case, exact=True)


@pytest.mark.parametrize("spans", [(1, 1), (4, 4), (7, 3), (1, 33), (500, 500)])
def test_emulated_guided_filter_is_right_for_any_box_span(emu, spans, monkeypatch):
    """The box passes give the CPU's alpha (within 1 level) whatever the segment length and
    band height: one pixel, a partial last segment, one segment for the whole row."""
    from vetrina.kernels import gpu_alpha

    monkeypatch.setattr(gpu_alpha, "_box_spans", lambda r, pixels: spans)
    for case in MATTE_CASES:
        if "guide" in case:
            check_matte_case(emu, case, exact=True)


def test_box_span_rule():
    """Short spans (many threads) for photo sizes, never under 4, never past max(32, 2r+1);
    rows in segments of 2 pixels up to radius 24, of 3 past it."""
    from vetrina.kernels.gpu_alpha import _box_span, _box_spans

    assert _box_spans(16, 683 * 1024) == (2, 6)
    assert _box_spans(24, 10**6) == (2, 8)
    assert _box_spans(48, 1366 * 2048) == (3, 22)
    assert _box_span(16, 683 * 1024) == 6  # ~117k threads per box pass
    assert _box_span(16, 20 * 20) == 4
    assert _box_span(1, 4096 * 4096) == 32
    assert _box_span(100, 4096 * 4096) == 128
    assert _box_span(100, 8192 * 8192) == 201
    for r in (1, 2, 16, 300):
        for pixels in (1, 1000, 10**6, 10**8):
            assert 4 <= _box_span(r, pixels) <= max(32, 2 * r + 1)


@pytest.mark.parametrize("case", SHADOW_CASES, ids=str)
def test_emulated_keep_shadow_equals_cpu(emu, case):
    check_shadow_case(emu, case, exact=True)


def test_emulated_rgba_kernels_equal_cpu(emu):
    check_rgba_ops(emu, exact=True)


def _emu_alloc(emu, arr: np.ndarray):
    """Emulated device memory holding arr: (buffer, pointer)."""
    buf = emu._backend.device_buffer(max(arr.nbytes, 1))
    np.copyto(buf.view(arr.shape, arr.dtype), arr)
    return buf, buf.ptr


def test_emulated_async_resized_output_and_pitches(emu):
    """The async API on pitched device images: the resized matte equals the CPU's (and
    adapt's) bit for bit; pitched outputs leave the padding alone."""
    from vetrina.kernels.gpu import DeviceImage

    rng = np.random.default_rng(4)
    m = rng.random((13, 10), dtype=np.float32)
    padded = np.zeros((13, 16), np.float32)
    padded[:, :10] = m
    _, mptr = _emu_alloc(emu, padded)
    h, w = 29, 31
    rbuf, rptr = _emu_alloc(emu, np.zeros((h, w), np.float32))
    obuf, optr = _emu_alloc(emu, np.full((h, 40), 7, np.uint8))
    out = DeviceImage(optr, h, w, 1, row_pitch=40)
    emu.matte_to_alpha_async(mptr, out, (h, w), matte_hw=(13, 10), matte_pitch=16, resized=rptr)
    np.testing.assert_array_equal(rbuf.view((h, w), np.float32), resized_matte(m, (h, w)))
    o = obuf.view((h, 40), np.uint8)
    np.testing.assert_array_equal(o[:, :w], cpu.matte_to_alpha(m, (h, w)))
    assert (o[:, w:] == 7).all()
    # guided, with the resized matte kept and a caller's workspace
    from vetrina.kernels.gpu_alpha import workspace_bytes

    g = _guide(h, w, 3, 1)
    _, gptr = _emu_alloc(emu, g)
    ws = emu._backend.device_buffer(workspace_bytes((h, w)))
    emu.matte_to_alpha_async(
        mptr, out, (h, w), matte_hw=(13, 10), matte_pitch=16, resized=rptr,
        guide=DeviceImage(gptr, h, w, 3), radius=3, workspace=ws,
    )  # fmt: skip
    np.testing.assert_array_equal(rbuf.view((h, w), np.float32), resized_matte(m, (h, w)))
    want = cpu.matte_to_alpha(m, (h, w), guide=g, radius=3)
    assert np.abs(o[:, :w].astype(int) - want).max() <= 1
    assert (o[:, w:] == 7).all()


def test_emulated_capture_replays_the_whole_guided_chain(emu):
    """Workspace initialisation is a kernel too, so a captured plan is complete."""
    from vetrina.kernels.gpu import DeviceImage

    rng = np.random.default_rng(8)
    m = rng.random((8, 8), dtype=np.float32)
    h, w = 24, 20
    g = _guide(h, w, 3, 2)
    _, mptr = _emu_alloc(emu, m)
    _, gptr = _emu_alloc(emu, g)
    obuf, optr = _emu_alloc(emu, np.zeros((h, w), np.uint8))
    with emu.kernels.capture() as plan:
        emu.matte_to_alpha_async(
            mptr, DeviceImage(optr, h, w, 1), (h, w), matte_hw=(8, 8),
            guide=DeviceImage(gptr, h, w, 3), radius=2,
        )  # fmt: skip
    assert not obuf.view((h, w)).any()  # nothing ran yet
    names = [k for k, _, _, _ in plan.launches]
    assert names[0] == "vt_fill_u32" and names[-1] == "vt_gf_cols2"
    plan.launch()
    want = cpu.matte_to_alpha(m, (h, w), guide=g, radius=2)
    assert np.abs(obuf.view((h, w)).astype(int) - want).max() <= 1


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda ga, im: ga.matte_to_alpha_async(im["m"], im["o"], (9, 9)),
         r"matte is a bare pointer; pass matte_hw"),
        (lambda ga, im: ga.matte_to_alpha_async(im["m"], im["o"], (9, 8), matte_hw=(3, 3)),
         r"out is 9x9; expected 9x8"),
        (lambda ga, im: ga.matte_to_alpha_async(im["m"], im["o"], (9, 9), matte_hw=(3, 3),
                                                matte_pitch=2), r"matte_pitch is 2"),
        (lambda ga, im: ga.matte_to_alpha_async(im["m"], im["o"], (9, 9), matte_hw=(3, 3),
                                                radius=2), r"radius is 2 but guide is None"),
        (lambda ga, im: ga.matte_to_alpha_async(im["m"], im["o"], (9, 9), matte_hw=(3, 3),
                                                guide=im["o"], radius=2),
         r"guide has 1 channels; expected 3 or 4"),
        (lambda ga, im: ga.matte_to_alpha_async(im["m"], im["o"], (9, 9), matte_hw=(3, 3),
                                                guide=im["g"], radius=2, workspace=im["small"]),
         r"workspace has 16 bytes; expected a DeviceBuffer of at least"),
        (lambda ga, im: ga.keep_shadow_async(im["g"], im["o"], im["o"], background=0),
         r"keep_shadow_async: background is 0"),
        (lambda ga, im: ga.merge_shadow_async(im["g"], im["o"], im["o"]),
         r"merge_shadow_async: rgba has 3 channels; expected 4"),
        (lambda ga, im: ga.composite_async(im["rgba"], im["o"]),
         r"composite_async: out has 1 channels; expected 3"),
        (lambda ga, im: ga.matte_to_alpha(np.zeros((3, 3)), (4, 4)),
         r"matte_to_alpha: matte has dtype float64; expected float32"),
        (lambda ga, im: ga.keep_shadow(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8)),
         r"keep_shadow: alpha has dtype uint8 and shape \(4, 5\)"),
    ],
)  # fmt: skip
def test_emulated_bad_arguments(emu, call, match):
    from vetrina.kernels.gpu import DeviceImage

    b = emu._backend
    im = {
        "m": b.device_buffer(64).ptr,
        "o": DeviceImage(b.device_buffer(81).ptr, 9, 9, 1),
        "g": DeviceImage(b.device_buffer(243).ptr, 9, 9, 3),
        "rgba": DeviceImage(b.device_buffer(324).ptr, 9, 9, 4),
        "small": b.device_buffer(16),
    }
    with pytest.raises(ValueError, match=match):
        call(emu, im)


# ---------------------------------------------------------------------------------------------
# a real GPU
# ---------------------------------------------------------------------------------------------

gpu_only = pytest.mark.skipif(_REASON is not None, reason=f"needs a CUDA GPU: {_REASON}")


@pytest.fixture(scope="module")
def ga():
    if _REASON is not None:
        pytest.skip(f"needs a CUDA GPU: {_REASON}")
    from vetrina.kernels.gpu_alpha import GpuAlpha

    alpha = GpuAlpha(0)
    yield alpha
    alpha.close()


@gpu_only
@pytest.mark.gpu
@pytest.mark.parametrize("case", MATTE_CASES, ids=str)
def test_matte_to_alpha_matches_cpu(ga, case):
    check_matte_case(ga, case, exact=False)


@gpu_only
@pytest.mark.gpu
@pytest.mark.parametrize("case", SHADOW_CASES, ids=str)
def test_keep_shadow_matches_cpu(ga, case):
    check_shadow_case(ga, case, exact=False)


@gpu_only
@pytest.mark.gpu
def test_rgba_kernels_match_cpu(ga):
    check_rgba_ops(ga, exact=False)


@gpu_only
@pytest.mark.gpu
def test_full_size_guided_on_a_stream(ga):
    """The service's case, 320x320 -> 1024x683 with radius 8, through device buffers on a
    non-default stream; the resized matte is bit-exact, the alpha within 1 level."""
    from vetrina.kernels import gpu

    rng = np.random.default_rng(5)
    m = rng.random((320, 320), dtype=np.float32)
    h, w = 1024, 683
    g = _guide(h, w, 3, 9)
    with gpu.Stream() as s:
        dm = gpu.DeviceBuffer.empty((1, 1, 320, 320), np.float32)
        dm.copy_from_host(m, stream=s)
        dg = gpu.DeviceBuffer.empty((h, w, 3), np.uint8)
        dg.copy_from_host(g, stream=s)
        do = gpu.DeviceBuffer.empty((h, w), np.uint8)
        dr = gpu.DeviceBuffer.empty((h, w), np.float32)
        ga.matte_to_alpha_async(
            dm, gpu.DeviceImage(do.ptr, h, w, 1), (h, w),
            guide=gpu.DeviceImage(dg.ptr, h, w, 3), radius=8, resized=dr, stream=s,
        )  # fmt: skip
        got = do.copy_to_host(stream=s)
        resized = dr.copy_to_host(stream=s)
    np.testing.assert_array_equal(resized, resized_matte(m, (h, w)))
    want = cpu.matte_to_alpha(m, (h, w), guide=g, radius=8)
    _assert_close(got, want, False, "full-size guided")
    assert np.mean(got == want) >= 0.999
