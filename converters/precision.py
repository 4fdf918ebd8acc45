"""fp32 ONNX -> fp16 ONNX with float32 inputs/outputs and float32 islands.

TensorRT 10.12+ deprecates and TensorRT 11 removes the FP16 builder flag: a strongly typed
network runs each layer in the type the ONNX graph gives it. So the precision lives in the
graph. This pass stores activations and weights as float16, keeps the model's inputs and
outputs float32 (a Cast at each edge), and keeps float32 *islands* where float16 breaks:

* normalisations (mean and variance over a whole plane or row), Exp and Pow (overflow),
  reductions and softmax over a large or unknown extent (accumulated sums overflow);
* nodes whose weights or measured activations leave the float16 range (``samples``);
* any node the caller names (the island search in :mod:`.islands` names them).

Resize's ``roi``/``scales`` inputs always stay float32 (the ONNX type constraint). Nodes that
only compute shapes or constants (no activation flows through them) stay float32 too: a
float16 shape computation loses integers above 2048.

Why not ``onnxconverter_common.float16`` (checked, 1.16 with onnx 1.23): with a custom block
list it converts Resize's scales to float16 (the checker rejects the model), and a blocked node
that feeds a graph output leaves that output float16 although ``keep_io_types=True``.
ONNX Runtime's copy (``onnxruntime.transformers.float16``) emits nodes out of topological
order and round-trips graph inputs and island-to-island edges through float16
(fp32 -> fp16 -> fp32), which loses the precision the island was meant to keep.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vetrina.errors import ConversionError

from .activations import EMULATED, FP16_MAX, Feeds, Runner, load, tensor_types
from .tensor_stats import TensorStats, activation_ranges

FLOAT, FLOAT16 = 1, 10

#: Op types kept float32 by default, with the reason recorded for each island.
FP32_OPS: dict[str, str] = {
    "InstanceNormalization": "normalisation",
    "LayerNormalization": "normalisation",
    "GroupNormalization": "normalisation",
    "BatchNormalization": "normalisation",
    "MeanVarianceNormalization": "normalisation",
    "LpNormalization": "normalisation",
    "Exp": "exp overflows float16 above 11",
    "Pow": "pow overflows float16",
}

#: Reductions kept float32 when the reduced extent is unknown (dynamic) or above the limit.
REDUCTIONS = frozenset(
    {
        "ReduceSum",
        "ReduceMean",
        "ReduceSumSquare",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceProd",
        "GlobalAveragePool",
        "GlobalLpPool",
        "Softmax",
        "LogSoftmax",
    }
)

#: Ops that make typed values from attributes (or randomness): never converted.
_TYPED_SOURCES = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "EyeLike",
        "Range",
    }
)

_SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan"})


@dataclass
class PrecisionResult:
    """What a precision transform produced; ``provenance()`` goes into the model contract."""

    path: Path
    precision: str  # "fp16" | "int8"
    target: str | None = None  # int8: "tensorrt" | "cpu"
    islands: list[str] = field(default_factory=list)  # nodes kept float32
    reasons: dict[str, str] = field(default_factory=dict)  # island -> why
    evaluator: str | None = None  # the CPU evaluator that checks its numerics
    calibration: dict[str, Any] | None = None  # int8: {images, method, ...}
    search_trials: int | None = None
    rewrites: dict[str, int] | None = None  # graph rewrites applied after quantization

    def provenance(self) -> dict[str, Any]:
        """JSON-safe summary for the contract's provenance."""
        data = asdict(self)
        data["path"] = self.path.name
        return {k: v for k, v in data.items() if v is not None}


def convert_fp16(
    source: str | os.PathLike[str] | Any,
    output: str | os.PathLike[str],
    *,
    keep_fp32: Iterable[str] = (),
    fp32_ops: Mapping[str, str] | None = None,
    samples: Sequence[Feeds] | None = None,
    check_ranges: bool = True,
    max_reduce_extent: int = 4096,
    headroom: float = 2.0,
    tiny_fraction: float = 0.5,
    evaluator: str = EMULATED,
) -> PrecisionResult:
    """Write the float16 version of ``source`` (fp32 ONNX path or ModelProto) to ``output``.

    ``keep_fp32``: node names kept float32. ``fp32_ops``: op types kept float32 (default
    :data:`FP32_OPS`; pass ``{}`` for none). ``check_ranges``: nodes whose constants exceed
    the float16 range become islands, and, when ``samples`` (input feeds) are given, every node
    producing or consuming a tensor with ``|max| > 65504 / headroom`` or whose non-zero values
    are mostly (``tiny_fraction``) below float16's smallest normal.
    The result passes the ONNX checker and strict shape inference. ``evaluator`` is the CPU
    evaluator recorded for checking its numerics (see :mod:`.activations`: plain ONNX Runtime
    CPU does not round float16 activations); the model is loaded in it as a check.
    """
    import onnx

    model = _prepare(load(source))
    keep_fp32 = list(keep_fp32)
    names = {n.name for n in model.graph.node}
    unknown = sorted(set(keep_fp32) - names)
    if unknown:
        raise ConversionError(
            f"keep_fp32 names nodes the model does not have: {', '.join(unknown[:8])}",
            hint="use node names of the fp32 ONNX model (onnx.load(path).graph.node)",
        )
    ops = FP32_OPS if fp32_ops is None else fp32_ops
    reasons = island_rules(model, ops, max_reduce_extent, check_constants=check_ranges)
    for name in keep_fp32:
        reasons.setdefault(name, "requested")
    if samples and check_ranges:
        limit = FP16_MAX / headroom
        ranges = activation_ranges(model, samples)
        for name, why in range_islands(model, ranges, limit, tiny_fraction).items():
            reasons.setdefault(name, why)
    converted = _rewrite(model, set(reasons))
    try:
        onnx.checker.check_model(converted, full_check=True)
        onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)
    except Exception as exc:
        raise ConversionError(f"the float16 model failed the ONNX checker: {exc}") from exc
    output = Path(output)
    onnx.save(converted, os.fspath(output))
    kept = [n.name for n in model.graph.node if n.name in reasons]
    return PrecisionResult(
        path=output,
        precision="fp16",
        islands=kept,
        reasons={n: reasons[n] for n in kept},
        evaluator=Runner(converted, evaluator=evaluator).evaluator,
    )


def island_rules(
    model: Any,
    fp32_ops: Mapping[str, str],
    max_reduce_extent: int,
    *,
    check_constants: bool = True,
) -> dict[str, str]:
    """Nodes that the static rules keep float32: listed op types, big reductions, weights
    outside the float16 range. Only nodes an activation flows through are considered."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = _shapes(inferred)
    consts = {t.name: t for t in model.graph.initializer}
    active = activation_tensors(inferred)
    reasons: dict[str, str] = {}
    for node in model.graph.node:
        if not any(i in active for i in node.input):
            continue
        if node.op_type in fp32_ops:
            reasons[node.name] = fp32_ops[node.op_type]
        elif node.op_type in REDUCTIONS:
            extent = _reduced_extent(node, shapes, consts)
            if extent is None or extent > max_reduce_extent:
                what = "unknown" if extent is None else str(extent)
                reasons[node.name] = f"{node.op_type} over {what} elements"
        elif node.domain not in ("", "ai.onnx"):
            reasons[node.name] = f"custom-domain op {node.domain}.{node.op_type}"
        for name in node.input if check_constants else ():
            if name in consts and consts[name].data_type == FLOAT:
                values = onnx.numpy_helper.to_array(consts[name])
                if values.size and float(np.max(np.abs(values))) > FP16_MAX:
                    reasons.setdefault(node.name, f"constant {name} outside the float16 range")
    return reasons


def range_islands(
    model: Any, ranges: Mapping[str, TensorStats], limit: float, tiny_fraction: float
) -> dict[str, str]:
    """Producers and consumers of activations that overflow ``limit`` or mostly underflow."""
    active = activation_tensors(model)
    reasons: dict[str, str] = {}
    for node in model.graph.node:
        for name in list(node.input) + list(node.output):
            stats = ranges.get(name)
            if stats is None or name not in active:
                continue
            if not stats.finite or stats.max_abs > limit:
                reasons.setdefault(node.name, f"{name} reaches |{stats.max_abs:.3g}| (fp16 range)")
            elif stats.tiny_fraction > tiny_fraction:
                reasons.setdefault(
                    node.name, f"{name}: {stats.tiny_fraction:.0%} of values below fp16 normals"
                )
    return reasons


def activation_tensors(model: Any) -> set[str]:
    """Float tensors that depend on a float graph input (what flows, not shapes/constants)."""
    types = tensor_types(onnx_infer(model))
    init = {t.name for t in model.graph.initializer}
    active = {
        i.name for i in model.graph.input if i.name not in init and types.get(i.name) == FLOAT
    }
    for node in model.graph.node:
        if any(i in active and types.get(i) == FLOAT for i in node.input):
            active.update(o for o in node.output if types.get(o) == FLOAT)
    return active


def onnx_infer(model: Any) -> Any:
    import onnx

    return onnx.shape_inference.infer_shapes(model)


def _prepare(model: Any) -> Any:
    """Inline local functions, turn float Constant nodes into initializers, refuse control flow
    and models that are already reduced precision."""
    import onnx
    from onnx import numpy_helper

    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    kept = []
    for node in graph.node:
        if node.op_type in _SUBGRAPH_OPS or any(a.type in (5, 10) for a in node.attribute):
            raise ConversionError(
                f"node {node.name!r} ({node.op_type}) has a subgraph; the float16 pass handles "
                "straight-line graphs only",
                hint="export without data-dependent control flow",
            )
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            value = _constant_value(node)
            if value is not None and value.dtype == np.float32:
                graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
                continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    for i, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    types = tensor_types(onnx_infer(copy))
    if any(t in (FLOAT16, 16) for t in types.values()) or any(
        n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node
    ):
        raise ConversionError(
            "the model already holds float16/bfloat16 tensors or Q/DQ nodes",
            hint="convert the fp32 export, not a converted model",
        )
    return copy


def _constant_value(node: Any) -> np.ndarray | None:
    from onnx import numpy_helper

    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, dtype=np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), dtype=np.float32)
    return None


def _shapes(model: Any) -> dict[str, list[int | None]]:
    shapes = {}
    graph = model.graph
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tt = info.type.tensor_type
        if tt.HasField("shape"):
            shapes[info.name] = [
                d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim
            ]
    for t in graph.initializer:
        shapes[t.name] = list(t.dims)
    return shapes


def _reduced_extent(
    node: Any, shapes: dict[str, list[int | None]], consts: dict[str, Any]
) -> int | None:
    """Number of elements each output value sums over; None when unknown."""
    from onnx import numpy_helper

    shape = shapes.get(node.input[0])
    if shape is None:
        return None
    rank = len(shape)
    attrs = {a.name: a for a in node.attribute}
    if node.op_type in ("GlobalAveragePool", "GlobalLpPool"):
        axes = list(range(2, rank))
    elif node.op_type in ("Softmax", "LogSoftmax"):
        axes = [attrs["axis"].i if "axis" in attrs else -1]
    elif "axes" in attrs:
        axes = list(attrs["axes"].ints)
    elif len(node.input) > 1 and node.input[1]:
        if node.input[1] not in consts:
            return None
        axes = [int(a) for a in numpy_helper.to_array(consts[node.input[1]]).ravel()]
    else:
        noop = "noop_with_empty_axes" in attrs and attrs["noop_with_empty_axes"].i
        axes = [] if noop else list(range(rank))
    extent = 1
    for axis in axes:
        dim = shape[axis % rank] if rank else 1
        if dim is None:
            return None
        extent *= dim
    return extent


def _always_fp32_inputs(node: Any, opset: int) -> set[int]:
    if node.op_type == "Resize":
        return {1} if opset <= 10 else {1, 2}
    if node.op_type == "Upsample":
        return {1}
    return set()


def _rewrite(model: Any, islands: set[str]) -> Any:
    """The float16 graph: converted nodes read and write float16, islands float32."""
    import onnx
    from onnx import helper, numpy_helper

    inferred = onnx_infer(model)
    types = tensor_types(inferred)
    active = activation_tensors(model)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=1)
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    used_names = {n for node in graph.node for n in [*node.input, *node.output]} | set(consts)
    used_names |= {i.name for i in graph.input}
    outputs = {o.name for o in graph.output}

    def fresh(base: str) -> str:
        name, k = base, 1
        while name in used_names:
            name, k = f"{base}_{k}", k + 1
        used_names.add(name)
        return name

    # A node is converted when an activation flows into it and it is not an island.
    converted = {
        node.name
        for node in graph.node
        if node.name not in islands
        and node.op_type not in _TYPED_SOURCES
        and node.domain in ("", "ai.onnx")
        and any(i in active for i in node.input)
    }
    home: dict[str, int] = {}  # float tensor -> the type it is stored in
    for i in graph.input:
        if types.get(i.name) == FLOAT:
            home[i.name] = FLOAT
    half_consts: dict[str, str] = {}
    casts: dict[tuple[str, int], str] = {}
    new_nodes: list[Any] = []
    new_inits: list[Any] = []
    renamed: dict[str, str] = {}  # graph output -> its float16 internal name

    def read(name: str, want: int) -> str:
        name = renamed.get(name, name)
        if name in consts and consts[name].data_type == FLOAT:
            if want == FLOAT:
                return name
            if name not in half_consts:
                with np.errstate(over="ignore"):  # beyond 65504 -> inf, as asked (no island)
                    values = numpy_helper.to_array(consts[name]).astype(np.float16)
                half = fresh(f"{name}__fp16")
                new_inits.append(numpy_helper.from_array(values, half))
                half_consts[name] = half
            return half_consts[name]
        have = home.get(name)
        if have is None or have == want:
            return name
        if (name, want) not in casts:
            out = fresh(f"{name}__to_{'fp16' if want == FLOAT16 else 'fp32'}")
            new_nodes.append(helper.make_node("Cast", [name], [out], to=want, name=out))
            casts[(name, want)] = out
        return casts[(name, want)]

    for node in graph.node:
        half = node.name in converted
        fixed = _always_fp32_inputs(node, opset) if half else set()
        for i, name in enumerate(node.input):
            if name and types.get(name) == FLOAT:
                node.input[i] = read(name, FLOAT16 if half and i not in fixed else FLOAT)
        if half:
            _retype_attributes(node)
        tail = []
        for i, name in enumerate(node.output):
            if types.get(name) != FLOAT:
                continue
            if not half:
                home[name] = FLOAT
                continue
            if name in outputs:  # a graph output stays float32: cast the float16 result
                inner = fresh(f"{name}__fp16")
                renamed[name] = inner
                node.output[i] = inner
                home[inner] = FLOAT16
                casts[(inner, FLOAT)] = name
                tail.append(
                    helper.make_node("Cast", [inner], [name], to=FLOAT, name=f"{name}__cast")
                )
            else:
                home[name] = FLOAT16
        new_nodes.append(node)
        new_nodes.extend(tail)

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(new_inits)
    referenced = {n for node in g.node for n in node.input} | outputs
    live = [t for t in g.initializer if t.name in referenced]
    del g.initializer[:]
    g.initializer.extend(live)
    del g.value_info[:]
    return onnx.shape_inference.infer_shapes(out, check_type=True, strict_mode=True)


def _retype_attributes(node: Any) -> None:
    """Attributes that name or hold float32 in a converted node become float16."""
    from onnx import helper, numpy_helper

    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
            attr.i = FLOAT16
        elif attr.type == 4 and attr.t.data_type == FLOAT:  # TENSOR
            half = numpy_helper.to_array(attr.t).astype(np.float16)
            attr.t.CopyFrom(numpy_helper.from_array(half, attr.t.name))
    if node.op_type == "ConstantOfShape" and not any(a.name == "value" for a in node.attribute):
        node.attribute.append(
            helper.make_attribute("value", helper.make_tensor("value", FLOAT16, [1], [0.0]))
        )
