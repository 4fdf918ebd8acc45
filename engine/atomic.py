"""Atomic file output: write to a temporary sibling, then rename over the target.

A reader never sees a half-written file, and a failure leaves nothing behind. The file gets
the permissions a plain ``open(path, "w")`` would give (mkstemp alone makes them 0600).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on normal exit it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def current_umask() -> int:
    """The process umask, read without changing it where Linux reports it (``os.umask``
    can only be read by setting it, which for a moment gives files and folders that another
    thread creates no umask at all); elsewhere set and restored once per process."""
    global _CACHED
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _LOCK:
        if _CACHED is None:
            _CACHED = os.umask(0)
            os.umask(_CACHED)
        return _CACHED


_LOCK = threading.Lock()
_CACHED: int | None = None
