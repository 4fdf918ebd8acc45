"""The int8 ``cpu`` graph rewrites: each gives the same numbers (bit for bit where the
arithmetic is integer) and applies only where its rule says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from test_quantize import (
    _optimized_graph,
    _quantize_image_graph,
    _save_image_graph,
    _weight,
)

from vetrina.converters import quantize
from vetrina.converters.int8_graph import (
    pad_conv_input_channels,
    pad_in_uint8,
    shape_of_uint8,
    spatial_mean_as_pooling,
)


def _run(model: onnx.ModelProto | bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def test_convs_with_few_input_channels_get_zero_channels_up_to_a_multiple_of_4():
    rng = np.random.default_rng(3)
    layers = [  # (name, input, out, in, kernel, stride, group): which convs get padded
        ("rgb_3x3", "image", 8, 3, 3, 1, 1),  # yes: 3 -> 4
        ("rgb_5x5", "image", 4, 3, 5, 2, 1),  # yes, sharing the first one's Pad
        ("depthwise", "image", 3, 1, 3, 1, 3),  # no: grouped
        ("seven", "mix", 8, 7, 3, 1, 1),  # yes: 7 -> 8
        ("four", "rgb_3x3.out", 8, 8, 1, 1, 1),  # no: 8
        ("rgb_9x9", "image", 8, 3, 9, 1, 1),  # no: wider than 5x5
    ]
    nodes = [helper.make_node("Concat", ["image", "depthwise.out", "mask"], ["mix"], axis=1)]
    inits = []
    for name, src, cout, cin, k, stride, group in layers:
        w = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"{name}.w"))
        pad = [k // 2] * 4
        node = helper.make_node(
            "Conv",
            [src, f"{name}.w"],
            [f"{name}.out"],
            name=name,
            pads=pad,
            strides=[stride] * 2,
            group=group,
        )
        nodes.insert(0 if name == "depthwise" else len(nodes), node)
    outputs = {
        "rgb_5x5.out": [1, 4, 8, 12],
        "seven.out": [1, 8, 16, 24],
        "four.out": [1, 8, 16, 24],
        "rgb_9x9.out": [1, 8, 16, 24],
    }
    graph = helper.make_graph(
        nodes,
        "narrow",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 24]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 16, 24]),
        ],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, d) for o, d in outputs.items()],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    before = model.SerializeToString()
    assert pad_conv_input_channels(model) == 3
    onnx.checker.check_model(model, full_check=True)
    pads = [n for n in model.graph.node if n.op_type == "Pad"]
    assert sorted(n.input[0] for n in pads) == ["image", "mix"]  # one Pad per tensor
    convs = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    channels = {name: weights[c.input[1]].shape[1] for name, c in convs.items()}
    assert channels == {
        "rgb_3x3": 4,
        "rgb_5x5": 4,
        "depthwise": 1,
        "seven": 8,
        "four": 8,
        "rgb_9x9": 3,
    }
    assert not weights[convs["seven"].input[1]][:, 7:].any()
    feeds = {
        "image": rng.random((1, 3, 16, 24), dtype=np.float32),
        "mask": rng.random((1, 1, 16, 24), dtype=np.float32),
    }
    runs = [
        ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, feeds)
        for m in (before, model.SerializeToString())
    ]
    for want, got in zip(*runs, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _head_graph(path: Path) -> None:
    """conv 3 -> 16, a 4-channel 3x3 head (the inpainter's), a conv 4 -> 12 after it."""
    rng = np.random.default_rng(6)
    inits = [
        _weight(rng, "w1", 16, 3, 3, 3),
        _weight(rng, "w2", 4, 16, 3, 3),
        numpy_helper.from_array(rng.uniform(-0.2, 0.2, 4).astype(np.float32), "b2"),
        _weight(rng, "w3", 12, 4, 3, 3),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["a"], name="c1", pads=[1] * 4),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w2", "b2"], ["head"], name="head", pads=[1] * 4),
        helper.make_node("Relu", ["head"], ["h"], name="relu_head"),
        helper.make_node("Conv", ["h", "w3"], ["out"], name="twelve", pads=[1] * 4),
    ]
    _save_image_graph(path, nodes, inits, "out", ["n", 12, "h", "w"])


def test_quantized_convs_get_zero_filters_to_a_multiple_of_16_and_the_same_output(
    tmp_path, monkeypatch
):
    from vetrina.converters.graph_edit import live_nodes

    _head_graph(tmp_path / "head.onnx")
    padded = _quantize_image_graph(tmp_path / "head.onnx", tmp_path / "padded.onnx", "cpu")
    assert padded.rewrites["conv_output_channels_to_16"] == 2
    model = onnx.load(str(padded.path))
    onnx.checker.check_model(model, full_check=True)
    assert live_nodes(model.graph) == list(model.graph.node)  # nothing left dangling
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producers = {out: n for n in model.graph.node for out in n.output}
    rows = {}
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        weight = consts[producers[conv.input[1]].input[0]]
        rows[conv.name] = weight.shape[0]
        if conv.name == "head":  # 4 real filters, 12 zero ones, a zero int32 bias for them
            assert weight.dtype == np.int8 and not weight[4:].any() and weight[:4].any()
            assert not consts[producers[conv.input[2]].input[0]][4:].any()
    assert rows == {"c1": 16, "head": 16, "twelve": 16}
    slices = [n for n in model.graph.node if n.op_type == "Slice"]
    assert len(slices) == 2
    assert all(producers[n.input[0]].op_type == "QuantizeLinear" for n in slices)  # on uint8
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(padded.path), options, providers=["CPUExecutionProvider"])
    kinds = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert kinds.count("QLinearConv") == 3 and "Conv" not in kinds, kinds  # still fused

    monkeypatch.setattr(quantize, "pad_conv_output_channels", lambda model: 0)
    plain = _quantize_image_graph(tmp_path / "head.onnx", tmp_path / "plain.onnx", "cpu")
    assert "conv_output_channels_to_16" not in (plain.rewrites or {})
    feeds = {"image": np.random.default_rng(7).random((2, 3, 24, 40), dtype=np.float32)}
    got = _run(model, feeds)[0]
    want = _run(onnx.load(str(plain.path)), feeds)[0]
    np.testing.assert_array_equal(got, want)


def _qdq_pad_model(mode: str, scales: tuple[float, float], value: float | None) -> onnx.ModelProto:
    """uint8 x -> DequantizeLinear -> Pad(mode) -> QuantizeLinear -> DequantizeLinear -> y."""
    inits = [
        numpy_helper.from_array(np.array(scales[0], np.float32), "s_in"),
        numpy_helper.from_array(np.array(scales[1], np.float32), "s_out"),
        numpy_helper.from_array(np.array(37, np.uint8), "z_in"),
        numpy_helper.from_array(np.array(37, np.uint8), "z_out"),
        numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "pads"),
    ]
    pad_inputs = ["x_dq", "pads"]
    if value is not None:
        inits.append(numpy_helper.from_array(np.array(value, np.float32), "value"))
        pad_inputs.append("value")
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "s_in", "z_in"], ["x_dq"], name="dq"),
        helper.make_node("Pad", pad_inputs, ["p"], name="pad", mode=mode),
        helper.make_node("QuantizeLinear", ["p", "s_out", "z_out"], ["p_q"], name="q"),
        helper.make_node("DequantizeLinear", ["p_q", "s_out", "z_out"], ["y"], name="dq_out"),
    ]
    graph = helper.make_graph(
        nodes,
        "pad",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [2, 3, 5, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 8, 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=20, deadline=None)
@given(
    mode=st.sampled_from(["reflect", "edge", "constant"]),
    value=st.sampled_from([None, 0.0]),
    seed=st.integers(0, 2**16),
)
def test_pad_between_equal_quantizations_runs_on_uint8_with_the_same_result(mode, value, seed):
    model = _qdq_pad_model(mode, (0.05, 0.05), value if mode == "constant" else None)
    before = model.SerializeToString()
    assert pad_in_uint8(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Pad", "DequantizeLinear"]
    assert model.graph.node[0].input[0] == "x"  # the uint8 tensor itself
    x = np.random.default_rng(seed).integers(0, 256, (2, 3, 5, 7), dtype=np.uint8)
    np.testing.assert_array_equal(_run(model, {"x": x})[0], _run(before, {"x": x})[0])


@pytest.mark.parametrize("case", ["other scale", "nonzero constant", "wrap"])
def test_pad_that_would_change_values_in_uint8_is_left_alone(case):
    scales = (0.05, 0.06) if case == "other scale" else (0.05, 0.05)
    mode = "wrap" if case == "wrap" else "constant"
    model = _qdq_pad_model(mode, scales, 0.5 if case == "nonzero constant" else None)
    if case == "wrap":
        model.opset_import[0].version = 19  # wrap mode came with opset 19
    before = model.SerializeToString()
    assert pad_in_uint8(model) == 0
    assert model.SerializeToString() == before


def _means_model(opset: int) -> onnx.ModelProto:
    """Means of a (2, 5, 6, 7) input: over H and W without and with the kept axes (given
    as -1, -2), over the channels, and over H and W of a 3-D view (which has no pooling form)."""
    axes = {"hw": [2, 3], "hw_kept": [-1, -2], "c": [1], "flat": [1, 2]}
    keep = {"hw": 0, "hw_kept": 1, "c": 0, "flat": 0}
    nodes, inits = [], [numpy_helper.from_array(np.array([2, 5, 42]), "flat_shape")]
    nodes.append(helper.make_node("Reshape", ["x", "flat_shape"], ["x3"]))
    for name, ax in axes.items():
        source = "x3" if name == "flat" else "x"
        if opset >= 18:
            inits.append(numpy_helper.from_array(np.array(ax), f"{name}_axes"))
            node = helper.make_node(
                "ReduceMean", [source, f"{name}_axes"], [name], name=name, keepdims=keep[name]
            )
        else:
            node = helper.make_node(
                "ReduceMean", [source], [name], name=name, axes=ax, keepdims=keep[name]
            )
        nodes.append(node)
    graph = helper.make_graph(
        nodes,
        "means",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, "h", "w"])],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
            for name, shape in {
                "hw": [2, 5],
                "hw_kept": [2, 5, 1, 1],
                "c": [2, "h", "w"],
                "flat": [2],
            }.items()
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [17, 18])
def test_spatial_means_become_global_pooling_with_the_same_values(opset):
    model = _means_model(opset)
    before = model.SerializeToString()
    assert spatial_mean_as_pooling(model) == 2
    onnx.checker.check_model(model, full_check=True)
    kinds = {n.name: n.op_type for n in model.graph.node}
    assert kinds["hw"] == kinds["hw_kept"] == "GlobalAveragePool"  # names kept: islands
    assert kinds["c"] == kinds["flat"] == "ReduceMean"
    x = np.random.default_rng(opset).standard_normal((2, 5, 6, 7)).astype(np.float32)
    for got, want in zip(_run(model, {"x": x}), _run(before, {"x": x}), strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_shape_of_a_dequantized_tensor_reads_the_uint8_one():
    nodes = [
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["only_measured"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["also_used"]),
        helper.make_node("Shape", ["only_measured"], ["shape_a"]),
        helper.make_node("Shape", ["also_used"], ["shape_b"], start=2),
        helper.make_node("Relu", ["also_used"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "shapes",
        [helper.make_tensor_value_info("q", TensorProto.UINT8, [1, 3, 4, 5])],
        [
            helper.make_tensor_value_info("shape_a", TensorProto.INT64, [4]),
            helper.make_tensor_value_info("shape_b", TensorProto.INT64, [2]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 5]),
        ],
        [
            numpy_helper.from_array(np.array(0.1, np.float32), "s"),
            numpy_helper.from_array(np.array(7, np.uint8), "z"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    before = model.SerializeToString()
    assert shape_of_uint8(model) == 2
    onnx.checker.check_model(model, full_check=True)
    assert [n.input[0] for n in model.graph.node if n.op_type == "Shape"] == ["q", "q"]
    # the dequantize read only for its shape is gone; the one the Relu reads stays
    assert [n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"] == [
        "also_used"
    ]
    q = np.random.default_rng(5).integers(0, 256, (1, 3, 4, 5), dtype=np.uint8)
    for got, want in zip(_run(model, {"q": q}), _run(before, {"q": q}), strict=True):
        np.testing.assert_array_equal(got, want)


def _gated_graph(path: Path) -> None:
    """conv -> relu -> conv, gated by a sigmoid of its spatial mean through a linear layer,
    as the enhancer's blocks are."""
    rng = np.random.default_rng(6)
    inits = [
        _weight(rng, "a.w", 16, 3, 3, 3),
        _weight(rng, "b.w", 16, 16, 3, 3),
        numpy_helper.from_array((rng.standard_normal((16, 16)) / 4).astype(np.float32), "g.w"),
        numpy_helper.from_array(np.array([2, 3]), "hw"),
        numpy_helper.from_array(np.array([2, 3]), "spatial"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "a.w"], ["a"], name="a", pads=[1] * 4),
        helper.make_node("Relu", ["a"], ["a_relu"]),
        helper.make_node("Conv", ["a_relu", "b.w"], ["b"], name="b", pads=[1] * 4),
        helper.make_node("ReduceMean", ["b", "hw"], ["pooled"], name="mean", keepdims=0),
        helper.make_node("Gemm", ["pooled", "g.w"], ["logits"], name="gate"),
        helper.make_node("Sigmoid", ["logits"], ["gate_01"]),
        helper.make_node("Unsqueeze", ["gate_01", "spatial"], ["gate_4d"]),
        helper.make_node("Mul", ["b", "gate_4d"], ["gated"], name="gated"),
    ]
    _save_image_graph(path, nodes, inits, "gated", ["n", 16, "h", "w"], opset=18)


def test_cpu_flavour_pools_the_gate_mean_in_uint8(tmp_path):
    _gated_graph(tmp_path / "gated.onnx")
    result = _quantize_image_graph(tmp_path / "gated.onnx", tmp_path / "int8.onnx", "cpu")
    assert result.rewrites["spatial_mean_as_pooling"] == 1
    optimized = _optimized_graph(onnx.load(str(result.path)), tmp_path)
    kinds = [n.op_type for n in optimized.node]
    # the mean reads the quantized conv output: no ReduceMean, no float copy of the tensor
    assert "QLinearGlobalAveragePool" in kinds and "ReduceMean" not in kinds
    assert kinds.count("DequantizeLinear") == 1  # the graph's output alone

    x = np.random.default_rng(7).random((1, 3, 24, 32), dtype=np.float32)
    float_out = _run(onnx.load(str(tmp_path / "gated.onnx")), {"image": x})[0]
    int8_out = _run(onnx.load(str(result.path)), {"image": x})[0]
    assert np.abs(int8_out - float_out).max() < 0.05 * np.abs(float_out).max()
