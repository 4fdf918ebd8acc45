"""``vetrina bench``: counts, percentiles, throughput, stability, JSON, plot, CLI, errors,
for models and for pipelines.

Runs are short (0.3 s) and no assertion depends on how fast the machine is. Pipelines use
only zoo:enhancer and zoo:gan (converted once per test run into the session's cache).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict

import cv2
import numpy as np
import pytest

from vetrina.bench import (
    EDITOR_STEPS,
    PIPELINE_STEPS_NOTE,
    BenchOptionError,
    BenchReport,
    PipelineInfo,
    bench,
    bench_model,
    bench_pipeline,
    fit_size,
)
from vetrina.bench_cli import add_bench_parser
from vetrina.bench_load import NOISY_CV, drive
from vetrina.bench_plot import plot
from vetrina.contract import METADATA_KEY, Contract, SpatialRules, TensorSpec
from vetrina.errors import ModelError
from vetrina.pipeline_spec import PipelineError, builtin_names
from vetrina.timing import StepTimes

DURATION = 0.3


@pytest.fixture(scope="module")
def report(small_model) -> BenchReport:
    return bench_model(
        small_model,
        batches=(1, 3),
        concurrency=(1, 2),
        duration=DURATION,
        warmup=0.1,
        size=(32, 48),
    )


def test_one_result_per_combination_in_order(report):
    assert [(r.batch, r.concurrency) for r in report.results] == [(1, 1), (1, 2), (3, 1), (3, 2)]
    assert report.mode == "editor" and report.role == "editor"
    assert report.steps == list(EDITOR_STEPS)
    assert report.size == (32, 48) and report.work_size == (32, 48)


def test_requests_images_and_step_calls_agree(report):
    for r in report.results:
        assert r.requests >= r.concurrency  # every client finished at least one request
        assert r.images == r.requests * r.batch
        assert sum(r.window_images) == r.images
        # decode/encode run per image; the model steps once per request (one batch each)
        assert r.step_calls["decode"] == r.step_calls["encode"] == r.images
        for step in ("preprocess", "inference", "postprocess"):
            assert r.step_calls[step] == r.requests


def test_percentiles_ordered_and_steps_inside_latency(report):
    for r in report.results:
        assert 0 < r.p50_ms <= r.p90_ms <= r.p99_ms <= r.max_ms
        assert r.mean_ms <= r.max_ms
        assert set(r.step_ms) == set(EDITOR_STEPS)
        assert all(ms >= 0 for ms in r.step_ms.values()) and r.step_ms["inference"] > 0
        # the steps are timed inside each request, so their sum cannot exceed its latency
        assert sum(r.step_ms.values()) <= r.mean_ms * (1 + 1e-9)


def test_throughput_and_stability_follow_from_the_counts(report):
    for r in report.results:
        assert r.elapsed_s >= DURATION  # clients send until the duration is over
        assert r.throughput == pytest.approx(r.images / r.elapsed_s, rel=1e-12)
        windows = len(r.window_images)
        assert windows >= 3 and len(r.window_throughput) == windows
        window_s = r.elapsed_s / windows
        assert r.window_throughput == pytest.approx([n / window_s for n in r.window_images])
        rates = np.array(r.window_throughput)
        assert r.cv == pytest.approx(rates.std() / rates.mean())
        assert r.noisy == (r.cv > NOISY_CV)
        assert (r.warning is not None) == r.noisy
        if r.noisy:
            assert "CV > 10%" in r.warning and "--duration" in r.warning
    assert report.warnings == [r.warning for r in report.results if r.noisy]


def test_memory_is_reported(report):
    for r in report.results:
        if r.peak_rss is None:  # no /proc and no getrusage: nothing to compare
            continue
        assert r.rss_before > 0 and r.rss_after > 0
        assert r.peak_rss >= r.rss_after
        assert r.peak_rss_scope in ("run", "process")


def test_table_has_a_row_and_a_step_line_per_combination(report):
    text = report.table()
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["batch", "conc"])
    for k, r in enumerate(report.results):
        row = lines[header + 1 + 2 * k].split()
        assert [int(v) for v in row[:4]] == [r.batch, r.concurrency, r.requests, r.images]
        assert float(row[4]) == pytest.approx(r.throughput, abs=0.05)
        assert lines[header + 2 + 2 * k].split()[:2] == ["mean", "ms/request:"]
        for step in EDITOR_STEPS:
            assert step in lines[header + 2 + 2 * k]
    assert sum(line.startswith("warning:") for line in lines) == len(report.warnings)


def test_json_round_trips(report):
    text = report.to_json()
    raw = json.loads(text)
    assert set(raw) == set(asdict(report))
    assert set(raw["results"][0]) == set(asdict(report.results[0]))
    again = BenchReport.from_json(text)
    assert again == report
    assert json.loads(again.to_json()) == raw


def test_plot_writes_a_png(report, tmp_path):
    out = plot(report, tmp_path / "sub" / "latency.png")
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (600, 960, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 2  # something was drawn


def test_plot_refuses_other_formats(report, tmp_path):
    with pytest.raises(BenchOptionError, match=r"\.png"):
        plot(report, tmp_path / "latency.jpg")
    assert not (tmp_path / "latency.jpg").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batches": (0,)}, "batch 0 is invalid"),
        ({"batches": ()}, "batch: give at least one value"),
        ({"batches": (1.5,)}, "batch 1.5 is invalid"),
        ({"concurrency": (2, 0)}, "concurrency 0 is invalid"),
        ({"duration": 0}, "duration 0 is invalid"),
        ({"duration": float("inf")}, "duration inf is invalid"),
        ({"warmup": -1}, "warmup -1 is invalid"),
        ({"size": (0, 16)}, "size"),
        ({"threads": 0}, "threads 0 is invalid"),
    ],
)
def test_invalid_options_are_refused(small_model, options, message):
    with pytest.raises(BenchOptionError, match=message) as info:
        bench_model(small_model, **options)
    assert isinstance(info.value, ValueError)  # plain API callers can catch ValueError
    assert "; " in str(info.value) or "give" in str(info.value)  # the message names the fix


def test_missing_file_and_missing_contract(tmp_path):
    onnx = pytest.importorskip("onnx")
    with pytest.raises(ModelError, match="no such model file"):
        bench_model(tmp_path / "none.onnx")
    path = tmp_path / "plain.onnx"
    onnx.save(_identity_graph(onnx), str(path))
    with pytest.raises(ModelError, match=r"has no vetrina contract.*vetrina convert"):
        bench_model(path)


def test_fit_size_keeps_the_rules():
    rules = SpatialRules(multiple_of=8, min_size=16, max_size=64)
    assert fit_size((37, 100), rules) == (40, 64)
    assert fit_size((1, 1), rules) == (16, 16)
    assert fit_size((17, 64), SpatialRules(multiple_of=2)) == (18, 64)


def test_session_path_for_a_generator(tmp_path):
    """z (N, 8) standard normal and an int64 label go through session.run; steps: inference."""
    onnx = pytest.importorskip("onnx")
    path = _generator(onnx, tmp_path / "gen.onnx")
    report = bench_model(path, batches=(1, 2), duration=0.2, warmup=0.05)
    assert report.mode == "session" and report.steps == ["inference"]
    assert report.work_size is None
    for r, batch in zip(report.results, (1, 2), strict=True):
        assert r.batch == batch and r.images == r.requests * batch
        assert r.step_calls == {"inference": r.requests}
        assert r.p50_ms <= r.p90_ms <= r.p99_ms <= r.max_ms


def test_session_path_for_a_detector_fits_the_size(tmp_path):
    onnx = pytest.importorskip("onnx")
    path = _detector(onnx, tmp_path / "det.onnx")
    report = bench_model(path, duration=0.2, warmup=0.0, size=(37, 70))
    assert report.mode == "session" and report.work_size == (40, 72)  # multiple of 8
    assert report.results[0].step_calls["inference"] == report.results[0].requests


def test_cli_prints_the_table_and_writes_json_and_plot(small_model, tmp_path, capsys):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    args = _parser().parse_args(
        [
            "bench",
            str(small_model),
            "--batch",
            "1,2",
            "--concurrency",
            "2",
            "--duration",
            "0.2",
            "--warmup",
            "0",
            "--size",
            "24x32",
            "--threads",
            "1",
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
        ]
    )
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert "img/s" in captured.out and f"wrote {out_json}" in captured.out
    assert "bench: batch 2, concurrency 2" in captured.err
    saved = BenchReport.from_json(out_json.read_text())
    assert [(r.batch, r.concurrency) for r in saved.results] == [(1, 2), (2, 2)]
    assert saved.size == (24, 32) and saved.threads == 1
    assert cv2.imread(str(out_png)) is not None


@pytest.mark.parametrize(
    "argv",
    [
        ["--batch", "0"],
        ["--batch", "1,x"],
        ["--concurrency", ""],
        ["--duration", "0"],
        ["--warmup", "-1"],
        ["--size", "32"],
        ["--device", "tpu"],
    ],
)
def test_cli_rejects_bad_options(small_model, argv, capsys):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["bench", str(small_model), *argv])
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_cli_refuses_a_non_png_plot_before_running(small_model, tmp_path):
    args = _parser().parse_args(["bench", str(small_model), "--plot", str(tmp_path / "a.svg")])
    with pytest.raises(BenchOptionError, match=r"name it with \.png"):
        args.func(args)


def test_on_start_runs_once_at_the_barrier_between_requests():
    """The start hook runs once, after every client's warm-up and before any measured
    request (a pipeline's pooled step times are reset there)."""
    events: list[str] = []

    def make_request():
        def request():
            events.append("request")
            return StepTimes()

        return request

    records, _ = drive(make_request, 2, 0.02, 0.05, on_start=lambda: events.append("start"))
    assert events.count("start") == 1
    assert events[events.index("start") + 1 :] == ["request"] * len(records)


@pytest.mark.parametrize("fail_at", ["setup", "warm-up", "measurement"])
def test_a_failing_client_stops_the_run_and_raises(fail_at):
    """One client failing (before, at or after the barrier) neither hangs the others nor is
    lost; the healthy client stops early instead of running out the 60 s."""
    made = []

    def make_request():
        made.append(1)
        failing = len(made) == 2
        if fail_at == "setup" and failing:
            raise RuntimeError("boom")

        def request():
            if failing:
                raise RuntimeError("boom")
            return StepTimes()

        return request

    warmup = 0.05 if fail_at == "warm-up" else 0.0
    with pytest.raises(RuntimeError, match="boom"):
        drive(make_request, 2, warmup, 60.0)


def test_import_does_not_load_torch():
    code = (
        "import sys, vetrina.bench, vetrina.bench_cli; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- pipelines -------------------------------------------------------------------------------

PHOTO_STEPS = ["decode", "preprocess", "1 edit:enhancer", "postprocess", "encode"]


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("pipelines") / "tiny.yaml"
    path.write_text("stages:\n  - edit: zoo:enhancer\n")
    return str(path)


@pytest.fixture(scope="module")
def pipeline_report(tiny_pipeline) -> BenchReport:
    return bench(
        tiny_pipeline,
        batches=(1, 2),
        concurrency=(1, 2),
        duration=DURATION,
        warmup=0.05,
        size=(32, 48),
    )


def test_pipeline_report_names_the_pipeline_and_its_steps(pipeline_report, tiny_pipeline):
    r = pipeline_report
    assert r.mode == "pipeline" and r.role == "pipeline" and r.model == tiny_pipeline
    assert r.pipeline.name == "tiny" and r.pipeline.input == "image"
    assert r.pipeline.stages == ["1 edit:enhancer"] and len(r.pipeline.models) == 1
    assert r.pipeline.describe[1] == "1 edit:enhancer"
    assert r.pipeline.output_format == "png" and r.pipeline.scale == 1
    assert r.steps == PHOTO_STEPS
    assert r.size == (32, 48) and r.work_size == (32, 48)
    assert [(x.batch, x.concurrency) for x in r.results] == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_pipeline_counts_agree_and_warm_up_steps_are_dropped(pipeline_report):
    for r in pipeline_report.results:
        assert r.requests >= r.concurrency and r.images == r.requests * r.batch
        assert sum(r.window_images) == r.images
        assert list(r.step_ms) == PHOTO_STEPS  # nothing unforeseen
        assert r.step_calls["decode"] == r.step_calls["encode"] == r.images
        # batch is the pipeline's batch size: one call per request; the shared pipeline's
        # warm-up calls (at least one per client) are not counted
        for step in ("preprocess", "1 edit:enhancer", "postprocess"):
            assert r.step_calls[step] == r.requests
        assert r.step_ms["1 edit:enhancer"] > 0
        assert sum(r.step_ms.values()) <= r.mean_ms * (1 + 1e-9)
        assert 0 < r.p50_ms <= r.p90_ms <= r.p99_ms <= r.max_ms
        assert r.throughput == pytest.approx(r.images / r.elapsed_s, rel=1e-12)


def test_pipeline_table_header_and_rows(pipeline_report):
    lines = pipeline_report.table().splitlines()
    assert lines[0].startswith("pipeline  tiny (photo, 1 model): 1 edit:enhancer")
    assert any(line.startswith("steps") and PIPELINE_STEPS_NOTE in line for line in lines)
    assert any("input 32x48 (work 32x48, output 32x48)" in line for line in lines)
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["batch", "conc"])
    for k, r in enumerate(pipeline_report.results):
        row = lines[header + 1 + 2 * k].split()
        assert [int(v) for v in row[:4]] == [r.batch, r.concurrency, r.requests, r.images]
        assert "1 edit:enhancer" in lines[header + 2 + 2 * k]


def test_pipeline_json_round_trips_and_plots(pipeline_report, tmp_path):
    again = BenchReport.from_json(pipeline_report.to_json())
    assert again == pipeline_report and isinstance(again.pipeline, PipelineInfo)
    assert json.loads(again.to_json()) == json.loads(pipeline_report.to_json())
    assert cv2.imread(str(plot(again, tmp_path / "p.png"))) is not None
    # reports written before pipelines were benchmarked still read back
    raw = json.loads(BenchReport.from_json(pipeline_report.to_json()).to_json())
    raw.pop("pipeline")
    assert BenchReport.from_json(json.dumps(raw)).pipeline is None


def test_pipeline_steps_with_hand_off_tiles_and_composite(tmp_path):
    """Two stages (a hand-off), tiles (tile_side below the photo) and a background
    (composite, JPEG out): every step the pipeline records is foreseen, in order."""
    path = tmp_path / "two.yaml"
    path.write_text(
        "stages:\n  - edit: zoo:upscaler\n  - edit: zoo:upscaler\n"
        "output: {background: white, format: jpeg}\n"
    )
    report = bench_pipeline(path, duration=0.1, warmup=0.0, size=(40, 40), tile_side=16)
    assert report.steps == [
        "decode",
        "preprocess",
        "tile split",
        "1 edit:upscaler",
        "hand-off",
        "2 edit:upscaler",
        "tile blend",
        "postprocess",
        "composite",
        "encode",
    ]
    assert report.pipeline.output_format == "jpeg" and report.pipeline.tile_side == 16
    r = report.results[0]
    assert list(r.step_ms) == report.steps
    assert r.step_calls["tile blend"] == r.step_calls["postprocess"] == r.requests
    assert r.step_calls["1 edit:upscaler"] == r.step_calls["tile split"] > r.requests
    assert "in tiles of <= 16" in report.table()
    # the enhancer normalises over the whole image: never tiled, and no tile steps foreseen
    path.write_text("stages:\n  - edit: zoo:enhancer\n")
    whole = bench_pipeline(path, duration=0.1, warmup=0.0, size=(40, 40), tile_side=16)
    assert whole.pipeline.tile_side is None and "tile split" not in whole.steps
    assert list(whole.results[0].step_ms) == whole.steps


def test_generation_pipeline(tmp_path):
    path = tmp_path / "gen.yaml"
    path.write_text("input: generate\nstages:\n  - generate: zoo:gan\n")
    report = bench(path, batches=(1, 3), concurrency=(2,), duration=0.2, warmup=0.02)
    assert report.mode == "generate" and report.pipeline.input == "generate"
    assert report.steps == ["1 generate:gan", "postprocess", "encode"]
    assert report.work_size == (64, 64)
    assert set(report.pipeline.labels) == {"category", "colour"}  # the first valid names
    for r, batch in zip(report.results, (1, 3), strict=True):
        assert r.batch == batch and r.images == r.requests * batch
        assert r.step_calls == {
            "1 generate:gan": r.requests,
            "postprocess": r.requests,
            "encode": r.images,
        }
        assert sum(r.step_ms.values()) <= r.mean_ms * (1 + 1e-9)
    assert "generates 64x64 (output 64x64)" in report.table()
    assert BenchReport.from_json(report.to_json()) == report


def test_unknown_pipeline_names_the_shipped_ones():
    with pytest.raises(PipelineError, match="no pipeline named 'no-such'") as info:
        bench("no-such", duration=0.1)
    for name in builtin_names():
        assert name in str(info.value)
    with pytest.raises(ModelError, match="no such model file"):
        bench("no-such.onnx", duration=0.1)  # .onnx: a model, not a pipeline


def test_pipeline_options_are_checked_before_loading():
    with pytest.raises(BenchOptionError, match="tile_side 8 is invalid"):
        bench_pipeline("no-such", tile_side=8)
    with pytest.raises(BenchOptionError, match="concurrency 0 is invalid"):
        bench_pipeline("no-such", concurrency=(0,))


def test_cli_benchmarks_a_pipeline(tiny_pipeline, tmp_path, capsys):
    out_json = tmp_path / "p.json"
    argv = ["bench", tiny_pipeline, "--duration", "0.1", "--warmup", "0", "--size", "16x16"]
    args = _parser().parse_args([*argv, "--json", str(out_json)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("pipeline  tiny") and PIPELINE_STEPS_NOTE in out
    saved = BenchReport.from_json(out_json.read_text())
    assert saved.pipeline.name == "tiny" and saved.size == (16, 16)


# -- helpers ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vetrina")
    sub = parser.add_subparsers(dest="command", required=True)
    add_bench_parser(sub)
    return parser


def _identity_graph(onnx):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _save_with_contract(onnx, graph, contract: Contract, path):
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {METADATA_KEY: contract.to_json()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _generator(onnx, path):
    """(z [N, 8], category [N] int64) -> image [N, 3, 4, 4] in [-1, 1]."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((8, 48)).astype(np.float32), "w"
    )
    shape = numpy_helper.from_array(np.array([-1, 3, 4, 4], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["category"], ["cat_f"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["cat_f", "axis"], ["cat_col"]),
            helper.make_node("MatMul", ["z", "w"], ["h"]),
            helper.make_node("Add", ["h", "cat_col"], ["h2"]),
            helper.make_node("Tanh", ["h2"], ["t"]),
            helper.make_node("Reshape", ["t", "shape"], ["image"]),
        ],
        "generator",
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("category", TensorProto.INT64, ["N"]),
        ],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 4, 4])],
        initializer=[weight, shape, numpy_helper.from_array(np.array([1], np.int64), "axis")],
    )
    contract = Contract(
        role="generator",
        inputs=(
            TensorSpec(name="z", semantic="z", layout="NC", channels="", range=None),
            TensorSpec(
                name="category",
                semantic="label",
                layout="N",
                channels="",
                range=None,
                dtype="int64",
            ),
        ),
        outputs=(TensorSpec(name="image", range=(-1.0, 1.0)),),
        spatial=SpatialRules(min_size=4, max_size=4),
    )
    return _save_with_contract(onnx, graph, contract, path)


def _detector(onnx, path):
    """image [N, 3, H, W] -> mask [N, 1, H, W] (channel mean), sides a multiple of 8."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["mask"], axes=[1], keepdims=1)],
        "detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1, "H", "W"])],
    )
    contract = Contract(
        role="detector",
        inputs=(TensorSpec(name="image"),),
        outputs=(TensorSpec(name="mask", semantic="mask", channels="L"),),
        spatial=SpatialRules(multiple_of=8, min_size=16),
    )
    return _save_with_contract(onnx, graph, contract, path)
