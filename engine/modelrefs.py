"""Model references in pipelines: a path to a converted ONNX file, or ``zoo:NAME``.

``zoo:NAME`` is the zoo checkpoint converted (and verified) once, then kept in the cache
(``$VETRINA_CACHE``, else ``$XDG_CACHE_HOME/vetrina``, else ``~/.cache/vetrina``) under the
checkpoint's sha256 and the vetrina version, so a changed checkpoint or converter is never
served from a stale file. Converting needs the ``convert`` extra (PyTorch); ONNX paths do not.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .errors import DependencyError, InputError

ZOO_PREFIX = "zoo:"


def cache_dir() -> Path:
    """Where converted zoo models are kept."""
    explicit = os.environ.get("VETRINA_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vetrina"


def resolve_model(ref: str, base_dir: Path, *, log: Callable[[str], None] | None = None) -> Path:
    """The ONNX file ``ref`` names (relative paths from ``base_dir``)."""
    if ref.startswith(ZOO_PREFIX):
        return zoo_model(ref[len(ZOO_PREFIX) :], log=log)
    path = Path(ref).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise InputError(
            f"model {ref!r}: no such file ({path})",
            hint="give the path of a converted .onnx file (relative to the pipeline file) or "
            "zoo:NAME (see 'vetrina zoo list')",
        )
    return path


def zoo_model(name: str, *, log: Callable[[str], None] | None = None) -> Path:
    """The converted ONNX of zoo model ``name``, converting it on first use."""
    from vetrina.models import zoo

    if name not in zoo.ZOO:
        raise InputError(f"zoo:{name}: no such zoo model; known: {', '.join(sorted(zoo.ZOO))}")
    checkpoint = zoo.checkpoint_path(name)
    digest = file_sha256(checkpoint)[:16]
    out = cache_dir() / "models" / f"{name}-{digest}-v{__version__}.onnx"
    if out.is_file():
        return out
    try:
        from vetrina.converters.convert import convert
    except (ImportError, DependencyError) as exc:
        raise DependencyError(
            f"zoo:{name} must be converted once, which needs PyTorch ({exc})",
            hint="pip install 'vetrina[convert]', or convert elsewhere and name the .onnx file",
        ) from None
    if log:
        log(f"converting zoo:{name} once (verified against PyTorch) -> {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    convert(checkpoint, out)
    return out


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
