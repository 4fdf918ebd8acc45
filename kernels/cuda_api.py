"""cuda-python (``cuda.bindings``) imported lazily, its result codes checked, and the errors
every CUDA part of vetrina raises.

Importing this module imports no CUDA library; :func:`_bindings` imports ``cuda.bindings`` on
first use and a missing package raises :class:`CudaUnavailableError` naming the extra to
install.
"""

from __future__ import annotations

from typing import Any

INSTALL_HINT = "pip install 'vetrina[gpu]'"


class CudaUnavailableError(RuntimeError):
    """cuda-python, NVRTC, the NVIDIA driver or the requested GPU is not available."""


class CudaError(RuntimeError):
    """A CUDA runtime, driver or NVRTC call failed."""


class CompileError(RuntimeError):
    """NVRTC rejected a kernel source; ``log`` holds NVRTC's compile log."""

    def __init__(self, message: str, log: str) -> None:
        super().__init__(message)
        self.log = log


def _bindings() -> tuple[Any, Any, Any]:
    """(driver, nvrtc, runtime) modules of cuda.bindings; a clear error when missing."""
    try:
        from cuda.bindings import driver, nvrtc, runtime
    except ImportError as exc:
        raise CudaUnavailableError(
            f"vetrina's CUDA kernels need cuda-python (the cuda-bindings package, 12.6.1 or "
            f"newer) and NVRTC (nvidia-cuda-nvrtc): {INSTALL_HINT} ({exc})"
        ) from exc
    return driver, nvrtc, runtime


def _err_name(err: Any) -> str:
    return getattr(err, "name", None) or str(err)


def _check(result: Any, what: str) -> Any:
    """Unpack a cuda.bindings ``(err, *values)`` result; raise :class:`CudaError` on failure."""
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if int(err) != 0:
        raise CudaError(f"{what} failed: {_err_name(err)}{_err_detail(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _err_detail(err: Any) -> str:
    driver, _, runtime = _bindings()
    try:
        if isinstance(err, runtime.cudaError_t):
            text = runtime.cudaGetErrorString(err)[1]
        elif isinstance(err, driver.CUresult):
            text = driver.cuGetErrorString(err)[1]
        else:
            return ""
    except Exception:  # the driver library may be missing: the name is enough
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return f" ({text})" if text else ""


def _handle(obj: Any) -> int:
    """The integer value of a cuda.bindings handle (stream, event, pointer)."""
    if isinstance(obj, int):
        return obj
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:  # cuda-bindings < 13
        return int(obj)
    try:
        return int(get_cuda_native_handle(obj))
    except (TypeError, ValueError):
        return int(obj)
