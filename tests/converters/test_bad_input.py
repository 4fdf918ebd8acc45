"""Bad input to `vetrina convert` / `vetrina verify`: one clear line, non-zero exit, no file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vetrina.cli import main
from vetrina.models.architectures import get_architecture
from vetrina.models.checkpoint import load_checkpoint, save_checkpoint


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


@pytest.fixture
def no_export(monkeypatch):
    """Make the export fail loudly: an option refused "before any work" never reaches it."""
    from vetrina.converters import convert as convert_module

    def export_onnx(*args, **kwargs):
        raise AssertionError("exported although the options were bad")

    monkeypatch.setattr(convert_module, "export_onnx", export_onnx)


def _error(argv, capsys, *needles):
    code, _, err = _run(argv, capsys)
    assert code == 1, err
    assert err.startswith("vetrina: error:") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_unknown_arch(small_checkpoint, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    bare = tmp_path / "bare.pt"
    torch.save(load_checkpoint(small_checkpoint).state_dict, bare)
    _error(["convert", bare, "-o", out, "--arch", "resnet9000"], capsys, "unknown architecture")
    assert not out.exists()


def test_arch_contradicting_checkpoint(small_checkpoint, tmp_path, capsys):
    argv = ["convert", small_checkpoint, "-o", tmp_path / "m.onnx", "--arch", "defect-detector"]
    _error(argv, capsys, "contradicts the checkpoint", "'enhancer'")


def test_wrong_arch_for_bare_weights_lists_mismatches(small_checkpoint, tmp_path, capsys):
    bare = tmp_path / "bare.pt"
    torch.save(load_checkpoint(small_checkpoint).state_dict, bare)
    argv = ["convert", bare, "-o", tmp_path / "m.onnx", "--arch", "defect-detector"]
    _error(argv, capsys, "do not fit architecture 'defect-detector'", "missing:")


def test_bare_weights_of_unknown_format_name_arch(small_checkpoint, tmp_path, capsys):
    bare = tmp_path / "bare.pt"
    torch.save(load_checkpoint(small_checkpoint).state_dict, bare)
    _error(["convert", bare, "-o", tmp_path / "m.onnx"], capsys, "--arch")


def test_truncated_checkpoint(small_checkpoint, tmp_path, capsys):
    cut = tmp_path / "cut.pt"
    data = small_checkpoint.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    _error(["convert", cut, "-o", tmp_path / "m.onnx"], capsys, "truncated or corrupt")


def test_damaged_weights_fail_their_crc_before_loading(small_checkpoint, tmp_path, capsys):
    """Bytes flipped inside a weight tensor: PyTorch would load the garbage (it does not check
    the archive's CRCs); the archive check names the damaged member instead."""
    import zipfile

    with zipfile.ZipFile(small_checkpoint) as archive:
        member = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size > 64)
    data = bytearray(small_checkpoint.read_bytes())
    local = member.header_offset  # local header: name and extra lengths at +26 and +28
    name_len, extra_len = (
        int.from_bytes(data[local + k : local + k + 2], "little") for k in (26, 28)
    )
    start = local + 30 + name_len + extra_len  # the tensor's bytes (stored, not compressed)
    for k in range(8):  # 8 bytes in the middle of the tensor's stored data
        data[start + member.file_size // 2 + k] ^= 0x5A
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "m.onnx"
    _error(["convert", damaged, "-o", out], capsys, "fails its CRC-32 check", member.filename)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["png", "text"])
def test_not_a_checkpoint(tmp_path, capsys, kind):
    path = tmp_path / f"photo.{kind}"
    if kind == "png":
        _, data = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
        path.write_bytes(data.tobytes())
    else:
        path.write_text("weights: none\n")
    out = tmp_path / "m.onnx"
    _error(["convert", path, "-o", out], capsys, "not a PyTorch checkpoint")
    assert not out.exists()


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_refused_and_names_the_flag(small_checkpoint, tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": load_checkpoint(small_checkpoint).state_dict, "x": _Payload()}, evil)
    _error(["convert", evil, "-o", tmp_path / "m.onnx"], capsys, "pickled", "--trust-pickle")
    _error(["verify", tmp_path / "none.onnx", evil], capsys, "no such model file")


def test_missing_files(small_model, tmp_path, capsys):
    _error(["convert", tmp_path / "nope.pt", "-o", tmp_path / "m.onnx"], capsys, "no such")
    _error(["verify", small_model, tmp_path / "nope.pt"], capsys, "no such checkpoint file")
    junk = tmp_path / "junk.onnx"
    junk.write_text("not onnx")
    _error(["verify", junk, tmp_path / "nope.pt"], capsys, "not a readable ONNX model")


def test_static_breaking_the_size_rules(tmp_path, capsys):
    net = get_architecture("defect-detector").build({"channels": 4})
    ckpt = save_checkpoint(
        tmp_path / "det.pt",
        architecture="defect-detector",
        config={"channels": 4},
        state_dict=net.state_dict(),
        metadata={},
    )
    out = tmp_path / "m.onnx"
    _error(
        ["convert", ckpt, "-o", out, "--static", "100x100"],
        capsys,
        "--static 100x100: sides must be multiples of 8 for defect-detector; try 96x96 or 104x104",
    )
    _error(["convert", ckpt, "-o", out, "--static", "8x8"], capsys, "at least 16", "16x16")
    assert not out.exists()


def test_static_beyond_the_largest_side(small_checkpoint, tmp_path, capsys, no_export):
    out = tmp_path / "m.onnx"
    argv = ["convert", small_checkpoint, "-o", out, "--static", "100000x100000"]
    _error(argv, capsys, "--static 100000x100000: sides must be at most 16384 px")
    argv = ["convert", small_checkpoint, "-o", out, "--sizes", "64x64,20000x64"]
    _error(argv, capsys, "--sizes 20000x64: sides must be at most 16384 px")
    assert not out.exists()


def test_output_that_cannot_be_written_is_refused_up_front(
    small_checkpoint, tmp_path, capsys, no_export
):
    folder = tmp_path / "models"
    folder.mkdir()
    _error(["convert", small_checkpoint, "-o", folder], capsys, "is a folder, not a file",
           str(folder / "tiny-enhancer.onnx"))  # fmt: skip
    assert list(folder.iterdir()) == []  # no temporary file left in it either
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _error(["convert", small_checkpoint, "-o", blocker / "m.onnx"], capsys, "is a file, not a")
    # never over the checkpoint itself: named with -o, or the default for a .onnx "checkpoint"
    before = small_checkpoint.read_bytes()
    _error(["convert", small_checkpoint, "-o", small_checkpoint], capsys, "checkpoint itself")
    odd = tmp_path / "weights.onnx"
    odd.write_bytes(before)
    _error(["convert", odd], capsys, "checkpoint itself")
    assert small_checkpoint.read_bytes() == before and odd.read_bytes() == before


@pytest.mark.parametrize("value", ["abc", "0x5", "64"])
def test_malformed_static_is_a_usage_error(small_checkpoint, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as info:
        main(["convert", str(small_checkpoint), "-o", str(tmp_path / "m.onnx"), "--static", value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--static" in err and repr(value) in err and ("HEIGHTxWIDTH" in err or "at least" in err)


def test_bad_gate_value(small_model, small_checkpoint, capsys):
    argv = ["verify", small_model, small_checkpoint, "--min-ssim", "3"]
    _error(argv, capsys, "min_ssim must be within [-1, 1]")


def test_tampered_checkpoint_fails_verification(small_model, small_checkpoint, tmp_path, capsys):
    ckpt = load_checkpoint(small_checkpoint)
    state = dict(ckpt.state_dict)
    name = max((k for k in state if k.endswith("weight")), key=lambda k: state[k].numel())
    state[name] = state[name] * 1.05
    tampered = save_checkpoint(
        tmp_path / "tampered.pt",
        architecture=ckpt.architecture,
        config=ckpt.config,
        state_dict=state,
        metadata=ckpt.metadata,
    )
    report = tmp_path / "r.json"
    argv = ["verify", small_model, tampered, "--sizes", "32x40", "--report", report]
    code, out, err = _run(argv, capsys)
    assert code == 1
    assert "NO" in out and "not the one this model was converted from" in out
    assert err.startswith("vetrina: error:") and "beyond the fp32 gate" in err
    assert '"passed": false' in report.read_text()
    # The untouched checkpoint still passes: the failure is the tampering, not the tool.
    code, out, _ = _run(["verify", small_model, small_checkpoint, "--sizes", "32x40"], capsys)
    assert code == 0 and "parity passed" in out


def test_verify_against_another_architecture(small_model, tmp_path, capsys):
    net = get_architecture("defect-detector").build({"channels": 4})
    other = save_checkpoint(
        tmp_path / "det.pt",
        architecture="defect-detector",
        config={"channels": 4},
        state_dict=net.state_dict(),
        metadata={},
    )
    _error(["verify", small_model, other], capsys, "contradicts the checkpoint")
