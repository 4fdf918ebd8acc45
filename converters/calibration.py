"""Calibration and sample inputs for precision transforms, built from images.

Images come from a folder (read with :func:`vetrina.imageio.read_image`), from a uint8
(N, H, W, 3) RGB array, or from the rendered catalog. Each is fitted to the calibration size
(scaled to cover it, then centre-cropped: no distortion, no padding bars that would skew the
statistics) and mapped onto each input's value range through its :class:`TensorSpec`. A
``mask`` input (the inpainter's) gets the ground-truth mask of synthetic defects drawn on
the image, so the statistics are those of real use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vetrina.contract import TensorSpec
from vetrina.errors import ConversionError, InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

Feeds = dict[str, np.ndarray]


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files of calibration ``folder``, sorted by name (nothing decoded); a missing
    or empty folder, or a file instead of one, is an :class:`InputError` that names it."""
    path = Path(folder)
    fix = "pass a folder of PNG/JPEG product photos (e.g. 'vetrina demo' writes some)"
    if not path.exists():
        raise InputError(f"calibration folder {path} does not exist", hint=fix)
    if not path.is_dir():
        raise InputError(f"calibration source {path} is not a folder", hint=fix)
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(
            f"calibration folder {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})",
            hint=fix,
        )
    return files


def load_folder(folder: str | os.PathLike[str], *, limit: int | None = None) -> list[np.ndarray]:
    """The images of ``folder`` (sorted by name, at most ``limit``) as uint8 RGB (H, W, 3).

    A missing or empty folder, or an image that cannot be decoded, is an :class:`InputError`
    that names it.
    """
    from vetrina.imageio import read_image

    files = image_files(folder)
    images = []
    for file in files[:limit]:
        try:
            decoded = read_image(file)
        except InputError as exc:
            raise InputError(
                f"calibration image {exc.message}", hint="remove or replace the file"
            ) from None
        images.append(to_rgb(decoded.pixels))
    return images


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """OpenCV-decoded pixels (grey, BGR or BGRA) -> uint8 RGB (H, W, 3)."""
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    if pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale ``image`` to cover (height, width) ``size``, then crop the centre."""
    h, w = size
    scale = max(h / image.shape[0], w / image.shape[1])
    rh, rw = max(h, round(image.shape[0] * scale)), max(w, round(image.shape[1] * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (rw, rh), interpolation=interp)
    top, left = (rh - h) // 2, (rw - w) // 2
    return np.ascontiguousarray(resized[top : top + h, left : left + w])


def catalog_images(count: int, size: tuple[int, int] = (128, 128), start: int = 0) -> np.ndarray:
    """``count`` rendered catalog photos of the validation split, uint8 (N, H, W, 3) RGB."""
    from vetrina.models import catalog

    images, _, _ = catalog.render_batch(catalog.split_seeds("val", count, start), size)
    return images


def image_feeds(
    inputs: Sequence[TensorSpec],
    images: np.ndarray | Sequence[np.ndarray],
    size: tuple[int, int],
    *,
    seed: int = 0,
) -> list[Feeds]:
    """One batch-1 feed dict per image, each input in its own range and channel order."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = images[None]
    if len(images) == 0:
        raise InputError("no calibration images were given")
    unsupported = [t.name for t in inputs if t.semantic not in ("image", "mask") or not t.range]
    if unsupported:
        raise ConversionError(
            f"inputs {', '.join(unsupported)} cannot be made from images (latent or label inputs)",
            hint="pass ready-made feeds (a list of {input name: array}) instead",
        )
    rng = np.random.default_rng(seed)
    feeds = []
    for i, image in enumerate(images):
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3):
            raise InputError(
                f"calibration image {i} must be uint8 (H, W, 3) RGB, got "
                f"{getattr(image, 'dtype', type(image).__name__)} "
                f"{getattr(image, 'shape', '')}"
            )
        rgb = fit(image[:, :, :3], size)
        mask = None
        if any(t.semantic == "mask" for t in inputs):
            from vetrina.models.defects import add_defects

            rgb, mask, _ = add_defects(rgb, rng)
        feed = {}
        for spec in inputs:
            plane = mask[:, :, None] if spec.semantic == "mask" else _channels(rgb, spec.channels)
            scale, offset = spec.from_uint8_affine()
            values = plane.astype(np.float32) * np.asarray(scale, np.float32) + np.asarray(
                offset, np.float32
            )  # per channel (the last axis) when the contract normalises by mean/std
            feed[spec.name] = np.ascontiguousarray(values.transpose(2, 0, 1)[None])
        feeds.append(feed)
    return feeds


def _channels(rgb: np.ndarray, order: str) -> np.ndarray:
    if order == "BGR":
        return rgb[:, :, ::-1]
    if order == "L":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None]
    return rgb


def calibration_feeds(
    source: str | os.PathLike[str] | np.ndarray | Sequence[Any],
    inputs: Sequence[TensorSpec],
    size: tuple[int, int],
    *,
    limit: int | None = None,
) -> tuple[list[Feeds], int]:
    """Feeds from a folder, a uint8 image array, or ready-made feeds; and the image count."""
    if isinstance(source, (str, os.PathLike)):
        images: Any = load_folder(source, limit=limit)
    elif isinstance(source, np.ndarray):
        images = source[:limit]
    elif source and isinstance(source[0], dict):
        feeds = [dict(f) for f in source[:limit]]
        return feeds, len(feeds)
    else:
        images = list(source)[:limit]
    feeds = image_feeds(inputs, images, size)
    return feeds, len(feeds)


def feeds_reader(feeds: Sequence[Feeds]) -> Any:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over a list of feeds."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = list(feeds)
            self._next = 0

        def get_next(self) -> Feeds | None:
            if self._next >= len(self._items):
                return None
            self._next += 1
            return self._items[self._next - 1]

        def rewind(self) -> None:
            self._next = 0

        def __len__(self) -> int:
            return len(self._items)

    return _Reader()


def round_size(size: tuple[int, int], multiple_of: int, min_size: int = 1) -> tuple[int, int]:
    """``size`` rounded down to the multiple-of rule (at least one step and ``min_size``)."""
    step = max(1, multiple_of)
    low = -(-max(min_size, 1) // step) * step
    h, w = (max(low, (s // step) * step) for s in size)
    return h, w
