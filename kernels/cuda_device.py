"""CUDA devices (primary contexts), streams, events, device and page-locked host memory.

Thin owners of cuda.bindings handles with the checks and messages vetrina's GPU code shares:
asking for a GPU that is not there raises :class:`CudaUnavailableError`, never a CPU fallback.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import threading
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

from .cuda_api import CudaUnavailableError, _bindings, _check, _err_name, _handle

ALIGNMENT = 256
"""Alignment of device allocations and of every image in the staging buffers."""


def gpu_unavailable_reason() -> str | None:
    """None when at least one CUDA GPU is usable, else why not (for messages and test skips)."""
    try:
        _, _, runtime = _bindings()
    except CudaUnavailableError as exc:
        return str(exc)
    try:
        err, count = runtime.cudaGetDeviceCount()
    except Exception as exc:  # the driver library cannot even be loaded
        return f"no NVIDIA driver: {exc}"
    if int(err) != 0:
        return f"no usable CUDA GPU: cudaGetDeviceCount returned {_err_name(err)}"
    if count < 1:
        return "no CUDA GPU is visible (cudaGetDeviceCount returned 0)"
    return None


def device_count() -> int:
    """Number of visible CUDA GPUs; 0 without a driver or GPU (never raises for that)."""
    if gpu_unavailable_reason() is not None:
        return 0
    _, _, runtime = _bindings()
    return int(runtime.cudaGetDeviceCount()[1])


class _Context:
    """The primary context of one device, retained for the life of the process."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _all: ClassVar[dict[int, _Context]] = {}

    def __init__(self, device: int) -> None:
        driver, _, runtime = _bindings()
        self.device = device
        _check(driver.cuInit(0), "cuInit")
        self.cu_device = _check(driver.cuDeviceGet(device), f"cuDeviceGet({device})")
        self.ctx = _check(
            driver.cuDevicePrimaryCtxRetain(self.cu_device), "cuDevicePrimaryCtxRetain"
        )
        self.activate()
        attr = runtime.cudaDeviceAttr
        major = _check(
            runtime.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMajor, device),
            "cudaDeviceGetAttribute",
        )
        minor = _check(
            runtime.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMinor, device),
            "cudaDeviceGetAttribute",
        )
        self.capability = (int(major), int(minor))
        raw = _check(driver.cuDeviceGetName(256, self.cu_device), "cuDeviceGetName")
        self.name = bytes(raw).split(b"\0", 1)[0].decode(errors="replace").strip()

    def activate(self) -> None:
        """Make this device's primary context current on the calling thread."""
        driver, _, runtime = _bindings()
        _check(driver.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")
        _check(runtime.cudaSetDevice(self.device), "cudaSetDevice")

    @classmethod
    def get(cls, device: int) -> _Context:
        if not isinstance(device, int) or isinstance(device, bool) or device < 0:
            raise ValueError(f"device is {device!r}; expected a CUDA device ordinal (int >= 0)")
        with cls._lock:
            ctx = cls._all.get(device)
            if ctx is None:
                reason = gpu_unavailable_reason()
                if reason is not None:
                    raise CudaUnavailableError(
                        f"a CUDA GPU was asked for (device {device}) but {reason}; vetrina "
                        f"never falls back to the CPU silently: use the CPU kernels "
                        f"(vetrina.kernels) instead"
                    )
                count = device_count()
                if device >= count:
                    raise CudaUnavailableError(
                        f"CUDA device {device} was asked for but only {count} GPU(s) are "
                        f"visible (ordinals 0..{count - 1})"
                    )
                ctx = cls._all[device] = _Context(device)
            else:
                ctx.activate()
            return ctx


def _stream_handle(stream: Any) -> int:
    """int handle of a stream given as None/int (0 = legacy default stream), a :class:`Stream`,
    an object with ``__cuda_stream__()`` (cuda.core), ``cuda_stream`` (PyTorch) or ``ptr``
    (CuPy), or a cuda.bindings stream."""
    if stream is None:
        return 0
    if isinstance(stream, Stream):
        return stream.handle
    if isinstance(stream, (int, np.integer)) and not isinstance(stream, bool):
        if int(stream) < 0:
            raise ValueError(f"stream is {stream!r}; expected a CUDA stream handle")
        return int(stream)
    protocol = getattr(stream, "__cuda_stream__", None)
    if callable(protocol):
        return int(protocol()[1])
    for attr in ("cuda_stream", "ptr"):  # PyTorch, CuPy
        handle = getattr(stream, attr, None)
        if isinstance(handle, int) and not isinstance(handle, bool):
            return handle
    if type(stream).__module__.startswith("cuda."):  # a cuda.bindings stream object
        with contextlib.suppress(TypeError, ValueError):
            return _handle(stream)
    raise TypeError(
        f"stream has type {type(stream).__name__}; expected None, an int handle, a "
        f"vetrina Stream or an object with __cuda_stream__"
    )


class _Released:
    """Resources closed by ``close()``: at the end of a ``with`` block, and when collected
    (errors then ignored: the interpreter may be shutting down)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


_R = TypeVar("_R", bound=_Released)


class Stream(_Released):
    """A CUDA stream (non-blocking with respect to the legacy default stream by default)."""

    def __init__(self, device: int = 0, *, non_blocking: bool = True) -> None:
        _, _, runtime = _bindings()
        self._ctx = _Context.get(device)
        flags = runtime.cudaStreamNonBlocking if non_blocking else runtime.cudaStreamDefault
        self._obj = _check(runtime.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags")
        self.handle: int = _handle(self._obj)
        self.device = device

    def synchronize(self) -> None:
        """Wait until everything queued on the stream has run."""
        _, _, runtime = _bindings()
        _check(runtime.cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        """Destroy the stream (work already queued still runs)."""
        if self._obj is not None:
            _, _, runtime = _bindings()
            obj, self._obj = self._obj, None
            self._ctx.activate()
            _check(runtime.cudaStreamDestroy(obj), "cudaStreamDestroy")

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.handle)

    def __int__(self) -> int:
        return self.handle

    def __repr__(self) -> str:
        return f"Stream(device={self.device}, handle=0x{self.handle:x})"


class Event(_Released):
    """A CUDA event for timing: ``record(stream)``, then ``end.elapsed_ms(start)``."""

    def __init__(self, device: int = 0) -> None:
        _, _, runtime = _bindings()
        self._ctx = _Context.get(device)
        self._obj = _check(runtime.cudaEventCreate(), "cudaEventCreate")

    def record(self, stream: Any = None) -> None:
        _, _, runtime = _bindings()
        _check(runtime.cudaEventRecord(self._obj, _stream_handle(stream)), "cudaEventRecord")

    def synchronize(self) -> None:
        _, _, runtime = _bindings()
        _check(runtime.cudaEventSynchronize(self._obj), "cudaEventSynchronize")

    def elapsed_ms(self, start: Event) -> float:
        """Milliseconds from ``start`` to this event (both recorded and complete)."""
        _, _, runtime = _bindings()
        self.synchronize()
        return float(
            _check(runtime.cudaEventElapsedTime(start._obj, self._obj), "cudaEventElapsedTime")
        )

    def close(self) -> None:
        if self._obj is not None:
            _, _, runtime = _bindings()
            obj, self._obj = self._obj, None
            _check(runtime.cudaEventDestroy(obj), "cudaEventDestroy")


def _as_dtype(dtype: Any) -> np.dtype:
    return np.dtype(dtype)


class DeviceBuffer(_Released):
    """Device memory from ``cudaMalloc`` (256-byte aligned), with an optional array view.

    ``ptr`` and ``nbytes`` describe the allocation; ``shape``/``dtype`` (default: ``nbytes``
    uint8 values) describe it through ``__cuda_array_interface__`` for CuPy, PyTorch or
    Numba. Freed by :meth:`close`, by ``with``, or when garbage collected.
    """

    def __init__(
        self,
        nbytes: int,
        *,
        device: int = 0,
        shape: Sequence[int] | None = None,
        dtype: Any = np.uint8,
    ) -> None:
        if not isinstance(nbytes, (int, np.integer)) or isinstance(nbytes, bool) or nbytes < 1:
            raise ValueError(f"DeviceBuffer: nbytes is {nbytes!r}; expected an int >= 1")
        _, _, runtime = _bindings()
        self._ctx = _Context.get(device)
        self.device = device
        self.nbytes = int(nbytes)
        self._owner: DeviceBuffer | None = None
        self.ptr: int = _handle(_check(runtime.cudaMalloc(self.nbytes), f"cudaMalloc({nbytes})"))
        self._set_view(shape, dtype)

    def _set_view(self, shape: Sequence[int] | None, dtype: Any) -> None:
        dt = _as_dtype(dtype)
        shp = (self.nbytes // dt.itemsize,) if shape is None else tuple(int(s) for s in shape)
        need = math.prod(shp) * dt.itemsize
        if need > self.nbytes or any(s < 0 for s in shp):
            raise ValueError(
                f"DeviceBuffer: shape {shp} of {dt} needs {need} bytes; the buffer has "
                f"{self.nbytes}"
            )
        self.shape, self.dtype = shp, dt

    @classmethod
    def empty(
        cls, shape: Sequence[int], dtype: Any = np.float32, *, device: int = 0
    ) -> DeviceBuffer:
        """An uninitialised device array of ``shape`` and ``dtype``."""
        dt = _as_dtype(dtype)
        shp = tuple(int(s) for s in shape)
        return cls(max(1, math.prod(shp) * dt.itemsize), device=device, shape=shp, dtype=dt)

    def view(self, shape: Sequence[int], dtype: Any = np.uint8, offset: int = 0) -> DeviceBuffer:
        """A non-owning view of ``shape``/``dtype`` at byte ``offset`` (keeps this alive)."""
        dt = _as_dtype(dtype)
        if offset < 0 or offset % dt.itemsize:
            raise ValueError(f"DeviceBuffer.view: offset {offset} is not a multiple of {dt}")
        v = object.__new__(DeviceBuffer)
        v._ctx, v.device, v._owner = self._ctx, self.device, self
        v.ptr, v.nbytes = self.ptr + offset, self.nbytes - offset
        v._set_view(shape, dt)
        return v

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self.ptr, False),
            "strides": None,
            "version": 3,
        }

    def copy_from_host(self, src: np.ndarray, *, stream: Any = None, offset: int = 0) -> None:
        """Queue a copy of ``src`` (any layout; made C-contiguous) to byte ``offset``.

        Asynchronous on ``stream``. From pinned memory (:class:`PinnedBuffer`) keep ``src``
        unchanged until the stream reaches this point; from pageable memory CUDA stages the
        data before returning.
        """
        _, _, runtime = _bindings()
        src = np.ascontiguousarray(src)
        if offset < 0 or offset + src.nbytes > self.nbytes:
            raise ValueError(
                f"DeviceBuffer.copy_from_host: {src.nbytes} bytes at offset {offset} do not "
                f"fit {self.nbytes} bytes"
            )
        if src.nbytes == 0:
            return
        self._ctx.activate()
        _check(
            runtime.cudaMemcpyAsync(
                self.ptr + offset,
                src.ctypes.data,
                src.nbytes,
                runtime.cudaMemcpyKind.cudaMemcpyHostToDevice,
                _stream_handle(stream),
            ),
            "cudaMemcpyAsync (host to device)",
        )

    def copy_to_host(
        self, out: np.ndarray | None = None, *, stream: Any = None, offset: int = 0
    ) -> np.ndarray:
        """Copy to the host. Without ``out``: a new array of this buffer's shape/dtype, the
        stream synchronised. With ``out`` (C-contiguous, e.g. a pinned view): queued on
        ``stream`` and returned at once (synchronise before reading it)."""
        _, _, runtime = _bindings()
        sync = out is None
        if out is None:
            out = np.empty(self.shape, dtype=self.dtype)
        if not (isinstance(out, np.ndarray) and out.flags.c_contiguous and out.flags.writeable):
            raise ValueError(
                "DeviceBuffer.copy_to_host: out must be a writeable C-contiguous array"
            )
        if offset < 0 or offset + out.nbytes > self.nbytes:
            raise ValueError(
                f"DeviceBuffer.copy_to_host: {out.nbytes} bytes at offset {offset} exceed "
                f"{self.nbytes} bytes"
            )
        if out.nbytes:
            self._ctx.activate()
            handle = _stream_handle(stream)
            _check(
                runtime.cudaMemcpyAsync(
                    out.ctypes.data,
                    self.ptr + offset,
                    out.nbytes,
                    runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                    handle,
                ),
                "cudaMemcpyAsync (device to host)",
            )
            if sync:
                _check(runtime.cudaStreamSynchronize(handle), "cudaStreamSynchronize")
        return out

    def fill_bytes(self, value: int = 0, *, stream: Any = None) -> None:
        """Queue a memset of every byte to ``value``."""
        _, _, runtime = _bindings()
        self._ctx.activate()
        _check(
            runtime.cudaMemsetAsync(self.ptr, int(value), self.nbytes, _stream_handle(stream)),
            "cudaMemsetAsync",
        )

    def close(self) -> None:
        """Free the memory (waits for the device, like cudaFree). Views only drop their
        reference."""
        if self._owner is not None:
            self._owner = None
            self.ptr = 0
            return
        if self.ptr:
            _, _, runtime = _bindings()
            ptr, self.ptr = self.ptr, 0
            self._ctx.activate()
            _check(runtime.cudaFree(ptr), "cudaFree")

    @property
    def closed(self) -> bool:
        return self.ptr == 0

    def __repr__(self) -> str:
        return (
            f"DeviceBuffer(ptr=0x{self.ptr:x}, nbytes={self.nbytes}, shape={self.shape}, "
            f"dtype={self.dtype}, device={self.device})"
        )


class PinnedBuffer(_Released):
    """Page-locked host memory from ``cudaMallocHost``; ``array`` is a uint8 numpy view and
    :meth:`view` gives typed views. Views must not be used after :meth:`close`."""

    def __init__(self, nbytes: int, *, device: int = 0) -> None:
        if not isinstance(nbytes, (int, np.integer)) or isinstance(nbytes, bool) or nbytes < 1:
            raise ValueError(f"PinnedBuffer: nbytes is {nbytes!r}; expected an int >= 1")
        _, _, runtime = _bindings()
        self._ctx = _Context.get(device)
        self.nbytes = int(nbytes)
        self.ptr: int = _handle(
            _check(runtime.cudaMallocHost(self.nbytes), f"cudaMallocHost({nbytes})")
        )
        self.array: np.ndarray = np.ctypeslib.as_array(
            (ctypes.c_uint8 * self.nbytes).from_address(self.ptr)
        )

    def view(self, shape: Sequence[int], dtype: Any = np.uint8, offset: int = 0) -> np.ndarray:
        """A C-contiguous numpy view of ``shape``/``dtype`` starting at byte ``offset``."""
        dt = _as_dtype(dtype)
        shp = tuple(int(s) for s in shape)
        n = math.prod(shp) * dt.itemsize
        if offset < 0 or offset + n > self.nbytes or offset % dt.itemsize:
            raise ValueError(
                f"PinnedBuffer.view: {shp} of {dt} at offset {offset} does not fit "
                f"{self.nbytes} bytes"
            )
        return self.array[offset : offset + n].view(dt).reshape(shp)

    def close(self) -> None:
        if self.ptr:
            _, _, runtime = _bindings()
            ptr, self.ptr = self.ptr, 0
            self.array = np.empty(0, dtype=np.uint8)
            _check(runtime.cudaFreeHost(ptr), "cudaFreeHost")


def grown_capacity(nbytes: int) -> int:
    """The size a reused buffer grows to for ``nbytes``: the next power of two, at least
    :data:`ALIGNMENT` (few regrowths while sizes vary, at most 2x the memory)."""
    return max(ALIGNMENT, 1 << max(0, int(nbytes - 1).bit_length()))


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT
