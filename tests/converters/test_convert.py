"""Conversion: export + checker + parity against PyTorch, contract in metadata, refusals."""

from __future__ import annotations

import json
import pickle

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from vetrina.contract import METADATA_KEY, Contract
from vetrina.converters import convert as convert_module
from vetrina.converters.convert import build_module, convert, resolve_architecture
from vetrina.converters.verify import Gate, verify
from vetrina.errors import CheckpointError, VerificationError
from vetrina.models.architectures import get_architecture
from vetrina.models.checkpoint import load_checkpoint, save_checkpoint


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_export_is_self_contained_checked_and_dynamic(small_model):
    model = onnx.load(str(small_model))
    onnx.checker.check_model(model, full_check=True)
    assert not list(small_model.parent.glob("*.data")), "no external data files"
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert all(d.dim_param for d in (dims[0], dims[2], dims[3])), "batch/height/width dynamic"
    assert dims[1].dim_value == 3


def test_onnx_matches_pytorch_on_unseen_shapes(small_checkpoint, small_model):
    ckpt = load_checkpoint(small_checkpoint)
    module = build_module(resolve_architecture(ckpt, None), ckpt)
    session = _session(small_model)
    rng = np.random.default_rng(5)
    for shape in [(1, 3, 40, 62), (3, 3, 18, 130)]:
        x = rng.random(shape, dtype=np.float32)
        got = session.run(None, {"image": x})[0]
        with torch.inference_mode():
            want = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_contract_written_with_provenance_and_verification(small_checkpoint, small_model):
    meta = {p.key: p.value for p in onnx.load(str(small_model)).metadata_props}
    contract = Contract.from_json(meta[METADATA_KEY])
    assert contract.role == "editor"
    assert contract.input("image").range == (0.0, 1.0)
    assert contract.spatial.multiple_of == 2
    prov = contract.provenance
    assert prov["architecture"] == "enhancer"
    assert prov["checkpoint_sha256"] == load_checkpoint(small_checkpoint).sha256
    assert prov["config"] == {"channels": 8, "blocks": 1}
    assert contract.verification["passed"] is True
    assert contract.verification["max_abs"] < 1e-3
    assert len(contract.verification["cases"]) == 4


def _tamper(path, scale=1.5):
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(init) * scale
    init.CopyFrom(numpy_helper.from_array(values.astype(np.float32), init.name))
    onnx.save(model, str(path))


def test_tampered_onnx_fails_verification(small_checkpoint, small_model, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(small_model.read_bytes())
    _tamper(bad)
    ckpt = load_checkpoint(small_checkpoint)
    module = build_module(resolve_architecture(ckpt, None), ckpt)
    report = verify(bad, module, get_architecture("enhancer"), gate=Gate(1e-3, 60.0))
    assert not report.passed
    assert report.worst_max_abs > 1e-3


def test_convert_refuses_drift_and_writes_nothing(small_checkpoint, tmp_path, monkeypatch):
    real_export = convert_module.export_onnx

    def drifting_export(*args, **kwargs):
        path = real_export(*args, **kwargs)
        _tamper(path, scale=1.02)
        return path

    monkeypatch.setattr(convert_module, "export_onnx", drifting_export)
    out = tmp_path / "out" / "m.onnx"
    with pytest.raises(VerificationError, match="beyond the gate") as info:
        convert(small_checkpoint, out)
    assert not info.value.report.passed
    assert list(out.parent.iterdir()) == [], "nothing written, no temp file left"


def test_report_json_is_valid(small_checkpoint, tmp_path):
    result = convert(small_checkpoint, tmp_path / "m.onnx")
    data = json.loads(result.report.to_json())
    assert data["passed"] is True and len(data["cases"]) == 4


def _tiny_state_dict():
    return get_architecture("enhancer").build({"channels": 8, "blocks": 1}).state_dict()


def test_bare_state_dict_needs_arch(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(_tiny_state_dict(), path)
    ckpt = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="--arch"):
        resolve_architecture(ckpt, None)
    # With --arch but the default (bigger) config, the mismatch lists the wrong shapes.
    with pytest.raises(CheckpointError, match="wrong shape"):
        build_module(resolve_architecture(ckpt, "enhancer"), ckpt)


def test_unknown_and_contradicting_arch(small_checkpoint):
    ckpt = load_checkpoint(small_checkpoint)
    with pytest.raises(CheckpointError, match="unknown architecture"):
        resolve_architecture(ckpt.__class__(None, {}, {}, path=small_checkpoint), "resnet9000")
    with pytest.raises(CheckpointError, match="contradicts"):
        resolve_architecture(ckpt, "something-else")


def test_missing_keys_listed(tmp_path):
    sd = _tiny_state_dict()
    sd.pop("tail.weight")
    sd["extra.weight"] = torch.zeros(1)
    path = save_checkpoint(
        tmp_path / "c.pt",
        architecture="enhancer",
        config={"channels": 8, "blocks": 1},
        state_dict=sd,
        metadata={},
    )
    ckpt = load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"missing: tail\.weight.*unexpected: extra\.weight"):
        build_module(resolve_architecture(ckpt, None), ckpt)


class Payload:  # pickled as code: refused by weights_only loading
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_refused_with_flag_named(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _tiny_state_dict(), "obj": Payload()}, path)
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty"),
        (b"hello, not a checkpoint", "not a PyTorch checkpoint"),
        (pickle.dumps({"a": 1}, protocol=2), "not a PyTorch checkpoint|corrupt"),
        ("torch-list", "not a dict"),
    ],
)
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    if content == "torch-list":
        torch.save([1, 2, 3], path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_truncated_checkpoint(small_checkpoint, tmp_path):
    data = small_checkpoint.read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)
