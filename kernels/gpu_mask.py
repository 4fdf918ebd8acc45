"""The clean stage's defect mask on a CUDA GPU (kernels/cuda/mask.cu), driven like kernels.gpu.

:func:`defect_mask_async` queues the two passes of mask.cu on device memory and a stream (and is
recorded by ``GpuKernels.capture``); :func:`defect_mask` takes and returns numpy arrays like
its CPU twin :func:`vetrina.kernels.defect_mask`, which it equals bit for bit (the kernels only
compare and select: no float arithmetic). The pipeline's GPU data path
(``vetrina.device_chain``) runs it between a clean stage's detector and inpainter, so the mask
never leaves the device.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from . import _checks as ck
from .composite import check_defect_args, structuring_rows
from .gpu import GpuKernels, _Args, _check_batch_shape, _ptr_of, _u64

__all__ = ["defect_mask", "defect_mask_async", "scratch_bytes"]

_HEAD = struct.Struct("<q3i3f")
"""VtMask's head (planes; h, w, r; level, on, off); the half-widths follow at _HALF_AT."""
_HALF_AT, _SIZE = 32, 552
_BX, _BY = 32, 8
"""Block shape of every launch (kernels/gpu.py's _BLOCK)."""
_MAX_GRID = 65535


def scratch_bytes(shape: tuple[int, int, int, int]) -> int:
    """Bytes of the scratch buffer :func:`defect_mask_async` needs for maps of ``shape``."""
    n, _, h, w = shape
    return n * h * w


def _params(fn: str, shape: Any, level: float, radius: int, on: float, off: float) -> bytearray:
    n, _, h, w = _check_batch_shape(fn, shape, 1)
    if -(-h // _BY) > _MAX_GRID:
        raise ValueError(f"{fn}: maps are {h} rows high; expected at most {_BY * _MAX_GRID}")
    r = check_defect_args(fn, level, radius, on, off)
    buf = bytearray(_SIZE)
    lv, hi, lo = (float(np.float32(v)) for v in (level, on, off))  # NumPy's float32 rounding
    _HEAD.pack_into(buf, 0, n, h, w, r, lv, hi, lo)
    half = structuring_rows(r)
    struct.pack_into(f"<{half.size}i", buf, _HALF_AT, *half.tolist())
    return buf


def defect_mask_async(
    kernels: GpuKernels,
    prob: Any,
    shape: tuple[int, int, int, int],
    out: Any,
    scratch: Any,
    *,
    level: float,
    radius: int = 0,
    on: float = 1.0,
    off: float = 0.0,
    stream: Any = None,
) -> None:
    """Queue ``kernels.defect_mask`` on device memory: ``prob`` and ``out`` are C-contiguous
    float32 (N, 1, H, W) device arrays (pointers or buffers), ``scratch`` holds
    :func:`scratch_bytes` (``shape``) bytes; arguments as the CPU function's."""
    fn = "defect_mask_async"
    buf = _params(fn, shape, level, radius, on, off)
    n, _, h, w = shape
    src, dst = _ptr_of(fn, "prob", prob), _ptr_of(fn, "out", out)
    tmp = _ptr_of(fn, "scratch", scratch)
    grid = (-(-w // _BX), -(-h // _BY), min(n, _MAX_GRID))
    block = bytes(buf)
    handle = kernels._stream(stream)
    kernels._launch("vt_mask_rows", grid, _Args(block, _u64(src), _u64(tmp)), handle)
    kernels._launch("vt_mask_dilate", grid, _Args(block, _u64(tmp), _u64(dst)), handle)


def defect_mask(
    kernels: GpuKernels,
    prob: np.ndarray,
    level: float,
    radius: int = 0,
    *,
    on: float = 1.0,
    off: float = 0.0,
    stream: Any = None,
) -> np.ndarray:
    """:func:`vetrina.kernels.defect_mask` on the GPU (synchronous; upload, run, download)."""
    fn = "defect_mask"
    if not isinstance(prob, np.ndarray):
        raise TypeError(f"{fn}: prob has type {type(prob).__name__}; expected a numpy array")
    if prob.dtype != ck.F32 or prob.ndim != 4:
        raise ValueError(f"{fn}: prob is {prob.dtype} {prob.shape}; expected float32 (N, 1, H, W)")
    _params(fn, prob.shape, level, radius, on, off)  # any error before allocating
    prob = np.ascontiguousarray(prob)
    backend, handle = kernels._backend, kernels._stream(stream)
    nbytes = prob.nbytes
    with kernels._lock:
        backend.activate()
        pin = kernels._scratch.get("mask pin", nbytes, pinned=True)
        dev_in = kernels._scratch.get("mask in", nbytes, pinned=False)
        dev_out = kernels._scratch.get("mask out", nbytes, pinned=False)
        tmp = kernels._scratch.get("mask rows", scratch_bytes(prob.shape), pinned=False)
        backend.synchronize(handle)
        host = pin.view(prob.shape, np.float32, 0)
        np.copyto(host, prob)
        backend.h2d(dev_in.ptr, host, handle)
        defect_mask_async(
            kernels, dev_in.ptr, prob.shape, dev_out.ptr, tmp.ptr,
            level=level, radius=radius, on=on, off=off, stream=handle,
        )  # fmt: skip
        backend.d2h(host, dev_out.ptr, handle)
        backend.synchronize(handle)
        return host.copy()
