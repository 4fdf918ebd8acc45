"""Parity of an exported model against its PyTorch source, gated per precision.

Inputs (:func:`verification_inputs`): for models that take images, seeded random batches and
rendered held-out catalog photos (with synthetic defects and their masks where the model takes
a mask) at each size; for generators, seeded latents with every value of every label input.

Per output and case: max and mean absolute error and PSNR over the output's value range;
for images and masks also SSIM; for RGB images also the mean and max CIEDE2000 colour
difference of the uint8 images; for label logits the argmax agreement (reported, not gated).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from vetrina.contract import TensorSpec
from vetrina.errors import ConversionError
from vetrina.metrics import max_abs_error, mean_abs_error, psnr
from vetrina.models.architectures import ArchitectureSpec

from .inputs import Feeds, catalog_feeds, label_count, random_feeds, spatial_inputs
from .metrics import batch_ssim, delta_e_2000
from .sizes import Size, check_size, default_size

#: Verification sizes (height, width) when none are given.
DEFAULT_SIZES: tuple[Size, ...] = ((64, 96), (128, 128))


@dataclass(frozen=True)
class Gate:
    """Acceptance thresholds; every case must meet all of them.

    ``max_abs`` is a fraction of the output's value range where the contract gives one (1e-3:
    a quarter of a level of 0..255, whether the net outputs [0, 1] or 0..255), else in the
    output's own units (logits); ``inf``: not gated. ``min_psnr`` is in dB over
    the output's range; ``min_ssim`` applies to image and mask outputs (-1: not gated);
    ``max_delta_e`` bounds the *mean* CIEDE2000 difference of RGB image outputs (``inf``:
    not gated).
    """

    max_abs: float = math.inf
    min_psnr: float = -math.inf
    min_ssim: float = -1.0
    max_delta_e: float = math.inf

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"gate {f.name} must be a number, got {value!r}")
            if math.isnan(value):
                raise ValueError(f"gate {f.name} must be a number, got NaN")
            object.__setattr__(self, f.name, float(value))
        if self.max_abs < 0:
            raise ValueError(f"gate max_abs must be >= 0, got {self.max_abs}")
        if not -1.0 <= self.min_ssim <= 1.0:
            raise ValueError(f"gate min_ssim must be within [-1, 1], got {self.min_ssim}")
        if self.max_delta_e < 0:
            raise ValueError(f"gate max_delta_e must be >= 0, got {self.max_delta_e}")

    def with_overrides(self, **changes: float | None) -> Gate:
        """This gate with the given fields replaced (``None`` keeps a field)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown gate field(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def describe(self) -> str:
        parts = []
        if math.isfinite(self.max_abs):
            # relative, like the check (the table's column is in the output's own units)
            parts.append(
                f"max abs <= {self.max_abs:g} x the output's value range (its own units "
                "if it has none)"
            )
        if self.min_psnr > -math.inf:
            parts.append(f"PSNR >= {self.min_psnr:g} dB")
        if self.min_ssim > -1.0:
            parts.append(f"SSIM >= {self.min_ssim:g}")
        if math.isfinite(self.max_delta_e):
            parts.append(f"mean dE2000 <= {self.max_delta_e:g}")
        return ", ".join(parts) or "no limits"

    def to_dict(self) -> dict[str, float | str]:
        return {f.name: _json_float(getattr(self, f.name)) for f in fields(self)}


#: Default gates per precision. fp32 must match PyTorch to float rounding. fp16 and int8
#: change every value a little, so max abs is not gated there (a few outlier pixels are
#: expected); PSNR, SSIM and the mean colour difference judge the image instead. A mean
#: CIEDE2000 of 1 is about the smallest difference a trained eye notices side by side; 3 is
#: visible only on close inspection.
DEFAULT_GATES: dict[str, Gate] = {
    "fp32": Gate(max_abs=1e-3, min_psnr=60.0, min_ssim=0.999, max_delta_e=0.1),
    "fp16": Gate(min_psnr=40.0, min_ssim=0.99, max_delta_e=1.0),
    "int8": Gate(min_psnr=30.0, min_ssim=0.95, max_delta_e=3.0),
}


def gate_for(precision: str, gate: Gate | None = None, **overrides: float | None) -> Gate:
    """The gate of ``precision`` (or ``gate``) with ``overrides`` (``None`` values ignored)."""
    if precision not in DEFAULT_GATES:
        raise ConversionError(
            f"unknown precision {precision!r}", hint=f"choose one of {', '.join(DEFAULT_GATES)}"
        )
    try:
        return (gate or DEFAULT_GATES[precision]).with_overrides(**overrides)
    except ValueError as exc:
        raise ConversionError(str(exc), hint="check the gate options") from None


@dataclass(frozen=True)
class CaseResult:
    """One (input case, output) comparison. Metrics that do not apply to the output are None."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    psnr_db: float
    passed: bool
    ssim: float | None = None
    delta_e_mean: float | None = None
    delta_e_max: float | None = None
    agreement: float | None = None
    failed: tuple[str, ...] = ()


@dataclass
class VerificationReport:
    """Per-case parity figures and the verdict against ``gate``."""

    gate: Gate
    precision: str
    cases: list[CaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    @property
    def worst_max_abs(self) -> float:
        return _worst((c.max_abs for c in self.cases), max, math.inf)

    @property
    def worst_psnr(self) -> float:
        return _worst((c.psnr_db for c in self.cases), min, -math.inf)

    @property
    def worst_ssim(self) -> float | None:
        values = [c.ssim for c in self.cases if c.ssim is not None]
        return _worst(values, min, -math.inf) if values else None

    @property
    def worst_delta_e(self) -> float | None:
        """The largest per-case mean CIEDE2000 (what the gate bounds)."""
        values = [c.delta_e_mean for c in self.cases if c.delta_e_mean is not None]
        return _worst(values, max, math.inf) if values else None

    def failures(self) -> list[str]:
        """``case: reason`` for every failed gate check."""
        return [f"{c.name}: {reason}" for c in self.cases for reason in c.failed]

    def summary(self) -> dict[str, Any]:
        """Compact JSON-safe summary stored in the model contract."""
        de_max = [c.delta_e_max for c in self.cases if c.delta_e_max is not None]
        return {
            "passed": self.passed,
            "precision": self.precision,
            "gate": self.gate.to_dict(),
            "max_abs": _json_float(self.worst_max_abs) if self.cases else None,
            "mean_abs": _json_float(max((c.mean_abs for c in self.cases), default=0.0)),
            "min_psnr_db": _json_float(self.worst_psnr) if self.cases else None,
            "min_ssim": _maybe(self.worst_ssim),
            "max_mean_delta_e": _maybe(self.worst_delta_e),
            "max_delta_e": _maybe(max(de_max) if de_max else None),
            "cases": [c.name for c in self.cases],
            "failed": self.failures(),
        }

    def to_json(self) -> str:
        data = {
            "passed": self.passed,
            "precision": self.precision,
            "gate": self.gate.to_dict(),
            "cases": [
                {k: _maybe(v) if isinstance(v, float) else v for k, v in asdict(c).items()}
                for c in self.cases
            ],
            "notes": list(self.notes),
            "summary": self.summary(),
        }
        return json.dumps(data, indent=2, allow_nan=False)

    def table(self) -> str:
        width = max([28, *(len(c.name) for c in self.cases)])
        head = (
            f"{'case':<{width}} {'shape':<16} {'max abs':>9} {'mean abs':>9} {'PSNR dB':>8} "
            f"{'SSIM':>7} {'dE mean':>7} {'dE max':>7}  ok"
        )
        lines = [head]
        for c in self.cases:
            shape = "x".join(map(str, c.shape))
            verdict = "yes" if c.passed else "NO"
            if c.agreement is not None:
                verdict += f" (argmax agree {c.agreement:.0%})"
            lines.append(
                f"{c.name:<{width}} {shape:<16} {c.max_abs:>9.2e} {c.mean_abs:>9.2e} "
                f"{c.psnr_db:>8.1f} {_cell(c.ssim, '.4f')} {_cell(c.delta_e_mean, '.3f')} "
                f"{_cell(c.delta_e_max, '.2f')}  {verdict}"
            )
        lines.append(f"gate ({self.precision}): {self.gate.describe()}")
        lines.extend(f"failed: {f}" for f in self.failures())
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def verification_inputs(
    spec: ArchitectureSpec, module: Any, sizes: Sequence[Size] | None = None
) -> list[tuple[str, Feeds]]:
    """Named input cases for ``spec``.

    Models with image inputs: a seeded random batch and a batch of rendered catalog photos
    at each size (``sizes`` must keep the size rules; the defaults are moved onto them).
    Generators: seeded latents with every value of every label, and a random draw.
    """
    rng = np.random.default_rng(1234)
    cases: list[tuple[str, Feeds]] = []
    if spatial_inputs(spec):
        if sizes is None:
            chosen = list(dict.fromkeys(default_size(spec, s) for s in DEFAULT_SIZES))
        else:
            chosen = [check_size(spec, tuple(s), option="--sizes") for s in sizes]
        for h, w in chosen:
            feeds = random_feeds(module, spec, batch=2, size=(h, w), rng=rng)
            cases.append((f"random-{h}x{w}", feeds))
            cases.append((f"catalog-{h}x{w}", catalog_feeds(module, spec, batch=2, size=(h, w))))
        return cases
    if sizes:
        raise ConversionError(
            f"--sizes does not apply to {spec.name}: it takes no image input",
            hint="drop --sizes",
        )
    labels = [t for t in spec.inputs if t.semantic == "label"]
    if labels:
        batch = max(label_count(module, t) for t in labels)
        cases.append(
            (
                f"every-label-b{batch}",
                random_feeds(module, spec, batch=batch, size=None, rng=rng, labels="spread"),
            )
        )
        cases.append(("random-b3", random_feeds(module, spec, batch=3, size=None, rng=rng)))
    else:
        for batch in (2, 5):
            cases.append(
                (f"random-b{batch}", random_feeds(module, spec, batch=batch, size=None, rng=rng))
            )
    return cases


def precision_cases(
    spec: ArchitectureSpec, module: Any, sizes: Sequence[Size] | None, precision: str
) -> list[tuple[str, Feeds]]:
    """The verification cases for ``precision``. int8 models of image inputs are judged on the
    rendered photos only: their activation ranges come from calibration images, and uniform
    noise lies outside any realistic calibration (generators keep their latent cases, which
    are the distribution they are calibrated on)."""
    cases = verification_inputs(spec, module, sizes)
    if precision == "int8" and spatial_inputs(spec):
        cases = [(name, feeds) for name, feeds in cases if not name.startswith("random-")]
    return cases


def verify(
    onnx_path: str | os.PathLike[str],
    module: Any,
    spec: ArchitectureSpec,
    *,
    gate: Gate,
    precision: str = "fp32",
    inputs: Sequence[tuple[str, Feeds | np.ndarray]] | None = None,
    sizes: Sequence[Size] | None = None,
    references: dict[str, list[np.ndarray]] | None = None,
) -> VerificationReport:
    """Run ONNX Runtime (CPU) and PyTorch on the same inputs and compare every output.

    ``inputs``: named cases (a feeds dict, or one array for a single-input model); default
    :func:`verification_inputs` at ``sizes``. ``references``: PyTorch's outputs by case name,
    filled on first use and read after; pass the same dict to every call on the same cases
    (an island search verifies each candidate against the same module and inputs).
    """
    import torch

    from vetrina.backends.onnxruntime import OrtSession

    session = OrtSession(onnx_path, device="cpu")
    run = session.run
    if precision == "fp16":
        # ONNX Runtime CPU computes many fp16 ops in fp32 and skips the rounding; this
        # evaluator rounds every fp16 tensor, as a GPU stores it (see .activations).
        from .activations import EMULATED, Runner

        runner = Runner(onnx_path, evaluator=EMULATED)
        run = runner.run
    expected_names = [t.name for t in spec.inputs]
    got_names = [i.name for i in session.inputs]
    if sorted(got_names) != sorted(expected_names):
        raise ConversionError(
            f"{onnx_path}: ONNX inputs {got_names} do not match the inputs of {spec.name} "
            f"{expected_names}",
            hint="check --arch: the model was not exported from this architecture",
        )
    dtypes = {i.name: i.dtype for i in session.inputs}
    module = module.eval()
    report = VerificationReport(gate=gate, precision=precision)
    if precision == "fp16":
        report.notes.append(f"fp16 numerics evaluated with {EMULATED} (rounds every fp16 tensor)")
    if inputs is None and precision == "int8" and spatial_inputs(spec):
        report.notes.append("int8: judged on rendered photos (noise is outside calibration)")
    cases = inputs if inputs is not None else precision_cases(spec, module, sizes, precision)
    for name, case in cases:
        feeds = case if isinstance(case, dict) else {spec.inputs[0].name: case}
        if references is not None and name in references:
            expected_list = references[name]
        else:
            with torch.inference_mode():
                expected = module(*(torch.from_numpy(feeds[n]) for n in expected_names))
            expected_list = [
                t.float().numpy()
                for t in ([expected] if isinstance(expected, torch.Tensor) else expected)
            ]
            if references is not None:
                references[name] = expected_list
        actual_list = run({k: v.astype(dtypes[k], copy=False) for k, v in feeds.items()})
        if len(expected_list) != len(spec.outputs) or len(actual_list) != len(spec.outputs):
            raise ConversionError(
                f"{spec.name} promises {len(spec.outputs)} output(s); PyTorch gave "
                f"{len(expected_list)} and ONNX Runtime {len(actual_list)}"
            )
        for out_spec, exp, act in zip(spec.outputs, expected_list, actual_list, strict=True):
            label = name if len(spec.outputs) == 1 else f"{name}/{out_spec.name}"
            report.cases.append(compare_output(label, out_spec, exp, np.asarray(act), gate))
    return report


def compare_output(
    name: str, tensor: TensorSpec, expected: np.ndarray, actual: np.ndarray, gate: Gate
) -> CaseResult:
    """Every metric that applies to output ``tensor``, judged against ``gate``."""
    actual = actual.astype(np.float32, copy=False)
    if actual.shape != expected.shape:
        return CaseResult(
            name,
            tuple(actual.shape),
            math.inf,
            math.inf,
            -math.inf,
            False,
            failed=(f"shape {actual.shape} != PyTorch's {expected.shape}",),
        )
    lo, hi = tensor.range or (
        (float(expected.min()), float(expected.max())) if expected.size else (0.0, 1.0)
    )
    span = max(hi - lo, 1e-12)
    # Image metrics are taken on the valid range the runtime will actually use.
    a_clip, e_clip = np.clip(actual, lo, hi), np.clip(expected, lo, hi)
    worst = max_abs_error(actual, expected)
    value = psnr(a_clip, e_clip, data_range=span)
    ssim = de_mean = de_max = agreement = None
    is_picture = tensor.layout == "NCHW" and tensor.semantic in ("image", "mask")
    if is_picture and actual.ndim == 4:
        ssim = batch_ssim(a_clip, e_clip, span)
        if tensor.semantic == "image" and tensor.channels in ("RGB", "BGR") and tensor.range:
            de_mean, de_max = delta_e_2000(actual, expected, tensor)
    if tensor.semantic == "label" and tensor.layout == "NC" and actual.ndim == 2:
        agreement = float(np.mean(actual.argmax(axis=1) == expected.argmax(axis=1)))
    failed = []
    limit = gate.max_abs * span if tensor.range else gate.max_abs
    if not worst <= limit:
        of_range = f" ({gate.max_abs:g} of the range)" if tensor.range else ""
        failed.append(f"max abs {worst:.2e} > {limit:g}{of_range}")
    if not value >= gate.min_psnr:
        failed.append(f"PSNR {value:.1f} dB < {gate.min_psnr:g}")
    if ssim is not None and not ssim >= gate.min_ssim:
        failed.append(f"SSIM {ssim:.4f} < {gate.min_ssim:g}")
    if de_mean is not None and not de_mean <= gate.max_delta_e:
        failed.append(f"mean dE2000 {de_mean:.3f} > {gate.max_delta_e:g}")
    return CaseResult(
        name,
        tuple(actual.shape),
        max_abs=worst,
        mean_abs=mean_abs_error(actual, expected),
        psnr_db=value,
        passed=not failed,
        ssim=ssim,
        delta_e_mean=de_mean,
        delta_e_max=de_max,
        agreement=agreement,
        failed=tuple(failed),
    )


def _worst(values: Any, pick: Any, nan_as: float) -> float:
    values = [nan_as if math.isnan(v) else v for v in values]
    return pick(values) if values else nan_as


def _cell(value: float | None, fmt: str) -> str:
    return f"{'-':>7}" if value is None else f"{value:>7{fmt}}"


def _maybe(value: float | None) -> float | str | None:
    return None if value is None else _json_float(value)


def _json_float(value: float) -> float | str:
    if math.isnan(value):
        return "nan"
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def verify_file(
    onnx_path: str | os.PathLike[str],
    checkpoint_path: str | os.PathLike[str],
    *,
    arch: str | None = None,
    precision: str | None = None,
    gate: Gate | None = None,
    gate_overrides: dict[str, float | None] | None = None,
    sizes: Sequence[Size] | None = None,
    trusted: bool = False,
) -> VerificationReport:
    """Verify an existing ONNX file (fp32, fp16 or int8) against a checkpoint.

    The precision, and the architecture when ``arch`` is not given, come from the model's
    contract when it has one (an explicit value contradicting it is an error); without a
    contract the precision is ``fp32`` unless given. A model exported with a fixed size is
    verified at that size. The report notes when the checkpoint is not the one the model was
    converted from.
    """
    from .source import load_source

    contract, static = _read_model(onnx_path)
    prov = contract.provenance if contract else {}
    known = prov.get("precision")
    if precision and known and precision != known:
        raise ConversionError(
            f"--precision {precision} contradicts the model's contract, which says {known!r}",
            hint="drop --precision",
        )
    precision = precision or known or "fp32"
    made_from = prov.get("architecture")
    if arch is None and made_from and ":" not in str(prov.get("factory", "")):
        arch = made_from
    source = load_source(checkpoint_path, arch=arch, trusted=trusted)
    if made_from and source.spec.name != made_from:
        raise ConversionError(
            f"{onnx_path} was converted from architecture {made_from!r}, the checkpoint is "
            f"{source.spec.name!r}",
            hint="give the checkpoint this model was converted from",
        )
    if static is not None:
        if sizes is not None and any(tuple(s) != static for s in sizes):
            raise ConversionError(
                f"{onnx_path} has a fixed size {static[0]}x{static[1]}; it cannot run at "
                + ",".join(f"{h}x{w}" for h, w in sizes),
                hint="drop --sizes",
            )
        sizes = [static]
    active = gate_for(precision, gate, **(gate_overrides or {}))
    report = verify(
        onnx_path, source.module, source.spec, gate=active, precision=precision, sizes=sizes
    )
    converted = prov.get("checkpoint_sha256")
    if converted and converted != source.checkpoint.sha256:
        report.notes.append(
            f"the checkpoint (sha256 {source.checkpoint.sha256[:12]}...) is not the one this "
            f"model was converted from (sha256 {str(converted)[:12]}...)"
        )
    if contract is None:
        report.notes.append(f"the model has no vetrina contract; verified as {precision}")
    return report


def _read_model(path: str | os.PathLike[str]) -> tuple[Any, Size | None]:
    """(contract or None, fixed (height, width) of the first image/mask input or None)."""
    import onnx

    from vetrina.contract import METADATA_KEY, Contract
    from vetrina.errors import ModelError

    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})"
        ) from None
    meta = {p.key: p.value for p in model.metadata_props}
    contract = Contract.from_json(meta[METADATA_KEY]) if METADATA_KEY in meta else None
    if contract is not None:
        pictures = {t.name for t in contract.inputs if t.semantic in ("image", "mask")}
    else:
        pictures = {
            v.name
            for v in model.graph.input
            if len(v.type.tensor_type.shape.dim) == 4
            and v.type.tensor_type.shape.dim[1].dim_value in (1, 3)
        }
    for value in model.graph.input:
        if value.name in pictures:
            h, w = value.type.tensor_type.shape.dim[2:4]
            if h.HasField("dim_value") and w.HasField("dim_value"):
                return contract, (int(h.dim_value), int(w.dim_value))
            break
    return contract, None
