"""A rembg-style ONNX file (no vetrina contract) runs once its contract is written beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vetrina.cli import main
from vetrina.errors import ModelError
from vetrina.foreign import PRESETS, sidecar_path, write_contract
from vetrina.model import Model
from vetrina.pipeline import Pipeline
from vetrina.pipeline_spec import parse_spec

SIDE = 32


def _rembg_like_model(path: Path, inputs: int = 1) -> Path:
    """Like rembg's u2netp.onnx: input 'input.1' (1, 3, S, S), several (1, 1, S, S) outputs,
    the first a sigmoid. Here d0 = sigmoid(4 * mean over channels of the input)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["input.1"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["m", "four"], ["m4"]),
        helper.make_node("Sigmoid", ["m4"], ["d0"]),
        helper.make_node("Identity", ["d0"], ["d1"]),
    ]
    ins = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, SIDE, SIDE])]
    if inputs == 2:
        ins.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    graph = helper.make_graph(
        nodes,
        "rembg-like",
        ins,
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, SIDE, SIDE])
            for name in ("d0", "d1")
        ],
        [numpy_helper.from_array(np.array(4.0, np.float32), "four")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _expected_alpha(photo: np.ndarray) -> np.ndarray:
    """What rembg's convention feeds the file and what it gives: (rgb/255 - mean)/std."""
    p = PRESETS["u2net"]
    x = (photo.astype(np.float64) / 255.0 - np.array(p.mean)) / np.array(p.std)
    return 1.0 / (1.0 + np.exp(-4.0 * x.mean(axis=2)))


def test_a_file_without_contract_is_refused_with_the_fix(tmp_path):
    model = _rembg_like_model(tmp_path / "u2netp.onnx")
    with pytest.raises(ModelError, match="vetrina contract FILE --preset"):
        Model.open(model)


def test_preset_contract_lets_the_pipeline_run_the_file_as_rembg_feeds_it(tmp_path, capsys):
    model = _rembg_like_model(tmp_path / "u2netp.onnx")
    before = model.read_bytes()
    assert main(["contract", str(model), "--preset", "u2net"]) == 0
    assert "u2netp.contract.json" in capsys.readouterr().out
    assert model.read_bytes() == before  # the ONNX file is untouched
    contract = Model.open(model).contract
    assert contract.static_size == (SIDE, SIDE) and contract.inputs[0].mean == PRESETS["u2net"].mean
    matte = {"model": str(model), "empty_check": False}  # noise has no product to check
    spec = parse_spec({"stages": [{"matte": matte}]}, origin="t")
    pipeline = Pipeline(spec)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)  # at the model's size:
    out = pipeline.run([photo])[0]  # no resize, so the alpha is exactly the file's output
    assert out.shape == (SIDE, SIDE, 4)
    shown = out[:, :, 3] > 0  # the photo's pixels are kept where they show, 0 elsewhere
    np.testing.assert_array_equal(out[shown, :3], photo[shown])
    assert not out[~shown].any()
    expected = np.floor(_expected_alpha(photo) * 255.0 + 0.5)
    assert np.abs(out[:, :, 3].astype(int) - expected).max() <= 1


def test_bad_files_and_options_are_refused(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        write_contract(tmp_path / "missing.onnx", "u2net")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="cannot load"):
        write_contract(tmp_path / "junk.onnx", "u2net")
    two = _rembg_like_model(tmp_path / "two.onnx", inputs=2)
    with pytest.raises(ModelError, match="one NCHW image"):
        write_contract(two, "u2net")
    one = _rembg_like_model(tmp_path / "one.onnx")
    with pytest.raises(ModelError, match="fixed at"):
        write_contract(one, "u2net", size=320)
    with pytest.raises(ModelError, match="unknown preset"):
        write_contract(one, "sam")
    assert not sidecar_path(one).exists()
