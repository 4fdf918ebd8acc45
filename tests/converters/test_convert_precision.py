"""`vetrina convert --precision fp16|int8`: the rewrite, its verification and its contract."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest

from vetrina.cli import main
from vetrina.contract import METADATA_KEY, Contract
from vetrina.converters.convert import convert
from vetrina.converters.quantize import qdq_summary
from vetrina.converters.verify import verify_file
from vetrina.errors import ConversionError, InputError


def _contract(path) -> Contract:
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return Contract.from_json(meta[METADATA_KEY])


def _io_types(path) -> set[int]:
    graph = onnx.load(str(path)).graph
    return {v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]}


def _tensor_types(path) -> set[int]:
    return {t.data_type for t in onnx.load(str(path)).graph.initializer}


def test_fp16_conversion_keeps_fp32_edges_and_records_its_precision(small_checkpoint, tmp_path):
    result = convert(small_checkpoint, tmp_path / "e16.onnx", precision="fp16")
    assert result.report.passed and result.report.precision == "fp16"
    assert any("fp16-emulated" in note for note in result.report.notes)
    assert _io_types(result.output) == {onnx.TensorProto.FLOAT}
    assert onnx.TensorProto.FLOAT16 in _tensor_types(result.output)
    contract = _contract(result.output)
    assert contract.provenance["precision"] == "fp16"
    assert contract.verification["precision"] == "fp16"
    reduced = contract.provenance["reduced_precision"]
    assert reduced["precision"] == "fp16" and isinstance(reduced["islands"], list)
    # no atomic-write temporary name (".e16.onnx.XXXX.tmp") anywhere in the contract
    assert "path" not in reduced and ".tmp" not in contract.to_json()
    # `vetrina verify` reads the precision (and so the gate) from the contract
    again = verify_file(result.output, small_checkpoint)
    assert again.precision == "fp16" and again.passed


def test_int8_cpu_conversion_is_uint8_activation_qdq_within_its_gate(small_checkpoint, tmp_path):
    out = tmp_path / "e8.onnx"
    result = convert(small_checkpoint, out, precision="int8", target="cpu", calibration="catalog")
    assert result.report.passed and result.report.precision == "int8"
    summary = qdq_summary(onnx.load(str(result.output)))
    assert summary.quantize_nodes > 0 and summary.activation_types == {"uint8"}
    reduced = _contract(result.output).provenance["reduced_precision"]
    assert reduced["target"] == "cpu" and reduced["calibration"]


@pytest.mark.slow
def test_int8_tensorrt_flavour_is_symmetric(small_checkpoint, tmp_path):
    calibration = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    result = convert(
        small_checkpoint,
        tmp_path / "e8t.onnx",
        precision="int8",
        target="tensorrt",
        calibration=calibration,
        gate_overrides={"min_psnr": 20.0, "min_ssim": 0.5, "max_delta_e": 10.0},
    )
    summary = qdq_summary(onnx.load(str(result.output)))
    assert summary.activation_types == {"int8"} and not summary.nonzero_zero_points


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"precision": "int8", "calibration": "catalog"}, "int8 needs --target"),
        ({"precision": "int8", "target": "cpu"}, "int8 needs calibration images"),
        ({"precision": "fp16", "calibration": "catalog"}, "applies to int8 only"),
        ({"precision": "fp32", "target": "gpu"}, "unknown target"),
        ({"precision": "fp32", "keep_fp32": ["Conv_0"]}, "fp16 and int8 only"),
        ({"precision": "bf16"}, "unknown precision"),
        ({"precision": "fp16", "speed_islands": False}, "--no-speed-islands applies"),
        (
            {
                "precision": "int8",
                "target": "tensorrt",
                "calibration": "catalog",
                "speed_islands": False,
            },
            "--target cpu only",
        ),
    ],
)
def test_contradictory_precision_options_are_refused_before_any_work(
    small_checkpoint, tmp_path, options, message
):
    with pytest.raises(ConversionError, match=message):
        convert(small_checkpoint, tmp_path / "x.onnx", **options)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_int8_without_target_exits_nonzero_with_the_fix(small_checkpoint, tmp_path, capsys):
    out = tmp_path / "x.onnx"
    code = main(["convert", str(small_checkpoint), "-o", str(out), "--precision", "int8"])
    assert code != 0 and not out.exists()
    assert "--target" in capsys.readouterr().err


def test_cli_missing_calibration_folder_is_a_clear_error(small_checkpoint, tmp_path, capsys):
    out = tmp_path / "x.onnx"
    argv = ["convert", str(small_checkpoint), "-o", str(out), "--precision", "int8"]
    code = main([*argv, "--target", "cpu", "--calib", str(tmp_path / "nowhere")])
    assert code != 0 and not out.exists()
    assert "nowhere" in capsys.readouterr().err


@pytest.fixture
def no_export(monkeypatch):
    """Make the export fail loudly: options refused "before any work" never reach it."""
    from vetrina.converters import convert as convert_module

    def export_onnx(*args, **kwargs):
        raise AssertionError("exported although the options were bad")

    monkeypatch.setattr(convert_module, "export_onnx", export_onnx)


def test_bad_calibration_folder_is_refused_before_the_export(
    small_checkpoint, tmp_path, capsys, no_export
):
    out = tmp_path / "x.onnx"
    argv = ["convert", str(small_checkpoint), "-o", str(out), "--precision", "int8"]
    argv += ["--target", "tensorrt", "--calib"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    for folder, message in (
        (tmp_path / "nowhere", "does not exist"),
        (empty, "holds no image files"),
        (empty / "notes.txt", "is not a folder"),
    ):
        assert main([*argv, str(folder)]) == 1
        err = capsys.readouterr().err
        assert message in err and str(folder) in err and "internal error" not in err
    with pytest.raises(InputError, match="holds no image files"):  # the Python API too
        convert(small_checkpoint, out, precision="int8", target="cpu", calibration=str(empty))
    assert not out.exists()


def test_calibration_that_does_not_fit_the_inputs_is_refused_before_the_export(
    tiny_generator, small_checkpoint, tmp_path, no_export
):
    out = tmp_path / "x.onnx"
    int8 = {"precision": "int8", "target": "cpu"}
    with pytest.raises(ConversionError, match="--calib latents"):
        convert(tiny_generator, out, calibration="catalog", **int8)
    photos = tmp_path / "photos"
    photos.mkdir()
    _, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    (photos / "a.png").write_bytes(png.tobytes())
    with pytest.raises(ConversionError, match="--calib latents"):
        convert(tiny_generator, out, calibration=photos, **int8)
    with pytest.raises(ConversionError, match="latents is for generators"):
        convert(small_checkpoint, out, calibration="latents", **int8)
    assert not out.exists()


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from vetrina.models.architectures import get_architecture
    from vetrina.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = {"z_dim": 8, "channels": 8}
    module = get_architecture("cgan-generator").build(config)
    path = tmp_path_factory.mktemp("gen") / "tiny-gan.pt"
    return save_checkpoint(
        path,
        architecture="cgan-generator",
        config=config,
        state_dict=module.state_dict(),
        metadata={"purpose": "tests"},
    )


def test_generators_calibrate_int8_on_latents_not_images(tiny_generator, tmp_path):
    loose = {"min_psnr": 10.0, "min_ssim": 0.0, "max_delta_e": 50.0}
    out = tmp_path / "g8.onnx"
    with pytest.raises(ConversionError, match="--calib latents"):
        convert(tiny_generator, out, precision="int8", target="cpu", calibration="catalog")
    result = convert(
        tiny_generator,
        out,
        precision="int8",
        target="cpu",
        calibration="latents",
        gate_overrides=loose,
    )
    assert qdq_summary(onnx.load(str(result.output))).quantize_nodes > 0
    assert {i.name for i in onnx.load(str(result.output)).graph.input} == {
        "z",
        "category",
        "colour",
    }


@pytest.mark.slow
def test_speed_islands_keep_the_slow_int8_convs_fp32_unless_turned_off(tmp_path, capsys):
    """A style net's last conv is split for the CPU into a 9x1 conv, a depthwise 1x9 shift and
    a 1x1 sum, which ONNX Runtime runs slower in int8: kept fp32 by default, quantized with
    the flag off; the contract says which, and which exact int8 rewrites were made."""
    from test_cpu_graph import _random_checkpoint

    ckpt = _random_checkpoint(
        tmp_path / "style.pt", "transformer-net", {"channels": 8, "blocks": 1}, seed=5
    )
    loose = {"min_psnr": 10.0, "min_ssim": 0.0, "max_delta_e": 80.0}
    common = {"precision": "int8", "target": "cpu", "calibration": "catalog", "sizes": [(32, 48)]}
    kept = convert(ckpt, tmp_path / "kept.onnx", gate_overrides=loose, **common)
    reduced = kept.contract.provenance["reduced_precision"]
    slow = [n for n, why in reduced["reasons"].items() if "slower in int8" in why]
    assert slow and set(slow) <= set(reduced["islands"])
    assert kept.contract.provenance["speed_islands"] is True
    out = tmp_path / "all.onnx"
    argv = ["convert", str(ckpt), "-o", str(out), "--precision", "int8", "--target", "cpu"]
    gate = ["--min-psnr", "10", "--min-ssim", "0", "--max-delta-e", "80"]
    code = main([*argv, "--calib", "catalog", "--sizes", "32x48", "--no-speed-islands", *gate])
    assert code == 0
    printed = capsys.readouterr().out
    contract = _contract(out)
    rewrites = contract.provenance["reduced_precision"]["rewrites"]
    assert rewrites["nchw_nearest_upsample"] == 2
    assert rewrites["pad_in_uint8"] == 8  # all its reflection pads, one per conv
    listed = ", ".join(f"{name} x{count}" for name, count in sorted(rewrites.items()))
    assert f"int8 graph rewrites (for speed, same function): {listed}" in printed
    assert contract.provenance["speed_islands"] is False
    reasons = contract.provenance["reduced_precision"].get("reasons", {})
    assert not [n for n, why in reasons.items() if "slower in int8" in why]


def test_pytorch_runs_once_per_case_for_every_trial_and_the_final_check(
    small_checkpoint, tmp_path, monkeypatch
):
    """The island search's trials and the final verification share PyTorch's outputs."""
    import torch

    from vetrina.converters import reduced
    from vetrina.converters.verify import precision_cases
    from vetrina.models.architectures import get_architecture

    module_class = type(get_architecture("enhancer").build({"channels": 8, "blocks": 1}))
    calls = []  # PyTorch runs of the whole net once the export is done

    def count(module, inputs, output):
        if isinstance(module, module_class) and counting:
            calls.append(1)

    real = reduced.reduce_precision
    counting, trials = False, []

    def with_extra_trials(source, output, precision, *, passes, **kwargs):
        nonlocal counting
        counting = True
        trials.extend([passes(source), passes(source)])  # two candidates, as a search judges
        return real(source, output, precision, passes=passes, **kwargs)

    monkeypatch.setattr(reduced, "reduce_precision", with_extra_trials)
    hook = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        result = convert(small_checkpoint, tmp_path / "e16.onnx", precision="fp16")
    finally:
        hook.remove()
    assert result.report.passed and trials == [True, True]
    cases = precision_cases(get_architecture("enhancer"), None, None, "fp16")
    assert len(calls) == len(cases) == len(result.report.cases)
