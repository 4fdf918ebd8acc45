"""Conversion table: every zoo model, and each public checkpoint format, at fp32, fp16 and int8,
verified, sized and timed.

    python benchmarks/conversion.py [--models all|public|a,b,public:c] [--precisions fp32,fp16,int8]
        [--target cpu] [--size 256] [--repeats 10] [--threads N] [--max-trials 24]
        [--json PATH] [--markdown]

For each zoo checkpoint in ``models/zoo/`` and each precision, ``vetrina.converters.convert``
runs exactly as ``vetrina convert`` does (export, precision rewrite with its island search,
verification against PyTorch under the precision's default gate). A model that fails its gate
is a row that says so, not a missing row. Reported per row: the worst case of the verification
report (PSNR, SSIM, mean CIEDE2000 where the output is an RGB image), the fp32 islands kept,
the file size, and ONNX Runtime CPU latency (batch 1; editors at ``--size`` px, generators at
their 64 px): best and median of ``--repeats`` runs after two warm-ups; for fp32 rows also
PyTorch eager (``torch.inference_mode``) on the same input in the same process, after the
ONNX Runtime session is gone (its spinning threads would slow PyTorch). fp16 files are listed
for TensorRT; ONNX Runtime CPU has no fast fp16 kernels, so their CPU latency is shown only for
completeness. int8 is calibrated on rendered catalog photos (``--calib catalog``), never
the verification images; generators on seeded latents and random labels (``--calib latents``).

``--models public`` (or ``public:NAME`` entries in the list; ``all`` stays the zoo) adds the
public checkpoint formats of :data:`PUBLIC` (fast-neural-style TransformerNet, CycleGAN,
pix2pix, DCGAN, Real-ESRGAN SRVGGNetCompact and RRDBNet). No public weights can be downloaded
here, so each is vetrina's module built at the config of the files its project publishes,
with **random weights**: seeded, initialised the way the project initialises it before
training, BatchNorm running statistics measured on seeded inputs (catalog photos; latents for
DCGAN), and, for the nets that end in a bare conv (TransformerNet, RRDBNet), that conv scaled
per channel so its outputs on catalog photos centre on the contract range with a quarter of its
width as standard deviation (a trained net fills its range; the random one sits near 0, which
would make every error look small against the range). The file is saved the way the project
saves it (a bare state_dict, or ``{"params": ...}`` / ``{"params_ema": ...}`` for Real-ESRGAN)
and converted *without* ``arch``, so the format detection runs; the row fails if it names
another architecture. The rows measure numerics and speed, not image quality: their model cell
says "random init". When a public row's island search finds no passing set, the row also
shows the plain fp16 / int8 result (converted again with no limits, judged against the
default gate: still FAILED). RRDBNet (16.7 M params, about 140 GFLOP per 64x64 input at x4;
each search trial re-quantizes and re-runs it: 6 int8 trials of the x2 took 255 s) is timed at
64 px with at most 3 repeats, int8-calibrated on the same 32 photos at 64 px instead of
256 px, and gets no island search: its fp16 / int8 rows are the plain result judged against
the default gate, which is what ``convert`` returns when no islands are needed. Each of these
departures is named in the row.
``--max-trials`` bounds every other search.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PUBLIC_PREFIX = "public:"


@dataclass(frozen=True)
class PublicFormat:
    """A public checkpoint format at the config of the files its project publishes."""

    architecture: str  # the registry name detection must find
    config: dict[str, Any]
    filename: str  # the published file this config is (the benchmark writes a random one)
    weights_key: str | None = None  # Real-ESRGAN: the state_dict under "params" / "params_ema"
    init: str = "pytorch"  # "pytorch" (the class's own), "normal-0.02", "basicsr"
    fit_output: bool = False  # scale the last conv onto the contract range (bare-conv output)
    latency_size: int | None = None  # instead of --size (the large upscalers)
    latency_repeats: int | None = None  # at most this many (instead of --repeats)
    calib_size: int | None = None  # int8 calibration photos at this side instead of 256 px
    search: bool = True  # False: no island search (the plain fp16/int8, judged by the gate)


#: Row name -> format. Configs: pytorch/examples fast_neural_style (candy.pth, ...: 32 channels,
#: 5 residual blocks); CycleGAN ``latest_net_G.pth`` (resnet_9blocks, ngf 64, instance norm);
#: pix2pix ``unet_256`` / ``unet_128`` (ngf 64, batch norm; trained with dropout, which
#: changes no key); pytorch/examples DCGAN (nz 100, ngf 64); Real-ESRGAN
#: ``realesr-general-x4v3.pth`` (SRVGGNetCompact, 64 features, 32 convs, PReLU, under
#: "params"), the x2 at the ``realesr-animevideov3`` layout (16 convs); ``RealESRGAN_x4plus``
#: / ``x2plus`` (RRDBNet 64 features, 23 blocks, growth 32, under "params_ema").
PUBLIC: dict[str, PublicFormat] = {
    "transformer-net": PublicFormat(
        "transformer-net", {"channels": 32, "blocks": 5}, "candy.pth", fit_output=True
    ),
    "cyclegan-resnet": PublicFormat(
        "cyclegan-resnet",
        {"ngf": 64, "n_blocks": 9, "norm": "instance", "use_dropout": False},
        "latest_net_G.pth",
        init="normal-0.02",
    ),
    "pix2pix-unet256": PublicFormat(
        "pix2pix-unet256",
        {"ngf": 64, "norm": "batch", "use_dropout": False},
        "latest_net_G.pth",
        init="normal-0.02",
    ),
    "pix2pix-unet128": PublicFormat(
        "pix2pix-unet128",
        {"ngf": 64, "norm": "batch", "use_dropout": False},
        "latest_net_G.pth",
        init="normal-0.02",
    ),
    "dcgan-generator": PublicFormat(
        "dcgan-generator", {"nz": 100, "ngf": 64}, "netG_epoch_24.pth", init="normal-0.02"
    ),
    "srvgg-compact-x4": PublicFormat(
        "srvgg-compact-x4",
        {"num_feat": 64, "num_conv": 32, "act_type": "prelu"},
        "realesr-general-x4v3.pth",
        weights_key="params",
    ),
    "srvgg-compact-x2": PublicFormat(
        "srvgg-compact-x2",
        {"num_feat": 64, "num_conv": 16, "act_type": "prelu"},
        "realesr-animevideov3-x2.pth",
        weights_key="params",
    ),
    "rrdbnet-x4": PublicFormat(
        "rrdbnet-x4",
        {"num_feat": 64, "num_block": 23, "num_grow_ch": 32},
        "RealESRGAN_x4plus.pth",
        weights_key="params_ema",
        init="basicsr",
        fit_output=True,
        latency_size=64,
        latency_repeats=3,
        calib_size=64,
        search=False,
    ),
    "rrdbnet-x2": PublicFormat(
        "rrdbnet-x2",
        {"num_feat": 64, "num_block": 23, "num_grow_ch": 32},
        "RealESRGAN_x2plus.pth",
        weights_key="params_ema",
        init="basicsr",
        fit_output=True,
        latency_size=64,
        latency_repeats=3,
        calib_size=64,
        search=False,
    ),
}


def _latency(path: Path, feeds: dict[str, np.ndarray], repeats: int, threads: int | None) -> tuple:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(2):
        session.run(None, feeds)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3, statistics.median(times) * 1e3


def _feeds(spec: Any, module: Any, size: int) -> dict[str, np.ndarray]:
    from vetrina.converters.inputs import random_feeds
    from vetrina.converters.sizes import check_size

    has_image = any(t.semantic == "image" for t in spec.inputs)
    shape = None
    if has_image:
        step = spec.spatial.multiple_of
        side = max(spec.spatial.min_size, (size // step) * step)
        shape = check_size(spec, (side, side))
    rng = np.random.default_rng(0)
    return random_feeds(module, spec, batch=1, size=shape, rng=rng)


# --- public formats: random weights saved as the project saves them ---------------------------


def _sample_inputs(spec: Any, module: Any, count: int, side: int) -> dict[str, Any]:
    """Seeded inputs for BatchNorm statistics and the output fit: catalog photos (not the
    verification or calibration ones) for image models, standard normal latents otherwise."""
    import torch

    from vetrina.converters.calibration import catalog_images, image_feeds
    from vetrina.converters.inputs import random_feeds

    if any(t.semantic == "image" for t in spec.inputs):
        step = spec.spatial.multiple_of
        side = max(spec.spatial.min_size, -(-side // step) * step)
        images = catalog_images(count, (side, side), start=5000)
        feeds = image_feeds(spec.inputs, images, (side, side))
        return {k: torch.from_numpy(np.concatenate([f[k] for f in feeds])) for k in feeds[0]}
    rng = np.random.default_rng(5000)
    feeds = random_feeds(module, spec, batch=count, size=None, rng=rng)
    return {k: torch.from_numpy(v) for k, v in feeds.items()}


def _project_init(module: Any, init: str) -> None:
    """The initialisation the public project applies before training."""
    import torch
    from torch import nn

    convs = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    with torch.no_grad():
        if init == "normal-0.02":  # CycleGAN/pix2pix init_weights('normal'), DCGAN weights_init
            for m in module.modules():
                if isinstance(m, convs):
                    nn.init.normal_(m.weight, 0.0, 0.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.normal_(m.weight, 1.0, 0.02)
                    nn.init.zeros_(m.bias)
        elif init == "basicsr":  # ResidualDenseBlock: default_init_weights(convs, scale=0.1)
            for m in module.modules():
                if type(m).__name__ == "ResidualDenseBlock":
                    for conv in (m.conv1, m.conv2, m.conv3, m.conv4, m.conv5):
                        nn.init.kaiming_normal_(conv.weight)
                        conv.weight.mul_(0.1)
                        nn.init.zeros_(conv.bias)
        elif init != "pytorch":
            raise ValueError(f"unknown init {init!r}")


def _batch_norm_statistics(module: Any, inputs: dict[str, Any]) -> None:
    """Running statistics of every BatchNorm measured on ``inputs`` (cumulative average), so
    that eval mode normalises as a trained net's statistics would."""
    import torch
    from torch import nn

    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    with torch.no_grad():
        module(*inputs.values())
    for m in norms:
        m.momentum = 0.1  # the PyTorch default the saved module would have
    module.eval()


def _fit_output(module: Any, spec: Any, inputs: dict[str, Any]) -> None:
    """Scale the last conv (the output layer of a net without an output activation) per
    channel so outputs on ``inputs`` have the contract range's centre as mean and a quarter
    of its width as standard deviation."""
    import torch
    from torch import nn

    last = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
    assert isinstance(last, nn.Conv2d) and last.bias is not None
    low, high = spec.outputs[0].range
    with torch.no_grad():
        out = module.eval()(*inputs.values())
        mean = out.mean(dim=(0, 2, 3))
        std = out.std(dim=(0, 2, 3)).clamp_min(1e-12)
        gain = (high - low) / 4 / std
        last.weight.mul_(gain[:, None, None, None])
        last.bias.copy_((last.bias - mean) * gain + (low + high) / 2)


def write_public(name: str, folder: Path, seed: int = 0) -> Path:
    """A random ``name`` (see :data:`PUBLIC`) saved into ``folder`` as its project saves it."""
    import torch

    from vetrina.models.architectures import get_architecture

    fmt = PUBLIC[name]
    spec = get_architecture(fmt.architecture)
    torch.manual_seed(seed)
    module = spec.build(fmt.config)
    _project_init(module, fmt.init)
    _batch_norm_statistics(module, _sample_inputs(spec, module, 16, 256))
    if fmt.fit_output:
        _fit_output(module, spec, _sample_inputs(spec, module, 2, 64))
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    folder = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / fmt.filename
    torch.save({fmt.weights_key: state} if fmt.weights_key else state, path)
    return path


def _row_name(short: str, fmt: PublicFormat, args: argparse.Namespace) -> str:
    """``public:NAME (random init)``, with the latency size where it is not ``--size``."""
    notes = ["random init"]
    if fmt.latency_size and fmt.latency_size != args.size:
        notes.append(f"timed at {fmt.latency_size} px")
    return f"{PUBLIC_PREFIX}{short} ({', '.join(notes)})"


# --- one row ----------------------------------------------------------------------------------


def run_one(name: str, precision: str, target: str, out: Path, args: argparse.Namespace) -> dict:
    """Convert, verify and time zoo model ``name`` (or ``public:NAME``) at ``precision``."""
    from vetrina.converters.convert import convert, load_source
    from vetrina.converters.verify import Gate, gate_for
    from vetrina.errors import CheckpointError, ConversionError, VerificationError
    from vetrina.models.architectures import get_architecture

    fmt = PUBLIC.get(name.removeprefix(PUBLIC_PREFIX)) if name.startswith(PUBLIC_PREFIX) else None
    if fmt is None:
        from vetrina.models.zoo import get_entry

        entry = get_entry(name)
        checkpoint, architecture = entry.path, entry.architecture
    else:
        short = name.removeprefix(PUBLIC_PREFIX)
        checkpoint = out / short / fmt.filename
        if not checkpoint.is_file():
            checkpoint = write_public(short, out)
        architecture = fmt.architecture
    stem = name.replace(":", "-")
    path = out / f"{stem}-{precision}.onnx"
    model = name if fmt is None else _row_name(name.removeprefix(PUBLIC_PREFIX), fmt, args)
    row: dict[str, Any] = {"model": model, "precision": precision}
    options: dict[str, Any] = {"precision": precision}
    notes = []
    if precision == "int8":
        images = any(t.semantic == "image" for t in get_architecture(architecture).inputs)
        calibration: Any = "catalog" if images else "latents"
        if fmt is not None and fmt.calib_size and images:
            calibration = _calibration_feeds(architecture, fmt.calib_size)
            notes.append(f"calibrated at {fmt.calib_size} px")
        options.update(target=target, calibration=calibration)
        notes.insert(0, target)
    measured = fmt is not None and not fmt.search and precision != "fp32"
    if measured:
        notes.append("no island search")
    elif args.max_trials is not None and precision != "fp32":
        options["max_trials"] = args.max_trials
        notes.append(f"search <= {args.max_trials} trials")
    if notes:
        row["precision"] = f"{precision} ({', '.join(notes)})"
    source = None
    if fmt is not None:  # what the detection that convert runs (no arch) names
        source = load_source(checkpoint)
        row["detected"] = source.spec.name
    t0 = time.perf_counter()
    try:
        # measured: no limits, so no search; the report is judged against the gate below
        result = convert(checkpoint, path, **options, **({"gate": Gate()} if measured else {}))
    except VerificationError as exc:
        report = exc.report
        row.update(passed=False, failed=report.failures()[:3])
    except (ConversionError, CheckpointError) as exc:  # e.g. no set of fp32 islands passes
        report = None
        row.update(passed=False, failed=[str(exc)], psnr_db=None, ssim=None, delta_e=None)
        if fmt is not None and precision != "fp32" and isinstance(exc, ConversionError):
            # the island search found no passing set: the row still shows the plain result
            try:
                result = convert(checkpoint, path, **options, gate=Gate())
            except ConversionError:
                pass
            else:
                report = result.report
                failures = _judge(report, gate_for(precision))[:3]
                row["failed"] += [f"plain {precision}: {f}" for f in failures]
                row["islands"] = _islands(result)
    else:
        report = result.report
        row.update(passed=True, islands=_islands(result))
        if measured:
            failures = _judge(report, gate_for(precision))
            row.update(passed=not failures, **({"failed": failures[:3]} if failures else {}))
    row["convert_s"] = round(time.perf_counter() - t0, 1)
    if fmt is not None and row["detected"] != architecture:
        row["passed"] = False
        row.setdefault("failed", []).append(f"detected {row['detected']}, expected {architecture}")
    if report is None:
        return row
    row.update(
        psnr_db=report.worst_psnr,
        ssim=report.worst_ssim,
        delta_e=report.worst_delta_e,
    )
    if path.is_file():
        row["size_mb"] = round(path.stat().st_size / 1e6, 3)
        source = source or load_source(checkpoint)
        size = (fmt.latency_size if fmt else None) or args.size
        repeats = min(args.repeats, (fmt.latency_repeats if fmt else None) or args.repeats)
        feeds = _feeds(source.spec, source.module, size)
        row["input"] = {k: list(v.shape) for k, v in feeds.items()}
        row["repeats"] = repeats
        best, median = _latency(path, feeds, repeats, args.threads)
        row.update(ort_best_ms=round(best, 2), ort_median_ms=round(median, 2))
        if precision == "fp32":  # PyTorch eager on the same input, same process
            best, median = _torch_latency(source.module, source.spec, feeds, repeats)
            row.update(torch_best_ms=round(best, 2), torch_median_ms=round(median, 2))
    return row


def _islands(result: Any) -> list[str]:
    return (result.contract.provenance.get("reduced_precision") or {}).get("islands", [])


def _judge(report: Any, gate: Any) -> list[str]:
    """``case: reason`` for each check of a reduced-precision ``gate`` (PSNR, SSIM, mean
    CIEDE2000; max abs is not gated there) that the cases of ``report`` fail."""
    assert math.isinf(gate.max_abs), "only the fp16 / int8 gates are judged here"
    failed = []
    for c in report.cases:
        if not c.psnr_db >= gate.min_psnr:
            failed.append(f"{c.name}: PSNR {c.psnr_db:.1f} dB < {gate.min_psnr:g}")
        if c.ssim is not None and not c.ssim >= gate.min_ssim:
            failed.append(f"{c.name}: SSIM {c.ssim:.4f} < {gate.min_ssim:g}")
        if c.delta_e_mean is not None and not c.delta_e_mean <= gate.max_delta_e:
            failed.append(f"{c.name}: mean dE2000 {c.delta_e_mean:.3f} > {gate.max_delta_e:g}")
    return failed


def _calibration_feeds(architecture: str, side: int) -> list[dict[str, np.ndarray]]:
    """The photos ``--calib catalog`` uses (32 held-out catalog renders), at ``side`` px."""
    from vetrina.converters.calibration import catalog_images, image_feeds
    from vetrina.models.architectures import get_architecture

    spec = get_architecture(architecture)
    return image_feeds(spec.inputs, catalog_images(32, (256, 256), start=1000), (side, side))


def _torch_latency(module: Any, spec: Any, feeds: dict[str, np.ndarray], repeats: int) -> tuple:
    import torch

    args = [torch.from_numpy(feeds[t.name]) for t in spec.inputs]
    module = module.eval()
    with torch.inference_mode():
        for _ in range(2):
            module(*args)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            module(*args)
            times.append(time.perf_counter() - t0)
    return min(times) * 1e3, statistics.median(times) * 1e3


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not np.isfinite(value):
        return "inf" if value > 0 else "-inf"
    return format(value, fmt)


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | precision | PSNR vs PyTorch (dB) | SSIM | mean CIEDE2000 | fp32 islands "
        "| size (MB) | ORT CPU ms (best / median) | PyTorch eager ms (best) | gate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        islands = r.get("islands")
        lines.append(
            f"| {r['model']} | {r['precision']} | {_cell(r['psnr_db'], '.1f')} "
            f"| {_cell(r['ssim'], '.4f')} | {_cell(r['delta_e'], '.3f')} "
            f"| {len(islands) if islands is not None else ''} "
            f"| {_cell(r.get('size_mb'), '.2f')} "
            f"| {_cell(r.get('ort_best_ms'), '.1f')} / {_cell(r.get('ort_median_ms'), '.1f')} "
            f"| {_cell(r.get('torch_best_ms'), '.1f')} "
            f"| {'passed' if r['passed'] else 'FAILED: ' + '; '.join(r['failed'])} |"
        )
    return "\n".join(lines)


def model_names(spec: str) -> list[str]:
    """``--models``: "all" (the zoo checkpoints present), "public" (every format of
    :data:`PUBLIC`), or a comma list of zoo names, ``public:NAME`` and those two words."""
    from vetrina.models.zoo import ZOO

    names: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if item == "all":
            names += [n for n in ZOO if ZOO[n].path.is_file()]
        elif item == "public":
            names += [PUBLIC_PREFIX + n for n in PUBLIC]
        elif item.startswith(PUBLIC_PREFIX):
            if item.removeprefix(PUBLIC_PREFIX) not in PUBLIC:
                raise SystemExit(
                    f"--models: unknown public format {item!r}; known: {', '.join(PUBLIC)}"
                )
            names.append(item)
        elif item in ZOO:
            if ZOO[item].path.is_file():
                names.append(item)
        elif item:
            raise SystemExit(f"--models: unknown model {item!r}")
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="all")
    parser.add_argument("--precisions", default="fp32,fp16,int8")
    parser.add_argument("--target", default="cpu", choices=("cpu", "tensorrt"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int)
    parser.add_argument(
        "--max-trials", type=int, help="island search budget per fp16/int8 row (convert's: 24)"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)

    names = model_names(args.models)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vetrina-conv-") as folder:
        for name in names:
            for precision in args.precisions.split(","):
                row = run_one(name, precision, args.target, Path(folder), args)
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=float))
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
