"""The CUDA kernels without a GPU: NVRTC compiles every source for sm_80 and sm_90 (with the
cubin cache), and a host emulation runs the very same CUDA C sources, compiled as C++ by the
system compiler, through the launcher's own argument packing (kernels/gpu.py), against the
CPU kernels. The same comparisons run on a real GPU in test_cuda_gpu.py.

Skipped (with the reason) only when cuda-bindings/NVRTC are not importable (compile tests) or
no C++ compiler is on PATH (emulation tests).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .test_cuda_gpu import (
    ADAPT_CASES,
    POST_CASES,
    PRE_CASES,
    TILE_CASES,
    check_adapt_case,
    check_big_box_sums,
    check_post_case,
    check_pre_case,
    check_tile_case,
)

ARCHS = ("sm_80", "sm_90")


def _gpu_module():
    pytest.importorskip("cuda.bindings", reason="cuda-bindings not installed (vetrina[gpu])")
    from vetrina.kernels import gpu

    try:
        gpu.nvrtc_version()
    except gpu.CudaUnavailableError as exc:
        pytest.skip(f"NVRTC not loadable: {exc}")
    return gpu


# ---------------------------------------------------------------------------------------------
# NVRTC: every source compiles for sm_80 and sm_90
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpu():
    return _gpu_module()


def test_import_does_not_load_cuda():
    code = (
        "import sys, vetrina, vetrina.kernels, vetrina.kernels.gpu; "
        "bad = [m for m in sys.modules if m.startswith(('cuda', 'cupy', 'torch'))]; "
        "assert not bad, bad"
    )
    subprocess.run([os.sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_source_compiles(gpu, arch, tmp_path):
    for name in gpu.SOURCES:
        mod = gpu.compile_source(name, arch, cache=tmp_path)
        assert mod.cubin.startswith(b"\x7fELF"), name
        assert not mod.from_cache and mod.arch == arch
        names = gpu.kernel_names(name)
        assert names, f'{name}.cu defines no extern "C" __global__ kernel'
        for kernel in names:  # unmangled symbols, as cuModuleGetFunction looks them up
            assert kernel.encode() in mod.cubin, (name, kernel)
        assert "warning" not in mod.log.lower(), mod.log


def test_compile_kernels_returns_every_cubin(gpu, tmp_path):
    cubins = gpu.compile_kernels("sm_90", cache=tmp_path)
    assert set(cubins) == set(gpu.SOURCES)
    assert gpu.compile_all is gpu.compile_kernels


def test_cache_hits_and_keys(gpu, tmp_path):
    # the smallest sources: the cache does not care what it holds (preprocess, the largest,
    # took 37 s here for the four compiles)
    first = gpu.compile_source("clamp", "sm_80", cache=tmp_path)
    again = gpu.compile_source("clamp", "sm_80", cache=tmp_path)
    other = gpu.compile_source("clamp", "sm_90", cache=tmp_path)
    assert not first.from_cache and again.from_cache and not other.from_cache
    assert again.cubin == first.cubin and again.key == first.key != other.key
    assert first.path is not None and first.path.parent == tmp_path
    assert first.key[:32] in first.path.name and "sm_80" in first.path.name
    # a corrupt entry is recompiled, not loaded
    first.path.write_bytes(b"garbage")
    fixed = gpu.compile_source("clamp", "sm_80", cache=tmp_path)
    assert not fixed.from_cache and fixed.cubin == first.cubin
    # no cache: compiles, writes nothing
    fresh = tmp_path / "none"
    assert not gpu.compile_source("mask", "sm_80", cache=fresh, use_cache=False).from_cache
    assert not fresh.exists()


def test_cache_dir_from_environment(gpu, tmp_path, monkeypatch):
    monkeypatch.setenv("VETRINA_CACHE_DIR", str(tmp_path))
    assert gpu.cache_dir() == tmp_path / "cuda"
    mod = gpu.compile_source("adapt", "sm_90")
    assert mod.path is not None and mod.path.parent == tmp_path / "cuda"
    assert gpu.compile_source("adapt", "sm_90").from_cache


def test_no_fused_multiply_add_in_the_code(gpu):
    """--fmad=false: every float multiply and add rounds on its own, like the CPU build."""
    from vetrina.kernels import nvrtc

    for name in gpu.SOURCES:
        source, headers = nvrtc._read_sources(name)
        ptx = nvrtc._nvrtc_compile(name, source, headers, "sm_90", target="ptx")[0].decode()
        assert ".entry" in ptx
        fused = re.findall(r"\b(?:fma|mad)(?:\.r[nzmp])?(?:\.ftz)?(?:\.sat)?\.f(?:16|32|64)\b", ptx)
        assert not fused, (name, fused[:3])
        if name not in ("clamp", "mask"):  # these only compare: no float arithmetic at all
            assert re.search(r"\bmul\.rn\.f32\b", ptx), name  # explicit rounding: no contraction


def test_compile_errors_carry_the_log(gpu, monkeypatch, tmp_path):
    from vetrina.kernels import nvrtc

    real = nvrtc._read_sources

    def broken(name):
        source, headers = real(name)
        return source + "\nthis is not C++;\n", headers

    monkeypatch.setattr(nvrtc, "_read_sources", broken)
    with pytest.raises(gpu.CompileError, match=r"preprocess\.cu.*sm_90") as info:
        gpu.compile_source("preprocess", "sm_90", cache=tmp_path)
    assert "this is not C++" in info.value.log or "error" in info.value.log


@pytest.mark.parametrize(
    ("arch", "want"),
    [("sm_90", "sm_90"), ("90", "sm_90"), (80, "sm_80"), ("8.6", "sm_86"), ((9, 0), "sm_90")],
)
def test_normalize_arch(gpu, arch, want):
    assert gpu.normalize_arch(arch) == want


@pytest.mark.parametrize("arch", ["sm_x", "", 3, None, (9,)])
def test_bad_arch(gpu, arch):
    with pytest.raises(ValueError, match="arch"):
        gpu.normalize_arch(arch)


def test_unsupported_arch_is_a_clear_error(gpu, tmp_path):
    with pytest.raises(gpu.CudaUnavailableError, match="sm_20"):
        gpu.compile_source("preprocess", "sm_20", cache=tmp_path)


def test_unknown_source(gpu):
    with pytest.raises(ValueError, match="expected one of"):
        gpu.compile_source("nope", "sm_90")


def test_asking_for_a_gpu_that_is_not_there_is_an_error(gpu):
    if gpu.gpu_unavailable_reason() is None:
        pytest.skip("a GPU is present")
    assert gpu.device_count() == 0
    with pytest.raises(gpu.CudaUnavailableError, match="never falls back"):
        gpu.GpuKernels(0)
    with pytest.raises(gpu.CudaUnavailableError):
        gpu.DeviceBuffer(1024)


def test_missing_cuda_bindings_names_the_extra(monkeypatch):
    import builtins

    from vetrina.kernels import gpu

    real_import = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.startswith("cuda"):
            raise ImportError("No module named 'cuda'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(gpu.CudaUnavailableError, match=r"pip install 'vetrina\[gpu\]'"):
        gpu.compile_kernels("sm_90")
    with pytest.raises(gpu.CudaUnavailableError, match=r"vetrina\[gpu\]"):
        gpu.GpuKernels(0)


def test_parameter_layouts_match_the_structs(gpu):
    """The packed parameter blocks fit the structs that the .cu files static_assert (the
    compile tests check those asserts); every block stays under the 4 KiB parameter limit."""
    assert gpu._PRE_IMAGE.size == 80
    assert gpu.MAX_IMAGES_PER_LAUNCH * gpu._PRE_IMAGE.size == gpu._PRE_TAIL_AT
    assert gpu._PRE_TAIL_AT + gpu._PRE_TAIL.size <= gpu._PRE_SIZE == 2600
    assert gpu._POST_IMAGE.size == 80
    assert gpu.MAX_IMAGES_PER_LAUNCH * gpu._POST_IMAGE.size == gpu._POST_TAIL_AT
    assert gpu._POST_TAIL_AT + gpu._POST_TAIL.size == gpu._POST_SIZE == 2632
    assert gpu._ADAPT_HEAD.size == gpu._ADAPT_CH_AT == 72
    assert gpu._ADAPT_SIZE == 840 and gpu._BLEND.size == 144
    for size in (gpu._PRE_SIZE, gpu._POST_SIZE, gpu._ADAPT_SIZE, gpu._BLEND.size):
        assert size <= 4096


# ---------------------------------------------------------------------------------------------
# Host emulation: the CUDA sources as C++ on the CPU, driven by GpuKernels' own packing
# ---------------------------------------------------------------------------------------------

_PRELUDE = r"""
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <utility>
struct dim3 { unsigned x, y, z; };
static dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
using std::ceil;
using std::floor;
#line 1
"""

_RUNNER = r"""
template <typename... A, std::size_t... I>
static void vt_emu_call(void (*k)(A...), void** p, std::index_sequence<I...>) {
    k(*static_cast<std::decay_t<A>*>(p[I])...);
}
template <typename... A>
static void vt_emu_run(void (*k)(A...), const unsigned* g, const unsigned* b, void** p) {
    gridDim = {g[0], g[1], g[2]};
    blockDim = {b[0], b[1], b[2]};
    for (unsigned bz = 0; bz < g[2]; ++bz)
    for (unsigned by = 0; by < g[1]; ++by)
    for (unsigned bx = 0; bx < g[0]; ++bx)
    for (unsigned tz = 0; tz < b[2]; ++tz)
    for (unsigned ty = 0; ty < b[1]; ++ty)
    for (unsigned tx = 0; tx < b[0]; ++tx) {
        blockIdx = {bx, by, bz};
        threadIdx = {tx, ty, tz};
        vt_emu_call(k, p, std::index_sequence_for<A...>{});
    }
}
"""

_GUARD = 4096  # bytes of canary after every emulated allocation


class _HostBuffer:
    """Emulated device or pinned memory: numpy bytes with a canary tail for overruns."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self._mem = np.full(nbytes + _GUARD, 0xA5, dtype=np.uint8)
        self.ptr = int(self._mem.ctypes.data)

    def view(self, shape, dtype=np.uint8, offset=0) -> np.ndarray:
        dt = np.dtype(dtype)
        n = int(np.prod(shape)) * dt.itemsize
        assert offset + n <= self.nbytes
        return self._mem[offset : offset + n].view(dt).reshape(shape)

    def check(self) -> None:
        assert (self._mem[self.nbytes :] == 0xA5).all(), "a kernel wrote past an allocation"

    def close(self) -> None:
        self.check()


class _NullStream:
    handle = 0

    def close(self) -> None:
        pass


class EmuBackend:
    """GpuKernels backend that runs the kernels on the host, one emulated thread at a time."""

    device = 0
    arch = "host-emulation"
    name = "host emulation"

    def __init__(self, libs: dict[str, ctypes.CDLL], kernels: dict[str, list[str]]) -> None:
        self.functions = {}
        for module, names in kernels.items():
            for kernel in names:
                fn = getattr(libs[module], f"emu_{kernel}")
                fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
                fn.restype = None
                self.functions[kernel] = fn
        self.buffers: list[_HostBuffer] = []
        self.launches: list[tuple[str, tuple[int, int, int], int]] = []

    def launch(self, kernel, grid, block, args, stream) -> None:
        assert all(g >= 1 for g in grid) and grid[1] <= 65535 and grid[2] <= 65535
        g = (ctypes.c_uint * 3)(*grid)
        b = (ctypes.c_uint * 3)(*block)
        self.functions[kernel](ctypes.addressof(g), ctypes.addressof(b), args.address)
        self.launches.append((kernel, tuple(grid), stream))
        for buf in self.buffers:
            buf.check()

    def _alloc(self, nbytes: int) -> _HostBuffer:
        buf = _HostBuffer(nbytes)
        self.buffers.append(buf)
        return buf

    device_buffer = _alloc
    pinned = _alloc

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None:
        ctypes.memmove(dst, src.ctypes.data, src.nbytes)

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None:
        ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

    def d2d(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        ctypes.memmove(dst, src, nbytes)

    def memset(self, dst: int, value: int, nbytes: int, stream: int) -> None:
        ctypes.memset(dst, value, nbytes)

    def synchronize(self, stream: int) -> None:
        pass

    def new_stream(self) -> Any:
        return _NullStream()

    def activate(self) -> None:
        pass

    def close(self) -> None:
        pass


def build_emulation(tmp: Path) -> tuple[dict[str, ctypes.CDLL], dict[str, list[str]]]:
    from vetrina.kernels import gpu

    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH for the host emulation of the CUDA kernels")
    libs, kernels = {}, {}
    for name in gpu.SOURCES:
        names = gpu.kernel_names(name)
        src = tmp / f"{name}.cpp"
        wrappers = "".join(
            f'extern "C" void emu_{k}(const unsigned* g, const unsigned* b, void** p) '
            f"{{ vt_emu_run({k}, g, b, p); }}\n"
            for k in names
        )
        body = (gpu.SOURCE_DIR / f"{name}.cu").read_text()
        src.write_text(_PRELUDE + body + "\n" + _RUNNER + wrappers)
        lib = tmp / f"lib{name}.so"
        cmd = [
            cxx, "-std=c++17", "-O1", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared",
            "-Wall", "-Wno-unused-function", f"-I{gpu.SOURCE_DIR}", str(src), "-o", str(lib),
        ]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr}"
        libs[name] = ctypes.CDLL(str(lib))
        kernels[name] = names
    return libs, kernels


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    from vetrina.kernels import gpu

    libs, kernels = build_emulation(tmp_path_factory.mktemp("emu"))
    backend = EmuBackend(libs, kernels)
    return gpu.GpuKernels._with_backend(backend)


@pytest.mark.parametrize("case", PRE_CASES, ids=str)
def test_emulated_preprocess_equals_cpu(emu, case):
    check_pre_case(emu, case, exact=True)


@pytest.mark.parametrize("case", POST_CASES, ids=str)
def test_emulated_postprocess_equals_cpu(emu, case):
    check_post_case(emu, case, exact=True)


_KERNEL_CHOICE = {"post": (POST_CASES, check_post_case), "adapt": (ADAPT_CASES, check_adapt_case)}


@pytest.mark.parametrize(
    ("kind", "case", "kernel"),
    [
        ("post", "identity", "vt_postprocess_same_f32"),
        ("post", "letterbox-same-size", "vt_postprocess_same_f32"),
        ("post", "crop-same-size-f16", "vt_postprocess_same_f16"),
        ("post", "crop-back-fill", "vt_postprocess_same_f32"),  # area at 1:1: the identity too
        ("post", "resize", "vt_postprocess_f32"),
        ("post", "f16-input", "vt_postprocess_f16"),  # one 1:1 image, one resized: one launch
        ("post", "letterbox-back", "vt_postprocess_f32"),
        ("post", "area-down-up", "vt_postprocess_area_f32"),
        ("post", "up2", "vt_postprocess_up2_f32"),
        ("post", "up2-one-pixel", "vt_postprocess_up2_f32"),
        ("post", "up2-letterbox", "vt_postprocess_up2_f32"),
        ("post", "up2-letterbox-odd-f16", "vt_postprocess_up2_f16"),
        ("post", "letterbox-upscaler-x2", "vt_postprocess_f32"),  # 2x content, 2.5x to 24 px
        ("adapt", "identity-copy", "vt_adapt_same_f32_f32"),
        ("adapt", "identity-f16-out-swap", "vt_adapt_same_f32_f16"),
        ("adapt", "identity-f16-in-rgba", "vt_adapt_same_f16_f32"),
        ("adapt", "identity-area-64-channels", "vt_adapt_same_f32_f32"),
        ("adapt", "down-f16-out", "vt_adapt_f32_f16"),
        ("adapt", "area-down", "vt_adapt_area_f32_f32"),
    ],
)
def test_emulated_1_to_1_launches_take_the_kernels_without_taps(
    emu, monkeypatch, kind, case, kernel
):
    """Postprocess launches whose images all show their batch box 1:1, and adapt at the same
    size, take the ``*_same_*`` kernels; bilinear postprocess launches at exactly 2x the
    ``*_up2_*`` ones; every other launch the general ones."""
    launched = []
    launch = emu._launch
    monkeypatch.setattr(emu, "_launch", lambda name, *a: launch(launched.append(name) or name, *a))
    cases, check = _KERNEL_CHOICE[kind]
    check(emu, next(c for c in cases if c.name == case), exact=True)
    assert launched == [kernel]


def test_emulated_general_kernels_at_1_to_1_equal_cpu(emu, monkeypatch):
    """The 1:1 and 2x cases on the general postprocess and adapt kernels (the GPU benchmark's
    A/B rows run them so): the same bits as the shortcut kernels and the CPU."""
    from vetrina.kernels import gpu

    monkeypatch.setattr(gpu, "_SHORTCUT_KERNELS", False)
    for case in POST_CASES:
        check_post_case(emu, case, exact=True)
    for case in ADAPT_CASES:
        check_adapt_case(emu, case, exact=True)


@pytest.mark.parametrize("case", ADAPT_CASES, ids=str)
def test_emulated_adapt_equals_cpu(emu, case):
    check_adapt_case(emu, case, exact=True)


@pytest.mark.parametrize("case", TILE_CASES, ids=str)
def test_emulated_tiles_equal_cpu(emu, case):
    check_tile_case(emu, case, exact=True)


def test_emulated_multi_row_launches_equal_cpu(emu, monkeypatch):
    """Big launches give each thread several rows (and postprocess a row cache); force that
    path on the small test cases so it is held to the CPU too."""
    from vetrina.kernels import gpu

    monkeypatch.setattr(gpu, "_MIN_THREADS", 1)
    for case in PRE_CASES:
        check_pre_case(emu, case, exact=True)
    for case in POST_CASES:
        check_post_case(emu, case, exact=True)
    for case in ADAPT_CASES:
        check_adapt_case(emu, case, exact=True)
    for case in TILE_CASES:
        check_tile_case(emu, case, exact=True)


def test_emulated_area_box_sums_past_32_bits(emu, monkeypatch):
    """Blocks of 16843010+ pixels go to the generic kernel, whose 64-bit sums equal the
    CPU's (a 32-bit sum wrapped); a launch holding one takes the generic kernel whole."""
    launched = []
    launch = emu._launch
    monkeypatch.setattr(emu, "_launch", lambda name, *a: launch(launched.append(name) or name, *a))
    check_big_box_sums(emu, exact=True)
    assert launched == [
        "vt_preprocess_any_f32",
        "vt_preprocess_any_f32",
        "vt_preprocess_box_f32",
        "vt_preprocess_any_f16",
    ]


@pytest.mark.parametrize(("hw", "ok"), [((1 << 20, 1), True), ((1, (1 << 20) + 1), False)])
def test_device_images_larger_than_the_limit_name_it(hw, ok):
    """DeviceImages share the CPU's MAX_IMAGE_SIZE, and the error says the limit."""
    from vetrina.kernels import MAX_IMAGE_SIZE, gpu

    im = gpu.DeviceImage(256, *hw, 3)
    if ok:
        gpu._check_device_image("preprocess_async", "images[0]", im, (3,))
        return
    assert MAX_IMAGE_SIZE == 1 << 20
    with pytest.raises(
        ValueError,
        match=r"^preprocess_async: images\[0\] is 1x1048577; expected a non-empty image of at "
        r"most 1048576 x 1048576 \(MAX_IMAGE_SIZE\)$",
    ):
        gpu._check_device_image("preprocess_async", "images[0]", im, (3,))


def test_fast_box_path_takes_only_blocks_with_32_bit_sums():
    """The box kernel sums in 32 bits: the launcher sends it blocks of at most 16843009
    pixels (255 * that < 2**32), wider or larger ones to the generic kernel."""
    from vetrina.kernels import gpu

    box = (0, 0, 0, 0, 0, 0, 1, 1)
    assert 255 * gpu._BOX_U32_PIXELS < 2**32 <= 255 * (gpu._BOX_U32_PIXELS + 1)
    assert gpu._pre_fast_ok(gpu._M_BOX, 8, box, 8)
    assert gpu._pre_fast_ok(gpu._M_BOX, 8, box, gpu._BOX_U32_PIXELS // 8)
    assert not gpu._pre_fast_ok(gpu._M_BOX, 8, box, gpu._BOX_U32_PIXELS // 8 + 1)
    assert not gpu._pre_fast_ok(gpu._M_BOX, 9, box, 1)
    src = (gpu.SOURCE_DIR / "preprocess.cu").read_text()
    assert re.search(rf"#define VT_BOX_U32_PIXELS {gpu._BOX_U32_PIXELS}\b", src)
    assert re.search(rf"#define VT_BOX_MAXP {gpu._BOX_MAXP}\b", src)


def test_emulated_many_rows_per_thread_equal_cpu(emu, monkeypatch):
    """Tall outputs with up to 32 rows per thread (the GPU benchmark's rows-per-thread A/B
    rows go that far): 19 here, the last thread of each column taking a partial run."""
    from vetrina import kernels as cpu
    from vetrina.kernels import gpu

    monkeypatch.setattr(gpu, "_MIN_THREADS", 1)
    monkeypatch.setattr(gpu, "_MAX_ROWS", 32)
    assert gpu._grid(20, 300, 1, gpu._BLOCK)[1] == 2  # 300 rows over 2 x 8 threads: 19 each
    rng = np.random.default_rng(5)
    imgs = [rng.integers(0, 256, (150, 12, 3), dtype=np.uint8) for _ in range(2)]
    emu._backend.launches.clear()
    np.testing.assert_array_equal(emu.preprocess(imgs, (300, 20)), cpu.preprocess(imgs, (300, 20)))
    assert [grid[1] for _, grid, _ in emu._backend.launches] == [2]
    batch = rng.standard_normal((2, 3, 150, 10)).astype(np.float32) * 0.3 + 0.5
    for got, want in zip(
        emu.postprocess(batch, [(300, 20), (299, 21)]),
        cpu.postprocess(batch, [(300, 20), (299, 21)]),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(emu.adapt(batch, (300, 20)), cpu.adapt(batch, (300, 20)))


def test_emulated_lanczos_kernels(emu, monkeypatch):
    """Lanczos launches its own kernel; the generic kernel takes it too (the launcher never
    sends it there, but the generic kernel serves every mode), both equal to the CPU."""
    from vetrina.kernels import gpu, preprocess

    rng = np.random.default_rng(11)
    imgs = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(23, 41, 3), (9, 700, 4), (5, 3)]]
    kw = {"interpolation": "lanczos", "fit": "letterbox", "src_order": "BGR"}
    backend = emu._backend
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(gpu, "_pre_fast_ok", lambda *args: False)
        backend.launches.clear()
        got = emu.preprocess(imgs, (11, 13), **kw)
        kernel = "vt_preprocess_lanczos_f32" if fast else "vt_preprocess_any_f32"
        assert [k for k, _, _ in backend.launches] == [kernel]
        np.testing.assert_array_equal(got, preprocess(imgs, (11, 13), **kw))


def test_emulated_area_kernel_per_channel_count(emu):
    """Area launches whose images share one channel count take that count's kernel (the
    combined one spills under NVRTC 13.0); a launch of mixed counts takes the combined one.
    Both equal the CPU."""
    from vetrina.kernels import preprocess

    rng = np.random.default_rng(12)
    backend = emu._backend
    kw = {"interpolation": "area", "fit": "letterbox"}
    batches = {
        "vt_preprocess_area_c3_f32": [(37, 53, 3), (29, 41, 3)],
        "vt_preprocess_area_c4_f32": [(37, 53, 4)],
        "vt_preprocess_area_c1_f32": [(37, 53)],
        "vt_preprocess_area_f32": [(37, 53, 3), (29, 41, 4), (30, 31)],
    }
    for kernel, shapes in batches.items():
        imgs = [rng.integers(0, 256, s, dtype=np.uint8) for s in shapes]
        backend.launches.clear()
        got = emu.preprocess(imgs, (11, 13), **kw)
        assert [k for k, _, _ in backend.launches] == [kernel]
        np.testing.assert_array_equal(got, preprocess(imgs, (11, 13), **kw))


def test_float16_conversion_matches_numpy(tmp_path):
    """The host path of vt_f2h/vt_h2f (the device uses PTX cvt.rn) against numpy, exhaustively
    for half -> float and on every float class for float -> half."""
    from vetrina.kernels import gpu

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    src = tmp_path / "half.cpp"
    src.write_text(
        _PRELUDE.replace("#line 1", "")
        + '#include "common.cuh"\n'
        + 'extern "C" void f2h(const float* x, unsigned short* y, long n) '
        "{ for (long i = 0; i < n; ++i) y[i] = vt_f2h(x[i]); }\n"
        + 'extern "C" void h2f(const unsigned short* x, float* y, long n) '
        "{ for (long i = 0; i < n; ++i) y[i] = vt_h2f(x[i]); }\n"
    )
    lib = tmp_path / "libhalf.so"
    subprocess.run(
        [cxx, "-std=c++17", "-O1", "-fPIC", "-shared", f"-I{gpu.SOURCE_DIR}", str(src), "-o",
         str(lib)],
        check=True,
    )  # fmt: skip
    so = ctypes.CDLL(str(lib))
    halves = np.arange(65536, dtype=np.uint16)
    got = np.empty(65536, dtype=np.float32)
    so.h2f(ctypes.c_void_p(halves.ctypes.data), ctypes.c_void_p(got.ctypes.data), 65536)
    want = halves.view(np.float16).astype(np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    rng = np.random.default_rng(5)
    bits = np.concatenate(
        [
            rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32),
            # every float near the half range edges and the rounding ties
            np.arange(0x33000000 - 4096, 0x38800000 + 4096, 97, dtype=np.uint32),
            np.arange(0x477FE000 - 65536, 0x47800000 + 65536, dtype=np.uint32),
            np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001], np.uint32),
        ]
    )
    x = bits.view(np.float32)
    out = np.empty(x.size, dtype=np.uint16)
    so.f2h(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(out.ctypes.data), x.size)
    with np.errstate(over="ignore"):
        want16 = x.astype(np.float16)
    nan = np.isnan(x)
    assert np.array_equal(out[~nan], want16[~nan].view(np.uint16))
    assert np.isnan(out[nan].view(np.float16)).all()


def test_emulated_launches_use_the_callers_stream_and_split_big_batches(emu):
    from vetrina.kernels import preprocess

    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, (5 + i % 3, 7, 3), dtype=np.uint8) for i in range(70)]
    backend = emu._backend
    backend.launches.clear()
    got = emu.preprocess(imgs, (4, 6))
    assert [k for k, _, _ in backend.launches] == ["vt_preprocess_f32"] * 3
    assert [g[2] for _, g, _ in backend.launches] == [32, 32, 6]
    np.testing.assert_array_equal(got, preprocess(imgs, (4, 6)))
    backend.launches.clear()
    emu.preprocess(imgs[:2], (4, 6), stream=1234)
    assert backend.launches[0][2] == 1234
