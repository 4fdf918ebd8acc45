"""Argument validation shared by the vetrina.kernels wrappers.

Every check raises ``ValueError`` (``TypeError`` for things that are not arrays or sequences
at all) whose message starts with the function name and names the argument, the value and
what is expected. Nothing here touches pixel data.
"""

from __future__ import annotations

import functools
import math
import numbers
import struct
from collections.abc import Sequence

import numpy as np

MAX_SIZE = 16384
"""Largest output height or width accepted by the kernels."""
MAX_IMAGE_SIZE = 1 << 20
"""Largest input image height or width (1048576) accepted by the kernels, CPU and GPU alike:
far inside the int32 row, column and byte-offset arithmetic of the kernels (the CUDA kernels
index columns times channels, and Lanczos windows up to 3x the source length, in int32)."""
MAX_THREADS = 1024
"""Largest ``num_threads`` accepted."""
MAX_CHANNELS = 64
"""Largest channel count of an :func:`~vetrina.kernels.adapt` batch."""

ORDERS = ("RGB", "BGR")
U8 = np.dtype(np.uint8)
F32 = np.dtype(np.float32)
F16 = np.dtype(np.float16)
FLOATS = (F32, F16)


def is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_choice(fn: str, name: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{fn}: {name} is {value!r}; expected one of {expected}")
    return value


def check_size(fn: str, name: str, value: object) -> tuple[int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ValueError(
            f"{fn}: {name} is {value!r}; expected (height, width), two ints in 1..{MAX_SIZE}"
        )
    items = list(value) if not isinstance(value, np.ndarray) or value.ndim == 1 else []
    if len(items) != 2 or not all(is_int(v) for v in items):
        raise ValueError(
            f"{fn}: {name} is {value!r}; expected (height, width), two ints in 1..{MAX_SIZE}"
        )
    h, w = int(items[0]), int(items[1])
    if not (1 <= h <= MAX_SIZE and 1 <= w <= MAX_SIZE):
        raise ValueError(
            f"{fn}: {name} is {(h, w)}; expected (height, width), each in 1..{MAX_SIZE}"
        )
    return h, w


def check_order(fn: str, name: str, value: object) -> str:
    if not isinstance(value, str) or value not in ORDERS:
        raise ValueError(f"{fn}: {name} is {value!r}; expected 'RGB' or 'BGR'")
    return value


def check_threads(fn: str, value: object) -> int:
    """None -> 0 (OpenMP default), else an int in 1..MAX_THREADS."""
    if value is None:
        return 0
    if not is_int(value) or not 1 <= int(value) <= MAX_THREADS:
        raise ValueError(
            f"{fn}: num_threads is {value!r}; expected None or an int in 1..{MAX_THREADS}"
        )
    return int(value)


def per_channel(fn: str, name: str, value: object, n: int = 3) -> np.ndarray:
    """A finite scalar or ``n`` finite values -> float32[n] (the precision the kernels use)."""
    # Fast path for Python numbers and tuples/lists of them (what callers pass on every
    # request): validated once per distinct value, without NumPy's per-call overhead.
    key = _plain_numbers(value)
    if key is not None:
        values = _finite_float32(key, n)
        if values is not None:
            return np.array(values, dtype=np.float32)
    what = "3 finite numbers (one per channel)" if n == 3 else f"{n} finite numbers"
    expected = f"expected a finite number or {what}"
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{fn}: {name} is {value!r}; {expected}")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, numbers.Real):
        try:
            arr = np.full(n, float(value), dtype=np.float64)
        except OverflowError:  # an int beyond float64's range
            raise ValueError(f"{fn}: {name} is {value!r}; {expected}") from None
    elif isinstance(value, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{fn}: {name} is {value!r}; {expected}") from None
        if arr.shape != (n,):
            raise ValueError(f"{fn}: {name} has shape {arr.shape}; {expected}")
    else:
        raise ValueError(f"{fn}: {name} is {value!r}; {expected}")
    with np.errstate(over="ignore"):
        arr32 = arr.astype(np.float32)
    if not np.isfinite(arr32).all():
        raise ValueError(
            f"{fn}: {name} is {value!r}; {expected} (finite also after conversion to float32)"
        )
    return arr32


def _plain_numbers(value: object) -> tuple | None:
    """``value`` as a hashable key when it is an int or float (not a bool) or a list or tuple
    of them, else None (the general path decides). A float enters by its bits, so that -0.0
    and 0.0 stay apart (they are equal, and would share a cache entry)."""
    if type(value) in (int, float):
        return (_number_key(value),)
    if type(value) in (list, tuple) and all(type(v) in (int, float) for v in value):
        return (tuple(_number_key(v) for v in value),)
    return None


def _number_key(v: int | float) -> int | bytes:
    return struct.pack("<d", v) if type(v) is float else v


@functools.lru_cache(maxsize=256)
def _finite_float32(key: tuple, n: int) -> tuple[float, ...] | None:
    """The float32 roundings of a scalar (repeated ``n`` times) or of ``n`` values, or None if
    any is not finite as a float32 (or the count is wrong: the general path says why)."""
    (inner,) = key
    items = inner if isinstance(inner, tuple) else (inner,) * n
    if len(items) != n:
        return None
    out = []
    for item in items:
        try:
            v = struct.unpack("<d", item)[0] if isinstance(item, bytes) else float(item)
            f = struct.unpack("f", struct.pack("f", v))[0]
        except OverflowError:  # beyond float32's range (or an int beyond float64's)
            return None
        if not math.isfinite(f):
            return None
        out.append(f)
    return tuple(out)


def check_sequence(fn: str, name: str, value: object) -> list:
    if isinstance(value, np.ndarray):
        raise ValueError(
            f"{fn}: {name} is an ndarray of shape {value.shape}; expected a list or tuple "
            f"(wrap one image as [img], split a batch with list(batch))"
        )
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{fn}: {name} has type {type(value).__name__}; expected a list or tuple")
    return list(value)


def check_image(fn: str, i: int, img: object, name: str | None = None) -> np.ndarray:
    """-> a 3-D uint8 view (h, w, c) of images[i] (c in 1, 3, 4), no copy."""
    name = f"images[{i}]" if name is None else name
    if not isinstance(img, np.ndarray):
        raise TypeError(
            f"{fn}: {name} has type {type(img).__name__}; expected a numpy uint8 array (H, W[, C])"
        )
    if img.dtype != U8:
        raise ValueError(
            f"{fn}: {name} has dtype {img.dtype}; expected uint8 (decode images as 8-bit)"
        )
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
    elif img.ndim != 3:
        raise ValueError(
            f"{fn}: {name} has {img.ndim} dimensions (shape {img.shape}); "
            f"expected (H, W) or (H, W, C)"
        )
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{fn}: {name} has shape {img.shape}; expected a non-empty image")
    if img.shape[0] > MAX_IMAGE_SIZE or img.shape[1] > MAX_IMAGE_SIZE:
        raise ValueError(
            f"{fn}: {name} has shape {img.shape}; expected a height and width of at most "
            f"{MAX_IMAGE_SIZE} (MAX_IMAGE_SIZE)"
        )
    if img.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{fn}: {name} has {img.shape[2]} channels (shape {img.shape}); expected 1, 3 or 4"
        )
    return img


def check_dtype(fn: str, name: str, value: object) -> np.dtype:
    """float32 / float16 given as a numpy dtype, type or name."""
    try:
        dt = np.dtype(value)  # type: ignore[call-overload]
    except TypeError:
        dt = None
    if dt not in FLOATS:
        raise ValueError(f"{fn}: {name} is {value!r}; expected float32 or float16")
    return dt


def check_float_batch(fn: str, batch: object, channels: int | None = 3) -> np.ndarray:
    """float32/float16 (N, C, H, W), non-empty, aligned, native byte order."""
    if not isinstance(batch, np.ndarray):
        raise TypeError(f"{fn}: batch has type {type(batch).__name__}; expected a numpy array")
    shape = "(N, 3, H, W)" if channels == 3 else "(N, C, H, W)"
    if batch.dtype not in FLOATS:
        raise ValueError(
            f"{fn}: batch has dtype {batch.dtype}; expected float32 or float16 {shape}"
        )
    if batch.ndim != 4 or (channels is not None and batch.shape[1] != channels):
        raise ValueError(f"{fn}: batch has shape {batch.shape}; expected {shape}")
    if 0 in batch.shape:
        raise ValueError(f"{fn}: batch has shape {batch.shape}; expected a non-empty batch")
    if not batch.flags.aligned:
        raise ValueError(
            f"{fn}: batch (strides {batch.strides}) is not aligned for {batch.dtype}; "
            f"expected an aligned array (np.ascontiguousarray fixes it)"
        )
    return batch


def check_out(
    fn: str,
    out: object,
    shape: tuple[int, ...],
    dtype: np.dtype | None,
    inputs: Sequence[tuple[str, np.ndarray]] = (),
    name: str = "out",
) -> np.ndarray:
    """A writeable, aligned, C-contiguous float32/float16 array of exactly ``shape`` (and
    ``dtype`` when given) that shares no memory with ``inputs`` ((name, array) pairs)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: {name} has type {type(out).__name__}; expected a numpy array")
    ok_dtype = out.dtype in FLOATS if dtype is None else out.dtype == dtype
    if not ok_dtype or out.shape != shape:
        want = "float32 or float16" if dtype is None else str(dtype)
        raise ValueError(
            f"{fn}: {name} has dtype {out.dtype} and shape {out.shape}; "
            f"expected {want} of shape {shape}"
        )
    if not (out.flags.c_contiguous and out.flags.aligned):
        raise ValueError(
            f"{fn}: {name} (shape {out.shape}, strides {out.strides}) is not C-contiguous "
            f"and aligned; expected a C-contiguous {out.dtype} array"
        )
    if not out.flags.writeable:
        raise ValueError(f"{fn}: {name} is read-only; expected a writeable array")
    for what, arr in inputs:
        if np.may_share_memory(out, arr):
            raise ValueError(
                f"{fn}: {name} overlaps the memory of {what}; expected separate buffers"
            )
    return out


def as_bytes(out: np.ndarray) -> np.ndarray:
    """A C-contiguous array viewed as uint8 with the last axis in bytes (for the extension)."""
    return out.view(np.uint8)
