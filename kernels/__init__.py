"""vetrina CPU image kernels: fused preprocess (uint8 images -> float32 NCHW) and postprocess
(float32 NCHW -> uint8 images).

Every argument is validated here, before any C loop runs; bad input raises ``ValueError`` (or
``TypeError`` for things that are not arrays or sequences at all) naming the function, the
argument, the value and what is expected. The numerics contract is in docs/kernels.md.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from . import _cpu

__all__ = ["MAX_SIZE", "MAX_THREADS", "postprocess", "preprocess"]

MAX_SIZE = 16384
"""Largest output height or width accepted by :func:`preprocess` and :func:`postprocess`."""
MAX_THREADS = 1024
"""Largest ``num_threads`` accepted."""

_ORDERS = ("RGB", "BGR")
_U8 = np.dtype(np.uint8)
_F32 = np.dtype(np.float32)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_size(fn: str, name: str, value: object) -> tuple[int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ValueError(
            f"{fn}: {name} is {value!r}; expected (height, width), two ints in 1..{MAX_SIZE}"
        )
    items = list(value) if not isinstance(value, np.ndarray) or value.ndim == 1 else []
    if len(items) != 2 or not all(_is_int(v) for v in items):
        raise ValueError(
            f"{fn}: {name} is {value!r}; expected (height, width), two ints in 1..{MAX_SIZE}"
        )
    h, w = int(items[0]), int(items[1])
    if not (1 <= h <= MAX_SIZE and 1 <= w <= MAX_SIZE):
        raise ValueError(
            f"{fn}: {name} is {(h, w)}; expected (height, width), each in 1..{MAX_SIZE}"
        )
    return h, w


def _check_order(fn: str, name: str, value: object) -> str:
    if not isinstance(value, str) or value not in _ORDERS:
        raise ValueError(f"{fn}: {name} is {value!r}; expected 'RGB' or 'BGR'")
    return value


def _check_threads(fn: str, value: object) -> int:
    """None -> 0 (OpenMP default), else an int in 1..MAX_THREADS."""
    if value is None:
        return 0
    if not _is_int(value) or not 1 <= int(value) <= MAX_THREADS:
        raise ValueError(
            f"{fn}: num_threads is {value!r}; expected None or an int in 1..{MAX_THREADS}"
        )
    return int(value)


def _per_channel(fn: str, name: str, value: object) -> np.ndarray:
    """A finite scalar or 3 finite values -> float32[3] (the precision the kernels use)."""
    expected = "expected a finite number or 3 finite numbers (one per channel)"
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{fn}: {name} is {value!r}; {expected}")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, numbers.Real):
        arr = np.full(3, float(value), dtype=np.float64)
    elif isinstance(value, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{fn}: {name} is {value!r}; {expected}") from None
        if arr.shape != (3,):
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


def _check_sequence(fn: str, name: str, value: object) -> list:
    if isinstance(value, np.ndarray):
        raise ValueError(
            f"{fn}: {name} is an ndarray of shape {value.shape}; expected a list or tuple "
            f"(wrap one image as [img], split a batch with list(batch))"
        )
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{fn}: {name} has type {type(value).__name__}; expected a list or tuple")
    return list(value)


def _check_image(fn: str, i: int, img: object) -> np.ndarray:
    """-> a 3-D uint8 view (h, w, c) of images[i], no copy."""
    name = f"images[{i}]"
    if not isinstance(img, np.ndarray):
        raise TypeError(
            f"{fn}: {name} has type {type(img).__name__}; expected a numpy uint8 array (H, W[, C])"
        )
    if img.dtype != _U8:
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
    if img.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{fn}: {name} has {img.shape[2]} channels (shape {img.shape}); expected 1, 3 or 4"
        )
    return img


def preprocess(
    images: Sequence[np.ndarray],
    size: tuple[int, int],
    *,
    scale: float | Sequence[float] = 1 / 255,
    offset: float | Sequence[float] = 0.0,
    src_order: str = "RGB",
    dst_order: str = "RGB",
    out: np.ndarray | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """uint8 images -> float32 NCHW batch ``(N, 3, H, W)``, fused in one pass.

    Per output pixel: bilinear resize to ``size = (H, W)`` (OpenCV INTER_LINEAR pixel centres,
    float32), channel mapping (1 channel replicated, alpha dropped, channels 0 and 2 swapped
    when ``src_order != dst_order``), then ``y = value * scale[c] + offset[c]`` per output
    channel ``c``. ``images`` may differ in size and have any strides (no copy is made).
    ``out``: optional C-contiguous writeable float32 array of exactly ``(N, 3, H, W)``, filled
    and returned. ``num_threads``: None for the OpenMP default. See docs/kernels.md.
    """
    fn = "preprocess"
    imgs = _check_sequence(fn, "images", images)
    if not imgs:
        raise ValueError(f"{fn}: images is empty; expected at least one image")
    views = [_check_image(fn, i, img) for i, img in enumerate(imgs)]
    h, w = _check_size(fn, "size", size)
    sc = _per_channel(fn, "scale", scale)
    of = _per_channel(fn, "offset", offset)
    swap = _check_order(fn, "src_order", src_order) != _check_order(fn, "dst_order", dst_order)
    nthreads = _check_threads(fn, num_threads)
    shape = (len(views), 3, h, w)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"{fn}: out has type {type(out).__name__}; expected a numpy array")
        if out.dtype != _F32 or out.shape != shape:
            raise ValueError(
                f"{fn}: out has dtype {out.dtype} and shape {out.shape}; "
                f"expected float32 of shape {shape}"
            )
        if not (out.flags.c_contiguous and out.flags.aligned):
            raise ValueError(
                f"{fn}: out (shape {out.shape}, strides {out.strides}) is not C-contiguous "
                f"and aligned; expected a C-contiguous float32 array"
            )
        if not out.flags.writeable:
            raise ValueError(f"{fn}: out is read-only; expected a writeable array")
        for i, img in enumerate(views):
            if np.may_share_memory(out, img):
                raise ValueError(
                    f"{fn}: out overlaps the memory of images[{i}]; expected separate buffers"
                )
    _cpu.preprocess_batch(views, out, sc, of, swap, nthreads)
    return out


def postprocess(
    batch: np.ndarray,
    sizes: Sequence[tuple[int, int]] | None = None,
    *,
    scale: float | Sequence[float] = 255.0,
    offset: float | Sequence[float] = 0.0,
    src_order: str = "RGB",
    dst_order: str = "RGB",
    alphas: Sequence[np.ndarray | None] | None = None,
    num_threads: int | None = None,
) -> list[np.ndarray]:
    """float32 NCHW batch ``(N, 3, H, W)`` -> list of N C-contiguous uint8 images.

    Each image is resized to ``sizes[i] = (h, w)`` (None: keep H, W) with the same bilinear
    convention as :func:`preprocess`, in float32; then ``v = value * scale[c] + offset[c]`` per
    batch channel ``c``, NaN -> 0, clamp to [0, 255], ``floor(v + 0.5)``. Output is
    ``(h, w, 3)`` in ``dst_order`` (channels 0 and 2 swapped when it differs from
    ``src_order``), or ``(h, w, 4)`` when ``alphas[i]`` is a uint8 ``(h, w)`` array, appended
    as the 4th channel. ``batch`` and the alphas may have any strides. See docs/kernels.md.
    """
    fn = "postprocess"
    if not isinstance(batch, np.ndarray):
        raise TypeError(f"{fn}: batch has type {type(batch).__name__}; expected a numpy array")
    if batch.dtype != _F32:
        raise ValueError(f"{fn}: batch has dtype {batch.dtype}; expected float32 (N, 3, H, W)")
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"{fn}: batch has shape {batch.shape}; expected (N, 3, H, W)")
    n, _, big_h, big_w = batch.shape
    if n == 0 or big_h == 0 or big_w == 0:
        raise ValueError(f"{fn}: batch has shape {batch.shape}; expected a non-empty batch")
    if not batch.flags.aligned:
        raise ValueError(
            f"{fn}: batch (strides {batch.strides}) is not aligned for float32; "
            f"expected an aligned array (np.ascontiguousarray fixes it)"
        )
    if sizes is None:
        targets = [(big_h, big_w)] * n
    else:
        seq = _check_sequence(fn, "sizes", sizes)
        if len(seq) != n:
            raise ValueError(
                f"{fn}: sizes has {len(seq)} entries; expected {n} (one per batch image)"
            )
        targets = [_check_size(fn, f"sizes[{i}]", s) for i, s in enumerate(seq)]
    sc = _per_channel(fn, "scale", scale)
    of = _per_channel(fn, "offset", offset)
    swap = _check_order(fn, "src_order", src_order) != _check_order(fn, "dst_order", dst_order)
    nthreads = _check_threads(fn, num_threads)
    if alphas is None:
        alpha_list: list[np.ndarray | None] = [None] * n
    else:
        alpha_list = _check_sequence(fn, "alphas", alphas)
        if len(alpha_list) != n:
            raise ValueError(
                f"{fn}: alphas has {len(alpha_list)} entries; expected {n} (one per batch "
                f"image, None for no alpha)"
            )
        for i, (a, hw) in enumerate(zip(alpha_list, targets, strict=True)):
            if a is None:
                continue
            if not isinstance(a, np.ndarray):
                raise TypeError(
                    f"{fn}: alphas[{i}] has type {type(a).__name__}; expected None or a uint8 array"
                )
            if a.dtype != _U8:
                raise ValueError(f"{fn}: alphas[{i}] has dtype {a.dtype}; expected uint8")
            if a.shape != hw:
                raise ValueError(
                    f"{fn}: alphas[{i}] has shape {a.shape}; expected {hw} (the output size)"
                )
    outs = [
        np.empty((h, w, 3 if a is None else 4), dtype=np.uint8)
        for (h, w), a in zip(targets, alpha_list, strict=True)
    ]
    _cpu.postprocess_batch(batch, outs, alpha_list, sc, of, swap, nthreads)
    return outs
