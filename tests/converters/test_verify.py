"""Verification: metrics against independent references, gates, reports, `vetrina verify`."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import onnx
import pytest
import torch

from vetrina.cli import main
from vetrina.contract import METADATA_KEY, Contract, TensorSpec
from vetrina.converters.convert import write_contract
from vetrina.converters.inputs import catalog_feeds, label_count, latent_size, random_feeds
from vetrina.converters.metrics import batch_ssim, delta_e_2000, to_uint8
from vetrina.converters.sizes import MAX_SIDE, check_size, parse_size, parse_sizes
from vetrina.converters.verify import (
    DEFAULT_GATES,
    CaseResult,
    Gate,
    VerificationReport,
    compare_output,
    gate_for,
    verification_inputs,
    verify_file,
)
from vetrina.errors import ConversionError
from vetrina.models import catalog
from vetrina.models.architectures import get_architecture

RGB01 = TensorSpec(name="out", semantic="image", channels="RGB", range=(0.0, 1.0))


# --- independent references -------------------------------------------------------------


def _ssim_reference(a: np.ndarray, b: np.ndarray, data_range: float, win: int = 7) -> float:
    """Wang et al. SSIM with a uniform win x win window and sample covariances, averaged over
    the valid (fully covered) positions and the channels of a CHW image."""
    from numpy.lib.stride_tricks import sliding_window_view

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = win * win
    scores = []
    for x, y in zip(a.astype(np.float64), b.astype(np.float64), strict=True):

        def mean(z):
            return sliding_window_view(z, (win, win)).mean(axis=(-1, -2))

        mx, my = mean(x), mean(y)
        vx = (mean(x * x) - mx * mx) * n / (n - 1)
        vy = (mean(y * y) - my * my) * n / (n - 1)
        cxy = (mean(x * y) - mx * my) * n / (n - 1)
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        scores.append(s.mean())
    return float(np.mean(scores))


def _ciede2000_reference(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 written from Sharma, Wu & Dalal (2005), eqs. 1-22."""
    l1, a1, b1 = np.moveaxis(lab1.astype(np.float64), -1, 0)
    l2, a2, b2 = np.moveaxis(lab2.astype(np.float64), -1, 0)
    cbar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(cbar**7 / (cbar**7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dlp, dcp = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0, dh)
    dhp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    lbar, cbarp = (l1 + l2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    hbar = np.where(
        np.abs(h1p - h2p) > 180, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2), hsum / 2
    )
    hbar = np.where(c1p * c2p == 0, hsum, hbar)
    t = (
        1
        - 0.17 * np.cos(np.radians(hbar - 30))
        + 0.24 * np.cos(np.radians(2 * hbar))
        + 0.32 * np.cos(np.radians(3 * hbar + 6))
        - 0.20 * np.cos(np.radians(4 * hbar - 63))
    )
    sl = 1 + 0.015 * (lbar - 50) ** 2 / np.sqrt(20 + (lbar - 50) ** 2)
    sc, sh = 1 + 0.045 * cbarp, 1 + 0.015 * cbarp * t
    rt = (
        -2
        * np.sqrt(cbarp**7 / (cbarp**7 + 25.0**7))
        * np.sin(np.radians(60 * np.exp(-(((hbar - 275) / 25) ** 2))))
    )
    return np.sqrt(
        (dlp / sl) ** 2 + (dcp / sc) ** 2 + (dhp / sh) ** 2 + rt * (dcp / sc) * (dhp / sh)
    )


def test_ciede2000_reference_matches_sharma_table():
    pairs = np.array(
        [
            [[50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485]],
            [[50.0, 0.0, 0.0], [50.0, -1.0, 2.0]],
            [[60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387]],
        ]
    )
    want = [2.0425, 2.3669, 1.2644]
    np.testing.assert_allclose(_ciede2000_reference(pairs[:, 0], pairs[:, 1]), want, atol=1e-4)


# --- metrics -----------------------------------------------------------------------------


def test_to_uint8_maps_the_range_and_rounds():
    x = np.array([-1.0, -0.5, 0.0, 0.999, 1.0, 2.0], np.float32)
    assert to_uint8(x, (-1.0, 1.0)).tolist() == [0, 64, 128, 255, 255, 255]  # 63.75 -> 64


def test_ssim_matches_reference_and_takes_the_worst_image():
    rng = np.random.default_rng(0)
    ref = rng.random((3, 3, 24, 30)).astype(np.float32)
    noisy = np.clip(ref + rng.normal(0, [[[[0.01]]], [[[0.1]]], [[[0.03]]]], ref.shape), 0, 1)
    got = batch_ssim(noisy.astype(np.float32), ref, 1.0)
    per_image = [_ssim_reference(n, r, 1.0) for n, r in zip(noisy, ref, strict=True)]
    assert got == pytest.approx(min(per_image), abs=1e-6)
    assert per_image.index(min(per_image)) == 1
    assert batch_ssim(ref, ref, 1.0) == pytest.approx(1.0)


def test_ssim_of_tiny_images_still_defined():
    a = np.zeros((1, 1, 2, 2), np.float32)
    assert batch_ssim(a, a, 1.0) == pytest.approx(1.0)
    assert batch_ssim(a + 1.0, a, 1.0) < 0.1


def test_delta_e_matches_opencv_lab_and_sharma_formula():
    rng = np.random.default_rng(1)
    expected = rng.random((2, 3, 16, 16)).astype(np.float32)
    actual = np.clip(expected + rng.normal(0, 0.02, expected.shape), 0, 1).astype(np.float32)
    mean, worst = delta_e_2000(actual, expected, RGB01)
    labs = []
    for x in (expected, actual):
        u = to_uint8(x, (0.0, 1.0)).transpose(0, 2, 3, 1)
        labs.append(
            np.stack([cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2Lab) for img in u])
        )
    ref = _ciede2000_reference(labs[0], labs[1])
    assert mean == pytest.approx(ref.mean(), rel=2e-3)
    assert worst == pytest.approx(ref.max(), rel=1e-2)
    assert 0.1 < mean < 5


def test_delta_e_respects_channel_order_and_range():
    rng = np.random.default_rng(2)
    a = rng.random((1, 3, 8, 8)).astype(np.float32)
    b = rng.random((1, 3, 8, 8)).astype(np.float32)
    rgb = delta_e_2000(a, b, RGB01)
    bgr_spec = TensorSpec(name="o", semantic="image", channels="BGR", range=(0.0, 1.0))
    assert delta_e_2000(a[:, ::-1], b[:, ::-1], bgr_spec) == pytest.approx(rgb)
    signed = TensorSpec(name="o", semantic="image", channels="RGB", range=(-1.0, 1.0))
    assert delta_e_2000(a * 2 - 1, b * 2 - 1, signed) == pytest.approx(rgb, abs=1e-6)
    assert delta_e_2000(a, a, RGB01) == (0.0, 0.0)


# --- gates and reports -------------------------------------------------------------------


def test_gate_validation_and_overrides():
    with pytest.raises(ValueError, match="max_abs"):
        Gate(max_abs=-1)
    with pytest.raises(ValueError, match="min_ssim"):
        Gate(min_ssim=1.5)
    with pytest.raises(ValueError, match="max_delta_e"):
        Gate(max_delta_e=-0.1)
    with pytest.raises(ValueError, match="NaN"):
        Gate(min_psnr=float("nan"))
    with pytest.raises(ValueError, match="number"):
        Gate(min_psnr="60")  # type: ignore[arg-type]
    fp16 = gate_for("fp16", min_psnr=45.0, max_abs=None)
    assert fp16.min_psnr == 45.0 and fp16.min_ssim == DEFAULT_GATES["fp16"].min_ssim
    assert math.isinf(fp16.max_abs)
    with pytest.raises(ConversionError, match="unknown precision"):
        gate_for("fp8")
    with pytest.raises(ConversionError, match="min_ssim"):
        gate_for("int8", min_ssim=2.0)
    strict = [DEFAULT_GATES[p] for p in ("fp32", "fp16", "int8")]
    assert strict[0].min_psnr > strict[1].min_psnr > strict[2].min_psnr
    assert strict[0].max_delta_e < strict[1].max_delta_e < strict[2].max_delta_e


def test_compare_output_names_each_failed_metric():
    rng = np.random.default_rng(3)
    exp = rng.random((2, 3, 16, 16)).astype(np.float32)
    act = np.clip(exp + rng.normal(0, 0.05, exp.shape), 0, 1).astype(np.float32)
    case = compare_output("c", RGB01, exp, act, DEFAULT_GATES["fp32"])
    assert not case.passed
    text = " ".join(case.failed)
    assert "max abs" in text and "PSNR" in text and "SSIM" in text and "dE2000" in text
    assert case.max_abs == pytest.approx(np.abs(act - exp).max())
    ok = compare_output("c", RGB01, exp, exp.copy(), DEFAULT_GATES["fp32"])
    assert ok.passed and ok.ssim == pytest.approx(1.0) and ok.delta_e_mean == 0.0
    wrong = compare_output("c", RGB01, exp, act[:, :, :8], DEFAULT_GATES["fp32"])
    assert not wrong.passed and "shape" in wrong.failed[0]


def test_compare_output_mask_and_logits_get_only_metrics_that_apply():
    rng = np.random.default_rng(4)
    mask = TensorSpec(name="mask", semantic="mask", channels="L", range=(0.0, 1.0))
    m = rng.random((1, 1, 16, 16)).astype(np.float32)
    case = compare_output("m", mask, m, m + 1e-6, DEFAULT_GATES["fp32"])
    assert case.ssim is not None and case.delta_e_mean is None and case.passed
    logits = TensorSpec(name="l", semantic="label", layout="NC", channels="", range=None)
    x = rng.normal(size=(4, 8)).astype(np.float32)
    y = x.copy()
    y[0] = -y[0]  # flips that row's argmax
    case = compare_output("l", logits, x, y, DEFAULT_GATES["fp16"])
    assert case.ssim is None and case.delta_e_mean is None
    assert case.agreement == pytest.approx(0.75)


def test_report_json_summary_and_table_handle_infinities():
    gate = DEFAULT_GATES["fp16"]
    report = VerificationReport(gate=gate, precision="fp16")
    report.cases.append(CaseResult("a", (1, 3, 8, 8), 0.0, 0.0, math.inf, True, ssim=1.0))
    report.cases.append(
        CaseResult("b", (1, 3, 8, 8), 0.2, 0.01, 20.0, False, 0.5, 4.0, 9.0, failed=("x",))
    )
    data = json.loads(report.to_json())  # allow_nan=False: no Infinity tokens
    assert data["passed"] is False and data["gate"]["max_abs"] == "inf"
    assert data["cases"][0]["psnr_db"] == "inf"
    summary = report.summary()
    assert summary["min_psnr_db"] == 20.0 and summary["min_ssim"] == 0.5
    assert summary["max_mean_delta_e"] == 4.0 and summary["max_delta_e"] == 9.0
    assert summary["failed"] == ["b: x"]
    table = report.table()
    assert "SSIM" in table and "dE" in table and "NO" in table and "gate (fp16)" in table


def test_gate_line_says_max_abs_is_relative_to_the_value_range():
    # the column shows raw units (2.49e-03 on a 0..255 output passes 0.001 x 255)
    spec = TensorSpec(name="y", semantic="image", channels="RGB", range=(0.0, 255.0))
    exp = np.full((1, 3, 16, 16), 100.0, np.float32)
    act = exp.copy()
    act[0, 0, 0, 0] += 2.49e-3
    case = compare_output("c", spec, exp, act, DEFAULT_GATES["fp32"])
    assert case.passed and case.max_abs == pytest.approx(2.49e-3, rel=1e-2)
    report = VerificationReport(gate=DEFAULT_GATES["fp32"], precision="fp32", cases=[case])
    (line,) = [ln for ln in report.table().splitlines() if ln.startswith("gate (fp32)")]
    assert "max abs <= 0.001 x the output's value range" in line
    assert "PSNR >= 60 dB" in line


# --- sizes -------------------------------------------------------------------------------


def test_parse_and_check_sizes():
    assert parse_size("96x128") == (96, 128)
    assert parse_sizes("64x96, 128X128") == [(64, 96), (128, 128)]
    for bad in ("abc", "0x5", "12", "4x", "-4x4", ""):
        with pytest.raises(ValueError, match=r"HEIGHTxWIDTH|at least 1"):
            parse_size(bad)
    spec = get_architecture("defect-detector")
    assert check_size(spec, (96, 104)) == (96, 104)
    with pytest.raises(
        ConversionError, match=r"multiples of 8 for defect-detector.*96x96 or 104x104"
    ):
        check_size(spec, (100, 100), option="--static")
    with pytest.raises(ConversionError, match=r"at least 16 .*16x16"):
        check_size(spec, (8, 8))
    gan = get_architecture("cgan-generator")
    with pytest.raises(ConversionError, match="at most 64"):
        check_size(gan, (64, 128))


def test_sizes_beyond_max_side_are_refused():
    spec = get_architecture("enhancer")  # no max_size of its own
    assert spec.spatial.max_size is None
    assert check_size(spec, (MAX_SIDE, 64)) == (MAX_SIDE, 64)
    with pytest.raises(ConversionError, match=rf"100000x100000: sides must be at most {MAX_SIDE}"):
        check_size(spec, (100000, 100000), option="--static")
    with pytest.raises(ConversionError, match=rf"try {MAX_SIDE}x64"):
        check_size(spec, (MAX_SIDE + 2, 64))


# --- inputs ------------------------------------------------------------------------------


def test_generator_cases_cover_every_label():
    spec = get_architecture("cgan-generator")
    net = spec.build({"z_dim": 6, "channels": 8})
    assert latent_size(net, spec.inputs[0]) == 6
    assert [label_count(net, t) for t in spec.inputs[1:]] == [8, 11]
    cases = verification_inputs(spec, net)
    name, feeds = cases[0]
    assert name == "every-label-b11"
    assert feeds["z"].shape == (11, 6) and feeds["z"].dtype == np.float32
    assert set(feeds["category"].tolist()) == set(range(8))
    assert set(feeds["colour"].tolist()) == set(range(11))
    assert all(f["category"].dtype == np.int64 for _, f in cases)
    with pytest.raises(ConversionError, match="--sizes"):
        verification_inputs(spec, net, sizes=[(64, 64)])


def test_nchw_latent_and_probe():
    spec = get_architecture("dcgan-generator")
    net = spec.build({"nz": 7, "ngf": 4})
    feeds = random_feeds(net, spec, batch=2, size=None, rng=np.random.default_rng(0))
    assert feeds["z"].shape == (2, 7, 1, 1)

    class Bare(torch.nn.Module):  # a one-input net with no width attribute: probed
        def __init__(self):
            super().__init__()
            self.main = torch.nn.ConvTranspose2d(5, 3, 4)

        def forward(self, z):
            return self.main(z)

    assert latent_size(Bare(), spec.inputs[0]) == 5


def test_inpainter_catalog_case_marks_the_defects():
    spec = get_architecture("inpainter")
    feeds = catalog_feeds(None, spec, batch=2, size=(64, 96))
    image, mask = feeds["image"], feeds["mask"]
    assert image.shape == (2, 3, 64, 96) and mask.shape == (2, 1, 64, 96)
    assert set(np.unique(mask).tolist()) == {0.0, 1.0}
    seeds = catalog.split_seeds("val", 2)
    clean = np.stack([catalog.render(int(s), (64, 96)).image for s in seeds])
    clean = clean.transpose(0, 3, 1, 2) / 255.0
    changed = np.abs(image - clean).max(axis=1, keepdims=True) * 255
    # Every masked pixel was visibly changed (the defect module's own definition).
    assert (changed[mask > 0] >= 15).mean() > 0.95


# --- verify_file / vetrina verify ----------------------------------------------------------


def test_verify_file_reads_precision_and_arch_from_contract(small_model, small_checkpoint):
    report = verify_file(small_model, small_checkpoint, sizes=[(32, 40)])
    assert report.passed and report.precision == "fp32"
    assert [c.name for c in report.cases] == ["random-32x40", "catalog-32x40"]
    assert not report.notes
    with pytest.raises(ConversionError, match="contradicts the model's contract"):
        verify_file(small_model, small_checkpoint, precision="fp16")


def _fp16_copy(src, dst):
    from onnxconverter_common import float16

    model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    meta = {p.key: p.value for p in model.metadata_props}
    old = Contract.from_json(meta[METADATA_KEY])
    contract = Contract(
        role=old.role,
        inputs=old.inputs,
        outputs=old.outputs,
        spatial=old.spatial,
        provenance={**old.provenance, "precision": "fp16"},
    )
    write_contract(dst, contract)
    return dst


def test_verify_fp16_model_with_its_own_gate(small_model, small_checkpoint, tmp_path):
    half = _fp16_copy(small_model, tmp_path / "half.onnx")
    report = verify_file(half, small_checkpoint, sizes=[(32, 40)])
    assert report.precision == "fp16" and report.gate == DEFAULT_GATES["fp16"]
    assert report.passed, report.table()
    assert 0 < report.worst_max_abs < 0.05  # fp16 really changed the numbers
    strict = verify_file(half, small_checkpoint, sizes=[(32, 40)], gate=DEFAULT_GATES["fp32"])
    assert strict.gate == DEFAULT_GATES["fp32"] and strict.precision == "fp16"
    # Same seeded inputs, same numbers: only the verdict depends on the gate.
    assert [c.max_abs for c in strict.cases] == [c.max_abs for c in report.cases]


def test_cli_verify_prints_table_and_writes_report(small_model, small_checkpoint, tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = ["verify", str(small_model), str(small_checkpoint), "--sizes", "32x40"]
    assert main([*argv, "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SSIM" in text and "dE mean" in text and "parity passed (fp32" in text
    assert json.loads(out.read_text())["passed"] is True
    assert main([*argv, "--min-psnr", "1000"]) == 1
    captured = capsys.readouterr()
    assert "NO" in captured.out and "beyond the fp32 gate" in captured.err


def test_max_abs_gate_is_a_fraction_of_the_output_range():
    # 1e-3 of the range: 0.255 on a 0..255 output (TransformerNet), 0.001 on [0, 1]
    gate = Gate(max_abs=1e-3)
    expected = np.full((1, 3, 8, 8), 100.0, np.float32)
    wide = TensorSpec(name="styled", range=(0.0, 255.0))
    assert compare_output("ok", wide, expected, expected + 0.2, gate).passed
    failed = compare_output("bad", wide, expected, expected + 0.3, gate)
    assert not failed.passed and "of the range" in failed.failed[0]
    unit = TensorSpec(name="image", range=(0.0, 1.0))
    small = expected / 255.0
    assert not compare_output("unit", unit, small, small + 0.002, gate).passed
