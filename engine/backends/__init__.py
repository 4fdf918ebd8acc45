"""Inference backends behind one small protocol (:class:`Session`).

Each backend lives in its own module and imports its runtime lazily, so ``import vetrina``
never loads ONNX Runtime, TensorRT or CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (None for dynamic axes) and numpy dtype of a model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


class Session(Protocol):
    """What the engine needs from a loaded model, whatever runs it."""

    @property
    def inputs(self) -> list[TensorInfo]: ...

    @property
    def outputs(self) -> list[TensorInfo]: ...

    @property
    def metadata(self) -> dict[str, str]: ...

    @property
    def device(self) -> str: ...

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...
