"""vetrina doctor: each hazard built as a small ONNX graph must be found, and clean models stay
clean (the zoo enhancer), while the transformer-net export is flagged for InstanceNorm."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from vetrina.contract import METADATA_KEY, Contract, SpatialRules, TensorSpec  # noqa: E402
from vetrina.converters.doctor import (  # noqa: E402
    ERROR,
    FP16_MAX,
    INFO,
    WARNING,
    diagnose,
    measure_activations,
    sample_feeds,
)

F, H, I64 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64
X4 = ["n", 3, 16, 16]


def vi(name, dtype=F, shape=X4):
    return helper.make_tensor_value_info(name, dtype, shape)


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def model(nodes, inputs=None, outputs=None, inits=(), opset=18, contract=None, domains=()):
    graph = helper.make_graph(
        nodes, "g", inputs or [vi("x")], outputs or [vi("y", shape=None)], initializer=list(inits)
    )
    imports = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    m = helper.make_model(graph, opset_imports=imports)
    if contract is not None:
        entry = m.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, contract.to_json()
    return m


X_SPEC = TensorSpec(name="x")


def contract(step=1, inputs=(X_SPEC,), lo=8):
    return Contract(
        role="editor",
        inputs=inputs,
        outputs=(TensorSpec(name="y"),),
        spatial=SpatialRules(multiple_of=step, min_size=lo),
    )


def checks(report, severity=None):
    return {f.check for f in report.findings if severity is None or f.severity == severity}


def static(m, **kw):
    return diagnose(m, measure=False, **kw)


# ----------------------------------------------------------------------------------------------
# static patterns
# ----------------------------------------------------------------------------------------------


def test_fft_ops_are_errors():
    dft = model(
        [helper.make_node("DFT", ["x", "", "axis"], ["y"], onesided=0)],
        [vi("x", shape=[1, 64, 1])],
        inits=[const("axis", np.array(1, np.int64))],
        opset=20,
    )
    stft = model(
        [helper.make_node("STFT", ["x", "step", "", "len"], ["y"])],
        [vi("x", shape=[1, 256, 1])],
        inits=[const("step", np.array(16, np.int64)), const("len", np.array(64, np.int64))],
        opset=17,
    )
    for m, op in ((dft, "DFT"), (stft, "STFT")):
        report = static(m)
        (finding,) = report.by_check("fft")
        assert finding.severity == ERROR and finding.op == op and "no DFT/STFT" in finding.issue
        assert report.exit_code() == 1


def test_grid_sample_precision_and_rank():
    m = model(
        [helper.make_node("GridSample", ["x", "grid"], ["y"], mode="linear")],
        [vi("x"), vi("grid", shape=["n", 16, 16, 2])],
        opset=20,
    )
    (f,) = static(m).by_check("grid-sample")
    assert f.severity == WARNING and "1/1024" in f.issue and "fp32" in f.fix
    m5 = model(
        [helper.make_node("GridSample", ["x", "grid"], ["y"], mode="linear")],
        [vi("x", shape=[1, 3, 4, 8, 8]), vi("grid", shape=[1, 4, 8, 8, 3])],
        opset=20,
    )
    (f,) = static(m5).by_check("grid-sample")
    assert f.severity == ERROR and "rank-5" in f.issue


def _resize(scales_node=None, antialias=0, scales="scales"):
    nodes = [
        helper.make_node("Resize", ["x", "", scales], ["y"], mode="linear", antialias=antialias)
    ]
    if scales_node is not None:
        nodes.insert(0, scales_node)
    inits = [const("s0", np.array([1, 1, 2, 2], np.float32))]
    if scales == "scales":
        inits.append(const("scales", np.array([1, 1, 2, 2], np.float32)))
    return model(nodes, inits=inits, opset=18)


def test_resize_antialias_and_computed_scales():
    assert checks(static(_resize())) == set()  # constant scales, no antialias: fine
    (f,) = static(_resize(antialias=1)).by_check("resize-antialias")
    assert f.severity == ERROR and "antialias" in f.issue
    from_constants = _resize(helper.make_node("Identity", ["s0"], ["sc"], name="id"), scales="sc")
    (f,) = static(from_constants).by_check("resize-dynamic-scales")
    assert f.severity == WARNING and "Identity 'id'" in f.issue and "onnxslim" in f.fix
    from_input = model(  # scales = float(shape(x)) / 8: depends on the input at run time
        [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Cast", ["shape"], ["fshape"], to=F),
            helper.make_node("Div", ["fshape", "eight"], ["sc"], name="div"),
            helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest"),
        ],
        inits=[const("eight", np.full(4, 8.0, np.float32))],
    )
    (f,) = static(from_input).by_check("resize-dynamic-scales")
    assert f.severity == ERROR and "Div 'div'" in f.issue and "must be an initializer" in f.issue
    folded = _resize(
        helper.make_node("Constant", [], ["sc"], value=const("v", np.ones(4, np.float32))),
        scales="sc",
    )
    assert not static(folded).by_check("resize-dynamic-scales")


def test_space_to_depth_and_unshuffle_pattern():
    s2d = model(
        [helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=4)],
        [vi("x", shape=[1, 3, 16, 16])],
        contract=contract(step=2),
    )
    found = static(s2d).by_check("pixel-unshuffle")
    assert {f.severity for f in found} == {ERROR, WARNING}
    assert any("multiples of 2" in f.issue for f in found)
    assert any("channel" in f.issue and "DCR" in f.issue for f in found)

    shape6 = const("s6", np.array([1, 3, 8, 2, 8, 2], np.int64))
    shape4 = const("s4", np.array([1, 12, 8, 8], np.int64))
    pattern = model(
        [
            helper.make_node("Reshape", ["x", "s6"], ["r6"]),
            helper.make_node("Transpose", ["r6"], ["t6"], perm=[0, 1, 3, 5, 2, 4], name="unshuf"),
            helper.make_node("Reshape", ["t6", "s4"], ["y"]),
        ],
        [vi("x", shape=[1, 3, 16, 16])],
        inits=[shape6, shape4],
        contract=contract(step=2),
    )
    (f,) = static(pattern).by_check("pixel-unshuffle")
    assert f.severity == WARNING and f.node == "unshuf" and "by 2" in f.issue
    # pixel_shuffle's inverse permutation is not an unshuffle
    shuffle = model(
        [
            helper.make_node("Reshape", ["x", "s6"], ["r6"]),
            helper.make_node("Transpose", ["r6"], ["y"], perm=[0, 1, 4, 2, 5, 3]),
        ],
        [vi("x", shape=[1, 3, 16, 16])],
        inits=[shape6],
    )
    assert not static(shuffle).by_check("pixel-unshuffle")


def _in_graph(half: bool):
    scale, bias = np.ones(3), np.zeros(3)
    dtype = np.float16 if half else np.float32
    nodes = [helper.make_node("InstanceNormalization", ["xh" if half else "x", "s", "b"], ["n"])]
    if half:
        nodes.insert(0, helper.make_node("Cast", ["x"], ["xh"], to=H))
        nodes.append(helper.make_node("Cast", ["n"], ["y"], to=F))
    else:
        nodes.append(helper.make_node("Relu", ["n"], ["y"]))
    return model(nodes, inits=[const("s", scale.astype(dtype)), const("b", bias.astype(dtype))])


def test_instance_norm_fp16_severity_follows_the_graph():
    (f32,) = static(_in_graph(False)).by_check("instance-norm-fp16")
    (f16,) = static(_in_graph(True)).by_check("instance-norm-fp16")
    assert f32.severity == WARNING and "if the model is converted" in f32.issue
    assert f16.severity == ERROR and "computes in fp16" in f16.issue
    assert static(_in_graph(True)).precision == "fp16"


def test_norms_and_reductions_in_fp16():
    nodes = [
        helper.make_node("Cast", ["x"], ["xh"], to=H),
        helper.make_node("LayerNormalization", ["xh", "g", "b"], ["ln"], axis=-1),
        helper.make_node("ReduceSum", ["ln", "axes"], ["rs"], keepdims=1),
        helper.make_node("Cast", ["rs"], ["y"], to=F),
    ]
    inits = [
        const("g", np.ones(16, np.float16)),
        const("b", np.zeros(16, np.float16)),
        const("axes", np.array([2, 3], np.int64)),
    ]
    report = static(model(nodes, inits=inits))
    assert checks(report, WARNING) >= {"norm-fp16", "reduce-fp16"}
    f32 = static(
        model(
            [helper.make_node("ReduceMean", ["x", "axes"], ["y"])],
            inits=[const("axes", np.array([2, 3], np.int64))],
        )
    )
    assert [(f.check, f.severity) for f in f32.findings] == [("reduce-fp16", INFO)]
    assert f32.exit_code() == 0 and f32.exit_code(strict=True) == 0


def test_unsupported_custom_and_einsum_ops():
    unique = model(
        [helper.make_node("Unique", ["x"], ["y"], sorted=1)],
        [vi("x", shape=[8])],
        [vi("y", shape=None)],
    )
    (f,) = static(unique).by_check("unsupported-op")
    assert f.severity == ERROR and f.op == "Unique"
    custom = model(
        [helper.make_node("FusedConv", ["x"], ["y"], domain="com.microsoft")],
        domains=["com.microsoft"],
    )
    (f,) = static(custom).by_check("custom-op")
    assert f.op == "com.microsoft.FusedConv" and "plugin" in f.issue
    ein = model(
        [helper.make_node("Einsum", ["x", "x"], ["y"], equation="...ij,...jk->...ik")],
    )
    (f,) = static(ein).by_check("unsupported-op")
    assert "ellipsis" in f.issue
    plain = model([helper.make_node("Einsum", ["x", "x"], ["y"], equation="ncij,ncjk->ncik")])
    assert not static(plain).findings


def _qdq(zero_point, *, out_dtype=None):
    zp = [const("zp", zero_point)] if zero_point is not None else []
    names = ["x", "s", "zp"] if zero_point is not None else ["x", "s"]
    kw = {"output_dtype": out_dtype} if out_dtype is not None else {}
    nodes = [
        helper.make_node("QuantizeLinear", names, ["q"], name="q", **kw),
        helper.make_node("DequantizeLinear", ["q", *names[1:]], ["y"], name="dq"),
    ]
    return model(nodes, inits=[const("s", np.array(0.02, np.float32)), *zp], opset=21)


def test_qdq_needs_symmetric_int8_for_tensorrt():
    # --target cpu int8: uint8 activations with a non-zero zero point; TensorRT refuses both
    (f,) = static(_qdq(np.array(128, np.uint8))).by_check("qdq-asymmetric")
    assert f.severity == ERROR and f.count == 2 and f.nodes == ["q", "dq"]
    assert "uint8" in f.issue and "--target tensorrt" in f.fix
    (f,) = static(_qdq(np.array(3, np.int8))).by_check("qdq-asymmetric")
    assert "non-zero zero point" in f.issue and f.count == 2
    per_channel = np.zeros(80, np.int8)  # beyond the small-constant cache
    per_channel[7] = 1
    assert static(_qdq(per_channel)).by_check("qdq-asymmetric")
    assert static(_qdq(None, out_dtype=TensorProto.UINT8)).by_check("qdq-asymmetric")
    # --target tensorrt int8: symmetric, zero point 0 (given or left out)
    for clean in (_qdq(np.array(0, np.int8)), _qdq(np.zeros(80, np.int8)), _qdq(None)):
        assert not static(clean).findings


def test_int64_shape_arithmetic():
    nodes, prev = [], "x"
    for i in range(6):  # Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains
        nodes += [
            helper.make_node("Shape", [prev], [f"s{i}"]),
            helper.make_node("Gather", [f"s{i}", "zero"], [f"g{i}"], axis=0),
            helper.make_node("Unsqueeze", [f"g{i}", "zero1"], [f"u{i}"]),
            helper.make_node("Concat", [f"u{i}", "rest"], [f"c{i}"], axis=0),
            helper.make_node("Reshape", [prev, f"c{i}"], [f"r{i}"]),
        ]
        prev = f"r{i}"
    nodes.append(helper.make_node("Relu", [prev], ["y"]))
    inits = [
        const("zero", np.array(0, np.int64)),
        const("zero1", np.array([0], np.int64)),
        const("rest", np.array([3, 16, 16], np.int64)),
    ]
    (f,) = static(model(nodes, inits=inits)).by_check("int64-shapes")
    assert f.severity == WARNING and "24 of 31 nodes" in f.issue and "onnxslim" in f.fix


def test_findings_are_merged_per_issue():
    nodes = [
        helper.make_node("InstanceNormalization", ["x", "s", "b"], ["a"], name="in1"),
        helper.make_node("InstanceNormalization", ["a", "s", "b"], ["y"], name="in2"),
    ]
    inits = [const("s", np.ones(3, np.float32)), const("b", np.zeros(3, np.float32))]
    report = static(model(nodes, inits=inits))
    (f,) = report.findings
    assert f.count == 2 and f.nodes == ["in1", "in2"]
    table = report.table()
    assert "InstanceNormalization x2" in table and "in1 +1" in table and "fix: keep" in table
    data = json.loads(report.to_json())
    assert data["counts"] == {"error": 0, "warning": 1, "info": 0} and not data["severe"]


# ----------------------------------------------------------------------------------------------
# activations measured with ONNX Runtime
# ----------------------------------------------------------------------------------------------


def _scale_graph(k: float, half: bool = False):
    if half:
        nodes = [
            helper.make_node("Cast", ["x"], ["xh"], to=H),
            helper.make_node("Add", ["xh", "one"], ["x1"]),  # >= 1, so x1 * k >= k
            helper.make_node("Mul", ["x1", "k"], ["big"], name="scale"),
            helper.make_node("Cast", ["big"], ["y"], to=F),
        ]
        inits = [const("k", np.array([k], np.float16)), const("one", np.ones(1, np.float16))]
        return model(nodes, inits=inits)
    nodes = [
        helper.make_node("Mul", ["x", "k"], ["big"], name="scale"),
        helper.make_node("Mul", ["big", "inv"], ["y"], name="unscale"),
    ]
    return model(
        nodes,
        inits=[const("k", np.array([k], np.float32)), const("inv", np.array([1 / k], np.float32))],
    )


def test_activations_beyond_fp16_range():
    report = diagnose(_scale_graph(1e6), threads=1, size=32)
    (f,) = report.by_check("fp16-overflow")
    assert f.severity == WARNING and f.node == "scale" and "beyond fp16's 65504" in f.issue
    assert report.activations["max_abs"] > FP16_MAX and report.activations["tensor"] == "big"
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1
    assert not diagnose(_scale_graph(100.0), threads=1, size=32).findings


def test_fp16_overflow_and_nonfinite_are_errors():
    half = diagnose(_scale_graph(60000.0, half=True), threads=1, size=32)
    (f,) = half.by_check("fp16-overflow")
    assert f.severity == ERROR and "inf/NaN" in f.issue and "float16" in f.issue
    nan = model(
        [helper.make_node("Sub", ["x", "x"], ["z"]), helper.make_node("Div", ["z", "z"], ["y"])]
    )
    (f,) = diagnose(nan, threads=1, size=32).by_check("nonfinite")
    assert f.severity == ERROR and "fails in fp32" in f.fix


def test_measure_activations_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    m = onnx.shape_inference.infer_shapes(_scale_graph(1e6))
    stats, described = measure_activations(m, None, feeds={"x": x}, threads=1)
    assert described == "given inputs"
    big = (x * np.float32(1e6)).astype(np.float32)
    assert stats["big"]["max_abs"] == pytest.approx(float(np.abs(big).max()), rel=1e-6)
    assert stats["y"]["max_abs"] == pytest.approx(float(np.abs(x).max()), rel=1e-5)
    assert stats["big"]["nonfinite"] == 0 and stats["big"]["dtype"] == "float32"


def test_sample_feeds_render_catalog_photos_in_the_contract_range():
    from vetrina.models.catalog import render, split_seeds

    image = TensorSpec(name="image", channels="BGR", range=(-1.0, 1.0))
    mask = TensorSpec(name="mask", semantic="mask", channels="L", range=(0.0, 1.0))
    z = TensorSpec(name="z", semantic="z", layout="NC", channels="", range=None)
    c = Contract(
        role="inpainter",
        inputs=(image, mask, z),
        outputs=(TensorSpec(name="y"),),
        spatial=SpatialRules(multiple_of=24, min_size=48),
    )
    inputs = [
        vi("image", shape=["n", 3, "h", "w"]),
        vi("mask", shape=["n", 1, "h", "w"]),
        vi("z", shape=["n", 8]),
        vi("label", I64, ["n"]),
    ]
    feeds, described = sample_feeds(inputs, c, samples=2, size=100)
    assert feeds["image"].shape == (2, 3, 120, 120)  # 100 rounded up to a multiple of 24
    assert feeds["mask"].shape == (2, 1, 120, 120) and feeds["z"].shape == (2, 8)
    assert feeds["label"].dtype == np.int64 and not feeds["label"].any()
    seed = int(split_seeds("test", 1)[0])
    want = render(seed, (120, 120))
    rgb = want.image.astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(feeds["image"][0], rgb[..., ::-1].transpose(2, 0, 1), atol=1e-6)
    np.testing.assert_allclose(feeds["mask"][0, 0], want.alpha / 255.0, atol=1e-6)
    assert "2 rendered 120x120 images" in described


def test_model_ort_cannot_run_is_reported_not_raised():
    bad = model(
        [helper.make_node("GridSample", ["x", "grid"], ["y"], mode="linear")],
        [vi("x", shape=[1, 3, 4, 8, 8]), vi("grid", shape=[1, 4, 8, 8, 2])],
        opset=20,
    )
    report = diagnose(bad, threads=1, size=8)
    assert "not-measured" in checks(report) and report.activations["skipped"]


# ----------------------------------------------------------------------------------------------
# CLI and real exports
# ----------------------------------------------------------------------------------------------


def test_cli_exit_codes_and_json(tmp_path, capsys):
    from vetrina.cli import main

    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    onnx.save(_in_graph(False), str(good))
    onnx.save(_resize(antialias=1), str(bad))
    assert main(["doctor", str(good), "--no-run"]) == 0
    assert "InstanceNormalization" in capsys.readouterr().out
    assert main(["doctor", str(good), "--no-run", "--strict"]) == 1
    capsys.readouterr()
    assert main(["doctor", str(bad), "--json", "--size", "16"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["severe"] and data["findings"][0]["check"] == "resize-antialias"
    assert main(["doctor", str(tmp_path / "missing.onnx")]) == 1
    assert "no such model file" in capsys.readouterr().err


def test_enhancer_export_is_clean(small_model):
    """The zoo's enhancer architecture (conftest's converted tiny enhancer, with its contract):
    nothing severe, activations measured on rendered photos well inside fp16's range."""
    report = diagnose(small_model, threads=1, size=96)
    assert not report.severe and report.exit_code() == 0, report.table()
    assert {f.severity for f in report.findings} <= {INFO}
    assert "rendered 96x96 images" in report.activations["inputs"]
    assert 0 < report.activations["max_abs"] < FP16_MAX


@pytest.mark.parametrize(
    ("name", "config", "wrap"),
    [
        ("cyclegan-resnet", {"ngf": 2, "n_blocks": 1}, None),  # default ngf 64, 9 blocks
        ("srvgg-compact-x4", {"num_feat": 4, "num_conv": 3}, "params"),  # default 64, 16
    ],
)
def test_public_checkpoint_of_a_non_default_config(tmp_path, capsys, name, config, wrap):
    """A bare public state_dict (as its project saves it) of a config other than the
    architecture's default: doctor builds the detected config, like convert."""
    torch = pytest.importorskip("torch")
    from vetrina.cli import main
    from vetrina.models.architectures import get_architecture

    torch.manual_seed(0)
    state = get_architecture(name).build(config).state_dict()
    path = tmp_path / "net_G.pth"
    torch.save({wrap: state} if wrap else state, path)
    assert main(["doctor", str(path), "--no-run", "--json"]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == f"{path} ({name})" and report["nodes"] > 0


@pytest.mark.slow
def test_transformer_net_export_flags_instance_norm(tmp_path):
    torch = pytest.importorskip("torch")
    from vetrina.converters.doctor import diagnose_checkpoint
    from vetrina.models.architectures import get_architecture
    from vetrina.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = {"channels": 8, "blocks": 1}
    module = get_architecture("transformer-net").build(config)
    path = save_checkpoint(
        tmp_path / "style.pt",
        architecture="transformer-net",
        config=config,
        state_dict=module.state_dict(),
        metadata={"purpose": "tests"},
    )
    report = diagnose_checkpoint(path, threads=1, size=64)
    (f,) = report.by_check("instance-norm-fp16")
    assert f.severity == WARNING and f.count == sum(
        isinstance(m, torch.nn.InstanceNorm2d) for m in module.modules()
    )
    assert not report.severe
