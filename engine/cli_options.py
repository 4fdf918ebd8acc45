"""Argument types and options shared by the CLI's subcommands (kept apart from cli.py so that
subcommand modules such as bench_cli can use them without importing the whole CLI)."""

from __future__ import annotations

import argparse

DEVICES = ("cpu", "cuda", "tensorrt", "trt")


def needs_convert() -> None:
    """Fail with the install hint unless the ``convert`` extra (torch, onnx) is installed."""
    from vetrina.converters import require_convert_dependencies

    require_convert_dependencies()


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number (nan and inf refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--threads``, as every command that runs models takes them."""
    p.add_argument(
        "--device",
        default="cpu",
        choices=DEVICES,
        help="execution device (default cpu): cpu, cuda and tensorrt are ONNX Runtime's "
        "providers, trt runs the engine 'vetrina build' stored for the model in TensorRT itself; "
        "an unavailable device is an error",
    )
    p.add_argument("--threads", type=positive_int, help="inference threads (default: per core)")
