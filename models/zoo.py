"""The reference zoo: models trained here, by our own recipes, on the rendered catalog.

Checkpoints live in ``models/zoo/`` (shipped in the package); ``vetrina zoo train NAME``
regenerates one from its recipe.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vetrina.errors import VetrinaError

ZOO_DIR = Path(__file__).resolve().parent / "zoo"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    architecture: str
    checkpoint: str  # file name inside ZOO_DIR
    recipe: str  # module with Recipe, train(...), evaluate(...) and checks(...)
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)  # Recipe fields for this entry

    @property
    def path(self) -> Path:
        return ZOO_DIR / self.checkpoint

    def recipe_module(self) -> Any:
        return importlib.import_module(self.recipe)

    def make_recipe(self, **changes: Any) -> Any:
        """This entry's Recipe: the recipe defaults, the entry's overrides, then ``changes``."""
        return self.recipe_module().Recipe(**{**self.overrides, **changes})


_T = "vetrina.models.training."

#: In training order: the classifier first, because the generators are judged by it.
ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            name="classifier",
            architecture="catalog-classifier",
            checkpoint="classifier.pt",
            recipe=_T + "classifier",
            description="names a photo's category and colour; judges the generators",
        ),
        ZooEntry(
            name="gan",
            architecture="cgan-generator",
            checkpoint="gan.pt",
            recipe=_T + "gan",
            description="class-conditional GAN: (z, category, colour) -> 64x64 product photo",
        ),
        ZooEntry(
            name="vae",
            architecture="cvae-decoder",
            checkpoint="vae.pt",
            recipe=_T + "vae",
            description="conditional VAE decoder: (z, category, colour) -> 64x64 product photo",
        ),
        ZooEntry(
            name="style-vintage",
            architecture="transformer-net",
            checkpoint="style-vintage.pt",
            recipe=_T + "style",
            description="fast-neural-style TransformerNet: faded warm 'vintage' catalog look",
            overrides={"look": "vintage"},
        ),
        ZooEntry(
            name="style-cartoon",
            architecture="transformer-net",
            checkpoint="style-cartoon.pt",
            recipe=_T + "style",
            description="fast-neural-style TransformerNet: flat-colour 'cartoon' catalog look",
            overrides={"look": "cartoon", "steps": 3600},  # the cartoon look needs longer
        ),
        ZooEntry(
            name="detector",
            architecture="defect-detector",
            checkpoint="detector.pt",
            recipe=_T + "detector",
            description="marks scratches, dust, stains, watermarks, JPEG blocks (mask 0..1)",
        ),
        ZooEntry(
            name="inpainter",
            architecture="inpainter",
            checkpoint="inpainter.pt",
            recipe=_T + "inpainter",
            description="repaints masked defects (image + mask -> image)",
        ),
        ZooEntry(
            name="enhancer",
            architecture="enhancer",
            checkpoint="enhancer.pt",
            recipe=_T + "enhancer",
            description="fixes contrast, colour cast, exposure, noise, blur, downscale",
        ),
        ZooEntry(
            name="upscaler",
            architecture="compact-upscaler",
            checkpoint="upscaler.pt",
            recipe=_T + "upscaler",
            description="x2 super-resolution (PixelShuffle compact net)",
        ),
        ZooEntry(
            name="matting",
            architecture="u2netp",
            checkpoint="matting.pt",
            recipe=_T + "matting",
            description="U²-Net-p product alpha (background removal; shadows excluded)",
        ),
    )
}


def resolve_names(name: str) -> list[str]:
    """``all`` -> every zoo model in training order; otherwise the one (checked) name."""
    if name == "all":
        return list(ZOO)
    get_entry(name)
    return [name]


def load_module(name: str, checkpoint: str | Path | None = None) -> Any:
    """The trained torch module of zoo model ``name`` (from its committed checkpoint)."""
    from vetrina.converters.convert import build_module, resolve_architecture
    from vetrina.models.checkpoint import load_checkpoint

    entry = get_entry(name)
    ckpt = load_checkpoint(checkpoint or checkpoint_path(name))
    module = build_module(resolve_architecture(ckpt, entry.architecture), ckpt)
    module.eval()
    return module


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
