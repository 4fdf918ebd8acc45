"""Host cost of the CUDA kernels' ``*_async`` calls, without a GPU.

    python benchmarks/gpu_host_cost.py [--rounds 40] [--calls 100]

What a GPU request pays on the CPU before its kernel is queued: argument validation, the
placement of every image, packing the kernel parameters. The calls run against a backend
whose launch does nothing (no GPU, no driver), so only that host work is timed; on a GPU the
launch itself adds a few microseconds (``benchmarks/kernels_gpu.py`` reports the whole call as
"host us/call"). Cases as in the GPU benchmark: a 128x192 matte to the alpha of a 683x1024
photo (guided filter, radius 16: six kernels), 8 RGB 1024x1024 device images preprocessed
to 8x3x256x256 float32, an 8x3x512x512 batch postprocessed to 8 uint8 images, and adapted
to 8x3x256x256 float16. Prints the best of ``--rounds`` rounds of ``--calls`` calls each.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np


class NullBackend:
    """A GpuKernels backend that launches nothing: host work alone."""

    device = 0
    arch = "none"
    name = "no launch"

    def launch(self, kernel, grid, block, args, stream) -> None:
        pass

    def activate(self) -> None:
        pass

    def new_stream(self) -> object:
        return _NullStream()

    def device_buffer(self, nbytes: int) -> object:
        raise RuntimeError("the host-cost cases allocate no device memory")

    pinned = device_buffer

    def close(self) -> None:
        pass


class _NullStream:
    handle = 0

    def close(self) -> None:
        pass


def cases() -> dict[str, Callable[[], object]]:
    from vetrina.kernels import gpu

    gk = gpu.GpuKernels._with_backend(NullBackend())
    n, base = 8, 1 << 32  # fake, aligned device addresses: nothing is dereferenced
    images = [gpu.DeviceImage(base + i * (1 << 22), 1024, 1024, 3) for i in range(n)]
    outs = [gpu.DeviceImage(base + (1 << 30) + i * (1 << 22), 512, 512, 3) for i in range(n)]
    batch, out = base + (1 << 31), base + (3 << 30)
    from types import SimpleNamespace

    from vetrina.kernels.gpu_alpha import GpuAlpha, workspace_bytes

    ga = GpuAlpha(gk)
    photo = gpu.DeviceImage(base, 683, 1024, 3)
    alpha = gpu.DeviceImage(base + (1 << 30), 683, 1024, 1)
    work = SimpleNamespace(ptr=base + (1 << 31), nbytes=workspace_bytes((683, 1024)))
    guided = {"guide": photo, "radius": 16, "workspace": work, "stream": 0}
    return {
        "matte_to_alpha_async": lambda: ga.matte_to_alpha_async(
            base + (3 << 30), alpha, (683, 1024), matte_hw=(128, 192), **guided
        ),
        "preprocess_async": lambda: gk.preprocess_async(images, out, (256, 256), stream=0),
        "postprocess_async": lambda: gk.postprocess_async(batch, (n, 3, 512, 512), outs, stream=0),
        "adapt_async": lambda: gk.adapt_async(
            batch, (n, 3, 512, 512), out, (256, 256), dtype=np.float16, stream=0
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args(argv)
    calls = cases()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(args.rounds):
        for name, call in calls.items():
            t0 = time.perf_counter()
            for _ in range(args.calls):
                call()
            best[name] = min(best[name], (time.perf_counter() - t0) / args.calls * 1e6)
    for name, us in best.items():
        print(f"{name:<18} {us:6.1f} us per call (host work, best of {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
