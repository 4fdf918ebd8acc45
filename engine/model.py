"""A loaded model: a backend session plus the contract that says how to feed it."""

from __future__ import annotations

import os
from pathlib import Path

from .backends import Session, TensorInfo
from .contract import METADATA_KEY, Contract, TensorSpec
from .errors import ModelError


class Model:
    """A model file opened on a device, with its validated contract."""

    def __init__(self, session: Session, contract: Contract, path: Path) -> None:
        for kind, specs, infos in (
            ("input", contract.inputs, session.inputs),
            ("output", contract.outputs, session.outputs),
        ):
            by_name = {t.name: t for t in infos}
            for spec in specs:
                info = by_name.get(spec.name)
                if info is None:
                    raise ModelError(
                        f"{path}: contract names {kind} {spec.name!r} but the model's {kind}s "
                        f"are {sorted(by_name)}"
                    )
                _check_agrees(path, kind, spec, info)
        self.session = session
        self.contract = contract
        self.path = path

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str = "cpu",
        threads: int | None = None,
        spinning: bool = False,
    ) -> Model:
        """Open an ONNX model converted by vetrina (its contract is in the metadata), or any
        ONNX file with a contract beside it (:mod:`vetrina.foreign`);
        ``threads`` and ``spinning`` as :class:`~vetrina.backends.onnxruntime.OrtSession`.
        ``device="trt"`` runs the plan ``vetrina build`` stored for this file natively in
        TensorRT (:mod:`vetrina.backends.tensorrt`); the other devices are ONNX Runtime's."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        if path.stat().st_size == 0:
            raise ModelError(f"{path}: model file is empty (0 bytes)")
        if device == "trt":
            from .backends.tensorrt import open_engine

            engine = open_engine(path)
            return cls(engine, engine.contract, path)
        from .backends.onnxruntime import OrtSession

        session = OrtSession(path, device=device, threads=threads, spinning=spinning)
        text = session.metadata.get(METADATA_KEY)
        if text is not None:
            return cls(session, Contract.from_json(text), path)
        from .foreign import read_sidecar, sidecar_path

        contract = read_sidecar(path)
        if contract is None:
            raise ModelError(
                f"{path}: has no vetrina contract ({METADATA_KEY} metadata, or "
                f"{sidecar_path(path).name} beside it)",
                hint="convert the checkpoint with 'vetrina convert', or describe a file you "
                "already have with 'vetrina contract FILE --preset u2net|isnet'",
            )
        return cls(session, contract, path)

    def output_index(self, name: str) -> int:
        """Position of the named output in the backend's output list."""
        for i, info in enumerate(self.session.outputs):
            if info.name == name:
                return i
        raise ModelError(f"{self.path}: no output named {name!r}")


_CHANNELS = {"RGB": 3, "BGR": 3, "L": 1}


def _check_agrees(path: Path, kind: str, spec: TensorSpec, info: TensorInfo) -> None:
    """The contract's dtype, layout rank and channel count against the model's own tensor,
    so a hand-written or stale contract fails when the model is opened, not at a request."""
    where = f"{path}: {kind} {spec.name!r}"
    fix = "correct the contract (vetrina contract FILE ...) or re-convert the model"
    if info.dtype.name != spec.dtype:
        raise ModelError(
            f"{where} is {info.dtype.name} in the model; the contract says {spec.dtype}",
            hint=fix,
        )
    if info.shape and len(info.shape) != len(spec.layout):  # () : a graph without shapes
        raise ModelError(
            f"{where} has rank {len(info.shape)} in the model; the contract's layout "
            f"{spec.layout} has rank {len(spec.layout)}",
            hint=fix,
        )
    want = _CHANNELS.get(spec.channels)
    have = info.shape[1] if spec.layout == "NCHW" and len(info.shape) == 4 else None
    if want is not None and have is not None and have != want:
        raise ModelError(
            f"{where} has {have} channels in the model; the contract says {spec.channels} ({want})",
            hint=fix,
        )
