"""The inputs of the zoo generators: seeded latents and label indices (numpy only, no torch).

A generator maps ``(z, category, colour)`` to an image, and ``z`` is an explicit input, so the
seed -> image contract lives here: ``latent(seed, z_dim)`` is a standard normal vector drawn
from ``np.random.default_rng(seed)``, and "red sneaker, seed 7" always gives the same picture
with the same model, in PyTorch and in the exported ONNX graph alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from vetrina.models.catalog import CATEGORIES, COLOURS

__all__ = [
    "COLOUR_NAMES",
    "category_index",
    "colour_index",
    "generator_inputs",
    "latent",
    "latents",
]

COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)


def _check_seed(seed: object) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _check_z_dim(z_dim: object) -> int:
    if not isinstance(z_dim, (int, np.integer)) or isinstance(z_dim, bool) or z_dim < 1:
        raise ValueError(f"z_dim must be a positive int, got {z_dim!r}")
    return int(z_dim)


def latent(seed: int, z_dim: int) -> np.ndarray:
    """The latent of ``seed``: float32 (z_dim,), standard normal from default_rng(seed)."""
    rng = np.random.default_rng(_check_seed(seed))
    return rng.standard_normal(_check_z_dim(z_dim)).astype(np.float32)


def latents(seeds: Iterable[int], z_dim: int) -> np.ndarray:
    """One latent per seed, stacked: float32 (N, z_dim); row i is ``latent(seeds[i], z_dim)``."""
    z_dim = _check_z_dim(z_dim)
    rows = [latent(s, z_dim) for s in seeds]
    return np.stack(rows) if rows else np.zeros((0, z_dim), np.float32)


def _index(what: str, name: object, valid: Sequence[str]) -> int:
    if isinstance(name, str) and name in valid:
        return valid.index(name)
    raise ValueError(f"unknown {what} {name!r}; valid: {', '.join(valid)}")


def category_index(name: str) -> int:
    """Index of category ``name`` in :data:`vetrina.models.catalog.CATEGORIES`."""
    return _index("category", name, CATEGORIES)


def colour_index(name: str) -> int:
    """Index of colour ``name`` in :data:`vetrina.models.catalog.COLOURS` (insertion order)."""
    return _index("colour", name, COLOUR_NAMES)


def generator_inputs(
    seeds: Iterable[int], categories: Iterable[str], colours: Iterable[str], z_dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A generator batch: ``z`` float32 (N, z_dim), ``category`` and ``colour`` int64 (N,).

    ``seeds``, ``categories`` and ``colours`` are parallel sequences of the same length.
    """
    seeds, categories, colours = list(seeds), list(categories), list(colours)
    if not len(seeds) == len(categories) == len(colours):
        raise ValueError(
            f"seeds, categories and colours must have the same length, got "
            f"{len(seeds)}, {len(categories)} and {len(colours)}"
        )
    z = latents(seeds, z_dim)
    cat = np.array([category_index(c) for c in categories], dtype=np.int64)
    col = np.array([colour_index(c) for c in colours], dtype=np.int64)
    return z, cat, col
