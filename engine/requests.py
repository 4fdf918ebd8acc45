"""Requests in any form a service receives them, each failing alone.

:func:`process` takes encoded bytes, file paths or uint8 arrays (or generation requests for a
generation pipeline), decodes and checks each one (pixel limit, truncation, type, labels),
runs the good ones through a pipeline or editor in batches,
and returns one :class:`Outcome` per request, in order: the result as an RGB(A) array or as
encoded PNG/JPEG/WebP bytes, or the error that request alone hit. A batch that fails is retried
one request at a time, so one bad image never fails the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .editor import check_image
from .errors import InputError, VetrinaError, failure_message
from .imageio import (
    DEFAULT_MAX_PIXELS,
    check_png_compression,
    decode_image,
    encode_image,
    read_image,
)
from .stages import GenerationRequest

Item = bytes | bytearray | memoryview | str | os.PathLike | np.ndarray | GenerationRequest
ENCODINGS = ("png", "jpeg", "webp")


@dataclass(frozen=True)
class Outcome:
    """One request's result (``value``: uint8 array or encoded bytes) or its ``error``."""

    value: np.ndarray | bytes | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def to_pixels(item: Item, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A request as uint8 pixels in OpenCV order (BGR/BGRA/grey); arrays are taken as RGB(A)."""
    if isinstance(item, np.ndarray):
        check_image(item)
        if item.shape[0] * item.shape[1] > max_pixels:
            raise InputError(
                f"array of {item.shape[1]}x{item.shape[0]} pixels is above the limit of "
                f"{max_pixels}"
            )
        if item.ndim == 3 and item.shape[2] in (3, 4):
            order = [2, 1, 0, 3][: item.shape[2]]
            return np.ascontiguousarray(item[:, :, order])
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        return decode_image(bytes(item), max_pixels=max_pixels).pixels
    if isinstance(item, (str, os.PathLike)):
        return read_image(Path(item), max_pixels=max_pixels).pixels
    raise InputError(
        f"unsupported request type {type(item).__name__}; give bytes, a path or a uint8 array"
    )


def process(
    processor: Any,
    items: Sequence[Item],
    *,
    encode: str | None = None,
    quality: int = 92,
    metadata: dict[str, str] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    png_compression: int | None = None,
) -> list[Outcome]:
    """Run ``items`` through ``processor`` (a Pipeline or Editor); one Outcome per item.

    Items are photos (bytes, paths, arrays) or, for a generation pipeline,
    :class:`~vetrina.pipeline.GenerationRequest` s; each is checked alone, and a bad one
    fails alone. ``encode`` None returns RGB(A) uint8 arrays; "png"/"jpeg"/"webp" returns
    encoded bytes (JPEG flattens alpha onto white; ``metadata`` goes into PNG text chunks,
    whose zlib level is ``png_compression``).
    """
    if encode is not None and encode not in ENCODINGS:
        raise InputError(f"unknown encoding {encode!r}; choose {', '.join(ENCODINGS)}")
    if png_compression is not None:
        check_png_compression(png_compression, encode or "arrays")
    options = Encoding(encode, quality, metadata, png_compression)
    outcomes: list[Outcome | None] = [None] * len(items)
    good: list[tuple[int, np.ndarray]] = []
    wanted: list[tuple[int, GenerationRequest]] = []
    for i, item in enumerate(items):
        try:
            if isinstance(item, GenerationRequest):
                _check_request(processor, item)
                wanted.append((i, item))
            else:
                good.append((i, to_pixels(item, max_pixels=max_pixels)))
        except VetrinaError as exc:
            outcomes[i] = Outcome(error=str(exc))
    size = processor.batch_size
    for work, run in ((good, _edit), (wanted, _generate)):
        for start in range(0, len(work), size):
            for i, outcome in _run(processor, work[start : start + size], options, run):
                outcomes[i] = outcome
    return [o if o is not None else Outcome(error="not processed") for o in outcomes]


def _check_request(processor: Any, request: GenerationRequest) -> None:
    check = getattr(processor, "check_request", None)
    if check is None:
        raise InputError(
            f"{type(processor).__name__} edits photos; it takes no generation requests"
        )
    check(request)


def _edit(processor: Any, items: list[Any]) -> list[np.ndarray]:
    return processor.edit(items, order="BGR", output_order="BGR")


def _generate(processor: Any, items: list[Any]) -> list[np.ndarray]:
    return processor.generate(items, output_order="BGR")


@dataclass(frozen=True)
class Encoding:
    """How results are returned: arrays (``format`` None) or encoded bytes."""

    format: str | None
    quality: int
    metadata: dict[str, str] | None
    png_compression: int | None


def _run(
    processor: Any,
    chunk: list[tuple[int, Any]],
    options: Encoding,
    run: Callable[[Any, list[Any]], list[np.ndarray]],
) -> list[tuple[int, Outcome]]:
    try:
        results = run(processor, [p for _, p in chunk])
    except Exception as exc:  # an item's failure, whatever it is, is its own
        if len(chunk) == 1:
            return [(chunk[0][0], Outcome(error=failure_message(exc)))]
        return [r for one in chunk for r in _run(processor, [one], options, run)]
    out = []
    for (i, _), pixels in zip(chunk, results, strict=True):
        try:
            out.append((i, Outcome(value=_finish(pixels, options))))
        except VetrinaError as exc:
            out.append((i, Outcome(error=str(exc))))
    return out


def _finish(bgr: np.ndarray, options: Encoding) -> np.ndarray | bytes:
    encode = options.format
    if encode is None:
        if bgr.ndim == 3 and bgr.shape[2] in (3, 4):
            return np.ascontiguousarray(bgr[:, :, [2, 1, 0, 3][: bgr.shape[2]]])
        return bgr
    if encode == "jpeg" and bgr.ndim == 3 and bgr.shape[2] == 4:
        from . import kernels

        bgr = kernels.composite(bgr, 255)
    return encode_image(
        bgr,
        encode,
        quality=options.quality,
        metadata=options.metadata,
        png_compression=options.png_compression,
    )
