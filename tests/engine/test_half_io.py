"""Models with float16 inputs and outputs: the editor feeds them float16 and the pipeline's
hand-offs convert the dtype where two stages' contracts differ (one fused adapt pass)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest

from vetrina import kernels
from vetrina.contract import METADATA_KEY, Contract
from vetrina.editor import Editor
from vetrina.model import Model
from vetrina.pipeline import Pipeline

onnx = pytest.importorskip("onnx")
float16 = pytest.importorskip("onnxconverter_common.float16")


@pytest.fixture(scope="module")
def half_model(small_model, tmp_path_factory):
    """The tiny enhancer with float16 everywhere, its inputs and outputs included."""
    model = float16.convert_float_to_float16(onnx.load(small_model), keep_io_types=False)
    entry = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    contract = Contract.from_json(entry.value)

    def half(specs):
        return tuple(dataclasses.replace(t, dtype="float16") for t in specs)

    entry.value = dataclasses.replace(
        contract, inputs=half(contract.inputs), outputs=half(contract.outputs)
    ).to_json()
    path = tmp_path_factory.mktemp("half") / "tiny-enhancer-half-io.onnx"
    onnx.save(model, str(path))
    return path


def _photos():
    rng = np.random.default_rng(11)
    return [
        rng.integers(0, 256, (24, 32, 3), np.uint8),
        rng.integers(0, 256, (24, 32, 3), np.uint8),
    ]


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_the_editor_feeds_a_float16_model_float16(half_model, small_model):
    photos = _photos()
    spec = Model.open(half_model).contract.input("image")
    scale, offset = spec.from_uint8_affine()
    batch = kernels.preprocess(photos, (24, 32), scale=scale, offset=offset)
    session = _session(half_model)
    out = session.run(None, {session.get_inputs()[0].name: batch.astype(np.float16)})[0]
    assert out.dtype == np.float16
    out_scale, out_offset = Model.open(half_model).contract.output("image").to_uint8_affine()
    expected = kernels.postprocess(out, [(24, 32)] * 2, scale=out_scale, offset=out_offset)
    got = Editor(Model.open(half_model)).edit(photos)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
    full = Editor(Model.open(small_model)).edit(photos)
    assert max(np.abs(g.astype(int) - f).max() for g, f in zip(got, full, strict=True)) <= 3


def test_hand_offs_convert_between_float32_and_float16_stages(half_model, small_model, tmp_path):
    yaml = tmp_path / "mixed.yaml"
    yaml.write_text(
        f"stages:\n  - edit: {small_model}\n  - edit: {half_model}\n  - edit: {small_model}\n"
    )
    pipeline = Pipeline.load(yaml)
    plan = "\n".join(pipeline.describe())
    assert "float32 -> float16" in plan and "float16 -> float32" in plan
    photos = _photos()
    got = pipeline.run(photos)
    # the reference: each session by hand, the dtype cast and the clamp to [0, 1] between
    contract = Model.open(small_model).contract
    scale, offset = contract.input("image").from_uint8_affine()
    x = kernels.preprocess(photos, (24, 32), scale=scale, offset=offset)
    for path, dtype in ((small_model, np.float32), (half_model, np.float16), (small_model, None)):
        session = _session(path)
        x = session.run(None, {session.get_inputs()[0].name: x})[0]
        if dtype is not None:
            next_dtype = np.float16 if dtype == np.float32 else np.float32
            x = np.clip(x.astype(next_dtype), 0, 1)
    out_scale, out_offset = contract.output("image").to_uint8_affine()
    expected = kernels.postprocess(x, [(24, 32)] * 2, scale=out_scale, offset=out_offset)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
