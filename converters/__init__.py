"""Checkpoint -> ONNX conversion and verification (needs the ``convert`` extra: torch, onnx)."""

from __future__ import annotations

import importlib

from vetrina.errors import DependencyError

CONVERT_MODULES = ("torch", "onnx", "onnxscript")


def require_convert_dependencies() -> None:
    """Fail with the install command when PyTorch or ONNX (the ``convert`` extra) is missing."""
    missing = []
    for name in CONVERT_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise DependencyError(
            f"conversion and training need {', '.join(missing)}, which are not installed",
            hint="pip install 'vetrina[convert]' (see the Makefile for the pinned CPU torch)",
        )
