"""Reading intermediate tensors a chunk at a time (never more than the byte budget held at
once, the same results as everything exposed) and the float16 emulation."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vetrina.converters import activations
from vetrina.converters.activations import (
    EMULATED,
    TensorReader,
    tensor_sizes,
    tensor_values,
)
from vetrina.converters.islands import sensitivity
from vetrina.converters.precision import convert_fp16


def _deep_net(depth: int = 6, seed: int = 0) -> onnx.ModelProto:
    """Conv -> Relu ``depth`` times, then a 2x nearest upsample: dynamic height and width,
    tensors of two sizes (the upsample quadruples the last ones)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    prev = "x"
    for i in range(depth):
        w = rng.normal(0, 0.4, (4, 4 if i else 3, 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(
            helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1] * 4, name=f"conv{i}")
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        prev = f"r{i}"
    inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
    nodes.append(helper.make_node("Resize", [prev, "", "scales"], ["y"], mode="nearest", name="up"))
    graph = helper.make_graph(
        nodes,
        "deep",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, "h2", "w2"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _samples(shapes: list[tuple[int, int]], seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.random((1, 3, h, w), dtype=np.float32)} for h, w in shapes]


def test_sizes_come_from_the_samples_shapes_and_match_the_values():
    model = _deep_net()
    samples = _samples([(16, 24), (16, 24), (8, 8)])
    sizes = tensor_sizes(model, samples)
    values, _ = tensor_values(model, samples)
    reader = TensorReader(model)
    assert reader.names == [n for node in model.graph.node for n in node.output]
    for name in reader.names:
        assert sizes[name] == sum(v[name].nbytes for v in values), name
    assert sizes["y"] == 4 * sizes["r5"]


def test_unknown_sizes_count_as_the_largest_known_one():
    # NonZero's output length depends on the data: inference cannot size it.
    model = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("Relu", ["x"], ["r"]),
                helper.make_node("NonZero", ["r"], ["nz"]),
                helper.make_node("Cast", ["nz"], ["y"], to=TensorProto.FLOAT),
            ],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    sizes = tensor_sizes(model, [{"x": np.ones((3, 5), np.float32)}])
    assert sizes["r"] == 3 * 5 * 4
    assert sizes["y"] == sizes["nz"] == sizes["r"]


@pytest.mark.parametrize("budget", [1, 30_000, 1 << 30])
def test_plan_keeps_each_chunk_within_the_budget(budget):
    model = _deep_net()
    samples = _samples([(16, 24), (8, 8)])
    reader = TensorReader(model)
    plan = reader.plan(samples, budget)
    assert [n for chunk in plan for n in chunk] == reader.names
    for chunk in plan:
        held = sum(a.nbytes for arrays in reader.read(chunk, samples).values() for a in arrays)
        assert held <= budget or len(chunk) == 1
    expected = {1: len(reader.names), 1 << 30: 1}
    if budget in expected:
        assert len(plan) == expected[budget]
    else:  # sizes differ (the upsample), so the chunks hold more tensors early than late
        assert 1 < len(plan) < len(reader.names)
        assert len(plan[0]) > len(plan[-1])


def test_chunked_sensitivity_equals_the_unchunked_one(tmp_path):
    model = _deep_net(seed=3)
    path = tmp_path / "deep.onnx"
    onnx.save(model, path)
    half = convert_fp16(path, tmp_path / "deep16.onnx", fp32_ops={}).path
    samples = _samples([(16, 24), (12, 20)])
    for limit in (None, 6.0):
        args = {"evaluator": EMULATED, "range_limit": limit}
        whole = sensitivity(path, half, samples, budget=1 << 40, **args)
        chunked = sensitivity(path, half, samples, budget=1, **args)
        assert whole == chunked
        assert set(whole) == {n.name for n in model.graph.node}
        if limit is None:  # the fp16 copy drifts: nodes get positive, finite scores
            assert any(0 < s < math.inf for s in whole.values())
        else:  # the nodes touching values beyond the limit rank first
            assert 0 < sum(math.isinf(s) for s in whole.values()) < len(whole)


def _fp16_chain(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The deep net in numpy-side float16 storage: float64 convs, each tensor rounded."""
    import torch

    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    r = torch.from_numpy(x.astype(np.float16).astype(np.float64))
    for i in range(sum(n.op_type == "Conv" for n in model.graph.node)):
        w = torch.from_numpy(weights[f"w{i}"].astype(np.float16).astype(np.float64))
        c = torch.nn.functional.conv2d(r, w, padding=1).numpy().astype(np.float16)
        r = torch.from_numpy(np.maximum(c, 0).astype(np.float64))
    return r.numpy().repeat(2, axis=2).repeat(2, axis=3)


def test_emulation_rounds_every_tensor_of_a_chain_without_exposing_it(tmp_path):
    model = _deep_net(seed=3)
    path = tmp_path / "deep.onnx"
    onnx.save(model, path)
    half = convert_fp16(path, tmp_path / "deep16.onnx", fp32_ops={}).path
    x = _samples([(16, 24)])[0]["x"]
    got = activations.Runner(half, evaluator=EMULATED).run({"x": x})[0].astype(np.float64)
    want = _fp16_chain(model, x)
    # float32 accumulation may round a value to the neighbouring float16 (1 ulp) now and then;
    # skipping the roundings between ops drifts most values.
    ulp = np.spacing(np.abs(want).astype(np.float16)).astype(np.float64)
    assert (np.abs(got - want) <= ulp).all()
    assert np.mean(got == want) > 0.99


def test_names_no_node_produces_are_left_out_of_a_read():
    """A rewritten model may keep value_info for a tensor no node produces any more."""
    model = _deep_net()
    model.graph.value_info.append(helper.make_tensor_value_info("gone", TensorProto.FLOAT, None))
    reader = TensorReader(model)
    assert "gone" in reader.types
    values = reader.read(["r0", "gone", "y"], _samples([(8, 8)]))
    assert set(values) == {"r0", "y"}
