"""GPU kernel benchmark: vetrina's CUDA kernels against the GPU's own copy bandwidth.

    python benchmarks/kernels_gpu.py [--json PATH] [--iters 50] [--device 0] [--quick] [--once]

For each kernel case the input already lies in device memory; the kernel time comes from CUDA
events around ``iters`` back-to-back launches queued behind a short spin kernel (so Python's
enqueue cost is not timed). Effective bandwidth = (bytes of every input image + bytes of the
output) / kernel time, compared with a device-to-device ``cudaMemcpyAsync`` measured the same
way (bytes read + written). The goal is at least 60 % of that copy bandwidth. Beside it, each
case is compared with a copy of its own byte count (half its bytes copied), timed the same two
ways: a kernel of 10-50 us cannot reach the bandwidth of a 256 MiB copy, whose launch and ramp
are spread over 0.13 ms, and neither can a copy of its size. The host-to-device upload of
the uint8 batch from pinned memory is timed separately, and so is the host cost of one
``*_async`` call (validation + packing + launch). Each case's output is also compared
with the CPU kernels (max difference, bit-exact or not).

Prints a table; ``--json PATH`` also writes every number. ``--once`` launches each case once,
untimed (for a profiler: ``ncu -k regex:^vt_ python benchmarks/kernels_gpu.py --once``).
Exit status 2 without a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

GOAL = 0.60  # fraction of the device-to-device copy bandwidth

_SPIN_SOURCE = r"""
extern "C" __global__ void vt_bench_spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) {
    }
}
"""


@dataclass
class Result:
    name: str
    what: str
    bytes_moved: int
    ms: float
    gbps: float
    fraction_of_copy: float
    host_us_per_call: float | None = None
    check: str = ""
    # L2 flushed before every launch (inputs come from DRAM, like the 256 MiB copy's)
    ms_cold: float = 0.0
    gbps_cold: float = 0.0
    fraction_of_copy_cold: float = 0.0
    # a device-to-device copy of the same bytes (nbytes / 2 copied), timed the same two ways
    copy_ms: float = 0.0
    copy_ms_cold: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def of_same_copy(self) -> float:
        """Kernel bandwidth / the same-size copy's (= copy time / kernel time), back to back."""
        return self.copy_ms / self.ms if self.ms else 0.0

    @property
    def of_same_copy_cold(self) -> float:
        """The same with L2 flushed before each run (each run timed alone)."""
        return self.copy_ms_cold / self.ms_cold if self.ms_cold else 0.0


class Bench:
    """Timing helpers on one GPU: a spin kernel to hide the enqueue, CUDA events."""

    def __init__(self, gk: Any, iters: int) -> None:
        from cuda.bindings import driver

        from vetrina.kernels import gpu, nvrtc

        self.gpu, self.gk, self.iters = gpu, gk, iters
        self.stream = gpu.Stream(gk.device)
        cubin, _ = nvrtc._nvrtc_compile("bench_spin", _SPIN_SOURCE, {}, gk.arch)
        self._image = np.frombuffer(cubin, dtype=np.uint8)
        gk._backend.activate()
        self._mod = gpu._check(driver.cuModuleLoadData(self._image), "cuModuleLoadData(spin)")
        self._spin = gpu._check(
            driver.cuModuleGetFunction(self._mod, b"vt_bench_spin"), "cuModuleGetFunction"
        )
        self._spin_cycles = np.array(20_000_000, dtype=np.int64)  # ~10 ms at 2 GHz
        self._spin_args = np.array([self._spin_cycles.ctypes.data], dtype=np.uint64)

    def spin(self) -> None:
        from cuda.bindings import driver

        self.gpu._check(
            driver.cuLaunchKernel(
                self._spin, 1, 1, 1, 1, 1, 1, 0, self.stream.handle,
                int(self._spin_args.ctypes.data), 0,
            ),
            "cuLaunchKernel(spin)",
        )  # fmt: skip

    def time_cold_ms(self, enqueue: Callable[[], None], iters: int = 20) -> float:
        """Mean GPU milliseconds of ``enqueue()`` with the L2 cache flushed before each run.

        The benchmark's inputs (25-50 MB) fit in an H100/H200's 50-60 MB L2, so back-to-back
        runs read them from L2; the copy they are compared with streams 256 MiB from DRAM.
        Writing a 256 MiB scratch buffer between runs evicts them; each run is timed alone.
        """
        gpu = self.gpu
        if not hasattr(self, "_scratch"):
            self._scratch = gpu.DeviceBuffer(256 << 20, device=self.gk.device)
        enqueue()
        pairs = []
        for i in range(iters):
            self._scratch.fill_bytes(i & 0xFF, stream=self.stream)
            start, end = gpu.Event(self.gk.device), gpu.Event(self.gk.device)
            start.record(self.stream)
            enqueue()
            end.record(self.stream)
            pairs.append((start, end))
        self.stream.synchronize()
        total = 0.0
        for start, end in pairs:
            total += end.elapsed_ms(start)
            start.close()
            end.close()
        return total / iters

    def time_ms(self, enqueue: Callable[[], None], iters: int | None = None) -> float:
        """Mean GPU milliseconds of ``enqueue()`` over ``iters`` back-to-back runs."""
        iters = iters or self.iters
        gpu = self.gpu
        for _ in range(3):
            enqueue()
        self.stream.synchronize()
        start, end = gpu.Event(self.gk.device), gpu.Event(self.gk.device)
        self.spin()
        start.record(self.stream)
        for _ in range(iters):
            enqueue()
        end.record(self.stream)
        ms = end.elapsed_ms(start) / iters
        start.close()
        end.close()
        return ms


def _copy_bandwidth(bench: Bench, nbytes: int) -> tuple[float, float]:
    """(GB/s counting read + write, ms per copy) of a device-to-device cudaMemcpyAsync."""
    gpu = bench.gpu
    a = gpu.DeviceBuffer(nbytes, device=bench.gk.device)
    b = gpu.DeviceBuffer(nbytes, device=bench.gk.device)
    a.fill_bytes(1, stream=bench.stream)
    backend = bench.gk._backend
    ms = bench.time_ms(lambda: backend.d2d(b.ptr, a.ptr, nbytes, bench.stream.handle), 20)
    a.close()
    b.close()
    return 2 * nbytes / (ms * 1e-3) / 1e9, ms


class SameBytesCopy:
    """Device-to-device copies of a given byte count, between two buffers kept for the run."""

    def __init__(self, bench: Bench, max_bytes: int) -> None:
        gpu = bench.gpu
        half = -(-max_bytes // 2)
        self.bench = bench
        self.a = gpu.DeviceBuffer(half, device=bench.gk.device)
        self.b = gpu.DeviceBuffer(half, device=bench.gk.device)
        self.a.fill_bytes(7, stream=bench.stream)

    def times_ms(self, nbytes: int) -> tuple[float, float]:
        """(back-to-back ms, L2-flushed ms) of one copy moving ``nbytes`` (read + write)."""
        half = nbytes // 2
        backend, stream = self.bench.gk._backend, self.bench.stream

        def copy() -> None:
            backend.d2d(self.b.ptr, self.a.ptr, half, stream.handle)

        return self.bench.time_ms(copy), self.bench.time_cold_ms(copy)

    def close(self) -> None:
        self.a.close()
        self.b.close()


def _compare(got: np.ndarray, want: np.ndarray) -> str:
    if got.shape != want.shape:
        return f"SHAPE MISMATCH {got.shape} vs {want.shape}"
    if np.array_equal(got, want, equal_nan=want.dtype.kind == "f"):
        return "bit-exact vs CPU"
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    diff = diff[np.isfinite(diff)]
    n = int(np.count_nonzero(diff))
    return f"max |diff| {diff.max(initial=0):.3g} on {n} of {got.size} values vs CPU"


def _upload_images(gpu, device: int, imgs: list[np.ndarray], stream) -> tuple[Any, list, float]:
    """Pack uint8 images into pinned memory, upload in one copy; (buffer, images, H2D GB/s)."""
    offsets, total = [], 0
    for im in imgs:
        offsets.append(total)
        total += -(-im.nbytes // 256) * 256
    pinned = gpu.PinnedBuffer(total, device=device)
    for im, off in zip(imgs, offsets, strict=True):
        np.copyto(pinned.view(im.shape, np.uint8, off), im)
    dev = gpu.DeviceBuffer(total, device=device)
    start, end = gpu.Event(device), gpu.Event(device)
    dev.copy_from_host(pinned.array, stream=stream)  # warm
    stream.synchronize()
    start.record(stream)
    for _ in range(5):
        dev.copy_from_host(pinned.array, stream=stream)
    end.record(stream)
    h2d = 5 * total / (end.elapsed_ms(start) * 1e-3) / 1e9
    pinned.close()
    images = [
        gpu.DeviceImage(dev.ptr + off, im.shape[0], im.shape[1], im.shape[2])
        for im, off in zip(imgs, offsets, strict=True)
    ]
    return dev, images, h2d


def run(args: argparse.Namespace) -> dict[str, Any]:
    from vetrina import kernels as cpu
    from vetrina.kernels import gpu

    reason = gpu.gpu_unavailable_reason()
    if reason is not None:
        print(f"no GPU: {reason}", file=sys.stderr)
        raise SystemExit(2)
    t0 = time.perf_counter()
    gk = gpu.GpuKernels(args.device)
    init_s = time.perf_counter() - t0
    bench = Bench(gk, args.iters)
    stream = bench.stream
    from cuda.bindings import runtime

    info = {
        "gpu": gk.name,
        "arch": gk.arch,
        "nvrtc": ".".join(map(str, gpu.nvrtc_version())),
        "driver_api": runtime.cudaDriverGetVersion()[1],
        "runtime_api": runtime.cudaRuntimeGetVersion()[1],
        "cuda_bindings": _version("cuda-bindings"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "GpuKernels_init_s": round(init_s, 3),
    }
    copy_gbps, copy_ms = _copy_bandwidth(bench, 256 << 20)
    info["d2d_copy_GBps"] = round(copy_gbps, 1)
    print(f"GPU: {gk.name} ({gk.arch}); NVRTC {info['nvrtc']}; driver API {info['driver_api']}")
    print(f"device-to-device copy: {copy_gbps:.0f} GB/s (read + write, 256 MiB, {copy_ms:.3f} ms)")
    same_copy = SameBytesCopy(bench, 256 << 20)

    rng = np.random.default_rng(0)
    n = 4 if args.quick else 8
    src_hw = (1024, 1024)
    imgs = [rng.integers(0, 256, (*src_hw, 3), dtype=np.uint8) for _ in range(n)]
    dev_in, dev_imgs, h2d = _upload_images(gpu, gk.device, imgs, stream)
    in_bytes = sum(im.nbytes for im in imgs)
    info["h2d_pinned_GBps"] = round(h2d, 1)
    print(f"host-to-device from pinned memory: {h2d:.1f} GB/s ({in_bytes / 1e6:.1f} MB batch)")
    results: list[Result] = []

    def add(
        name: str,
        what: str,
        nbytes: int,
        call: Callable[[], None],
        check: Callable[[], str] | None = None,
        kernel: Callable[[str], str] | None = None,
        **extra: Any,
    ) -> None:
        """``kernel``: renames the recorded launches' kernels (an A/B of two kernels that take
        the same parameters; the host cost is still the launcher's own call)."""
        with gk.capture() as plan:
            call()
        if kernel is not None:
            plan.launches = [(kernel(k), *rest) for k, *rest in plan.launches]
        if args.once:  # a profiler's run: each case launched once, nothing timed
            plan.launch(stream)
            stream.synchronize()
            print(f"  {name:<28} launched once", flush=True)
            return
        copy_ms, copy_ms_cold = same_copy.times_ms(nbytes)
        ms = bench.time_ms(lambda: plan.launch(stream))
        ms_cold = bench.time_cold_ms(lambda: plan.launch(stream))
        host = _host_us(call, stream)
        gbps = nbytes / (ms * 1e-3) / 1e9
        gbps_cold = nbytes / (ms_cold * 1e-3) / 1e9
        res = Result(
            name,
            what,
            nbytes,
            ms,
            gbps,
            gbps / copy_gbps,
            host,
            extra=extra,
            ms_cold=ms_cold,
            gbps_cold=gbps_cold,
            fraction_of_copy_cold=gbps_cold / copy_gbps,
            copy_ms=copy_ms,
            copy_ms_cold=copy_ms_cold,
        )
        if check is not None:
            if kernel is not None:  # the host-cost calls ran the launcher's own kernel
                plan.launch(stream)
            stream.synchronize()
            try:
                res.check = check()
            except Exception as exc:  # report, keep benchmarking
                res.check = f"check failed: {type(exc).__name__}: {exc}"
        results.append(res)
        print(
            f"  {name:<28} {ms * 1e3:9.1f} us  {gbps:8.1f} GB/s  {res.fraction_of_copy:6.1%}"
            f"  cold L2 {ms_cold * 1e3:7.1f} us {res.fraction_of_copy_cold:6.1%}"
            f"  same-size copy {copy_ms * 1e3:.1f} / {copy_ms_cold * 1e3:.1f} us"
            f"  host {host:6.1f} us/call  {res.check}",
            flush=True,
        )

    def add_ab(name: str, *case: Any, **kw: Any) -> None:
        """An A/B row: one that fails is reported and the run goes on."""
        try:
            add(name, *case, **kw)
        except Exception as exc:
            print(f"  {name:<28} FAILED: {type(exc).__name__}: {exc}", flush=True)

    # ---- preprocess: uint8 (n, 1024, 1024, 3) -> (n, 3, S, S) -----------------------------
    for side, dtype, interp in [
        (256, np.float32, "bilinear"),
        (512, np.float32, "bilinear"),
        (256, np.float16, "bilinear"),
        (256, np.float32, "area"),  # integer factor: OpenCV's box average
        (224, np.float32, "area"),  # fractional factor: area weights
        (256, np.float32, "bilinear-u8"),
    ]:
        dt = np.dtype(dtype)
        out = gpu.DeviceBuffer.empty((n, 3, side, side), dt, device=gk.device)
        kw = {"dtype": dt, "interpolation": interp, "stream": stream}

        def call(out=out, side=side, kw=kw) -> None:
            gk.preprocess_async(dev_imgs, out, (side, side), **kw)

        def check(out=out, side=side, dt=dt, interp=interp) -> str:
            got = out.copy_to_host(stream=stream)
            want = cpu.preprocess(imgs, (side, side), interpolation=interp, dtype=dt)
            return _compare(got, want)

        name = f"preprocess {side} {dt.name}" + ("" if interp == "bilinear" else f" {interp}")
        what = f"{n}x1024x1024x3 uint8 -> {n}x3x{side}x{side} {dt.name} ({interp})"
        add(name, what, in_bytes + out.nbytes, call, check)
        if side == 512:
            for f in _ROW_FACTORS:
                add_ab(f"{name} (rows x{f})", f"{what}, {f}x the rows per thread",
                       in_bytes + out.nbytes, _more_rows(call, f), check)  # fmt: skip
        if interp == "area" and side == 224:
            # A/B: the area kernel that serves 1-, 3- and 4-channel images in one (taken by
            # launches of mixed channel counts; NVRTC 13.0 spills in it) against the RGB one
            add_ab(
                f"{name} (1/3/4-ch kernel)",
                what + ", the area kernel for mixed channel counts",
                in_bytes + out.nbytes,
                call,
                check,
                kernel=lambda k: k.replace("_area_c3_", "_area_"),
            )
        out.close()

    # ---- postprocess: float32 (n, 3, 512, 512) -> uint8 (h, w, 3) -------------------------
    batch = (rng.standard_normal((n, 3, 512, 512)) * 0.3 + 0.5).astype(np.float32)
    dev_batch = gpu.DeviceBuffer.empty(batch.shape, np.float32, device=gk.device)
    dev_batch.copy_from_host(batch, stream=stream)
    for side in (512, 1024):
        per = side * side * 3
        dev_out = gpu.DeviceBuffer(n * per, device=gk.device)
        outs = [gpu.DeviceImage(dev_out.ptr + i * per, side, side, 3) for i in range(n)]

        def call(outs=outs) -> None:
            gk.postprocess_async(dev_batch, batch.shape, outs, stream=stream)

        def check(dev_out=dev_out, side=side) -> str:
            got = dev_out.copy_to_host(stream=stream).reshape(n, side, side, 3)
            want = np.stack(cpu.postprocess(batch, [(side, side)] * n))
            return _compare(got, want)

        name, what = (
            f"postprocess 512->{side}",
            f"{n}x3x512x512 float32 -> {n}x{side}x{side}x3 uint8",
        )
        add(name, what, batch.nbytes + n * per, call, check)
        # A/B: the general bilinear kernel, where the launcher takes a shortcut (1:1: the
        # kernel without taps; 2x: closed-form taps)
        add_ab(f"{name} (general kernel)", what + ", the general bilinear kernel",
               batch.nbytes + n * per, _general_kernels(call), check)  # fmt: skip
        for f in _ROW_FACTORS:
            add_ab(f"{name} (rows x{f})", f"{what}, {f}x the rows per thread",
                   batch.nbytes + n * per, _more_rows(call, f), check)  # fmt: skip
        dev_out.close()

    for extra_case in _optional_cases(gk, cpu, gpu, rng, n, stream):
        try:
            add(*extra_case)
        except Exception as exc:  # one broken case must not lose the others' numbers
            print(f"  {extra_case[0]:<28} FAILED: {type(exc).__name__}: {exc}", flush=True)

    stream.synchronize()
    same_copy.close()
    dev_in.close()
    dev_batch.close()
    summary = {
        "info": info,
        "goal_fraction_of_copy": GOAL,
        "results": [
            {**asdict(r), "of_same_copy": r.of_same_copy, "of_same_copy_cold": r.of_same_copy_cold}
            for r in results
        ],
    }
    _print_table(info, results)
    return summary


def _optional_cases(gk, cpu, gpu, rng, n, stream) -> list[tuple]:
    """adapt, the alpha step and the tile blend: (name, what, bytes, call, check)."""
    cases: list[tuple] = []
    src = (rng.standard_normal((n, 3, 512, 512)) * 0.5).astype(np.float32)
    dev_src = gpu.DeviceBuffer.empty(src.shape, np.float32, device=gk.device)
    dev_src.copy_from_host(src, stream=stream)
    _KEEP.append(dev_src)
    for side, out_dt, interp in [(256, np.float16, "bilinear"), (512, np.float16, "bilinear"),
                                 (256, np.float32, "area")]:  # fmt: skip
        out = gpu.DeviceBuffer.empty((n, 3, side, side), out_dt, device=gk.device)
        _KEEP.append(out)
        kw = {"dst_order": "BGR", "scale": 0.5, "offset": 0.5, "interpolation": interp}

        def call(out=out, side=side, out_dt=out_dt, kw=kw) -> None:
            gk.adapt_async(dev_src, src.shape, out, (side, side), dtype=out_dt, stream=stream, **kw)

        def check(out=out, side=side, out_dt=out_dt, kw=kw) -> str:
            got = out.copy_to_host(stream=stream)
            return _compare(got, cpu.adapt(src, (side, side), dtype=out_dt, **kw))

        name = f"adapt 512->{side} {np.dtype(out_dt).name}" + (" area" if interp == "area" else "")
        what = f"{n}x3x512x512 float32 -> {n}x3x{side}x{side} {np.dtype(out_dt).name} (BGR)"
        cases.append((name, what, src.nbytes + out.nbytes, call, check))
        if side == 512:
            cases.append((f"{name} (general kernel)", what + ", the bilinear kernel with taps",
                          src.nbytes + out.nbytes, _general_kernels(call), check))  # fmt: skip
            for f in _ROW_FACTORS:
                cases.append((f"{name} (rows x{f})", f"{what}, {f}x the rows per thread",
                              src.nbytes + out.nbytes, _more_rows(call, f), check))  # fmt: skip

    # tile blend: an x2 upscaler's 256x256 float32 tiles (NCHW batch) of a 1000x1500 image
    plan = cpu.plan_tiles((1000, 1500), 128, 16)
    tiles = (rng.standard_normal((len(plan), 3, 256, 256)) * 0.2 + 0.5).astype(np.float32)
    dev_tiles = gpu.DeviceBuffer.empty(tiles.shape, np.float32, device=gk.device)
    dev_tiles.copy_from_host(tiles, stream=stream)
    out = gpu.DeviceBuffer.empty((3, 2000, 3000), np.float32, device=gk.device)
    _KEEP.extend([dev_tiles, out])

    def call_blend() -> None:
        gk.blend_tiles_async(plan, dev_tiles, out, scale=2, channels=3, layout="chw", stream=stream)

    def check_blend() -> str:
        got = out.copy_to_host(stream=stream)
        want = plan.blend([t.transpose(1, 2, 0) for t in tiles], 2).transpose(2, 0, 1)
        return _compare(got, np.ascontiguousarray(want))

    cases.extend(_alpha_cases(gk, cpu, gpu, rng, stream))
    cases.append(
        (
            "tile blend x2",
            f"{len(plan)}x3x256x256 float32 tiles -> 3x2000x3000 float32 (1000x1500, x2)",
            tiles.nbytes + out.nbytes,
            call_blend,
            check_blend,
        )
    )
    return cases


def _alpha_cases(gk, cpu, gpu, rng, stream) -> list[tuple]:
    """A pipeline's alpha step on the device: a 128x192 matte to the alpha of a 683x1024
    photo, guided filter of radius 16 (the zoo cutout's ``refine: 2`` at that size), and of a
    1366x2048 photo at radius 48. Then the same with other (row segment, column band) pairs
    than ``gpu_alpha._box_spans`` chooses: A/B rows for that choice."""
    from vetrina.kernels import gpu_alpha

    cases = []
    for hw, radius, others in [
        ((683, 1024), 16, [(1, 6), (2, 6), (3, 6), (6, 6)]),
        ((1366, 2048), 48, [(1, 22), (2, 22), (4, 22), (8, 22), (22, 22), (3, 44), (3, 97)]),
    ]:
        default = gpu_alpha._box_spans(radius, hw[0] * hw[1])
        call, check, what, nbytes = _alpha_call(gk, cpu, gpu, rng, stream, hw, radius)
        for spans in [None, *[o for o in others if o != default]]:

            def timed(spans=spans, call=call) -> None:
                if spans is None:
                    call()
                    return
                chosen = gpu_alpha._box_spans
                gpu_alpha._box_spans = lambda r, pixels: spans
                try:
                    call()
                finally:
                    gpu_alpha._box_spans = chosen

            seg, band = default if spans is None else spans
            name = f"matte to alpha r{radius}" + ("" if spans is None else f" ({seg}/{band})")
            cases.append(
                (name, f"{what}, row segment {seg}, column band {band})", nbytes, timed, check)
            )
    return cases


def _alpha_call(gk, cpu, gpu, rng, stream, hw, radius) -> tuple:
    """(call, check, description, bytes) of matte -> alpha for a photo of ``hw``."""
    from vetrina.kernels.gpu_alpha import GpuAlpha

    matte = rng.random((128, 192), dtype=np.float32)
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float32)
    waves = [np.sin(xx / 37 + k) * np.cos(yy / 23 - k) for k in range(3)]
    photo = np.stack([127.5 + 120 * w for w in waves], axis=2).astype(np.uint8)  # smooth
    dev_matte = gpu.DeviceBuffer.empty(matte.shape, np.float32, device=gk.device)
    dev_matte.copy_from_host(matte, stream=stream)
    dev_photo = gpu.DeviceBuffer(photo.nbytes, device=gk.device)
    dev_photo.copy_from_host(photo, stream=stream)
    dev_alpha = gpu.DeviceBuffer(hw[0] * hw[1], device=gk.device)
    alpha = GpuAlpha(gk)
    _KEEP.extend([dev_matte, dev_photo, dev_alpha, alpha])
    out = gpu.DeviceImage(dev_alpha.ptr, *hw, 1)
    guide = gpu.DeviceImage(dev_photo.ptr, *hw, 3)
    want = cpu.matte_to_alpha(matte, hw, guide=photo, radius=radius)

    def call() -> None:
        alpha.matte_to_alpha_async(dev_matte, out, hw, guide=guide, radius=radius, stream=stream)

    def check() -> str:
        return _compare(dev_alpha.copy_to_host(stream=stream).reshape(hw), want)

    what = (
        f"128x192 float32 matte + {hw[0]}x{hw[1]}x3 uint8 photo -> {hw[0]}x{hw[1]} uint8 alpha "
        f"(guided r{radius}"
    )
    return call, check, what, matte.nbytes + photo.nbytes + hw[0] * hw[1]


def _more_rows(call: Callable[[], None], factor: int) -> Callable[[], None]:
    """``call`` with each thread taking ``factor`` times the rows ``gpu._grid`` gives it
    (its thread target divided, its row cap multiplied): A/B rows for the rows-per-thread
    rule, which amortises a thread's setup (tap coordinates, the first source rows) over
    more rows at the price of fewer threads."""
    from vetrina.kernels import gpu

    def more() -> None:
        saved = gpu._MIN_THREADS, gpu._MAX_ROWS
        gpu._MIN_THREADS, gpu._MAX_ROWS = saved[0] // factor, saved[1] * factor
        try:
            call()
        finally:
            gpu._MIN_THREADS, gpu._MAX_ROWS = saved

    return more


def _general_kernels(call: Callable[[], None]) -> Callable[[], None]:
    """``call`` with the launcher's shortcut kernels off (``gpu._SHORTCUT_KERNELS``): 1:1
    postprocess and adapt, and 2x postprocess, on the general kernels. A/B rows."""
    from vetrina.kernels import gpu

    def general() -> None:
        gpu._SHORTCUT_KERNELS = False
        try:
            call()
        finally:
            gpu._SHORTCUT_KERNELS = True

    return general


_ROW_FACTORS = (2, 4)
"""Rows-per-thread factors of the A/B rows (cases below the goal)."""


_KEEP: list = []  # device buffers of the optional cases, alive until the end of the run


def _host_us(call: Callable[[], None], stream: Any, reps: int = 20) -> float:
    """Host microseconds of one validating, packing, launching ``*_async`` call."""
    call()
    stream.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        call()
    us = (time.perf_counter() - t) / reps * 1e6
    stream.synchronize()
    return us


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _print_table(info: dict[str, Any], results: list[Result]) -> None:
    print()
    print(f"GPU kernel benchmark on {info['gpu']} ({info['arch']})")
    print(
        f"device-to-device copy {info['d2d_copy_GBps']} GB/s (read + write); "
        f"H2D from pinned {info['h2d_pinned_GBps']} GB/s; goal >= {GOAL:.0%} of the copy"
    )
    print("warm: back-to-back launches (inputs stay in L2); cold: L2 flushed before each launch")
    print("same-size copy: a device-to-device copy moving the case's bytes, timed the same ways")
    print()
    print(
        "| case | shapes | us warm / cold | GB/s warm / cold | of 256 MiB copy warm / cold | "
        "goal (warm / cold) | same-size copy us | of same-size copy | host us/call | vs CPU |"
    )
    print("|---|---|---:|---:|---:|---|---:|---:|---:|---|")
    for r in results:
        ok = " / ".join(
            "met" if f >= GOAL else "MISSED" for f in (r.fraction_of_copy, r.fraction_of_copy_cold)
        )
        print(
            f"| {r.name} | {r.what} | {r.ms * 1e3:.1f} / {r.ms_cold * 1e3:.1f} | "
            f"{r.gbps:.0f} / {r.gbps_cold:.0f} | "
            f"{r.fraction_of_copy:.0%} / {r.fraction_of_copy_cold:.0%} | {ok} | "
            f"{r.copy_ms * 1e3:.1f} / {r.copy_ms_cold * 1e3:.1f} | "
            f"{r.of_same_copy:.0%} / {r.of_same_copy_cold:.0%} | "
            f"{r.host_us_per_call:.0f} | {r.check} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the results as JSON to this path")
    parser.add_argument("--iters", type=int, default=50, help="timed launches per case")
    parser.add_argument("--device", type=int, default=0, help="CUDA device ordinal")
    parser.add_argument("--quick", action="store_true", help="batch of 4 instead of 8")
    parser.add_argument(
        "--once", action="store_true", help="launch each case once, untimed (for a profiler)"
    )
    args = parser.parse_args(argv)
    summary = run(args)
    if args.once:
        return 0
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
