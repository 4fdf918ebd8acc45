"""Magnitude statistics of every float tensor of a model, computed inside the graph.

Range checks (fp16 islands, ``vetrina doctor``) need, per tensor, its largest finite magnitude,
how many values are inf or NaN, and how many are non-zero but below float16's smallest normal.
Exposing the tensors as outputs would hold all of them until the run ends (Real-ESRGAN's
RRDBNet x4 has 1,000+; over 23 GB at two 128 px inputs). Instead, reductions are added to the
graph right after each tensor's producer: one run per sample returns a few scalars per tensor,
and ONNX Runtime frees each tensor as usual once its consumers, the reductions among them, ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vetrina.errors import ConversionError

from .activations import _FLOATS, FP16_MIN_NORMAL, Feeds, Runner, load, tensor_types

_FIELDS = ("max_finite", "nonfinite", "infinite", "nonzero", "tiny")


@dataclass(frozen=True)
class TensorStats:
    """One float tensor over all samples."""

    #: Largest magnitude among the finite values (0 when there are none).
    max_finite: float
    #: Values that are inf or NaN, and of those the infinities.
    nonfinite: int
    infinite: int
    #: Values that are not zero (NaN counts), and of those the finite ones below float16's
    #: smallest normal (they lose precision or flush to zero when stored as float16).
    nonzero: int
    tiny: int
    #: numpy name of the tensor's element type ("float32", "float16", ...).
    dtype: str

    @property
    def max_abs(self) -> float:
        """Largest magnitude, inf included, NaN ignored (as ``np.nanmax``)."""
        return np.inf if self.infinite else self.max_finite

    @property
    def finite(self) -> bool:
        return self.nonfinite == 0

    @property
    def tiny_fraction(self) -> float:
        return self.tiny / self.nonzero if self.nonzero else 0.0

    def merge(self, other: TensorStats) -> TensorStats:
        return TensorStats(
            max(self.max_finite, other.max_finite),
            self.nonfinite + other.nonfinite,
            self.infinite + other.infinite,
            self.nonzero + other.nonzero,
            self.tiny + other.tiny,
            self.dtype,
        )


def tensor_statistics(
    model: Any,
    samples: Sequence[Feeds],
    *,
    names: Iterable[str] | None = None,
    evaluator: str = "auto",
    threads: int | None = None,
    optimize: bool = True,
) -> dict[str, TensorStats]:
    """{tensor: statistics over ``samples``} for ``names`` (default: the float graph inputs and
    every float tensor a node produces), one run per sample. ``evaluator``, ``threads``,
    ``optimize``: as for :class:`~vetrina.converters.activations.Runner` (the float16
    emulation rounds each float16 tensor before it is measured, as a GPU stores it)."""
    import onnx

    proto = load(model)
    types = tensor_types(onnx.shape_inference.infer_shapes(proto))
    if names is None:
        names = [i.name for i in proto.graph.input]
        names += [out for node in proto.graph.node for out in node.output]
    wanted = [n for n in dict.fromkeys(names) if n and types.get(n) in _FLOATS]
    measured, outputs = statistics_model(proto, wanted, types)
    runner = Runner(measured, evaluator=evaluator, threads=threads, optimize=optimize)
    result: dict[str, TensorStats] = {}
    for feeds in samples:
        values = dict(zip(outputs, runner.run(feeds, outputs), strict=True))
        for name in wanted:
            fields = [values[_stat_name(name, f)] for f in _FIELDS]
            stats = TensorStats(
                float(fields[0]),
                *(int(v) for v in fields[1:]),
                dtype=np.dtype(onnx.helper.tensor_dtype_to_np_dtype(types[name])).name,
            )
            result[name] = result[name].merge(stats) if name in result else stats
    return result


def activation_ranges(model: Any, samples: Sequence[Feeds]) -> dict[str, TensorStats]:
    """Statistics of every float tensor (graph inputs and what nodes produce) over
    ``samples``, on ONNX Runtime CPU."""
    if not samples:
        raise ConversionError("activation ranges need at least one sample input")
    return tensor_statistics(model, samples)


def statistics_model(model: Any, names: Sequence[str], types: dict[str, int]) -> tuple[Any, list]:
    """A copy of ``model`` with a scalar output per statistic of each of ``names`` (float
    tensors). Returns (model, the added output names).

    ONNX Runtime schedules side branches late: with the reductions merely placed after the
    producer, it ran the whole main chain first and held every measured tensor to the end.
    So the tensor's consumers read it through ``Reshape(t, Shape(t) + 0 * statistics)``, an
    exact no-op that cannot run before the statistics: each tensor is measured, then freed.
    Counts are summed in int32 (4 bytes a value, not 8): up to 2**31 - 1 values a tensor.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    wanted = set(names)
    zero, zero_int, normal = "vt_stats__zero", "vt_stats__zero_int", "vt_stats__fp16_min_normal"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(0.0, np.float32), zero),
            numpy_helper.from_array(np.array(0, np.int64), zero_int),
            numpy_helper.from_array(np.array(FP16_MIN_NORMAL, np.float32), normal),
        ]
    )
    outputs: list[str] = []
    measured: dict[str, str] = {}  # tensor -> the name its consumers now read

    def reductions(name: str) -> list[Any]:
        p = f"{name}__stats_"
        x = name
        nodes = []

        def op(kind: str, inputs: list[str], out: str, **attrs: Any) -> str:
            nodes.append(helper.make_node(kind, inputs, [p + out], name=p + out, **attrs))
            return p + out

        def count(flag: str, field: str) -> str:
            as_int = op("Cast", [flag], field + "_i", to=TensorProto.INT32)
            return op("ReduceSum", [as_int], field, keepdims=0)

        if types[name] != TensorProto.FLOAT:  # widening to float32 is exact
            x = op("Cast", [name], "f32", to=TensorProto.FLOAT)
        magnitude = op("Abs", [x], "abs")
        infinite = op("IsInf", [x], "isinf")
        nonfinite = op("Or", [infinite, op("IsNaN", [x], "isnan")], "bad")
        finite_abs = op("Where", [nonfinite, zero, magnitude], "finite_abs")
        largest = op("ReduceMax", [finite_abs], "largest", keepdims=0)  # -inf when empty
        stats = [op("Max", [largest, zero], "max_finite")]
        stats.append(count(nonfinite, "nonfinite"))
        stats.append(count(infinite, "infinite"))
        nonzero = op("Not", [op("Equal", [x, zero], "is_zero")], "is_nonzero")
        stats.append(count(nonzero, "nonzero"))
        below = op("Less", [finite_abs, normal], "below_normal")
        small = op("And", [below, op("Greater", [finite_abs, zero], "positive")], "small")
        stats.append(count(small, "tiny"))
        outputs.extend(stats)
        # 0 computed from every statistic (max_finite is finite: 0 * it is 0), added to the shape
        total = op("Cast", [op("Mul", [stats[0], zero], "gate_f")], "gate_0", to=TensorProto.INT64)
        for i, stat in enumerate(stats[1:], 1):
            wide = op("Cast", [stat], f"gate_{i}_i64", to=TensorProto.INT64)
            total = op("Add", [total, wide], f"gate_{i}")
        gate = op("Mul", [total, zero_int], "gate")
        shape = op("Add", [op("Shape", [name], "shape"), gate], "gated_shape")
        measured[name] = op("Reshape", [name, shape], "measured")
        return nodes

    nodes = [n for info in graph.input if info.name in wanted for n in reductions(info.name)]
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = measured.get(name, name)
        nodes.append(node)
        for out in node.output:
            if out in wanted:
                nodes.extend(reductions(out))
    del graph.node[:]
    graph.node.extend(nodes)
    for out in outputs:
        graph.output.append(helper.make_tensor_value_info(out, _dtype_of(out), []))
    return copy, outputs


def _stat_name(name: str, field: str) -> str:
    return f"{name}__stats_{field}"


def _dtype_of(output: str) -> int:
    from onnx import TensorProto

    return TensorProto.FLOAT if output.endswith("max_finite") else TensorProto.INT32
