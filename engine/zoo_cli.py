"""``vetrina zoo``: list, train, evaluate and draw the reference models (the command line of
:mod:`vetrina.models.zoo`). Added to the CLI by :func:`add_zoo_parser`; it does not import
:mod:`vetrina.cli`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_options import needs_convert, positive_int
from .errors import VetrinaError

EXIT_OK, EXIT_ERROR = 0, 1  # the values of vetrina.cli's


def add_zoo_parser(
    sub: argparse._SubParsersAction, *, parser_class: type[argparse.ArgumentParser]
) -> None:
    """Add the ``zoo`` subcommand (with its actions) to the ``vetrina`` subparsers."""
    p = sub.add_parser("zoo", help="list, train and evaluate the reference models")
    zoo = p.add_subparsers(dest="zoo_command", metavar="ACTION", parser_class=parser_class)
    zoo.required = True
    z = zoo.add_parser("list", help="list zoo models and their checkpoints")
    z.set_defaults(func=_zoo_list)
    z = zoo.add_parser("train", help="train a zoo model (or all) from scratch on the CPU")
    z.add_argument("name", help="zoo model name or 'all' (see 'vetrina zoo list')")
    z.add_argument("--out", type=Path, help="checkpoint path (default: the zoo's own file)")
    z.add_argument("--steps", type=positive_int, help="training steps (default: the recipe's)")
    z.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    z.add_argument("--no-progress", action="store_true", help="plain log lines, no progress bar")
    z.set_defaults(func=_zoo_train)
    z = zoo.add_parser(
        "eval",
        help="measure zoo checkpoints against classical baselines on the test split",
        description="Print the quality table (each model beside the classical tool it "
        "replaces) on held-out renders; exit 1 if a goal is missed.",
    )
    z.add_argument("name", help="zoo model name or 'all'")
    z.add_argument("--checkpoint", type=Path, help="checkpoint (default: the zoo's own file)")
    z.add_argument("--images", type=positive_int, help="test images (default: the recipe's)")
    z.add_argument("--size", type=positive_int, help="test image size (default: the recipe's)")
    z.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    z.set_defaults(func=_zoo_eval)
    z = zoo.add_parser(
        "sheet",
        help="draw the zoo's contact sheets (generated products, editors before/after, chains)",
    )
    z.add_argument("-o", "--output", type=Path, default=Path("docs"), help="folder (default docs)")
    z.set_defaults(func=_zoo_sheet)


def _zoo_list(args: argparse.Namespace) -> int:
    from vetrina.models.zoo import ZOO

    for entry in ZOO.values():
        state = (
            f"{entry.path.stat().st_size / 1e6:.2f} MB" if entry.path.is_file() else "not trained"
        )
        print(f"{entry.name:<12} {entry.architecture:<12} {state:<12} {entry.description}")
    return EXIT_OK


def _zoo_train(args: argparse.Namespace) -> int:
    needs_convert()
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


def _zoo_eval(args: argparse.Namespace) -> int:
    needs_convert()
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


def _zoo_sheet(args: argparse.Namespace) -> int:
    needs_convert()
    from vetrina.models.showcase import chain_sheet, zoo_sheet

    for path in (
        zoo_sheet(args.output / "zoo-sheet.png"),
        chain_sheet(args.output / "zoo-chain.png"),
    ):
        print(f"wrote {path}")
    return EXIT_OK
