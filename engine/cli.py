"""The ``vetrina`` command line: a thin layer over the Python API.

Errors print one line and exit non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__
from .bench_cli import add_bench_parser
from .cli_options import add_runtime_options, finite_float, needs_convert, positive_int
from .errors import VetrinaError
from .pipeline_spec import MAX_WHOLE_PIXELS, builtin_names
from .zoo_cli import add_zoo_parser

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors that point at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vetrina",
        description="Inference engine for e-commerce product images: convert trained "
        "checkpoints to verified ONNX, run them through fused kernels.",
    )
    parser.add_argument("--version", action="version", version=f"vetrina {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "convert",
        help="checkpoint -> verified ONNX with a model contract",
        description="Export a PyTorch checkpoint to ONNX (dynamic batch/height/"
        "width), check it, verify it against PyTorch (tensor errors, PSNR, SSIM, CIEDE2000) "
        "and store the contract. Nothing is written when the parity gate fails.",
    )
    p.add_argument("checkpoint", type=Path, help="vetrina checkpoint or bare state_dict (.pt)")
    p.add_argument(
        "-o", "--output", type=Path, help="output .onnx file (default: CKPT, suffix .onnx)"
    )
    _add_arch_argument(p)
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    p.add_argument(
        "--static",
        type=_size,
        metavar="HxW",
        help="fix height x width (batch stays dynamic); must keep the model's size rules",
    )
    p.add_argument(
        "--slim", action="store_true", help="simplify the graph with onnxslim (then verified)"
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        default="fp32",
        help="fp16: fp32 inputs/outputs and fp32 islands where fp16 breaks; int8: explicit "
        "Q/DQ from calibration images (needs --target and --calib). The gate follows it.",
    )
    p.add_argument(
        "--target",
        choices=("cpu", "tensorrt"),
        help="what the graph is tuned for (default for fp32: cpu). cpu: ops that leave ONNX "
        "Runtime's fast CPU layout are rewritten into equivalent ones (verified), int8 uses "
        "uint8 activations and keeps fp32 the convs ONNX Runtime runs slower in int8 "
        "(grouped spatial and tiny ones); tensorrt: the graph as exported, int8 symmetric "
        "with zero points 0. int8 needs it.",
    )
    p.add_argument(
        "--calib",
        metavar="DIR|catalog|latents",
        help="int8 calibration data: a folder of representative photos, 'catalog' for "
        "rendered catalog products, or 'latents' (generators: seeded z and random labels)",
    )
    p.add_argument(
        "--keep-fp32",
        metavar="NODE[,NODE...]",
        type=lambda text: [n for n in text.split(",") if n],
        default=[],
        help="ONNX node names to keep in fp32 besides the automatic islands",
    )
    p.add_argument(
        "--no-speed-islands",
        dest="speed_islands",
        action="store_false",
        help="int8 --target cpu: quantize the convs ONNX Runtime runs slower in int8 too "
        "(grouped spatial, tiny and wide-from-RGB ones, and the convs and cheap ops that only "
        "feed them or only read them; kept fp32 by default); for a CPU whose int8 kernels "
        "differ (VNNI) or to measure them",
    )
    p.add_argument(
        "--input-norm",
        choices=("imagenet",),
        default=None,
        help="leave the input normalisation outside the graph: the model takes "
        "(rgb/255 - mean)/std, as rembg feeds U²-Net files (the contract records mean/std)",
    )
    _add_gate_arguments(p)
    p.add_argument("--trust-pickle", action="store_true", help=_TRUST_HELP)
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser(
        "verify",
        help="verify an ONNX model against a PyTorch checkpoint",
        description="Run the ONNX model (ONNX Runtime, CPU) and the checkpoint (PyTorch) on "
        "the same inputs and compare every output: max/mean abs error, PSNR, SSIM, "
        "CIEDE2000. The gate follows the model's precision (from its contract). "
        "Exits 1 when over the gate.",
    )
    p.add_argument("model", type=Path, help="ONNX model (fp32, fp16 or int8)")
    p.add_argument("checkpoint", type=Path, help="vetrina checkpoint or bare state_dict (.pt)")
    _add_arch_argument(p)
    p.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        help="gate to apply (default: the model contract's precision, else fp32)",
    )
    _add_gate_arguments(p)
    p.add_argument("--trust-pickle", action="store_true", help=_TRUST_HELP)
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser(
        "run",
        help="run a pipeline or an image model on files or folders",
        description="Decode images, preprocess with the fused kernel, run the "
        "pipeline's stages (or one model), postprocess back to the original size and write "
        "images. Bad files are reported and skipped. Shipped pipelines: "
        + ", ".join(builtin_names()),
    )
    p.add_argument(
        "target",
        help="a pipeline (shipped name or .yaml file) or an ONNX model converted by vetrina",
    )
    p.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument(
        "--format",
        choices=("png", "jpeg", "webp"),
        help="output format (default: the pipeline's, png for a model; JPEG flattens alpha "
        "onto white)",
    )
    p.add_argument(
        "--png-compression",
        type=int,
        choices=range(10),
        metavar="0-9",
        help="PNG zlib level: smaller files, slower encoding (default: the pipeline's, else "
        "OpenCV's fast default; 6 is Pillow's)",
    )
    add_runtime_options(p)
    p.add_argument("--batch", type=positive_int, default=4, help="images per batch (default 4)")
    p.add_argument(
        "--max-side",
        type=positive_int,
        help="longest side processed; larger images are processed downscaled and "
        "resized back (default: none: larger photos are tiled, or run whole where a model "
        "cannot be tiled)",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        default="auto",
        help="files processed at once, each on its own thread from decode to write (bulk "
        "folders: one file's decode/encode overlaps another's inference, and single-thread "
        "sessions use the cores better); the model sessions then get cores/workers threads "
        "unless --threads says otherwise (default auto: as many as cores, at most 4 and at "
        "most one per file)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip inputs whose output exists (outputs are written atomically, so an existing "
        "one is complete): restart an interrupted folder run",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is drawn on stderr only when that is a terminal)",
    )
    p.add_argument(
        "--tile",
        type=_tile_side,
        default=1024,
        help="pipelines: photos larger than this (working side, px, >= 16) are processed in "
        "overlapping, feather-blended tiles (default 1024); never for a chain with a model "
        "that normalises over the whole image (instance norm, spatial means)",
    )
    p.add_argument(
        "--max-whole-mp",
        type=_megapixels,
        default=MAX_WHOLE_PIXELS / 1e6,
        help="pipelines that cannot be tiled: refuse photos whose working size has more "
        f"megapixels (default {MAX_WHOLE_PIXELS / 1e6:.1f}; a style net needs about 0.75 GB "
        "per MP); --max-side processes larger ones downscaled instead",
    )
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        default=64_000_000,
        help="refuse images with more pixels (default 64 MP)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "generate",
        help="generate catalog images from requests (category, colour, seed)",
        description="Run a generation pipeline (default generate-catalog: generate -> style "
        "-> clean -> enhance -> upscale x2). The same seed and models give the same pixels; "
        "each PNG records seed, labels, stages and model hashes.",
    )
    p.add_argument(
        "pipeline", nargs="?", default="generate-catalog", help="pipeline name or .yaml file"
    )
    p.add_argument("--category", help="product category (the generator's label names)")
    p.add_argument("--colour", help="product colour")
    p.add_argument(
        "--label", action="append", default=[], metavar="NAME=VALUE", help="any other label"
    )
    p.add_argument(
        "--seed", type=_seed_list, default=[0], help="seed or comma list of seeds (default 0)"
    )
    p.add_argument("--count", type=positive_int, help="this many seeds from --seed on")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    add_runtime_options(p)
    p.add_argument("--batch", type=positive_int, default=4, help="images per batch (default 4)")
    p.set_defaults(func=_cmd_generate)

    _add_build_parser(sub)
    _add_doctor_parser(sub)
    add_bench_parser(sub)

    p = sub.add_parser(
        "contract",
        help="describe an ONNX file vetrina did not convert (e.g. a rembg model)",
        description="Check MODEL's inputs and outputs against a preset and write its contract "
        "beside it as NAME.contract.json; the ONNX file is not changed. Presets: u2net "
        "(rembg's U²-Net family: 320 px, ImageNet mean/std, sigmoid out), isnet (rembg's "
        "DIS files: 1024 px, mean 0.5, std 1).",
    )
    p.add_argument("model", type=Path, help="ONNX model")
    p.add_argument("--preset", required=True, choices=("u2net", "isnet"))
    p.add_argument("--size", type=int, default=None, help="input side (default: the preset's)")
    p.set_defaults(func=_cmd_contract)

    p = sub.add_parser("inspect", help="show a model's tensors and contract")
    p.add_argument("model", type=Path, help="ONNX model")
    p.add_argument("--json", action="store_true", help="print the contract as JSON")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser(
        "demo",
        help="convert the zoo enhancer and run it on rendered photos",
        description="Convert the zoo enhancer to ONNX with verification, render "
        "held-out product photos, degrade them, enhance them through the engine, "
        "write the images and print per-step timings and PSNR.",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("demo-output"),
        help="output folder (default demo-output)",
    )
    p.add_argument("--images", type=positive_int, default=8, help="number of sample photos")
    p.add_argument("--size", type=positive_int, default=256, help="sample photo size in px")
    p.add_argument(
        "--no-chains",
        action="store_true",
        help="skip the generation and photo-cleanup pipelines (they convert 6 zoo models once)",
    )
    p.set_defaults(func=_cmd_demo)

    add_zoo_parser(sub, parser_class=_Parser)
    return parser


_TRUST_HELP = "allow checkpoints with pickled code (only for files you trust)"


def _add_arch_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--arch",
        help="architecture: a registry name (see 'vetrina zoo list'), or "
        "package.module:factory for your own class (it must define VETRINA_SPEC); default: "
        "the checkpoint's, or detected from a bare state_dict's keys",
    )


def _add_gate_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("verification (defaults per precision: see DEFAULT_GATES)")
    g.add_argument(
        "--max-abs", type=float, help="largest abs error (fp32 default 1e-3; fp16/int8: off)"
    )
    g.add_argument("--min-psnr", type=float, help="smallest PSNR in dB (fp32 60, fp16 40, int8 30)")
    g.add_argument(
        "--min-ssim",
        type=float,
        help="smallest SSIM of image outputs (fp32 0.999, fp16 0.99, int8 0.95)",
    )
    g.add_argument(
        "--max-delta-e",
        type=float,
        help="largest mean CIEDE2000 of RGB outputs (fp32 0.1, fp16 1, int8 3)",
    )
    g.add_argument(
        "--sizes",
        type=_size_list,
        metavar="HxW[,HxW]",
        help="verification sizes of image models (default 64x96,128x128)",
    )
    g.add_argument("--report", type=Path, help="write the verification report as JSON")


def _gate_overrides(args: argparse.Namespace) -> dict[str, float | None]:
    return {
        "max_abs": args.max_abs,
        "min_psnr": args.min_psnr,
        "min_ssim": args.min_ssim,
        "max_delta_e": args.max_delta_e,
    }


def _size(text: str) -> tuple[int, int]:
    from vetrina.converters.sizes import parse_size

    try:
        return parse_size(text, option="")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None


def _size_list(text: str) -> list[tuple[int, int]]:
    from vetrina.converters.sizes import parse_sizes

    try:
        return parse_sizes(text, option="")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None


def _cmd_convert(args: argparse.Namespace) -> int:
    needs_convert()
    from vetrina.converters.convert import convert
    from vetrina.errors import VerificationError

    try:
        result = convert(
            args.checkpoint,
            args.output,
            arch=args.arch,
            opset=args.opset,
            gate_overrides=_gate_overrides(args),
            trusted=args.trust_pickle,
            static=args.static,
            slim=args.slim,
            sizes=args.sizes,
            precision=args.precision,
            target=args.target,
            calibration=_calibration(args.calib),
            keep_fp32=args.keep_fp32,
            input_norm=args.input_norm,
            speed_islands=args.speed_islands,
        )
    except VerificationError as exc:
        print(exc.report.table())
        if args.report:
            args.report.write_text(exc.report.to_json())
        raise
    print(result.report.table())
    if args.report:
        args.report.write_text(result.report.to_json())
    print(result.times.table())
    contract = result.contract
    reduced = contract.provenance.get("reduced_precision")
    if reduced:
        islands = reduced.get("islands") or []
        print(
            f"{contract.provenance['precision']}"
            + (f" ({reduced['target']} flavour)" if reduced.get("target") else "")
            + f": {len(islands)} node(s) kept fp32"
            + (f": {', '.join(islands[:12])}" if islands else "")
            + ("" if len(islands) <= 12 else f" (+{len(islands) - 12} more)")
        )
        rewrites = reduced.get("rewrites") or {}
        if rewrites:
            done = ", ".join(f"{name} x{count}" for name, count in sorted(rewrites.items()))
            print(f"int8 graph rewrites (for speed, same function): {done}")
    print(
        f"wrote {result.output} ({contract.role}, {contract.provenance['architecture']}, "
        f"{contract.provenance['precision']}, opset {contract.provenance['opset']}, "
        "parity passed)"
    )
    return EXIT_OK


def _calibration(value: str | None) -> str | Path | None:
    """``--calib``: 'catalog' (rendered products), 'latents' (generators) or a folder path."""
    if value is None or value in ("catalog", "latents"):
        return value
    return Path(value)


def _cmd_verify(args: argparse.Namespace) -> int:
    needs_convert()
    from vetrina.converters.verify import verify_file
    from vetrina.errors import VerificationError

    report = verify_file(
        args.model,
        args.checkpoint,
        arch=args.arch,
        precision=args.precision,
        gate_overrides=_gate_overrides(args),
        sizes=args.sizes,
        trusted=args.trust_pickle,
    )
    print(report.table())
    if args.report:
        args.report.write_text(report.to_json())
    if not report.passed:
        raise VerificationError(
            f"{args.model} differs from {args.checkpoint.name} beyond the {report.precision} "
            f"gate ({'; '.join(report.failures()[:3])})",
            report=report,
            hint="see the table above",
        )
    print(f"{args.model}: parity passed ({report.precision}, {len(report.cases)} cases)")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from .files import available_cores, collect_inputs, default_workers, edit_files
    from .heap import retain_freed_memory
    from .progress import FileProgress
    from .timing import StepTimes

    retain_freed_memory()  # a folder run: each photo reuses the last one's buffers
    times = StepTimes()
    sources = collect_inputs(args.inputs)
    if not sources:
        raise VetrinaError("no input images found", hint="give image files or folders with images")
    options = {"batch_size": args.batch, "times": times}
    threads = args.threads
    workers = default_workers(len(sources)) if args.workers == "auto" else args.workers
    if threads is None and workers > 1:
        threads = max(1, available_cores() // workers)
    from .pipeline import Pipeline
    from .pipeline_spec import load_spec, single_model_spec

    with times.step("load pipeline"):
        target = Path(args.target)
        spec = single_model_spec(target) if target.suffix.lower() == ".onnx" else None
        processor = Pipeline(
            spec or load_spec(args.target),
            device=args.device,
            threads=threads,
            max_side=args.max_side,
            tile_side=args.tile,
            max_whole_pixels=round(args.max_whole_mp * 1e6),
            log=print,
            **options,
        )
    if processor.source is not None:
        raise VetrinaError(
            f"{processor.spec.name} generates its images from requests, it takes no photos",
            hint=f"run it with 'vetrina generate {args.target} --category ... --seed N -o DIR'",
        )
    print("\n".join(processor.describe()))
    progress = FileProgress(len(sources), enabled=False if args.no_progress else None)
    try:
        results = edit_files(  # output settings not given: the pipeline's
            processor,
            sources,
            args.output,
            fmt=args.format,
            max_pixels=args.max_pixels,
            png_compression=args.png_compression,
            resume=args.resume,
            workers=workers,
            on_result=progress,
        )
    finally:
        progress.close()
    resumed = sum(r.resumed for r in results)
    if resumed:
        print(f"{resumed} already done (--resume), not redone")
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"skipped: {r.error}", file=sys.stderr)
    print(times.table())
    written = len(results) - len(failed) - resumed
    print(f"{written} written to {args.output}, {len(failed)} failed")
    return EXIT_ERROR if failed else EXIT_OK


def _workers(text: str) -> int | str:
    return "auto" if text == "auto" else positive_int(text)


def _tile_side(text: str) -> int:
    value = positive_int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"{value} is below the smallest tile side, 16")
    return value


def _megapixels(text: str) -> float:
    value = finite_float(text)
    if not 1e-6 <= value <= 1e4:
        raise argparse.ArgumentTypeError(f"{value} is not a megapixel count in 0.000001..10000")
    return value


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed or comma list of seeds") from None
    if not seeds or any(v < 0 for v in seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are non-negative integers")
    return seeds


def _cmd_generate(args: argparse.Namespace) -> int:
    from .imageio import write_image
    from .pipeline import GenerationRequest, Pipeline
    from .timing import StepTimes

    labels = {}
    for item in args.label:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise VetrinaError(f"--label {item!r}: expected NAME=VALUE")
        labels[name] = value
    for name in ("category", "colour"):
        if getattr(args, name):
            labels[name] = getattr(args, name)
    seeds = args.seed
    if args.count:
        if len(seeds) != 1:
            raise VetrinaError("--count takes one --seed to count from")
        seeds = list(range(seeds[0], seeds[0] + args.count))
    times = StepTimes()
    with times.step("load pipeline"):
        pipeline = Pipeline.load(
            args.pipeline,
            device=args.device,
            threads=args.threads,
            batch_size=args.batch,
            times=times,
            log=print,
        )
    if pipeline.source is None:
        raise VetrinaError(
            f"{pipeline.spec.name} edits photos, it generates nothing",
            hint=f"run it with 'vetrina run {args.pipeline} PHOTOS... -o DIR'",
        )
    if args.output.exists() and not args.output.is_dir():
        raise VetrinaError(f"output folder {args.output} is a file", hint="give a folder with -o")
    print("\n".join(pipeline.describe()))
    requests = [GenerationRequest(seed, dict(labels)) for seed in seeds]
    images = pipeline.generate(requests, output_order="BGR")
    fmt = pipeline.spec.output["format"]
    ext = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[fmt]
    args.output.mkdir(parents=True, exist_ok=True)
    stem = "-".join(v for _, v in sorted(labels.items())) or "generated"
    for request, image in zip(requests, images, strict=True):
        path = args.output / f"{stem}-seed{request.seed}{ext}"
        with times.step("encode + write"):
            write_image(
                path,
                image,
                quality=pipeline.spec.output["quality"],
                metadata=pipeline.provenance(request),
                png_compression=pipeline.spec.output["png_compression"],
            )
        print(f"wrote {path}")
    print(times.table())
    return EXIT_OK


def _add_build_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="ONNX -> TensorRT engine in the content-addressed engine store",
        description="Build a TensorRT plan (strongly typed: the precision the ONNX graph "
        "carries) for this GPU and TensorRT version and store it under a key of (ONNX hash, "
        "profiles, TensorRT version, GPU, builder options); an existing entry is reused. "
        "Needs an NVIDIA GPU and 'vetrina[gpu]'.",
        epilog="--profile NAME:MIN,OPT,MAX (e.g. image:1x3x64x64,4x3x256x256,8x3x512x512) or "
        "NAME:SHAPE. Repeat it for more inputs; repeating an input already in the current "
        "profile starts the next profile. Default: one profile from the model contract (batch "
        "1/4/8, sides from the smallest allowed to 2048, tuned at 512).",
    )
    p.add_argument("model", type=Path, help="ONNX model converted by vetrina")
    p.add_argument(
        "--profile",
        action="append",
        metavar="NAME:MIN,OPT,MAX",
        help="shape range of a dynamic input (see below)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "fp32"),
        default="auto",
        help="auto: the graph's own types, TF32 allowed (default); fp32: TF32 off, "
        "fp32 models only",
    )
    p.add_argument(
        "--workspace", type=positive_int, metavar="MiB", help="workspace memory pool limit"
    )
    p.add_argument(
        "--timing-cache", type=Path, metavar="FILE", help="reuse and update this timing cache"
    )
    p.add_argument(
        "--store",
        type=Path,
        metavar="DIR",
        help="engine store (default $VETRINA_ENGINE_STORE or ~/.cache/vetrina/engines)",
    )
    p.add_argument("--device", type=int, default=0, help="CUDA device ordinal (default 0)")
    p.add_argument("--force", action="store_true", help="rebuild even if the store has it")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_build)


def _add_doctor_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="list what will hurt on TensorRT or in fp16, with fixes",
        description="Check an ONNX model (or a checkpoint, exported first) for ops TensorRT "
        "cannot build, antialiased or computed-scale Resize, FFTs, GridSample, pixel "
        "unshuffles, norms and reductions at risk in fp16, int64 shape arithmetic, and "
        "activations beyond fp16's range measured with ONNX Runtime on rendered catalog "
        "photos. Exits 1 when a finding is an error (with --strict: also a warning).",
    )
    p.add_argument("model", type=Path, help="ONNX model, or a checkpoint (.pt) to export first")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.add_argument("--no-run", action="store_true", help="static checks only (no ONNX Runtime run)")
    p.add_argument("--size", type=positive_int, default=256, help="sample image side (default 256)")
    p.add_argument("--samples", type=positive_int, default=2, help="sample images (default 2)")
    p.add_argument("--arch", help="architecture of a bare state_dict checkpoint")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow checkpoints with pickled code (only for files you trust)",
    )
    p.set_defaults(func=_cmd_doctor)


def _cmd_build(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise VetrinaError(
            "vetrina build reads the ONNX model with the onnx package, which is not installed",
            hint="pip install 'vetrina[convert]'",
        ) from None
    from vetrina.converters.tensorrt import BuildOptions, build_engine

    try:
        options = BuildOptions(
            precision=args.precision,
            workspace_mib=args.workspace,
            timing_cache=args.timing_cache,
            device=args.device,
        )
    except ValueError as exc:
        raise VetrinaError(str(exc)) from None
    result = build_engine(
        args.model, profiles=args.profile, options=options, store=args.store, force=args.force
    )
    env = result.environment
    if args.json:
        print(
            json.dumps(
                {
                    "key": result.key,
                    "path": str(result.path),
                    "cached": result.cached,
                    "environment": env.to_json(),
                    "profiles": [str(p) for p in result.profiles],
                    "precision": result.precision,
                    "plan_bytes": result.plan_bytes,
                    "seconds": round(result.seconds, 3),
                    "notes": result.notes,
                },
                indent=2,
            )
        )
        return EXIT_OK
    verb = "found" if result.cached else f"built in {result.seconds:.1f} s:"
    print(f"{verb} engine {result.key[:16]}... for {env.describe()}")
    print(f"  plan       {result.path} ({result.plan_bytes / 1e6:.1f} MB)")
    for i, profile in enumerate(result.profiles):
        print(f"  profile {i}  {profile}")
    prec = result.precision
    if prec:
        print(f"  precision  expected {prec.get('expected')}, built {prec.get('built')}")
    for note in result.notes:
        print(f"  note       {note}")
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise VetrinaError(
            "vetrina doctor needs the onnx package, which is not installed",
            hint="pip install 'vetrina[convert]'",
        ) from None
    from vetrina.converters.doctor import diagnose, diagnose_checkpoint

    options = {"measure": not args.no_run, "samples": args.samples, "size": args.size}
    if args.model.suffix.lower() == ".onnx":
        report = diagnose(args.model, **options)
    else:
        needs_convert()
        report = diagnose_checkpoint(
            args.model, arch=args.arch, trusted=args.trust_pickle, **options
        )
    print(report.to_json() if args.json else report.table())
    return report.exit_code(strict=args.strict)


def _cmd_contract(args: argparse.Namespace) -> int:
    from .foreign import write_contract

    path, contract = write_contract(args.model, args.preset, size=args.size)
    (spec,) = contract.inputs
    side = contract.static_size
    print(
        f"wrote {path}: matting, input {spec.name!r} {side[0]}x{side[1]} "  # type: ignore[index]
        f"mean {spec.mean} std {spec.std}, output {contract.outputs[0].name!r}"
    )
    return EXIT_OK


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .model import Model

    model = Model.open(args.model)
    contract = model.contract
    if args.json:
        print(json.dumps(json.loads(contract.to_json()), indent=2))
        return EXIT_OK
    prov = contract.provenance
    print(f"model      {model.path}")
    print(f"role       {contract.role}")
    print(
        f"arch       {prov.get('architecture')}  precision {prov.get('precision')}  "
        f"opset {prov.get('opset')}"
    )
    for kind, specs, infos in (
        ("input ", contract.inputs, model.session.inputs),
        ("output", contract.outputs, model.session.outputs),
    ):
        shapes = {i.name: i.shape for i in infos}
        for s in specs:
            dims = "x".join("?" if d is None else str(d) for d in shapes[s.name])
            print(
                f"{kind}     {s.name}: {s.semantic} {s.layout} {s.channels} {s.dtype} "
                f"range {s.range} shape {dims}"
            )
    sp = contract.spatial
    print(
        f"spatial    multiple of {sp.multiple_of}, min {sp.min_size}, max {sp.max_size or '-'}, "
        f"scale x{sp.scale}"
    )
    if contract.verification:
        v = contract.verification
        verdict = "passed" if v.get("passed") is True else "FAILED"
        cases = v.get("cases")
        print(
            f"verified   {verdict}: max abs {_number(v.get('max_abs'), '.2e')}, "
            f"min PSNR {_number(v.get('min_psnr_db'), '.1f')} dB on "
            f"{len(cases) if isinstance(cases, list) else '?'} cases"
        )
    print(
        f"checkpoint {prov.get('checkpoint')} sha256 {str(prov.get('checkpoint_sha256'))[:16]}..."
    )
    print(f"backend    onnxruntime {', '.join(model.session.providers)}")
    return EXIT_OK


def _number(value: object, spec: str) -> str:
    """A contract's number formatted, or '?' where a hand-written sidecar has none."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return value if value in ("inf", "-inf", "nan") else "?"  # type: ignore[return-value]


def _cmd_demo(args: argparse.Namespace) -> int:
    needs_convert()
    from .demo import run_demo

    run_demo(args.output, images=args.images, size=args.size, chains=not args.no_chains)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vetrina`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_opencv()
    try:
        return int(args.func(args))
    except VetrinaError as exc:
        if args.debug:
            raise
        print(f"vetrina: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("vetrina: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unexpected environment problem: still one line
        if args.debug:
            raise
        text = " ".join(str(exc).split())[:300]
        print(
            f"vetrina: internal error: {type(exc).__name__}: {text} (rerun with --debug for "
            "the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _quiet_opencv() -> None:
    """OpenCV prints decoder warnings to stderr; vetrina reports bad files itself."""
    import contextlib

    import cv2

    with contextlib.suppress(AttributeError):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


if __name__ == "__main__":
    sys.exit(main())
