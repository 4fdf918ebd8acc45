"""``vetrina bench``: the command line of :mod:`vetrina.bench`.

Kept apart from :mod:`vetrina.cli` (which adds it with :func:`add_bench_parser`); it does not
import that module, so neither imports the other at load time.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .cli_options import add_runtime_options, finite_float, positive_int
from .pipeline_spec import builtin_names

EXIT_OK = 0  # the value of vetrina.cli.EXIT_OK

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand to the ``vetrina`` subparsers."""
    p = sub.add_parser(
        "bench",
        help="measure a pipeline's or a model's latency, throughput and memory",
        description="Benchmark a pipeline or one converted model (trtexec / perf_analyzer "
        "style): for each batch x concurrency combination, closed-loop client threads send "
        "requests of seeded synthetic images for --duration seconds after a --warmup. Photo "
        "pipelines run decode, preprocess, every stage and hand-off, postprocess (composite, "
        "tiles) and encode in the pipeline's output format; generation pipelines generate "
        "--batch images per request (seeds counting up, the first name of every label) and "
        "encode them. The client threads share one pipeline, so its step times are means per "
        "request over all threads. Image models (editor, upscaler) run decode, preprocess, "
        "inference, postprocess and encode; other roles time session.run on random inputs "
        "shaped from the contract. Prints throughput, p50/p90/p99/max latency, per-step "
        "means, stability (CV of throughput across time windows; over 10% is flagged noisy) "
        "and peak RSS.",
        epilog="examples: vetrina bench catalog-cleanup --batch 1,4,8 --concurrency 1,8 "
        "--duration 10 --json bench.json --plot bench.png; vetrina bench my-pipeline.yaml; "
        "vetrina bench model.onnx",
    )
    p.add_argument(
        "target",
        metavar="PIPELINE.yaml|NAME|MODEL.onnx",
        help="a pipeline file, a shipped pipeline's name ("
        + ", ".join(builtin_names())
        + ") or an ONNX model converted by vetrina (a name ending in .onnx)",
    )
    p.add_argument(
        "--batch",
        type=_int_list,
        default=[1],
        metavar="N[,N...]",
        help="images per request, one run per value (default 1); a pipeline's batch size",
    )
    p.add_argument(
        "--concurrency",
        type=_int_list,
        default=[1],
        metavar="N[,N...]",
        help="client threads sending requests, one run per value (default 1)",
    )
    p.add_argument(
        "--duration",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="measured seconds per combination (default 5)",
    )
    p.add_argument(
        "--warmup",
        type=_non_negative_float,
        default=1.0,
        metavar="S",
        help="unmeasured seconds before each combination (default 1)",
    )
    p.add_argument(
        "--size",
        type=_size,
        default=(256, 256),
        metavar="HxW",
        help="synthetic input size (default 256x256); generation pipelines make their "
        "generator's size",
    )
    add_runtime_options(p)
    p.add_argument(
        "--tile",
        type=positive_int,
        default=1024,
        metavar="PX",
        help="pipelines: photos whose working side exceeds this are processed in tiles "
        "(default 1024, as 'vetrina run')",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the full report as JSON")
    p.add_argument(
        "--plot", type=Path, metavar="FILE", help="write a latency-vs-throughput chart (.png)"
    )
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, write the JSON and plot when asked."""
    from .atomic import atomic_write_bytes
    from .bench import bench, is_model_target
    from .bench_plot import check_plot_path, plot

    if args.plot is not None:
        check_plot_path(args.plot)  # before the run, not after minutes of it
    options = {} if is_model_target(args.target) else {"tile_side": args.tile}
    report = bench(
        args.target,
        **options,
        batches=args.batch,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        size=args.size,
        threads=args.threads,
        device=args.device,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(report.table())
    if args.json is not None:
        atomic_write_bytes(args.json, report.to_json().encode())
        print(f"wrote {args.json}")
    if args.plot is not None:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    return EXIT_OK


def _int_list(text: str) -> list[int]:
    """``"1,4,8"`` -> ``[1, 4, 8]``: positive integers, at least one."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N[,N...], e.g. 1,4,8")
    return [positive_int(p) for p in parts]


def _positive_float(text: str) -> float:
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds > 0")
    return value


def _non_negative_float(text: str) -> float:
    value = finite_float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds >= 0")
    return value


def _size(text: str) -> tuple[int, int]:
    """``"96x128"`` -> ``(96, 128)`` (height x width, both positive)."""
    match = _SIZE.match(text)
    if not match or min(int(match.group(1)), int(match.group(2))) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected HEIGHTxWIDTH in pixels (at least 1), e.g. 256x256"
        )
    return int(match.group(1)), int(match.group(2))
