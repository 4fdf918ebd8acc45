"""The stages a pipeline chains, and the hand-off between two of them.

Every stage takes and returns an NCHW batch in its model's own domain (value range, channel
order, float32 or float16), as the contracts say. A :class:`Handoff` maps one stage's output
domain onto the next one's input domain in one fused kernel pass (``kernels.adapt``: values,
channel order and dtype at once), only where the two contracts differ, and clamps to the next
model's input range (each model was trained on in-range inputs; a uint8 round trip would clamp
too, without the rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import kernels
from .contract import Affine1, SpatialRules, TensorSpec
from .errors import InputError, ModelError
from .framing import rgb_guide
from .model import Model
from .pipeline_spec import MATTE_SIZE_PHOTO, PipelineError, StageSpec

IMAGE_ROLES = ("editor", "upscaler")


@dataclass(frozen=True)
class Handoff:
    """float NCHW in ``src``'s domain and channel order -> ``dst``'s, clamped to its range.

    ``scale``/``offset`` are numbers, or one per output channel where either side has a
    per-channel ``mean``/``std`` normalisation. ``size``: the (height, width) the next model
    was exported at (a static size) when the tensor arrives at another size: resized in the
    same pass ("area" when both sides shrink, else bilinear)."""

    src: TensorSpec
    dst: TensorSpec
    scale: Affine1
    offset: Affine1
    swap: bool
    size: tuple[int, int] | None = None

    @classmethod
    def between(cls, src: TensorSpec, dst: TensorSpec, where: str) -> Handoff:
        if src.range is None or dst.range is None:
            raise PipelineError(f"{where}: {src.name!r} -> {dst.name!r} has no value range")
        if {src.channels, dst.channels} - {"RGB", "BGR"}:
            raise PipelineError(
                f"{where}: cannot hand {src.channels} {src.name!r} to {dst.channels} {dst.name!r}"
            )
        swap = src.channels != dst.channels
        to_u8, from_u8 = (
            _per_channel(*src.to_uint8_affine()),
            _per_channel(*dst.from_uint8_affine()),
        )
        scale, offset = [], []
        for c in range(3):
            (s, o), (f, g) = to_u8[2 - c if swap else c], from_u8[c]
            scale.append(s * f)
            offset.append(o * f + g)
        if len(set(scale)) == 1 and len(set(offset)) == 1:
            return cls(src, dst, scale[0], offset[0], swap)
        return cls(src, dst, tuple(scale), tuple(offset), swap)

    @property
    def converts(self) -> bool:
        """Whether values, channels or the dtype change (else only the clamp runs)."""
        scales = self.scale if isinstance(self.scale, tuple) else (self.scale,)
        offsets = self.offset if isinstance(self.offset, tuple) else (self.offset,)
        same = all(math.isclose(s, 1.0) for s in scales) and all(o == 0.0 for o in offsets)
        return self.swap or not same or self.src.dtype != self.dst.dtype or self.size is not None

    def describe(self) -> str:
        parts = []
        if self.src.range != self.dst.range:
            parts.append(f"range {_fmt(self.src.range)} -> {_fmt(self.dst.range)}")
        if (self.src.mean, self.src.std) != (self.dst.mean, self.dst.std):
            parts.append(f"mean/std {_norm(self.src)} -> {_norm(self.dst)}")
        if self.swap:
            parts.append(f"{self.src.channels} -> {self.dst.channels}")
        if self.src.dtype != self.dst.dtype:
            parts.append(f"{self.src.dtype} -> {self.dst.dtype}")
        if self.size is not None:
            parts.append(f"resize to {self.size[0]}x{self.size[1]} (a static-size model)")
        return ", ".join(parts) or "same domain"

    def apply(self, batch: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """The batch in the next domain; may reuse ``batch``'s memory (the caller's is spent)."""
        if self.converts or batch.dtype != self.dst.dtype:
            size = self.size if self.size != tuple(batch.shape[2:]) else None
            shrinks = size is not None and all(
                new < old for new, old in zip(size, batch.shape[2:], strict=True)
            )
            batch = kernels.adapt(
                batch,
                size,
                interpolation="area" if shrinks else "bilinear",
                scale=self.scale,
                offset=self.offset,
                src_order=self.src.channels,
                dst_order=self.dst.channels,
                dtype=np.dtype(self.dst.dtype),
                num_threads=num_threads,
            )
        lo, hi = self.dst.bounds
        if isinstance(lo, tuple):
            lo = np.asarray(lo, np.float32)[:, None, None]
            hi = np.asarray(hi, np.float32)[:, None, None]
        return np.clip(batch, lo, hi, out=batch)


def _require_role(model: Model, role: str, need: str, ref: str, where: str) -> None:
    """A :class:`PipelineError` unless ``model`` (``ref`` in the pipeline) has ``role``."""
    if model.contract.role != role:
        raise PipelineError(f"{where}: {need}; {ref} is a {model.contract.role}")


def _require_float32(model: Model, ref: str, where: str) -> None:
    """A :class:`PipelineError` for a float16 image or mask tensor where only edit stages
    take float16 (clean and matte stages compute on their masks in float32)."""
    tensors = (*model.contract.inputs, *model.contract.outputs)
    half = [t.name for t in tensors if t.semantic in ("image", "mask") and t.dtype != "float32"]
    if half:
        raise PipelineError(
            f"{where}: {ref} has float16 tensors ({', '.join(half)}); only edit stages take "
            "float16 images",
            hint="convert it with float32 inputs and outputs (vetrina convert --precision fp16 "
            "keeps them float32)",
        )


def _per_channel(scale: Affine1, offset: Affine1) -> list[tuple[float, float]]:
    scales = scale if isinstance(scale, tuple) else (scale,) * 3
    offsets = offset if isinstance(offset, tuple) else (offset,) * 3
    return list(zip(scales, offsets, strict=True))


def _norm(spec: TensorSpec) -> str:
    if spec.mean is None:
        return "none"
    return (
        "("
        + ", ".join(f"{m:g}/{s:g}" for m, s in zip(spec.mean, spec.std or (), strict=True))
        + ")"
    )


class EditStage:
    """An image-to-image model (editor, style, enhancer, upscaler)."""

    def __init__(self, spec: StageSpec, model: Model, where: str) -> None:
        role = model.contract.role
        if role not in IMAGE_ROLES:
            raise PipelineError(
                f"{where}: {spec.kind} needs an editor or upscaler; {spec.models['model']} is a "
                f"{role}",
                hint="use 'clean' for detector + inpainter, 'generate' for generators",
            )
        self.label = spec.label
        self.models = (model,)
        self.input = model.contract.input("image")
        self.output = model.contract.output("image")
        self.rules = model.contract.spatial
        self.static_size = model.contract.static_size
        self._session = model.session
        self._output_index = model.output_index(self.output.name)

    def run(self, batch: np.ndarray) -> np.ndarray:
        out = self._session.run({self.input.name: batch})[self._output_index]
        return _checked(out, batch, self.rules.scale, 3, self.label, self.output.dtype)


class CleanStage:
    """Defect removal: the detector finds the defects, the inpainter repaints them.

    The detector's probability map is thresholded (``threshold``) and optionally grown by
    ``dilate`` pixels (the inpainter then also repaints a defect's fringe).
    """

    def __init__(self, spec: StageSpec, detector: Model, inpainter: Model, where: str) -> None:
        for model, role in ((detector, "detector"), (inpainter, "inpainter")):
            _require_role(model, role, f"clean needs a {role} as {role}", spec.models[role], where)
            _require_float32(model, spec.models[role], where)
        self.label = spec.label
        self.models = (detector, inpainter)
        self.threshold = float(spec.params["threshold"])
        self.dilate = int(spec.params["dilate"])
        self.input = inpainter.contract.input("image")
        self.mask_input = inpainter.contract.input("mask")
        self.output = inpainter.contract.output("image")
        self.mask_output = detector.contract.output("mask")
        self.to_detector = Handoff.between(self.input, detector.contract.input("image"), where)
        self.rules = combine_rules([detector.contract.spatial, inpainter.contract.spatial], where)
        sizes = {m.contract.static_size for m in (detector, inpainter)} - {None}
        if len(sizes) > 1:
            raise PipelineError(f"{where}: detector and inpainter have different static sizes")
        self.static_size = sizes.pop() if sizes else None
        if self.rules.scale != 1:
            raise PipelineError(f"{where}: detector and inpainter must keep the size")
        self._detector, self._inpainter = detector, inpainter
        self._detector_input = detector.contract.input("image").name
        self._mask_index = detector.output_index(self.mask_output.name)
        self._image_index = inpainter.output_index(self.output.name)

    def mask_values(self) -> tuple[float, float, float]:
        """(level, on, off) of :func:`vetrina.kernels.defect_mask`: the detector's output at
        ``threshold`` of its range, and the inpainter's mask values for a defect and for a
        clean pixel (its mask range's ends, as float32)."""
        lo, hi = self.mask_output.range or (0.0, 1.0)
        m_lo, m_hi = self.mask_input.range or (0.0, 1.0)
        span, base = np.float32(m_hi - m_lo), np.float32(m_lo)
        on, off = span + base, np.float32(0) * span + base
        return lo + self.threshold * (hi - lo), float(on), float(off)

    def detect(self, batch: np.ndarray) -> np.ndarray:
        """The binary defect mask (N, 1, H, W) float32 in the inpainter's mask range."""
        feed = self.to_detector.apply(batch.copy()) if self.to_detector.converts else batch
        prob = self._detector.session.run({self._detector_input: feed})[self._mask_index]
        prob = _checked(prob, batch, 1, 1, self.label + " (detector)")
        level, on, off = self.mask_values()
        prob = np.ascontiguousarray(prob, np.float32)
        return kernels.defect_mask(prob, level, self.dilate, on=on, off=off)

    def run(self, batch: np.ndarray) -> np.ndarray:
        mask = self.detect(batch)
        feeds = {self.input.name: batch, self.mask_input.name: mask}
        out = self._inpainter.session.run(feeds)[self._image_index]
        return _checked(out, batch, 1, 3, self.label)


class MatteStage:
    """Salient-object matting: the model's alpha for a photo, at the model's own input size.

    A matting model is trained at one scale (rembg's U²-Net files at 320 x 320, the zoo model
    at 128), so the photo is resized to ``size`` for it (area filter) and the matte is resized
    back to the output size with :func:`vetrina.kernels.matte_to_alpha` -- optionally refined
    by a guided filter on the full-resolution photo, ramped by ``threshold`` and joined by the
    photo's soft shadows (``shadow``). The photo's colours are kept, except under soft edges
    with ``decontaminate`` (the background's share removed). A matte stage comes
    first in a pipeline: it sees the photo as given."""

    DEFAULT_SIZE = (320, 320)

    def __init__(self, spec: StageSpec, model: Model, where: str) -> None:
        _require_role(model, "matting", "matte needs a matting model", spec.models["model"], where)
        _require_float32(model, spec.models["model"], where)
        self.label = spec.label
        self.models = (model,)
        self.input = model.contract.input("image")
        self.alpha = model.contract.output("mask")
        self.rules = model.contract.spatial
        if self.rules.scale != 1:
            raise PipelineError(f"{where}: a matting model must keep the size")
        params = spec.params
        self.size = self._size(params["size"], model.contract.static_size, where)
        self.refine = int(params["refine"])
        self.eps = float(params["eps"])
        self.low, self.high = params["threshold"] or (0.0, 1.0)
        self.shadow = float(params["shadow"])
        self.stretch = bool(params["stretch"])
        self.empty_check = bool(params["empty_check"])
        self.decontaminate = bool(params["decontaminate"])
        self.resize = str(params["resize"])
        self._session = model.session
        self._alpha_index = model.output_index(self.alpha.name)

    def _size(
        self, asked: object, static: tuple[int, int] | None, where: str
    ) -> tuple[int, int] | None:
        """The model's input size; None: each photo's own working size (``size: photo``)."""
        if static is not None:
            if asked not in (None, static):
                raise PipelineError(
                    f"{where}: size {asked} but the model was exported at {static[0]}x{static[1]}",
                    hint="drop 'size' (a static model runs at its own size)",
                )
            return static
        if asked == MATTE_SIZE_PHOTO:
            return None
        size = asked or self.DEFAULT_SIZE
        r = self.rules
        if any(
            v % r.multiple_of or v < r.min_size or (r.max_size and v > r.max_size) for v in size
        ):
            raise PipelineError(
                f"{where}: matte size {size[0]}x{size[1]} breaks the model's rules (sides "
                f"multiple of {r.multiple_of} in [{r.min_size}, {r.max_size or 'any'}])"
            )
        return size  # type: ignore[return-value]

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The size a photo of ``height`` x ``width`` is matted at."""
        return self.size or self.rules.fit(height, width)

    def matte(self, batch: np.ndarray) -> np.ndarray:
        """Alpha in [0, 1], float32 (N, 1, H, W), of a batch in the model's input domain."""
        out = self._session.run({self.input.name: batch})[self._alpha_index]
        return self.normalise(_checked(out, batch, 1, 1, self.label))

    def normalise(self, out: np.ndarray) -> np.ndarray:
        """The model's alpha output (N, 1, H, W) -> float32 in [0, 1]: mapped from the
        contract's range, stretched per matte when ``stretch``, clipped (in place)."""
        out = np.ascontiguousarray(out, dtype=np.float32)
        lo, hi = self.alpha.range or (0.0, 1.0)
        if (lo, hi) != (0.0, 1.0):
            out = (out - np.float32(lo)) * np.float32(1.0 / (hi - lo))
        if self.stretch:  # rembg's convention: each matte rescaled to span [0, 1]
            low = out.min(axis=(1, 2, 3), keepdims=True)
            span = out.max(axis=(1, 2, 3), keepdims=True) - low
            out = (out - low) / np.where(span > 0, span, np.float32(1.0))
        return np.clip(out, 0.0, 1.0, out=out)

    def to_alpha(
        self,
        matte: np.ndarray,
        photo: np.ndarray,
        order: str = "RGB",
        num_threads: int | None = None,
        *,
        gpu: Any = None,
    ) -> np.ndarray:
        """One (1, 1, h, w) matte -> uint8 (H, W) alpha at the size of ``photo`` (uint8
        (H, W, 3|4) in ``order``, at the output size): resized, refined on the photo (an RGB
        copy is made only then), ramped. ``gpu``: a
        :class:`~vetrina.kernels.gpu_alpha.GpuAlpha` that computes it on its device instead
        (the same numerics, bit for bit)."""
        h, w = matte.shape[2:]
        factor = max(photo.shape[0] / h, photo.shape[1] / w)
        radius = max(1, round(self.refine * factor)) if self.refine else 0
        options = {
            "guide": rgb_guide(photo, order) if radius else None,
            "radius": radius,
            "eps": self.eps,
            "low": self.low,
            "high": self.high,
        }
        if gpu is not None:
            return gpu.matte_to_alpha(matte[0, 0], photo.shape[:2], **options)
        return kernels.matte_to_alpha(
            matte[0, 0], photo.shape[:2], num_threads=num_threads, **options
        )

    EDGE_FLOOR = 8.0
    """Sobel magnitude (levels per pixel, grey) below which an outline follows no edge."""

    @classmethod
    def follows_edges(
        cls,
        photo: np.ndarray,
        alpha: np.ndarray,
        order: str = "RGB",
        num_threads: int | None = None,
    ) -> bool:
        """Whether the outline of ``alpha`` (>= 128) lies on edges of the ``photo`` (uint8
        (H, W, 3|4) in ``order``): its mean Sobel magnitude must reach the photo's 75th
        percentile and :attr:`EDGE_FLOOR` (:func:`vetrina.kernels.outline_edges`).

        A salient-object net always finds *something*, even on a blank or noise image; there
        the outline it draws crosses no edge (mean <= 0.76 x the 75th percentile on blank,
        gradient and noise images), while on held-out product photos on plain, textured,
        shadowed and product-coloured backgrounds it is 1.37x or more, with the coarse matte
        of rembg's 320 px convention too (README)."""
        import cv2

        rgb = order == "RGB"
        if photo.shape[2] == 4:
            code = cv2.COLOR_RGBA2GRAY if rgb else cv2.COLOR_BGRA2GRAY
        else:
            code = cv2.COLOR_RGB2GRAY if rgb else cv2.COLOR_BGR2GRAY
        edges = kernels.outline_edges(
            cv2.cvtColor(photo, code), alpha, cut=128, percentile=75.0, num_threads=num_threads
        )
        if edges.outline_mean is None:
            return False
        return edges.outline_mean >= max(cls.EDGE_FLOOR, edges.typical)


@dataclass(frozen=True)
class GenerationRequest:
    """One picture to generate: a seed (fixes the latent) and a class name per label input
    (for the zoo generators ``{"category": "sneaker", "colour": "red"}``)."""

    seed: int
    labels: dict[str, str]


class GenerateStage:
    """A generator: (seeded latent z, labels) -> image at the model's native size."""

    def __init__(self, spec: StageSpec, model: Model, where: str) -> None:
        _require_role(model, "generator", "generate needs a generator", spec.models["model"], where)
        self.label = spec.label
        self.models = (model,)
        contract = model.contract
        self.z = contract.input("z")
        self.label_inputs = tuple(t for t in contract.inputs if t.semantic == "label")
        for t in self.label_inputs:
            if t.labels is None:
                raise PipelineError(
                    f"{where}: {spec.models['model']}'s input {t.name!r} has no label names in "
                    "its contract",
                    hint="re-convert the generator with this vetrina version",
                )
        self.output = contract.output("image")
        self.rules = SpatialRules(multiple_of=1, min_size=1, scale=1)
        self._session = model.session
        self._output_index = model.output_index(self.output.name)
        shape = next(t.shape for t in model.session.inputs if t.name == self.z.name)
        if len(shape) < 2 or not isinstance(shape[1], int):
            raise PipelineError(f"{where}: cannot read the latent size from z's shape {shape}")
        self.z_shape = tuple(int(d) for d in shape[1:])
        sizes = [s for s in (contract.spatial.min_size, contract.spatial.max_size) if s]
        self.size = (sizes[-1], sizes[-1]) if len(set(sizes)) == 1 else None

    def inputs(self, requests: list[GenerationRequest]) -> dict[str, np.ndarray]:
        """The model's feeds for ``requests``: z from each seed, label indices by name."""
        z = np.stack([latent(r.seed, self.z_shape) for r in requests])
        feeds = {self.z.name: z}
        names = {t.name for t in self.label_inputs}
        for r in requests:
            unknown = set(r.labels) - names
            if unknown:
                raise InputError(
                    f"unknown label(s) {', '.join(sorted(unknown))}; this generator takes "
                    f"{', '.join(sorted(names)) or 'none'}"
                )
        for t in self.label_inputs:
            values = []
            for r in requests:
                if t.name not in r.labels:
                    raise InputError(
                        f"missing {t.name}; valid: {', '.join(t.labels or ())}",
                        hint=f"pass --{t.name} NAME",
                    )
                values.append(_label_index(t, r.labels[t.name]))
            feeds[t.name] = np.asarray(values, dtype=np.int64)
        return feeds

    def run(self, requests: list[GenerationRequest]) -> np.ndarray:
        out = self._session.run(self.inputs(requests))[self._output_index]
        if out.ndim != 4 or out.shape[0] != len(requests) or out.shape[1] != 3:
            raise ModelError(f"{self.label}: output has shape {out.shape}; expected (N, 3, H, W)")
        return np.ascontiguousarray(out, dtype=np.float32)


def latent(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """The latent of ``seed``: standard normal from ``np.random.default_rng(seed)``, float32
    (the same numbers as ``vetrina.models.latents.latent``, so the zoo's pictures match)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    count = math.prod(shape)
    values = np.random.default_rng(int(seed)).standard_normal(count).astype(np.float32)
    return values.reshape(shape)


def combine_rules(rules: list[SpatialRules], where: str) -> SpatialRules:
    """The size rules that satisfy every one of ``rules`` (same input size, no scaling)."""
    multiple = math.lcm(*(r.multiple_of for r in rules))
    low = max(r.min_size for r in rules)
    caps = [r.max_size for r in rules if r.max_size is not None]
    high = min(caps) if caps else None
    if high is not None and (high // multiple) * multiple < max(low, multiple):
        raise PipelineError(f"{where}: the models' size rules exclude every size ({rules})")
    return SpatialRules(
        multiple_of=multiple,
        min_size=low,
        max_size=high,
        scale=rules[0].scale,
        tileable=all(r.tileable for r in rules),
    )


def _label_index(spec: TensorSpec, value: str) -> int:
    labels = spec.labels or ()
    if value not in labels:
        raise InputError(f"unknown {spec.name} {value!r}; valid: {', '.join(labels)}")
    return labels.index(value)


def _checked(
    out: np.ndarray,
    batch: np.ndarray,
    scale: int,
    channels: int,
    label: str,
    dtype: str = "float32",
):
    n, _, h, w = batch.shape
    expected = (n, channels, h * scale, w * scale)
    if out.shape != expected or out.dtype != dtype:
        raise ModelError(
            f"{label}: output is {out.dtype} {out.shape}; the contract promises {dtype} {expected}"
        )
    return out


def _fmt(r: tuple[float, float] | None) -> str:
    return "none" if r is None else f"[{r[0]:g}, {r[1]:g}]"
