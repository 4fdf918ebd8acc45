"""The CLI end to end: help, conversion, runs over files and folders, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from vetrina.cli import main


def _write(path, pixels):
    assert cv2.imwrite(str(path), pixels)
    return path


@pytest.fixture
def photo_folder(tmp_path):
    """Good PNG/JPEG/RGBA/grey files plus every kind of bad file."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "in"
    folder.mkdir()
    good = {
        "a.png": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
        "b.jpg": rng.integers(0, 256, (31, 45, 3), dtype=np.uint8),
        "c.png": rng.integers(0, 256, (40, 40, 4), dtype=np.uint8),
        "d.png": rng.integers(0, 256, (21, 33), dtype=np.uint8),
    }
    for name, px in good.items():
        _write(folder / name, px)
    png = cv2.imencode(".png", good["a.png"])[1].tobytes()
    jpg = cv2.imencode(".jpg", good["a.png"])[1].tobytes()
    (folder / "empty.png").write_bytes(b"")
    (folder / "cut.png").write_bytes(png[: len(png) // 2])
    (folder / "cut.jpg").write_bytes(jpg[: len(jpg) * 2 // 3])
    (folder / "text.png").write_text("definitely not an image")
    return folder, good


def test_help_for_every_command(capsys):
    for argv in (
        ["--help"],
        ["convert", "--help"],
        ["run", "--help"],
        ["inspect", "--help"],
        ["demo", "--help"],
        ["zoo", "--help"],
        ["zoo", "train", "--help"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
        assert "usage: vetrina" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--frobnicate"],
        ["bogus"],
        ["run", "m.onnx", "x.png"],
        ["run", "m.onnx", "x.png", "-o", "o", "--batch", "0"],
        ["run", "p.yaml", "x.png", "-o", "o", "--tile", "3"],
        ["run", "p.yaml", "x.png", "-o", "o", "--max-whole-mp", "nan"],
        ["run", "p.yaml", "x.png", "-o", "o", "--max-whole-mp", "0"],
    ],
)
def test_usage_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err and "--help" in err


def test_convert_prints_parity_and_writes_model(small_checkpoint, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    report = tmp_path / "r.json"
    assert main(["convert", str(small_checkpoint), "-o", str(out), "--report", str(report)]) == 0
    text = capsys.readouterr().out
    assert "PSNR" in text and "max abs" in text and "parity passed" in text
    assert out.is_file() and report.is_file()


def test_convert_over_gate_exits_nonzero(small_checkpoint, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code = main(["convert", str(small_checkpoint), "-o", str(out), "--min-psnr", "1000"])
    captured = capsys.readouterr()
    assert code == 1
    assert "NO" in captured.out and "beyond the gate" in captured.err
    assert not out.exists()


def test_convert_bad_checkpoint_one_line(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_text("nope")
    assert main(["convert", str(bad), "-o", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("vetrina: error:") and len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_run_folder_reports_bad_files_and_processes_the_rest(
    small_model, photo_folder, tmp_path, capsys
):
    folder, good = photo_folder
    out = tmp_path / "out"
    code = main(
        ["run", str(small_model), str(folder), str(tmp_path / "missing.png"), "-o", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 1
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 5
    for needle in (
        "empty",
        "cut.png: truncated",
        "cut.jpg: truncated",
        "text.png: not an image",
        "missing.png: no such file",
    ):
        assert any(needle in line for line in skipped), needle
    assert "Traceback" not in captured.err
    assert "4 written" in captured.out and "preprocess" in captured.out
    for name, px in good.items():
        result = cv2.imread(str(out / (name.rsplit(".", 1)[0] + ".png")), cv2.IMREAD_UNCHANGED)
        assert result.shape[:2] == px.shape[:2]
    rgba = cv2.imread(str(out / "c.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(rgba[:, :, 3], good["c.png"][:, :, 3])


def test_run_expands_quoted_globs_and_refuses_a_file_as_output_folder(
    small_model, photo_folder, tmp_path, capsys
):
    folder, _ = photo_folder
    out = tmp_path / "out"
    pattern = str(folder / "[ab].*")  # as a quoted pattern reaches us: no shell expansion
    code = main(["run", str(small_model), pattern, str(folder / "zz*.png"), "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert "zz*.png: no such file" in captured.err
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"x")
    code = main(["run", str(small_model), str(folder / "a.png"), "-o", str(taken)])
    err = capsys.readouterr().err
    assert code == 1 and "output folder" in err and "is a file" in err and "internal" not in err


def test_run_all_good_exits_zero_and_jpeg_output(small_model, photo_folder, tmp_path, capsys):
    folder, _ = photo_folder
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                str(small_model),
                str(folder / "a.png"),
                str(folder / "c.png"),
                "-o",
                str(out),
                "--format",
                "jpeg",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "c.jpg"]


def test_run_model_errors(tmp_path, capsys, photo_folder):
    folder, _ = photo_folder
    fake = tmp_path / "fake.onnx"
    fake.write_text("not onnx")
    assert main(["run", str(fake), str(folder), "-o", str(tmp_path / "o")]) == 1
    assert "cannot load the model" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "none.onnx"), str(folder), "-o", str(tmp_path / "o")]) == 1
    assert "no such model" in capsys.readouterr().err


def test_model_without_contract_is_refused(tmp_path, capsys, photo_folder):
    import onnx
    from onnx import TensorProto, helper

    folder, _ = photo_folder
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert main(["run", str(path), str(folder), "-o", str(tmp_path / "o")]) == 1
    assert "has no vetrina contract" in capsys.readouterr().err


def test_run_gpu_request_without_gpu_is_an_error(small_model, photo_folder, tmp_path, capsys):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    folder, _ = photo_folder
    assert (
        main(["run", str(small_model), str(folder), "-o", str(tmp_path / "o"), "--device", "cuda"])
        == 1
    )
    assert "CUDAExecutionProvider" in capsys.readouterr().err


def test_inspect(small_model, capsys):
    assert main(["inspect", str(small_model)]) == 0
    text = capsys.readouterr().out
    assert "role       editor" in text and "multiple of 2" in text and "passed" in text
    assert main(["inspect", str(small_model), "--json"]) == 0
    assert '"role": "editor"' in capsys.readouterr().out


def test_inspect_a_contract_with_a_partial_verification(small_model, tmp_path, capsys):
    """A hand-edited contract whose verification lacks numbers is shown, not a crash."""
    import dataclasses
    import shutil

    from vetrina.converters.convert import write_contract
    from vetrina.model import Model

    edited = tmp_path / "edited.onnx"
    shutil.copyfile(small_model, edited)
    contract = Model.open(small_model).contract
    write_contract(edited, dataclasses.replace(contract, verification={"passed": True}))
    assert main(["inspect", str(edited)]) == 0
    assert "verified   passed: max abs ?, min PSNR ? dB on ? cases" in capsys.readouterr().out


def test_console_script_installed():
    result = subprocess.run(
        [sys.executable, "-m", "vetrina.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("vetrina ")


def test_convert_without_torch_names_the_extra(small_checkpoint, tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "onnx", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_onnx)
    assert main(["convert", str(small_checkpoint), "-o", str(tmp_path / "m.onnx")]) == 1
    assert "vetrina[convert]" in capsys.readouterr().err


def test_run_png_compression_writes_the_same_pixels_smaller(
    small_model, photo_folder, tmp_path, capsys
):
    folder, _ = photo_folder
    sizes = {}
    for level in (None, 9):
        out = tmp_path / f"out-{level}"
        args = ["run", str(small_model), str(folder / "a.png"), str(folder / "c.png"), "-o"]
        extra = [] if level is None else ["--png-compression", str(level)]
        assert main([*args, str(out), *extra]) == 0
        sizes[level] = {p.name: p.stat().st_size for p in out.iterdir()}
    for name in sizes[None]:
        fast = cv2.imread(str(tmp_path / "out-None" / name), cv2.IMREAD_UNCHANGED)
        small = cv2.imread(str(tmp_path / "out-9" / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(small, fast)
        assert sizes[9][name] < sizes[None][name]
    jpeg = ["--format", "jpeg", "--png-compression", "6"]
    code = main(["run", str(small_model), str(folder / "a.png"), "-o", str(tmp_path / "j"), *jpeg])
    assert code != 0
    assert "PNG compression was given for jpeg" in capsys.readouterr().err


def test_a_model_named_in_any_script_still_gets_its_png_metadata(small_model, tmp_path):
    """The provenance names the model file; a name beyond Latin-1 goes into an iTXt chunk
    instead of failing every output."""
    import shutil

    from vetrina.imageio import png_text

    model = tmp_path / "\u6a21\u578b-\u0441\u0432\u0435\u0442.onnx"
    shutil.copyfile(small_model, model)
    (tmp_path / "p.yaml").write_text(f"stages:\n  - edit: {model.name}\n", encoding="utf-8")
    photo = tmp_path / "in.png"
    _write(photo, np.random.default_rng(5).integers(0, 256, (32, 48, 3), dtype=np.uint8))
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "p.yaml"), str(photo), "-o", str(out), "--no-progress"]) == 0
    (written,) = out.iterdir()
    assert model.name in png_text(written.read_bytes())["vetrina:models"]
