"""Pipelines: chains of generation and editing stages run as one float computation.

One preprocess at entry (uint8 photos -> the first model's input domain, at a working size
every stage accepts), the stages with a :class:`~vetrina.stages.Handoff` between two only
where their contracts differ, one postprocess at exit (-> uint8 at the original size times
the chain's scale, alpha re-attached, optionally composited on a background). Nothing is
rounded to 8 bits, resized or copied to another device between stages.

Everything is checked when the pipeline is built, before the first request: the file, the
models (present, converted with a contract, the right role), every hand-off, and the size
rules of the whole chain.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, device_chain, kernels
from .contract import SpatialRules
from .device_chain import DeviceChain
from .editor import check_image, resized_alpha
from .errors import InputError
from .foreground import estimate_foreground
from .framing import ALPHA_CUT, EmptyMatteWarning, combine_alpha, frame, rgb_guide
from .model import Model
from .modelrefs import file_sha256, resolve_model
from .pipeline_spec import MAX_WHOLE_PIXELS, PipelineError, PipelineSpec, load_spec
from .stages import (
    CleanStage,
    EditStage,
    GenerateStage,
    GenerationRequest,
    Handoff,
    MatteStage,
    combine_rules,
)
from .timing import StepTimes

__all__ = ["EmptyMatteWarning", "GenerationRequest", "Pipeline"]

Stage = EditStage | CleanStage | MatteStage
ImageStage = EditStage | CleanStage


class Pipeline:
    """A validated chain of stages on one device.

    Photos are processed at their own size (sides rounded to the chain's multiple-of rule);
    ``max_side`` (default: none) downscales larger ones first and resizes the result back.
    A photo whose working size exceeds ``tile_side`` (or a model's size limit) is processed in
    overlapping tiles (``tile_overlap`` pixels at least) blended with feathered weights, so
    memory stays bounded and no seam shows. A chain with a model that normalises over the
    whole image (its contract says ``tileable: false``: instance norm, spatial means) is never
    tiled, since every tile would be normalised differently: it runs on the whole photo, up to
    ``max_whole_pixels`` (working size, default 2048 x 2048; a style net takes about 0.75 kB
    per pixel); a larger photo is refused with the fixes named. ``batch_size`` is the most
    images (or tiles) per model call. ``threads``: ONNX Runtime intra-op
    threads; ``kernel_threads``: threads of the pre/post/hand-off kernels (None: OpenMP's
    default). ``spinning`` (default off) lets ONNX Runtime's idle threads spin-wait, which
    takes the cores from the kernels that run between two models.
    Thread-safe: each call works on its own arrays and ONNX Runtime sessions allow concurrent
    runs.
    """

    def __init__(
        self,
        spec: PipelineSpec,
        *,
        device: str = "cpu",
        threads: int | None = None,
        kernel_threads: int | None = None,
        spinning: bool = False,
        max_side: int | None = None,
        tile_side: int | None = 1024,
        tile_overlap: int = 32,
        max_whole_pixels: int = MAX_WHOLE_PIXELS,
        batch_size: int = 4,
        times: StepTimes | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if max_side is not None and max_side < 1:
            raise ValueError(f"max_side must be positive, got {max_side}")
        if tile_side is not None and tile_side < 16:
            raise ValueError(f"tile_side must be >= 16 or None, got {tile_side}")
        if not 0 <= tile_overlap <= 512:
            raise ValueError(f"tile_overlap must be in 0..512, got {tile_overlap}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_whole_pixels < 1:
            raise ValueError(f"max_whole_pixels must be >= 1, got {max_whole_pixels}")
        self.spec = spec
        self.max_side = max_side
        self.tile_overlap = tile_overlap
        self.max_whole_pixels = max_whole_pixels
        self.batch_size = batch_size
        self.kernel_threads = kernel_threads
        self.times = times if times is not None else StepTimes()
        opened: dict[Path, Model] = {}

        def model(ref: str) -> Model:
            path = resolve_model(ref, spec.base_dir, log=log).resolve()
            if path not in opened:
                opened[path] = Model.open(path, device=device, threads=threads, spinning=spinning)
            return opened[path]

        self.source: GenerateStage | None = None
        stages: list[Stage] = []
        for i, s in enumerate(spec.stages):
            where = f"{spec.name}: stage {i + 1} ({s.label})"
            if s.kind == "generate":
                self.source = GenerateStage(s, model(s.models["model"]), where)
            elif s.kind == "edit":
                stages.append(EditStage(s, model(s.models["model"]), where))
            elif s.kind == "matte":
                stages.append(MatteStage(s, model(s.models["model"]), where))
            else:
                stages.append(
                    CleanStage(s, model(s.models["detector"]), model(s.models["inpainter"]), where)
                )
        mattes = [i for i, st in enumerate(stages) if isinstance(st, MatteStage)]
        if mattes and (mattes != [0] or self.source is not None):
            raise PipelineError(
                f"{spec.name}: a matte stage must be the first stage of a photo pipeline",
                hint="put 'matte' first: it mattes the photo as given, the edits come after",
            )
        self.matte: MatteStage | None = stages.pop(0) if mattes else None  # type: ignore[assignment]
        self.stages: tuple[EditStage | CleanStage, ...] = tuple(stages)  # type: ignore[arg-type]
        self.models = tuple(opened.values())
        self.handoffs = self._handoffs()
        self.rules = self._chain_rules()
        self.scale = math.prod(s.rules.scale for s in self.stages)
        self.fixed_size = self._fixed_size()
        if self.fixed_size is not None and self.source is None:
            self._resize_into_static_stages(self.fixed_size)
        elif self.fixed_size is not None and not self._accepts(self.fixed_size):
            raise PipelineError(
                f"{self.spec.name}: static size {self.fixed_size} breaks a stage's rules"
            )
        caps = [c for c in (tile_side, self.rules.max_size) if c is not None]
        self.tile_side = min(caps) if caps and self.rules.tileable else None
        if self.source is not None:
            self._check_generated_size()
        self.device_chain = self._device_chain() if device != "cpu" else None

    @classmethod
    def load(cls, ref: str | os.PathLike[str], **options: Any) -> Pipeline:
        """A shipped pipeline by name, or a YAML file by path (see :class:`Pipeline`)."""
        return cls(load_spec(ref), **options)

    def _device_chain(self) -> DeviceChain | None:
        """The GPU data path, for pipelines of float32 edit and clean stages (no resizing
        hand-off) after a generate stage of a fixed output size, or on photos (tiled or not,
        after a matte stage or not; the matte's alpha is refined and applied on the host).
        Other chains keep their sessions on the device and hand tensors on through the host."""
        if (
            not all(isinstance(s, (EditStage, CleanStage)) for s in self.stages)
            or any(s.input.dtype != "float32" or s.output.dtype != "float32" for s in self.stages)
            or any(h is not None and h.size is not None for h in self.handoffs)
            or (self.source is None and self.matte is None and not self.stages)
            or (self.source is not None and device_chain.generated_size(self.source) is None)
        ):
            return None
        gpu, new_event = device_chain.open_gpu(0)
        return DeviceChain(
            self.stages,
            self.handoffs,
            gpu,
            new_event=new_event,
            source=self.source,
            matte=self.matte,
        )

    # --- checks made once, at build time -------------------------------------------------

    def _handoffs(self) -> list[Handoff | None]:
        """handoffs[i] feeds stages[i]; None for stage 0 of a photo pipeline (preprocess)."""
        previous = self.source.output if self.source is not None else None
        out: list[Handoff | None] = []
        for i, stage in enumerate(self.stages):
            where = f"{self.spec.name}: into stage {i + 1 + (self.source is not None)}"
            out.append(None if previous is None else Handoff.between(previous, stage.input, where))
            previous = stage.output
        return out

    def _chain_rules(self) -> SpatialRules:
        """Size rules on the entry size so that every stage sees a size it accepts."""
        if not self.stages:
            return SpatialRules()
        per_entry: list[SpatialRules] = []
        scale = 1
        for stage in self.stages:
            r = stage.rules
            per_entry.append(
                SpatialRules(
                    multiple_of=r.multiple_of // math.gcd(r.multiple_of, scale),
                    min_size=-(-r.min_size // scale),
                    max_size=None if r.max_size is None else r.max_size // scale,
                    tileable=r.tileable,
                )
            )
            scale *= r.scale
        return combine_rules(per_entry, self.spec.name)

    def _fixed_size(self) -> tuple[int, int] | None:
        """The entry size when a stage's model was exported with a static size: the first
        such stage's size over the scale of the stages before it. A later static stage of
        another size gets a resize in its hand-off (:meth:`_resize_into_static_stages`)."""
        scale = 1
        for i, stage in enumerate(self.stages):
            static = stage.static_size
            if static is not None:
                if static[0] % scale or static[1] % scale:
                    raise PipelineError(
                        f"{self.spec.name}: stage {i + 1}'s static size {static} is not "
                        f"{scale}x an entry size"
                    )
                return static[0] // scale, static[1] // scale
            scale *= stage.rules.scale
        return None

    def _resize_into_static_stages(self, entry: tuple[int, int]) -> None:
        """Follow the tensor's size from ``entry`` through the stages: a static-size stage
        that would get another size gets a resize in its hand-off; every stage must accept
        the size it gets."""
        size = entry
        for i, stage in enumerate(self.stages):
            static = stage.static_size
            if static is not None and static != size:
                handoff = self.handoffs[i]
                if handoff is None:  # the entry is made for the first static stage
                    raise PipelineError(f"{self.spec.name}: no hand-off into stage {i + 1}")
                self.handoffs[i] = dataclasses.replace(handoff, size=static)
                size = static
            r = stage.rules
            if not _fits(r, size):
                raise PipelineError(
                    f"{self.spec.name}: stage {i + 1} ({stage.label}) gets {size[0]}x{size[1]}, "
                    f"which its size rules refuse ({r})"
                )
            size = (size[0] * r.scale, size[1] * r.scale)

    def _check_generated_size(self) -> None:
        size = self.source.size if self.source else None
        if size is None or not self.stages:
            return
        if not self._accepts(size):
            r = self.rules
            raise PipelineError(
                f"{self.spec.name}: the generator makes {size[0]}x{size[1]} images but the "
                f"stages after it need sides that are multiples of {r.multiple_of} in "
                f"[{r.min_size}, {r.max_size or 'any'}]",
                hint="choose editors whose size rules accept the generator's output",
            )

    def _accepts(self, size: tuple[int, int]) -> bool:
        return _fits(self.rules, size)

    # --- running ---------------------------------------------------------------------------

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The entry size a photo of this size is processed at (aspect kept as far as the
        chain's size rules allow; never above ``max_side``; above ``tile_side`` it is tiled)."""
        if self.fixed_size is not None:
            return self.fixed_size
        model_cap = None if self.tile_side is not None else self.rules.max_size  # else: tiles
        caps = [v for v in (self.max_side, model_cap) if v is not None]
        return self.rules.fit(height, width, min(caps) if caps else None)

    def run(
        self,
        images: Sequence[np.ndarray],
        *,
        order: str = "RGB",
        output_order: str | None = None,
    ) -> list[np.ndarray]:
        """Photos (uint8 HxW, HxWx3 or HxWx4 in ``order``) -> uint8 results at the original
        size times the chain's scale; alpha kept unless the output has a background."""
        if self.source is not None:
            raise InputError(
                f"{self.spec.name} generates its images; call generate() with requests"
            )
        output_order = output_order or order
        for i, img in enumerate(images):
            check_image(img, i)
        mattes = self._mattes(images, order) if self.matte is not None else None
        if not self.stages:  # matte only: the photo's own pixels, with the matte as alpha
            return self._finish(
                self._with_alphas(list(images), mattes, order, output_order), output_order
            )
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            size = self.working_size(img.shape[0], img.shape[1])
            self._check_whole_size(size, i)
            groups[size].append(i)
        results: list[np.ndarray | None] = [None] * len(images)
        for size, indices in groups.items():
            if (
                self.fixed_size is None
                and self.tile_side is not None
                and max(size) > self.tile_side
            ):  # tile_side is None for a chain that cannot be tiled
                for i in indices:
                    one = None if mattes is None else [mattes[i]]
                    if self.device_chain is not None:
                        out = self.device_chain.run_tiled(
                            images[i], size, self._tile_plan(size), order, output_order,
                            self.times, batch_size=self.batch_size, keep_alpha=one is None,
                        )  # fmt: skip
                        results[i] = self._device_out([out], [images[i]], output_order, one)[0]
                        continue
                    results[i] = self._run_tiled(images[i], size, order, output_order, one)
                continue
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                if self.device_chain is not None:
                    photos = [images[i] for i in chunk]
                    some = None if mattes is None else [mattes[i] for i in chunk]
                    outs = self.device_chain.run(
                        photos, size, order, output_order, self.times, keep_alpha=some is None
                    )
                    outs = self._device_out(outs, photos, output_order, some)
                    for i, out in zip(chunk, outs, strict=True):
                        results[i] = out
                    continue
                batch = self._entry([images[i] for i in chunk], size, order)
                image_batch = self._chain(batch)
                outs = self._exit(
                    image_batch,
                    [images[i] for i in chunk],
                    output_order,
                    None if mattes is None else [mattes[i] for i in chunk],
                )
                for i, out in zip(chunk, outs, strict=True):
                    results[i] = out
        return [r for r in results if r is not None]

    def _check_whole_size(self, size: tuple[int, int], index: int) -> None:
        """Refuse a photo too large to run whole through a chain that cannot be tiled."""
        if self.rules.tileable or self.fixed_size is not None:
            return
        if size[0] * size[1] <= self.max_whole_pixels:
            return
        reasons = [
            f"{stage.label} ({', '.join(ops)})"
            for stage in self.stages
            for ops in [_whole_image_ops(stage)]
            if ops
        ]
        side = math.isqrt(self.max_whole_pixels)
        raise InputError(
            f"images[{index}]: {self.spec.name} normalises over the whole image in "
            f"{'; '.join(reasons) or 'a stage'}, so it is not tiled, and the photo's working "
            f"size {size[0]}x{size[1]} is above the {self.max_whole_pixels / 1e6:.1f} MP it "
            "runs whole (max_whole_pixels)",
            hint=f"process it downscaled and resized back (max_side={side}, CLI --max-side "
            f"{side}), or raise max_whole_pixels (CLI --max-whole-mp) if memory allows",
        )

    def _device_out(
        self,
        outs: list[np.ndarray],
        photos: list[np.ndarray],
        order: str,
        mattes: list[np.ndarray] | None,
    ) -> list[np.ndarray]:
        """The device path's uint8 results finished as :meth:`_exit` finishes the host
        path's: the mattes' alpha (refined on the host), then crop / canvas / background."""
        if mattes is not None:
            outs = self._with_alphas(outs, mattes, order, order, photos=photos)
        return self._finish(outs, order)

    def _mattes(self, images: Sequence[np.ndarray], order: str) -> list[np.ndarray]:
        """Each photo's matte, (1, 1, h, w) in [0, 1] at the matte stage's size."""
        stage = self.matte
        assert stage is not None
        scale, offset = stage.input.from_uint8_affine()
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            groups[stage.working_size(img.shape[0], img.shape[1])].append(i)
        out: list[np.ndarray | None] = [None] * len(images)
        for size, indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                if self.device_chain is not None:
                    raw = self.device_chain.mattes(
                        [images[i] for i in chunk], size, order, self.times
                    )
                    alpha = stage.normalise(raw)
                    for k, i in enumerate(chunk):
                        out[i] = alpha[k : k + 1]
                    continue
                with self.times.step("matte preprocess"):
                    batch = kernels.preprocess(
                        [images[i] for i in chunk],
                        size,
                        scale=scale,
                        offset=offset,
                        src_order=order,
                        dst_order=stage.input.channels,
                        interpolation=stage.resize,
                        num_threads=self.kernel_threads,
                    )
                with self.times.step(f"1 {stage.label}"):
                    alpha = stage.matte(batch)
                for k, i in enumerate(chunk):
                    out[i] = alpha[k : k + 1]
        return out  # type: ignore[return-value]

    def _run_tiled(
        self,
        image: np.ndarray,
        size: tuple[int, int],
        order: str,
        output_order: str,
        matte: list[np.ndarray] | None,
    ) -> np.ndarray:
        """One large photo in overlapping tiles of at most ``tile_side``, blended with feathered
        weights in the float domain (no seams), then one postprocess."""
        plan = self._tile_plan(size)
        whole = self._entry([image], size, order)[0].transpose(1, 2, 0)  # HWC view
        tiles = plan.split(whole)
        done: list[np.ndarray] = []
        for start in range(0, len(tiles), self.batch_size):
            with self.times.step("tile split"):
                batch = np.ascontiguousarray(
                    np.stack(tiles[start : start + self.batch_size]).transpose(0, 3, 1, 2)
                )
            done += list(self._chain(batch).transpose(0, 2, 3, 1))
        with self.times.step("tile blend"):
            blended = plan.blend(done, self.scale).transpose(2, 0, 1)[None]
        return self._exit(np.ascontiguousarray(blended), [image], output_order, matte)[0]

    def _tile_plan(self, size: tuple[int, int]) -> kernels.TilePlan:
        """Tiles of at most ``tile_side`` over an entry of ``size`` (sides multiples of the
        chain's step, so every tile lies inside it), overlapping by ``tile_overlap``."""
        step = self.rules.multiple_of
        side = max(step, (self.tile_side // step) * step)  # type: ignore[operator]
        overlap = min(side - step, -(-self.tile_overlap // step) * step)

        def balanced(length: int) -> int:
            """The smallest tile (<= side) that covers ``length`` with as many tiles as
            ``side`` would need: a 1504 px side takes two 768 px tiles, not two of 1024."""
            if length <= side:
                return -(-length // step) * step
            n = -(-(length - overlap) // (side - overlap))
            return min(side, -(-(length + (n - 1) * overlap) // n // step) * step)

        tiles = (balanced(size[0]), balanced(size[1]))
        # an axis that one tile covers needs no overlap (and its tile may be thinner than it)
        overlaps = tuple(
            0 if tile >= length else overlap for tile, length in zip(tiles, size, strict=True)
        )
        return kernels.plan_tiles(size, tiles, overlaps, multiple=step)

    def edit(
        self,
        images: Sequence[np.ndarray],
        *,
        order: str = "RGB",
        output_order: str | None = None,
    ) -> list[np.ndarray]:
        """The same as :meth:`run` (the name file runs and batchers call)."""
        return self.run(images, order=order, output_order=output_order)

    def generate(
        self, requests: Sequence[GenerationRequest], *, output_order: str = "RGB"
    ) -> list[np.ndarray]:
        """Requests (seed + labels) -> uint8 images; the same seed and models give the same
        pixels on the CPU (alone or in a batch). Every request is checked before any runs."""
        for i, request in enumerate(requests):
            try:
                self.check_request(request)
            except InputError as exc:
                raise InputError(f"requests[{i}]: {exc}") from None
        results: list[np.ndarray] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = list(requests[start : start + self.batch_size])
            if self.device_chain is not None:
                outs = self.device_chain.generate(chunk, output_order, self.times)
                results += self._finish(outs, output_order)
                continue
            with self.times.step(f"1 {self.source.label}"):
                batch = self.source.run(chunk)
            results += self._exit(self._chain(batch, first=2), None, output_order, None)
        return results

    def check_request(self, request: GenerationRequest) -> None:
        """Raise :class:`InputError` unless ``request`` is one this generation pipeline can
        run (a seed, and known labels with known values): what a batcher checks at submit."""
        if self.source is None:
            raise InputError(f"{self.spec.name} edits photos; call run() with images")
        if not isinstance(request, GenerationRequest) or not isinstance(request.labels, dict):
            raise InputError(
                f"expected a GenerationRequest(seed, labels: dict), got {request!r:.80}"
            )
        self.source.inputs([request])  # the feeds' checks: seed, label names and values

    def _entry(self, images: list[np.ndarray], size: tuple[int, int], order: str) -> np.ndarray:
        spec = self.stages[0].input
        scale, offset = spec.from_uint8_affine()
        with self.times.step("preprocess"):
            return kernels.preprocess(
                images,
                size,
                scale=scale,
                offset=offset,
                src_order=order,
                dst_order=spec.channels,
                dtype=np.dtype(spec.dtype),
                num_threads=self.kernel_threads,
            )

    def _chain(self, batch: np.ndarray, first: int = 1) -> np.ndarray:
        """The image stages over ``batch``."""
        first += self.matte is not None
        for i, (stage, handoff) in enumerate(zip(self.stages, self.handoffs, strict=True)):
            if handoff is not None:
                with self.times.step("hand-off"):
                    batch = handoff.apply(batch, self.kernel_threads)
            with self.times.step(f"{i + first} {stage.label}"):
                batch = stage.run(batch)
        return batch

    def _exit(
        self,
        batch: np.ndarray,
        originals: list[np.ndarray] | None,
        order: str,
        mattes: list[np.ndarray] | None,
    ) -> list[np.ndarray]:
        """The last stage's batch -> uint8 images at the original size times the chain's scale
        (alpha: the matte's, times the photo's own), framed and composited as the output says."""
        last = self.stages[-1].output if self.stages else self.source.output  # type: ignore[union-attr]
        scale, offset = last.to_uint8_affine()
        n, _, h, w = batch.shape
        if originals is None:
            sizes = [(h, w)] * n
            alphas: list[np.ndarray | None] | None = [None] * n
        else:
            sizes = [(img.shape[0] * self.scale, img.shape[1] * self.scale) for img in originals]
            alphas = [resized_alpha(img, s) for img, s in zip(originals, sizes, strict=True)]
        if alphas is not None and all(a is None for a in alphas):
            alphas = None
        with self.times.step("postprocess"):
            out = kernels.postprocess(
                batch,
                sizes,
                scale=scale,
                offset=offset,
                src_order=last.channels,
                dst_order=order,
                alphas=None if mattes is not None else alphas,
                num_threads=self.kernel_threads,
            )
        if mattes is not None and originals is not None:
            out = self._with_alphas(out, mattes, order, order, photos=originals)
        return self._finish(out, order)

    def _with_alphas(
        self,
        images: list[np.ndarray],
        mattes: list[np.ndarray] | None,
        order: str,
        output_order: str,
        *,
        photos: list[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """RGBA in ``output_order``: each image's colour (``order``) with its matte's alpha at
        the image's size, times the photo's own alpha; the matte is refined on ``photos`` (the
        originals; default: the images themselves)."""
        stage = self.matte
        assert stage is not None and mattes is not None
        photos = photos or images
        out = []
        for img, matte, photo in zip(images, mattes, photos, strict=True):
            with self.times.step("alpha"):
                colour = img if img.ndim == 3 else img[:, :, None]
                colour = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour
                colour = np.ascontiguousarray(colour)  # a caller's view: OpenCV wants rows
                gpu = self.device_chain.alpha if self.device_chain is not None else None
                alpha = stage.to_alpha(matte, colour, order, self.kernel_threads, gpu=gpu)
                if (
                    stage.empty_check
                    and alpha.any()
                    and not stage.follows_edges(colour, alpha, order, self.kernel_threads)
                ):
                    alpha[:] = 0  # the net drew an outline the photo does not have
                if not (alpha >= ALPHA_CUT).any():
                    warnings.warn(
                        f"{self.spec.name}: no product found (the matte is empty); the output "
                        "is fully transparent",
                        EmptyMatteWarning,
                        stacklevel=4,
                    )
                own = photo[:, :, 3] if photo.ndim == 3 and photo.shape[2] == 4 else None
                if own is not None and own.shape != alpha.shape:
                    own = resized_alpha(photo, alpha.shape)
                alpha = combine_alpha(alpha, own)
            if stage.decontaminate:
                with self.times.step("foreground"):
                    colour = estimate_foreground(np.ascontiguousarray(colour[:, :, :3]), alpha)
            with self.times.step("alpha"):
                rgba = kernels.cutout(
                    colour, alpha, swap=order != output_order, num_threads=self.kernel_threads
                )
                if stage.shadow > 0:
                    guide = rgb_guide(colour, order)
                    shadow = kernels.keep_shadow(guide, alpha, strength=stage.shadow)
                    rgba = kernels.merge_shadow(rgba, shadow)
            out.append(rgba)
        return out

    def _finish(self, out: list[np.ndarray], order: str) -> list[np.ndarray]:
        """Crop / canvas / background as the pipeline's output says."""
        spec = self.spec.output
        if spec.get("crop") or spec.get("canvas"):
            with self.times.step("frame"):
                out = [
                    frame(
                        img,
                        crop=spec["crop"],
                        canvas=spec["canvas"],
                        fill=spec["fill"],
                        name=self.spec.name,
                        warn=self.matte is None,  # a matte stage has warned already
                    )
                    for img in out
                ]
        background = spec.get("background")
        if background is not None:
            colour = background if order == "RGB" else background[::-1]
            with self.times.step("composite"):
                out = [
                    kernels.composite(img, colour) if img.ndim == 3 and img.shape[2] == 4 else img
                    for img in out
                ]
        return out

    # --- description ----------------------------------------------------------------------

    def describe(self) -> list[str]:
        """One line per step: entry, stages, hand-offs, exit."""
        lines = []
        if self.matte is not None:
            m = self.matte
            size = f"{m.size[0]}x{m.size[1]}" if m.size else "the photo's size"
            extras = [f"guided refine r={m.refine}" if m.refine else ""]
            extras += [f"threshold {m.low:g}..{m.high:g}" if (m.low, m.high) != (0, 1) else ""]
            extras += [f"shadows kept at {m.shadow:g}" if m.shadow else ""]
            extras += ["edge colours decontaminated" if m.decontaminate else ""]
            lines.append(
                f"1 {m.label}: photo resized to {size} -> alpha, back to full size"
                + "".join(f", {e}" for e in extras if e)
            )
        if self.source is None and not self.stages:
            kept = "except under soft edges" if self.matte and self.matte.decontaminate else ""
            lines.append(f"(the photo's pixels are kept as they are{' ' * bool(kept)}{kept})")
        elif self.source is None:
            first = self.stages[0].input
            where = (
                f"resized to {self.fixed_size[0]}x{self.fixed_size[1]} (a static-size model)"
                if self.fixed_size
                else f"sides multiple of {self.rules.multiple_of}"
                + (f", <= {self.max_side} px" if self.max_side else "")
                + (f", tiles of {self.tile_side} px above" if self.tile_side else "")
                + (
                    ""
                    if self.rules.tileable
                    else f", never tiled (whole-image statistics), at most "
                    f"{self.max_whole_pixels / 1e6:.1f} MP"
                )
            )
            lines.append(
                f"preprocess: uint8 photo -> {first.channels} {_range(first.range)} NCHW, {where}"
            )
        else:
            lines.append(
                f"1 {self.source.label}: seed + labels -> {_range(self.source.output.range)}"
            )
        offset = 1 + (self.source is not None) + (self.matte is not None)
        for i, (stage, handoff) in enumerate(zip(self.stages, self.handoffs, strict=True)):
            if handoff is not None:
                lines.append(
                    f"  hand-off: {handoff.describe()}" + ("" if handoff.converts else " (clamp)")
                )
            extra = f" (x{stage.rules.scale})" if stage.rules.scale != 1 else ""
            lines.append(f"{i + offset} {stage.label}{extra}")
        out = self.spec.output
        bg = out.get("background")
        lines.append(
            "postprocess: -> uint8, original size"
            + (f" x{self.scale}" if self.scale != 1 else "")
            + (", cropped to the product" if out.get("crop") else "")
            + (
                f", centred on {out['canvas']} px square at {out['fill']:.0%}"
                if out.get("canvas")
                else ""
            )
            + (f", on background {bg}" if bg else ", alpha kept")
            + f", {out['format']}"
        )
        return lines

    def provenance(self, request: GenerationRequest | None = None) -> dict[str, str]:
        """Text for the output's metadata: pipeline, stages, model hashes, seed and labels."""
        first = self.source or self.matte
        labels = ([first.label] if first else []) + [s.label for s in self.stages]
        meta = {
            "vetrina:version": __version__,
            "vetrina:pipeline": self.spec.name,
            "vetrina:stages": " > ".join(labels),
            "vetrina:models": " ".join(f"{m.path.name}={self.model_hash(m)}" for m in self.models),
        }
        if request is not None:
            meta["vetrina:seed"] = str(request.seed)
            meta.update({f"vetrina:{k}": v for k, v in sorted(request.labels.items())})
        return meta

    def model_hash(self, model: Model) -> str:
        cache = self.__dict__.setdefault("_hashes", {})
        if model.path not in cache:
            cache[model.path] = file_sha256(model.path)
        return cache[model.path]


def _range(r: tuple[float, float] | None) -> str:
    return "none" if r is None else f"[{r[0]:g}, {r[1]:g}]"


def _whole_image_ops(stage: EditStage | CleanStage) -> list[str]:
    """The ops that make ``stage`` depend on the whole image, from its models' contracts
    (empty when its models can be tiled)."""
    return sorted(
        {
            str(op)
            for model in stage.models
            if not model.contract.spatial.tileable
            for op in model.contract.provenance.get("whole_image_ops") or ["whole-image statistics"]
        }
    )


def _fits(rules: SpatialRules, size: tuple[int, int]) -> bool:
    """Whether both sides of ``size`` keep ``rules`` (multiple-of, min and max size)."""
    return all(
        side % rules.multiple_of == 0
        and side >= rules.min_size
        and (rules.max_size is None or side <= rules.max_size)
        for side in size
    )
