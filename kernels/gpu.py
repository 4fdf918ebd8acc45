"""vetrina CUDA kernels: the launcher (:class:`GpuKernels`) and its kernel parameters.

The CUDA C sources in ``kernels/cuda/`` (preprocess, postprocess, adapt, tiles, clamp; alpha,
driven by :mod:`vetrina.kernels.gpu_alpha`; mask, by :mod:`vetrina.kernels.gpu_mask`) implement
the CPU kernels' semantics (``vetrina.kernels``, docs/kernels.md; clamp: ``np.clip``) operation
for operation: same tap formulas, same per-image resampling mode (bilinear, area, OpenCV's
integer box and 8-bit bilinear), float32 arithmetic in the same order, compiled by NVRTC
through cuda-python (``cuda.bindings``) with ``--fmad=false``, so GPU results equal the CPU's
bit for bit (the tests allow 1 LSB / a few ulps). Placements, validation and tile weights come
from the CPU package itself, so both sides place and weigh pixels identically.

* :class:`GpuKernels` loads the cubins for a device's compute capability into its primary
  context. ``*_async`` methods take device memory and queue on the caller's stream;
  :meth:`~GpuKernels.preprocess`, :meth:`~GpuKernels.postprocess`, :meth:`~GpuKernels.adapt`
  and :meth:`~GpuKernels.blend_tiles` take numpy arrays like their CPU namesakes (upload
  through pinned memory, run, download); :meth:`~GpuKernels.clamp` is ``np.clip`` with
  per-channel bounds. :class:`DeviceImage` is a uint8 image in device memory.
* Compilation lives in :mod:`vetrina.kernels.nvrtc` (:func:`compile_kernels`, alias
  :func:`compile_all`: NVRTC only, no GPU or driver, cubins cached on disk), devices, streams,
  events and memory in :mod:`vetrina.kernels.cuda_device` (:class:`DeviceBuffer`,
  :class:`PinnedBuffer`, :class:`Stream`, :class:`Event`), the lazy ``cuda.bindings`` import
  and the errors in :mod:`vetrina.kernels.cuda_api`. This module re-exports their public
  names, so ``vetrina.kernels.gpu`` stays the one import for callers.

Importing this module imports no CUDA library: ``cuda.bindings`` is imported inside the
functions that need it, and a missing package raises :class:`CudaUnavailableError` naming
``pip install 'vetrina[gpu]'``. Asking for a GPU that is not there is an error, never a CPU
fallback.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .cuda_api import (
    INSTALL_HINT,
    CompileError,
    CudaError,
    CudaUnavailableError,
    _bindings,
    _check,
)
from .cuda_device import (
    ALIGNMENT,
    DeviceBuffer,
    Event,
    PinnedBuffer,
    Stream,
    _align,
    _Context,
    _stream_handle,
    device_count,
    gpu_unavailable_reason,
    grown_capacity,
)
from .nvrtc import (
    NVRTC_OPTIONS,
    SOURCE_DIR,
    SOURCES,
    CompiledModule,
    cache_dir,
    compile_all,
    compile_kernels,
    compile_source,
    kernel_names,
    normalize_arch,
    nvrtc_version,
    supported_archs,
)

if TYPE_CHECKING:
    from .fit import Placement
    from .tiling import TilePlan

__all__ = [
    "ALIGNMENT",
    "MAX_IMAGES_PER_LAUNCH",
    "NVRTC_OPTIONS",
    "SOURCES",
    "SOURCE_DIR",
    "CompileError",
    "CompiledModule",
    "CudaError",
    "CudaUnavailableError",
    "DeviceBuffer",
    "DeviceImage",
    "Event",
    "GpuKernels",
    "LaunchPlan",
    "PinnedBuffer",
    "Stream",
    "cache_dir",
    "compile_all",
    "compile_kernels",
    "compile_source",
    "device_count",
    "gpu_unavailable_reason",
    "grown_capacity",
    "kernel_names",
    "normalize_arch",
    "nvrtc_version",
    "supported_archs",
]

MAX_IMAGES_PER_LAUNCH = 32
"""Images described by one launch (VT_MAX_IMAGES in common.cuh); larger batches take several."""


# ----------------------------------------------------------------------------------------------
# Kernel parameters: byte for byte the structs of kernels/cuda/*.cu (which static_assert the
# same offsets and sizes), packed little-endian without padding
# ----------------------------------------------------------------------------------------------

# src, row_pitch, px_pitch, ch[3], y axis, x axis, mode, kx, ky, q
_PRE_IMAGE = struct.Struct("<Qqi3i4i4i3if")
_PRE_TAIL = struct.Struct("<3f3f3f")  # scale, offset, pad
_PRE_TAIL_AT, _PRE_SIZE = 2560, 2600
# dst, row_pitch, alpha, alpha_pitch, h, w, nout, fill[4], y axis, x axis
_POST_IMAGE = struct.Struct("<QqQq3i4B4i4i")
_POST_TAIL = struct.Struct("<3q2i3ii3f3f")  # sn, sc, sh, H, W, bc[3], mode, scale, offset
_POST_TAIL_AT, _POST_SIZE = 2560, 2632
_ADAPT_HEAD = struct.Struct("<3q4i4i4i")  # sn, sc, sh, cin, cout, mode, pad, y, x
_ADAPT_CH_AT, _ADAPT_SCALE_AT, _ADAPT_OFFSET_AT, _ADAPT_SIZE = 72, 328, 584, 840
# tiles, out, wy, wx, ys, xs, tile strides (k, y, x, c), output strides (y, x, c), ny, nx, TH, TW,
# OH, OW, C, in_kind, out_kind, pad
_BLEND = struct.Struct("<6Q4q3q9i4x")
# planes (N * C), hw (H * W), c, take; then lo, hi (float32[64]) and lo_h, hi_h (float16 bits)
_CLAMP_HEAD = struct.Struct("<2q2i")
_CLAMP_LO_AT, _CLAMP_HI_AT, _CLAMP_LOH_AT, _CLAMP_HIH_AT, _CLAMP_SIZE = 24, 280, 536, 664, 792
_KINDS = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.uint8): 2}
MAX_ADAPT_CHANNELS = 64

# resampling modes (resample.cuh; VT_M_LANCZOS in preprocess.cu)
_M_LINEAR, _M_AREA, _M_BOX, _M_U8, _M_U8_2X, _M_LANCZOS = 0, 1, 2, 3, 4, 5
_DBL_EPS = 2.220446049250313e-16


def _cv_integer_scale(src: int, dst: int) -> tuple[bool, int]:
    """OpenCV's integer area factor test (the CPU's _cv_integer_scale): 1 / (dst / src)
    within DBL_EPSILON of an integer, for a downscale."""
    scale = 1.0 / (dst / src)
    r = math.floor(scale + 0.5)
    return src >= dst and abs(scale - r) < _DBL_EPS, int(r)


def _pre_mode(method: str, box: Sequence[int]) -> tuple[int, int, int, float]:
    """(mode, kx, ky, q) of one image, chosen exactly as the CPU's preprocess_batch does."""
    sh, sw, ch, cw = box[2], box[3], box[6], box[7]
    if method == "bilinear-u8":
        return (_M_U8_2X if sh == 2 * ch and sw == 2 * cw else _M_U8), 0, 0, 0.0
    if method == "lanczos":  # taps computed on the device (vt_pre_lanczos)
        return _M_LANCZOS, 0, 0, 0.0
    if method == "area":
        okx, kx = _cv_integer_scale(sw, cw)
        oky, ky = _cv_integer_scale(sh, ch)
        if okx and oky:
            return _M_BOX, kx, ky, float(np.float32(1) / np.float32(kx * ky))
        return _M_AREA, 0, 0, 0.0
    # bilinear: the CPU's integer-factor shortcut equals the general formula bit for bit
    return _M_LINEAR, 0, 0, 0.0


_PRE_FAMILIES = {"bilinear": "", "area": "_area", "bilinear-u8": "_u8", "lanczos": "_lanczos"}
"""Preprocess kernel of each interpolation method (preprocess.cu, VT_FAM_*)."""
_AREA_MAX8, _BOX_MAXP = 7, 8  # VT_AREA_MAX8 (resample.cuh), VT_BOX_MAXP (preprocess.cu)
_BOX_U32_PIXELS = 16843009
"""VT_BOX_U32_PIXELS (preprocess.cu): the most pixels of a block whose uint8 sum fits the fast
box path's 32-bit sums (255 * 16843009 < 2**32)."""


def _pre_fast_ok(mode: int, kx: int, box: Sequence[int], ky: int = 1) -> bool:
    """Whether the method's fast preprocess kernel takes this image; otherwise the launch
    goes to the generic kernel (vt_preprocess_any_*): area windows wider than 8 columns, box
    blocks wider than 8 or of more than ``_BOX_U32_PIXELS`` pixels (the generic kernel sums
    them in 64 bits)."""
    sw, cw = box[3], box[7]
    if mode == _M_AREA:
        return sw < cw or sw <= _AREA_MAX8 * cw
    if mode == _M_BOX:
        return kx <= _BOX_MAXP and kx * ky <= _BOX_U32_PIXELS
    return True


class _Args:
    """Kernel parameters for cuLaunchKernel, packed into one host buffer: each value (bytes,
    bytearray or a numpy array: the exact bytes of one parameter) at an 8-byte aligned offset;
    ``address`` is the ``void**`` array pointing at them. One buffer and one pointer array per
    launch (numpy's per-value ``.ctypes`` cost ~2 us each: most of a launch's host work)."""

    __slots__ = ("_buffer", "_pointers", "address")

    def __init__(self, *values: bytes | bytearray | np.ndarray) -> None:
        blobs = [v if type(v) is bytes and not len(v) & 7 else _padded(v) for v in values]
        joined = b"".join(blobs) or bytes(8)
        self._buffer = (ctypes.c_char * len(joined)).from_buffer_copy(joined)
        at = ctypes.addressof(self._buffer)
        pointers = []
        for b in blobs:
            pointers.append(at)
            at += len(b)
        self._pointers = (ctypes.c_uint64 * max(1, len(pointers)))(*pointers)
        self.address = ctypes.addressof(self._pointers)


def _padded(value: bytes | bytearray | np.ndarray) -> bytes:
    """A parameter's bytes, zero-padded to a multiple of 8."""
    b = value.tobytes() if isinstance(value, np.ndarray) else bytes(value)
    return b + bytes(-len(b) % 8)


_u64 = struct.Struct("<Q").pack
_i64 = struct.Struct("<q").pack
_f64 = struct.Struct("<d").pack
_i32 = struct.Struct("<i4x").pack
_u32 = struct.Struct("<I4x").pack
"""Kernel parameter bytes of one scalar for _Args (4-byte values padded to 8 bytes)."""


_MIN_THREADS = 1 << 19
"""Threads a launch keeps before its threads take several rows each: about two waves of
resident threads on an H100/H200 (132 SMs x 2048), so that the last wave's tail stays short."""
_MAX_ROWS = 8
_MAX_GRID_Y = 65535


def _grid(
    w: int, h: int, n: int, block: tuple[int, int, int], *, px_per_thread: int = 1
) -> tuple[int, int, int]:
    """Grid of a launch over ``n`` images of up to ``h`` x ``w`` output pixels.

    Each thread takes ``px_per_thread`` adjacent pixels of a row (x) and ``rows`` consecutive
    rows (y), which the kernels derive from the grid (vt_rows_per_thread in common.cuh):
    ``rows`` grows with the launch's size, so that large launches amortise the per-thread
    setup (tap coordinates, tile ranges) while small ones keep every thread busy.
    """
    cols = -(-w // px_per_thread)  # threads along a row
    gx = -(-cols // block[0])
    threads = gx * block[0] * h * n
    rows = max(1, min(_MAX_ROWS, threads // _MIN_THREADS), -(-h // (block[1] * _MAX_GRID_Y)))
    return (gx, -(-h // (block[1] * rows)), n)


class DeviceImage(NamedTuple):
    """A uint8 HWC image (or an alpha plane, ``channels=1``) in device memory.

    ``row_pitch``: bytes from one row to the next (0: ``width * channels``); the pixels of a
    row are adjacent, ``channels`` bytes each.
    """

    ptr: int
    height: int
    width: int
    channels: int = 3
    row_pitch: int = 0

    @property
    def pitch(self) -> int:
        return self.row_pitch or self.width * self.channels


# ----------------------------------------------------------------------------------------------
# Backends: where memory lives and how a launch runs
# ----------------------------------------------------------------------------------------------


class _CudaBackend:
    """The real one: cubins loaded into the device's primary context, cuLaunchKernel."""

    def __init__(self, device: int, cache: str | os.PathLike[str] | None) -> None:
        driver, _, _ = _bindings()
        self.ctx = _Context.get(device)
        self.device = device
        self.arch = normalize_arch(self.ctx.capability)
        archs = supported_archs()
        if self.arch not in archs:
            raise CudaUnavailableError(
                f"GPU {device} ({self.ctx.name}) is {self.arch}, which this NVRTC "
                f"{nvrtc_version()} cannot compile for (it supports {', '.join(archs)}); "
                f"install a newer nvidia-cuda-nvrtc ({INSTALL_HINT})"
            )
        self.modules: dict[str, Any] = {}
        self.functions: dict[str, Any] = {}
        for name in SOURCES:
            cubin = compile_source(name, self.arch, cache=cache).cubin
            image = np.frombuffer(cubin, dtype=np.uint8)
            self.modules[name] = _check(
                driver.cuModuleLoadData(image), f"cuModuleLoadData({name}, {self.arch})"
            )
            for kernel in kernel_names(name):
                self.functions[kernel] = _check(
                    driver.cuModuleGetFunction(self.modules[name], kernel.encode()),
                    f"cuModuleGetFunction({kernel})",
                )

    def activate(self) -> None:
        self.ctx.activate()

    def launch(
        self,
        kernel: str,
        grid: tuple[int, int, int],
        block: tuple[int, int, int],
        args: _Args,
        stream: int,
    ) -> None:
        driver, _, _ = _bindings()
        _check(
            driver.cuLaunchKernel(
                self.functions[kernel], *grid, *block, 0, stream, args.address, 0
            ),
            f"cuLaunchKernel({kernel}, grid={grid}, block={block})",
        )

    def device_buffer(self, nbytes: int) -> Any:
        return DeviceBuffer(nbytes, device=self.device)

    def pinned(self, nbytes: int) -> Any:
        return PinnedBuffer(nbytes, device=self.device)

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None:
        _, _, runtime = _bindings()
        _check(
            runtime.cudaMemcpyAsync(
                dst,
                src.ctypes.data,
                src.nbytes,
                runtime.cudaMemcpyKind.cudaMemcpyHostToDevice,
                stream,
            ),
            "cudaMemcpyAsync (host to device)",
        )

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None:
        _, _, runtime = _bindings()
        _check(
            runtime.cudaMemcpyAsync(
                dst.ctypes.data,
                src,
                dst.nbytes,
                runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                stream,
            ),
            "cudaMemcpyAsync (device to host)",
        )

    def d2d(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        _, _, runtime = _bindings()
        _check(
            runtime.cudaMemcpyAsync(
                dst, src, nbytes, runtime.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream
            ),
            "cudaMemcpyAsync (device to device)",
        )

    def memset(self, dst: int, value: int, nbytes: int, stream: int) -> None:
        _, _, runtime = _bindings()
        _check(runtime.cudaMemsetAsync(dst, value, nbytes, stream), "cudaMemsetAsync")

    def synchronize(self, stream: int) -> None:
        _, _, runtime = _bindings()
        _check(runtime.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def new_stream(self) -> Any:
        # blocking: ordered with the legacy default stream, so DeviceBuffer copies made without
        # a stream (stream=None -> 0) see the results of kernels queued without a stream
        return Stream(self.device, non_blocking=False)

    def close(self) -> None:
        driver, _, _ = _bindings()
        self.functions.clear()
        modules, self.modules = self.modules, {}
        for mod in modules.values():
            with contextlib.suppress(Exception):
                driver.cuModuleUnload(mod)


class _Scratch:
    """Growable staging memory (pinned host + device) of the synchronous numpy methods."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.buffers: dict[str, Any] = {}

    def get(self, key: str, nbytes: int, *, pinned: bool) -> Any:
        buf = self.buffers.get(key)
        if buf is None or buf.nbytes < nbytes:
            if buf is not None:
                buf.close()
                del self.buffers[key]
            size = grown_capacity(nbytes)
            make = self.backend.pinned if pinned else self.backend.device_buffer
            buf = self.buffers[key] = make(size)
        return buf

    def close(self) -> None:
        for buf in self.buffers.values():
            with contextlib.suppress(Exception):
                buf.close()
        self.buffers.clear()


# ----------------------------------------------------------------------------------------------
# The launcher
# ----------------------------------------------------------------------------------------------

_BLOCK = (32, 8, 1)
_SHORTCUT_KERNELS = True
"""Postprocess and adapt launches at 1:1 take their kernels without taps (``*_same_*``), and
postprocess launches at exactly 2x (bilinear) the one with closed-form taps (``*_up2_*``); the
GPU benchmark turns this off for its A/B rows against the general kernels."""
_POST_PX = 4
"""Output pixels per postprocess thread (4 RGB pixels = 3 words; postprocess.cu)."""


def _post_kernel(mode: int, dtype: str, boxes: Sequence[tuple[int, ...]]) -> str:
    """The postprocess kernel of one launch (postprocess.cu). Bilinear and area are separate
    kernels, each with its own registers; a launch whose boxes ((by, bx, bh, bw, top, left,
    ch, cw), batch -> content) are all 1:1 takes the kernel without taps, one whose boxes all
    grow exactly 2x (bilinear) the one with closed-form taps."""
    if _SHORTCUT_KERNELS and all(b[2:4] == b[6:8] for b in boxes):
        return f"vt_postprocess_same_{dtype}"
    if (
        _SHORTCUT_KERNELS
        and mode == _M_LINEAR
        and all(b[6] == 2 * b[2] and b[7] == 2 * b[3] for b in boxes)
    ):
        return f"vt_postprocess_up2_{dtype}"
    return f"vt_postprocess{'_area' if mode == _M_AREA else ''}_{dtype}"


def _ptr_of(fn: str, name: str, value: Any) -> int:
    """A device pointer given as an int, a DeviceBuffer or a __cuda_array_interface__ object."""
    if isinstance(value, DeviceBuffer):
        ptr = value.ptr
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        ptr = int(value)
    elif hasattr(value, "__cuda_array_interface__"):
        ptr = int(value.__cuda_array_interface__["data"][0])
    else:
        raise TypeError(
            f"{fn}: {name} has type {type(value).__name__}; expected a device pointer (int), "
            f"a DeviceBuffer or an object with __cuda_array_interface__"
        )
    if ptr <= 0:
        raise ValueError(f"{fn}: {name} is a null device pointer")
    return ptr


def _check_batch_shape(fn: str, shape: Any, channels: int | None) -> tuple[int, int, int, int]:
    want = "(N, 3, H, W)" if channels == 3 else "(N, C, H, W)"
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 4
        or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in shape)
        or (channels is not None and shape[1] != channels)
    ):
        raise ValueError(f"{fn}: batch_shape is {shape!r}; expected {want} of ints >= 1")
    n, c, h, w = (int(v) for v in shape)
    return n, c, h, w


def _check_strides(fn: str, strides: Any, shape: tuple[int, int, int, int]) -> tuple[int, ...]:
    _, c, h, w = shape
    if strides is None:
        return (c * h * w, h * w, w)
    if (
        not isinstance(strides, (tuple, list))
        or len(strides) != 3
        or not all(isinstance(v, (int, np.integer)) and v >= 0 for v in strides)
    ):
        raise ValueError(
            f"{fn}: batch_strides is {strides!r}; expected 3 element strides (image, channel, "
            f"row), columns adjacent"
        )
    return tuple(int(v) for v in strides)


class GpuKernels:
    """The CUDA kernels on one GPU, with the CPU kernels' semantics (docs/kernels.md).

    ``GpuKernels(device)`` compiles (or loads from the cache) the cubins for the device's
    compute capability and loads them into its primary context; it raises
    :class:`CudaUnavailableError` when cuda-python, the driver or the GPU is missing.

    Two levels of API:

    * ``*_async`` methods take device memory (:class:`DeviceImage`, :class:`DeviceBuffer`,
      ``__cuda_array_interface__`` objects or int pointers) and only queue work on
      ``stream``: None = this object's own :attr:`stream` (a blocking stream: ordered
      with the legacy default stream that copies without a stream use), 0 = the legacy
      default stream, an int handle, a :class:`Stream`, or anything with
      ``__cuda_stream__``. One launch covers up to 32 images.
    * :meth:`preprocess`, :meth:`postprocess`, :meth:`adapt` and :meth:`blend_tiles` take
      and return numpy arrays with the arguments of their ``vetrina.kernels`` namesakes
      (``TilePlan.blend`` for the last; ``np.clip`` for :meth:`clamp`): they upload through
      pinned memory, run on :attr:`stream` (or ``stream``), download and synchronise.

    :meth:`capture` records ``*_async`` launches for cheap replay. Methods may be called from
    any thread (each makes the device's primary context current first).
    """

    def __init__(self, device: int = 0, *, cache: str | os.PathLike[str] | None = None) -> None:
        self._init(_CudaBackend(device, cache))

    def _init(self, backend: Any) -> None:
        self._backend = backend
        self.device: int = backend.device
        self.arch: str = backend.arch
        self.stream = backend.new_stream()
        self._scratch = _Scratch(backend)
        self._lock = threading.Lock()
        self._plan: LaunchPlan | None = None
        self._blend_cache: dict[tuple, tuple] = {}

    @classmethod
    def _with_backend(cls, backend: Any) -> GpuKernels:
        """Construct over another backend (the host emulation used by the CPU-only tests)."""
        self = object.__new__(cls)
        self._init(backend)
        return self

    @property
    def name(self) -> str:
        """The GPU's name (e.g. 'NVIDIA H100 80GB HBM3')."""
        ctx = getattr(self._backend, "ctx", None)
        return ctx.name if ctx is not None else str(getattr(self._backend, "name", "?"))

    def close(self) -> None:
        """Free the staging memory and the stream, unload the kernels."""
        self._scratch.close()
        for tables in self._blend_cache.values():
            with contextlib.suppress(Exception):
                tables[0].close()
        self._blend_cache.clear()
        with contextlib.suppress(Exception):
            self.stream.close()
        self._backend.close()

    def __enter__(self) -> GpuKernels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stream(self, stream: Any) -> int:
        return self.stream.handle if stream is None else _stream_handle(stream)

    def _launch(self, kernel: str, grid: tuple[int, int, int], args: _Args, stream: int) -> None:
        if self._plan is not None:
            self._plan.launches.append((kernel, grid, args, stream))
            return
        self._backend.activate()  # the primary context, current on this thread
        self._backend.launch(kernel, grid, _BLOCK, args, stream)

    @contextlib.contextmanager
    def capture(self) -> Iterator[LaunchPlan]:
        """Record the launches of ``*_async`` calls instead of running them::

            with gk.capture() as plan:
                gk.preprocess_async(images, out, (256, 256))
            plan.launch(stream)  # as often as needed: no validation or packing cost

        The plan keeps the packed parameters (device pointers included): replay it only while
        the memory it names is alive. Not thread-safe with other calls on this object.
        """
        plan = LaunchPlan(self)
        self._plan = plan
        try:
            yield plan
        finally:
            self._plan = None

    # ------------------------------------------------------------------------------------------
    # preprocess
    # ------------------------------------------------------------------------------------------

    def preprocess_async(
        self,
        images: Sequence[DeviceImage],
        out: Any,
        size: tuple[int, int],
        *,
        scale: float | Sequence[float] = 1 / 255,
        offset: float | Sequence[float] = 0.0,
        src_order: str = "RGB",
        dst_order: str = "RGB",
        interpolation: str = "bilinear",
        fit: str = "stretch",
        pad_value: float | Sequence[float] = 0.0,
        dtype: Any = None,
        stream: Any = None,
    ) -> list[Placement]:
        """Queue uint8 device images -> ``out``, a C-contiguous (N, 3, H, W) float32/float16
        device array; returns the :class:`Placement` of every image.

        Arguments and numerics as ``vetrina.kernels.preprocess``.
        """
        from . import _checks as ck
        from .fit import FITS, plan_fit
        from .prepost import INTERPOLATIONS

        fn = "preprocess_async"
        imgs = list(images)
        if not imgs:
            raise ValueError(f"{fn}: images is empty; expected at least one DeviceImage")
        for i, im in enumerate(imgs):
            _check_device_image(fn, f"images[{i}]", im, (1, 3, 4))
        h, w = ck.check_size(fn, "size", size)
        sc = ck.per_channel(fn, "scale", scale)
        of = ck.per_channel(fn, "offset", offset)
        pad = ck.per_channel(fn, "pad_value", pad_value)
        swap = ck.check_order(fn, "src_order", src_order) != ck.check_order(
            fn, "dst_order", dst_order
        )
        method = ck.check_choice(fn, "interpolation", interpolation, INTERPOLATIONS)
        ck.check_choice(fn, "fit", fit, FITS)
        dt = ck.F32 if dtype is None else ck.check_dtype(fn, "dtype", dtype)
        out_ptr = _ptr_of(fn, "out", out)
        handle = self._stream(stream)
        placements = [_plan_fit(plan_fit, (im.height, im.width), (h, w), fit) for im in imgs]
        padv = pad * sc + of  # float32, like the pixels (as the CPU)
        tail = _PRE_TAIL.pack(*sc.tolist(), *of.tolist(), *padv.tolist())
        per_image = 3 * h * w * dt.itemsize
        for start in range(0, len(imgs), MAX_IMAGES_PER_LAUNCH):
            chunk = imgs[start : start + MAX_IMAGES_PER_LAUNCH]
            buf = bytearray(_PRE_SIZE)
            fast, modes = True, set()
            for k, im in enumerate(chunk):
                p = placements[start + k]
                box = p.src_box + p.dst_box
                mode, kx, ky, q = _pre_mode(method, box)
                fast = fast and _pre_fast_ok(mode, kx, box, ky)
                modes.add(mode)
                chans = (0, 0, 0) if im.channels == 1 else ((2, 1, 0) if swap else (0, 1, 2))
                sy, sx, sh, sw, top, left, ch, cw = box
                _PRE_IMAGE.pack_into(
                    buf, k * _PRE_IMAGE.size, im.ptr, im.pitch, im.channels, *chans,
                    sy, sh, top, ch, sx, sw, left, cw, mode, kx, ky, q,
                )  # fmt: skip
            buf[_PRE_TAIL_AT : _PRE_TAIL_AT + _PRE_TAIL.size] = tail
            args = _Args(
                buf, _u64(out_ptr + start * per_image),
                _i32(h), _i32(w),
            )  # fmt: skip
            if not fast:
                family = "_any"
            elif modes == {_M_BOX}:
                family = "_box"  # integer area factors only: the lighter kernel
            else:
                family = _PRE_FAMILIES[method]
                channels = {im.channels for im in chunk}
                if family == "_area" and len(channels) == 1:
                    family += f"_c{channels.pop()}"  # one channel count: no spills (preprocess.cu)
            kernel = f"vt_preprocess{family}_{_short(dt)}"
            self._launch(kernel, _grid(w, h, len(chunk), _BLOCK), args, handle)
        return placements

    def preprocess(
        self,
        images: Sequence[np.ndarray],
        size: tuple[int, int],
        *,
        scale: float | Sequence[float] = 1 / 255,
        offset: float | Sequence[float] = 0.0,
        src_order: str = "RGB",
        dst_order: str = "RGB",
        interpolation: str = "bilinear",
        fit: str = "stretch",
        pad_value: float | Sequence[float] = 0.0,
        dtype: Any = None,
        return_placements: bool = False,
        stream: Any = None,
    ) -> np.ndarray | tuple[np.ndarray, list[Placement]]:
        """numpy uint8 images -> numpy (N, 3, H, W) batch computed on the GPU (synchronous).

        Arguments and result as ``vetrina.kernels.preprocess`` (no ``out``/``num_threads``):
        the images are packed into pinned memory, uploaded in one copy, processed by
        :meth:`preprocess_async` and downloaded.
        """
        from . import _checks as ck

        fn = "preprocess"
        imgs = ck.check_sequence(fn, "images", images)
        if not imgs:
            raise ValueError(f"{fn}: images is empty; expected at least one image")
        views = [ck.check_image(fn, i, img) for i, img in enumerate(imgs)]
        h, w = ck.check_size(fn, "size", size)
        dt = ck.F32 if dtype is None else ck.check_dtype(fn, "dtype", dtype)
        if not isinstance(return_placements, (bool, np.bool_)):
            raise ValueError(f"{fn}: return_placements is {return_placements!r}; expected a bool")
        offsets, total = [], 0
        for v in views:
            offsets.append(total)
            total += _align(v.shape[0] * v.shape[1] * v.shape[2])
        out_nbytes = len(views) * 3 * h * w * dt.itemsize
        handle = self._stream(stream)
        with self._lock:
            self._backend.activate()  # this device's context, also on a new thread
            pin_in = self._scratch.get("pin_in", total, pinned=True)
            dev_in = self._scratch.get("dev_in", total, pinned=False)
            dev_out = self._scratch.get("dev_out", out_nbytes, pinned=False)
            pin_out = self._scratch.get("pin_out", out_nbytes, pinned=True)
            self._backend.synchronize(handle)  # earlier work on the staging buffers is done
            dev_imgs = []
            for v, off in zip(views, offsets, strict=True):
                np.copyto(pin_in.view(v.shape, np.uint8, off), v)
                dev_imgs.append(DeviceImage(dev_in.ptr + off, v.shape[0], v.shape[1], v.shape[2]))
            self._backend.h2d(dev_in.ptr, pin_in.view((total,), np.uint8), handle)
            placements = self.preprocess_async(
                dev_imgs,
                dev_out.ptr,
                (h, w),
                scale=scale,
                offset=offset,
                src_order=src_order,
                dst_order=dst_order,
                interpolation=interpolation,
                fit=fit,
                pad_value=pad_value,
                dtype=dt,
                stream=handle,
            )
            host = pin_out.view((len(views), 3, h, w), dt)
            self._backend.d2h(host, dev_out.ptr, handle)
            self._backend.synchronize(handle)
            result = host.copy()
        return (result, placements) if return_placements else result

    # ------------------------------------------------------------------------------------------
    # postprocess
    # ------------------------------------------------------------------------------------------

    def postprocess_async(
        self,
        batch: Any,
        batch_shape: tuple[int, int, int, int],
        outputs: Sequence[DeviceImage],
        *,
        alphas: Sequence[DeviceImage | None] | None = None,
        scale: float | Sequence[float] = 255.0,
        offset: float | Sequence[float] = 0.0,
        src_order: str = "RGB",
        dst_order: str = "RGB",
        placements: Sequence[Placement] | None = None,
        interpolation: str = "bilinear",
        fill: int | Sequence[int] = 0,
        dtype: Any = np.float32,
        batch_strides: tuple[int, int, int] | None = None,
        stream: Any = None,
    ) -> None:
        """Queue a float32/float16 (N, 3, H, W) device batch -> N uint8 device images.

        ``outputs[i]``: the destination (h, w, 3 or 4) image, whose size is the output size;
        4 channels need ``alphas[i]``, a 1-channel (h, w) device plane copied as channel 3.
        ``dtype``: the batch's; ``batch_strides``: its element strides (image, channel, row),
        default contiguous. Other arguments and numerics as ``vetrina.kernels.postprocess``.
        """
        from . import _checks as ck
        from .fit import check_placement
        from .prepost import POST_INTERPOLATIONS, _check_fill, _inverse_boxes

        fn = "postprocess_async"
        dt = ck.check_dtype(fn, "dtype", dtype)
        shape = _check_batch_shape(fn, batch_shape, 3)
        n, _, big_h, big_w = shape
        strides = _check_strides(fn, batch_strides, shape)
        outs = list(outputs)
        if len(outs) != n:
            raise ValueError(f"{fn}: outputs has {len(outs)} entries; expected {n}")
        alist = [None] * n if alphas is None else list(alphas)
        if len(alist) != n:
            raise ValueError(f"{fn}: alphas has {len(alist)} entries; expected {n}")
        for i, (o, a) in enumerate(zip(outs, alist, strict=True)):
            _check_device_image(fn, f"outputs[{i}]", o, (3, 4))
            if (o.channels == 4) != (a is not None):
                raise ValueError(
                    f"{fn}: outputs[{i}] has {o.channels} channels and alphas[{i}] is "
                    f"{'set' if a is not None else 'None'}; 4 channels go with an alpha plane"
                )
            if a is not None:
                _check_device_image(fn, f"alphas[{i}]", a, (1,))
                if (a.height, a.width) != (o.height, o.width):
                    raise ValueError(
                        f"{fn}: alphas[{i}] is {a.height}x{a.width}; expected the output size "
                        f"{o.height}x{o.width}"
                    )
        plist = None
        if placements is not None:
            plist = ck.check_sequence(fn, "placements", placements)
            if len(plist) != n:
                raise ValueError(f"{fn}: placements has {len(plist)} entries; expected {n}")
            plist = [check_placement(fn, f"placements[{i}]", p) for i, p in enumerate(plist)]
        sc = ck.per_channel(fn, "scale", scale)
        of = ck.per_channel(fn, "offset", offset)
        swap = ck.check_order(fn, "src_order", src_order) != ck.check_order(
            fn, "dst_order", dst_order
        )
        method = ck.check_choice(fn, "interpolation", interpolation, POST_INTERPOLATIONS)
        fills = _check_fill(fn, fill).tolist()
        src = _ptr_of(fn, "batch", batch)
        bc = (2, 1, 0) if swap else (0, 1, 2)
        mode = _M_AREA if method == "area" else _M_LINEAR
        tail = _POST_TAIL.pack(
            *strides, big_h, big_w, *bc, mode, *sc[list(bc)].tolist(), *of[list(bc)].tolist()
        )
        boxes = []
        for i, o in enumerate(outs):
            if plist is None:
                boxes.append((0, 0, big_h, big_w, 0, 0, o.height, o.width))
            else:
                boxes.append(_inverse_boxes(fn, i, plist[i], (big_h, big_w), (o.height, o.width)))
        handle = self._stream(stream)
        for start in range(0, n, MAX_IMAGES_PER_LAUNCH):
            chunk = range(start, min(n, start + MAX_IMAGES_PER_LAUNCH))
            kernel = _post_kernel(mode, _short(dt), [boxes[i] for i in chunk])
            buf = bytearray(_POST_SIZE)
            max_h = max_w = 1
            for k, i in enumerate(chunk):
                o, a = outs[i], alist[i]
                by, bx, bh, bw, top, left, ch, cw = boxes[i]
                _POST_IMAGE.pack_into(
                    buf, k * _POST_IMAGE.size, o.ptr, o.pitch,
                    0 if a is None else a.ptr, 0 if a is None else a.pitch,
                    o.height, o.width, o.channels, *fills, 0,
                    by, bh, top, ch, bx, bw, left, cw,
                )  # fmt: skip
                max_h, max_w = max(max_h, o.height), max(max_w, o.width)
            buf[_POST_TAIL_AT : _POST_TAIL_AT + _POST_TAIL.size] = tail
            args = _Args(buf, _u64(src + start * strides[0] * dt.itemsize))
            grid = _grid(max_w, max_h, len(chunk), _BLOCK, px_per_thread=_POST_PX)
            self._launch(kernel, grid, args, handle)

    def postprocess(
        self,
        batch: np.ndarray,
        sizes: Sequence[tuple[int, int]] | None = None,
        *,
        scale: float | Sequence[float] = 255.0,
        offset: float | Sequence[float] = 0.0,
        src_order: str = "RGB",
        dst_order: str = "RGB",
        alphas: Sequence[np.ndarray | None] | None = None,
        placements: Sequence[Placement] | None = None,
        interpolation: str = "bilinear",
        fill: int | Sequence[int] = 0,
        stream: Any = None,
    ) -> list[np.ndarray]:
        """numpy float32/float16 (N, 3, H, W) batch -> list of uint8 images, on the GPU
        (synchronous); arguments as ``vetrina.kernels.postprocess`` (no ``num_threads``)."""
        from . import _checks as ck
        from .prepost import _check_alphas, _check_targets

        fn = "postprocess"
        batch = ck.check_float_batch(fn, batch)
        dt = batch.dtype
        n, _, big_h, big_w = batch.shape
        plist, targets = _check_targets(fn, batch.shape, sizes, placements)
        alist = _check_alphas(fn, alphas, targets)
        batch_nbytes = batch.size * dt.itemsize
        in_total = _align(batch_nbytes)
        alpha_off = []
        for a in alist:
            alpha_off.append(in_total)
            if a is not None:
                in_total += _align(a.shape[0] * a.shape[1])
        out_off, out_total = [], 0
        for (h, w), a in zip(targets, alist, strict=True):
            out_off.append(out_total)
            out_total += _align(h * w * (3 if a is None else 4))
        handle = self._stream(stream)
        with self._lock:
            self._backend.activate()  # this device's context, also on a new thread
            pin_in = self._scratch.get("pin_in", in_total, pinned=True)
            dev_in = self._scratch.get("dev_in", in_total, pinned=False)
            dev_out = self._scratch.get("dev_out", out_total, pinned=False)
            pin_out = self._scratch.get("pin_out", out_total, pinned=True)
            self._backend.synchronize(handle)
            np.copyto(pin_in.view(batch.shape, dt, 0), batch)
            dev_outs, dev_alphas = [], []
            for i, ((h, w), a) in enumerate(zip(targets, alist, strict=True)):
                dev_outs.append(DeviceImage(dev_out.ptr + out_off[i], h, w, 3 if a is None else 4))
                if a is None:
                    dev_alphas.append(None)
                else:
                    np.copyto(pin_in.view(a.shape, np.uint8, alpha_off[i]), a)
                    dev_alphas.append(DeviceImage(dev_in.ptr + alpha_off[i], h, w, 1))
            self._backend.h2d(dev_in.ptr, pin_in.view((in_total,), np.uint8), handle)
            self.postprocess_async(
                dev_in.ptr,
                (n, 3, big_h, big_w),
                dev_outs,
                alphas=dev_alphas,
                scale=scale,
                offset=offset,
                src_order=src_order,
                dst_order=dst_order,
                placements=plist,
                interpolation=interpolation,
                fill=fill,
                dtype=dt,
                stream=handle,
            )
            host = pin_out.view((out_total,), np.uint8)
            self._backend.d2h(host, dev_out.ptr, handle)
            self._backend.synchronize(handle)
            return [
                host[off : off + h * w * o.channels].reshape(h, w, o.channels).copy()
                for off, (h, w), o in zip(out_off, targets, dev_outs, strict=True)
            ]

    # ------------------------------------------------------------------------------------------
    # adapt
    # ------------------------------------------------------------------------------------------

    def adapt_async(
        self,
        batch: Any,
        batch_shape: tuple[int, int, int, int],
        out: Any,
        size: tuple[int, int] | None = None,
        *,
        scale: float | Sequence[float] = 1.0,
        offset: float | Sequence[float] = 0.0,
        src_order: str = "RGB",
        dst_order: str = "RGB",
        dtype: Any = None,
        interpolation: str = "bilinear",
        batch_dtype: Any = np.float32,
        batch_strides: tuple[int, int, int] | None = None,
        channels: Sequence[int] | None = None,
        stream: Any = None,
    ) -> None:
        """Queue a float32/float16 (N, C, H, W) device batch -> ``out``, a C-contiguous
        (N, C', h, w) float32/float16 device array (``size = (h, w)``, None: keep H, W).

        Arguments and numerics as ``vetrina.kernels.adapt``; ``dtype`` is the output's
        (default: ``batch_dtype``, the input's). ``batch_strides``: the input's element strides
        (image, channel, row). ``channels``: an explicit map (output channel k reads input
        channel ``channels[k]``; C' = its length, up to 64) instead of the identity/RGB<->BGR
        map given by the orders; ``scale``/``offset`` then have one value per output channel.
        """
        from . import _checks as ck
        from .prepost import POST_INTERPOLATIONS

        fn = "adapt_async"
        dt_in = ck.check_dtype(fn, "batch_dtype", batch_dtype)
        dt_out = dt_in if dtype is None else ck.check_dtype(fn, "dtype", dtype)
        shape = _check_batch_shape(fn, batch_shape, None)
        n, c, big_h, big_w = shape
        strides = _check_strides(fn, batch_strides, shape)
        h, w = (big_h, big_w) if size is None else ck.check_size(fn, "size", size)
        if channels is None:
            if c > MAX_ADAPT_CHANNELS:
                raise ValueError(
                    f"{fn}: batch has {c} channels; expected at most {MAX_ADAPT_CHANNELS}"
                )
            chmap = list(range(c))
            swap = ck.check_order(fn, "src_order", src_order) != ck.check_order(
                fn, "dst_order", dst_order
            )
            if swap:
                if c not in (3, 4):
                    raise ValueError(
                        f"{fn}: src_order {src_order!r} != dst_order {dst_order!r} needs 3 or 4 "
                        f"channels; batch has {c}"
                    )
                chmap[0], chmap[2] = 2, 0
        else:
            chmap = list(channels) if isinstance(channels, (list, tuple, np.ndarray)) else []
            if (
                not chmap
                or len(chmap) > MAX_ADAPT_CHANNELS
                or not all(ck.is_int(v) and 0 <= int(v) < c for v in chmap)
            ):
                raise ValueError(
                    f"{fn}: channels is {channels!r}; expected 1..{MAX_ADAPT_CHANNELS} input "
                    f"channel indices in 0..{c - 1}"
                )
        oc = len(chmap)
        sc = ck.per_channel(fn, "scale", scale, oc)
        of = ck.per_channel(fn, "offset", offset, oc)
        method = ck.check_choice(fn, "interpolation", interpolation, POST_INTERPOLATIONS)
        src = _ptr_of(fn, "batch", batch)
        dst = _ptr_of(fn, "out", out)
        if n > 65535:
            raise ValueError(f"{fn}: batch has {n} images; at most 65535 per call")
        buf = bytearray(_ADAPT_SIZE)
        mode = _M_AREA if method == "area" else _M_LINEAR
        _ADAPT_HEAD.pack_into(
            buf, 0, *strides, c, oc, mode, 0, 0, big_h, 0, h, 0, big_w, 0, w
        )  # fmt: skip
        struct.pack_into(f"<{oc}i", buf, _ADAPT_CH_AT, *(int(v) for v in chmap))
        struct.pack_into(f"<{oc}f", buf, _ADAPT_SCALE_AT, *sc.tolist())
        struct.pack_into(f"<{oc}f", buf, _ADAPT_OFFSET_AT, *of.tolist())
        dtypes = f"{_short(dt_in)}_{_short(dt_out)}"
        if _SHORTCUT_KERNELS and (big_h, big_w) == (h, w):  # the identity, in either mode:
            # the kernel without taps
            kernel, grid = f"vt_adapt_same_{dtypes}", _grid(w, h, n, _BLOCK, px_per_thread=4)
        else:  # a kernel per mode (adapt.cu)
            area = "_area" if mode == _M_AREA else ""
            kernel, grid = f"vt_adapt{area}_{dtypes}", _grid(w, h, n, _BLOCK)
        args = _Args(buf, _u64(src), _u64(dst))
        self._launch(kernel, grid, args, self._stream(stream))

    def adapt(
        self,
        batch: np.ndarray,
        size: tuple[int, int] | None = None,
        *,
        scale: float | Sequence[float] = 1.0,
        offset: float | Sequence[float] = 0.0,
        src_order: str = "RGB",
        dst_order: str = "RGB",
        dtype: Any = None,
        interpolation: str = "bilinear",
        stream: Any = None,
    ) -> np.ndarray:
        """numpy float32/float16 (N, C, H, W) -> numpy (N, C, h, w) on the GPU (synchronous);
        arguments as ``vetrina.kernels.adapt`` (no ``out``/``num_threads``)."""
        from . import _checks as ck

        fn = "adapt"
        batch = ck.check_float_batch(fn, batch, channels=None)
        n, c, big_h, big_w = batch.shape
        h, w = (big_h, big_w) if size is None else ck.check_size(fn, "size", size)
        dt_out = batch.dtype if dtype is None else ck.check_dtype(fn, "dtype", dtype)
        in_total = _align(batch.size * batch.itemsize)
        out_nbytes = n * c * h * w * dt_out.itemsize
        handle = self._stream(stream)
        with self._lock:
            self._backend.activate()  # this device's context, also on a new thread
            pin_in = self._scratch.get("pin_in", in_total, pinned=True)
            dev_in = self._scratch.get("dev_in", in_total, pinned=False)
            dev_out = self._scratch.get("dev_out", out_nbytes, pinned=False)
            pin_out = self._scratch.get("pin_out", out_nbytes, pinned=True)
            self._backend.synchronize(handle)
            np.copyto(pin_in.view(batch.shape, batch.dtype, 0), batch)
            self._backend.h2d(dev_in.ptr, pin_in.view((in_total,), np.uint8), handle)
            self.adapt_async(
                dev_in.ptr,
                batch.shape,
                dev_out.ptr,
                (h, w),
                scale=scale,
                offset=offset,
                src_order=src_order,
                dst_order=dst_order,
                dtype=dt_out,
                interpolation=interpolation,
                batch_dtype=batch.dtype,
                stream=handle,
            )
            host = pin_out.view((n, c, h, w), dt_out)
            self._backend.d2h(host, dev_out.ptr, handle)
            self._backend.synchronize(handle)
            return host.copy()

    # ------------------------------------------------------------------------------------------
    # clamp
    # ------------------------------------------------------------------------------------------

    def clamp_async(
        self,
        batch: Any,
        batch_shape: tuple[int, int, int, int],
        lo: float | Sequence[float],
        hi: float | Sequence[float],
        *,
        dtype: Any = np.float32,
        stream: Any = None,
    ) -> None:
        """Queue ``np.clip(batch, lo, hi, out=batch)`` on a C-contiguous float32/float16
        (N, C, H, W) device batch (C up to 64), in place, as ``Handoff.apply`` calls it.

        ``lo``/``hi``: a number (a Python scalar: NumPy rounds it to ``dtype``) or C numbers,
        one per channel (a float32 array broadcast as ``[:, None, None]``); ``lo <= hi`` in
        every channel. NumPy's result bit for bit: NaN stays NaN with its bits, only clamped
        elements are written. A zero equal to a bound of the other sign: scalar bounds keep
        the element (-0 stays -0), per-channel bounds store the bound, as NumPy's loops do
        (NumPy itself deviates for float32 batches of N=1, C=2 per-channel: there it keeps).
        """
        from . import _checks as ck

        fn = "clamp_async"
        dt = ck.check_dtype(fn, "dtype", dtype)
        n, c, h, w = _check_batch_shape(fn, batch_shape, None)
        buf, take = _clamp_params(fn, c, lo, hi, dt)
        ptr = _ptr_of(fn, "batch", batch)
        planes, hw = n * c, h * w
        _CLAMP_HEAD.pack_into(buf, 0, planes, hw, c, take)
        threads = _BLOCK[0] * _BLOCK[1]
        gy = min(planes, _MAX_GRID_Y)  # grid y strides over the planes
        gx = max(1, min(-(-hw // threads), -(-_MIN_THREADS // (threads * gy))))
        args = _Args(buf, _u64(ptr))
        self._launch(f"vt_clamp_{_short(dt)}", (gx, gy, 1), args, self._stream(stream))

    def clamp(
        self,
        batch: np.ndarray,
        lo: float | Sequence[float],
        hi: float | Sequence[float],
        *,
        stream: Any = None,
    ) -> np.ndarray:
        """``np.clip(batch, lo, hi)`` of a numpy float32/float16 (N, C, H, W) batch on the GPU
        (synchronous): a new array, bounds as :meth:`clamp_async`; ``batch`` is not changed."""
        from . import _checks as ck

        fn = "clamp"
        batch = ck.check_float_batch(fn, batch, channels=None)
        _clamp_params(fn, batch.shape[1], lo, hi, batch.dtype)  # any error before copying
        nbytes = batch.size * batch.itemsize
        handle = self._stream(stream)
        with self._lock:
            self._backend.activate()  # this device's context, also on a new thread
            pin = self._scratch.get("pin_in", nbytes, pinned=True)
            dev = self._scratch.get("dev_in", nbytes, pinned=False)
            self._backend.synchronize(handle)
            host = pin.view(batch.shape, batch.dtype, 0)
            np.copyto(host, batch)
            self._backend.h2d(dev.ptr, host, handle)
            self.clamp_async(dev.ptr, batch.shape, lo, hi, dtype=batch.dtype, stream=handle)
            self._backend.d2h(host, dev.ptr, handle)  # stream order: after the upload
            self._backend.synchronize(handle)
            return host.copy()

    # ------------------------------------------------------------------------------------------
    # tiles
    # ------------------------------------------------------------------------------------------

    def _blend_tables(self, plan: TilePlan, scale: int) -> Any:
        """Device copy of the plan's float32 weights (TilePlan.weights) and scaled origins,
        uploaded once per (plan geometry, scale) and kept."""
        key = (plan.ys, plan.xs, plan.tile_hw, scale)
        cache = self._blend_cache
        hit = cache.get(key)
        if hit is not None:
            return hit
        wys, wxs = plan.weights(scale)
        host = np.concatenate(
            [
                np.concatenate(wys).astype(np.float32).view(np.uint8),
                np.concatenate(wxs).astype(np.float32).view(np.uint8),
                (np.array(plan.ys, dtype=np.int32) * scale).view(np.uint8),
                (np.array(plan.xs, dtype=np.int32) * scale).view(np.uint8),
            ]
        )
        buf = self._backend.device_buffer(_align(host.nbytes))
        handle = self.stream.handle
        self._backend.activate()
        self._backend.h2d(buf.ptr, host, handle)
        self._backend.synchronize(handle)  # usable from any stream from now on
        th, tw = plan.tile_hw[0] * scale, plan.tile_hw[1] * scale
        ny, nx = len(plan.ys), len(plan.xs)
        wy = buf.ptr
        wx = wy + 4 * ny * th
        ys = wx + 4 * nx * tw
        xs = ys + 4 * ny
        cache[key] = (buf, wy, wx, ys, xs)
        if len(cache) > 64:  # drop the oldest geometry (its memory is freed with it)
            old = cache.pop(next(iter(cache)))
            old[0].close()
        return cache[key]

    def blend_tiles_async(
        self,
        plan: TilePlan,
        tiles: Any,
        out: Any,
        *,
        scale: int = 1,
        channels: int | None = None,
        dtype: Any = np.float32,
        layout: str = "hwc",
        stream: Any = None,
    ) -> None:
        """Queue the feathered blend of ``len(plan)`` processed tiles in device memory into
        ``out``, as ``TilePlan.blend`` (same weights, sums and rounding).

        ``layout="hwc"``: ``tiles`` is a C-contiguous (T, th, tw[, C]) array (the tiles of
        :meth:`TilePlan.split`, processed, stacked) and ``out`` (H, W[, C]);
        ``layout="chw"``: ``tiles`` is a (T, C, th, tw) batch (a model's NCHW output) and
        ``out`` (C, H, W). Sizes are the plan's times ``scale``; ``channels`` None means 2-D
        tiles (hwc) or 1 channel; ``dtype``: uint8, float32 or float16, of tiles and output.
        """
        from . import _checks as ck
        from .tiling import MAX_SCALE, TilePlan

        fn = "blend_tiles_async"
        if not isinstance(plan, TilePlan):
            raise TypeError(f"{fn}: plan has type {type(plan).__name__}; expected a TilePlan")
        if not ck.is_int(scale) or not 1 <= int(scale) <= MAX_SCALE:
            raise ValueError(f"{fn}: scale is {scale!r}; expected an int in 1..{MAX_SCALE}")
        s = int(scale)
        try:
            kind = _KINDS[np.dtype(dtype)]
        except (TypeError, KeyError):
            raise ValueError(
                f"{fn}: dtype is {dtype!r}; expected uint8, float32 or float16"
            ) from None
        if channels is not None and not (ck.is_int(channels) and 1 <= channels <= 1 << 16):
            raise ValueError(f"{fn}: channels is {channels!r}; expected None or an int >= 1")
        if layout not in ("hwc", "chw"):
            raise ValueError(f"{fn}: layout is {layout!r}; expected 'hwc' or 'chw'")
        c = 1 if channels is None else int(channels)
        th, tw = plan.tile_hw[0] * s, plan.tile_hw[1] * s
        oh, ow = plan.image_hw[0] * s, plan.image_hw[1] * s
        if layout == "hwc":
            tstr = (th * tw * c, tw * c, c, 1)
            ostr = (ow * c, c, 1)
        else:
            tstr = (c * th * tw, tw, 1, th * tw)
            ostr = (ow, 1, oh * ow)
        src = _ptr_of(fn, "tiles", tiles)
        dst = _ptr_of(fn, "out", out)
        _, wy, wx, ys, xs = self._blend_tables(plan, s)
        buf = _BLEND.pack(
            src, dst, wy, wx, ys, xs, *tstr, *ostr,
            len(plan.ys), len(plan.xs), th, tw, oh, ow, c, kind, kind,
        )  # fmt: skip
        args = _Args(buf)
        name = "vt_tile_blend_" + ("f32", "f16", "u8")[kind]
        self._launch(name, _grid(ow, oh, 1, _BLOCK), args, self._stream(stream))

    def blend_tiles(
        self, plan: TilePlan, tiles: Sequence[np.ndarray], scale: int = 1, *, stream: Any = None
    ) -> np.ndarray:
        """``plan.blend(tiles, scale)`` on the GPU (synchronous): numpy tiles (each
        ``scale * tile_hw`` [+ channels], uint8/float32/float16) -> the blended image."""
        from . import _checks as ck
        from .tiling import MAX_SCALE, TilePlan

        fn = "blend_tiles"
        if not isinstance(plan, TilePlan):
            raise TypeError(f"{fn}: plan has type {type(plan).__name__}; expected a TilePlan")
        if not ck.is_int(scale) or not 1 <= int(scale) <= MAX_SCALE:
            raise ValueError(f"{fn}: scale is {scale!r}; expected an int in 1..{MAX_SCALE}")
        seq = ck.check_sequence(fn, "tiles", tiles)
        if len(seq) != len(plan):
            raise ValueError(f"{fn}: tiles has {len(seq)} entries; expected {len(plan)}")
        s = int(scale)
        want = (plan.tile_hw[0] * s, plan.tile_hw[1] * s)
        first = seq[0]
        for i, t in enumerate(seq):
            if not isinstance(t, np.ndarray):
                raise TypeError(f"{fn}: tiles[{i}] has type {type(t).__name__}; expected an array")
            if t.dtype not in _KINDS or t.ndim not in (2, 3) or t.shape[:2] != want:
                raise ValueError(
                    f"{fn}: tiles[{i}] is {t.dtype} {t.shape}; expected uint8, float32 or "
                    f"float16 of {want} (+ channels) = tile size {plan.tile_hw} x scale {scale}"
                )
            if t.dtype != first.dtype or t.shape != first.shape:
                raise ValueError(
                    f"{fn}: tiles[{i}] is {t.dtype} {t.shape} but tiles[0] is "
                    f"{first.dtype} {first.shape}; expected one dtype and shape"
                )
        channels = first.shape[2] if first.ndim == 3 else None
        out_shape = (plan.image_hw[0] * s, plan.image_hw[1] * s, *first.shape[2:])
        in_nbytes = len(seq) * first.nbytes
        out_nbytes = math.prod(out_shape) * first.itemsize
        handle = self._stream(stream)
        with self._lock:
            self._backend.activate()  # this device's context, also on a new thread
            pin_in = self._scratch.get("pin_in", in_nbytes, pinned=True)
            dev_in = self._scratch.get("dev_in", in_nbytes, pinned=False)
            dev_out = self._scratch.get("dev_out", out_nbytes, pinned=False)
            pin_out = self._scratch.get("pin_out", out_nbytes, pinned=True)
            self._backend.synchronize(handle)
            stacked = pin_in.view((len(seq), *first.shape), first.dtype)
            for i, t in enumerate(seq):
                np.copyto(stacked[i], t)
            self._backend.h2d(dev_in.ptr, pin_in.view((in_nbytes,), np.uint8), handle)
            self.blend_tiles_async(
                plan, dev_in.ptr, dev_out.ptr, scale=s, channels=channels, dtype=first.dtype,
                stream=handle,
            )  # fmt: skip
            host = pin_out.view(out_shape, first.dtype)
            self._backend.d2h(host, dev_out.ptr, handle)
            self._backend.synchronize(handle)
            return host.copy()


class LaunchPlan:
    """Launches recorded by :meth:`GpuKernels.capture`, replayed by :meth:`launch`."""

    def __init__(self, kernels: GpuKernels) -> None:
        self._kernels = kernels
        self.launches: list[tuple[str, tuple[int, int, int], _Args, int]] = []

    def launch(self, stream: Any = ...) -> None:
        """Queue every recorded launch, on ``stream`` (default: each launch's own stream)."""
        backend = self._kernels._backend
        backend.activate()
        for kernel, grid, args, recorded in self.launches:
            handle = recorded if stream is ... else self._kernels._stream(stream)
            backend.launch(kernel, grid, _BLOCK, args, handle)


@functools.lru_cache(maxsize=4096)
def _plan_fit(
    plan_fit: Callable[..., Placement], src_hw: tuple[int, int], dst_hw: tuple[int, int], fit: str
) -> Placement:
    """``vetrina.kernels.plan_fit``, memoised (Placements are immutable): the CPU's placement
    for the same sizes, without re-validating it on every call."""
    return plan_fit(src_hw, dst_hw, fit)


def _clamp_params(fn: str, c: int, lo: Any, hi: Any, dt: np.dtype) -> tuple[bytearray, int]:
    """(the VtClamp block of clamp.cu with the bounds filled in, its ``take`` flag); the head
    (planes, hw, c, take) is packed by the caller.

    As ``np.clip(batch, lo, hi)`` where a sequence is a float32 array broadcast as
    ``[:, None, None]`` (Handoff.apply): NumPy's promotion picks the comparison bounds (two
    Python numbers and a float16 batch: the numbers rounded straight to float16 from float64;
    otherwise float32, a clamped float16 element getting the bound rounded to float16), and
    NumPy's loop decides what a value equal to a bound becomes (``take``; clamp.cu): it stays
    when the bounds are the same for the whole batch (scalars, or one channel), the bound
    otherwise (``lo`` then takes ``hi``'s bits where they are equal, as np.clip's min(max())).
    """
    from . import _checks as ck

    if c > MAX_ADAPT_CHANNELS:
        raise ValueError(f"{fn}: batch has {c} channels; expected at most {MAX_ADAPT_CHANNELS}")
    lo32 = ck.per_channel(fn, "lo", lo, c)  # finite float32, one per channel
    hi32 = ck.per_channel(fn, "hi", hi, c)
    scalars = np.ndim(lo) == 0 and np.ndim(hi) == 0
    bad = np.flatnonzero(lo32 > hi32)
    if bad.size:
        k = int(bad[0])
        at = "" if scalars else f"[{k}]"
        raise ValueError(
            f"{fn}: lo{at} = {float(lo32[k])!r} > hi{at} = {float(hi32[k])!r}; "
            f"expected lo <= hi in every channel (swap the bounds)"
        )
    take = int(not scalars and c > 1)
    with np.errstate(over="ignore"):  # float16: bounds beyond 65504 are ±inf, as in NumPy
        if scalars and dt == np.float16:
            lo16 = np.full(c, float(lo)).astype(np.float16)
            hi16 = np.full(c, float(hi)).astype(np.float16)
            lo32, hi32 = lo16.astype(np.float32), hi16.astype(np.float32)  # exact
        else:
            if take:
                lo32 = np.where(lo32 == hi32, hi32, lo32)
            lo16, hi16 = lo32.astype(np.float16), hi32.astype(np.float16)
    buf = bytearray(_CLAMP_SIZE)
    struct.pack_into(f"<{c}f", buf, _CLAMP_LO_AT, *lo32.tolist())
    struct.pack_into(f"<{c}f", buf, _CLAMP_HI_AT, *hi32.tolist())
    struct.pack_into(f"<{c}H", buf, _CLAMP_LOH_AT, *lo16.view(np.uint16).tolist())
    struct.pack_into(f"<{c}H", buf, _CLAMP_HIH_AT, *hi16.view(np.uint16).tolist())
    return buf, take


def _short(dt: np.dtype) -> str:
    return "f32" if dt == np.float32 else "f16"


def _check_device_image(fn: str, name: str, im: Any, channels: tuple[int, ...]) -> None:
    if not isinstance(im, DeviceImage):
        raise TypeError(f"{fn}: {name} has type {type(im).__name__}; expected a DeviceImage")
    if not (isinstance(im.ptr, (int, np.integer)) and im.ptr > 0):
        raise ValueError(f"{fn}: {name}.ptr is {im.ptr!r}; expected a device pointer")
    from ._checks import MAX_IMAGE_SIZE

    if not (1 <= im.height <= MAX_IMAGE_SIZE and 1 <= im.width <= MAX_IMAGE_SIZE):
        raise ValueError(
            f"{fn}: {name} is {im.height}x{im.width}; expected a non-empty image of at most "
            f"{MAX_IMAGE_SIZE} x {MAX_IMAGE_SIZE} (MAX_IMAGE_SIZE)"
        )
    if im.channels not in channels:
        raise ValueError(
            f"{fn}: {name} has {im.channels} channels; expected "
            f"{' or '.join(str(c) for c in channels)}"
        )
    if im.row_pitch and im.row_pitch < im.width * im.channels:
        raise ValueError(
            f"{fn}: {name}.row_pitch is {im.row_pitch}; expected 0 or >= width * channels "
            f"({im.width * im.channels})"
        )
