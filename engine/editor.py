"""Image-to-image models (enhancers, style, upscalers) run end to end on 8-bit pixels.

One fused preprocess per batch (resize to the working size, normalise, channel swap,
HWC -> NCHW), one backend call, one fused postprocess (range -> uint8, resize back to the
original size, alpha re-attached).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import cv2
import numpy as np

from . import kernels
from .errors import InputError, ModelError
from .model import Model
from .timing import StepTimes

IMAGE_ROLES = ("editor", "upscaler")


class Editor:
    """Runs an image-in, image-out model over batches of images of any sizes.

    ``max_side`` caps the working resolution (longer side, in pixels; None: the model's own
    limit only); images are processed at their own size, rounded to the model's multiple-of
    rule, and returned at their original size (times the model's scale factor).
    """

    def __init__(
        self,
        model: Model,
        *,
        max_side: int | None = 2048,
        batch_size: int = 4,
        times: StepTimes | None = None,
    ) -> None:
        if model.contract.role not in IMAGE_ROLES:
            raise ModelError(
                f"{model.path}: a {model.contract.role} model cannot edit images "
                f"(expected one of {', '.join(IMAGE_ROLES)})"
            )
        if max_side is not None and max_side < 1:
            raise ValueError(f"max_side must be positive, got {max_side}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.input = model.contract.input("image")
        self.output = model.contract.output("image")
        for spec in (self.input, self.output):
            if (
                spec.dtype not in ("float32", "float16")
                or spec.layout != "NCHW"
                or spec.channels not in ("RGB", "BGR")
            ):
                raise ModelError(
                    f"{model.path}: tensor {spec.name!r} is {spec.dtype} {spec.layout} "
                    f"{spec.channels}; this engine feeds float32/float16 NCHW RGB/BGR images"
                )
        self.max_side = max_side
        self.batch_size = batch_size
        self.times = times if times is not None else StepTimes()
        self._output_index = model.output_index(self.output.name)

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an image of this size is processed at, following the contract's rules
        (a model exported with a static size gets exactly that size, resized back after)."""
        static = self.model.contract.static_size
        if static is not None:
            return static
        rules = self.model.contract.spatial
        caps = [v for v in (self.max_side, rules.max_size) if v is not None]
        return rules.fit(height, width, min(caps) if caps else None)

    def edit(
        self, images: Sequence[np.ndarray], *, order: str = "RGB", output_order: str | None = None
    ) -> list[np.ndarray]:
        """Edit uint8 images (HxW, HxWx3 or HxWx4 in ``order``); returns uint8 images of the
        original size (x the model's scale), alpha kept, in ``output_order`` (default: ``order``).
        """
        output_order = output_order or order
        for i, img in enumerate(images):
            check_image(img, i)
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            groups[self.working_size(img.shape[0], img.shape[1])].append(i)
        results: list[np.ndarray | None] = [None] * len(images)
        for size, indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                outs = self._run_batch([images[i] for i in chunk], size, order, output_order)
                for i, out in zip(chunk, outs, strict=True):
                    results[i] = out
        return [r for r in results if r is not None]

    def _run_batch(
        self, images: list[np.ndarray], size: tuple[int, int], order: str, output_order: str
    ) -> list[np.ndarray]:
        in_scale, in_offset = self.input.from_uint8_affine()
        out_scale, out_offset = self.output.to_uint8_affine()
        factor = self.model.contract.spatial.scale
        with self.times.step("preprocess"):
            batch = kernels.preprocess(
                images,
                size,
                scale=in_scale,
                offset=in_offset,
                src_order=order,
                dst_order=self.input.channels,
                dtype=np.dtype(self.input.dtype),
            )
        with self.times.step("inference"):
            result = self.model.session.run({self.input.name: batch})[self._output_index]
        expected = (len(images), 3, size[0] * factor, size[1] * factor)
        if result.shape != expected or result.dtype != self.output.dtype:
            raise ModelError(
                f"{self.model.path}: output {self.output.name!r} is {result.dtype} "
                f"{result.shape}; the contract promises {self.output.dtype} {expected}"
            )
        with self.times.step("postprocess"):
            sizes = [(img.shape[0] * factor, img.shape[1] * factor) for img in images]
            alphas = [resized_alpha(img, s) for img, s in zip(images, sizes, strict=True)]
            return kernels.postprocess(
                result,
                sizes,
                scale=out_scale,
                offset=out_offset,
                src_order=self.output.channels,
                dst_order=output_order,
                alphas=alphas if any(a is not None for a in alphas) else None,
            )


def check_image(img: object, index: int = 0) -> None:
    """Raise :class:`InputError` unless ``img`` is a uint8 HxW, HxWx1/3/4 array of nonzero size
    (what :meth:`Editor.edit` accepts; callers that queue images check them up front)."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise InputError(f"image {index}: expected a uint8 numpy array")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise InputError(f"image {index}: shape {img.shape}; expected HxW, HxWx3 or HxWx4")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise InputError(f"image {index}: has zero size {img.shape}")


def resized_alpha(img: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """The alpha channel of an RGBA ``img`` resized to ``size`` (bilinear); None without alpha."""
    if img.ndim != 3 or img.shape[2] != 4:
        return None
    alpha = img[:, :, 3]
    if alpha.shape == size:
        return alpha
    return cv2.resize(
        np.ascontiguousarray(alpha), (size[1], size[0]), interpolation=cv2.INTER_LINEAR
    )
