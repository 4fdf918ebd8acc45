"""Checkpoint -> verified ONNX with the model contract in its metadata.

Steps: load the checkpoint safely and build the module (:mod:`.source`), export and check
(:mod:`.export`), optionally simplify (onnxslim), verify against PyTorch under the
precision's gate (:mod:`.verify`), write the contract. The output file appears only when every
step passed; a refused export leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vetrina import __version__
from vetrina.atomic import atomic_output
from vetrina.contract import METADATA_KEY, Contract
from vetrina.errors import ConversionError, VerificationError
from vetrina.timing import StepTimes

from .cpu_graph import tune_for_cpu
from .export import export_onnx, model_opset, slim_onnx
from .input_norm import with_input_norm
from .locality import whole_image_ops
from .sizes import Size, check_size
from .source import Source, build_module, identify, load_source, resolve_architecture
from .verify import Gate, VerificationReport, gate_for, precision_cases, verify

PRECISIONS = ("fp32", "fp16", "int8")
TARGETS = ("cpu", "tensorrt")
INT8_TARGETS = TARGETS

__all__ = [
    "ConversionResult",
    "build_contract",
    "build_module",
    "convert",
    "identify",
    "load_source",
    "resolve_architecture",
    "write_contract",
]


@dataclass
class ConversionResult:
    output: Path
    contract: Contract
    report: VerificationReport
    times: StepTimes


def convert(
    checkpoint_path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    arch: str | None = None,
    opset: int | None = None,
    gate: Gate | None = None,
    gate_overrides: dict[str, float | None] | None = None,
    trusted: bool = False,
    static: Size | None = None,
    slim: bool = False,
    sizes: Sequence[Size] | None = None,
    precision: str = "fp32",
    target: str | None = None,
    calibration: Any = None,
    keep_fp32: Sequence[str] = (),
    max_trials: int = 24,
    input_norm: str | None = None,
    speed_islands: bool = True,
) -> ConversionResult:
    """Export a checkpoint to ``output`` (ONNX; default: the checkpoint's path with suffix
    ``.onnx``), verify it against PyTorch and write the contract. Raises
    :class:`VerificationError` (with the report) when over the gate.

    ``gate`` replaces the precision's default gate; ``gate_overrides`` then changes some of
    its fields (``max_abs``, ``min_psnr``, ``min_ssim``, ``max_delta_e``). ``static`` fixes
    height x width (batch stays dynamic); ``sizes`` are the verification sizes.

    ``precision`` "fp16" or "int8" rewrites the verified-exportable fp32 graph at the ONNX
    level (:mod:`.reduced`): fp32 inputs/outputs, fp32 islands by rule, then, if the
    precision's gate still fails, the smallest extra set of fp32 islands found by search. int8
    needs ``target`` ("cpu": uint8 activations for ONNX Runtime CPU; "tensorrt": symmetric
    int8) and ``calibration`` (a folder of images or a uint8 RGB array). For "cpu" it keeps
    fp32 the convs ONNX Runtime runs slower in int8 unless ``speed_islands`` is False.

    ``target`` "cpu" (the default for fp32) also rewrites ops that leave ONNX Runtime's fast
    CPU layout into equivalent ones that stay in it (:mod:`.cpu_graph`); "tensorrt" keeps the
    graph as exported. The rewrites are verified like the rest and named in the contract.

    ``input_norm`` ("imagenet") leaves the input normalisation outside the graph, as rembg
    feeds U²-Net files (:mod:`.input_norm`); the contract records the mean and std.
    """
    times = StepTimes()
    output = _output_path(checkpoint_path, output)
    if target is None and precision == "fp32":
        target = "cpu"
    _check_precision(precision, target, calibration, keep_fp32, speed_islands)
    if static is not None and sizes is not None and any(tuple(s) != static for s in sizes):
        raise ConversionError(
            f"verification sizes {_sizes(sizes)} differ from --static {_sizes([static])}",
            hint="a static model runs at its one size; drop --sizes",
        )
    with times.step("load checkpoint"):
        source = load_source(checkpoint_path, arch=arch, trusted=trusted)
        if input_norm is not None:
            source = with_input_norm(source, input_norm)
    # options that verification or calibration would refuse, refused before the export
    _check_sizes(source, static, sizes)
    if precision == "int8":
        _check_calibration(source, calibration)
    verify_sizes = [static] if static else sizes
    active = gate_for(precision, gate, **(gate_overrides or {}))
    reduced: dict[str, Any] | None = None
    with atomic_output(output) as tmp, tempfile.TemporaryDirectory(prefix="vetrina-") as work:
        exported = tmp if precision == "fp32" else Path(work) / "fp32.onnx"
        with times.step("export + check"):
            export_onnx(source.module, source.spec, exported, opset=opset, static=static)
        if slim:
            with times.step("slim"):
                slim_onnx(exported)
        rewrites: dict[str, int] = {}
        if target == "cpu":
            with times.step("tune for ONNX Runtime CPU"):
                rewrites = tune_for_cpu(exported)
        # PyTorch's outputs on the verification cases, computed once for the island search's
        # trials and the final check
        references: dict[str, list[np.ndarray]] = {}
        cases = None
        if precision != "fp32":
            cases = precision_cases(source.spec, source.module, verify_sizes, precision)
            with times.step(f"{precision} + island search"):
                reduced = _reduce(
                    source,
                    exported,
                    tmp,
                    cases=cases,
                    references=references,
                    precision=precision,
                    gate=active,
                    target=target,
                    calibration=calibration,
                    keep_fp32=keep_fp32,
                    max_trials=max_trials,
                    static=static,
                    speed_islands=speed_islands,
                )
        with times.step("verify"):
            report = verify(
                tmp,
                source.module,
                source.spec,
                gate=active,
                precision=precision,
                sizes=verify_sizes,
                inputs=cases,
                references=references,
            )
        if not report.passed:
            raise VerificationError(
                f"exported model differs from PyTorch beyond the gate "
                f"({'; '.join(report.failures()[:3])}); not written",
                report=report,
                hint="see the report above; loosen with --max-abs/--min-psnr/--min-ssim/"
                "--max-delta-e only if the difference is acceptable",
            )
        with times.step("write contract"):
            int8_cpu = precision == "int8" and target == "cpu"
            contract = build_contract(
                source,
                report,
                precision=precision,
                extra={
                    "static_size": list(static) if static else None,
                    "slim": slim,
                    "target": target,
                    "graph_rewrites": rewrites,
                    "reduced_precision": reduced,
                    **({"speed_islands": speed_islands} if int8_cpu else {}),
                },
                model_path=tmp,
            )
            write_contract(tmp, contract)
    return ConversionResult(output, contract, report, times)


def _output_path(
    checkpoint_path: str | os.PathLike[str], output: str | os.PathLike[str] | None
) -> Path:
    """The ONNX file to write (default: the checkpoint's path with suffix ``.onnx``), refused
    up front when it cannot be written as a file or would replace the checkpoint."""
    checkpoint = Path(checkpoint_path)
    path = checkpoint.with_suffix(".onnx") if output is None else Path(output)
    if path.is_dir():
        raise ConversionError(
            f"output {path} is a folder, not a file",
            hint=f"name the file, e.g. -o {path / checkpoint.with_suffix('.onnx').name}",
        )
    if path.exists() and checkpoint.exists() and path.resolve() == checkpoint.resolve():
        raise ConversionError(
            f"output {path} is the checkpoint itself; converting would overwrite it",
            hint="pass -o OUT.onnx",
        )
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConversionError(
            f"output {path}: {parent} is a file, not a folder",
            hint="pass -o with a path in a folder",
        )
    return path


def _check_precision(
    precision: str,
    target: str | None,
    calibration: Any,
    keep_fp32: Sequence[str],
    speed_islands: bool = True,
) -> None:
    """Refuse option combinations that cannot mean what the user asked, before any work."""
    if precision not in PRECISIONS:
        raise ConversionError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    if target is not None and target not in TARGETS:
        raise ConversionError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if precision == "int8":
        if target not in INT8_TARGETS:
            raise ConversionError(
                "int8 needs --target: 'cpu' (uint8 activations, fast on ONNX Runtime CPU) or "
                "'tensorrt' (symmetric int8 with zero points 0, what TensorRT parses)",
                hint="pass --target cpu or --target tensorrt",
            )
        if calibration is None:
            raise ConversionError(
                "int8 needs calibration images",
                hint="pass --calib DIR (a folder of representative photos), or --calib catalog "
                "for rendered catalog products",
            )
        if _is_folder(calibration):
            from .calibration import image_files

            image_files(calibration)  # missing or empty: refused now, not after the export
    elif calibration is not None:
        raise ConversionError(
            f"--calib applies to int8 only, not {precision}",
            hint="drop it, or pass --precision int8",
        )
    if keep_fp32 and precision == "fp32":
        raise ConversionError("--keep-fp32 applies to fp16 and int8 only")
    if not speed_islands and (precision != "int8" or target != "cpu"):
        raise ConversionError(
            "--no-speed-islands applies to --precision int8 --target cpu only (the speed "
            "islands are convs ONNX Runtime CPU runs slower in int8)",
            hint="drop --no-speed-islands",
        )


def _reduce(
    source: Source,
    exported: Path,
    output: Path,
    *,
    cases: list[tuple[str, Any]],
    references: dict[str, list[np.ndarray]],
    precision: str,
    gate: Gate,
    target: str | None,
    calibration: Any,
    keep_fp32: Sequence[str],
    max_trials: int,
    static: Size | None = None,
    speed_islands: bool = True,
) -> dict[str, Any]:
    """Rewrite the fp32 export at ``precision`` into ``output``; the island search judges each
    candidate with the same verification (``cases``, gate, PyTorch ``references``) as the
    final check."""
    from .reduced import reduce_precision

    samples = [
        case if isinstance(case, dict) else {source.spec.inputs[0].name: case} for _, case in cases
    ]

    def passes(path: Path) -> bool:
        return verify(
            path,
            source.module,
            source.spec,
            gate=gate,
            precision=precision,
            inputs=cases,
            references=references,
        ).passed

    calibration = _calibration_data(source, calibration)
    result = reduce_precision(
        exported,
        output,
        precision,
        passes=passes,
        samples=samples,
        keep_fp32=keep_fp32,
        target=target,
        calibration=calibration,
        inputs=source.spec.inputs,
        max_trials=max_trials,
        speed_islands=speed_islands,
        **({"calibration_size": tuple(static)} if static else {}),  # a static model's one size
    )
    provenance = result.provenance()
    # ``path`` would name the atomic-write temporary file: the contract lives inside the
    # file it describes, so it is not recorded (nothing reads it)
    provenance.pop("path", None)
    return provenance


def _check_sizes(source: Source, static: Size | None, sizes: Sequence[Size] | None) -> None:
    """``--static`` and ``--sizes`` against the size rules (and :data:`.sizes.MAX_SIDE`), as
    the export and the verification will check them. A model without image inputs is left
    to those, which name the option that does not apply."""
    from .inputs import spatial_inputs

    if not spatial_inputs(source.spec):
        return
    if static is not None:
        check_size(source.spec, static, option="--static")
    for size in sizes or ():
        check_size(source.spec, tuple(size), option="--sizes")


def _is_folder(calibration: Any) -> bool:
    """``calibration`` names a folder of images (not 'catalog' or 'latents', not data)."""
    return isinstance(calibration, (str, os.PathLike)) and calibration not in (
        "catalog",
        "latents",
    )


def _check_calibration(source: Source, calibration: Any) -> None:
    """Refuse int8 calibration that does not fit the model's inputs: 'latents' for a model
    that takes images, anything else for a generator (latent and label inputs)."""
    has_image = any(t.semantic == "image" for t in source.spec.inputs)
    if isinstance(calibration, str) and calibration == "latents":
        if has_image:
            raise ConversionError(
                f"--calib latents is for generators; {source.spec.name} takes images",
                hint="pass --calib DIR (representative photos) or --calib catalog",
            )
    elif not has_image and calibration is not None:
        raise ConversionError(
            f"{source.spec.name} is calibrated on its latent and label inputs, not on images",
            hint="pass --calib latents",
        )


def _calibration_data(source: Source, calibration: Any) -> Any:
    """``calibration`` as ``reduce_precision`` takes it: 'catalog' becomes rendered photos (not
    the verification images), 'latents' seeded latents with random labels (generators)."""
    _check_calibration(source, calibration)
    if isinstance(calibration, str) and calibration == "latents":
        from .inputs import random_feeds

        rng = np.random.default_rng(2024)
        module, spec = source.module, source.spec
        return [random_feeds(module, spec, batch=16, size=None, rng=rng) for _ in range(8)]
    if isinstance(calibration, str) and calibration == "catalog":
        from .calibration import catalog_images

        return catalog_images(32, (256, 256), start=1000)  # not the verification images
    return calibration


def build_contract(
    source: Source,
    report: VerificationReport,
    *,
    precision: str,
    model_path: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
) -> Contract:
    """The contract of a verified export: the architecture's tensors and size rules, the
    provenance (checkpoint, config, versions, precision) and the verification summary."""
    import onnx
    import torch

    spec, checkpoint = source.spec, source.checkpoint
    model = onnx.load(str(model_path), load_external_data=False)
    provenance = {
        "architecture": spec.name,
        "config": source.config,
        "checkpoint": checkpoint.path.name if checkpoint.path else None,
        "checkpoint_sha256": checkpoint.sha256,
        "checkpoint_metadata": _small(checkpoint.metadata),
        "precision": precision,
        "opset": model_opset(model),
        "exporter": "torch.onnx (dynamo)",
        "torch": str(torch.__version__),
        "onnx": onnx.__version__,
        "vetrina": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if ":" in spec.factory and not spec.factory.startswith("vetrina."):
        provenance["factory"] = spec.factory
    whole_image = whole_image_ops(model)
    if whole_image:  # why the runtime will not tile it
        provenance["whole_image_ops"] = whole_image
    provenance.update({k: v for k, v in (extra or {}).items() if v is not None})
    return Contract(
        role=spec.role,
        inputs=spec.inputs,
        outputs=spec.outputs,
        spatial=dataclasses.replace(spec.spatial, tileable=not whole_image),
        provenance=provenance,
        verification=report.summary(),
    )


def write_contract(path: str | os.PathLike[str], contract: Contract) -> None:
    """Store ``contract`` in the ONNX file's metadata (key :data:`METADATA_KEY`)."""
    import onnx

    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = contract.to_json()
            break
    else:
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, contract.to_json()
    onnx.save(model, str(path))


def _small(metadata: dict[str, Any]) -> dict[str, Any]:
    """The scalar part of the training metadata (no long histories in every model file)."""
    return {
        k: v
        for k, v in metadata.items()
        if isinstance(v, (str, int, float, bool)) or k == "metrics"
    }


def _sizes(sizes: Sequence[Size]) -> str:
    return ",".join(f"{h}x{w}" for h, w in sizes)
