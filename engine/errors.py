"""The error types vetrina raises for problems a user can fix.

Each message names the problem and, where there is one, the fix, on one line: the CLI prints
``str(error)`` and exits non-zero without a traceback.
"""

from __future__ import annotations


class VetrinaError(Exception):
    """Base of every error vetrina raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class InputError(VetrinaError):
    """An input image or file that cannot be used (missing, empty, corrupt, too large)."""


class ModelError(VetrinaError):
    """A model file that cannot be opened or lacks what the engine needs (e.g. its contract)."""


class CheckpointError(VetrinaError):
    """A checkpoint that cannot be loaded safely or does not match its architecture."""


class ConversionError(VetrinaError):
    """Export to ONNX failed or produced an invalid model."""


class VerificationError(ConversionError):
    """The exported model differs from PyTorch by more than the gate allows."""

    def __init__(self, message: str, *, report: object, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report


class DependencyError(VetrinaError):
    """An optional dependency is missing or broken; the message names the extra to install."""


class DeviceError(VetrinaError):
    """The requested device or execution provider is not available (never a silent fallback)."""


class OverloadedError(VetrinaError):
    """A bounded request queue is full: the client should back off (a service answers 503)."""


def failure_message(exc: Exception) -> str:
    """One item's error for a per-item report: a :class:`VetrinaError` as it reads, any other
    exception marked as internal (a bug to report), so one item never fails its batch."""
    if isinstance(exc, VetrinaError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"
