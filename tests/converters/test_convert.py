"""Conversion: export + checker + parity against PyTorch, contract in metadata, refusals."""

from __future__ import annotations

import json
import pickle
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from vetrina.contract import METADATA_KEY, Contract
from vetrina.converters import convert as convert_module
from vetrina.converters.convert import build_module, convert, resolve_architecture
from vetrina.converters.verify import Gate, verify
from vetrina.errors import CheckpointError, ConversionError, VerificationError
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


@pytest.mark.slow
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


def test_report_json_is_valid(small_checkpoint, small_model):
    from vetrina.converters.verify import verify_file

    data = json.loads(verify_file(small_model, small_checkpoint).to_json())
    assert data["passed"] is True and len(data["cases"]) == 4
    assert {"max_abs", "mean_abs", "psnr_db", "ssim", "delta_e_mean", "delta_e_max"} <= set(
        data["cases"][0]
    )


def test_cli_output_defaults_to_the_checkpoint_with_suffix_onnx(small_checkpoint, tmp_path, capsys):
    from vetrina.cli import main

    ckpt = tmp_path / "enh.pt"
    ckpt.write_bytes(small_checkpoint.read_bytes())
    assert main(["convert", str(ckpt), "--sizes", "32x40"]) == 0
    out = tmp_path / "enh.onnx"
    assert f"wrote {out}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enh.onnx", "enh.pt"]
    assert ckpt.read_bytes() == small_checkpoint.read_bytes()
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert Contract.from_json(meta[METADATA_KEY]).provenance["checkpoint"] == "enh.pt"


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


# --- multi-input, static, slim/opset, detection, user factories, the zoo ------------------


def _tiny_checkpoint(tmp_path, arch, config, name=None):
    torch.manual_seed(1)
    module = get_architecture(arch).build(config)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for b in module.buffers():
            if b.dtype.is_floating_point:
                b.copy_(torch.rand_like(b) + 0.5)  # non-trivial BatchNorm statistics
    return save_checkpoint(
        tmp_path / (name or f"{arch}.pt"),
        architecture=arch,
        config=config,
        state_dict=module.state_dict(),
        metadata={},
    )


def _inputs(path):
    return {i.name: (i.shape, i.type) for i in _session(path).get_inputs()}


@pytest.mark.slow
def test_generator_with_latent_and_labels_converts(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path, "cgan-generator", {"z_dim": 8, "channels": 16})
    result = convert(ckpt, tmp_path / "g.onnx")
    assert _inputs(result.output) == {
        "z": (["batch", 8], "tensor(float)"),
        "category": (["batch"], "tensor(int64)"),
        "colour": (["batch"], "tensor(int64)"),
    }
    assert [c.name for c in result.report.cases] == ["every-label-b11", "random-b3"]
    assert result.contract.verification["min_ssim"] > 0.999
    module = build_module(resolve_architecture(load_checkpoint(ckpt), None), load_checkpoint(ckpt))
    rng = np.random.default_rng(9)
    z = rng.standard_normal((5, 8)).astype(np.float32)
    cat, col = np.array([7, 0, 3, 1, 2]), np.array([10, 4, 0, 9, 5])
    got = _session(result.output).run(None, {"z": z, "category": cat, "colour": col})[0]
    with torch.inference_mode():
        want = module(*map(torch.from_numpy, (z, cat, col))).numpy()
    assert got.shape == (5, 3, 64, 64)
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.slow
def test_image_and_mask_share_dynamic_size(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path, "inpainter", {"channels": 4})
    result = convert(ckpt, tmp_path / "i.onnx", sizes=[(48, 64)])
    shapes = _inputs(result.output)
    assert shapes["image"][0][1] == 3 and shapes["mask"][0][1] == 1
    assert shapes["image"][0][2:] == shapes["mask"][0][2:]
    assert all(isinstance(d, str) for d in shapes["image"][0][2:]), "height/width dynamic"
    assert [c.name for c in result.report.cases] == ["random-48x64", "catalog-48x64"]
    ck = load_checkpoint(ckpt)
    module = build_module(resolve_architecture(ck, None), ck)
    rng = np.random.default_rng(4)
    image = rng.random((3, 3, 40, 24), dtype=np.float32)
    mask = (rng.random((3, 1, 40, 24)) > 0.7).astype(np.float32)
    got = _session(result.output).run(None, {"image": image, "mask": mask})[0]
    with torch.inference_mode():
        want = module(torch.from_numpy(image), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.slow
def test_static_size_fixes_height_width_not_batch(tmp_path):
    from vetrina.converters.verify import verify_file

    ckpt = _tiny_checkpoint(tmp_path, "defect-detector", {"channels": 4})
    result = convert(ckpt, tmp_path / "d.onnx", static=(32, 48))
    ((shape, _),) = _inputs(result.output).values()
    assert shape[1:] == [3, 32, 48] and isinstance(shape[0], str)
    assert result.contract.provenance["static_size"] == [32, 48]
    assert [c.name for c in result.report.cases] == ["random-32x48", "catalog-32x48"]
    session = _session(result.output)
    x = np.random.default_rng(0).random((3, 3, 32, 48), dtype=np.float32)
    assert session.run(None, {"image": x})[0].shape == (3, 1, 32, 48)
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        session.run(None, {"image": x[:, :, :24]})
    report = verify_file(result.output, ckpt)
    assert report.passed and report.cases[0].name == "random-32x48"
    with pytest.raises(ConversionError, match="fixed size 32x48"):
        verify_file(result.output, ckpt, sizes=[(64, 64)])


def test_static_refused_before_export(small_checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(ConversionError, match=r"multiples of 2 for enhancer.*try 32x40 or 34x40"):
        convert(small_checkpoint, out, static=(33, 40))
    with pytest.raises(ConversionError, match="differ from --static"):
        convert(small_checkpoint, out, static=(32, 40), sizes=[(64, 64)])
    gen = _tiny_checkpoint(tmp_path, "cgan-generator", {"z_dim": 4, "channels": 8})
    with pytest.raises(ConversionError, match="takes no image input"):
        convert(gen, out, static=(64, 64))
    assert not out.exists()


@pytest.mark.slow
def test_slim_and_opset_are_verified_and_recorded(small_checkpoint, tmp_path):
    result = convert(small_checkpoint, tmp_path / "s.onnx", slim=True, opset=18)
    prov = result.contract.provenance
    assert prov["slim"] is True and prov["opset"] == 18
    assert result.report.passed and len(result.report.cases) == 4
    try:
        low = convert(small_checkpoint, tmp_path / "o17.onnx", opset=17)
    except ConversionError as exc:  # the dynamo exporter may not write opset 17
        assert "asked for opset 17" in str(exc) and "--opset" in str(exc)
        assert not (tmp_path / "o17.onnx").exists()
    else:
        assert low.contract.provenance["opset"] == 17


@pytest.mark.slow
def test_bare_public_state_dict_is_detected_and_converted(tmp_path):
    pytest.importorskip("vetrina.models.architectures.detect")
    torch.manual_seed(3)
    net = get_architecture("dcgan-generator").build({"nz": 7, "ngf": 4})
    path = tmp_path / "netG_epoch_24.pth"
    torch.save(net.state_dict(), path)
    result = convert(path, tmp_path / "dcgan.onnx")
    prov = result.contract.provenance
    assert prov["architecture"] == "dcgan-generator" and prov["config"]["nz"] == 7
    assert _inputs(result.output)["z"] == (["batch", 7, 1, 1], "tensor(float)")
    z = np.random.default_rng(1).standard_normal((3, 7, 1, 1)).astype(np.float32)
    got = _session(result.output).run(None, {"z": z})[0]
    with torch.inference_mode():
        want = net.eval()(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


_USER_MODULE = """
import torch
from vetrina.contract import SpatialRules, TensorSpec
from vetrina.models.architectures import ArchitectureSpec


class Sharpen(torch.nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.a = torch.nn.Conv2d(3, width, 3, padding=1)
        self.b = torch.nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, image):
        return torch.clamp(image + 0.1 * self.b(torch.relu(self.a(image))), 0.0, 1.0)


Sharpen.VETRINA_SPEC = ArchitectureSpec(
    name="user-sharpen",
    factory="",
    role="editor",
    inputs=(TensorSpec(name="image"),),
    outputs=(TensorSpec(name="sharpened"),),
    spatial=SpatialRules(multiple_of=1, min_size=8),
    description="a user's own editor",
)


def no_spec(width=4):
    return Sharpen(width)
"""


@pytest.mark.slow
def test_user_factory_with_spec_converts(tmp_path, monkeypatch):
    namespace: dict = {}
    exec(_USER_MODULE, namespace)
    torch.manual_seed(0)
    state = {
        k: v + 0.05 * torch.randn_like(v) for k, v in namespace["Sharpen"](4).state_dict().items()
    }
    ckpt = tmp_path / "sharpen.pt"
    torch.save(state, ckpt)
    (tmp_path / "vetrina_user_nets_a.py").write_text(_USER_MODULE)
    monkeypatch.chdir(tmp_path)  # imported from the current directory, like the CLI does
    try:
        result = convert(ckpt, tmp_path / "u.onnx", arch="vetrina_user_nets_a:Sharpen")
    finally:
        sys.modules.pop("vetrina_user_nets_a", None)
    prov = result.contract.provenance
    assert prov["architecture"] == "user-sharpen"
    assert prov["factory"] == "vetrina_user_nets_a:Sharpen"
    assert result.contract.outputs[0].name == "sharpened" and result.report.passed


def test_user_factory_needs_spec_and_must_exist(tmp_path, monkeypatch, small_checkpoint):
    (tmp_path / "vetrina_user_nets_b.py").write_text(_USER_MODULE.replace("Sharpen.VETRINA", "X"))
    monkeypatch.chdir(tmp_path)
    ck = load_checkpoint(small_checkpoint)
    bare = ck.__class__(None, {}, ck.state_dict, path=small_checkpoint)
    try:
        with pytest.raises(CheckpointError, match="VETRINA_SPEC"):
            resolve_architecture(bare, "vetrina_user_nets_b:no_spec")
        with pytest.raises(CheckpointError, match="has no attribute"):
            resolve_architecture(bare, "vetrina_user_nets_b:missing")
    finally:
        sys.modules.pop("vetrina_user_nets_b", None)
    with pytest.raises(CheckpointError, match="cannot import"):
        resolve_architecture(bare, "vetrina_no_such_module:build")
    with pytest.raises(CheckpointError, match=r"package\.module:factory"):
        resolve_architecture(bare, "vetrina_user_nets_b:")


def _zoo_entries():
    from vetrina.models.zoo import ZOO

    return list(ZOO.values())


@pytest.mark.slow
@pytest.mark.parametrize("entry", _zoo_entries(), ids=lambda e: e.name)
def test_every_zoo_model_converts_and_verifies_at_fp32(entry):
    """Converted the way pipelines get them (``zoo_model``: default verification, into the
    test session's cache), so the pipeline and bench tests reuse these files instead of
    converting each model a second time. ``convert`` writes nothing when verification
    fails (test_convert_refuses_drift_and_writes_nothing), so the file is the pass."""
    from vetrina.modelrefs import zoo_model

    if not entry.path.is_file():
        pytest.skip(f"{entry.name} is not trained yet")
    path = zoo_model(entry.name)
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    contract = Contract.from_json(meta[METADATA_KEY])
    assert contract.provenance["architecture"] == entry.architecture
    assert contract.verification["passed"] and not contract.verification["failed"]
    assert contract.verification["precision"] == "fp32"
    assert contract.verification["min_psnr_db"] > 60, contract.verification
