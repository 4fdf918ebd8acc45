"""Which ops of a model make an output pixel depend on the whole image.

A large photo is edited in overlapping tiles only when that is faithful: each output pixel
must depend on nearby input pixels alone. A normalisation or a reduction over the spatial
axes breaks this: an instance norm (style nets, CycleGAN) or a channel gate's mean (the zoo
enhancer) computed per tile normalises each tile differently, and the blend shows patches
(a style net tiled at 256 px on a 512x384 photo: 19.8 dB against the whole-image run). The
converters record the answer in the contract (``spatial.tileable``) so the runtime never
tiles such a model.

The test is on the graph, so it covers any architecture: the ops that always reduce over
height and width, and the ops with an axis (reductions, normalisations, softmax, arg max,
cumulative sum, top-k) when the axis is a spatial one of a 4-D NCHW tensor, or when the rank
or the axes are not known (assumed spatial, to stay on the safe side), and any op outside the
standard ONNX domain (unknown to this test, so assumed global too). Subgraphs (``If``,
``Loop``) are not inspected.
"""

from __future__ import annotations

from typing import Any

from .graph_edit import constant_values, inferred_shapes

__all__ = ["whole_image_ops"]

#: Ops that always combine every position of the spatial axes.
SPATIAL_OPS = frozenset(
    {
        "InstanceNormalization",
        "GroupNormalization",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "GlobalLpPool",
    }
)

REDUCTIONS = frozenset(
    {
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceSumSquare",
    }
)

#: Ops that combine positions along one axis (attribute ``axis``) and its default.
ONE_AXIS_OPS = {
    "Softmax": -1,
    "LogSoftmax": -1,
    "Hardmax": -1,
    "LpNormalization": -1,
    "ArgMax": 0,
    "ArgMin": 0,
    "TopK": -1,
}

#: Ops that combine the positions from ``axis`` to the last one.
TRAILING_AXES_OPS = {"LayerNormalization": -1}

SPATIAL_AXES = frozenset({2, 3})  # of a 4-D NCHW tensor

AXIS_OPS = REDUCTIONS | set(ONE_AXIS_OPS) | set(TRAILING_AXES_OPS)
AXIS_OPS |= {"MeanVarianceNormalization", "CumSum"}


def whole_image_ops(model: Any) -> list[str]:
    """The op types (sorted, once each) in ``model``'s main graph whose output at one position
    depends on every position of an image's height or width; empty for a local model."""
    graph = model.graph
    standard = [n for n in graph.node if n.domain in ("", "ai.onnx")]
    found = {n.op_type for n in standard if n.op_type in SPATIAL_OPS}
    found |= {f"{n.domain}.{n.op_type}" for n in graph.node if n not in standard}  # unknown
    candidates = [n for n in standard if n.op_type in AXIS_OPS]
    if candidates:
        ranks = {name: len(shape) for name, shape in inferred_shapes(model).items()}
        constants = constant_values(graph)
        for node in candidates:
            rank = ranks.get(node.input[0])
            axes = _axes(node, constants, rank)
            if rank is None or axes is None or rank != 4 or axes & SPATIAL_AXES:
                found.add(node.op_type)  # an unknown rank or axis counts as spatial
    return sorted(found)


def _axes(node: Any, constants: dict[str, Any], rank: int | None) -> set[int] | None:
    """The (non-negative) axes ``node`` combines, or None when they cannot be known here."""
    attrs = {a.name: a for a in node.attribute}
    op = node.op_type
    if op in ONE_AXIS_OPS or op in TRAILING_AXES_OPS:
        default = ONE_AXIS_OPS.get(op, TRAILING_AXES_OPS.get(op, -1))
        axis = attrs["axis"].i if "axis" in attrs else default
        if rank is None:
            return None
        axis = axis + rank if axis < 0 else axis
        return set(range(axis, rank)) if op in TRAILING_AXES_OPS else {axis}
    if op == "MeanVarianceNormalization":
        raw = list(attrs["axes"].ints) if "axes" in attrs else [0, 2, 3]
    elif op == "CumSum":
        raw = _constant_ints(node, 1, constants)
    elif "axes" in attrs:  # reductions before opset 18
        raw = list(attrs["axes"].ints)
    elif len(node.input) > 1 and node.input[1]:  # opset 18: axes as an input
        raw = _constant_ints(node, 1, constants)
    else:  # no axes: all of them, unless told to do nothing
        noop = "noop_with_empty_axes" in attrs and attrs["noop_with_empty_axes"].i == 1
        return set() if noop else (None if rank is None else set(range(rank)))
    if raw is None or rank is None:
        return None
    return {a + rank if a < 0 else a for a in raw}


def _constant_ints(node: Any, index: int, constants: dict[str, Any]) -> list[int] | None:
    values = constants.get(node.input[index])
    return None if values is None else [int(v) for v in values.reshape(-1)]
