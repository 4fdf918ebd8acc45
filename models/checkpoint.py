"""vetrina's checkpoint format and safe loading of any PyTorch checkpoint.

A vetrina checkpoint is a ``torch.save`` dict that ``torch.load(weights_only=True)`` reads:
``{"format", "architecture", "config", "state_dict", "metadata"}``. Loading never runs pickled
code unless the caller says the file is trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vetrina.errors import CheckpointError

FORMAT = "vetrina-checkpoint/1"
TRUST_FLAG = "--trust-pickle"


@dataclass
class Checkpoint:
    """A loaded checkpoint: architecture name (None if the file does not say), config,
    tensors, metadata and the file's sha256."""

    architecture: str | None
    config: dict[str, Any]
    state_dict: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    path: Path | None = None


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    architecture: str,
    config: dict[str, Any],
    state_dict: dict[str, Any],
    metadata: dict[str, Any],
) -> Path:
    """Write a vetrina checkpoint (tensors made contiguous and detached, on the CPU)."""
    import torch

    path = Path(path)
    payload = {
        "format": FORMAT,
        "architecture": architecture,
        "config": _plain(config),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        # Plain JSON types only: anything else (a TorchVersion, a numpy scalar) would make
        # the file unreadable by torch.load(weights_only=True).
        "metadata": _plain(metadata),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


def load_checkpoint(path: str | os.PathLike[str], *, trusted: bool = False) -> Checkpoint:
    """Load a vetrina checkpoint or a bare state_dict, safely.

    ``trusted=True`` allows pickled Python objects (which can run arbitrary code): only for
    files from a source you trust.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] != b"PK" and head[:1] != b"\x80":
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (it is neither a torch.save zip archive nor a "
            "legacy pickle)"
        )
    if head[:2] == b"PK":
        _check_archive(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            raise CheckpointError(
                f"{path}: the checkpoint contains pickled Python objects, which can run "
                "arbitrary code when loaded; refused",
                hint=f"if you trust its source, pass {TRUST_FLAG}",
            ) from None
        raise CheckpointError(f"{path}: corrupt checkpoint ({_short(exc)})") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: truncated or corrupt checkpoint ({_short(exc)})",
            hint="re-download or re-save the file",
        ) from None
    return _interpret(raw, path)


def _check_archive(path: Path) -> None:
    """The CRC-32 of every member of a ``torch.save`` archive. PyTorch's reader does not check
    them, so a damaged download would load, with garbage weights that only show up later as a
    failed parity check (a few flipped bytes gave weights of 1e33)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: truncated or corrupt checkpoint ({_short(exc)})",
            hint="re-download or re-save the file",
        ) from None
    if bad is not None:
        raise CheckpointError(
            f"{path}: corrupt checkpoint: {bad!r} in the archive fails its CRC-32 check",
            hint="re-download or re-save the file",
        )


def _interpret(raw: Any, path: Path) -> Checkpoint:
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: holds a {type(raw).__name__}, not a dict of weights")
    sha = file_sha256(path)
    if raw.get("format") == FORMAT:
        for key in ("architecture", "config", "state_dict", "metadata"):
            if key not in raw:
                raise CheckpointError(f"{path}: vetrina checkpoint lacks the {key!r} entry")
        return Checkpoint(
            raw["architecture"],
            dict(raw["config"]),
            dict(raw["state_dict"]),
            dict(raw["metadata"]),
            sha,
            path,
        )
    # A bare state_dict, or a public project's file (BasicSR/Real-ESRGAN 'params_ema' or
    # 'params', DataParallel 'module.' keys): how it was unwrapped goes into the metadata.
    from vetrina.models.architectures.detect import unwrap_public

    try:
        state_dict, notes = unwrap_public(raw)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc.message}", hint=exc.hint) from None
    return Checkpoint(None, {}, state_dict, notes, sha, path)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else text or type(exc).__name__
