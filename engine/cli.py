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
from .errors import VetrinaError

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
        "width), check it, verify it against PyTorch and store the contract. "
        "Nothing is written when the parity gate fails.",
    )
    p.add_argument("checkpoint", type=Path, help="vetrina checkpoint or bare state_dict (.pt)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .onnx file")
    p.add_argument("--arch", help="architecture name (needed for bare state_dicts)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    p.add_argument("--max-abs", type=float, help="gate: largest allowed abs error (default 1e-3)")
    p.add_argument("--min-psnr", type=float, help="gate: smallest allowed PSNR in dB (default 60)")
    p.add_argument("--report", type=Path, help="write the verification report as JSON")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow checkpoints with pickled code (only for files you trust)",
    )
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser(
        "run",
        help="run an image model on files or folders",
        description="Decode images, preprocess with the fused kernel, run the "
        "model, postprocess back to the original size and write images. Bad "
        "files are reported and skipped.",
    )
    p.add_argument("model", type=Path, help="ONNX model converted by vetrina")
    p.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument(
        "--format",
        choices=("png", "jpeg", "webp"),
        default="png",
        help="output format (default png; JPEG flattens alpha onto white)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda", "tensorrt"),
        help="execution device (default cpu); an unavailable device is an error",
    )
    p.add_argument("--threads", type=_positive_int, help="inference threads (default: per core)")
    p.add_argument("--batch", type=_positive_int, default=4, help="images per batch (default 4)")
    p.add_argument(
        "--max-side",
        type=_positive_int,
        default=2048,
        help="longest side processed; larger images are processed downscaled and "
        "resized back (default 2048)",
    )
    p.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=64_000_000,
        help="refuse images with more pixels (default 64 MP)",
    )
    p.set_defaults(func=_cmd_run)

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
    p.add_argument("--images", type=_positive_int, default=8, help="number of sample photos")
    p.add_argument("--size", type=_positive_int, default=256, help="sample photo size in px")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("zoo", help="list, train and evaluate the reference models")
    zoo = p.add_subparsers(dest="zoo_command", metavar="ACTION", parser_class=_Parser)
    zoo.required = True
    z = zoo.add_parser("list", help="list zoo models and their checkpoints")
    z.set_defaults(func=_cmd_zoo_list)
    z = zoo.add_parser("train", help="train a zoo model (or all) from scratch on the CPU")
    z.add_argument("name", help="zoo model name or 'all' (see 'vetrina zoo list')")
    z.add_argument("--out", type=Path, help="checkpoint path (default: the zoo's own file)")
    z.add_argument("--steps", type=_positive_int, help="training steps (default: the recipe's)")
    z.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    z.add_argument("--no-progress", action="store_true", help="plain log lines, no progress bar")
    z.set_defaults(func=_cmd_zoo_train)
    z = zoo.add_parser(
        "eval",
        help="measure zoo checkpoints against classical baselines on the test split",
        description="Print the quality table (each model beside the classical tool it "
        "replaces) on held-out renders; exit 1 if a goal is missed.",
    )
    z.add_argument("name", help="zoo model name or 'all'")
    z.add_argument("--checkpoint", type=Path, help="checkpoint (default: the zoo's own file)")
    z.add_argument("--images", type=_positive_int, help="test images (default: the recipe's)")
    z.add_argument("--size", type=_positive_int, help="test image size (default: the recipe's)")
    z.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    z.set_defaults(func=_cmd_zoo_eval)
    z = zoo.add_parser(
        "sheet",
        help="draw the zoo's contact sheets (generated products, editors before/after, chains)",
    )
    z.add_argument("-o", "--output", type=Path, default=Path("docs"), help="folder (default docs)")
    z.set_defaults(func=_cmd_zoo_sheet)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _needs_convert() -> None:
    from vetrina.converters import require_convert_dependencies

    require_convert_dependencies()


def _cmd_convert(args: argparse.Namespace) -> int:
    _needs_convert()
    from vetrina.converters.convert import convert
    from vetrina.converters.verify import DEFAULT_GATES, Gate
    from vetrina.errors import VerificationError

    base = DEFAULT_GATES["fp32"]
    gate = Gate(
        max_abs=base.max_abs if args.max_abs is None else args.max_abs,
        min_psnr=base.min_psnr if args.min_psnr is None else args.min_psnr,
    )
    try:
        result = convert(
            args.checkpoint,
            args.output,
            arch=args.arch,
            opset=args.opset,
            gate=gate,
            trusted=args.trust_pickle,
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
    print(
        f"wrote {result.output} ({contract.role}, {contract.provenance['architecture']}, "
        f"opset {contract.provenance['opset']}, parity passed)"
    )
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from .editor import Editor
    from .files import collect_inputs, edit_files
    from .model import Model
    from .timing import StepTimes

    times = StepTimes()
    with times.step("load model"):
        model = Model.open(args.model, device=args.device, threads=args.threads)
    editor = Editor(model, max_side=args.max_side, batch_size=args.batch, times=times)
    sources = collect_inputs(args.inputs)
    if not sources:
        raise VetrinaError("no input images found", hint="give image files or folders with images")
    results = edit_files(editor, sources, args.output, fmt=args.format, max_pixels=args.max_pixels)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"skipped: {r.error}", file=sys.stderr)
    print(times.table())
    print(f"{len(results) - len(failed)} written to {args.output}, {len(failed)} failed")
    return EXIT_ERROR if failed else EXIT_OK


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
        verdict = "passed" if v.get("passed") else "FAILED"
        print(
            f"verified   {verdict}: max abs {v.get('max_abs'):.2e}, "
            f"min PSNR {float(v.get('min_psnr_db', 'nan')):.1f} dB on "
            f"{len(v.get('cases', []))} cases"
        )
    print(
        f"checkpoint {prov.get('checkpoint')} sha256 {str(prov.get('checkpoint_sha256'))[:16]}..."
    )
    print(f"backend    onnxruntime {', '.join(model.session.providers)}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    _needs_convert()
    from .demo import run_demo

    run_demo(args.output, images=args.images, size=args.size)
    return EXIT_OK


def _cmd_zoo_list(args: argparse.Namespace) -> int:
    from vetrina.models.zoo import ZOO

    for entry in ZOO.values():
        state = (
            f"{entry.path.stat().st_size / 1e6:.2f} MB" if entry.path.is_file() else "not trained"
        )
        print(f"{entry.name:<12} {entry.architecture:<12} {state:<12} {entry.description}")
    return EXIT_OK


def _cmd_zoo_train(args: argparse.Namespace) -> int:
    _needs_convert()
    from vetrina.models.zoo import get_entry, resolve_names

    names = resolve_names(args.name)
    if args.out and len(names) > 1:
        raise VetrinaError("--out names one file", hint="train one model at a time with --out")
    for name in names:
        entry = get_entry(name)
        changes = {"seed": args.seed}
        if args.steps:
            changes["steps"] = args.steps
        recipe = entry.make_recipe(**changes)
        command = (
            f"vetrina zoo train {name}"
            + (f" --seed {args.seed}" if args.seed else "")
            + (f" --steps {args.steps}" if args.steps else "")
        )
        out = entry.recipe_module().train(
            args.out or entry.path, recipe, command=command, progress=not args.no_progress
        )
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return EXIT_OK


def _cmd_zoo_eval(args: argparse.Namespace) -> int:
    _needs_convert()
    from vetrina.models.evaluation import format_table
    from vetrina.models.zoo import get_entry, load_module, resolve_names

    names = resolve_names(args.name)
    if args.checkpoint and len(names) > 1:
        raise VetrinaError("--checkpoint names one file", hint="evaluate one model with it")
    untrained = [n for n in names if len(names) > 1 and not get_entry(n).path.is_file()]
    if untrained:
        print(f"not trained yet (skipped): {', '.join(untrained)}", file=sys.stderr)
        names = [n for n in names if n not in untrained]
    checks = []
    for name in names:
        entry = get_entry(name)
        recipe_module = entry.recipe_module()
        module = load_module(name, args.checkpoint)
        metrics = recipe_module.evaluate(
            module, entry.make_recipe(), images=args.images, size=args.size
        )
        checks.extend(recipe_module.checks(metrics, name))
    print(format_table(checks, markdown=args.markdown))
    missed = [f"{c.model} {c.metric}" for c in checks if c.passed is False]
    if missed:
        print(f"{len(missed)} goal(s) missed: {', '.join(missed)}", file=sys.stderr)
        return EXIT_ERROR
    print(f"all {sum(c.passed is True for c in checks)} goals met")
    return EXIT_OK


def _cmd_zoo_sheet(args: argparse.Namespace) -> int:
    _needs_convert()
    from vetrina.models.showcase import chain_sheet, zoo_sheet

    for path in (
        zoo_sheet(args.output / "zoo-sheet.png"),
        chain_sheet(args.output / "zoo-chain.png"),
    ):
        print(f"wrote {path}")
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
