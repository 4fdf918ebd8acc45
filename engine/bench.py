"""Benchmark a converted model or a whole pipeline: latency percentiles, throughput,
per-step times, memory.

In the spirit of trtexec / perf_analyzer, for every (batch, concurrency) combination:
``concurrency`` closed-loop client threads (each sends its next request when the previous
one is answered) share one freshly opened model session (or pipeline), warm up for ``warmup``
seconds, then all start measuring together (a barrier) and keep sending requests of ``batch``
images until an answer arrives ``duration`` seconds or more after that start. Every request
sent after the start is counted and awaited; every client sends at least one.

* Image models (roles editor/upscaler) run the whole path a service runs per request:
  decode (PNG bytes -> pixels), preprocess, inference, postprocess (through
  :class:`~vetrina.editor.Editor`), encode (pixels -> PNG bytes).
* Other roles (generator, detector, inpainter, classifier) are timed at the session level:
  seeded random inputs shaped from the contract, one ``session.run`` per request.
* Photo pipelines (:class:`~vetrina.pipeline.Pipeline`, ``input: image``) run decode, then
  ``Pipeline.edit`` (preprocess, each stage, hand-offs, postprocess, composite, tile steps),
  then encode in the pipeline's output format.
* Generation pipelines (``input: generate``) run ``Pipeline.generate`` on ``batch`` requests
  (seeds counting up, the first valid name of every label), then encode each image.

The client threads of a pipeline run share one :class:`~vetrina.pipeline.Pipeline` (each
pipeline opens its own ONNX Runtime sessions, too costly per thread), so its step times are
pooled: a step's mean is its total time over all threads divided by the requests.

Latency is the wall time of one request (``time.perf_counter`` around the whole request,
never the time it waited to be sent). Throughput is counted images over the elapsed time
(the common start to the last answer). Stability: the elapsed time is split into equal
windows and the coefficient of variation of the windows' throughput is reported; above
:data:`~vetrina.bench_load.NOISY_CV` the run is flagged noisy (the client threads and these
statistics live in :mod:`.bench_load`). Memory: resident set size before opening the model,
after the run, and its peak during the run (VmHWM, reset per combination where Linux allows
it; :mod:`.process_memory`); on GPU devices also the device memory in use
(:mod:`.gpu_memory`). The chart of ``--plot`` is drawn by :mod:`.bench_plot`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import platform
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .bench_load import BenchResult, Request, drive, summarise
from .contract import SpatialRules, TensorSpec
from .editor import IMAGE_ROLES, Editor
from .errors import InputError, ModelError, VetrinaError
from .gpu_memory import MemorySampler, device_memory_reader
from .imageio import decode_image, encode_image
from .model import Model
from .process_memory import current_rss, peak_rss, reset_peak_rss
from .timing import StepTimes

EDITOR_STEPS = ("decode", "preprocess", "inference", "postprocess", "encode")
SESSION_STEPS = ("inference",)
PIPELINE_STEPS_NOTE = "mean per request, threads share one pipeline"
"""How pipeline step times are pooled (the step line of a pipeline report's table)."""
SEED = 0


class BenchOptionError(VetrinaError, ValueError):
    """An invalid benchmark option (also a ValueError for callers of the Python API)."""


@dataclass
class PipelineInfo:
    """What a pipeline report benchmarked (:attr:`BenchReport.pipeline`)."""

    name: str
    input: str
    """'image' (photos in) or 'generate' (requests in)."""
    stages: list[str]
    """Stage labels in order, e.g. ``["1 clean:detector+inpainter", "2 edit:enhancer"]``."""
    describe: list[str]
    """:meth:`Pipeline.describe` lines: entry, stages, hand-offs, exit."""
    models: list[str]
    """The ONNX files the pipeline opened."""
    scale: int
    """Output size / entry size."""
    output_format: str
    """What the encode step writes: png, jpeg or webp (the pipeline's output format)."""
    quality: int
    tile_side: int | None
    png_compression: int | None = None
    """The PNG zlib level the encode step uses (None: OpenCV's fast default)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Generation pipelines: the label names every request asks for."""


@dataclass
class BenchReport:
    """Every combination's :class:`BenchResult` plus what was benchmarked and where."""

    model: str
    """The model file, or the pipeline as given (shipped name or YAML path)."""
    role: str
    """The model's role; 'pipeline' for pipelines."""
    mode: str
    """'editor' (decode..encode through the Editor), 'session' (raw session.run),
    'pipeline' (decode, Pipeline.edit, encode) or 'generate' (Pipeline.generate, encode)."""
    device: str
    threads: int | None
    size: tuple[int, int]
    work_size: tuple[int, int] | None
    """Height x width the model (or the pipeline's first stage) computes at; for generation
    pipelines the generator's output size (None: no image input, or not known up front)."""
    duration_s: float
    warmup_s: float
    steps: list[str]
    results: list[BenchResult] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)
    pipeline: PipelineInfo | None = None
    """Set for pipeline reports."""

    @property
    def warnings(self) -> list[str]:
        """Warnings of the noisy combinations."""
        return [r.warning for r in self.results if r.warning]

    @property
    def title(self) -> str:
        """A short name of what was benchmarked (the pipeline's name or the model's file)."""
        return self.pipeline.name if self.pipeline is not None else Path(self.model).name

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> BenchReport:
        """Read back what :meth:`to_json` wrote."""
        raw = json.loads(text)
        raw["size"] = tuple(raw["size"])
        if raw["work_size"] is not None:
            raw["work_size"] = tuple(raw["work_size"])
        raw["results"] = [BenchResult(**r) for r in raw["results"]]
        if raw.get("pipeline") is not None:
            raw["pipeline"] = PipelineInfo(**raw["pipeline"])
        return cls(**raw)

    def table(self) -> str:
        """A fixed-width table: one row per combination, its per-step line, then warnings."""
        lines = self._pipeline_header() if self.pipeline is not None else self._model_header()
        lines += [
            f"{'batch':>5}  {'conc':>4}  {'requests':>8}  {'images':>6}  {'img/s':>8}  "
            f"{'p50 ms':>8}  {'p90 ms':>8}  {'p99 ms':>8}  {'max ms':>8}  {'CV %':>5}  "
            f"{'peak RSS MiB':>12}" + ("  GPU MiB (device)" if self._gpu_memory else ""),
        ]
        for r in self.results:
            peak = "-" if r.peak_rss is None else f"{r.peak_rss / 2**20:.1f}"
            lines.append(
                f"{r.batch:>5}  {r.concurrency:>4}  {r.requests:>8}  {r.images:>6}  "
                f"{r.throughput:>8.1f}  {r.p50_ms:>8.2f}  {r.p90_ms:>8.2f}  {r.p99_ms:>8.2f}  "
                f"{r.max_ms:>8.2f}  {r.cv * 100:>5.1f}{'!' if r.noisy else ' '} {peak:>12}"
                + (f"  {_mib(r.gpu_memory_peak):>17}" if self._gpu_memory else "")
            )
            lines += _wrap(
                f"{'':>13}mean ms/request:",
                [f"{name} {ms:.2f}" for name, ms in r.step_ms.items()],
                indent=31,
            )
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    @property
    def _gpu_memory(self) -> bool:
        return any(r.gpu_memory_peak is not None for r in self.results)

    def _model_header(self) -> list[str]:
        work = f" (work {_hw(self.work_size)})" if self.work_size and self.mode == "editor" else ""
        return [
            f"model     {self.model} ({self.role}, {self.mode} path: {' > '.join(self.steps)})",
            f"device    {self.device}, threads {self.threads or 'default'}, input "
            f"{_hw(self.size) if self.mode == 'editor' else _hw(self.work_size)}{work}, "
            f"warm-up {self.warmup_s:g} s, {self.duration_s:g} s per run",
        ]

    def _pipeline_header(self) -> list[str]:
        info = self.pipeline
        assert info is not None
        count = len(info.models)
        lines = [
            f"pipeline  {info.name} ({'photo' if info.input == 'image' else 'generation'}, "
            f"{count} model{'s' if count != 1 else ''}): {' > '.join(info.stages)}",
            *(f"{'':>10}{line}" for line in info.describe),
        ]
        if info.input == "image":
            out = (self.size[0] * info.scale, self.size[1] * info.scale)
            tiled = (
                info.tile_side is not None
                and self.work_size is not None
                and max(self.work_size) > info.tile_side
            )
            tiles = f" in tiles of <= {info.tile_side}" if tiled else ""
            shape = f"input {_hw(self.size)} (work {_hw(self.work_size)}{tiles}, output {_hw(out)})"
        else:
            work = self.work_size
            out = None if work is None else (work[0] * info.scale, work[1] * info.scale)
            labels = ", ".join(f"{k}={v}" for k, v in info.labels.items()) or "no labels"
            shape = f"generates {_hw(work)} (output {_hw(out)}), {labels}"
        lines += [
            f"device    {self.device}, threads {self.threads or 'default'}, {shape}, "
            f"encode {info.output_format}{_encode_setting(info)}, "
            f"warm-up {self.warmup_s:g} s, "
            f"{self.duration_s:g} s per run",
            f"path      {' > '.join(self.steps)}",
            f"steps     {PIPELINE_STEPS_NOTE} (a step's total time over all threads / requests)",
        ]
        return lines


def bench(target: str | os.PathLike[str], **options: Any) -> BenchReport:
    """Benchmark ``target``: a model if its name ends with ``.onnx`` (:func:`bench_model`),
    else a pipeline, by shipped name or YAML path (:func:`bench_pipeline`)."""
    if is_model_target(target):
        return bench_model(target, **options)
    return bench_pipeline(target, **options)


def is_model_target(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` names a model (``*.onnx``) rather than a pipeline."""
    return os.fspath(target).lower().endswith(".onnx")


def bench_model(
    path: str | os.PathLike[str],
    *,
    batches: Iterable[int] = (1,),
    concurrency: Iterable[int] = (1,),
    duration: float = 5.0,
    warmup: float = 1.0,
    size: tuple[int, int] = (256, 256),
    threads: int | None = None,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Benchmark the model at ``path`` for every (batch, concurrency) combination.

    ``size`` is the height x width of the synthetic inputs; ``progress`` gets one line per
    combination before it runs (e.g. to show progress on stderr).
    """
    batches = _check_counts("batch", batches)
    levels = _check_counts("concurrency", concurrency)
    _check_options(duration, warmup, size, threads)
    size = (int(size[0]), int(size[1]))
    probe = Model.open(path, device=device, threads=threads)  # file, contract, device checks
    mode = "editor" if probe.contract.role in IMAGE_ROLES else "session"
    report = BenchReport(
        model=str(probe.path),
        role=probe.contract.role,
        mode=mode,
        device=device,
        threads=threads,
        size=size,
        work_size=_work_size(probe, mode, size),
        duration_s=float(duration),
        warmup_s=float(warmup),
        steps=list(EDITOR_STEPS if mode == "editor" else SESSION_STEPS),
        host=_host(probe.session),
    )
    del probe
    payloads = _png_payloads(max(batches), size) if mode == "editor" else []

    def setup(batch: int) -> _Setup:
        model = Model.open(path, device=device, threads=threads)
        shared, on_start = _device_times(model)
        if mode == "editor":
            return _Setup(lambda: _editor_request(model, batch, payloads[:batch]), on_start, shared)
        feeds = _session_feeds(model, batch, size)
        return _Setup(lambda: _session_request(model, feeds), on_start, shared)

    _run_all(report, batches, levels, setup, progress)
    return report


def bench_pipeline(
    ref: str | os.PathLike[str],
    *,
    batches: Iterable[int] = (1,),
    concurrency: Iterable[int] = (1,),
    duration: float = 5.0,
    warmup: float = 1.0,
    size: tuple[int, int] = (256, 256),
    threads: int | None = None,
    device: str = "cpu",
    tile_side: int | None = 1024,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Benchmark a pipeline (shipped name or YAML path) for every (batch, concurrency)
    combination.

    Photo pipelines get ``size`` (height x width) synthetic photos, processed at their own
    size (no ``max_side``; above ``tile_side`` in tiles); generation pipelines ignore
    ``size``. ``batch`` is also the pipeline's batch size, so one request is one call of each
    model. Zoo models the pipeline names are converted (once, before any timing) on first use;
    ``progress`` gets those messages and one line per combination.
    """
    from .pipeline import Pipeline

    batches = _check_counts("batch", batches)
    levels = _check_counts("concurrency", concurrency)
    _check_options(duration, warmup, size, threads)
    if tile_side is not None and (
        isinstance(tile_side, bool) or not isinstance(tile_side, int) or tile_side < 16
    ):
        raise BenchOptionError(
            f"tile_side {tile_side!r} is invalid", hint="give an integer >= 16, or None"
        )
    size = (int(size[0]), int(size[1]))
    options: dict[str, Any] = {
        "device": device,
        "threads": threads,
        "max_side": None,
        "tile_side": tile_side,
        "log": progress,
    }
    probe = Pipeline.load(ref, batch_size=1, **options)  # file, models, hand-offs, device
    generates = probe.source is not None
    work = probe.source.size if probe.source is not None else probe.working_size(*size)
    labels = _first_labels(probe)
    output = probe.spec.output
    info = PipelineInfo(
        name=probe.spec.name,
        input=probe.spec.input,
        stages=_stage_labels(probe),
        describe=probe.describe(),
        models=[str(m.path) for m in probe.models],
        scale=int(probe.scale),
        output_format=str(output["format"]),
        quality=int(output["quality"]),
        png_compression=output["png_compression"],
        tile_side=probe.tile_side,
        labels=labels,
    )
    report = BenchReport(
        model=os.fspath(ref),
        role="pipeline",
        mode="generate" if generates else "pipeline",
        device=device,
        threads=threads,
        size=size,
        work_size=work,
        duration_s=float(duration),
        warmup_s=float(warmup),
        steps=_pipeline_steps(probe, work),
        host=_host(probe.models[0].session),
        pipeline=info,
    )
    del probe
    payloads = [] if generates else _png_payloads(max(batches), size)
    encode = _encoder(info)
    options["log"] = None  # converted by the probe: nothing more to say

    def setup(batch: int) -> _Setup:
        pipeline = Pipeline.load(ref, batch_size=batch, **options)
        if generates:
            seeds = itertools.count(SEED)  # shared by the clients; next() is atomic

            def make_request() -> Request:
                return _generation_request(pipeline, batch, labels, seeds, encode)

        else:

            def make_request() -> Request:
                return _pipeline_request(pipeline, payloads[:batch], encode)

        def on_start() -> None:
            # at the barrier: every client is between requests, so nothing is lost; the
            # warm-up's step times are dropped and the run's are pooled from here on
            pipeline.times = StepTimes()

        return _Setup(make_request, on_start=on_start, shared=lambda: pipeline.times)

    _run_all(report, batches, levels, setup, progress)
    return report


def _device_times(
    model: Model,
) -> tuple[Callable[[], StepTimes] | None, Callable[[], None] | None]:
    """For a session that times its GPU work with CUDA events (native TensorRT: host-to-device,
    compute, device-to-host as ``device h2d`` ...), where to read those times and how to drop
    the warm-up's; (None, None) for sessions without."""
    session = model.session
    if not isinstance(getattr(session, "device_times", None), StepTimes):
        return None, None

    def on_start() -> None:
        session.device_times = StepTimes()  # warm-up's times dropped

    def shared() -> StepTimes:
        out = StepTimes()
        for name, secs in session.device_times.seconds.items():
            out.add(f"device {name}", secs, session.device_times.calls[name])
        return out

    return shared, on_start


@dataclass
class _Setup:
    """One combination's target, opened afresh: how each client makes its request function,
    what to do when the measurement starts, and where shared step times are kept."""

    make_request: Callable[[], Request]
    on_start: Callable[[], None] | None = None
    shared: Callable[[], StepTimes] | None = None


def _run_all(
    report: BenchReport,
    batches: list[int],
    levels: list[int],
    setup: Callable[[int], _Setup],
    progress: Callable[[str], None] | None,
) -> None:
    for batch in batches:
        for clients in levels:
            if progress is not None:
                progress(
                    f"bench: batch {batch}, concurrency {clients}: {report.warmup_s:g} s "
                    f"warm-up + {report.duration_s:g} s"
                )
            report.results.append(_bench_one(report, batch, clients, setup))


def _bench_one(
    report: BenchReport, batch: int, clients: int, setup: Callable[[int], _Setup]
) -> BenchResult:
    """Open the target afresh, drive it, and summarise one combination."""
    rss_before = current_rss()
    reset = reset_peak_rss()
    target = setup(batch)
    sampler = MemorySampler(device_memory_reader()) if report.device != "cpu" else None
    with sampler if sampler is not None else contextlib.nullcontext():
        records, t0 = drive(
            target.make_request, clients, report.warmup_s, report.duration_s, target.on_start
        )
    shared = target.shared() if target.shared is not None else None
    result = summarise(records, t0, batch, clients, report.steps, shared)
    result.rss_before, result.rss_after = rss_before, current_rss()
    # VmHWM is not updated on every page release (and per-thread RSS counters lag), so it
    # can read a little below the RSS just seen: the peak is at least what was observed.
    peaks = [v for v in (peak_rss(), result.rss_after) if v is not None]
    result.peak_rss = max(peaks) if peaks else None
    result.peak_rss_scope = "run" if reset else "process"
    result.gpu_memory_peak = sampler.peak if sampler is not None else None
    return result


# -- requests --------------------------------------------------------------------------------


def _editor_request(model: Model, batch: int, payloads: list[bytes]) -> Request:
    """One client's request: decode ``batch`` PNGs, edit them as one batch, encode to PNG."""
    editor = Editor(model, max_side=None, batch_size=batch)

    def request() -> StepTimes:
        times = StepTimes()
        editor.times = times  # this client's editor: no other thread writes these times
        images = []
        for data in payloads:
            with times.step("decode"):
                images.append(decode_image(data, source="bench payload").pixels)
        outputs = editor.edit(images, order="BGR")
        for out in outputs:
            with times.step("encode"):
                ok, _ = cv2.imencode(".png", out)
            if not ok:
                raise InputError(f"OpenCV could not encode a {out.shape} output as PNG")
        return times

    return request


def _session_request(model: Model, feeds: dict[str, np.ndarray]) -> Request:
    """One client's request: one ``session.run`` on the prepared inputs."""

    def request() -> StepTimes:
        times = StepTimes()
        with times.step("inference"):
            model.session.run(feeds)
        return times

    return request


Encoder = Callable[[np.ndarray], bytes]


def _encode_setting(info: PipelineInfo) -> str:
    if info.output_format != "png":
        return f" (quality {info.quality})"
    return "" if info.png_compression is None else f" (zlib level {info.png_compression})"


def _encoder(info: PipelineInfo) -> Encoder:
    """BGR(A) uint8 pixels -> the bytes a service would send (the pipeline's format)."""
    fmt, quality, level = info.output_format, info.quality, info.png_compression

    def encode(pixels: np.ndarray) -> bytes:
        return encode_image(pixels, fmt, quality=quality, png_compression=level)

    return encode


def _pipeline_request(pipeline: Any, payloads: list[bytes], encode: Encoder) -> Request:
    """One client's request: decode the PNGs, run them through the (shared) pipeline as one
    batch, encode the results. The pipeline's own steps go to its shared times."""

    def request() -> StepTimes:
        times = StepTimes()
        images = []
        for data in payloads:
            with times.step("decode"):
                images.append(decode_image(data, source="bench payload").pixels)
        for out in pipeline.edit(images, order="BGR"):
            with times.step("encode"):
                encode(out)
        return times

    return request


def _generation_request(
    pipeline: Any,
    batch: int,
    labels: dict[str, str],
    seeds: Iterable[int],
    encode: Encoder,
) -> Request:
    """One client's request: ``batch`` generation requests (the next seeds, fixed labels)
    through the (shared) pipeline, then each image encoded."""
    from .pipeline import GenerationRequest

    seeds = iter(seeds)

    def request() -> StepTimes:
        times = StepTimes()
        asks = [GenerationRequest(next(seeds), labels) for _ in range(batch)]
        for out in pipeline.generate(asks, output_order="BGR"):
            with times.step("encode"):
                encode(out)
        return times

    return request


# -- memory ----------------------------------------------------------------------------------


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


# -- synthetic inputs ------------------------------------------------------------------------


def synthetic_images(count: int, size: tuple[int, int], seed: int = SEED) -> list[np.ndarray]:
    """Deterministic smooth uint8 RGB images (blurred noise: photo-like for PNG and models)."""
    rng = np.random.default_rng(seed)
    return [
        cv2.GaussianBlur(rng.integers(0, 256, (*size, 3), dtype=np.uint8), (0, 0), 2.0)
        for _ in range(count)
    ]


def _png_payloads(count: int, size: tuple[int, int]) -> list[bytes]:
    """The synthetic images as PNG bytes (what a service receives), decoded later by
    :func:`~vetrina.imageio.decode_image`, the decoder of ``vetrina run`` and the services."""
    payloads = []
    for rgb in synthetic_images(count, size):
        ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
        if not ok:
            raise InputError(f"OpenCV could not encode a {rgb.shape} input as PNG")
        payloads.append(data.tobytes())
    return payloads


def _session_feeds(model: Model, batch: int, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Seeded inputs for every session input: z standard normal, labels int64 zeros,
    images and masks uniform in the contract range, at ``size`` fitted to the size rules."""
    rng = np.random.default_rng(SEED)
    specs = {s.name: s for s in model.contract.inputs}
    feeds = {}
    for info in model.session.inputs:
        spec = specs.get(info.name)
        if spec is None:
            raise ModelError(
                f"{model.path}: input {info.name!r} is not in the model contract, so the "
                "benchmark cannot synthesise it",
                hint="re-convert the model with 'vetrina convert'",
            )
        shape = _input_shape(model, spec, info.shape, batch, size)
        feeds[info.name] = _random_tensor(spec, shape, info.dtype, rng)
    return feeds


def _input_shape(
    model: Model,
    spec: TensorSpec,
    dims: tuple[int | None, ...],
    batch: int,
    size: tuple[int, int],
) -> tuple[int, ...]:
    """The concrete shape of one input: batch first, dynamic sides from ``size``."""
    shape = list(dims)
    if shape:
        shape[0] = batch
    if spec.layout == "NCHW" and len(shape) == 4:
        pictorial = spec.semantic in ("image", "mask")
        sides = fit_size(size, model.contract.spatial) if pictorial else (1, 1)
        defaults = (1 if spec.channels == "L" else 3, *sides)
        shape[1:] = [d if d is not None else v for d, v in zip(shape[1:], defaults, strict=True)]
    if any(d is None for d in shape):
        raise ModelError(
            f"{model.path}: input {spec.name!r} has shape {dims}; the benchmark cannot guess "
            "its dynamic dimensions",
            hint="export the model with static non-batch dimensions",
        )
    return tuple(int(d) for d in shape)


def _random_tensor(
    spec: TensorSpec, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator
) -> np.ndarray:
    if spec.semantic == "label" or dtype.kind in "iu":
        return np.zeros(shape, dtype=dtype)
    if spec.semantic == "z" or spec.range is None:
        return rng.standard_normal(shape).astype(dtype)
    low, high = spec.range
    return rng.uniform(low, high, shape).astype(dtype)


def fit_size(size: tuple[int, int], rules: SpatialRules) -> tuple[int, int]:
    """``size`` moved to the nearest sides that keep the model's size rules."""

    def fit(side: int) -> int:
        step = rules.multiple_of
        side = max(step, int(side / step + 0.5) * step)
        if side < rules.min_size:
            side = -(-rules.min_size // step) * step
        if rules.max_size is not None and side > rules.max_size:
            side = max(step, rules.max_size // step * step)
        return side

    return fit(size[0]), fit(size[1])


def _work_size(model: Model, mode: str, size: tuple[int, int]) -> tuple[int, int] | None:
    """The height x width the model computes at; also validates the Editor path early."""
    if mode == "editor":
        return Editor(model, max_side=None).working_size(*size)
    dims = {info.name: info.shape for info in model.session.inputs}
    for spec in model.contract.inputs:
        if spec.semantic in ("image", "mask") and spec.layout == "NCHW":
            shape = _input_shape(model, spec, dims[spec.name], 1, size)
            return shape[2], shape[3]
    return None


def _stage_labels(pipeline: Any) -> list[str]:
    """The step names of the pipeline's stages, numbered as its times record them."""
    labels = [f"1 {pipeline.source.label}"] if pipeline.source is not None else []
    first = len(labels) + 1
    return labels + [f"{i + first} {stage.label}" for i, stage in enumerate(pipeline.stages)]


def _pipeline_steps(pipeline: Any, work: tuple[int, int] | None) -> list[str]:
    """The steps a request goes through, in order (as :class:`Pipeline` names its times)."""
    generates = pipeline.source is not None
    tiled = (
        not generates
        and pipeline.tile_side is not None
        and work is not None
        and max(work) > pipeline.tile_side
    )
    labels = _stage_labels(pipeline)
    steps = [labels.pop(0)] if generates else ["decode", "preprocess"]
    if tiled:
        steps.append("tile split")
    for label, handoff in zip(labels, pipeline.handoffs, strict=True):
        if handoff is not None and "hand-off" not in steps:
            steps.append("hand-off")
        steps.append(label)
    if tiled:
        steps.append("tile blend")
    steps.append("postprocess")
    if pipeline.spec.output.get("background") is not None:
        steps.append("composite")
    return [*steps, "encode"]


def _first_labels(pipeline: Any) -> dict[str, str]:
    """For a generation pipeline, the first valid name of every label input."""
    if pipeline.source is None:
        return {}
    return {t.name: t.labels[0] for t in pipeline.source.label_inputs if t.labels}


# -- validation and environment --------------------------------------------------------------


def _check_counts(name: str, values: Iterable[int]) -> list[int]:
    """A non-empty list of distinct positive ints, in the given order."""
    try:
        items = list(values)
    except TypeError:
        raise BenchOptionError(
            f"{name} must be a list of positive integers, got {values!r}"
        ) from None
    if not items:
        raise BenchOptionError(f"{name}: give at least one value, e.g. {name}=(1, 4)")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise BenchOptionError(
                f"{name} {v!r} is invalid", hint=f"every {name} must be an integer >= 1"
            )
    return list(dict.fromkeys(int(v) for v in items))


def _check_options(
    duration: float, warmup: float, size: tuple[int, int], threads: int | None
) -> None:
    if not isinstance(duration, (int, float)) or not 0 < duration < math.inf:
        raise BenchOptionError(
            f"duration {duration!r} is invalid", hint="give a duration in seconds > 0, e.g. 5"
        )
    if not isinstance(warmup, (int, float)) or not 0 <= warmup < math.inf:
        raise BenchOptionError(
            f"warmup {warmup!r} is invalid", hint="give a warm-up in seconds >= 0, e.g. 1"
        )
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in size)
    ):
        raise BenchOptionError(
            f"size {size!r} is invalid", hint="give (height, width) in pixels, e.g. (256, 256)"
        )
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise BenchOptionError(
            f"threads {threads!r} is invalid", hint="give an integer >= 1, or None for the default"
        )


def _host(session: Any) -> dict[str, Any]:
    """Where the numbers were measured, for comparing reports."""
    ort = sys.modules.get("onnxruntime")
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "onnxruntime": getattr(ort, "__version__", None),
        "providers": list(getattr(session, "providers", [])),
    }


def _hw(size: tuple[int, int] | None) -> str:
    return "-" if size is None else f"{size[0]}x{size[1]}"


def _wrap(head: str, items: list[str], *, indent: int, width: int = 120) -> list[str]:
    """``head`` then ``items`` two spaces apart, continued on lines whose items start at
    column ``indent`` when a line would pass ``width``."""
    lines, line, empty = [], head, True
    for item in items:
        if not empty and len(line) + 2 + len(item) > width:
            lines.append(line)
            line = " " * (indent - 2)
        line += "  " + item
        empty = False
    lines.append(line)
    return lines
