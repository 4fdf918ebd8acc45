"""Conversion table: every zoo model at fp32, fp16 and int8, verified, sized and timed.

    python benchmarks/conversion.py [--models all|a,b] [--precisions fp32,fp16,int8]
        [--target cpu] [--size 256] [--repeats 10] [--threads N] [--json PATH] [--markdown]

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
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


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


def run_one(name: str, precision: str, target: str, out: Path, args: argparse.Namespace) -> dict:
    from vetrina.converters.convert import convert, load_source
    from vetrina.errors import ConversionError, VerificationError
    from vetrina.models.architectures import get_architecture
    from vetrina.models.zoo import get_entry

    entry = get_entry(name)
    path = out / f"{name}-{precision}.onnx"
    row: dict[str, Any] = {"model": name, "precision": precision}
    options: dict[str, Any] = {"precision": precision}
    if precision == "int8":
        images = any(t.semantic == "image" for t in get_architecture(entry.architecture).inputs)
        options.update(target=target, calibration="catalog" if images else "latents")
        row["precision"] = f"int8 ({target})"
    t0 = time.perf_counter()
    try:
        result = convert(entry.path, path, **options)
    except VerificationError as exc:
        report = exc.report
        row.update(passed=False, failed=report.failures()[:3])
    except ConversionError as exc:  # e.g. no set of fp32 islands passes the gate
        row.update(passed=False, failed=[str(exc)], psnr_db=None, ssim=None, delta_e=None)
        row["convert_s"] = round(time.perf_counter() - t0, 1)
        return row
    else:
        report = result.report
        reduced = result.contract.provenance.get("reduced_precision") or {}
        row.update(passed=True, islands=reduced.get("islands", []))
    row["convert_s"] = round(time.perf_counter() - t0, 1)
    row.update(
        psnr_db=report.worst_psnr,
        ssim=report.worst_ssim,
        delta_e=report.worst_delta_e,
    )
    if path.is_file():
        row["size_mb"] = round(path.stat().st_size / 1e6, 3)
        source = load_source(entry.path)
        feeds = _feeds(source.spec, source.module, args.size)
        row["input"] = {k: list(v.shape) for k, v in feeds.items()}
        best, median = _latency(path, feeds, args.repeats, args.threads)
        row.update(ort_best_ms=round(best, 2), ort_median_ms=round(median, 2))
        if precision == "fp32":  # PyTorch eager on the same input, same process
            best, median = _torch_latency(source.module, source.spec, feeds, args.repeats)
            row.update(torch_best_ms=round(best, 2), torch_median_ms=round(median, 2))
    return row


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="all")
    parser.add_argument("--precisions", default="fp32,fp16,int8")
    parser.add_argument("--target", default="cpu", choices=("cpu", "tensorrt"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)

    from vetrina.models.zoo import ZOO

    names = list(ZOO) if args.models == "all" else args.models.split(",")
    names = [n for n in names if ZOO[n].path.is_file()]
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
