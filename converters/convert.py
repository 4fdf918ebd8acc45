"""Checkpoint -> verified ONNX with the model contract in its metadata.

The output file appears only when the export passed the ONNX checker and the parity gate;
a refused export leaves nothing behind.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vetrina import __version__
from vetrina.atomic import atomic_output
from vetrina.contract import METADATA_KEY, Contract
from vetrina.errors import CheckpointError, VerificationError
from vetrina.models.architectures import ArchitectureSpec, get_architecture
from vetrina.models.checkpoint import Checkpoint, load_checkpoint
from vetrina.timing import StepTimes

from .export import export_onnx
from .verify import DEFAULT_GATES, Gate, VerificationReport, verify


@dataclass
class ConversionResult:
    output: Path
    contract: Contract
    report: VerificationReport
    times: StepTimes


def resolve_architecture(checkpoint: Checkpoint, arch: str | None) -> ArchitectureSpec:
    """The architecture named by ``--arch`` or by the checkpoint; a disagreement is an error."""
    if arch and checkpoint.architecture and arch != checkpoint.architecture:
        raise CheckpointError(
            f"--arch {arch} contradicts the checkpoint, which says {checkpoint.architecture!r}",
            hint="drop --arch for vetrina checkpoints",
        )
    name = arch or checkpoint.architecture
    if name is None:
        raise CheckpointError(
            f"{checkpoint.path}: a bare state_dict does not name its architecture",
            hint="pass --arch NAME (see 'vetrina zoo list')",
        )
    return get_architecture(name)


def build_module(spec: ArchitectureSpec, checkpoint: Checkpoint) -> Any:
    """Build the module and load the weights strictly, listing every mismatch on failure."""
    module = spec.build(checkpoint.config)
    own = module.state_dict()
    given = checkpoint.state_dict
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    wrong = sorted(
        f"{k} {tuple(given[k].shape)} != {tuple(own[k].shape)}"
        for k in set(own) & set(given)
        if tuple(given[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or wrong:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
        ):
            if items:
                shown = ", ".join(items[:6]) + (
                    f" (+{len(items) - 6} more)" if len(items) > 6 else ""
                )
                parts.append(f"{label}: {shown}")
        raise CheckpointError(
            f"{checkpoint.path}: weights do not fit architecture {spec.name!r} with config "
            f"{checkpoint.config or spec.default_config}: " + "; ".join(parts),
            hint="check --arch and the checkpoint's config",
        )
    module.load_state_dict(given, strict=True)
    return module.eval()


def convert(
    checkpoint_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    arch: str | None = None,
    opset: int | None = None,
    gate: Gate | None = None,
    trusted: bool = False,
) -> ConversionResult:
    """Export a checkpoint to ``output`` (ONNX), verify it against PyTorch and write the
    contract. Raises :class:`VerificationError` (with the report) when over the gate."""
    import onnx
    import torch

    times = StepTimes()
    output = Path(output)
    gate = gate or DEFAULT_GATES["fp32"]
    with times.step("load checkpoint"):
        checkpoint = load_checkpoint(checkpoint_path, trusted=trusted)
        spec = resolve_architecture(checkpoint, arch)
        module = build_module(spec, checkpoint)
    with atomic_output(output) as tmp:
        with times.step("export + check"):
            export_onnx(module, spec, tmp, opset=opset)
        with times.step("verify"):
            report = verify(tmp, module, spec, gate=gate, precision="fp32")
        if not report.passed:
            raise VerificationError(
                f"exported model differs from PyTorch beyond the gate (worst max abs "
                f"{report.worst_max_abs:.2e}, worst PSNR {report.worst_psnr:.1f} dB); not written",
                report=report,
                hint="see the report above; loosen with --max-abs/--min-psnr only if the "
                "difference is acceptable",
            )
        with times.step("write contract"):
            model = onnx.load(str(tmp))
            contract = Contract(
                role=spec.role,
                inputs=spec.inputs,
                outputs=spec.outputs,
                spatial=spec.spatial,
                provenance={
                    "architecture": spec.name,
                    "config": {**spec.default_config, **checkpoint.config},
                    "checkpoint": checkpoint.path.name if checkpoint.path else None,
                    "checkpoint_sha256": checkpoint.sha256,
                    "checkpoint_metadata": _small(checkpoint.metadata),
                    "precision": "fp32",
                    "opset": max(
                        o.version for o in model.opset_import if o.domain in ("", "ai.onnx")
                    ),
                    "exporter": "torch.onnx (dynamo)",
                    "torch": str(torch.__version__),
                    "onnx": onnx.__version__,
                    "vetrina": __version__,
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                },
                verification=report.summary(),
            )
            _set_metadata(model, METADATA_KEY, contract.to_json())
            onnx.save(model, str(tmp))
    return ConversionResult(output, contract, report, times)


def _set_metadata(model: Any, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value


def _small(metadata: dict[str, Any]) -> dict[str, Any]:
    """The scalar part of the training metadata (no long histories in every model file)."""
    return {
        k: v
        for k, v in metadata.items()
        if isinstance(v, (str, int, float, bool)) or k == "metrics"
    }
