"""Contracts for ONNX files vetrina did not convert (a rembg model a user already has).

The contract lives beside the file, as ``NAME.contract.json`` (the ONNX file itself stays
byte for byte what the user has, so rembg and vetrina can share it). :func:`write_contract`
builds one from a preset after checking the file's inputs and outputs against it:

* ``u2net`` -- rembg's U²-Net family (u2net, u2netp, u2net_human_seg, silueta and
  ``u2net_custom`` files): RGB at 320 x 320 normalised by ImageNet's mean and std
  (``(rgb / 255 - mean) / std``), the first output's channel 0 a sigmoid probability;
* ``isnet`` -- rembg's DIS files (isnet-general-use, isnet-anime): 1024 x 1024,
  ``rgb / 255 - 0.5``, the first output's channel 0 a probability.

rembg also stretches every predicted matte to span [0, 1]; ``stretch: true`` on the matte
stage does the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .contract import Contract, SpatialRules, TensorSpec
from .errors import ModelError

SIDECAR_SUFFIX = ".contract.json"


@dataclass(frozen=True)
class MattingPreset:
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    note: str


PRESETS: dict[str, MattingPreset] = {
    "u2net": MattingPreset(
        320, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "rembg U²-Net family"
    ),
    "isnet": MattingPreset(1024, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), "rembg DIS / IS-Net"),
}


def sidecar_path(model: str | os.PathLike[str]) -> Path:
    """``u2netp.onnx`` -> ``u2netp.contract.json`` beside it."""
    path = Path(model)
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def read_sidecar(model: Path) -> Contract | None:
    """The contract beside ``model``, or None when there is none."""
    side = sidecar_path(model)
    if not side.is_file():
        return None
    return Contract.from_json(side.read_text(encoding="utf-8"))


def preset_contract(
    preset: str, input_name: str, output_name: str, size: int | None = None
) -> Contract:
    """A matting contract for a file in ``preset``'s convention."""
    if preset not in PRESETS:
        raise ModelError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    side = size or p.size
    return Contract(
        role="matting",
        inputs=(TensorSpec(input_name, range=(0.0, 1.0), mean=p.mean, std=p.std),),
        outputs=(TensorSpec(output_name, semantic="mask", channels="L", range=(0.0, 1.0)),),
        spatial=SpatialRules(multiple_of=1, min_size=side, max_size=side),
        provenance={"static_size": [side, side], "preset": preset, "source": p.note},
    )


def write_contract(
    model: str | os.PathLike[str], preset: str, *, size: int | None = None
) -> tuple[Path, Contract]:
    """Check ``model`` (one image input, an image-shaped first output) against ``preset`` and
    write its sidecar contract; returns the path and the contract."""
    import onnxruntime as ort

    path = Path(model)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own exception types
        raise ModelError(f"{path}: ONNX Runtime cannot load it ({exc})") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise ModelError(
            f"{path}: a matting file takes one NCHW image; it has inputs "
            f"{[(i.name, i.shape) for i in inputs]}"
        )
    shape_in, shape_out = inputs[0].shape, outputs[0].shape
    if not _dim_may_be(shape_in[1], 3):
        raise ModelError(f"{path}: input {inputs[0].name!r} has {shape_in[1]} channels, not 3")
    if len(shape_out) != 4 or not _dim_may_be(shape_out[1], 1):
        raise ModelError(
            f"{path}: output {outputs[0].name!r} has shape {shape_out}; the preset reads a "
            "(N, 1, H, W) probability"
        )
    fixed = [v for v in shape_in[2:] if isinstance(v, int)]
    side = size or (fixed[0] if fixed and len(set(fixed)) == 1 else None)
    if fixed and side is not None and any(v != side for v in fixed):
        raise ModelError(f"{path}: the file is fixed at {shape_in[2:]}; --size {side} differs")
    contract = preset_contract(preset, inputs[0].name, outputs[0].name, side)
    target = sidecar_path(path)
    target.write_text(contract.to_json(), encoding="utf-8")
    return target, contract


def _dim_may_be(dim: object, value: int) -> bool:
    """An ONNX dimension that is ``value`` or symbolic (a name or unknown)."""
    return dim == value or dim is None or isinstance(dim, str)
