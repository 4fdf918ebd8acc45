"""fp16 at the ONNX level: float32 edges and islands, numerics against PyTorch, island search."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from vetrina.converters.activations import (
    EMULATED,
    ORT,
    REFERENCE,
    Runner,
    emulate_fp16,
    tensor_values,
)
from vetrina.converters.calibration import catalog_images, image_feeds
from vetrina.converters.export import export_onnx
from vetrina.converters.islands import search_islands
from vetrina.converters.precision import convert_fp16
from vetrina.converters.reduced import reduce_precision
from vetrina.converters.tensor_stats import activation_ranges
from vetrina.errors import ConversionError
from vetrina.metrics import psnr
from vetrina.models.architectures import ArchitectureSpec, get_architecture


class Overflow(nn.Module):
    """conv -> relu -> (x * 1e5) / 1e5 -> conv + input: exact in fp32, inf in float16."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(image))
        return self.b((h * 1e5) / 1e5) + image


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {t.name: t.data_type for t in g.initializer}
    for v in [*g.input, *g.value_info, *g.output]:
        types[v.name] = v.type.tensor_type.elem_type
    return types


def _feeds(spec: ArchitectureSpec, count: int, size: int, start: int = 0) -> list[dict]:
    return image_feeds(spec.inputs, catalog_images(count, (size, size), start), (size, size))


@pytest.fixture(scope="module")
def style_net(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module, ArchitectureSpec]:
    """A tiny TransformerNet (InstanceNorm, Resize) with random weights, exported fp32."""
    spec = get_architecture("transformer-net")
    torch.manual_seed(0)
    module = spec.build({"channels": 8, "blocks": 1}).eval()
    path = tmp_path_factory.mktemp("fp16") / "style.onnx"
    return export_onnx(module, spec, path), module, spec


@pytest.fixture(scope="module")
def overflow_net(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ArchitectureSpec]:
    base = get_architecture("enhancer")
    spec = ArchitectureSpec(
        name="overflow",
        factory="tests:Overflow",
        role="editor",
        inputs=base.inputs,
        outputs=base.outputs,
        spatial=base.spatial,
        description="overflows in float16",
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fp16") / "overflow.onnx"
    return export_onnx(Overflow().eval(), spec, path), spec


@pytest.mark.slow
def test_fp16_style_net_keeps_instance_norm_fp32_and_matches_pytorch(style_net, tmp_path):
    path, module, spec = style_net
    result = convert_fp16(path, tmp_path / "style16.onnx")
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    types = _types(model)
    nodes = list(model.graph.node)
    # The edges stay float32.
    assert [types[i.name] for i in model.graph.input] == [TensorProto.FLOAT]
    assert [types[o.name] for o in model.graph.output] == [TensorProto.FLOAT]
    # Every InstanceNorm is an island: float32 in and out, float32 scale/bias.
    norms = [n for n in nodes if n.op_type == "InstanceNormalization"]
    assert norms and sorted(result.islands) == sorted(n.name for n in norms)
    for n in norms:
        assert all(types[t] == TensorProto.FLOAT for t in [*n.input, *n.output])
    # Convs compute in float16 with float16 weights; Resize's scales stay float32.
    convs = [n for n in nodes if n.op_type == "Conv"]
    assert convs and all(types[t] == TensorProto.FLOAT16 for n in convs for t in n.input)
    resizes = [n for n in nodes if n.op_type == "Resize"]
    assert resizes and all(types[n.input[0]] == TensorProto.FLOAT16 for n in resizes)
    assert all(types[n.input[2]] == TensorProto.FLOAT for n in resizes)
    assert result.evaluator == EMULATED
    # Numerics against PyTorch fp32, with float16 arithmetic (reference evaluator) and with
    # float16 storage + float32 compute (the emulation).
    for evaluator in (REFERENCE, EMULATED):
        runner = Runner(result.path, evaluator=evaluator)
        for feeds in _feeds(spec, 2, 64):
            got = runner.run(feeds)[0]
            assert got.dtype == np.float32
            with torch.inference_mode():
                want = module(torch.from_numpy(feeds["image"])).numpy()
            # Random weights give outputs far inside 0..255: measure against their spread.
            assert psnr(got, want, float(want.max() - want.min())) > 40.0
    # ONNX Runtime CPU loads and runs it too.
    assert Runner(result.path).evaluator == ORT


def test_fp16_enhancer_keeps_dynamic_reductions_fp32(small_model, tmp_path):
    result = convert_fp16(small_model, tmp_path / "enh16.onnx")
    model = onnx.load(str(result.path))
    means = [n.name for n in model.graph.node if n.op_type == "ReduceMean"]
    assert means and set(means) <= set(result.islands)
    assert all("unknown" in result.reasons[m] for m in means)  # spatial sides are dynamic
    spec = get_architecture("enhancer")
    feeds = _feeds(spec, 1, 64)[0]
    want = Runner(small_model).run(feeds)[0]
    got = Runner(result.path, evaluator=EMULATED).run(feeds)[0]
    assert psnr(np.clip(got, 0, 1), np.clip(want, 0, 1), 1.0) > 40.0
    # The contract metadata travels with the model.
    assert {p.key for p in model.metadata_props} == {
        p.key for p in onnx.load(str(small_model)).metadata_props
    }


def test_ort_cpu_does_not_round_float16_activations_but_the_emulation_does():
    """Why fp16 numerics are not checked with plain ONNX Runtime: its CPU provider runs Relu
    through a float32 kernel and drops the casts, so the value is never rounded to float16."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Cast", ["r"], ["y"], to=TensorProto.FLOAT),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    x = np.array([1000.1, 1000.3, 2000.7, 3.14159], np.float32)
    rounded = x.astype(np.float16).astype(np.float32)
    assert np.array_equal(Runner(model, evaluator=REFERENCE).run({"x": x})[0], rounded)
    ort_out = Runner(model, evaluator=ORT).run({"x": x})[0]
    assert not np.array_equal(ort_out, rounded), "ORT now rounds: revisit the evaluator choice"
    assert np.array_equal(Runner(model, evaluator=EMULATED).run({"x": x})[0], rounded)


def test_emulation_rounds_every_float16_tensor_and_agrees_with_reference(small_model, tmp_path):
    result = convert_fp16(small_model, tmp_path / "e16.onnx")
    feeds = _feeds(get_architecture("enhancer"), 1, 64)
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(result.path)))
    half = {v.name for v in inferred.graph.value_info if v.type.tensor_type.elem_type == 10}
    values, evaluator = tensor_values(emulate_fp16(onnx.load(str(result.path))), feeds)
    assert evaluator == ORT and half and half <= set(values[0])
    for name in half:
        v = values[0][name]
        assert np.array_equal(v, v.astype(np.float16).astype(v.dtype)), name
    emulated = Runner(result.path, evaluator=EMULATED).run(feeds[0])[0]
    reference = Runner(result.path, evaluator=REFERENCE).run(feeds[0])[0]
    plain = Runner(result.path, evaluator=ORT).run(feeds[0])[0]
    fp32 = Runner(small_model).run(feeds[0])[0]
    assert psnr(emulated, reference, 1.0) > 60.0
    # Plain ORT is measurably closer to fp32 than real float16 is: it skips the rounding.
    assert psnr(plain, fp32, 1.0) > psnr(emulated, fp32, 1.0) + 3.0


def test_keep_fp32_by_name_and_unknown_names(small_model, tmp_path):
    model = onnx.load(str(small_model))
    conv = next(n.name for n in model.graph.node if n.op_type == "Conv")
    result = convert_fp16(small_model, tmp_path / "a.onnx", keep_fp32=[conv])
    assert conv in result.islands and result.reasons[conv] == "requested"
    out = onnx.load(str(result.path))
    types = _types(out)
    node = next(n for n in out.graph.node if n.name == conv)
    assert all(types[t] == TensorProto.FLOAT for t in [*node.input, *node.output])
    with pytest.raises(ConversionError, match="no-such-node"):
        convert_fp16(small_model, tmp_path / "b.onnx", keep_fp32=["no-such-node"])
    with pytest.raises(ConversionError, match="already holds float16"):
        convert_fp16(result.path, tmp_path / "c.onnx")


def test_measured_overflow_becomes_an_island(overflow_net, tmp_path):
    path, spec = overflow_net
    samples = _feeds(spec, 1, 64)
    ranges = activation_ranges(path, samples)
    assert max(r.max_abs for r in ranges.values()) > 65504  # the 1e5-scaled activation
    result = convert_fp16(path, tmp_path / "ov16.onnx", samples=samples)
    ops = {n.name: n.op_type for n in onnx.load(str(path)).graph.node}
    assert sorted(ops[n] for n in result.islands) == ["Div", "Mul"]
    got = Runner(result.path, evaluator=EMULATED).run(samples[0])[0]
    want = Runner(path).run(samples[0])[0]
    assert np.isfinite(got).all()
    assert psnr(np.clip(got, 0, 1), np.clip(want, 0, 1), 1.0) > 40.0


def _gate(reference: Path, samples: list[dict], min_psnr: float = 40.0):
    want = [Runner(reference).run(f)[0] for f in samples]

    def passes(candidate: Path) -> bool:
        runner = Runner(candidate, evaluator=EMULATED)
        for feeds, w in zip(samples, want, strict=True):
            got = runner.run(feeds)[0]
            if not np.isfinite(got).all() or psnr(got, w, 1.0) < min_psnr:
                return False
        return True

    return passes


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_island_search_finds_exactly_the_overflowing_nodes(overflow_net, tmp_path):
    path, spec = overflow_net
    samples = _feeds(spec, 1, 64)

    def transform(islands: list[str], out: Path) -> None:
        convert_fp16(path, out, keep_fp32=islands, check_ranges=False)  # no automatic rules

    search = search_islands(
        path,
        transform,
        _gate(path, samples),
        samples=samples,
        evaluator=EMULATED,
        range_limit=65504.0,
    )
    ops = {n.name: n.op_type for n in onnx.load(str(path)).graph.node}
    assert sorted(ops[n] for n in search.islands) == ["Div", "Mul"]
    assert search.trials <= 5
    assert search.log[0] == ([], False)  # no islands was tried first, and failed
    assert math.isinf(search.ranking[0][1]) and ops[search.ranking[0][0]] in ("Mul", "Div")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_island_search_without_range_hint_still_finds_them(overflow_net, tmp_path):
    path, spec = overflow_net
    samples = _feeds(spec, 1, 64)
    search = search_islands(
        path,
        lambda islands, out: convert_fp16(path, out, keep_fp32=islands, check_ranges=False),
        _gate(path, samples),
        samples=samples,
        evaluator=EMULATED,
    )
    ops = {n.name: n.op_type for n in onnx.load(str(path)).graph.node}
    assert sorted(ops[n] for n in search.islands) == ["Div", "Mul"]
    assert search.trials <= 12


def test_island_search_trivial_and_impossible_gates(overflow_net, tmp_path):
    path, spec = overflow_net
    samples = _feeds(spec, 1, 64)
    calls: list[list[str]] = []

    def transform(islands: list[str], out: Path) -> None:
        calls.append(islands)
        convert_fp16(path, out, keep_fp32=islands, check_ranges=False)

    ok = search_islands(path, transform, lambda p: True, samples=samples)
    assert ok.islands == [] and ok.trials == 1 and calls == [[]]
    with pytest.raises(ConversionError, match="even with all 6 candidate nodes"):
        search_islands(path, transform, lambda p: False, samples=samples, max_trials=10)
    with pytest.raises(ConversionError, match="within 3 trials"):
        search_islands(path, transform, lambda p: False, samples=samples, max_trials=3)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_reduce_precision_fp16_records_provenance(overflow_net, tmp_path):
    path, spec = overflow_net
    samples = _feeds(spec, 1, 64)
    result = reduce_precision(
        path, tmp_path / "out.onnx", "fp16", passes=_gate(path, samples), samples=samples
    )
    prov = result.provenance()
    assert prov["precision"] == "fp16" and prov["evaluator"] == EMULATED
    assert prov["path"] == "out.onnx" and prov["search_trials"] == 1  # the rules sufficed
    assert len(prov["islands"]) == 2 and set(prov["reasons"]) == set(prov["islands"])


def test_island_search_says_when_only_the_untransformed_model_would_pass(overflow_net):
    # int8 with every quantizable node excluded raises in the transform: that is a failed
    # trial, and the search ends with the reason instead of a stack from the quantizer
    path, spec = overflow_net
    samples = _feeds(spec, 1, 64)
    names = [n.name for n in onnx.load(str(path)).graph.node]

    def transform(islands: list[str], out: Path) -> None:
        if set(islands) == set(names):
            raise ConversionError("int8 quantization left no node quantized")
        convert_fp16(path, out, keep_fp32=islands, check_ranges=False)

    with pytest.raises(ConversionError, match="every candidate node would have to stay float32"):
        search_islands(path, transform, lambda p: False, samples=samples, max_trials=10)


def test_island_search_falls_back_to_all_but_one_when_all_is_no_model(overflow_net):
    # a gate that only a nearly untransformed model passes: the search must not stop at "all
    # islands" (which, for int8, is no quantized model) but try all but the least sensitive one
    path, spec = overflow_net
    samples = _feeds(spec, 1, 64)
    names = [n.name for n in onnx.load(str(path)).graph.node]
    kept: dict[str, int] = {}

    def transform(islands: list[str], out: Path) -> None:
        if set(islands) == set(names):
            raise ConversionError("int8 quantization left no node quantized")
        kept[str(out)] = len(islands)
        convert_fp16(path, out, keep_fp32=islands, check_ranges=False)

    search = search_islands(
        path, transform, lambda p: kept[str(p)] >= len(names) - 1, samples=samples, max_trials=12
    )
    assert len(search.islands) == len(names) - 1
