"""``vetrina doctor``: what in a model will hurt on TensorRT or in fp16, each with its fix.

Static checks read the ONNX graph (types from ONNX shape inference); one dynamic check runs
the model in ONNX Runtime (CPU) with every intermediate tensor exposed and measures how large
the activations get on realistic inputs: catalog photos rendered by
:func:`vetrina.models.catalog.render`, mapped into each input's range by the contract (random
inputs when the model has no contract).

Severities:

* ``error``: the TensorRT build will fail, or the model gives wrong results as it is (an
  unsupported op, antialiased Resize, computed Resize scales, InstanceNorm computing in fp16,
  inf/NaN on sample inputs, sides the contract allows but a pixel-unshuffle cannot split,
  Q/DQ nodes with uint8 or non-zero zero points: TensorRT takes symmetric int8 only);
* ``warning``: it will hurt once the model runs in fp16 (InstanceNorm, activations beyond
  fp16's 65504) or is a known trap (GridSample precision, SpaceToDepth channel order, int64
  shape arithmetic, normalisations/reductions computed in fp16, Resize scales computed from
  constants, which constant folding fixes);
* ``info``: worth knowing (normalisations and reductions to keep fp32 when converting).

``vetrina doctor`` exits 1 when there is an error finding (with ``--strict``: also a warning),
else 0, so CI can gate on it.

Ops TensorRT's ONNX parser does not import (:data:`TENSORRT_UNSUPPORTED`) come from the
onnx-tensorrt operator matrix (``docs/operators.md``, TensorRT 9.2 to 10.1: the rows marked
"N"), plus the string and image-decoding ops that have no TensorRT layer. Newer TensorRT
versions may support a few more; the list errs on the side of a warning that is easy to check.
"""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vetrina.contract import METADATA_KEY, Contract, TensorSpec
from vetrina.errors import ModelError

from .activations import EMULATED, ORT
from .tensor_stats import tensor_statistics

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)
FP16_MAX = 65504.0

#: onnx-tensorrt operator matrix rows marked "N" (TensorRT 9.2-10.1), plus string/decoder ops.
TENSORRT_UNSUPPORTED = frozenset(
    {
        "Bernoulli", "BitShift", "BlackmanWindow", "Compress", "ConcatFromSequence",
        "ConvInteger", "DFT", "Det", "DynamicQuantizeLinear", "HammingWindow", "HannWindow",
        "ImageDecoder", "MatMulInteger", "MaxRoiPool", "MaxUnpool", "MelWeightMatrix",
        "Multinomial", "NegativeLogLikelihoodLoss", "Optional", "OptionalGetElement",
        "OptionalHasElement", "QLinearConv", "QLinearMatMul", "RegexFullMatch", "STFT",
        "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
        "SequenceLength", "SequenceMap", "SoftmaxCrossEntropyLoss", "SplitToSequence",
        "StringConcat", "StringNormalizer", "StringSplit", "TfIdfVectorizer", "Unique",
    }
)  # fmt: skip
FFT_OPS = frozenset({"DFT", "STFT"})
NORM_OPS = frozenset(
    {"LayerNormalization", "GroupNormalization", "MeanVarianceNormalization", "LpNormalization"}
)
REDUCE_OPS = frozenset(
    {
        "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceMean", "ReduceLogSum",
        "ReduceLogSumExp", "ReduceProd",
    }
)  # fmt: skip
SHAPE_OPS = frozenset(
    {"Shape", "Size", "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Cast", "Range",
     "ConstantOfShape", "Add", "Sub", "Mul", "Div", "Reshape", "Expand", "Equal", "Where"}
)  # fmt: skip

_FLOAT, _FLOAT16, _INT64, _BFLOAT16 = 1, 10, 7, 16
_UINT8, _INT8 = 2, 3
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
_UNSHUFFLE_PERM = [0, 1, 3, 5, 2, 4]  # (N, C, H/r, r, W/r, r) -> (N, C, r, r, H/r, W/r)


def _keep_fp32(what: str = "it") -> str:
    return (
        f"keep {what} in fp32 when converting to fp16 ('vetrina convert --precision fp16' "
        "does so automatically; elsewhere: ModelOpt AutoCast's op_types_to_exclude)"
    )


@dataclass(frozen=True)
class Finding:
    """One problem: how bad, where, what and how to fix it. ``check`` is a stable id;
    ``node`` names the node (comma-separated when ``count`` identical findings were merged)."""

    severity: str
    check: str
    op: str
    node: str
    issue: str
    fix: str
    count: int = 1

    @property
    def nodes(self) -> list[str]:
        return [n for n in self.node.split(", ") if n]


@dataclass
class DoctorReport:
    """Every finding for one model, plus what the activation measurement saw."""

    model: str
    precision: str
    nodes: int
    findings: list[Finding] = field(default_factory=list)
    activations: dict[str, Any] | None = None

    @property
    def severe(self) -> bool:
        return any(f.severity == ERROR for f in self.findings)

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)

    def exit_code(self, *, strict: bool = False) -> int:
        """1 with an error finding (with ``strict``: also a warning), else 0."""
        bad = (ERROR, WARNING) if strict else (ERROR,)
        return int(any(f.severity in bad for f in self.findings))

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    def to_json(self) -> str:
        return json.dumps(
            {
                "model": self.model,
                "precision": self.precision,
                "nodes": self.nodes,
                "severe": self.severe,
                "counts": {s: self.count(s) for s in SEVERITIES},
                "findings": [asdict(f) for f in self.findings],
                "activations": self.activations,
            },
            indent=2,
        )

    def table(self, width: int = 100) -> str:
        """The findings as a text table: severity, op/node, issue and fix."""
        head = f"{self.model}: {self.precision}, {self.nodes} nodes"
        act = self.activations
        if act and act.get("max_abs") is not None:
            head += f"; largest activation {act['max_abs']:.4g} at {act['node']} ({act['inputs']})"
        elif act and act.get("skipped"):
            head += f"; activations not measured ({act['skipped']})"
        lines = [head]
        if not self.findings:
            lines.append("no findings: nothing known to hurt on TensorRT or in fp16")
            return "\n".join(lines)
        left = 30
        wrap = max(40, width - 10 - left)
        lines.append(f"{'SEVERITY':<9} {'OP / NODE':<{left}} ISSUE / FIX")
        for f in self.findings:
            names = f.nodes
            where = [f"{f.op} x{f.count}" if f.count > 1 else f.op]
            if names:
                where.append(names[0] + (f" +{len(names) - 1}" if len(names) > 1 else ""))
            where = [w if len(w) <= left else w[: left - 3] + "..." for w in where]
            text = (textwrap.wrap(f.issue, wrap) or [""]) + textwrap.wrap("fix: " + f.fix, wrap)
            for i, line in enumerate(text):
                first = f.severity if i == 0 else ""
                lines.append(f"{first:<9} {where[i] if i < len(where) else '':<{left}} {line}")
        lines.append(
            f"{self.count(ERROR)} error(s), {self.count(WARNING)} warning(s), "
            f"{self.count(INFO)} note(s)"
        )
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------------------------


def diagnose(
    model: str | os.PathLike[str] | Any,
    *,
    contract: Contract | None = None,
    measure: bool = True,
    samples: int = 2,
    size: int = 256,
    threads: int | None = None,
    name: str | None = None,
) -> DoctorReport:
    """Check an ONNX model (path or ``ModelProto``).

    ``contract``: overrides the one in the model's metadata (checkpoints have none yet).
    ``measure``: run ONNX Runtime on ``samples`` inputs of about ``size`` px to find
    activations beyond fp16's range.
    """
    import onnx

    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        try:
            proto = onnx.load(str(path))
        except Exception as exc:
            raise ModelError(f"{path}: not a readable ONNX model ({exc})") from None
        name = name or str(path)
    else:
        proto = model
        name = name or (proto.graph.name or "model")
    if contract is None:
        meta = {p.key: p.value for p in proto.metadata_props}
        if METADATA_KEY in meta:
            contract = Contract.from_json(meta[METADATA_KEY])
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:
        inferred = proto
    graph = _Graph(inferred)
    from .tensorrt import graph_precision

    report = DoctorReport(model=name, precision=graph_precision(proto), nodes=len(graph.nodes))
    report.findings.extend(static_findings(graph, contract))
    if measure:
        found, report.activations = _activation_findings(
            inferred, graph, contract, samples=samples, size=size, threads=threads
        )
        report.findings.extend(found)
    report.findings = merge_findings(report.findings)
    return report


def merge_findings(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per (severity, check, op, issue, fix), its nodes joined; errors first."""
    merged: dict[tuple[str, ...], list[Finding]] = {}
    for f in findings:
        merged.setdefault((f.severity, f.check, f.op, f.issue, f.fix), []).append(f)
    out = [
        Finding(*key[:3], ", ".join(n for f in group for n in f.nodes), *key[3:], count=len(group))
        for key, group in merged.items()
    ]
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda f: order[f.severity])
    return out


def diagnose_checkpoint(
    path: str | os.PathLike[str],
    *,
    arch: str | None = None,
    trusted: bool = False,
    opset: int | None = None,
    **kwargs: Any,
) -> DoctorReport:
    """Export a checkpoint to a temporary ONNX file (as ``vetrina convert`` would, without
    the parity check) and :func:`diagnose` it with the architecture's contract."""
    from .export import export_onnx
    from .source import load_source

    # the same loading as ``vetrina convert``: the config detected from a bare public
    # state_dict (or stored in the checkpoint) builds the module, not the defaults
    source = load_source(path, arch=arch, trusted=trusted)
    spec, module = source.spec, source.module
    contract = Contract(
        role=spec.role,
        inputs=spec.inputs,
        outputs=spec.outputs,
        spatial=spec.spatial,
        provenance={"architecture": spec.name, "precision": "fp32"},
    )
    with tempfile.TemporaryDirectory(prefix="vetrina-doctor-") as tmp:
        onnx_path = export_onnx(module, spec, Path(tmp) / "model.onnx", opset=opset)
        return diagnose(onnx_path, contract=contract, name=f"{path} ({spec.name})", **kwargs)


# ----------------------------------------------------------------------------------------------
# the graph, with types
# ----------------------------------------------------------------------------------------------


class _Graph:
    """Nodes, producers, consumers, constant values and element types of one ONNX graph."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        g = model.graph
        self.nodes = list(g.node)
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.consumers: dict[str, list[Any]] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.types: dict[str, int] = {}
        self.ranks: dict[str, int] = {}
        for v in (*g.input, *g.output, *g.value_info):
            tt = v.type.tensor_type
            if tt.elem_type:
                self.types[v.name] = tt.elem_type
            if tt.HasField("shape"):
                self.ranks[v.name] = len(tt.shape.dim)
        self.constants: dict[str, np.ndarray] = {}
        self.initializers = {init.name for init in g.initializer}
        self._initializer_protos = {init.name: init for init in g.initializer}
        for init in g.initializer:
            self.types[init.name] = init.data_type
            self.ranks[init.name] = len(init.dims)
            if int(np.prod(init.dims, dtype=np.int64)) <= 64:
                self.constants[init.name] = numpy_helper.to_array(init)
        for n in self.nodes:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value" and a.HasField("t"):
                        self.types[n.output[0]] = a.t.data_type
                        self.constants[n.output[0]] = numpy_helper.to_array(a.t)
        self.inputs = [v for v in g.input if v.name not in {i.name for i in g.initializer}]
        self.outputs = [v.name for v in g.output]

    @staticmethod
    def name(node: Any, index: int | None = None) -> str:
        return node.name or f"{node.op_type}#{index if index is not None else '?'}"

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def value(self, tensor: str) -> np.ndarray | None:
        """The value of a constant tensor (an initializer of any size, or a Constant)."""
        if tensor in self.constants:
            return self.constants[tensor]
        init = self._initializer_protos.get(tensor)
        if init is None:
            return None
        from onnx import numpy_helper

        return numpy_helper.to_array(init)

    def is_constant(self, tensor: str) -> bool:
        """An initializer or a Constant node's output."""
        if tensor in self.initializers or tensor in self.constants:
            return True
        prod = self.producer.get(tensor)
        return prod is not None and prod.op_type == "Constant"

    def foldable(self, tensor: str, depth: int = 0) -> bool:
        """Computed from constants only (no graph input, no random op): constant folding
        turns it into an initializer."""
        if self.is_constant(tensor):
            return True
        prod = self.producer.get(tensor)
        if prod is None or depth > 32 or prod.op_type.startswith("Random"):
            return False
        return all(self.foldable(i, depth + 1) for i in prod.input if i)

    def fp16(self, node: Any) -> bool:
        """The node computes in half precision (its first float input or output is fp16)."""
        for t in (*node.input, *node.output):
            if self.types.get(t) in (_FLOAT, _FLOAT16, _BFLOAT16):
                return self.types[t] in (_FLOAT16, _BFLOAT16)
        return False


# ----------------------------------------------------------------------------------------------
# static checks
# ----------------------------------------------------------------------------------------------


def static_findings(graph: _Graph, contract: Contract | None) -> list[Finding]:
    """Every graph-level finding (no inference run)."""
    out: list[Finding] = []
    for index, node in enumerate(graph.nodes):
        out.extend(_node_findings(graph, node, graph.name(node, index), contract))
    out.extend(_int64_findings(graph))
    return out


def _node_findings(
    graph: _Graph, node: Any, name: str, contract: Contract | None
) -> Iterable[Finding]:
    op = node.op_type
    half = graph.fp16(node)
    if node.domain not in ("", "ai.onnx"):
        yield Finding(
            ERROR,
            "custom-op",
            f"{node.domain}.{op}",
            name,
            f"op {op} of domain {node.domain!r} is not an ONNX standard op; TensorRT's parser "
            "only imports it with a plugin of that name",
            "export without runtime-specific fusions (ONNX Runtime's optimized models contain "
            "com.microsoft ops), or register a TensorRT plugin",
        )
        return
    if op in FFT_OPS:
        yield Finding(
            ERROR,
            "fft",
            op,
            name,
            f"{op} (FFT): TensorRT's ONNX parser has no DFT/STFT, and FFT sums over the whole "
            "signal overflow fp16",
            "move the FFT out of the model (numpy/cuFFT in pre- or post-processing) or "
            "replace it by a convolution (fixed DCT/filter bank)",
        )
    elif op in TENSORRT_UNSUPPORTED:
        yield Finding(
            ERROR,
            "unsupported-op",
            op,
            name,
            f"{op} is not supported by TensorRT's ONNX parser (onnx-tensorrt operator matrix)",
            "rewrite it with supported ops before export, move it out of the model, or "
            "implement a TensorRT plugin",
        )
    if op in QDQ_OPS:
        yield from _qdq_findings(graph, node, name)
    if op == "Resize":
        yield from _resize_findings(graph, node, name)
    elif op == "GridSample":
        yield from _grid_sample_findings(graph, node, name, half)
    elif op == "InstanceNormalization":
        yield Finding(
            ERROR if half else WARNING,
            "instance-norm-fp16",
            op,
            name,
            (
                "InstanceNormalization computes in fp16"
                if half
                else "InstanceNormalization will lose accuracy if the model is converted to fp16"
            )
            + ": its per-image variance over H*W diverges in half precision "
            "(onnxruntime#10079, TensorRT#2691)",
            ("re-convert: " if half else "") + _keep_fp32("InstanceNormalization"),
        )
    elif op in NORM_OPS:
        yield Finding(
            WARNING if half else INFO,
            "norm-fp16",
            op,
            name,
            f"{op} "
            + (
                "computes in fp16: mean/variance lose precision and x^2 can overflow"
                if half
                else "is precision-sensitive in fp16 (variance of large values)"
            ),
            _keep_fp32(op),
        )
    elif op in REDUCE_OPS:
        yield Finding(
            WARNING if half else INFO,
            "reduce-fp16",
            op,
            name,
            f"{op} "
            + (
                "accumulates in fp16: sums over large images overflow 65504 or lose small terms"
                if half
                else "over image-sized axes is at risk in fp16 (sums beyond 65504)"
            ),
            _keep_fp32(op),
        )
    elif op == "SpaceToDepth":
        yield from _unshuffle_findings(
            graph, node, name, contract, int(graph.attr(node, "blocksize", 0) or 0), "SpaceToDepth"
        )
    elif op == "Transpose" and list(graph.attr(node, "perm", []) or []) == _UNSHUFFLE_PERM:
        reshape = graph.producer.get(node.input[0])
        if reshape is not None and reshape.op_type == "Reshape":
            shape = graph.constants.get(reshape.input[1]) if len(reshape.input) > 1 else None
            factor = int(shape[3]) if shape is not None and shape.size == 6 else 0
            yield from _unshuffle_findings(graph, node, name, contract, factor, "pattern")
    elif op == "Einsum" and "..." in str(graph.attr(node, "equation", b"")):
        yield Finding(
            ERROR,
            "unsupported-op",
            op,
            name,
            "Einsum with an ellipsis ('...'): TensorRT's Einsum supports neither ellipsis nor "
            "broadcasting",
            "spell the axes out in the equation, or use MatMul/Reshape",
        )


_QDQ_FIX = (
    "re-quantize for TensorRT: 'vetrina convert --precision int8 --target tensorrt' "
    "(symmetric int8, zero points 0); a --target cpu model is for ONNX Runtime CPU only"
)


def _qdq_findings(graph: _Graph, node: Any, name: str) -> Iterable[Finding]:
    """TensorRT imports Q/DQ as symmetric int8 (or fp8) only: a uint8 zero point or type, or a
    non-zero zero point, fails the parser (what ``--target cpu`` int8 models carry)."""
    zero_point = node.input[2] if len(node.input) > 2 and node.input[2] else None
    uint8 = graph.types.get(zero_point) == _UINT8 if zero_point else False
    if node.op_type == "QuantizeLinear":
        uint8 = uint8 or int(graph.attr(node, "output_dtype", 0) or 0) == _UINT8
    elif graph.is_constant(node.input[0]):  # stored uint8 weights
        uint8 = uint8 or graph.types.get(node.input[0]) == _UINT8
    # a Q/DQ without zero point or output_dtype is not flagged: nothing in it says uint8 (the
    # ONNX default), and exporters for TensorRT may leave a zero point 0 out
    if uint8:
        yield Finding(
            ERROR,
            "qdq-asymmetric",
            "Q/DQ",
            name,
            "Q/DQ quantizes to uint8 (ONNX Runtime CPU's flavour): TensorRT takes symmetric "
            "int8 Q/DQ only (zero point 0) and refuses uint8",
            _QDQ_FIX,
        )
        return
    value = graph.value(zero_point) if zero_point else None
    if value is not None and np.any(np.asarray(value) != 0):
        yield Finding(
            ERROR,
            "qdq-asymmetric",
            "Q/DQ",
            name,
            "Q/DQ with a non-zero zero point: TensorRT takes symmetric int8 Q/DQ only "
            "(zero point 0)",
            _QDQ_FIX,
        )


def _resize_findings(graph: _Graph, node: Any, name: str) -> Iterable[Finding]:
    if int(graph.attr(node, "antialias", 0) or 0):
        yield Finding(
            ERROR,
            "resize-antialias",
            "Resize",
            name,
            "antialiased Resize (antialias=1, e.g. F.interpolate(antialias=True)): TensorRT's "
            "Resize has no antialiasing",
            "export with antialias=False and pre-filter (blur) before downscaling, or "
            "downscale in preprocessing with vetrina's area-resize kernels",
        )
    scales = node.input[2] if len(node.input) > 2 else ""
    if scales and not graph.is_constant(scales):
        src = graph.producer.get(scales)
        by = f"by {src.op_type} {src.name!r}" if src is not None else "a graph input"
        if graph.foldable(scales):
            yield Finding(
                WARNING,
                "resize-dynamic-scales",
                "Resize",
                name,
                f"Resize scales are computed from constants ({by}) instead of being an "
                "initializer: TensorRT's ONNX parser has rejected this ('Resize scales must be "
                "an initializer!'), e.g. after an fp16 conversion inserted a Cast",
                "constant-fold the graph (onnxslim) so the scales become an initializer",
            )
        else:
            yield Finding(
                ERROR,
                "resize-dynamic-scales",
                "Resize",
                name,
                f"Resize scales are computed at run time ({by}): TensorRT requires Resize "
                "scales to be an initializer ('Resize scales must be an initializer!')",
                "export with a constant scale_factor, or with size= (the 'sizes' input may be "
                "dynamic)",
            )


def _grid_sample_findings(graph: _Graph, node: Any, name: str, half: bool) -> Iterable[Finding]:
    rank = graph.ranks.get(node.input[0])
    if rank is not None and rank != 4:
        yield Finding(
            ERROR,
            "grid-sample",
            "GridSample",
            name,
            f"GridSample on a rank-{rank} input: TensorRT's GridSample layer is 2-D (4-D "
            "NCHW tensors) only",
            "reshape the volume into 2-D slices before sampling, or sample outside the model",
        )
        return
    yield Finding(
        WARNING, "grid-sample", "GridSample", name,
        ("GridSample computes in fp16" if half else "GridSample in fp16")
        + ": normalised coordinates in [-1, 1] have ~1/1024 resolution near 1, so samples "
        "shift by a pixel or more on images wider than about 1000 px (TensorRT needs >= 8.6)",
        _keep_fp32("GridSample and the grid computation that feeds it"),
    )  # fmt: skip


def _unshuffle_findings(
    graph: _Graph, node: Any, name: str, contract: Contract | None, factor: int, kind: str
) -> Iterable[Finding]:
    op = node.op_type if kind == "SpaceToDepth" else "Reshape-Transpose-Reshape"
    step = contract.spatial.multiple_of if contract is not None else None
    if factor > 1 and step is not None and step % factor:
        yield Finding(
            ERROR,
            "pixel-unshuffle",
            op,
            name,
            f"pixel_unshuffle by {factor} needs sides divisible by {factor}, but the contract "
            f"allows multiples of {step}: such inputs fail at run time",
            f"raise the architecture's multiple_of to a multiple of {factor} and re-convert",
        )
    if kind == "SpaceToDepth":
        yield Finding(
            WARNING,
            "pixel-unshuffle",
            op,
            name,
            "SpaceToDepth orders output channels block-first (DCR) while torch's "
            "pixel_unshuffle orders them channel-first: an export that mapped pixel_unshuffle "
            "to SpaceToDepth scrambles the channels (pytorch#186080)",
            "verify the export against PyTorch (vetrina convert does); TensorRT supports "
            "SpaceToDepth itself",
        )
    else:
        yield Finding(
            WARNING,
            "pixel-unshuffle",
            op,
            name,
            f"pixel_unshuffle{f' by {factor}' if factor else ''} exported as Reshape -> rank-6 "
            "Transpose -> Reshape: three full copies on TensorRT (shuffle layers, not fused "
            "with the next conv), shapes recomputed per input size, and a channel order that "
            "dynamo exports once got wrong (pytorch#186080)",
            "check parity against PyTorch; for speed, fold the unshuffle into the first conv "
            "(a stride-r conv with rearranged weights) before export",
        )


def _all_int64(graph: _Graph, node: Any) -> bool:
    outs = [o for o in node.output if o]
    return bool(outs) and all(graph.types.get(o) == _INT64 for o in outs)


def _int64_findings(graph: _Graph) -> list[Finding]:
    int64_nodes = [n for n in graph.nodes if n.op_type in SHAPE_OPS and _all_int64(graph, n)]
    total = max(1, len(graph.nodes))
    if len(int64_nodes) < 16 or len(int64_nodes) < 0.25 * total:
        return []
    ops = sorted({n.op_type for n in int64_nodes})
    return [
        Finding(
            WARNING,
            "int64-shapes",
            "/".join(ops[:6]),
            "",
            f"{len(int64_nodes)} of {len(graph.nodes)} nodes compute int64 shape values: "
            "TensorRT evaluates them as shape tensors on the host for every new input shape, "
            "and int64 arithmetic that reaches device layers blocks fusion",
            "constant-fold and simplify the graph (onnxslim), export sizes as static where the "
            "model does not need them dynamic, and avoid size arithmetic in forward()",
        )
    ]


# ----------------------------------------------------------------------------------------------
# activations (ONNX Runtime on sample inputs)
# ----------------------------------------------------------------------------------------------


def sample_feeds(
    inputs: Iterable[Any],
    contract: Contract | None,
    *,
    samples: int = 2,
    size: int = 256,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], str]:
    """Feeds for the graph inputs, and a description of them.

    Images and masks: catalog photos and their alpha (held-out seeds), resized to a size that
    keeps the contract's rules and mapped into the tensor's range; latents: standard normal;
    labels: 0. Without a contract: uniform [0, 1) floats and zero integers; a dynamic batch
    axis is ``samples``, other dynamic axes ``size``.
    """
    from onnx import helper

    rng = np.random.default_rng(seed)
    specs = {t.name: t for t in contract.inputs} if contract is not None else {}
    side = _sample_side(contract, size)
    feeds: dict[str, np.ndarray] = {}
    described = []
    for value in inputs:
        tt = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in tt.shape.dim]  # fmt: skip
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        spec = specs.get(value.name)
        batch = dims[0] if dims and dims[0] is not None else samples
        if spec is not None and spec.layout == "NCHW" and spec.semantic in ("image", "mask"):
            h = dims[2] if len(dims) == 4 and dims[2] is not None else side
            w = dims[3] if len(dims) == 4 and dims[3] is not None else side
            arr = _rendered(spec, batch, h, w, dims[1] if len(dims) > 1 else None)
            described.append(f"{batch} rendered {h}x{w} {spec.semantic}s")
        elif spec is not None and spec.semantic == "z":
            shape = [batch, *[d if d is not None else 1 for d in dims[1:]]]
            arr = rng.standard_normal(shape)
        elif dtype.kind in "iub":
            shape = [batch if i == 0 else (d or 1) for i, d in enumerate(dims)]
            arr = np.zeros(shape)
        else:
            shape = [batch if i == 0 else (d or size) for i, d in enumerate(dims)]
            arr = rng.random(shape)
            described.append(f"random {'x'.join(map(str, shape))}")
        feeds[value.name] = np.ascontiguousarray(arr).astype(dtype)
    return feeds, ", ".join(described) or "generated inputs"


def _sample_side(contract: Contract | None, size: int) -> int:
    if contract is None:
        return size
    rules = contract.spatial
    step = rules.multiple_of
    side = max(rules.min_size, min(size, rules.max_size or size))
    side = -(-side // step) * step
    if rules.max_size is not None and side > rules.max_size:
        side -= step
    return side


def _rendered(spec: TensorSpec, batch: int, h: int, w: int, channels: int | None) -> np.ndarray:
    import cv2

    from vetrina.models.catalog import render, split_seeds

    planes = []
    for seed in split_seeds("test", batch):
        product = render(int(seed), (min(max(h, 64), 512), min(max(w, 64), 512)))
        if spec.semantic == "mask":
            img = product.alpha[..., None]
        elif spec.channels == "L" or channels == 1:
            img = cv2.cvtColor(product.image, cv2.COLOR_RGB2GRAY)[..., None]
        else:
            img = product.image[..., ::-1] if spec.channels == "BGR" else product.image
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            img = img.reshape(h, w, -1)
        planes.append(np.transpose(img, (2, 0, 1)))
    u8 = np.stack(planes).astype(np.float32)
    if spec.range is None:
        return u8 / 255.0
    # one value, or one per channel (mean/std): shaped (C|1, 1, 1) to broadcast over NCHW
    scale, offset = (np.asarray(v, np.float32).reshape(-1, 1, 1) for v in spec.from_uint8_affine())
    return u8 * scale + offset


def _activation_findings(
    model: Any,
    graph: _Graph,
    contract: Contract | None,
    *,
    samples: int,
    size: int,
    threads: int | None,
) -> tuple[list[Finding], dict[str, Any]]:
    try:
        stats, described = measure_activations(
            model, contract, samples=samples, size=size, threads=threads
        )
    except Exception as exc:  # a model ORT cannot run is reported, not fatal to the doctor
        reason = " ".join(str(exc).split())[:300]
        return [
            Finding(
                WARNING,
                "not-measured",
                "-",
                "",
                f"ONNX Runtime could not run the model on sample inputs ({reason})",
                "run the model once with 'vetrina run' to see the error; the static checks "
                "above still apply",
            )
        ], {"skipped": reason}
    findings: list[Finding] = []
    nonfinite = [(t, s) for t, s in stats.items() if s["nonfinite"]]
    if nonfinite:
        first, s = min(nonfinite, key=lambda x: x[1]["order"])
        node = graph.producer.get(first)
        halfs = s["dtype"] == "float16"
        findings.append(
            Finding(
                ERROR,
                "fp16-overflow" if halfs else "nonfinite",
                node.op_type if node else "input",
                (node.name if node else first),
                f"{len(nonfinite)} tensor(s) hold inf/NaN on sample inputs; the first is "
                f"{first!r} ({s['dtype']})" + (": it overflows fp16's range" if halfs else ""),
                _keep_fp32("the overflowing nodes") + "; or rescale the activations"
                if halfs
                else "fix the model: it already fails in fp32 (division by zero, log of 0, exp "
                "overflow...)",
            )
        )
    big = sorted(
        ((t, s) for t, s in stats.items() if s["dtype"] == "float32" and s["max_abs"] > FP16_MAX),
        key=lambda x: -x[1]["max_abs"],
    )
    for t, s in big[:8]:
        node = graph.producer.get(t)
        findings.append(
            Finding(
                WARNING,
                "fp16-overflow",
                node.op_type if node else "input",
                node.name if node else t,
                f"{t!r} reaches {s['max_abs']:.4g} on sample inputs, beyond fp16's {FP16_MAX:g}: "
                "in fp16 it becomes inf",
                _keep_fp32("this node and its producers") + ", or rescale (e.g. normalise "
                "inputs, fold a scale into the next layer)",
            )
        )
    if len(big) > 8:
        findings.append(
            Finding(
                WARNING,
                "fp16-overflow",
                "-",
                "",
                f"{len(big) - 8} more tensors exceed fp16's range",
                "see --json for all of them",
            )
        )
    finite = [(t, s) for t, s in stats.items() if np.isfinite(s["max_abs"])]
    worst = max(finite, key=lambda x: x[1]["max_abs"], default=None)
    summary: dict[str, Any] = {"inputs": described, "tensors": len(stats)}
    if worst is not None:
        node = graph.producer.get(worst[0])
        summary.update(
            max_abs=float(worst[1]["max_abs"]),
            tensor=worst[0],
            node=f"{node.op_type} {node.name}" if node else worst[0],
            beyond_fp16=[t for t, _ in big],
        )
    return findings, summary


def measure_activations(
    model: Any,
    contract: Contract | None,
    *,
    samples: int = 2,
    size: int = 256,
    threads: int | None = None,
    feeds: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, dict[str, Any]], str]:
    """Run ``model`` (a ModelProto with inferred types) in ONNX Runtime, unoptimised, and
    measure every float tensor a node produces inside the graph (see :mod:`.tensor_stats`;
    float16 tensors rounded as stored): {tensor: {max_abs (finite values), nonfinite, dtype,
    order}} and the inputs used."""
    graph = _Graph(model)
    order: dict[str, int] = {}
    for i, node in enumerate(model.graph.node):
        for out in node.output:
            order.setdefault(out, i)
    if feeds is None:
        feeds, described = sample_feeds(graph.inputs, contract, samples=samples, size=size)
    else:
        described = "given inputs"
    half = any(t == _FLOAT16 for t in graph.types.values())
    measured = tensor_statistics(
        model,
        [feeds],
        names=list(order),
        evaluator=EMULATED if half else ORT,
        threads=threads,
        optimize=False,
    )
    stats = {
        tensor: {
            "max_abs": s.max_finite,
            "nonfinite": s.nonfinite,
            "dtype": s.dtype,
            "order": order[tensor],
        }
        for tensor, s in measured.items()
    }
    return stats, described
