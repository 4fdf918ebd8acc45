"""The ONNX Runtime CPU rewrites: same function as numpy's PReLU, no PRelu left, applied only
where the slope is per channel (or scalar) after a 2-D conv; and through ``convert``."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from vetrina.converters.cpu_graph import tune_for_cpu

torch = pytest.importorskip("torch")


def _conv_prelu_model(slope: np.ndarray, channels: int, *, seed: int = 0) -> onnx.ModelProto:
    """x (N,3,H,W) -> Conv(3 -> C, 3x3) -> PRelu(slope) -> y."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.5, (channels, 3, 3, 3)).astype(np.float32)
    bias = rng.normal(0, 0.1, channels).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("PRelu", ["c", "slope"], ["y"], name="prelu"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", channels, "h", "w"])],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(bias, "b"),
            numpy_helper.from_array(slope.astype(np.float32), "slope"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """numpy: the conv through ONNX Runtime without PRelu, then PReLU by its definition."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    conv_only = onnx.ModelProto()
    conv_only.CopyFrom(model)
    del conv_only.graph.node[1:]
    conv_only.graph.output[0].name = "c"
    session = ort.InferenceSession(
        conv_only.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    c = session.run(None, {"x": x})[0]
    return np.where(c >= 0, c, c * inits["slope"])


@settings(max_examples=12, deadline=None)
@given(
    channels=st.integers(1, 12),
    low=st.floats(-2.0, 1.0),
    high=st.floats(-0.5, 3.0),
    scalar=st.booleans(),
    leading_one=st.booleans(),
)
def test_prelu_rewrite_matches_the_definition(
    tmp_path_factory, channels, low, high, scalar, leading_one
):
    rng = np.random.default_rng(channels)
    if scalar:
        slope = np.array([low], np.float32)
    else:
        values = rng.uniform(min(low, high), max(low, high), channels).astype(np.float32)
        slope = values.reshape((1, channels, 1, 1) if leading_one else (channels, 1, 1))
    model = _conv_prelu_model(slope, channels)
    path = tmp_path_factory.mktemp("g") / "m.onnx"
    onnx.save(model, str(path))
    x = rng.normal(0, 1, (2, 3, 9, 7)).astype(np.float32)
    expected = _reference(model, x)
    assert tune_for_cpu(path) == {"prelu_as_depthwise_conv": 1}
    rewritten = onnx.load(str(path))
    assert "PRelu" not in {n.op_type for n in rewritten.graph.node}
    assert "slope" not in {t.name for t in rewritten.graph.initializer}
    np.testing.assert_allclose(_run(path, x), expected, rtol=1e-5, atol=1e-5)


def test_one_depthwise_conv_when_every_slope_is_at_most_one_two_otherwise(tmp_path):
    for slope, convs in ((np.array([0.2, -0.1, 1.0]), 2), (np.array([0.2, 1.5, 0.0]), 3)):
        path = tmp_path / f"m{convs}.onnx"
        onnx.save(_conv_prelu_model(slope.reshape(3, 1, 1), 3), str(path))
        tune_for_cpu(path)
        ops = [n.op_type for n in onnx.load(str(path)).graph.node]
        assert ops.count("Conv") == convs and ops[-1] == "Add"


@pytest.mark.parametrize(
    "case",
    ["slope broadcast over width", "slope is a graph input", "prelu after a non-conv"],
)
def test_prelu_that_is_not_per_channel_after_a_conv_is_left_alone(tmp_path, case):
    channels = 4
    if case == "slope broadcast over width":
        model = _conv_prelu_model(np.full(channels, 0.1, np.float32), channels)
    else:
        model = _conv_prelu_model(np.full((channels, 1, 1), 0.1, np.float32), channels)
    if case == "slope is a graph input":
        slope = model.graph.initializer.pop()
        model.graph.input.append(
            helper.make_tensor_value_info(slope.name, TensorProto.FLOAT, [channels, 1, 1])
        )
    if case == "prelu after a non-conv":
        model.graph.node.insert(1, helper.make_node("Sigmoid", ["c"], ["s"], name="sig"))
        model.graph.node[2].input[0] = "s"
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    before = path.read_bytes()
    assert tune_for_cpu(path) == {}
    assert path.read_bytes() == before


def test_convert_tunes_fp32_for_cpu_by_default_and_keeps_prelu_for_tensorrt(tmp_path):
    from vetrina.converters.convert import convert
    from vetrina.models.architectures import get_architecture
    from vetrina.models.checkpoint import save_checkpoint

    torch.manual_seed(3)
    config = {"channels": 4, "convs": 1}
    module = get_architecture("compact-upscaler").build(config)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    ckpt = save_checkpoint(
        tmp_path / "up.pt",
        architecture="compact-upscaler",
        config=config,
        state_dict=module.state_dict(),
        metadata={},
    )
    cpu = convert(ckpt, tmp_path / "cpu.onnx", sizes=[(16, 24)])
    assert cpu.report.passed
    assert cpu.contract.provenance["target"] == "cpu"
    assert cpu.contract.provenance["graph_rewrites"] == {"prelu_as_depthwise_conv": 2}
    assert "PRelu" not in {n.op_type for n in onnx.load(str(cpu.output)).graph.node}
    trt = convert(ckpt, tmp_path / "trt.onnx", sizes=[(16, 24)], target="tensorrt")
    assert trt.contract.provenance["graph_rewrites"] == {}
    assert {n.op_type for n in onnx.load(str(trt.output)).graph.node} >= {"PRelu"}
