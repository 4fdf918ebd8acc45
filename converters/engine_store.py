"""A content-addressed store of TensorRT plans.

A plan is only valid for the TensorRT version and the GPU that built it (NVIDIA: "engines are
not portable across different GPU architectures" nor across TensorRT versions), for the
optimisation profiles it was built with and for the exact ONNX file. The store's key hashes
all of that, so a changed model, profile, TensorRT or GPU can never pick up a stale plan::

    STORE/<key[:2]>/<key>/engine.plan     the serialized plan (bytes from TensorRT)
                          contract.json   the model contract (vetrina.contract), for the runtime
                          key.json        the key's parts (human readable), the plan's sha256
                                          and size, and what the build found (precision, ...)

An entry appears at once or not at all: it is written into a temporary sibling folder and
renamed into place. Reading checks everything before returning bytes: the key recomputed from
``key.json``, the TensorRT version and GPU against the current ones (a mismatch names both and
says to rebuild), the contract, and the plan's size and sha256 (a truncated or corrupt plan is
an error, never handed to TensorRT).

Pure Python: no TensorRT or CUDA import. The current :class:`BuildEnvironment` is injected
(tests) or detected by ``vetrina.converters.tensorrt.detect_environment`` on a GPU machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vetrina.atomic import current_umask
from vetrina.contract import Contract
from vetrina.errors import ModelError

STORE_FORMAT = 1
"""Version of the layout and of ``key.json``; part of every key."""
PLAN_FILE, CONTRACT_FILE, KEY_FILE = "engine.plan", "contract.json", "key.json"
REBUILD = "rebuild with vetrina build"


class EngineStoreError(ModelError):
    """A store entry that is missing, corrupt or unusable."""


class EngineNotFoundError(EngineStoreError):
    """No entry for this key (or for this model in this environment)."""


class EngineMismatchError(EngineStoreError):
    """An entry built with another TensorRT version or on another GPU."""


@dataclass(frozen=True)
class BuildEnvironment:
    """What a plan is tied to: the TensorRT version and the GPU (name, compute capability)."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]

    @property
    def sm(self) -> str:
        """``"sm_90"`` for compute capability 9.0."""
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"

    def describe(self) -> str:
        return f"TensorRT {self.tensorrt_version} on {self.sm} {self.gpu_name}"

    def to_json(self) -> dict[str, Any]:
        major, minor = self.compute_capability
        return {
            "tensorrt": self.tensorrt_version,
            "gpu": self.gpu_name,
            "compute_capability": f"{major}.{minor}",
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> BuildEnvironment:
        major, _, minor = str(raw["compute_capability"]).partition(".")
        return cls(str(raw["tensorrt"]), str(raw["gpu"]), (int(major), int(minor or 0)))


@dataclass(frozen=True)
class EngineKey:
    """Everything a plan depends on. ``options`` holds the builder settings that change the
    plan (precision mode, workspace limit, ...); ``profiles`` is the canonical JSON form of
    the optimisation profiles (``profiles.profiles_to_json``)."""

    onnx_sha256: str
    profiles: tuple[Any, ...]
    environment: BuildEnvironment
    options: Mapping[str, Any] = field(default_factory=dict)

    def parts(self) -> dict[str, Any]:
        """The key's parts as written to ``key.json``."""
        return {
            "format": STORE_FORMAT,
            "onnx_sha256": self.onnx_sha256,
            "profiles": _plain(self.profiles),
            **self.environment.to_json(),
            "options": _plain(dict(self.options)),
        }

    @property
    def digest(self) -> str:
        """sha256 hex of the canonical JSON of :meth:`parts`."""
        return key_of_parts(self.parts())

    @classmethod
    def from_parts(cls, parts: Mapping[str, Any]) -> EngineKey:
        return cls(
            onnx_sha256=str(parts["onnx_sha256"]),
            profiles=tuple(parts["profiles"]),
            environment=BuildEnvironment.from_json(parts),
            options=dict(parts.get("options", {})),
        )


def key_of_parts(parts: Mapping[str, Any]) -> str:
    text = json.dumps(_plain(dict(parts)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    """JSON round trip: tuples become lists, so a key hashes the same before and after."""
    return json.loads(json.dumps(value, sort_keys=True))


@dataclass(frozen=True)
class StoredEngine:
    """A verified entry: the plan bytes, its contract and its ``key.json`` record."""

    key: str
    path: Path
    plan: bytes
    contract: Contract
    parts: dict[str, Any]
    build: dict[str, Any]

    @property
    def environment(self) -> BuildEnvironment:
        return BuildEnvironment.from_json(self.parts)


@dataclass(frozen=True)
class StoreEntry:
    """One folder of the store as listed by :meth:`EngineStore.entries` (not verified;
    ``error`` says why its ``key.json`` could not be read)."""

    key: str
    path: Path
    parts: dict[str, Any]
    build: dict[str, Any]
    plan_bytes: int | None
    error: str | None = None


def default_store_dir() -> Path:
    """``$VETRINA_ENGINE_STORE``, else ``$VETRINA_CACHE_DIR/engines``, else
    ``$XDG_CACHE_HOME/vetrina/engines``, else ``~/.cache/vetrina/engines``."""
    explicit = os.environ.get("VETRINA_ENGINE_STORE")
    if explicit:
        return Path(explicit).expanduser()
    root = os.environ.get("VETRINA_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "engines"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vetrina" / "engines"


class EngineStore:
    """The engine store rooted at ``root`` (created on the first write)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_dir()

    def entry_dir(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise EngineStoreError(f"{key!r} is not an engine key (64 lowercase hex digits)")
        return self.root / key[:2] / key

    # -- writing -------------------------------------------------------------------------------

    def put(
        self,
        key: EngineKey,
        plan: bytes | bytearray | memoryview,
        contract: Contract,
        build: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write an entry atomically (replacing an existing one); returns its folder."""
        data = bytes(plan)
        if not data:
            raise EngineStoreError("refusing to store an empty plan")
        digest = key.digest
        final = self.entry_dir(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "key": digest,
            "parts": key.parts(),
            "plan": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)},
            "build": _plain(dict(build or {})),
        }
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{digest[:12]}.", suffix=".tmp"))
        try:
            _write(tmp / PLAN_FILE, data)
            _write(tmp / CONTRACT_FILE, contract.to_json().encode())
            _write(tmp / KEY_FILE, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
            os.chmod(tmp, 0o777 & ~current_umask())
            if final.exists():
                old = final.with_name(f".{digest[:12]}.old.{os.getpid()}")
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def remove(self, key: str) -> bool:
        """Delete an entry; False when there was none."""
        path = self.entry_dir(key)
        if not path.exists():
            return False
        shutil.rmtree(path)
        with contextlib.suppress(OSError):
            path.parent.rmdir()
        return True

    # -- reading -------------------------------------------------------------------------------

    def load(self, key: str, environment: BuildEnvironment) -> StoredEngine:
        """The verified entry ``key`` for use in ``environment``.

        Raises :class:`EngineNotFoundError` (no entry), :class:`EngineMismatchError` (built for
        another TensorRT version or GPU) or :class:`EngineStoreError` (corrupt entry).
        """
        path = self.entry_dir(key)
        if not (path / KEY_FILE).is_file():
            raise EngineNotFoundError(
                f"no engine {key[:16]}... in {self.root}", hint=REBUILD + " MODEL.onnx"
            )
        record = _read_record(path)
        parts = record["parts"]
        if key_of_parts(parts) != key or record.get("key") != key:
            raise EngineStoreError(
                f"{path / KEY_FILE}: its parts do not hash to the folder's key (edited or damaged)",
                hint=f"delete {path} and {REBUILD}",
            )
        built = BuildEnvironment.from_json(parts)
        check_environment(built, environment, what=f"engine {key[:16]}...")
        try:
            contract = Contract.from_json((path / CONTRACT_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise EngineStoreError(
                f"{path}: the entry has no {CONTRACT_FILE}", hint=f"delete it and {REBUILD}"
            ) from None
        except (ModelError, UnicodeDecodeError) as exc:
            raise EngineStoreError(
                f"{path / CONTRACT_FILE}: unreadable contract ({exc})",
                hint=f"delete {path} and {REBUILD}",
            ) from None
        plan = _read_plan(path, record["plan"])
        return StoredEngine(key, path, plan, contract, parts, dict(record.get("build", {})))

    def lookup(self, key: EngineKey) -> StoredEngine | None:
        """The verified entry for exactly ``key``, or None when it was never built."""
        digest = key.digest
        if not (self.entry_dir(digest) / KEY_FILE).is_file():
            return None
        return self.load(digest, key.environment)

    def find(
        self,
        onnx_sha256: str,
        profiles: Sequence[Any],
        options: Mapping[str, Any],
        environment: BuildEnvironment,
    ) -> StoredEngine:
        """The entry for this model, profiles and options in ``environment``.

        When only builds for other TensorRT versions or GPUs exist, the
        :class:`EngineMismatchError` names them; with none at all, :class:`EngineNotFoundError`.
        """
        key = EngineKey(onnx_sha256, tuple(profiles), environment, options)
        found = self.lookup(key)
        if found is not None:
            return found
        same_model = [e for e in self.entries() if e.parts.get("onnx_sha256") == onnx_sha256]
        others = [e for e in same_model if _same_build(e.parts, key.parts())]
        if others:
            built = BuildEnvironment.from_json(others[0].parts)
            check_environment(built, environment, what="the stored engine for this model")
        if same_model:
            raise EngineNotFoundError(
                f"the store has {len(same_model)} engine(s) for this model, none with these "
                "profiles and builder options",
                hint=REBUILD + " (with the profiles you need)",
            )
        raise EngineNotFoundError(
            f"no engine for this model in {self.root}", hint=REBUILD + " MODEL.onnx"
        )

    def newest_for(self, onnx_sha256: str, environment: BuildEnvironment) -> StoredEngine:
        """The newest entry built from this model for ``environment``, whatever its profiles
        and options (what running a model by its ONNX file needs). Builds only for other
        TensorRT versions or GPUs raise :class:`EngineMismatchError` naming them; none at
        all, :class:`EngineNotFoundError`."""
        same_model = [
            e
            for e in self.entries()
            if e.error is None and e.parts.get("onnx_sha256") == onnx_sha256
        ]
        here = [e for e in same_model if BuildEnvironment.from_json(e.parts) == environment]
        if here:
            return self.load(here[-1].key, environment)  # entries() is oldest first
        if same_model:
            built = BuildEnvironment.from_json(same_model[-1].parts)
            check_environment(built, environment, what="the stored engine for this model")
        raise EngineNotFoundError(
            f"no engine for this model in {self.root}", hint=REBUILD + " MODEL.onnx"
        )

    def entries(self) -> list[StoreEntry]:
        """Every entry folder (temporary folders skipped), oldest first; unreadable
        ``key.json`` files are listed with ``error`` set rather than raised."""
        out = []
        if not self.root.is_dir():
            return out
        for path in sorted(self._entry_dirs()):
            try:
                record = _read_record(path)
            except EngineStoreError as exc:
                out.append(StoreEntry(path.name, path, {}, {}, None, error=str(exc)))
                continue
            plan_file = path / PLAN_FILE
            out.append(
                StoreEntry(
                    path.name,
                    path,
                    record["parts"],
                    dict(record.get("build", {})),
                    plan_file.stat().st_size if plan_file.is_file() else None,
                )
            )
        out.sort(key=lambda e: (str(e.build.get("created", "")), e.key))
        return out

    def _entry_dirs(self) -> Iterator[Path]:
        for shard in self.root.iterdir():
            if not shard.is_dir() or shard.name.startswith(".") or len(shard.name) != 2:
                continue
            for path in shard.iterdir():
                if path.is_dir() and not path.name.startswith(".") and path.name[:2] == shard.name:
                    yield path


def check_environment(built: BuildEnvironment, current: BuildEnvironment, *, what: str) -> None:
    """Refuse a plan built for another TensorRT version, compute capability or GPU model."""
    reasons = []
    if built.tensorrt_version != current.tensorrt_version:
        reasons.append("TensorRT version")
    if built.compute_capability != current.compute_capability:
        reasons.append("GPU architecture")
    elif built.gpu_name != current.gpu_name:
        reasons.append("GPU model")
    if reasons:
        raise EngineMismatchError(
            f"{what} was built with {built.describe()}; this is {current.describe()} "
            f"(different {' and '.join(reasons)}): TensorRT plans only run where they were "
            "built",
            hint=REBUILD,
        )


def _same_build(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Same model, profiles and options (the environment aside)."""
    return all(
        _plain(a.get(k)) == _plain(b.get(k))
        for k in ("format", "onnx_sha256", "profiles", "options")
    )


def _read_record(path: Path) -> dict[str, Any]:
    file = path / KEY_FILE
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
        parts = record["parts"]
        BuildEnvironment.from_json(parts)
        if parts.get("format") != STORE_FORMAT:
            raise EngineStoreError(
                f"{file}: store format {parts.get('format')!r}; this vetrina reads {STORE_FORMAT}",
                hint=f"delete {path} and {REBUILD}",
            )
        int(record["plan"]["bytes"])
        str(record["plan"]["sha256"])
    except EngineStoreError:
        raise
    except FileNotFoundError:
        raise EngineStoreError(
            f"{path}: the entry has no {KEY_FILE}", hint=f"delete it and {REBUILD}"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EngineStoreError(
            f"{file}: unreadable ({type(exc).__name__}: {exc})",
            hint=f"delete {path} and {REBUILD}",
        ) from None
    return record


def _read_plan(path: Path, expected: Mapping[str, Any]) -> bytes:
    file = path / PLAN_FILE
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise EngineStoreError(
            f"{path}: the entry has no {PLAN_FILE}", hint=f"delete it and {REBUILD}"
        ) from None
    want = int(expected["bytes"])
    if len(data) != want:
        raise EngineStoreError(
            f"{file}: truncated or damaged plan ({len(data)} bytes; the build wrote {want})",
            hint=f"delete {path} and {REBUILD}",
        )
    if hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise EngineStoreError(
            f"{file}: corrupt plan (sha256 differs from the one recorded at build time)",
            hint=f"delete {path} and {REBUILD}",
        )
    return data


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o666 & ~current_umask())
