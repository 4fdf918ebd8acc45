"""The model contract: what the runtime needs to feed a model and read its outputs.

Converters write it as JSON into the ONNX ``metadata_props`` under :data:`METADATA_KEY`;
the engine reads it back, so a user never repeats layout, ranges or size rules by hand.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ModelError

METADATA_KEY = "vetrina.contract"
Affine1 = float | tuple[float, ...]
"""One scale or offset: a number, or one per channel."""
CONTRACT_VERSION = 1

ROLES = ("generator", "editor", "inpainter", "detector", "upscaler", "classifier", "matting")
SEMANTICS = ("image", "mask", "z", "label")
LAYOUTS = ("NCHW", "NC", "N")
CHANNEL_ORDERS = ("RGB", "BGR", "L", "")
DTYPES = ("float32", "float16", "int64")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output.

    ``range`` is the value interval that the uint8 interval [0, 255] maps onto linearly
    (``(0, 1)``, ``(-1, 1)``, ...); meaningless for latent inputs, where it is ``None``.
    ``mean`` and ``std`` (one value per channel, in the tensor's channel order; both or
    neither) normalise further: the model sees ``(v - mean[c]) / std[c]`` with ``v`` in
    ``range`` -- the ImageNet convention of rembg's U²-Net files is ``range (0, 1)``,
    ``mean (0.485, 0.456, 0.406)``, ``std (0.229, 0.224, 0.225)``.
    ``labels`` names the classes of a ``label`` input (index i is ``labels[i]``), so a request
    can say "red sneaker" instead of indices.
    """

    name: str
    semantic: str = "image"
    layout: str = "NCHW"
    channels: str = "RGB"
    range: tuple[float, float] | None = (0.0, 1.0)
    dtype: str = "float32"
    labels: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ModelError(f"contract: a tensor's name is {self.name!r}; expected a string")
        _check_choice("semantic", self.semantic, SEMANTICS)
        _check_choice("layout", self.layout, LAYOUTS)
        _check_choice("channels", self.channels, CHANNEL_ORDERS)
        _check_choice("dtype", self.dtype, DTYPES)
        if self.range is not None:
            values = _finite(self.range)
            if values is None or len(values) != 2 or not values[0] < values[1]:
                raise ModelError(
                    f"contract: tensor {self.name!r} has range {self.range!r}; expected "
                    "[low, high], finite numbers with low < high"
                )
            object.__setattr__(self, "range", values)
        if self.labels is not None:
            labels = tuple(self.labels)
            if not labels or not all(isinstance(x, str) and x for x in labels):
                raise ModelError(f"contract: tensor {self.name!r} has invalid labels {labels!r}")
            if len(set(labels)) != len(labels):
                raise ModelError(f"contract: tensor {self.name!r} repeats a label: {labels!r}")
            object.__setattr__(self, "labels", labels)
        self._check_normalisation()

    def _check_normalisation(self) -> None:
        if self.mean is None and self.std is None:
            return
        if self.mean is None or self.std is None or self.range is None:
            raise ModelError(
                f"contract: tensor {self.name!r} needs mean and std together, and a range"
            )
        count = 1 if self.channels == "L" else 3
        mean, std = _finite(self.mean), _finite(self.std)
        if mean is None or std is None:
            raise ModelError(
                f"contract: tensor {self.name!r} mean/std must be lists of finite numbers"
            )
        if len(mean) != count or len(std) != count or not all(v > 0 for v in std):
            raise ModelError(
                f"contract: tensor {self.name!r} ({self.channels or 'no channels'}) needs "
                f"{count} mean and {count} positive std values; got mean {self.mean!r}, "
                f"std {self.std!r}"
            )
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def label_index(self, value: str) -> int:
        """The index of class ``value`` of this label input; unknown names list the valid ones."""
        if self.labels is None:
            raise ModelError(f"contract: tensor {self.name!r} has no label names")
        if value not in self.labels:
            raise ModelError(f"unknown {self.name} {value!r}; valid: {', '.join(self.labels)}")
        return self.labels.index(value)

    def to_uint8_affine(self) -> tuple[Affine1, Affine1]:
        """(scale, offset) mapping this tensor's values onto 0..255: ``u = v*scale + offset``;
        per channel (tuples, in the tensor's channel order) when it has ``mean``/``std``."""
        scale, offset = self.from_uint8_affine()
        if isinstance(scale, tuple):
            return (
                tuple(1.0 / s for s in scale),
                tuple(-o / s for s, o in zip(scale, offset, strict=True)),  # type: ignore[arg-type]
            )
        return 1.0 / scale, -offset / scale

    def from_uint8_affine(self) -> tuple[Affine1, Affine1]:
        """(scale, offset) mapping 0..255 onto this tensor's values: ``v = u*scale + offset``;
        per channel (tuples, in the tensor's channel order) when it has ``mean``/``std``."""
        lo, hi = self._range()
        scale = (hi - lo) / 255.0
        if self.mean is None or self.std is None:
            return scale, lo
        return (
            tuple(scale / s for s in self.std),
            tuple((lo - m) / s for m, s in zip(self.mean, self.std, strict=True)),
        )

    @property
    def bounds(self) -> tuple[Affine1, Affine1]:
        """The values uint8 0 and 255 map onto (per channel with ``mean``/``std``): the
        interval a clamp to this tensor's domain keeps."""
        scale, offset = self.from_uint8_affine()
        if isinstance(scale, tuple):
            return offset, tuple(255.0 * s + o for s, o in zip(scale, offset, strict=True))  # type: ignore[arg-type]
        return offset, 255.0 * scale + offset

    def _range(self) -> tuple[float, float]:
        if self.range is None:
            raise ModelError(f"contract: tensor {self.name!r} has no value range")
        return self.range


@dataclass(frozen=True)
class SpatialRules:
    """Size rules for image inputs: each side a multiple of ``multiple_of`` within bounds;
    outputs are ``scale`` times the input.

    ``tileable`` is False when an output pixel depends on statistics of the whole image
    (instance norm, spatial means): each tile would be normalised by its own statistics and
    the blended result would show patches, so such a model only runs on whole images.
    """

    multiple_of: int = 1
    min_size: int = 1
    max_size: int | None = None
    scale: int = 1
    tileable: bool = True

    def __post_init__(self) -> None:
        sides = (self.multiple_of, self.min_size, self.scale)
        if not all(_positive_int(v) for v in sides) or not (
            self.max_size is None or _positive_int(self.max_size)
        ):
            raise ModelError(
                f"contract: invalid spatial rules {self}; each rule is an int >= 1 "
                "(max_size: or null)"
            )
        if self.max_size is not None and self.max_size < self.min_size:
            raise ModelError(f"contract: max_size < min_size in {self}")
        if not isinstance(self.tileable, bool):
            raise ModelError(f"contract: tileable is {self.tileable!r}; expected true or false")

    def fit(self, height: int, width: int, limit: int | None = None) -> tuple[int, int]:
        """The size an image of ``height`` x ``width`` is processed at: scaled down (aspect
        kept) so the longer side is at most ``limit``, each side rounded to the nearest
        multiple of ``multiple_of`` and kept within ``[min_size, limit]``."""
        cap = min(v for v in (limit, 1 << 30) if v is not None)
        factor = min(1.0, cap / max(height, width))
        step = self.multiple_of

        def side(length: int) -> int:
            target = max(self.min_size, int(length * factor / step + 0.5) * step)
            return max(step, min(target, (cap // step) * step))

        return side(height), side(width)


@dataclass(frozen=True)
class Contract:
    """Role, tensors, size rules, provenance and the verification summary of one model."""

    role: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    spatial: SpatialRules = field(default_factory=SpatialRules)
    provenance: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] | None = None
    version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        _check_choice("role", self.role, ROLES)
        if not self.inputs or not self.outputs:
            raise ModelError("contract: a model needs at least one input and one output")
        if not isinstance(self.provenance, dict) or not (
            self.verification is None or isinstance(self.verification, dict)
        ):
            raise ModelError("contract: provenance and verification must be mappings")

    def input(self, semantic: str) -> TensorSpec:
        """The first input with this semantic (e.g. ``"image"``)."""
        return _find(self.inputs, semantic, "input")

    def output(self, semantic: str) -> TensorSpec:
        """The first output with this semantic."""
        return _find(self.outputs, semantic, "output")

    @property
    def static_size(self) -> tuple[int, int] | None:
        """(height, width) of a model exported with a fixed spatial size, else None."""
        value = self.provenance.get("static_size")
        if value is None:
            return None
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(_positive_int(v) for v in value)
        ):
            raise ModelError(f"contract: static_size {value!r} is not [height, width] (ints >= 1)")
        return int(value[0]), int(value[1])

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Contract:
        """Parse and validate; a malformed contract is a :class:`ModelError`."""
        try:
            raw = json.loads(text)
            version = raw.get("version")
            if version != CONTRACT_VERSION:
                raise ModelError(
                    f"contract version {version!r} is not supported (this vetrina reads "
                    f"version {CONTRACT_VERSION})",
                    hint="re-convert the model with this vetrina version",
                )
            return cls(
                role=raw["role"],
                inputs=tuple(_tensor(t) for t in raw["inputs"]),
                outputs=tuple(_tensor(t) for t in raw["outputs"]),
                spatial=SpatialRules(**raw.get("spatial", {})),
                provenance=raw.get("provenance", {}),
                verification=raw.get("verification"),
                version=version,
            )
        except ModelError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise ModelError(
                f"the model's {METADATA_KEY} metadata is malformed ({type(exc).__name__}: {exc})",
                hint="re-convert the model with 'vetrina convert'",
            ) from None


def _tensor(raw: dict[str, Any]) -> TensorSpec:
    def tup(key: str) -> tuple[Any, ...] | None:
        value = raw.get(key)
        return tuple(value) if value is not None else None

    return TensorSpec(**{**raw, **{k: tup(k) for k in ("range", "labels", "mean", "std")}})


def _finite(values: Any) -> tuple[float, ...] | None:
    """``values`` as a tuple of finite floats; None when it is not a sequence of finite
    numbers (booleans and strings are not numbers here)."""
    if isinstance(values, (str, bytes, dict)):
        return None
    try:
        items = tuple(values)
    except TypeError:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        return None
    try:
        out = tuple(float(v) for v in items)
    except OverflowError:  # an int beyond float's range
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _find(specs: tuple[TensorSpec, ...], semantic: str, kind: str) -> TensorSpec:
    for spec in specs:
        if spec.semantic == semantic:
            return spec
    raise ModelError(f"contract: the model has no {kind} with semantic {semantic!r}")


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ModelError(
            f"contract: unknown {what} {value!r}; expected one of {', '.join(choices)}"
        )
