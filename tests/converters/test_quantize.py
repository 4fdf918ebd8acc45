"""int8 with explicit Q/DQ: the TensorRT (symmetric) and CPU (u8 activations) flavours,
calibration from images, and refusals of bad calibration input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from vetrina.contract import TensorSpec
from vetrina.converters.activations import Runner
from vetrina.converters.calibration import catalog_images, fit, image_feeds, load_folder
from vetrina.converters.quantize import qdq_summary, quantizable_nodes, quantize_int8
from vetrina.converters.reduced import reduce_precision
from vetrina.errors import ConversionError, InputError
from vetrina.imageio import write_image
from vetrina.metrics import psnr
from vetrina.models.architectures import get_architecture


@pytest.fixture(scope="module")
def zoo_enhancer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed, trained zoo enhancer exported fp32 (needs models/zoo/enhancer.pt)."""
    from vetrina.converters.export import export_onnx
    from vetrina.models.zoo import load_module

    path = tmp_path_factory.mktemp("int8") / "enhancer.onnx"
    return export_onnx(load_module("enhancer"), get_architecture("enhancer"), path)


def _qdq_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]


def _held_out_psnr(fp32: Path, int8: Path) -> float:
    spec = get_architecture("enhancer")
    feeds = image_feeds(spec.inputs, catalog_images(3, (128, 128), start=200), (128, 128))
    ref, cand = Runner(fp32), Runner(int8)
    return min(
        psnr(np.clip(cand.run(f)[0], 0, 1), np.clip(ref.run(f)[0], 0, 1), 1.0) for f in feeds
    )


@pytest.mark.slow
def test_tensorrt_flavour_is_symmetric_int8_and_close(zoo_enhancer, tmp_path):
    spec = get_architecture("enhancer")
    result = quantize_int8(
        zoo_enhancer,
        tmp_path / "trt.onnx",
        catalog_images(8, (96, 96)),
        target="tensorrt",
        inputs=spec.inputs,
        size=(96, 96),
    )
    model = onnx.load(str(result.path))
    consts = {t.name: t for t in model.graph.initializer}
    qdq = _qdq_nodes(model)
    assert qdq
    for node in qdq:  # every zero point: an int8 initializer holding zeros
        zp = consts[node.input[2]]
        assert zp.data_type == TensorProto.INT8, node.name
        assert not numpy_helper.to_array(zp).any(), node.name
    assert not any(t.data_type in (TensorProto.UINT8, TensorProto.INT32) for t in consts.values())
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    producers = {n.output[0]: n for n in qdq}
    for conv in convs:  # int8 weights, one scale per output channel
        dq = producers[conv.input[1]]
        weight = consts[dq.input[0]]
        assert weight.data_type == TensorProto.INT8
        assert numpy_helper.to_array(consts[dq.input[1]]).shape == (weight.dims[0],)
    assert conv.input[2] in consts and consts[conv.input[2]].data_type == TensorProto.FLOAT
    summary = qdq_summary(model)
    assert summary.activation_types == {"int8"} and summary.nonzero_zero_points == []
    assert result.calibration["images"] == 8 and result.calibration["method"] == "minmax"
    assert _held_out_psnr(zoo_enhancer, result.path) > 30.0


@pytest.mark.slow
def test_cpu_flavour_has_uint8_activations_and_is_close(zoo_enhancer, tmp_path):
    spec = get_architecture("enhancer")
    result = quantize_int8(
        zoo_enhancer,
        tmp_path / "cpu.onnx",
        catalog_images(8, (96, 96)),
        target="cpu",
        inputs=spec.inputs,
        size=(96, 96),
    )
    model = onnx.load(str(result.path))
    consts = {t.name: t for t in model.graph.initializer}
    quant = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert quant and all(consts[n.input[2]].data_type == TensorProto.UINT8 for n in quant)
    assert any(numpy_helper.to_array(consts[n.input[2]]).any() for n in quant)  # asymmetric
    producers = {n.output[0]: n for n in _qdq_nodes(model)}
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        dq = producers[conv.input[1]]
        assert consts[dq.input[0]].data_type == TensorProto.INT8
        assert not numpy_helper.to_array(consts[dq.input[2]]).any()  # symmetric weights
        assert numpy_helper.to_array(consts[dq.input[1]]).ndim == 1  # per channel
    assert result.target == "cpu" and "uint8" in result.calibration["activations"]
    assert _held_out_psnr(zoo_enhancer, result.path) > 30.0


def test_bad_calibration_folders_are_refused(small_model, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        quantize_int8(small_model, tmp_path / "o.onnx", tmp_path / "missing", target="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(InputError, match="holds no image files"):
        quantize_int8(small_model, tmp_path / "o.onnx", empty, target="tensorrt")
    broken = tmp_path / "broken"
    broken.mkdir()
    write_image(broken / "a.png", catalog_images(1, (64, 64))[0])
    (broken / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(InputError, match=r"b\.png"):
        quantize_int8(small_model, tmp_path / "o.onnx", broken, target="cpu")
    with pytest.raises(InputError, match="not a folder"):
        quantize_int8(small_model, tmp_path / "o.onnx", broken / "a.png", target="cpu")
    assert not (tmp_path / "o.onnx").exists()


def test_calibration_folder_and_exclusions(small_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(catalog_images(3, (80, 120))):
        write_image(folder / f"{i}.png", image)
    model = onnx.load(str(small_model))
    conv = next(n.name for n in model.graph.node if n.op_type == "Conv")
    result = quantize_int8(
        small_model, tmp_path / "q.onnx", folder, target="cpu", size=(64, 64), exclude=[conv]
    )
    assert result.calibration["images"] == 3 and result.islands == [conv]
    quantized = onnx.load(str(result.path))
    consts = {t.name for t in quantized.graph.initializer}
    node = next(n for n in quantized.graph.node if n.name == conv)
    assert node.input[1] in consts  # the float32 weight itself, no DequantizeLinear
    with pytest.raises(ConversionError, match="nope"):
        quantize_int8(small_model, tmp_path / "x.onnx", folder, target="cpu", exclude=["nope"])
    with pytest.raises(ConversionError, match="unknown int8 target"):
        quantize_int8(small_model, tmp_path / "x.onnx", folder, target="gpu")
    with pytest.raises(ConversionError, match="int8 needs a target"):
        reduce_precision(small_model, tmp_path / "x.onnx", "int8", calibration=folder)


def test_calibration_images_fit_and_map_through_the_contract():
    image = np.zeros((40, 100, 3), np.uint8)
    image[:, 30:70] = (255, 0, 0)  # a red centre band, 40 px of 100
    fitted = fit(image, (20, 20))  # cover: 40x100 -> 20x50, then the centre 20x20
    assert fitted.shape == (20, 20, 3) and (fitted[:, :, 0] > 200).all()
    specs = [
        TensorSpec(name="image", channels="BGR", range=(-1.0, 1.0)),
        TensorSpec(name="mask", semantic="mask", channels="L", range=(0.0, 1.0)),
    ]
    (feeds,) = image_feeds(specs, catalog_images(1, (64, 64)), (32, 48))
    assert feeds["image"].shape == (1, 3, 32, 48) and feeds["mask"].shape == (1, 1, 32, 48)
    assert feeds["image"].dtype == np.float32
    assert feeds["image"].min() >= -1.0 and feeds["image"].max() <= 1.0
    assert set(np.unique(feeds["mask"])) <= {0.0, 1.0} and feeds["mask"].any()
    rgb = np.full((8, 8, 3), (255, 0, 0), np.uint8)
    (plain,) = image_feeds([TensorSpec(name="image", channels="BGR")], rgb, (8, 8))
    assert plain["image"][0, 2].min() == 1.0 and plain["image"][0, 0].max() == 0.0  # BGR order
    with pytest.raises(ConversionError, match="latent or label"):
        image_feeds(get_architecture("cgan-generator").inputs, rgb, (8, 8))


def test_load_folder_reads_rgb(tmp_path):
    image = catalog_images(1, (64, 64))[0]
    write_image(tmp_path / "x.png", np.ascontiguousarray(image[:, :, ::-1]))  # BGR on disk
    cv2.imwrite(str(tmp_path / "grey.png"), image[:, :, 0])
    loaded = load_folder(tmp_path)
    assert len(loaded) == 2 and all(i.shape == (64, 64, 3) for i in loaded)
    assert np.array_equal(loaded[1], image)  # x.png sorts after grey.png; RGB back
    assert np.array_equal(loaded[0], np.repeat(image[:, :, :1], 3, axis=2))


@pytest.mark.slow
def test_int8_island_search_finds_the_node_the_gate_needs(small_model, tmp_path):
    target = quantizable_nodes(small_model, "tensorrt")[3]  # not the first: the search works

    def passes(candidate: Path) -> bool:  # a gate that needs exactly `target` in float32
        model = onnx.load(str(candidate))
        node = next(n for n in model.graph.node if n.name == target)
        return node.input[1] in {t.name for t in model.graph.initializer}

    spec = get_architecture("enhancer")
    samples = image_feeds(spec.inputs, catalog_images(1, (64, 64)), (32, 32))
    result = reduce_precision(
        small_model,
        tmp_path / "s.onnx",
        "int8",
        target="tensorrt",
        calibration=catalog_images(2, (64, 64)),
        calibration_size=(32, 32),
        passes=passes,
        samples=samples,
    )
    assert result.islands == [target] and result.reasons[target] == "island search"
    assert passes(result.path) and 3 <= result.search_trials <= 24  # the plain result failed


def _weight(rng: np.random.Generator, name: str, *shape: int) -> onnx.TensorProto:
    """A random float32 conv weight initializer, scaled by its fan-in."""
    w = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    return numpy_helper.from_array(w.astype(np.float32), name)


def _save_image_graph(path, nodes, inits, output, output_shape, opset=17) -> None:
    """Save a graph of ``nodes`` from an ``image`` (n, 3, h, w) input to ``output``."""
    from onnx import helper

    graph = helper.make_graph(
        nodes,
        path.stem,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))


def _conv_zoo_graph(path: Path, zero_bias: bool = False) -> dict[str, str]:
    """An image net with one conv of each kind slow_int8_convs tells apart; {kind: node}.
    ``zero_bias``: all biases zero (equal initializers, which preprocessing merges)."""
    from onnx import helper

    rng = np.random.default_rng(0)
    layers = [  # (name, out, in per group, kernel, group)
        ("wide", 8, 3, 3, 1),
        ("depthwise", 8, 1, 3, 8),
        ("depthwise_1x1", 8, 1, 1, 8),
        ("to_one", 1, 8, 3, 1),
        ("tiny", 1, 1, 5, 1),
    ]
    nodes, inits, prev = [], [], "image"
    for name, out, cin, k, group in layers:
        w = (rng.standard_normal((out, cin, k, k)) / (cin * k * k)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"{name}.w"),
            numpy_helper.from_array(
                np.zeros(out, np.float32)
                if zero_bias
                else rng.uniform(-0.1, 0.1, out).astype(np.float32),
                f"{name}.b",
            ),
        ]
        nodes.append(
            helper.make_node(
                "Conv",
                [prev, f"{name}.w", f"{name}.b"],
                [f"{name}.out"],
                name=name,
                pads=[k // 2] * 4,
                group=group,
            )
        )
        prev = f"{name}.out"
    _save_image_graph(path, nodes, inits, prev, ["n", 1, "h", "w"])
    return {name: name for name, *_ in layers}


@pytest.mark.parametrize("zero_bias", [False, True])
def test_cpu_flavour_keeps_the_convs_int8_runs_slower_in_fp32(tmp_path, zero_bias):
    from vetrina.converters.quantize import slow_int8_convs

    names = _conv_zoo_graph(tmp_path / "convs.onnx", zero_bias=zero_bias)
    slow = slow_int8_convs(tmp_path / "convs.onnx")
    assert set(slow) == {names["wide"], names["depthwise"], names["tiny"], names["to_one"]}
    assert "8 output channels, read only by float32 convs" in slow[names["wide"]]
    assert "grouped 3x3" in slow[names["depthwise"]] and "1 -> 1" in slow[names["tiny"]]
    assert "1 output channel, read only by float32 convs" in slow[names["to_one"]]
    inputs = [TensorSpec(name="image", semantic="image", layout="NCHW", range=(0.0, 1.0))]
    images = catalog_images(4, (64, 64))
    kept = {}
    for target, speed in (("cpu", True), ("cpu", False), ("tensorrt", True)):
        result = quantize_int8(
            tmp_path / "convs.onnx",
            tmp_path / f"{target}-{speed}.onnx",
            images,
            target=target,
            inputs=inputs,
            size=(32, 32),
            speed_islands=speed,
        )
        model = onnx.load(str(result.path))
        consts = {t.name for t in model.graph.initializer}
        kept[(target, speed)] = {
            n.name for n in model.graph.node if n.op_type == "Conv" and n.input[1] in consts
        }  # a float32 weight, no DequantizeLinear in front: the conv stayed fp32
        assert set(result.islands) == kept[(target, speed)]
        assert all("slower in int8" in result.reasons[n] for n in result.islands)
    assert kept[("cpu", True)] == set(slow)
    assert kept[("cpu", False)] == kept[("tensorrt", True)] == set()


def _upsampling_graph(path: Path) -> None:
    """conv -> nearest 2x Resize (PyTorch's export form) -> conv, and a linear Resize that
    the NCHW pin must leave alone."""
    from onnx import helper

    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) / 9).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal((8, 8, 3, 3)) / 24).astype(np.float32), "w2"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "x2"),
    ]
    nearest = dict(  # the attributes torch.onnx writes (opset 18+)
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
        antialias=0,
        keep_aspect_ratio_policy="stretch",
        exclude_outside=0,
    )
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["a"], name="c1", pads=[1] * 4),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Resize", ["r", "", "x2"], ["up"], name="up", **nearest),
        helper.make_node("Conv", ["up", "w2"], ["b"], name="c2", pads=[1] * 4),
        helper.make_node("Resize", ["b", "", "x2"], ["out"], name="smooth", mode="linear"),
    ]
    _save_image_graph(path, nodes, inits, "out", ["n", 8, "H", "W"], opset=18)


def _quantize_image_graph(source: Path, output: Path, target: str):
    """int8 of a graph saved by :func:`_save_image_graph`, calibrated on 4 catalog photos."""
    inputs = [TensorSpec(name="image", semantic="image", layout="NCHW", range=(0.0, 1.0))]
    images = catalog_images(4, (64, 64))
    return quantize_int8(source, output, images, target=target, inputs=inputs, size=(32, 32))


def _optimized_graph(model: onnx.ModelProto, tmp_path: Path) -> onnx.GraphProto:
    """The graph ONNX Runtime's CPU provider runs for ``model`` after its optimizations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return onnx.load(str(tmp_path / "optimized.onnx")).graph


def _optimized_resize_scales(model: onnx.ModelProto, tmp_path: Path) -> list[list[float]]:
    """Scales of the nearest Resizes in ONNX Runtime's optimized graph: [1, 1, 2, 2] runs in
    NCHW (its 2x fast path), [1, 2, 2, 1] was moved into the quantized convs' NHWC layout."""
    optimized = _optimized_graph(model, tmp_path)
    consts = {t.name: numpy_helper.to_array(t) for t in optimized.initializer}
    return [
        consts[n.input[2]].tolist()
        for n in optimized.node
        if n.op_type == "Resize" and any(a.s == b"nearest" for a in n.attribute)
    ]


def test_cpu_flavour_keeps_nearest_upsampling_in_nchw(tmp_path):
    import onnxruntime as ort

    _upsampling_graph(tmp_path / "up.onnx")
    results = {
        target: _quantize_image_graph(tmp_path / "up.onnx", tmp_path / f"{target}.onnx", target)
        for target in ("cpu", "tensorrt")
    }
    assert results["cpu"].rewrites == {
        "nchw_nearest_upsample": 1,
        "conv_input_channels_to_4": 1,
        "conv_output_channels_to_16": 2,
        "pad_in_uint8": 1,
        "shape_of_uint8": 1,
    }
    assert results["tensorrt"].rewrites is None
    pinned = onnx.load(str(results["cpu"].path))
    resize = next(n for n in pinned.graph.node if n.name == "up")
    reshape = next(n for n in pinned.graph.node if n.output[0] == resize.input[0])
    shape = next(n for n in pinned.graph.node if n.output[0] == reshape.input[1])
    assert reshape.op_type == "Reshape" and shape.op_type == "Shape"
    dequantize = next(n for n in pinned.graph.node if n.output[0] == reshape.input[0])
    assert dequantize.op_type == "DequantizeLinear"
    assert shape.input[0] == dequantize.input[0]  # the uint8 tensor's shape: no float pass
    smooth = next(n for n in pinned.graph.node if n.name == "smooth")
    assert not any(
        n.output[0] == smooth.input[0] for n in pinned.graph.node if n.op_type == "Reshape"
    )

    unpinned = onnx.ModelProto()
    unpinned.CopyFrom(pinned)
    kept = [n for n in unpinned.graph.node if n.name not in (reshape.name, shape.name)]
    next(n for n in kept if n.name == "up").input[0] = reshape.input[0]
    del unpinned.graph.node[:]
    unpinned.graph.node.extend(kept)

    x = np.random.default_rng(2).random((2, 3, 24, 40), dtype=np.float32)
    outs = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"image": x}
        )[0]
        for m in (pinned, unpinned)
    ]
    np.testing.assert_array_equal(outs[0], outs[1])  # an identity: bit for bit
    assert _optimized_resize_scales(pinned, tmp_path) == [[1.0, 1.0, 2.0, 2.0]]
    # nothing dequantizes the upsample's input any more (its Shape read a float copy before)
    optimized = onnx.load(str(tmp_path / "optimized.onnx")).graph
    shapes_of = {n.input[0] for n in optimized.node if n.op_type == "Shape"}
    assert shapes_of and not [
        n for n in optimized.node if n.op_type == "DequantizeLinear" and n.output[0] in shapes_of
    ]
    assert _optimized_resize_scales(unpinned, tmp_path) == [[1.0, 2.0, 2.0, 1.0]]


def _style_like_graph(path: Path, norm: bool = True) -> None:
    """9x9 conv from RGB -> InstanceNorm (or Relu) -> 3x3 conv -> Relu -> the narrow-conv
    split of a 9x9 conv to RGB (9x1 conv to 27 channels and 5 zero ones, depthwise 1x9 shift,
    1x1 sum), as the style nets have."""
    from onnx import helper

    rng = np.random.default_rng(4)
    inits = [
        _weight(rng, "wide.w", 8, 3, 9, 9),
        _weight(rng, "mid.w", 8, 8, 3, 3),
        _weight(rng, "partial.w", 32, 8, 9, 1),
        _weight(rng, "shift.w", 32, 1, 1, 9),
        _weight(rng, "sum.w", 3, 32, 1, 1),
        numpy_helper.from_array(np.ones(8, np.float32), "in.scale"),
        numpy_helper.from_array(np.zeros(8, np.float32), "in.bias"),
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
    ]
    first = (
        helper.make_node("InstanceNormalization", ["wide", "in.scale", "in.bias"], ["n"], name="in")
        if norm
        else helper.make_node("Relu", ["wide"], ["n"], name="in")
    )
    nodes = [
        helper.make_node("Conv", ["image", "wide.w"], ["wide"], name="wide", pads=[4] * 4),
        first,
        helper.make_node("Relu", ["n"], ["nr"], name="relu_in"),
        helper.make_node("Pad", ["nr", "pads"], ["np"], name="pad_in", mode="reflect"),
        helper.make_node("Conv", ["np", "mid.w"], ["mid"], name="mid"),
        helper.make_node("Relu", ["mid"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "partial.w"], ["p"], name="partial", pads=[4, 0, 4, 0]),
        helper.make_node(
            "Conv", ["p", "shift.w"], ["s"], name="shift", pads=[0, 4, 0, 4], group=32
        ),
        helper.make_node("Conv", ["s", "sum.w"], ["out"], name="sum"),
    ]
    _save_image_graph(path, nodes, inits, "out", ["n", 3, "h", "w"])


def test_speed_islands_of_style_nets_are_really_fp32_in_onnx_runtime(tmp_path):
    import onnxruntime as ort

    from vetrina.converters.quantize import slow_int8_convs

    _style_like_graph(tmp_path / "style.onnx")
    slow = slow_int8_convs(tmp_path / "style.onnx")
    assert set(slow) == {"wide", "in", "partial", "shift", "sum", "relu"}
    assert "9x9 conv from 3" in slow["wide"] and "32 output channels" in slow["partial"]
    assert "grouped 1x9" in slow["shift"] and "float32 conv and the output" in slow["sum"]
    assert "read only by float32 nodes" in slow["relu"]
    # the norm's Relu and Pad read float32 results but feed a quantized conv: quantized early
    assert "relu_in" not in slow and "pad_in" not in slow
    _style_like_graph(tmp_path / "relu.onnx", norm=False)  # a Relu would requantize it
    assert set(slow_int8_convs(tmp_path / "relu.onnx")) == {"partial", "shift", "sum", "relu"}

    result = _quantize_image_graph(tmp_path / "style.onnx", tmp_path / "int8.onnx", "cpu")
    assert set(result.islands) == set(slow)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx")).graph.node
    kinds = sorted(n.op_type for n in optimized)
    # the four island convs run as float convs, the one conv between them as int8
    assert kinds.count("Conv") == 4 and kinds.count("QLinearConv") == 1, kinds


def test_float_islands_take_in_the_arithmetic_on_their_results(tmp_path):
    """A depthwise box filter (fp32) whose sums a fill-like chain compares, weighs and
    divides (Slice, GreaterOrEqual, Cast, Mul, Add, Div) before a Where with the image and a
    conv: the chain stays fp32 (int8 would quantize the sums it compares and divides), the
    conv is int8."""
    import onnxruntime as ort
    from onnx import helper

    from vetrina.converters.quantize import slow_int8_convs

    rng = np.random.default_rng(8)
    inits = [
        numpy_helper.from_array(np.full((3, 1, 3, 3), 1 / 9, np.float32), "box.w"),
        numpy_helper.from_array((rng.standard_normal((16, 3, 3, 3)) / 5).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array(0.4, np.float32), "level"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "box.w"], ["box"], name="box", pads=[1] * 4, group=3),
        helper.make_node("Slice", ["box", "zero", "one", "one"], ["first"], name="first"),
        helper.make_node("GreaterOrEqual", ["first", "level"], ["bright"], name="ge"),
        helper.make_node("Cast", ["bright"], ["take"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["take", "box"], ["chosen"], name="weigh"),
        helper.make_node("Add", ["first", "level"], ["weight"], name="guard"),
        helper.make_node("Div", ["chosen", "weight"], ["mean"], name="mean"),
        helper.make_node("Where", ["bright", "mean", "image"], ["fill"], name="where"),
        helper.make_node("Conv", ["fill", "w"], ["out"], name="net", pads=[1] * 4),
    ]
    _save_image_graph(tmp_path / "fill.onnx", nodes, inits, "out", ["n", 16, "h", "w"])
    slow = slow_int8_convs(tmp_path / "fill.onnx")
    assert set(slow) == {"box", "first", "ge", "cast", "weigh", "guard", "mean"}
    assert "reads only float32 results" in slow["weigh"]
    result = _quantize_image_graph(tmp_path / "fill.onnx", tmp_path / "int8.onnx", "cpu")
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
    kinds = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert "Mul" in kinds and "QLinearMul" not in kinds and "QLinearConv" in kinds, kinds
