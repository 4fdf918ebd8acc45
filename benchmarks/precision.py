"""Precision benchmark: ONNX Runtime CPU fp32 vs int8 (CPU flavour) vs PyTorch eager fp32.

    python benchmarks/precision.py [--models enhancer,detector,...] [--size 256 512]
        [--repeats 10] [--threads N] [--calibration 32] [--format qdq|qoperator]
        [--reduce-range | --no-reduce-range] [--denormals-as-zero] [--json PATH]

For each trained zoo editor whose checkpoint is in ``models/zoo/`` (enhancer, detector,
upscaler, inpainter, style-vintage, style-cartoon): export fp32 ONNX, quantize it to int8 for
the CPU (uint8 activations, int8 per-channel weights, Q/DQ; calibrated on rendered catalog
photos of the validation split) and time, in ONE process on the same batch-1 input,
interleaved round by round (a busy neighbour slows all alike): ONNX Runtime fp32, ONNX Runtime
int8 and PyTorch eager fp32 (``torch.inference_mode``). Reported: best and median of
``--repeats`` after two warm-up runs; the int8 speed-up over fp32 (best over best, which the
goal uses, and the median of the rounds' own fp32 / int8 ratios, which a neighbour that slows
one round moves less); ORT fp32 over PyTorch; and the PSNR of int8 against fp32 on held-out
catalog photos (other seeds than the calibration's), over the output's value range, against
the int8 gate (``DEFAULT_GATES["int8"]`` of :mod:`vetrina.converters.verify` when it defines
one, else 30 dB).

Goals (the issue's, checked and printed per model and size): int8 >= 1.5x faster than fp32 on
ONNX Runtime CPU within its quality gate, and ONNX Runtime fp32 faster than PyTorch eager.

Findings so far (2-core AMD EPYCs, AVX2 without VNNI): U8S8 needs 7-bit weights
(``reduce_range``) on such CPUs or the enhancer falls to 24 dB. How much int8 gains depends on
the machine as much as on the model: on one EPYC int8 was *not* faster than fp32 for these
16-64 channel convs (QLinearConv ~= fp32 NCHWc Conv); on a Zen 3 EPYC (family 25, model 1,
recorded in ``--json``) the enhancer, the upscaler and (since its export rewrites, the
channel padding and the NCHW-pinned upsamples) the detector run 1.5-1.7x faster in int8, while
the inpainter (its float box-filter fill) and the style nets (instance norms without an int8
kernel) gain 1.2-1.3x (RESULTS.md). Run it on a quiet machine before quoting numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

EDITORS = ("enhancer", "detector", "upscaler", "inpainter", "style-vintage", "style-cartoon")
SPEEDUP_GOAL = 1.5
DEFAULT_INT8_PSNR = 30.0


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list]:
    """Interleaved timing: two warm-up calls each, then every round runs each contender once;
    the seconds of every round, per contender."""
    for fn in fns.values():
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def paired_ratio(slow: list[float], fast: list[float]) -> float:
    """Median over rounds of ``slow[i] / fast[i]``: each round's two runs are back to back, so
    a neighbour that slows a whole round cancels, where best-over-best pairs two different
    rounds (a quiet moment for one contender and not the other)."""
    if len(slow) != len(fast) or not slow:
        raise ValueError(f"need two equal, non-empty series, got {len(slow)} and {len(fast)}")
    return statistics.median(a / b for a, b in zip(slow, fast, strict=True))


def int8_gate() -> tuple[float, str]:
    """The int8 PSNR gate: verify's DEFAULT_GATES["int8"] if defined, else 30 dB."""
    from vetrina.converters import verify

    gate = getattr(verify, "DEFAULT_GATES", {}).get("int8")
    if gate is not None and hasattr(gate, "min_psnr"):
        return float(gate.min_psnr), 'verify.DEFAULT_GATES["int8"]'
    return DEFAULT_INT8_PSNR, "default 30 dB (verify defines no int8 gate yet)"


def session(path: Path, threads: int, denormals_as_zero: bool = False) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Interleaved with PyTorch: ONNX Runtime's idle threads must not spin-wait, or they take
    # the cores from the PyTorch run that follows (it measured 20-50% slower that way).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    if denormals_as_zero:
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bench_model(name: str, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    import torch

    from vetrina.converters.calibration import catalog_images, image_feeds, round_size
    from vetrina.converters.cpu_graph import tune_for_cpu
    from vetrina.converters.export import export_onnx
    from vetrina.converters.quantize import quantize_int8
    from vetrina.metrics import psnr
    from vetrina.models.architectures import get_architecture
    from vetrina.models.zoo import get_entry, load_module

    entry = get_entry(name)
    spec = get_architecture(entry.architecture)
    module = load_module(name).eval()
    fp32 = export_onnx(module, spec, workdir / f"{name}.onnx")
    tune_for_cpu(fp32)  # what `vetrina convert` does for the cpu target
    t0 = time.perf_counter()
    calib_size = round_size((args.calibration_size,) * 2, spec.spatial.multiple_of)
    result = quantize_int8(
        fp32,
        workdir / f"{name}.int8.onnx",
        catalog_images(args.calibration, (min(512, max(64, calib_size[0])),) * 2),
        target="cpu",
        inputs=spec.inputs,
        size=calib_size,
        multiple_of=spec.spatial.multiple_of,
        reduce_range=args.reduce_range,
        quant_format=args.format,
    )
    quantize_s = time.perf_counter() - t0
    daz = args.denormals_as_zero
    s32, s8 = session(fp32, args.threads, daz), session(result.path, args.threads, daz)
    torch.set_flush_denormal(daz)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = spec.outputs[0]
    lo, hi = out.range or (0.0, 1.0)
    min_psnr, gate_source = int8_gate()
    rows = []
    for side in args.size:
        size = round_size((side, side), spec.spatial.multiple_of, spec.spatial.min_size)
        render = (min(512, max(64, size[0])),) * 2
        held_out = image_feeds(spec.inputs, catalog_images(3, render, start=500), size, seed=1)
        quality = min(
            psnr(np.clip(s8.run(None, f)[0], lo, hi), np.clip(s32.run(None, f)[0], lo, hi), hi - lo)
            for f in held_out
        )
        feeds = held_out[0]
        tensors = [torch.from_numpy(feeds[t.name]) for t in spec.inputs]

        def eager(tensors: list = tensors) -> object:
            with torch.inference_mode():
                return module(*tensors)

        series = interleaved_times(
            {
                "ort_fp32": lambda f=feeds: s32.run(None, f),
                "ort_int8": lambda f=feeds: s8.run(None, f),
                "torch_fp32": eager,
            },
            args.repeats,
        )
        timings = {k: (min(v), statistics.median(v)) for k, v in series.items()}
        ms = {k: (round(v[0] * 1e3, 2), round(v[1] * 1e3, 2)) for k, v in timings.items()}
        speedup = timings["ort_fp32"][0] / timings["ort_int8"][0]
        paired = paired_ratio(series["ort_fp32"], series["ort_int8"])
        over_torch = timings["torch_fp32"][0] / timings["ort_fp32"][0]
        rows.append(
            {
                "model": name,
                "size": list(size),
                "best_ms": {k: v[0] for k, v in ms.items()},
                "median_ms": {k: v[1] for k, v in ms.items()},
                "int8_speedup": round(speedup, 3),
                "int8_speedup_paired": round(paired, 3),
                "ort_over_torch": round(over_torch, 3),
                "int8_psnr_db": round(quality, 2),
                "int8_gate_db": min_psnr,
                "gate_source": gate_source,
                "goal_int8_speed": speedup >= SPEEDUP_GOAL and quality >= min_psnr,
                "goal_ort_over_torch": over_torch > 1.0,
                "quantize_s": round(quantize_s, 2),
                "calibration": result.calibration,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'model':<14} {'size':>9} {'ort fp32':>9} {'ort int8':>9} {'torch':>9} "
        f"{'int8 x':>7} {'paired':>7} {'ort/torch':>9} {'PSNR':>6}  goals"
    )
    print(head)
    for r in rows:
        b = r["best_ms"]
        goals = (
            f"int8>={SPEEDUP_GOAL}x:{'yes' if r['goal_int8_speed'] else 'NO'} "
            f"ort<torch:{'yes' if r['goal_ort_over_torch'] else 'NO'}"
        )
        print(
            f"{r['model']:<14} {'x'.join(map(str, r['size'])):>9} {b['ort_fp32']:>9.1f} "
            f"{b['ort_int8']:>9.1f} {b['torch_fp32']:>9.1f} {r['int8_speedup']:>7.2f} "
            f"{r['int8_speedup_paired']:>7.2f} "
            f"{r['ort_over_torch']:>9.2f} {r['int8_psnr_db']:>6.1f}  {goals}"
        )
    print(
        "times: best ms of the repeats (batch 1); int8 x: best fp32 / best int8 (the goal's "
        "ratio); paired: median over rounds of fp32 / int8 run back to back; PSNR: int8 vs "
        "fp32 on held-out photos"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(EDITORS))
    parser.add_argument("--size", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="0: the libraries' defaults")
    parser.add_argument("--calibration", type=int, default=32, help="calibration images")
    parser.add_argument("--calibration-size", type=int, default=256)
    parser.add_argument("--format", choices=("qdq", "qoperator"), default="qdq")
    parser.add_argument(
        "--reduce-range",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="7-bit weights (default: on, safe on CPUs without VNNI)",
    )
    parser.add_argument(
        "--denormals-as-zero",
        action="store_true",
        help="flush denormals to zero in all three contenders (ONNX Runtime's "
        "session.set_denormal_as_zero, torch.set_flush_denormal): fp32 convs slow down on "
        "the tiny values of flat photo backgrounds; int8 does not",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.repeats < 1 or any(s < 8 for s in args.size):
        parser.error("--repeats must be >= 1 and --size >= 8")

    from vetrina.models.zoo import get_entry

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    rows: list[dict[str, Any]] = []
    skipped = []
    with tempfile.TemporaryDirectory(prefix="vetrina-bench-precision-") as tmp:
        for name in names:
            if not get_entry(name).path.is_file():
                skipped.append(name)
                print(f"{name}: no checkpoint {get_entry(name).path.name}, skipped", flush=True)
                continue
            print(f"{name}: export, quantize, time ...", flush=True)
            rows.extend(bench_model(name, args, Path(tmp)))
    print_table(rows)
    if args.json:
        import onnxruntime
        import torch

        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        report = {
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "cpus": os.cpu_count(),
                "vnni": "avx512_vnni" in flags or "avx_vnni" in flags,
                "cpu": _cpu_model(flags),
                "onnxruntime": onnxruntime.__version__,
                "torch": str(torch.__version__),
            },
            "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "rows": rows,
            "skipped": skipped,
        }
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def _cpu_model(cpuinfo: str) -> str:
    """'model name (family F, model M)' of the first CPU in /proc/cpuinfo: two machines both
    called 'AMD EPYC' ran these models 2x apart, so the family and model go in the report."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    name = fields.get("model name", platform.processor() or platform.machine())
    return f"{name} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


if __name__ == "__main__":
    sys.exit(main())
