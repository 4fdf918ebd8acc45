"""The reference zoo: models trained here, by our own recipes, on the rendered catalog.

Checkpoints live in ``models/zoo/`` (shipped in the package); ``vetrina zoo train NAME``
regenerates one from its recipe.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vetrina.errors import VetrinaError

ZOO_DIR = Path(__file__).resolve().parent / "zoo"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    architecture: str
    checkpoint: str  # file name inside ZOO_DIR
    recipe: str  # module implementing train(...) and evaluate(...)
    description: str

    @property
    def path(self) -> Path:
        return ZOO_DIR / self.checkpoint

    def recipe_module(self) -> Any:
        return importlib.import_module(self.recipe)


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            name="enhancer",
            architecture="enhancer",
            checkpoint="enhancer.pt",
            recipe="vetrina.models.training.enhancer",
            description="fixes low contrast, colour cast and noise (editor, RGB [0,1])",
        ),
    )
}


def get_entry(name: str) -> ZooEntry:
    try:
        return ZOO[name]
    except KeyError:
        raise VetrinaError(f"unknown zoo model {name!r}; known: {', '.join(sorted(ZOO))}") from None


def checkpoint_path(name: str) -> Path:
    """Path of a zoo model's committed checkpoint; an error naming the fix if it is absent."""
    entry = get_entry(name)
    if not entry.path.is_file():
        raise VetrinaError(
            f"zoo checkpoint {entry.path} is missing", hint=f"run 'vetrina zoo train {name}'"
        )
    return entry.path
