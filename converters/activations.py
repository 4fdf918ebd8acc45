"""Run an ONNX model on the CPU with its intermediate tensors exposed, and measure them.

Precision work needs three things from a model run: the outputs (to judge a reduced-precision
candidate), every intermediate activation (to see which tensors leave the float16 range, and
where a candidate starts to drift from fp32), and the name of the evaluator that produced them.

Float16 numerics need care on the CPU. ONNX Runtime's CPU provider runs most float16 ops (Conv,
Relu, Sigmoid, ...) through float32 kernels and removes the casts around them, so activations
are never rounded to float16 and the error looks 10-30 dB smaller than it is (ONNX Runtime
1.32: ``Cast(fp16) -> Relu -> Cast(fp32)`` returns its input unrounded; no session option turns
that off; an op placed to force the rounding, such as ``Max(t, t)``, is moved into float32
with the chain). Hence three evaluators:

* ``onnxruntime-cpu``: the model as it is (right for fp32 and int8 Q/DQ models);
* ``onnxruntime-fp16-emulated`` (float16 checks, the default there): the model rewritten to
  compute every op in float32 and round every float16 tensor through a ``Cast`` pair (see
  :func:`emulate_fp16`), so each one is rounded exactly as stored, while the ops compute in
  float32 -- the way GPU kernels (TensorRT) accumulate convolutions. A self-check on a small
  chain guards this: if a future ONNX Runtime stops rounding there, it raises instead of
  silently measuring fp32;
* ``onnx.reference``: float16 arithmetic in numpy (accumulation in float16 too: pessimistic),
  100x slower: small inputs only. ``auto`` falls back to it when ONNX Runtime lacks a kernel.

Intermediates are read through :class:`TensorReader`, a chunk of tensors per run: exposing
every one at once holds them all in memory (Real-ESRGAN's RRDBNet x4, 1,000+ tensors, needed
over 23 GB at two 128 px inputs), so the reader runs the model once per chunk that fits a
byte budget, sized by shape inference at the inputs' shapes. Statistics of every tensor need
no exposure at all: :mod:`.tensor_stats` computes them inside the graph.
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vetrina.errors import ConversionError

ORT = "onnxruntime-cpu"
EMULATED = "onnxruntime-fp16-emulated"
REFERENCE = "onnx.reference"
EVALUATORS = ("auto", ORT, EMULATED, REFERENCE)

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 6.103515625e-05
_FLOAT16 = 10

#: Bytes of exposed tensors (over all samples) one run of a :class:`TensorReader` may hold.
TENSOR_BUDGET = 1 << 30

Feeds = Mapping[str, np.ndarray]


def run_onnx(
    model: Any,
    feeds: Feeds,
    *,
    outputs: Sequence[str] | None = None,
    evaluator: str = "auto",
) -> tuple[list[np.ndarray], str]:
    """Run ``model`` (a path or ModelProto) once; returns (outputs, evaluator name)."""
    runner = Runner(model, evaluator=evaluator)
    return runner.run(feeds, outputs), runner.evaluator


class Runner:
    """One loaded model on a CPU evaluator (see the module doc for the choices)."""

    def __init__(
        self,
        model: Any,
        *,
        evaluator: str = "auto",
        threads: int | None = None,
        optimize: bool = True,
    ) -> None:
        if evaluator not in EVALUATORS:
            raise ValueError(f"evaluator must be one of {', '.join(EVALUATORS)}, got {evaluator!r}")
        proto = load(model)
        self.output_names = [o.name for o in proto.graph.output]
        self._session: Any = None
        self._reference: Any = None
        if evaluator != REFERENCE:
            if evaluator == EMULATED:
                check_fp16_emulation()
                proto = emulate_fp16(proto)
            try:
                self._session = _ort_session(proto, threads, optimize)
                self.evaluator = ORT if evaluator == "auto" else evaluator
                return
            except _OrtMissingKernel as exc:
                if evaluator != "auto":
                    raise ConversionError(
                        f"ONNX Runtime CPU cannot run the model: {exc}",
                        hint="evaluate it with the onnx.reference evaluator",
                    ) from None
        from onnx.reference import ReferenceEvaluator

        self._reference = ReferenceEvaluator(proto)
        self.evaluator = REFERENCE

    def run(self, feeds: Feeds, outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        names = list(outputs) if outputs is not None else self.output_names
        if self._session is not None:
            return list(self._session.run(names, dict(feeds)))
        return [np.asarray(v) for v in self._reference.run(names, dict(feeds))]


def emulate_fp16(model: Any) -> Any:
    """A float32 copy of ``model`` that rounds every float16 tensor exactly as stored (the
    model itself when it holds none).

    Every op computes in float32 (weights widened exactly); each tensor the original holds as
    float16 is materialised as float16 by a ``Cast`` and widened again for its consumers, so
    it keeps its name and its float16 value. The graph holds no float16 op other than
    ``Cast``: ONNX Runtime CPU has nothing to move into float32 and keeps every rounding (with
    float16 ops left in, it turns a chain of them into float32 and skips the roundings
    between, whatever is put there to force them)."""
    import onnx
    from onnx import numpy_helper

    types = tensor_types(onnx.shape_inference.infer_shapes(model))
    half = {name for name, elem in types.items() if elem == _FLOAT16}
    if not half:
        return model
    for node in model.graph.node:
        if any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute):
            raise ConversionError(
                f"node {node.name or node.op_type} has a subgraph: the float16 emulation "
                "rewrites the main graph only",
                hint="check float16 numerics with evaluator='onnx.reference'",
            )
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    del graph.value_info[:]
    widen: list[Any] = []  # Cast(float16 tensor -> its float32 twin), for the consumers

    def wide(name: str) -> str:
        return f"{name}__fp32" if name in half else name

    stored = {t.name for t in graph.initializer}
    inputs = [info for info in graph.input if info.name not in stored or info.name not in half]
    del graph.input[:]
    graph.input.extend(inputs)
    for info in inputs:
        if info.name in half:
            widen.append(_cast(info.name, wide(info.name)))
    initializers = []
    for tensor in graph.initializer:
        if tensor.name in half:
            values = numpy_helper.to_array(tensor).astype(np.float32)
            initializers.append(numpy_helper.from_array(values, wide(tensor.name)))
        else:
            initializers.append(tensor)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    nodes = list(widen)
    for node in graph.node:
        _widen_attributes(node)
        for i, name in enumerate(node.input):
            node.input[i] = wide(name) if name else name
        rounding = []
        for i, name in enumerate(node.output):
            if name in half:
                node.output[i] = f"{name}__unrounded"
                rounding.append(_cast(node.output[i], name, to=_FLOAT16))
                rounding.append(_cast(name, wide(name)))
        nodes.append(node)
        nodes.extend(rounding)
    del graph.node[:]
    graph.node.extend(nodes)
    return copy


def _cast(source: str, target: str, *, to: int = 1) -> Any:
    from onnx import helper

    return helper.make_node("Cast", [source], [target], to=to, name=f"{target}__cast")


def _widen_attributes(node: Any) -> None:
    """Make a node that creates float16 values (Cast, Constant, ConstantOfShape) create
    float32 ones; refuse other ops with a float16 dtype attribute."""
    from onnx import numpy_helper

    for attr in node.attribute:
        if attr.type == attr.TENSOR and attr.t.data_type == _FLOAT16:
            values = numpy_helper.to_array(attr.t).astype(np.float32)
            attr.t.CopyFrom(numpy_helper.from_array(values, attr.t.name))
        elif attr.name in ("to", "dtype") and attr.type == attr.INT and attr.i == _FLOAT16:
            if node.op_type != "Cast":
                raise ConversionError(
                    f"node {node.name or node.op_type} ({node.op_type}) makes float16 values "
                    "the float16 emulation cannot widen",
                    hint="check float16 numerics with evaluator='onnx.reference'",
                )
            attr.i = 1


@functools.cache
def check_fp16_emulation() -> None:
    """Raise unless the emulation rounds every float16 tensor of a chain: x -> Cast(fp16) ->
    Mul -> Relu -> Add -> Cast(fp32) must equal numpy rounding after each op."""
    from onnx import TensorProto, helper, numpy_helper

    scale = np.array([1.1], np.float16)
    shift = np.array([0.3], np.float16)
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
            helper.make_node("Mul", ["h", "scale"], ["m"]),
            helper.make_node("Relu", ["m"], ["r"]),
            helper.make_node("Add", ["r", "shift"], ["a"]),
            helper.make_node("Cast", ["a"], ["y"], to=TensorProto.FLOAT),
        ],
        "check",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6])],
        [numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(shift, "shift")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    x = np.array([1000.1, 2000.7, 3.14159, -7.77, 0.123457, 1e5], np.float32)
    with np.errstate(over="ignore"):
        step = x.astype(np.float16)
        step = (step.astype(np.float32) * scale.astype(np.float32)).astype(np.float16)
        step = np.maximum(step, 0)
        want = (step.astype(np.float32) + shift.astype(np.float32)).astype(np.float16)
    got = _ort_session(emulate_fp16(model), None).run(None, {"x": x})[0]
    if not np.array_equal(got, want.astype(np.float32)):
        raise ConversionError(
            "this ONNX Runtime does not round float16 tensors in the emulation "
            f"(got {got.tolist()}, want {want.astype(np.float32).tolist()})",
            hint="check float16 numerics with evaluator='onnx.reference'",
        )


class _OrtMissingKernel(Exception):
    pass


def _ort_session(proto: Any, threads: int | None, optimize: bool = True) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(
            proto.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ORT's exception types are not importable portably
        text = " ".join(str(exc).split())
        if "NOT_IMPLEMENTED" in text or "Could not find an implementation" in text:
            raise _OrtMissingKernel(text) from None
        raise ConversionError(f"ONNX Runtime cannot load the model: {text[:400]}") from None


def expose(
    model: Any, names: Iterable[str] | None = None, *, types: Mapping[str, int] | None = None
) -> tuple[Any, list[str]]:
    """A copy of ``model`` whose graph also outputs ``names`` (default: every float tensor
    produced by a node). Returns (model, the exposed names in graph order). ``types``: the
    model's :func:`tensor_types` when the caller has them (saves a shape inference)."""
    import onnx

    proto = load(model)
    if types is None:
        types = tensor_types(onnx.shape_inference.infer_shapes(proto))
    existing = {o.name for o in proto.graph.output}
    wanted = None if names is None else set(names)
    exposed: list[str] = []
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    for node in proto.graph.node:
        for out in node.output:
            elem = types.get(out)
            if not out or elem is None or out in existing or out in exposed:
                continue
            if (wanted is None and elem in _FLOATS) or (wanted is not None and out in wanted):
                copy.graph.output.append(onnx.helper.make_tensor_value_info(out, elem, None))
                exposed.append(out)
    return copy, exposed


class TensorReader:
    """A model's float tensors on sample inputs, read a chunk of tensors per run so that the
    exposed values stay within a byte budget however deep the model and large the inputs.

    ``names``: the float tensors nodes produce, in graph order (graph outputs included).
    ``evaluator``, ``threads``: as for :class:`Runner`; ``optimize=False`` turns ONNX Runtime's
    graph optimisations off.
    """

    def __init__(
        self,
        model: Any,
        *,
        evaluator: str = "auto",
        threads: int | None = None,
        optimize: bool = True,
    ) -> None:
        import onnx

        self.model = load(model)
        self.types = tensor_types(onnx.shape_inference.infer_shapes(self.model))
        self._options = {"evaluator": evaluator, "threads": threads, "optimize": optimize}
        #: The evaluator of the last read ("auto" resolved).
        self.evaluator = evaluator
        names: dict[str, None] = {}
        for node in self.model.graph.node:
            for out in node.output:
                if out and self.types.get(out) in _FLOATS:
                    names.setdefault(out)
        self.names = list(names)

    def plan(self, samples: Sequence[Feeds], budget: int = TENSOR_BUDGET) -> list[list[str]]:
        """:attr:`names` cut, in order, into chunks whose bytes over ``samples`` fit ``budget``
        (a tensor larger than the budget alone is a chunk of its own)."""
        sizes = tensor_sizes(self.model, samples)
        chunks: list[list[str]] = []
        current: list[str] = []
        total = 0
        for name in self.names:
            size = sizes.get(name, 0)
            if current and total + size > budget:
                chunks.append(current)
                current, total = [], 0
            current.append(name)
            total += size
        if current:
            chunks.append(current)
        return chunks

    def read(self, names: Sequence[str], samples: Sequence[Feeds]) -> dict[str, list[np.ndarray]]:
        """One run per sample with ``names`` exposed: {name: [value per sample]}; names the
        model does not produce are left out."""
        exposed, added = expose(self.model, names, types=self.types)
        readable = {*added, *(o.name for o in self.model.graph.output)}
        names = [n for n in dict.fromkeys(names) if n in readable]  # not: a stale value_info
        if not names:
            return {}
        runner = Runner(exposed, **self._options)  # type: ignore[arg-type]
        self.evaluator = runner.evaluator
        values: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for feeds in samples:
            for name, value in zip(names, runner.run(feeds, names), strict=True):
                values[name].append(np.asarray(value))
        return values


def tensor_sizes(model: Any, samples: Sequence[Feeds]) -> dict[str, int]:
    """Bytes of every typed tensor of ``model`` summed over ``samples``, from shape inference
    at each sample's input shapes. A size inference leaves unknown counts as the largest known
    one (cautious: chunks get smaller, not memory larger)."""
    import onnx
    from onnx import helper

    totals: Counter[str] = Counter()
    shapes = Counter(
        tuple(sorted((k, tuple(np.shape(v))) for k, v in feeds.items())) for feeds in samples
    )
    for signature, count in shapes.items():
        fixed = dict(signature)
        copy = onnx.ModelProto()
        copy.CopyFrom(load(model))
        for info in copy.graph.input:
            if info.name in fixed and info.type.HasField("tensor_type"):
                shape = info.type.tensor_type.shape
                shape.ClearField("dim")
                for extent in fixed[info.name]:
                    shape.dim.add().dim_value = int(extent)
        del copy.graph.value_info[:]
        graph = onnx.shape_inference.infer_shapes(copy, data_prop=True).graph
        known: dict[str, int] = {}
        unknown: list[str] = []
        for info in [*graph.value_info, *graph.output]:
            kind = info.type.tensor_type
            if not info.type.HasField("tensor_type") or not kind.elem_type:
                continue
            dims = kind.shape.dim if kind.HasField("shape") else None
            if dims is None or any(not d.HasField("dim_value") for d in dims):
                unknown.append(info.name)
                continue
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(kind.elem_type)).itemsize
            known[info.name] = int(np.prod([d.dim_value for d in dims], dtype=np.int64)) * itemsize
        fallback = max(known.values(), default=0)
        for name, size in known.items():
            totals[name] += size * count
        for name in unknown:
            totals[name] += fallback * count
    return dict(totals)


def tensor_values(
    model: Any, samples: Sequence[Feeds], *, evaluator: str = "auto"
) -> tuple[list[dict[str, Any]], str]:
    """Every float tensor (inputs, intermediates, outputs) for each sample, and the evaluator:
    all held at once, so for small models and inputs (statistics: :mod:`.tensor_stats`)."""
    reader = TensorReader(model, evaluator=evaluator)
    values = reader.read(reader.names, samples)
    per_sample = []
    for i, feeds in enumerate(samples):
        result = {name: arrays[i] for name, arrays in values.items()}
        result.update({k: np.asarray(v) for k, v in feeds.items()})
        per_sample.append(result)
    return per_sample, reader.evaluator


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """RMS of the difference over the RMS of the reference (inf if the candidate is not
    finite where the reference is)."""
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    if ref.shape != cand.shape:
        return math.inf
    ok = np.isfinite(ref)
    if not np.isfinite(cand[ok]).all():
        return math.inf
    if not ok.any():
        return 0.0
    diff = float(np.sqrt(np.mean((ref[ok] - cand[ok]) ** 2)))
    scale = float(np.sqrt(np.mean(ref[ok] ** 2)))
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def tensor_types(model: Any) -> dict[str, int]:
    """Element type of every typed tensor in the (shape-inferred) main graph."""
    graph = model.graph
    types = {t.name: t.data_type for t in graph.initializer}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    return types


def load(model: Any) -> Any:
    """A ModelProto from a path or a ModelProto (returned as is)."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise ConversionError(f"{path}: no such ONNX file")
    return onnx.load(os.fspath(path))


_FLOATS = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
