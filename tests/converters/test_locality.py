"""whole_image_ops: which ops make a model depend on the whole image (so it cannot be tiled),
on hand-made graphs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from vetrina.converters.locality import whole_image_ops  # noqa: E402


def _model(nodes, *, rank: int | None = 4, initializers=(), opset: int = 17):
    """x (rank ``rank``, or unknown) -> nodes -> y."""
    shape = None if rank is None else ["n", 3, "h", "w"][:rank] + [4] * (rank - 4)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _axes(values):
    return numpy_helper.from_array(np.array(values, np.int64), "axes")


def test_a_conv_net_is_local():
    weight = numpy_helper.from_array(np.ones((3, 3, 3, 3), np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])
    relu = helper.make_node("Relu", ["c"], ["y"])
    assert whole_image_ops(_model([conv, relu], initializers=[weight])) == []


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pooling_is_whole_image(op):
    assert whole_image_ops(_model([helper.make_node(op, ["x"], ["y"])])) == [op]


def test_instance_norm_is_whole_image():
    scale = numpy_helper.from_array(np.ones(3, np.float32), "s")
    bias = numpy_helper.from_array(np.zeros(3, np.float32), "b")
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"])
    model = _model([node], initializers=[scale, bias])
    assert whole_image_ops(model) == ["InstanceNormalization"]


@pytest.mark.parametrize(
    ("axes", "whole"),
    [([1], False), ([0, 1], False), ([2, 3], True), ([3], True), ([-1], True), ([-3], False)],
)
def test_a_reduction_counts_only_over_height_or_width(axes, whole):
    old = _model([helper.make_node("ReduceMean", ["x"], ["y"], axes=axes)])  # axes attribute
    new = _model(  # opset 18: axes as a constant input
        [helper.make_node("ReduceMean", ["x", "axes"], ["y"])],
        initializers=[_axes(axes)],
        opset=18,
    )
    for model in (old, new):
        assert whole_image_ops(model) == (["ReduceMean"] if whole else [])


def test_a_reduction_over_all_axes_or_unknown_ones_is_whole_image():
    every = _model([helper.make_node("ReduceMax", ["x"], ["y"], keepdims=1)])
    assert whole_image_ops(every) == ["ReduceMax"]
    runtime_axes = _model(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ReduceSum", ["x", "s"], ["y"])],
        opset=18,
    )
    assert whole_image_ops(runtime_axes) == ["ReduceSum"]
    nothing = _model([helper.make_node("ReduceSum", ["x"], ["y"], noop_with_empty_axes=1)])
    assert whole_image_ops(nothing) == []


def test_an_unknown_rank_or_a_flattened_tensor_counts_as_whole_image():
    assert whole_image_ops(_model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], rank=None))
    flat = _model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], rank=2)
    assert whole_image_ops(flat) == ["Softmax"]


@pytest.mark.parametrize(
    ("node", "whole"),
    [
        (helper.make_node("Softmax", ["x"], ["y"], axis=1), False),  # over channels
        (helper.make_node("Softmax", ["x"], ["y"]), True),  # default axis -1: width
        (helper.make_node("ArgMax", ["x"], ["y"], axis=1), False),
        (helper.make_node("ArgMax", ["x"], ["y"]), False),  # default axis 0: the batch
        (helper.make_node("LpNormalization", ["x"], ["y"], axis=1), False),
        (helper.make_node("LpNormalization", ["x"], ["y"]), True),
        (helper.make_node("MeanVarianceNormalization", ["x"], ["y"]), True),  # axes 0, 2, 3
        (helper.make_node("MeanVarianceNormalization", ["x"], ["y"], axes=[1]), False),
    ],
)
def test_ops_along_one_axis(node, whole):
    assert whole_image_ops(_model([node])) == ([node.op_type] if whole else [])


def test_layer_norm_from_the_channel_axis_reaches_height_and_width():
    scale = numpy_helper.from_array(np.ones(4, np.float32), "s")
    last = helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=-1)
    assert whole_image_ops(_model([last], initializers=[scale])) == ["LayerNormalization"]


def test_an_op_of_another_domain_is_assumed_whole_image():
    custom = helper.make_node("Blur", ["x"], ["y"], domain="com.example")
    model = _model([custom])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    assert whole_image_ops(model) == ["com.example.Blur"]
