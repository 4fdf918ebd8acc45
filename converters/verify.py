"""Parity of an exported model against its PyTorch source, gated per precision.

Inputs: seeded random tensors and rendered catalog images at two sizes. For each output:
max and mean absolute error and PSNR over the output's value range.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vetrina.backends.onnxruntime import OrtSession
from vetrina.metrics import max_abs_error, mean_abs_error, psnr
from vetrina.models.architectures import ArchitectureSpec


@dataclass(frozen=True)
class Gate:
    """Acceptance thresholds: every case must meet both."""

    max_abs: float
    min_psnr: float

    def __post_init__(self) -> None:
        if not (self.max_abs >= 0 and math.isfinite(self.max_abs)):
            raise ValueError(f"max_abs must be a finite number >= 0, got {self.max_abs}")
        if math.isnan(self.min_psnr):
            raise ValueError("min_psnr must be a number")


#: Default gates per precision (errors in the output's own units, e.g. [0, 1] images).
DEFAULT_GATES = {"fp32": Gate(max_abs=1e-3, min_psnr=60.0)}


@dataclass(frozen=True)
class CaseResult:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    psnr_db: float
    passed: bool


@dataclass
class VerificationReport:
    """Per-case parity figures and the verdict against ``gate``."""

    gate: Gate
    precision: str
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    @property
    def worst_max_abs(self) -> float:
        return max(c.max_abs for c in self.cases)

    @property
    def worst_psnr(self) -> float:
        return min(c.psnr_db for c in self.cases)

    def summary(self) -> dict[str, Any]:
        """Compact JSON-safe summary stored in the model contract."""
        return {
            "passed": self.passed,
            "precision": self.precision,
            "gate": asdict(self.gate),
            "max_abs": self.worst_max_abs,
            "mean_abs": max(c.mean_abs for c in self.cases),
            "min_psnr_db": _json_float(self.worst_psnr),
            "cases": [c.name for c in self.cases],
        }

    def to_json(self) -> str:
        data = asdict(self)
        for case in data["cases"]:
            case["psnr_db"] = _json_float(case["psnr_db"])
        data["passed"] = self.passed
        return json.dumps(data, indent=2)

    def table(self) -> str:
        lines = [f"{'case':<26} {'shape':<18} {'max abs':>10} {'mean abs':>10} {'PSNR dB':>8}  ok"]
        for c in self.cases:
            shape = "x".join(map(str, c.shape))
            lines.append(
                f"{c.name:<26} {shape:<18} {c.max_abs:>10.2e} {c.mean_abs:>10.2e} "
                f"{c.psnr_db:>8.1f}  {'yes' if c.passed else 'NO'}"
            )
        g = self.gate
        lines.append(
            f"gate ({self.precision}): max abs <= {g.max_abs:g}, PSNR >= {g.min_psnr:g} dB"
        )
        return "\n".join(lines)


def verification_inputs(
    spec: ArchitectureSpec, sizes: tuple[tuple[int, int], ...] = ((64, 96), (128, 128))
) -> list[tuple[str, np.ndarray]]:
    """Seeded random batches and rendered catalog images at each size, in the input's range."""
    from vetrina.models import catalog

    tensor = spec.inputs[0]
    lo, hi = tensor.range or (0.0, 1.0)
    cases = []
    rng = np.random.default_rng(1234)
    for h, w in sizes:
        h, w = (_round_to(s, spec.spatial.multiple_of) for s in (h, w))
        noise = rng.uniform(lo, hi, size=(2, 3, h, w)).astype(np.float32)
        cases.append((f"random-{h}x{w}", noise))
        seeds = catalog.split_seeds("val", 2)
        images = [catalog.render(int(s), (h, w)).image for s in seeds]
        batch = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)
        cases.append((f"catalog-{h}x{w}", batch * ((hi - lo) / 255.0) + lo))
    return cases


def verify(
    onnx_path: str | os.PathLike[str],
    module: Any,
    spec: ArchitectureSpec,
    *,
    gate: Gate,
    precision: str = "fp32",
    inputs: list[tuple[str, np.ndarray]] | None = None,
) -> VerificationReport:
    """Run ONNX Runtime (CPU) and PyTorch on the same inputs and compare every output."""
    import torch

    session = OrtSession(onnx_path, device="cpu")
    module = module.eval()
    report = VerificationReport(gate=gate, precision=precision)
    for name, batch in inputs if inputs is not None else verification_inputs(spec):
        with torch.inference_mode():
            expected = module(torch.from_numpy(batch))
        expected_list = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        actual_list = session.run({spec.inputs[0].name: batch})
        for out_spec, exp, act in zip(spec.outputs, expected_list, actual_list, strict=True):
            exp_np = exp.numpy()
            lo, hi = out_spec.range or (float(exp_np.min()), float(exp_np.max()))
            case = (
                name if len(spec.outputs) == 1 else f"{name}/{out_spec.name}",
                tuple(act.shape),
            )
            if act.shape != exp_np.shape:
                report.cases.append(CaseResult(*case, math.inf, math.inf, -math.inf, False))
                continue
            # Image metrics are taken on the valid range the runtime will actually use.
            e_clip, a_clip = np.clip(exp_np, lo, hi), np.clip(act, lo, hi)
            worst = max_abs_error(act, exp_np)
            value = psnr(a_clip, e_clip, data_range=max(hi - lo, 1e-12))
            report.cases.append(
                CaseResult(
                    *case,
                    max_abs=worst,
                    mean_abs=mean_abs_error(act, exp_np),
                    psnr_db=value,
                    passed=worst <= gate.max_abs and value >= gate.min_psnr,
                )
            )
    return report


def _round_to(side: int, step: int) -> int:
    return max(step, (side // step) * step)


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
