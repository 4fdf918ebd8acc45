"""Resident memory of this process, for benchmarks: now, peak, and a peak reset (Linux
``/proc``; ``getrusage`` elsewhere)."""

from __future__ import annotations

import re
import sys
from pathlib import Path


def current_rss() -> int | None:
    """Resident bytes of this process now (VmRSS); None where /proc is missing."""
    return _proc_status_bytes("VmRSS")


def peak_rss() -> int | None:
    """Peak resident bytes (VmHWM; else getrusage's ru_maxrss); None where neither exists."""
    value = _proc_status_bytes("VmHWM")
    if value is not None:
        return value
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: '5' into /proc/self/clear_refs) so the next
    peak is the run's own; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _proc_status_bytes(key: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None
