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


def _random_checkpoint(path, architecture: str, config: dict, *, seed: int, jitter: float = 0.0):
    """A vetrina checkpoint of ``architecture`` with seeded random weights (moved by
    ``jitter`` x N(0, 1) so that no parameter keeps its default, e.g. PReLU's 0.25)."""
    from vetrina.models.architectures import get_architecture
    from vetrina.models.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    module = get_architecture(architecture).build(config)
    if jitter:
        with torch.no_grad():
            for p in module.parameters():
                p.add_(torch.randn_like(p) * jitter)
    return save_checkpoint(
        path,
        architecture=architecture,
        config=config,
        state_dict=module.state_dict(),
        metadata={},
    )


def test_convert_tunes_fp32_for_cpu_by_default_and_keeps_prelu_for_tensorrt(tmp_path):
    from vetrina.converters.convert import convert

    ckpt = _random_checkpoint(
        tmp_path / "up.pt", "compact-upscaler", {"channels": 4, "convs": 1}, seed=3, jitter=0.2
    )
    cpu = convert(ckpt, tmp_path / "cpu.onnx", sizes=[(16, 24)])
    assert cpu.report.passed
    assert cpu.contract.provenance["target"] == "cpu"
    assert cpu.contract.provenance["graph_rewrites"] == {"prelu_as_depthwise_conv": 2}
    assert "PRelu" not in {n.op_type for n in onnx.load(str(cpu.output)).graph.node}
    trt = convert(ckpt, tmp_path / "trt.onnx", sizes=[(16, 24)], target="tensorrt")
    assert trt.contract.provenance["graph_rewrites"] == {}
    assert {n.op_type for n in onnx.load(str(trt.output)).graph.node} >= {"PRelu"}


# --- wide-kernel convs with few output channels, split in two ---------------------------------


def _conv_model(
    weight: np.ndarray,
    bias: np.ndarray | None,
    pads: list[int],
    **attrs: object,
) -> onnx.ModelProto:
    """x (N,Ci,H,W) -> Conv(weight, bias, pads, attrs) -> y."""
    inputs = ["x", "w"] + (["b"] if bias is not None else [])
    initializers = [numpy_helper.from_array(weight, "w")]
    if bias is not None:
        initializers.append(numpy_helper.from_array(bias, "b"))
    graph = helper.make_graph(
        [helper.make_node("Conv", inputs, ["y"], name="conv", pads=pads, **attrs)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", weight.shape[1], "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", weight.shape[0], "p", "q"])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _torch_conv(x, weight, bias, pads):
    """PyTorch's conv2d with ONNX pads [top, left, bottom, right] (zero padding)."""
    top, left, bottom, right = pads
    padded = torch.nn.functional.pad(torch.from_numpy(x), (left, right, top, bottom))
    b = None if bias is None else torch.from_numpy(bias)
    return torch.nn.functional.conv2d(padded, torch.from_numpy(weight), b).numpy()


@settings(max_examples=25, deadline=None)
@given(
    out_channels=st.integers(1, 3),
    in_channels=st.integers(1, 6),
    kh=st.integers(5, 9),
    kw=st.integers(5, 9),
    pads=st.lists(st.integers(0, 4), min_size=4, max_size=4),
    with_bias=st.booleans(),
    extra_rows=st.integers(0, 12),
    extra_cols=st.integers(0, 12),
    seed=st.integers(0, 2**16),
)
def test_narrow_conv_split_matches_pytorch(
    tmp_path_factory,
    out_channels,
    in_channels,
    kh,
    kw,
    pads,
    with_bias,
    extra_rows,
    extra_cols,
    seed,
):
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 1, (out_channels, in_channels, kh, kw)).astype(np.float32)
    bias = rng.normal(0, 1, out_channels).astype(np.float32) if with_bias else None
    height = max(1, kh - pads[0] - pads[2]) + extra_rows  # at least one output row
    width = max(1, kw - pads[1] - pads[3]) + extra_cols
    x = rng.normal(0, 1, (2, in_channels, height, width)).astype(np.float32)
    path = tmp_path_factory.mktemp("g") / "m.onnx"
    onnx.save(_conv_model(weight, bias, pads), str(path))
    assert tune_for_cpu(path) == {"narrow_conv_split": 1}
    nodes = onnx.load(str(path)).graph.node
    assert [n.op_type for n in nodes] == ["Conv", "Conv", "Conv"]
    expected = _torch_conv(x, weight, bias, pads)
    got = _run(path, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.sqrt(weight[0].size))


def test_narrow_conv_split_takes_the_cheaper_orientation(tmp_path):
    """A 9-row x 5-column kernel to 3 channels: 5 column sums (15 channels, padded to 16)
    cost less than 9 row sums (27, padded to 32), so the first conv is 9x1; a depthwise
    1x5 conv shifts each sum to its column and a 1x1 conv adds them, all in whole blocks."""
    weight = np.ones((3, 4, 9, 5), np.float32)
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(weight, None, [4, 2, 4, 2]), str(path))
    tune_for_cpu(path)
    model = onnx.load(str(path))
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    first, shift, add = model.graph.node
    assert shapes[first.input[1]] == [16, 4, 9, 1]  # 15 sums and one zero filter
    assert shapes[shift.input[1]] == [16, 1, 1, 5]
    assert {a.name: helper.get_attribute_value(a) for a in shift.attribute}["group"] == 16
    assert shapes[add.input[1]] == [3, 16, 1, 1]
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert not arrays[first.input[1]][15].any() and not arrays[add.input[1]][:, 15].any()
    np.testing.assert_array_equal(arrays[add.input[1]].sum(axis=1)[:, 0, 0], [5, 5, 5])


@pytest.mark.parametrize(
    "case",
    ["3x3 kernel", "8 outputs", "strided", "dilated", "grouped", "auto_pad", "weight is an input"],
)
def test_conv_that_does_not_gain_from_a_split_is_left_alone(tmp_path, case):
    out_channels, in_channels, kernel, attrs = 3, 4, 9, {}
    if case == "3x3 kernel":
        kernel = 3
    if case == "8 outputs":
        out_channels = 8
    if case == "strided":
        attrs["strides"] = [2, 2]
    if case == "dilated":
        attrs["dilations"] = [2, 1]
    if case == "grouped":
        in_channels, attrs["group"] = 2, 2
        out_channels = 2
    weight = np.ones((out_channels, in_channels, kernel, kernel), np.float32)
    model = _conv_model(weight, None, [0, 0, 0, 0], **attrs)
    if case == "auto_pad":
        model = _conv_model(weight, None, [0, 0, 0, 0])
        del model.graph.node[0].attribute[:]
        model.graph.node[0].attribute.append(helper.make_attribute("auto_pad", "SAME_UPPER"))
    if case == "weight is an input":
        w = model.graph.initializer.pop()
        model.graph.input.append(
            helper.make_tensor_value_info(w.name, TensorProto.FLOAT, list(w.dims))
        )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    before = path.read_bytes()
    assert tune_for_cpu(path) == {}
    assert path.read_bytes() == before


def test_convert_splits_the_style_nets_last_conv_for_cpu_only(tmp_path):
    """A fast-neural-style net ends in a 9x9 conv to RGB: split for the CPU target, verified
    against PyTorch like any export; the TensorRT target keeps it whole."""
    from vetrina.converters.convert import convert

    ckpt = _random_checkpoint(
        tmp_path / "style.pt", "transformer-net", {"channels": 8, "blocks": 1}, seed=5
    )
    cpu = convert(ckpt, tmp_path / "cpu.onnx", sizes=[(32, 48)])
    assert cpu.report.passed
    assert cpu.contract.provenance["graph_rewrites"] == {"narrow_conv_split": 1}
    trt = convert(ckpt, tmp_path / "trt.onnx", sizes=[(32, 48)], target="tensorrt")
    assert trt.contract.provenance["graph_rewrites"] == {}
    kernels = {
        tuple(t.dims[2:]) for t in onnx.load(str(trt.output)).graph.initializer if len(t.dims) == 4
    }
    assert (9, 9) in kernels


def _resize_model(
    source: tuple[int, int], target: tuple[int, int], *, mode: str = "linear", spatial=None
) -> onnx.ModelProto:
    """x (N, 2, h, w) -> Relu -> Resize to ``target`` with sizes = Shape(x)[0:2] ++ target
    (the dynamo exporter's ``interpolate(size=...)``) -> y. ``spatial``: x's declared h, w
    (default ``source``; names make them dynamic)."""
    h, w = spatial or source
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Shape", ["r"], ["lead"], name="shape", start=0, end=2),
            helper.make_node("Concat", ["lead", "hw"], ["sizes"], name="concat", axis=0),
            helper.make_node("Resize", ["r", "", "", "sizes"], ["y"], name="resize", mode=mode),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, "oh", "ow"])],
        [numpy_helper.from_array(np.array(target, np.int64), "hw")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _exact(source: int, target: int) -> bool:
    scale = np.float32(target / source)
    return float(scale) * source == target


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    th=st.integers(1, 40),
    tw=st.integers(1, 40),
    mode=st.sampled_from(["linear", "nearest", "cubic"]),
)
def test_resize_sizes_become_constant_scales_exactly_where_the_ratio_is_exact(
    tmp_path_factory, h, w, th, tw, mode
):
    model = _resize_model((h, w), (th, tw), mode=mode)
    path = tmp_path_factory.mktemp("r") / "m.onnx"
    onnx.save(model, str(path))
    x = np.random.default_rng(h * 100 + w).normal(0, 1, (2, 2, h, w)).astype(np.float32)
    before = _run(path, x)
    applies = _exact(h, th) and _exact(w, tw) and (th, tw) != (h, w)
    assert tune_for_cpu(path) == ({"constant_resize_scales": 1} if applies else {})
    rewritten = onnx.load(str(path))
    ops = [n.op_type for n in rewritten.graph.node]
    if applies:
        assert ops == ["Relu", "Resize"]  # the Shape and Concat that fed the sizes are gone
        resize = rewritten.graph.node[1]
        assert len(resize.input) == 3
        scales = {t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer}
        np.testing.assert_array_equal(scales[resize.input[2]], [1, 1, th / h, tw / w])
        assert "hw" not in scales
    after = _run(path, x)
    assert after.shape == (2, 2, th, tw)
    np.testing.assert_array_equal(after, before)  # the same sampling positions: bit for bit


def test_resize_with_dynamic_sides_is_left_alone(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_resize_model((4, 4), (8, 8), spatial=("h", "w")), str(path))
    before = path.read_bytes()
    assert tune_for_cpu(path) == {}
    assert path.read_bytes() == before
