"""TensorRT optimisation profiles: ``--profile`` parsing, defaults from the model contract,
and validation against the ONNX inputs.

Syntax of one ``--profile`` flag (shapes are ``x``-separated dims, batch first)::

    NAME:MIN,OPT,MAX      e.g.  image:1x3x64x64,4x3x256x256,8x3x512x512
    NAME:SHAPE            a fixed shape (min = opt = max), e.g. image:4x3x256x256

Several flags fill the profiles in order: a flag adds its input to the current profile, and a
flag naming an input that the current profile already has starts the next profile. So for a
two-input model ``--profile image:.. --profile mask:.. --profile image:.. --profile mask:..``
gives two profiles of two inputs each. Every profile must cover every dynamic input.

Without flags, one profile is derived from the contract (:func:`default_profile`): batch
``DEFAULT_BATCH``, sides from the smallest allowed size to ``DEFAULT_MAX_SIDE`` (the runtime's
default ``--max-side``) with ``DEFAULT_OPT_SIDE`` as the tuned size, each kept within the
contract's size rules. Static ONNX dims stay as they are.

Pure Python: nothing here imports onnx or TensorRT except :func:`onnx_input_shapes`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vetrina.contract import Contract, TensorSpec
from vetrina.errors import VetrinaError

#: (min, opt, max) of the batch axis when no ``--profile`` is given.
DEFAULT_BATCH = (1, 4, 8)
#: Tuned side length (the ``opt`` shape) when no ``--profile`` is given.
DEFAULT_OPT_SIDE = 512
#: Largest side when no ``--profile`` is given (the runtime's default ``--max-side``).
DEFAULT_MAX_SIDE = 2048

Shape = tuple[int, ...]
InputShapes = Mapping[str, tuple[int | None, ...]]
"""ONNX graph inputs: name -> dims, ``None`` for a dynamic (symbolic or unknown) dim."""

SYNTAX = "NAME:MIN,OPT,MAX (shapes like 1x3x64x64) or NAME:SHAPE"


class ProfileError(VetrinaError):
    """A ``--profile`` that cannot be parsed or does not fit the model."""


@dataclass(frozen=True)
class ShapeRange:
    """min/opt/max shapes of one input in one optimisation profile."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "min": list(self.min),
            "opt": list(self.opt),
            "max": list(self.max),
        }

    def __str__(self) -> str:
        return f"{self.name}:{_fmt(self.min)},{_fmt(self.opt)},{_fmt(self.max)}"


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: a shape range per dynamic input."""

    inputs: tuple[ShapeRange, ...]

    def names(self) -> list[str]:
        return [r.name for r in self.inputs]

    def get(self, name: str) -> ShapeRange | None:
        return next((r for r in self.inputs if r.name == name), None)

    def __str__(self) -> str:
        return " ".join(str(r) for r in self.inputs)


# ----------------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------------

_SHAPE = re.compile(r"^[0-9]+(x[0-9]+)*$", re.ASCII)
MAX_DIM = 2**31 - 1
"""Largest dim a profile may give (TensorRT's ``Dims`` hold int32 values)."""


def parse_shape(text: str, *, flag: str = "") -> Shape:
    """``"1x3x64x64"`` -> ``(1, 3, 64, 64)`` (every dim a positive int)."""
    t = text.strip().lower()
    if not _SHAPE.match(t):
        raise ProfileError(
            f"--profile {flag or text!r}: shape {text.strip()!r} is not like 1x3x256x256",
            hint=f"write --profile {SYNTAX}",
        )
    dims = tuple(int(d) for d in t.split("x"))
    if any(d < 1 or d > MAX_DIM for d in dims):
        raise ProfileError(
            f"--profile {flag or text!r}: shape {text.strip()!r} has a dim outside 1..{MAX_DIM}",
            hint="every dim of a profile shape must be at least 1 (TensorRT's dims are int32)",
        )
    return dims


def parse_range(text: str) -> ShapeRange:
    """One flag value, ``NAME:MIN,OPT,MAX`` or ``NAME:SHAPE``."""
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not sep or not name or not rest.strip():
        raise ProfileError(f"--profile {text!r}: expected {SYNTAX}", hint=_EXAMPLE)
    parts = rest.split(",")
    if len(parts) == 1:
        shape = parse_shape(parts[0], flag=text)
        return ShapeRange(name, shape, shape, shape)
    if len(parts) != 3:
        raise ProfileError(
            f"--profile {text!r}: {len(parts)} shapes; expected 1 (fixed) or 3 (min,opt,max)",
            hint=_EXAMPLE,
        )
    lo, opt, hi = (parse_shape(p, flag=text) for p in parts)
    return ShapeRange(name, lo, opt, hi)


def parse_profiles(flags: Sequence[str]) -> list[Profile]:
    """Group ``--profile`` values into profiles (a repeated input name starts the next one).

    Syntax only; :func:`validate_profiles` checks them against the model.
    """
    profiles: list[list[ShapeRange]] = []
    current: list[ShapeRange] = []
    for flag in flags:
        rng = parse_range(flag)
        if any(r.name == rng.name for r in current):
            profiles.append(current)
            current = []
        current.append(rng)
    if current:
        profiles.append(current)
    return [Profile(tuple(p)) for p in profiles]


_EXAMPLE = "e.g. --profile image:1x3x64x64,4x3x256x256,8x3x512x512"


def _fmt(shape: Sequence[int | None]) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


# ----------------------------------------------------------------------------------------------
# the model side
# ----------------------------------------------------------------------------------------------


def onnx_input_shapes(model: Any) -> dict[str, tuple[int | None, ...]]:
    """Graph inputs (initializers excluded) of an ONNX ``ModelProto`` or file path."""
    if isinstance(model, (str, os.PathLike)):
        import onnx

        model = onnx.load(os.fspath(model), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    shapes: dict[str, tuple[int | None, ...]] = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        tt = value.type.tensor_type
        if not tt.HasField("shape"):
            raise ProfileError(
                f"input {value.name!r} has no shape (not even its rank) in the ONNX graph",
                hint="re-export the model with shapes (vetrina convert does)",
            )
        shapes[value.name] = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in tt.shape.dim
        )
    return shapes


def dynamic_inputs(inputs: InputShapes) -> list[str]:
    """Names of the inputs with at least one dynamic dim, in graph order."""
    return [name for name, dims in inputs.items() if any(d is None for d in dims)]


def _spatial_axes(spec: TensorSpec | None, rank: int) -> tuple[int, ...]:
    """Height/width axes of an NCHW image or mask input (none for latents and labels)."""
    if spec is not None and spec.layout == "NCHW" and rank == 4:
        return (2, 3)
    return ()


def _spec(contract: Contract | None, name: str) -> TensorSpec | None:
    if contract is None:
        return None
    return next((t for t in contract.inputs if t.name == name), None)


def default_profile(inputs: InputShapes, contract: Contract | None) -> Profile:
    """One profile for every dynamic input, from the contract's size rules.

    Batch: :data:`DEFAULT_BATCH`; height/width of NCHW inputs: the smallest allowed side, then
    :data:`DEFAULT_OPT_SIDE` and :data:`DEFAULT_MAX_SIDE`, each rounded to the contract's
    ``multiple_of`` and kept within its ``min_size``/``max_size``. Other dynamic dims have no
    sensible default: a :class:`ProfileError` asks for ``--profile``.
    """
    ranges = []
    for name in dynamic_inputs(inputs):
        dims = inputs[name]
        spec = _spec(contract, name)
        spatial = _spatial_axes(spec, len(dims))
        lo, opt, hi = [], [], []
        for axis, dim in enumerate(dims):
            if dim is not None:
                triple = (dim, dim, dim)
            elif axis == 0 and contract is not None:
                triple = DEFAULT_BATCH
            elif axis in spatial and contract is not None:
                triple = _side_defaults(contract)
            else:
                raise ProfileError(
                    f"input {name!r} ({_fmt(dims)}) has a dynamic axis {axis} with no default "
                    + ("(the model has no vetrina contract)" if contract is None else "range"),
                    hint=f"give it with --profile {name}:MIN,OPT,MAX ({_EXAMPLE})",
                )
            lo.append(triple[0])
            opt.append(triple[1])
            hi.append(triple[2])
        ranges.append(ShapeRange(name, tuple(lo), tuple(opt), tuple(hi)))
    return Profile(tuple(ranges))


def _side_defaults(contract: Contract) -> tuple[int, int, int]:
    rules = contract.spatial
    step = rules.multiple_of
    low = -(-max(rules.min_size, step) // step) * step
    ceiling = rules.max_size if rules.max_size is not None else DEFAULT_MAX_SIDE
    ceiling = min(ceiling, max(DEFAULT_MAX_SIDE, low))
    high = max(low, (ceiling // step) * step)
    opt = min(max(low, (DEFAULT_OPT_SIDE // step) * step), high)
    return low, opt, high


def validate_profiles(
    profiles: Sequence[Profile], inputs: InputShapes, contract: Contract | None
) -> list[Profile]:
    """Check each profile against the ONNX inputs and the contract; return them normalised.

    Refused, with the profile index and the fix: unknown input names (known ones listed), a
    rank that differs from the ONNX input, min > opt or opt > max on any dim, a static dim
    that differs from the ONNX value, height/width that break the contract's multiple-of and
    min/max size, and a profile that misses a dynamic input. Static inputs may be given (they
    must match) and are dropped from the result: TensorRT needs ranges for dynamic ones only.
    """
    if not profiles:
        raise ProfileError("no optimisation profile given", hint=_EXAMPLE)
    dynamic = dynamic_inputs(inputs)
    out = []
    for index, profile in enumerate(profiles):
        where = f"profile {index}" if len(profiles) > 1 else "profile"
        for rng in profile.inputs:
            _check_range(rng, inputs, contract, where)
        missing = [n for n in dynamic if profile.get(n) is None]
        if missing:
            shapes = ", ".join(f"{n} ({_fmt(inputs[n])})" for n in missing)
            raise ProfileError(
                f"{where} misses the dynamic input(s) {shapes}",
                hint=f"add --profile {missing[0]}:MIN,OPT,MAX to each profile",
            )
        kept = tuple(sorted((r for r in profile.inputs if r.name in dynamic), key=_order(dynamic)))
        out.append(Profile(kept))
    return out


def _order(names: list[str]) -> Any:
    return lambda r: names.index(r.name)


def _check_range(
    rng: ShapeRange, inputs: InputShapes, contract: Contract | None, where: str
) -> None:
    if rng.name not in inputs:
        raise ProfileError(
            f"{where}: the model has no input {rng.name!r}",
            hint=f"its inputs are {', '.join(f'{n} ({_fmt(d)})' for n, d in inputs.items())}",
        )
    dims = inputs[rng.name]
    for label, shape in (("min", rng.min), ("opt", rng.opt), ("max", rng.max)):
        if len(shape) != len(dims):
            raise ProfileError(
                f"{where}: {label} shape {_fmt(shape)} of {rng.name!r} has {len(shape)} dims; "
                f"the input is {_fmt(dims)} ({len(dims)} dims)",
                hint=f"give {len(dims)} dims, e.g. {_fmt([d or 1 for d in dims])}",
            )
    for axis, dim in enumerate(dims):
        lo, opt, hi = rng.min[axis], rng.opt[axis], rng.max[axis]
        if not lo <= opt <= hi:
            raise ProfileError(
                f"{where}: {rng.name!r} axis {axis} has min {lo}, opt {opt}, max {hi}",
                hint="each dim needs min <= opt <= max",
            )
        if dim is not None and (lo, opt, hi) != (dim, dim, dim):
            raise ProfileError(
                f"{where}: {rng.name!r} axis {axis} is fixed at {dim} in the model, but the "
                f"profile gives {lo},{opt},{hi}",
                hint=f"use {dim} for that axis in min, opt and max",
            )
    spec = _spec(contract, rng.name)
    if contract is None or spec is None:
        return
    rules = contract.spatial
    for axis in _spatial_axes(spec, len(dims)):
        for label, side in (("min", rng.min[axis]), ("opt", rng.opt[axis]), ("max", rng.max[axis])):
            problem = None
            if side % rules.multiple_of:
                problem = f"is not a multiple of {rules.multiple_of}"
            elif side < rules.min_size:
                problem = f"is below the model's minimum side {rules.min_size}"
            elif rules.max_size is not None and side > rules.max_size:
                problem = f"is above the model's maximum side {rules.max_size}"
            if problem:
                raise ProfileError(
                    f"{where}: {label} side {side} of {rng.name!r} (axis {axis}) {problem}",
                    hint=f"sizes must be multiples of {rules.multiple_of} within "
                    f"{rules.min_size}..{rules.max_size or 'any'} (the model's contract)",
                )


def resolve_profiles(
    flags: Sequence[str] | None, inputs: InputShapes, contract: Contract | None
) -> list[Profile]:
    """The validated profiles of ``--profile`` flags, or the contract's default profile.

    A model without dynamic inputs needs none: the result is then empty (flags, if any, are
    still checked against the static shapes).
    """
    profiles = parse_profiles(flags) if flags else [default_profile(inputs, contract)]
    if not dynamic_inputs(inputs):
        if flags:
            validate_profiles(profiles, inputs, contract)
        return []
    return validate_profiles(profiles, inputs, contract)


def profiles_to_json(profiles: Sequence[Profile]) -> list[list[dict[str, Any]]]:
    """A canonical, JSON-ready form (profile order kept, inputs sorted by name)."""
    return [[r.to_json() for r in sorted(p.inputs, key=lambda r: r.name)] for p in profiles]


def profiles_from_json(raw: Sequence[Sequence[Mapping[str, Any]]]) -> list[Profile]:
    """Inverse of :func:`profiles_to_json`."""
    return [
        Profile(
            tuple(
                ShapeRange(str(r["name"]), tuple(r["min"]), tuple(r["opt"]), tuple(r["max"]))
                for r in p
            )
        )
        for p in raw
    ]
