"""Run an ONNX model on the CPU with its intermediate tensors exposed, and measure them.

Precision work needs three things from a model run: the outputs (to judge a reduced-precision
candidate), every intermediate activation (to see which tensors leave the float16 range, and
where a candidate starts to drift from fp32), and the name of the evaluator that produced them.

Float16 numerics need care on the CPU. ONNX Runtime's CPU provider runs most float16 ops (Conv,
Relu, Sigmoid, ...) through float32 kernels and removes the casts around them, so activations
are never rounded to float16 and the error looks 10-30 dB smaller than it is (ONNX Runtime
1.32: ``Cast(fp16) -> Relu -> Cast(fp32)`` returns its input unrounded; no session option turns
that off). Hence three evaluators:

* ``onnxruntime-cpu``: the model as it is (right for fp32 and int8 Q/DQ models);
* ``onnxruntime-fp16-emulated`` (float16 checks, the default there): a ``Max(t, t)`` after every
  float16 tensor forces ONNX Runtime to materialise it in float16, so each one is rounded
  exactly as stored, while the ops compute in float32 -- the way GPU kernels (TensorRT)
  accumulate convolutions. A self-check on a tiny graph guards this: if a future ONNX Runtime
  stops rounding there, it raises instead of silently measuring fp32;
* ``onnx.reference``: float16 arithmetic in numpy (accumulation in float16 too: pessimistic),
  100x slower: small inputs only. ``auto`` falls back to it when ONNX Runtime lacks a kernel.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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

Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class TensorRange:
    """Magnitude statistics of one float tensor over all samples."""

    max_abs: float
    #: Fraction of the non-zero values below the smallest normal float16 (they lose precision
    #: or flush to zero when stored as float16).
    tiny_fraction: float
    finite: bool


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

    def __init__(self, model: Any, *, evaluator: str = "auto", threads: int | None = None) -> None:
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
                self._session = _ort_session(proto, threads)
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
    """A copy of ``model`` where every float16 tensor a node produces passes through
    ``Max(t, t)``, which ONNX Runtime CPU computes in float16: the stored value is rounded."""
    import onnx
    from onnx import helper

    types = tensor_types(onnx.shape_inference.infer_shapes(model))
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = []
    for node in copy.graph.node:
        nodes.append(node)
        for i, name in enumerate(node.output):
            if name and types.get(name) == _FLOAT16:
                raw = f"{name}__unrounded"
                node.output[i] = raw
                nodes.append(helper.make_node("Max", [raw, raw], [name], name=f"{name}__round"))
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    del copy.graph.value_info[:]
    return copy


@functools.cache
def check_fp16_emulation() -> None:
    """Raise unless the emulation rounds: Cast(fp16) -> Relu -> Cast(fp32) on values that
    float16 cannot hold must come back rounded."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Cast", ["r"], ["y"], to=TensorProto.FLOAT),
        ],
        "check",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    x = np.array([1000.1, 2000.7, 3.14159, 1e5], np.float32)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).astype(np.float32)
    got = _ort_session(emulate_fp16(model), None).run(None, {"x": x})[0]
    if not np.array_equal(got, want):
        raise ConversionError(
            "this ONNX Runtime does not round float16 tensors in the emulation "
            f"(got {got.tolist()}, want {want.tolist()})",
            hint="check float16 numerics with evaluator='onnx.reference'",
        )


class _OrtMissingKernel(Exception):
    pass


def _ort_session(proto: Any, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
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


def expose(model: Any, names: Iterable[str] | None = None) -> tuple[Any, list[str]]:
    """A copy of ``model`` whose graph also outputs ``names`` (default: every float tensor
    produced by a node). Returns (model, the exposed names in graph order)."""
    import onnx

    proto = load(model)
    inferred = onnx.shape_inference.infer_shapes(proto)
    types = tensor_types(inferred)
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


def tensor_values(
    model: Any, samples: Sequence[Feeds], *, evaluator: str = "auto"
) -> tuple[list[dict[str, Any]], str]:
    """Every float tensor (inputs, intermediates, outputs) for each sample, and the evaluator."""
    exposed_model, _ = expose(load(model))
    runner = Runner(exposed_model, evaluator=evaluator)
    names = runner.output_names
    values = []
    for feeds in samples:
        result = dict(zip(names, runner.run(feeds), strict=True))
        result.update({k: np.asarray(v) for k, v in feeds.items()})
        values.append(result)
    return values, runner.evaluator


def activation_ranges(model: Any, samples: Sequence[Feeds]) -> dict[str, TensorRange]:
    """Magnitude statistics of every float tensor a node produces, over ``samples``."""
    if not samples:
        raise ConversionError("activation ranges need at least one sample input")
    values, _ = tensor_values(model, samples)
    ranges = {}
    for name in values[0]:
        arrays = [v[name] for v in values]
        if not all(np.issubdtype(a.dtype, np.floating) for a in arrays):
            continue
        ranges[name] = magnitude(arrays)
    return ranges


def magnitude(arrays: Sequence[np.ndarray]) -> TensorRange:
    """max |x|, the fraction of non-zero values below float16's smallest normal, finiteness."""
    finite = all(bool(np.isfinite(a).all()) for a in arrays)
    max_abs = max((float(np.nanmax(np.abs(a))) if a.size else 0.0) for a in arrays)
    nonzero = sum(int(np.count_nonzero(a)) for a in arrays)
    tiny = sum(int(np.count_nonzero((a != 0) & (np.abs(a) < FP16_MIN_NORMAL))) for a in arrays)
    return TensorRange(max_abs, tiny / nonzero if nonzero else 0.0, finite)


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
