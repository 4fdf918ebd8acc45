"""preprocess (uint8 images -> float NCHW batch) and postprocess (float NCHW -> uint8 images).

Validation happens here, before any C loop runs; the numerics contract is docs/kernels.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

import numpy as np

from . import _checks as ck
from . import _cpu
from .fit import FITS, Placement, check_placement, plan_fit

__all__ = ["INTERPOLATIONS", "POST_INTERPOLATIONS", "postprocess", "preprocess"]

INTERPOLATIONS = ("bilinear", "area", "bilinear-u8", "lanczos")
"""``interpolation`` values of :func:`preprocess`."""
POST_INTERPOLATIONS = ("bilinear", "area")
"""``interpolation`` values of :func:`postprocess` and :func:`~vetrina.kernels.adapt`."""

METHODS = {
    "bilinear": _cpu.METHOD_BILINEAR,
    "area": _cpu.METHOD_AREA,
    "bilinear-u8": _cpu.METHOD_BILINEAR_U8,
    "lanczos": _cpu.METHOD_LANCZOS,
}


@overload
def preprocess(
    images: Sequence[np.ndarray],
    size: tuple[int, int],
    *,
    scale: float | Sequence[float] = ...,
    offset: float | Sequence[float] = ...,
    src_order: str = ...,
    dst_order: str = ...,
    out: np.ndarray | None = ...,
    num_threads: int | None = ...,
    interpolation: str = ...,
    fit: str = ...,
    pad_value: float | Sequence[float] = ...,
    dtype: object = ...,
    return_placements: Literal[False] = ...,
) -> np.ndarray: ...
@overload
def preprocess(
    images: Sequence[np.ndarray],
    size: tuple[int, int],
    *,
    scale: float | Sequence[float] = ...,
    offset: float | Sequence[float] = ...,
    src_order: str = ...,
    dst_order: str = ...,
    out: np.ndarray | None = ...,
    num_threads: int | None = ...,
    interpolation: str = ...,
    fit: str = ...,
    pad_value: float | Sequence[float] = ...,
    dtype: object = ...,
    return_placements: Literal[True],
) -> tuple[np.ndarray, list[Placement]]: ...
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
    interpolation: str = "bilinear",
    fit: str = "stretch",
    pad_value: float | Sequence[float] = 0.0,
    dtype: object = None,
    return_placements: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[Placement]]:
    """uint8 images -> float32/float16 NCHW batch ``(N, 3, H, W)``, fused in one pass.

    Per image: ``fit`` ("stretch", "letterbox", "crop"; see :func:`plan_fit`) picks the
    source window and the content rectangle of the output; the window is resized into it
    (``interpolation``: "bilinear" = OpenCV INTER_LINEAR pixel centres in float32, "area" =
    OpenCV INTER_AREA pixel-area averaging (antialiased), "bilinear-u8" = bit-exact OpenCV
    uint8 INTER_LINEAR, i.e. what ``cv2.dnn.blobFromImages`` sees, "lanczos" = PIL's
    ``Image.resize(..., LANCZOS)`` weights in float32, the horizontal pass clamped to
    [0, 255] as PIL's, the result neither rounded nor clamped: within 1 uint8 level of PIL
    once rounded); channel mapping (1 channel replicated, alpha dropped,
    channels 0 and 2 swapped when ``src_order != dst_order``); then
    ``y = value * scale[c] + offset[c]`` per output channel ``c``. Outside the content
    (letterbox) the output is ``pad_value[c] * scale[c] + offset[c]`` (``pad_value`` in
    pixel units, output channel order). ``dtype``: float32 (default) or
    float16 (the float32 result rounded to nearest even). ``out``: optional C-contiguous
    writeable array of exactly ``(N, 3, H, W)``, filled and returned.
    ``return_placements=True`` also returns one :class:`Placement` per image (what
    :func:`postprocess` needs to undo the fit). See docs/kernels.md.
    """
    fn = "preprocess"
    imgs = ck.check_sequence(fn, "images", images)
    if not imgs:
        raise ValueError(f"{fn}: images is empty; expected at least one image")
    views = [ck.check_image(fn, i, img) for i, img in enumerate(imgs)]
    h, w = ck.check_size(fn, "size", size)
    sc = ck.per_channel(fn, "scale", scale)
    of = ck.per_channel(fn, "offset", offset)
    pad = ck.per_channel(fn, "pad_value", pad_value)
    swap = ck.check_order(fn, "src_order", src_order) != ck.check_order(fn, "dst_order", dst_order)
    nthreads = ck.check_threads(fn, num_threads)
    method = METHODS[ck.check_choice(fn, "interpolation", interpolation, INTERPOLATIONS)]
    ck.check_choice(fn, "fit", fit, FITS)
    if not isinstance(return_placements, (bool, np.bool_)):
        raise ValueError(f"{fn}: return_placements is {return_placements!r}; expected a bool")
    dt = None if dtype is None else ck.check_dtype(fn, "dtype", dtype)
    shape = (len(views), 3, h, w)
    if out is None:
        out = np.empty(shape, dtype=ck.F32 if dt is None else dt)
    else:
        if dt is None and isinstance(out, np.ndarray):
            dt = out.dtype if out.dtype in ck.FLOATS else ck.F32
        ck.check_out(fn, out, shape, dt, [(f"images[{i}]", v) for i, v in enumerate(views)])
    placements = [plan_fit(v.shape[:2], (h, w), fit) for v in views]
    boxes = np.array([p.src_box + p.dst_box for p in placements], dtype=np.intp).reshape(-1, 8)
    padv = pad * sc + of  # float32, like the pixels
    _cpu.preprocess_batch(
        views, boxes, ck.as_bytes(out), out.itemsize, sc, of, padv, swap, method, nthreads
    )
    return (out, placements) if return_placements else out


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
    placements: Sequence[Placement] | None = None,
    interpolation: str = "bilinear",
    fill: int | Sequence[int] = 0,
) -> list[np.ndarray]:
    """float32/float16 NCHW batch ``(N, 3, H, W)`` -> list of N C-contiguous uint8 images.

    Each image is resized to ``sizes[i] = (h, w)`` (None: keep H, W, or the placement's source
    size) with ``interpolation`` ("bilinear": the :func:`preprocess` convention in float32,
    a zero-weight tap never read; "area": pixel-area averaging); then
    ``v = value * scale[c] + offset[c]`` per batch channel ``c``, NaN -> 0, clamp to
    [0, 255], ``floor(v + 0.5)``. Output is ``(h, w, 3)`` in ``dst_order`` (channels 0 and 2
    swapped when it differs from ``src_order``), or ``(h, w, 4)`` when ``alphas[i]`` is a
    uint8 ``(h, w)`` array, appended as the 4th channel.

    ``placements[i]`` (from ``preprocess(..., return_placements=True)``) undoes a letterbox or
    crop: only its ``dst_box`` part of the batch (scaled to the batch size, e.g. x2 for an
    upscaler) is used, resized onto its ``src_box`` of the output (scaled to the output size);
    pixels outside that box (crop) are ``fill`` (uint8, output channel order).
    """
    fn = "postprocess"
    batch = ck.check_float_batch(fn, batch)
    n, _, big_h, big_w = batch.shape
    plist, targets = _check_targets(fn, batch.shape, sizes, placements)
    sc = ck.per_channel(fn, "scale", scale)
    of = ck.per_channel(fn, "offset", offset)
    swap = ck.check_order(fn, "src_order", src_order) != ck.check_order(fn, "dst_order", dst_order)
    nthreads = ck.check_threads(fn, num_threads)
    method = METHODS[ck.check_choice(fn, "interpolation", interpolation, POST_INTERPOLATIONS)]
    fills = _check_fill(fn, fill)
    alpha_list = _check_alphas(fn, alphas, targets)
    boxes = np.empty((n, 8), dtype=np.intp)
    for i in range(n):
        if plist is None:
            boxes[i] = (0, 0, big_h, big_w, 0, 0, *targets[i])
        else:
            boxes[i] = _inverse_boxes(fn, i, plist[i], (big_h, big_w), targets[i])
    outs = [
        np.empty((h, w, 3 if a is None else 4), dtype=np.uint8)
        for (h, w), a in zip(targets, alpha_list, strict=True)
    ]
    f16 = batch.dtype == ck.F16
    src = batch.view(np.uint16) if f16 else batch
    _cpu.postprocess_batch(
        src, f16, boxes, outs, alpha_list, np.tile(fills, (n, 1)), sc, of, swap, method, nthreads
    )
    return outs


def _scaled(
    fn: str, i: int, what: str, box: tuple[int, ...], num: tuple[int, int], den: tuple[int, int]
) -> tuple[int, int, int, int]:
    """box (y, x, h, w) scaled by num/den per axis; every coordinate must stay an integer."""
    vals = (box[0] * num[0], box[1] * num[1], box[2] * num[0], box[3] * num[1])
    dens = (den[0], den[1], den[0], den[1])
    if any(v % d for v, d in zip(vals, dens, strict=True)):
        raise ValueError(
            f"{fn}: placements[{i}].{what} {tuple(box)} does not scale to whole pixels from "
            f"{den} to {num}; expected sizes that are integer multiples of the placement's"
        )
    y, x, h, w = (v // d for v, d in zip(vals, dens, strict=True))
    return y, x, h, w


def _inverse_boxes(
    fn: str, i: int, p: Placement, batch_hw: tuple[int, int], out_hw: tuple[int, int]
) -> tuple[int, ...]:
    """(batch box, output content box) of one placement, scaled to the actual sizes."""
    bbox = _scaled(fn, i, "dst_box", p.dst_box, batch_hw, p.dst_hw)
    obox = _scaled(fn, i, "src_box", p.src_box, out_hw, p.src_hw)
    return bbox + obox


def _check_fill(fn: str, fill: object) -> np.ndarray:
    vals = [fill] * 3 if ck.is_int(fill) else fill
    if (
        not isinstance(vals, (list, tuple, np.ndarray))
        or len(vals) != 3
        or not all(ck.is_int(v) and 0 <= int(v) <= 255 for v in vals)
    ):
        raise ValueError(f"{fn}: fill is {fill!r}; expected an int or 3 ints in 0..255")
    return np.array([int(v) for v in vals], dtype=np.uint8)


def _check_alphas(
    fn: str, alphas: object, targets: list[tuple[int, int]]
) -> list[np.ndarray | None]:
    n = len(targets)
    if alphas is None:
        return [None] * n
    alpha_list = ck.check_sequence(fn, "alphas", alphas)
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
        if a.dtype != ck.U8:
            raise ValueError(f"{fn}: alphas[{i}] has dtype {a.dtype}; expected uint8")
        if a.shape != hw:
            raise ValueError(
                f"{fn}: alphas[{i}] has shape {a.shape}; expected {hw} (the output size)"
            )
    return alpha_list


def _check_targets(
    fn: str,
    shape: tuple[int, ...],
    sizes: Sequence[tuple[int, int]] | None,
    placements: Sequence[Placement] | None,
) -> tuple[list[Placement] | None, list[tuple[int, int]]]:
    """Validated placements (or None) and output sizes of a postprocess of ``shape``
    (N, C, H, W); shared by the CPU and GPU launchers."""
    n, _, big_h, big_w = shape
    plist: list[Placement] | None = None
    if placements is not None:
        plist = ck.check_sequence(fn, "placements", placements)
        if len(plist) != n:
            raise ValueError(
                f"{fn}: placements has {len(plist)} entries; expected {n} (one per batch image)"
            )
        plist = [check_placement(fn, f"placements[{i}]", p) for i, p in enumerate(plist)]
    if sizes is None:
        if plist is None:  # each output keeps the batch size
            if not (big_h <= ck.MAX_SIZE and big_w <= ck.MAX_SIZE):
                raise ValueError(
                    f"{fn}: batch has shape {tuple(shape)}; its {big_h} x {big_w} images are "
                    f"larger than {ck.MAX_SIZE} (the largest output size), and without sizes "
                    f"or placements each output keeps that size: pass sizes to choose the "
                    f"output size"
                )
            return plist, [(big_h, big_w)] * n
        targets = [p.src_hw for p in plist]  # each output takes its placement's source size
        for i, hw in enumerate(targets):
            if not (hw[0] <= ck.MAX_SIZE and hw[1] <= ck.MAX_SIZE):
                raise ValueError(
                    f"{fn}: placements[{i}].src_hw is {hw}; larger than {ck.MAX_SIZE} (the "
                    f"largest output size), and without sizes it is the output size: pass "
                    f"sizes to choose the output size"
                )
        return plist, targets
    seq = ck.check_sequence(fn, "sizes", sizes)
    if len(seq) != n:
        raise ValueError(f"{fn}: sizes has {len(seq)} entries; expected {n} (one per batch image)")
    return plist, [ck.check_size(fn, f"sizes[{i}]", s) for i, s in enumerate(seq)]
