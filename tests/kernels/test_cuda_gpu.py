"""The CUDA kernels on a real GPU against the CPU kernels (vetrina.kernels).

Skipped without a usable GPU (detected through cudaGetDeviceCount, which answers without a
driver). The comparison cases (``*_CASES``/``check_*``) are shared with the host emulation in
test_cuda_compile.py, which runs them on every CI machine.

Tolerances: uint8 outputs within 1 LSB, float outputs within a few float32 ulps; both kernels
do the same float32 operations in the same order, so the GPU is expected to be bit-exact and
the emulation asserts exactly that.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from vetrina import kernels as cpu

F32, F16 = np.float32, np.float16
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _images(shapes, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, s, dtype=np.uint8) for s in shapes]


class NotBitExactWarning(UserWarning):
    """The GPU result is within tolerance of the CPU's but not identical (it should be)."""


def _assert_close(got: np.ndarray, want: np.ndarray, exact: bool, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape)
    if exact:
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    if not np.array_equal(got, want, equal_nan=want.dtype.kind == "f"):
        n = int(np.count_nonzero(got != want))
        warnings.warn(f"{what}: {n} of {got.size} values differ", NotBitExactWarning, 2)
    if want.dtype.kind != "f":
        diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
        assert diff.max(initial=0) <= 1, f"{what}: max uint8 difference {diff.max()}"
    else:
        a, b = got.astype(np.float64), want.astype(np.float64)
        with np.errstate(all="ignore"):
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            ulp = np.spacing(np.abs(b).astype(want.dtype)).astype(np.float64)
            err = np.where(same, 0.0, np.abs(a - b) / np.maximum(ulp, 1e-30))
        assert not np.isnan(err).any() and err.max(initial=0) <= 4, f"{what}: ulps {err.max()}"


class Case(dict):
    """A named dict of arguments (its str is the pytest id)."""

    def __init__(self, name: str, **kw) -> None:
        super().__init__(kw)
        self.name = name

    def __str__(self) -> str:
        return self.name


# ---------------------------------------------------------------------------------------------
# preprocess
# ---------------------------------------------------------------------------------------------

# (name, source shapes, output size): every resampling path of the CPU kernel -- float taps
# down/up/mixed, integer factors (area's integer box, bilinear's exact shortcut), OpenCV's
# 8-bit bilinear and its exact 2x, identity, one pixel, wide rows, mixed batches
_GEOMETRIES = [
    ("down", [(37, 53, 3)], (20, 30)),
    ("up", [(5, 7)], (40, 9)),
    ("mixed-axes", [(20, 90, 4)], (41, 30)),
    ("identity", [(16, 24, 3)], (16, 24)),
    ("int-2x", [(64, 48, 3)], (32, 24)),
    ("int-3x4x", [(60, 96, 1)], (20, 24)),
    ("one-pixel", [(6, 4, 3), (1, 1, 3)], (1, 1)),
    ("wide", [(3, 700, 3)], (2, 233)),
    ("batch", [(64, 48, 3), (30, 90, 4), (17, 17, 1), (1, 1, 3), (33, 65)], (32, 32)),
]
_AFFINES = [
    {},
    {"scale": (0.5, -1 / 255, 2.0), "offset": (-0.25, 1.0, 3.5), "src_order": "BGR"},
    {
        "scale": [1 / (255 * s) for s in STD],
        "offset": [-m / s for m, s in zip(MEAN, STD, strict=True)],
        "dst_order": "BGR",
        "pad_value": (114, 0, 255),
    },
]

PRE_CASES = [
    Case(
        f"{interp}-{fit}-{geo}-{a}",
        shapes=shapes,
        size=size,
        kw={"interpolation": interp, "fit": fit, **_AFFINES[a]},
    )
    for interp in ("bilinear", "area", "bilinear-u8", "lanczos")
    for fit in ("stretch", "letterbox", "crop")
    for g, (geo, shapes, size) in enumerate(_GEOMETRIES)
    for a in [(g + len(fit) + len(interp)) % len(_AFFINES)]
] + [
    Case("f16-bilinear", shapes=[(40, 50, 3), (20, 10, 1)], size=(24, 36), dtype=F16),
    Case("f16-area-letterbox", shapes=[(90, 40, 3)], size=(30, 30), dtype=F16,
         kw={"interpolation": "area", "fit": "letterbox", "pad_value": 255}),
    Case("f16-overflow", shapes=[(12, 12, 3)], size=(12, 12), dtype=F16, kw={"scale": 300.0}),
    Case("f16-lanczos-crop", shapes=[(50, 90, 4), (9, 5)], size=(24, 20), dtype=F16,
         kw={"interpolation": "lanczos", "fit": "crop", "src_order": "BGR"}),
    # a 300x downscale: windows wider than the x weights a GPU thread caches (VT_LZ_MAXW)
    Case("lanczos-wide-window", shapes=[(40, 900, 3)], size=(7, 3),
         kw={"interpolation": "lanczos"}),
    Case("batch-of-40", shapes=[(9 + i % 5, 7 + i % 3, 3) for i in range(40)], size=(8, 8)),
]  # fmt: skip


def check_pre_case(gk, case: Case, exact: bool) -> None:
    imgs = _images(case["shapes"], seed=len(case.name))
    kw = dict(case.get("kw", {}))
    dtype = case.get("dtype", F32)
    got, places = gk.preprocess(imgs, case["size"], dtype=dtype, return_placements=True, **kw)
    want, want_places = cpu.preprocess(
        imgs, case["size"], dtype=dtype, return_placements=True, **kw
    )
    assert places == want_places
    _assert_close(got, want, exact, f"preprocess {case}")


def check_big_box_sums(gk, exact: bool) -> None:
    """Integer-factor area blocks of 16843010+ pixels (255 * pixels past 2**32): the generic
    kernel's 64-bit block sums (a 32-bit sum wrapped, as the CPU's did: 8192 x 8192 of 255
    -> 1 x 1 gave 63). One gray and one RGB image, each a 4105 x 4105 block -> 1 x 1, in one
    launch with a small integer-factor image (which the launch then takes generically too)."""
    rng = np.random.default_rng(3)
    imgs = [
        np.full((4105, 4105), 255, np.uint8),
        np.full((4105, 4105, 3), 250, np.uint8),
        rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),  # a 8 x 8 block: a fast-path size
    ]
    for img in imgs:
        got = gk.preprocess([img], (1, 1), interpolation="area", scale=1.0)
        _assert_close(got, cpu.preprocess([img], (1, 1), interpolation="area", scale=1.0),
                      exact, f"area {img.shape} -> 1 x 1")  # fmt: skip
        if img.min() == img.max():  # the mean, up to the rounding of sum * (1 / area)
            assert np.abs(got - F32(img.flat[0])).max() < 1e-3, (img.shape, got)
    got = gk.preprocess(imgs, (1, 1), interpolation="area", dtype=F16)
    _assert_close(got, cpu.preprocess(imgs, (1, 1), interpolation="area", dtype=F16), exact,
                  "area, one launch")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# postprocess
# ---------------------------------------------------------------------------------------------


def _batch(n: int, h: int, w: int, seed: int, specials: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    b = (rng.standard_normal((n, 3, h, w)) * 0.6 + 0.5).astype(F32)
    if specials:
        vals = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 0.5 / 255, 254.5 / 255, -0.0], F32)
        idx = rng.integers(0, b.size, max(1, b.size // 10))
        b.flat[idx] = rng.choice(vals, idx.size)
    return b


POST_CASES = [
    Case("identity", n=2, hw=(17, 23), sizes=None),
    Case("resize", n=2, hw=(17, 23), sizes=[(5, 90), (40, 3)], specials=True),
    Case("swap-affine", n=1, hw=(20, 20), sizes=[(31, 13)], kw={
        "scale": (255.0, 200.0, 100.0), "offset": (0.0, 10.0, -3.0), "dst_order": "BGR"}),
    Case("alpha", n=2, hw=(8, 9), sizes=[(8, 9), (12, 5)], alpha=[True, False]),
    Case("specials-identity", n=1, hw=(16, 16), sizes=None, specials=True),
    Case("one-pixel", n=1, hw=(1, 1), sizes=[(3, 4)]),
    Case("area-down-up", n=2, hw=(30, 40), sizes=[(7, 13), (45, 100)],
         kw={"interpolation": "area"}),
    Case("area-int", n=1, hw=(36, 36), sizes=[(12, 9)], kw={"interpolation": "area"},
         specials=True),
    Case("f16-input", n=2, hw=(10, 14), sizes=[(20, 7), (10, 14)], dtype=F16),
    Case("f16-specials-area", n=1, hw=(9, 9), sizes=[(4, 4)], dtype=F16, specials=True,
         kw={"interpolation": "area"}),
    Case("letterbox-back", n=3, hw=(32, 32), fit="letterbox", src=[(50, 20), (20, 50), (32, 32)],
         alpha=[True, False, True]),
    Case("crop-back-fill", n=2, hw=(24, 24), fit="crop", src=[(60, 24), (24, 61)],
         kw={"fill": (10, 20, 30), "interpolation": "area"}),
    Case("letterbox-upscaler-x2", n=2, hw=(48, 48), fit="letterbox", src=[(30, 12), (12, 30)],
         placement_hw=(24, 24), sizes=[(60, 24), (24, 60)]),
    Case("batch-of-40", n=40, hw=(6, 5), sizes=[(3 + i % 4, 2 + i % 5) for i in range(40)]),
    # 1:1 boxes (the kernel without taps): letterbox bars in y (aligned columns), in x (7
    # columns: unaligned), none; a crop shown back in a wider/taller output with fill around
    Case("letterbox-same-size", n=3, hw=(32, 32), fit="letterbox",
         src=[(20, 32), (32, 18), (32, 32)], alpha=[True, False, True]),
    Case("crop-same-size-f16", n=2, hw=(24, 24), fit="crop", src=[(24, 61), (50, 24)],
         dtype=F16, specials=True, kw={"fill": (10, 20, 30)}),
    # exactly 2x on both axes (closed-form taps): odd sizes, a 1-pixel source, letterbox bars
    # of 6 (even) and 3 (odd) columns, float16 with specials and alpha
    Case("up2", n=2, hw=(9, 13), sizes=[(18, 26), (18, 26)], specials=True),
    Case("up2-one-pixel", n=1, hw=(1, 1), sizes=[(2, 2)]),
    Case("up2-letterbox", n=2, hw=(32, 32), fit="letterbox", src=[(64, 40), (40, 64)],
         alpha=[True, False]),
    Case("up2-letterbox-odd-f16", n=2, hw=(16, 16), fit="letterbox", src=[(32, 20), (20, 32)],
         dtype=F16, specials=True, alpha=[False, True]),
]  # fmt: skip


def check_post_case(gk, case: Case, exact: bool) -> None:
    n, (h, w) = case["n"], case["hw"]
    batch = _batch(n, h, w, seed=len(case.name), specials=case.get("specials", False))
    dtype = case.get("dtype", F32)
    with np.errstate(over="ignore"):
        batch = batch.astype(dtype)
    placements = None
    if "fit" in case:
        phw = case.get("placement_hw", (h, w))
        placements = [cpu.plan_fit(s, phw, case["fit"]) for s in case["src"]]
    sizes = case.get("sizes")
    if sizes is not None:
        targets = list(sizes)
    elif placements is not None:
        targets = [p.src_hw for p in placements]
    else:
        targets = [(h, w)] * n
    rng = np.random.default_rng(7)
    alphas = None
    if "alpha" in case:
        alphas = [
            rng.integers(0, 256, t, dtype=np.uint8) if on else None
            for t, on in zip(targets, case["alpha"], strict=True)
        ]
    kw = dict(case.get("kw", {}))
    got = gk.postprocess(batch, sizes, alphas=alphas, placements=placements, **kw)
    want = cpu.postprocess(batch, sizes, alphas=alphas, placements=placements, **kw)
    assert len(got) == len(want)
    for i, (g, x) in enumerate(zip(got, want, strict=True)):
        _assert_close(g, x, exact, f"postprocess {case} image {i}")


# ---------------------------------------------------------------------------------------------
# adapt
# ---------------------------------------------------------------------------------------------

ADAPT_CASES = [
    Case("identity-copy", shape=(2, 3, 9, 11), size=None),
    Case("down-f16-out", shape=(2, 3, 40, 30), size=(17, 12), kw={"dtype": F16}),
    Case("up-swap-range", shape=(1, 3, 10, 14), size=(25, 33), kw={
        "src_order": "RGB", "dst_order": "BGR", "scale": (0.5, 2.0, -1.0), "offset": (1, 0, 3)}),
    Case("area-down", shape=(2, 4, 36, 50), size=(12, 20), kw={"interpolation": "area"},
         specials=True),
    Case("area-mixed", shape=(1, 3, 20, 90), size=(41, 30), kw={"interpolation": "area"}),
    Case("area-down-rgb", shape=(2, 3, 36, 50), size=(12, 20), kw={"interpolation": "area"},
         specials=True),
    Case("f16-in-f32-out", shape=(2, 3, 16, 16), size=(8, 24), in_dtype=F16,
         kw={"dtype": F32}, specials=True),
    Case("f16-in-out-rgba-swap", shape=(1, 4, 12, 12), size=(5, 7), in_dtype=F16,
         kw={"src_order": "BGR"}),
    Case("one-channel", shape=(3, 1, 7, 5), size=(1, 1)),
    Case("many-channels", shape=(1, 64, 6, 6), size=(4, 9), kw={"scale": 3.0}),
    Case("strided", shape=(2, 3, 20, 30), size=(10, 10), strided=True),
    # same size (the kernel without taps): vector loads/stores of each dtype, channel groups
    # of 3 with a partial last one, widths that are not a multiple of 4
    Case("identity-f16-out-swap", shape=(2, 3, 8, 16), size=None, specials=True,
         kw={"dtype": F16, "dst_order": "BGR", "scale": 0.5, "offset": 0.5}),
    Case("identity-f16-in-rgba", shape=(1, 4, 6, 12), size=(6, 12), in_dtype=F16,
         kw={"src_order": "BGR", "dtype": F32}),
    Case("identity-area-64-channels", shape=(1, 64, 4, 8), size=None,
         kw={"interpolation": "area", "scale": 3.0}),
    Case("identity-odd-width", shape=(2, 3, 5, 7), size=(5, 7), strided=True,
         kw={"dtype": F16}),
]  # fmt: skip


def check_adapt_case(gk, case: Case, exact: bool) -> None:
    n, c, h, w = case["shape"]
    rng = np.random.default_rng(len(case.name))
    src = (rng.standard_normal((n, c, h + 4, w + 6)) * 2).astype(F32)
    if case.get("specials"):
        vals = np.array([np.nan, np.inf, -np.inf, 3e38, -0.0], F32)
        idx = rng.integers(0, src.size, max(1, src.size // 20))
        src.flat[idx] = rng.choice(vals, idx.size)
    with np.errstate(over="ignore"):
        src = src.astype(case.get("in_dtype", F32))
    batch = src[:, :, 2 : 2 + h, 3 : 3 + w] if case.get("strided") else src[:, :, :h, :w].copy()
    kw = dict(case.get("kw", {}))
    got = gk.adapt(batch, case["size"], **kw)
    want = cpu.adapt(batch, case["size"], **kw)
    _assert_close(got, want, exact, f"adapt {case}")


# ---------------------------------------------------------------------------------------------
# tiles
# ---------------------------------------------------------------------------------------------

TILE_CASES = [
    Case(f"{hw[0]}x{hw[1]}-t{tile}-o{ov}-m{mult}-x{scale}-{np.dtype(dt).name}-c{ch}",
         hw=hw, tile=tile, ov=ov, mult=mult, scale=scale, dtype=dt, channels=ch)
    for hw, tile, ov, mult, scale in [
        ((300, 400), 128, 16, 8, 1), ((97, 131), 32, 7, 1, 1), ((50, 50), 64, 8, 8, 1),
        ((75, 110), 32, 8, 1, 2), ((513, 1), 128, 32, 1, 1), ((200, 300), (64, 96), (10, 20), 2, 3),
        ((90, 120), 32, (24, 20), 1, 1),  # overlap over half a tile: 3-4 tiles deep
        ((100, 90), 32, 17, 1, 1),  # 1, 2 and 3 tiles deep by turns, along both axes
    ]
    for dt, ch in [(np.uint8, 3), (np.float32, None), (np.float16, 4)]
]  # fmt: skip


def check_tile_case(gk, case: Case, exact: bool) -> None:
    plan = cpu.plan_tiles(case["hw"], case["tile"], case["ov"], multiple=case["mult"])
    s, dt, ch = case["scale"], np.dtype(case["dtype"]), case["channels"]
    th, tw = plan.tile_hw[0] * s, plan.tile_hw[1] * s
    shape = (th, tw) if ch is None else (th, tw, ch)
    rng = np.random.default_rng(len(case.name))
    if dt == np.uint8:
        tiles = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(len(plan))]
    else:
        tiles = [(rng.standard_normal(shape) * 50).astype(dt) for _ in range(len(plan))]
    got = gk.blend_tiles(plan, tiles, s)
    want = plan.blend(tiles, s)
    _assert_close(got, want, exact, f"tiles {case}")


# ---------------------------------------------------------------------------------------------
# the GPU itself
# ---------------------------------------------------------------------------------------------


def _gpu_reason() -> str | None:
    try:
        from vetrina.kernels import gpu
    except ImportError as exc:  # pragma: no cover
        return str(exc)
    return gpu.gpu_unavailable_reason()


_REASON = _gpu_reason()
gpu_only = pytest.mark.skipif(_REASON is not None, reason=f"needs a CUDA GPU: {_REASON}")
pytestmark = [pytest.mark.gpu]


@pytest.fixture(scope="module")
def gk():
    if _REASON is not None:
        pytest.skip(f"needs a CUDA GPU: {_REASON}")
    from vetrina.kernels import gpu

    kernels = gpu.GpuKernels(0)
    yield kernels
    kernels.close()


@gpu_only
@pytest.mark.parametrize("case", PRE_CASES, ids=str)
def test_preprocess_matches_cpu(gk, case):
    check_pre_case(gk, case, exact=False)


@gpu_only
@pytest.mark.parametrize("case", POST_CASES, ids=str)
def test_postprocess_matches_cpu(gk, case):
    check_post_case(gk, case, exact=False)


@gpu_only
@pytest.mark.parametrize("case", ADAPT_CASES, ids=str)
def test_adapt_matches_cpu(gk, case):
    check_adapt_case(gk, case, exact=False)


@gpu_only
@pytest.mark.parametrize("case", TILE_CASES, ids=str)
def test_tiles_match_cpu(gk, case):
    check_tile_case(gk, case, exact=False)


@gpu_only
def test_area_box_sums_past_32_bits_match_cpu(gk):
    check_big_box_sums(gk, exact=False)


@gpu_only
@pytest.mark.parametrize("fit", ["stretch", "letterbox"])
def test_lanczos_photo_sizes_match_cpu(gk, fit):
    """rembg's input: a photo to 320 x 320 with PIL-compatible Lanczos (and an upscale)."""
    imgs = _images([(683, 1024, 3), (480, 640, 4), (120, 90, 3)], seed=17)
    for size in [(320, 320), (700, 1100)]:
        kw = {"interpolation": "lanczos", "fit": fit, "scale": 1 / 255}
        got = gk.preprocess(imgs, size, **kw)
        _assert_close(got, cpu.preprocess(imgs, size, **kw), False, f"lanczos {fit} {size}")


@gpu_only
def test_tile_blend_of_an_nchw_batch(gpu, gk):
    """layout='chw': a model's (T, C, th, tw) output blended straight into (C, H, W)."""
    plan = cpu.plan_tiles((90, 70), 32, 8)
    rng = np.random.default_rng(12)
    batch = rng.standard_normal((len(plan), 3, 64, 64)).astype(F32)  # x2 tiles
    with gpu.Stream() as s:
        dev = gpu.DeviceBuffer.empty(batch.shape, F32)
        dev.copy_from_host(batch, stream=s)
        out = gpu.DeviceBuffer.empty((3, 180, 140), F32)
        gk.blend_tiles_async(plan, dev, out, scale=2, channels=3, layout="chw", stream=s)
        got = out.copy_to_host(stream=s)
    want = plan.blend([t.transpose(1, 2, 0) for t in batch], 2).transpose(2, 0, 1)
    _assert_close(got, np.ascontiguousarray(want), False, "chw blend")


# ---------------------------------------------------------------------------------------------
# memory, streams, interop, errors
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpu(gk):
    from vetrina.kernels import gpu

    return gpu


@gpu_only
def test_device_buffer_round_trip_and_array_interface(gpu, gk):
    rng = np.random.default_rng(1)
    host = rng.standard_normal((3, 5, 7)).astype(F32)
    with gpu.DeviceBuffer.empty(host.shape, F32) as buf:
        assert buf.ptr % 256 == 0 and buf.nbytes == host.nbytes
        cai = buf.__cuda_array_interface__
        assert cai["shape"] == (3, 5, 7) and cai["typestr"] == "<f4" and cai["version"] == 3
        assert cai["data"] == (buf.ptr, False)
        buf.copy_from_host(host, stream=gk.stream)
        np.testing.assert_array_equal(buf.copy_to_host(stream=gk.stream), host)
        view = buf.view((5, 7), F32, offset=5 * 7 * 4)
        np.testing.assert_array_equal(view.copy_to_host(stream=gk.stream), host[1])
        buf.fill_bytes(0, stream=gk.stream)
        assert not buf.copy_to_host(stream=gk.stream).any()
    assert buf.closed
    with pytest.raises(ValueError, match="nbytes"):
        gpu.DeviceBuffer(0)
    with pytest.raises(ValueError, match="do not fit"):
        gpu.DeviceBuffer(8).copy_from_host(np.zeros(3, F32))


@gpu_only
def test_pinned_buffer_views(gpu):
    with gpu.PinnedBuffer(1024) as pin:
        v = pin.view((4, 8), F32, offset=256)
        v[:] = 3.5
        assert pin.array[256:384].view(F32).tolist() == [3.5] * 32
        with pytest.raises(ValueError, match="does not fit"):
            pin.view((1024,), F32)


def _upload(gpu, imgs, stream):
    offs, total = [], 0
    for im in imgs:
        offs.append(total)
        total += -(-im.nbytes // 256) * 256
    buf = gpu.DeviceBuffer(total)
    pin = gpu.PinnedBuffer(total)
    for im, off in zip(imgs, offs, strict=True):
        np.copyto(pin.view(im.shape, np.uint8, off), im)
    buf.copy_from_host(pin.array, stream=stream)
    dev = [
        gpu.DeviceImage(buf.ptr + off, im.shape[0], im.shape[1], im.shape[2])
        for im, off in zip(imgs, offs, strict=True)
    ]
    return buf, pin, dev


@gpu_only
@pytest.mark.parametrize("kind", ["Stream", "int", "protocol"])
def test_async_preprocess_on_a_non_default_stream(gpu, gk, kind):
    imgs = _images([(50, 70, 3), (31, 20, 4)], seed=3)
    s = gpu.Stream()
    stream = {"Stream": s, "int": s.handle, "protocol": _Proto(s.handle)}[kind]
    buf, pin, dev = _upload(gpu, imgs, s)
    out = gpu.DeviceBuffer.empty((2, 3, 24, 40), F32)
    places = gk.preprocess_async(
        dev, out, (24, 40), fit="letterbox", interpolation="area", stream=stream
    )
    got = out.copy_to_host(stream=s)  # same stream: ordered after the kernel
    want, want_places = cpu.preprocess(
        imgs, (24, 40), fit="letterbox", interpolation="area", return_placements=True
    )
    assert places == want_places
    _assert_close(got, want, False, f"preprocess_async on {kind}")
    for b in (buf, pin, out):
        b.close()
    s.close()


class _Proto:
    def __init__(self, handle: int) -> None:
        self.handle = handle

    def __cuda_stream__(self):
        return (0, self.handle)


@gpu_only
def test_async_postprocess_with_pitched_outputs_and_strided_batch(gpu, gk):
    rng = np.random.default_rng(4)
    full = _batch(2, 20, 30, seed=4, specials=True)
    sub = full[:, :, 2:18, 3:27]  # strided view: (2, 3, 16, 24)
    with gpu.Stream() as s:
        dev_b = gpu.DeviceBuffer.empty(full.shape, F32)
        dev_b.copy_from_host(full, stream=s)
        pitch = 64  # > 13 * 3: padded rows
        dev_o = gpu.DeviceBuffer(2 * 9 * pitch)
        alpha = rng.integers(0, 256, (9, 13), dtype=np.uint8)
        dev_a = gpu.DeviceBuffer(alpha.nbytes)
        dev_a.copy_from_host(alpha, stream=s)
        outs = [
            gpu.DeviceImage(dev_o.ptr, 9, 13, 3, pitch),
            gpu.DeviceImage(dev_o.ptr + 9 * pitch, 9, 13, 4, pitch),
        ]
        start = 2 * 30 + 3  # element offset of sub[0, 0, 0, 0]
        gk.postprocess_async(
            dev_b.ptr + start * 4, sub.shape, outs,
            alphas=[None, gpu.DeviceImage(dev_a.ptr, 9, 13, 1)],
            batch_strides=(3 * 20 * 30, 20 * 30, 30), stream=s,
        )  # fmt: skip
        raw = dev_o.copy_to_host(stream=s).reshape(2, 9, pitch)
    want = cpu.postprocess(sub, [(9, 13), (9, 13)], alphas=[None, alpha])
    _assert_close(raw[0, :, : 13 * 3].reshape(9, 13, 3), want[0], False, "pitched 3")
    _assert_close(raw[1, :, : 13 * 4].reshape(9, 13, 4), want[1], False, "pitched 4")


@gpu_only
def test_capture_and_replay(gpu, gk):
    imgs = _images([(40, 40, 3)], seed=5)
    with gpu.Stream() as s:
        _buf, _pin, dev = _upload(gpu, imgs, s)
        out = gpu.DeviceBuffer.empty((1, 3, 16, 16), F16)
        with gk.capture() as plan:
            gk.preprocess_async(dev, out, (16, 16), dtype=F16, stream=s)
        assert len(plan.launches) == 1
        out.fill_bytes(0, stream=s)
        for _ in range(3):
            plan.launch(s)
        got = out.copy_to_host(stream=s)
    _assert_close(got, cpu.preprocess(imgs, (16, 16), dtype=F16), False, "replay")


@gpu_only
def test_other_thread_uses_the_same_context(gk):
    imgs = _images([(30, 30, 3)], seed=6)
    result: list = []
    t = threading.Thread(target=lambda: result.append(gk.preprocess(imgs, (10, 10))))
    t.start()
    t.join()
    _assert_close(result[0], cpu.preprocess(imgs, (10, 10)), False, "thread")


@gpu_only
def test_float16_conversion_on_the_device_matches_numpy(gpu, gk):
    """PTX cvt.rn.f16.f32 / cvt.f32.f16 against numpy, through an identity adapt."""
    rng = np.random.default_rng(8)
    bits = np.concatenate(
        [
            rng.integers(0, 2**32, 1 << 18, dtype=np.uint64).astype(np.uint32),
            np.arange(0x477FE000 - 8192, 0x47800000 + 8192, dtype=np.uint32),
            np.arange(0x33000000 - 8192, 0x38800000 + 8192, 61, dtype=np.uint32),
        ]
    )
    bits = np.concatenate([bits, np.zeros(-bits.size % 4096, np.uint32)])
    x = bits.view(F32)
    shape = (1, 1, x.size // 4096, 4096)
    with gpu.Stream() as s:
        src = gpu.DeviceBuffer.empty(shape, F32)
        src.copy_from_host(x, stream=s)
        half = gpu.DeviceBuffer.empty(shape, F16)
        gk.adapt_async(src, shape, half, shape[2:], dtype=F16, stream=s)
        back = gpu.DeviceBuffer.empty(shape, F32)
        gk.adapt_async(half, shape, back, shape[2:], batch_dtype=F16, dtype=F32, stream=s)
        got16 = half.copy_to_host(stream=s).ravel()
        got32 = back.copy_to_host(stream=s).ravel()
    with np.errstate(over="ignore"):
        want16 = x.astype(F16)
    ok = ~np.isnan(x)
    np.testing.assert_array_equal(got16[ok].view(np.uint16), want16[ok].view(np.uint16))
    assert np.isnan(got16[~ok]).all()
    np.testing.assert_array_equal(got32[ok], want16[ok].astype(F32))


@gpu_only
def test_interop_with_torch_or_cupy(gpu, gk):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    imgs = _images([(33, 44, 3)], seed=9)
    out = torch.empty((1, 3, 12, 16), device="cuda", dtype=torch.float32)
    ts = torch.cuda.Stream()
    with gpu.Stream() as s:
        buf, _pin, dev = _upload(gpu, imgs, s)
        s.synchronize()
        gk.preprocess_async(dev, out, (12, 16), stream=ts)  # torch tensor + torch stream
        ts.synchronize()
        view = torch.as_tensor(buf, device="cuda")  # __cuda_array_interface__ of DeviceBuffer
        assert view.numel() == buf.nbytes
    _assert_close(out.cpu().numpy(), cpu.preprocess(imgs, (12, 16)), False, "torch")


@gpu_only
def test_bad_arguments_are_clear_errors(gpu, gk):
    imgs = _images([(10, 10, 3)], seed=10)
    with gpu.Stream() as s:
        _buf, _pin, dev = _upload(gpu, imgs, s)
        out = gpu.DeviceBuffer.empty((1, 3, 4, 4), F32)
        with pytest.raises(ValueError, match="null device pointer"):
            gk.preprocess_async(dev, 0, (4, 4), stream=s)
        with pytest.raises(ValueError, match="channels"):
            gk.preprocess_async([dev[0]._replace(channels=2)], out, (4, 4), stream=s)
        with pytest.raises(ValueError, match="interpolation"):
            gk.preprocess_async(dev, out, (4, 4), interpolation="cubic", stream=s)
        with pytest.raises(ValueError, match="dtype"):
            gk.preprocess_async(dev, out, (4, 4), dtype=np.float64, stream=s)
        with pytest.raises(TypeError, match="stream"):
            gk.preprocess_async(dev, out, (4, 4), stream="fast")
        with pytest.raises(TypeError, match="DeviceImage"):
            gk.preprocess_async([imgs[0]], out, (4, 4), stream=s)
        with pytest.raises(ValueError, match="row_pitch"):
            gk.preprocess_async([dev[0]._replace(row_pitch=5)], out, (4, 4), stream=s)
        with pytest.raises(ValueError, match="batch_shape"):
            gk.postprocess_async(out, (1, 4, 4, 4), [dev[0]], stream=s)
        with pytest.raises(ValueError, match="channels"):
            gk.adapt_async(out, (1, 3, 4, 4), out, (2, 2), channels=[3], stream=s)
        with pytest.raises(ValueError, match="needs 3 or 4"):
            gk.adapt_async(out, (1, 2, 4, 4), out, (2, 2), dst_order="BGR", stream=s)
        with pytest.raises(TypeError, match="TilePlan"):
            gk.blend_tiles_async("plan", out, out, stream=s)
    with pytest.raises(ValueError, match="sizes"):
        gk.postprocess(np.zeros((1, 3, 4, 4), F32), sizes=[(2, 2), (3, 3)])
    with pytest.raises(ValueError, match="dtype"):
        gk.preprocess([np.zeros((4, 4), np.float32)], (2, 2))
    with pytest.raises(gpu.CudaUnavailableError, match=r"device 99|only"):
        gpu.GpuKernels(99)


@gpu_only
def test_default_streams_are_ordered(gpu, gk):
    """Kernels queued without a stream (GpuKernels.stream) and copies without a stream (the
    legacy default stream) are ordered: no explicit synchronisation needed."""
    imgs = _images([(300, 400, 3)], seed=11)
    buf = gpu.DeviceBuffer(imgs[0].nbytes)
    buf.copy_from_host(imgs[0])
    out = gpu.DeviceBuffer.empty((1, 3, 150, 200), F32)
    gk.preprocess_async([gpu.DeviceImage(buf.ptr, 300, 400, 3)], out, (150, 200))
    _assert_close(out.copy_to_host(), cpu.preprocess(imgs, (150, 200)), False, "default streams")
