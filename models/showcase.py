"""Pictures of the zoo at work, for the README: generated products and each editor's effect.

Everything is computed here, from the committed checkpoints and held-out (test split) renders,
with the PyTorch modules: ``vetrina zoo sheet`` regenerates the PNG. Two sheets:

* ``zoo_sheet``: one row of generated products per generator (one per category), then
  before/after pairs for every editor (the upscaler's "before" is bicubic from the same
  half-size image);
* ``chain_sheet``: a request ("red sneaker, seed 7") turned into a catalog image by
  generate -> upscale x2 -> enhance, and a supplier photo with defects cleaned by
  detect -> inpaint -> enhance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vetrina.imageio import write_image
from vetrina.models import catalog, defects, degrade, latents
from vetrina.models.training.common import from_tensor, to_tensor
from vetrina.sheet import contact_sheet

TILE = 128
_PAIRS = 4  # before/after pairs per editor row
_SHOW_COLOURS = ("red", "blue", "yellow", "green", "black", "pink", "orange", "white")


def _modules(names: tuple[str, ...]) -> dict[str, Any]:
    from vetrina.models.zoo import load_module

    return {name: load_module(name) for name in names}


def _run(module: Any, *inputs: Any) -> Any:
    import torch

    with torch.inference_mode():
        return module(*inputs)


def generate(module: Any, category: str, colour: str, seed: int) -> np.ndarray:
    """One generated 64x64 uint8 RGB product for a request: the seed fixes the latent."""
    import torch

    z_dim = module.z_dim
    z = torch.from_numpy(latents.latent(seed, z_dim)[None])
    cat = torch.tensor([latents.category_index(category)], dtype=torch.int64)
    col = torch.tensor([latents.colour_index(colour)], dtype=torch.int64)
    image = _run(module, z, cat, col)
    return from_tensor(image.add(1.0).mul(0.5))[0]


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with the mask (0..1 float or 0/255) painted in magenta."""
    m = mask.astype(np.float32)
    m = m / 255.0 if m.max() > 1.0 else m
    tint = np.array([255, 0, 255], np.float32)
    out = image.astype(np.float32) * (1 - 0.7 * m[..., None]) + tint * 0.7 * m[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _test_photos(count: int, start: int) -> np.ndarray:
    seeds = catalog.split_seeds("test", count, start=start)
    return catalog.render_batch(seeds, TILE)[0]


def _show(image: np.ndarray) -> np.ndarray:
    """A 64 px generated image shown at tile size (pixel-exact nearest-neighbour x2)."""
    return cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_NEAREST)


def _inpaint(module: Any, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The inpainter over uint8 images and 0/1 masks (N, H, W)."""
    import torch

    mask = torch.from_numpy(masks.astype(np.float32)[:, None])
    return from_tensor(_run(module, to_tensor(images), mask))


def _local_defects(photos: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Photos with local defects only (a whole-image JPEG save leaves nothing to repaint)."""
    local = tuple(k for k in defects.KINDS if k != "jpeg")
    return defects.add_defects_batch(photos, np.random.default_rng(seed), local)


def zoo_sheet(out: str | os.PathLike[str]) -> Path:
    """Generated products per category, then before/after pairs for each editor."""
    from vetrina.models.training.style import stylize
    from vetrina.models.training.upscaler import downscale, upscale

    editors = ("detector", "inpainter", "enhancer", "upscaler", "style-vintage", "style-cartoon")
    m = _modules(("gan", "vae", *editors))
    rows: list[list[np.ndarray]] = []
    labels: list[str] = []
    for name in ("gan", "vae"):
        rows.append(
            [
                _show(generate(m[name], cat, col, seed=7))
                for cat, col in zip(catalog.CATEGORIES, _SHOW_COLOURS, strict=True)
            ]
        )
        labels.append(name)

    photos = _test_photos(_PAIRS, start=500)
    rng = np.random.default_rng(5)
    bad, _ = defects.add_defects_batch(photos, rng)
    found = _run(m["detector"], to_tensor(bad)).numpy()[:, 0]
    rows.append([x for b, f in zip(bad, found, strict=True) for x in (b, _overlay(b, f))])
    labels.append("detector")

    degraded = degrade.degrade_batch(photos, rng, degrade.KINDS)
    enhanced = from_tensor(_run(m["enhancer"], to_tensor(degraded)))
    rows.append([x for d, e in zip(degraded, enhanced, strict=True) for x in (d, e)])
    labels.append("enhancer")

    bad, masks = _local_defects(photos, seed=6)
    inpainted = _inpaint(m["inpainter"], bad, masks > 0)
    rows.append([x for b, i in zip(bad, inpainted, strict=True) for x in (b, i)])
    labels.append("inpainter")

    small = np.stack([downscale(x) for x in photos])
    bicubic = [cv2.resize(x, (TILE, TILE), interpolation=cv2.INTER_CUBIC) for x in small]
    doubled = upscale(m["upscaler"], small)
    rows.append([x for b, u in zip(bicubic, doubled, strict=True) for x in (b, u)])
    labels.append("upscaler")

    for look in ("vintage", "cartoon"):
        styled = stylize(m[f"style-{look}"], photos)
        rows.append([x for p, s in zip(photos, styled, strict=True) for x in (p, s)])
        labels.append(f"style-{look}")
    sheet = contact_sheet(rows, labels)
    return write_image(Path(out), sheet[:, :, ::-1])


def chain_sheet(
    out: str | os.PathLike[str], *, category: str = "sneaker", colour: str = "red", seed: int = 7
) -> Path:
    """Row 1: request -> GAN (64 px) -> upscaler (128 px) -> enhancer. Row 2: defective photo
    -> detected mask -> inpainter on that mask -> enhancer."""
    from vetrina.models.training.detector import THRESHOLD
    from vetrina.models.training.upscaler import upscale

    m = _modules(("gan", "upscaler", "enhancer", "detector", "inpainter"))
    generated = generate(m["gan"], category, colour, seed)
    doubled = upscale(m["upscaler"], generated[None])
    polished = from_tensor(_run(m["enhancer"], to_tensor(doubled)))[0]
    request = np.full((TILE, TILE, 3), 255, np.uint8)
    for i, text in enumerate((colour, category, f"seed {seed}")):
        cv2.putText(
            request,
            text,
            (8, 40 + 28 * i),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    bad, _ = _local_defects(_test_photos(1, start=900), seed=11)
    mask = _run(m["detector"], to_tensor(bad)).numpy()[:, 0]
    repainted = _inpaint(m["inpainter"], bad, mask >= THRESHOLD)
    cleaned = from_tensor(_run(m["enhancer"], to_tensor(repainted)))[0]
    rows = [
        [request, _show(generated), doubled[0], polished],
        [bad[0], _overlay(bad[0], mask[0]), repainted[0], cleaned],
    ]
    sheet = contact_sheet(rows, ["generate", "clean"])
    return write_image(Path(out), sheet[:, :, ::-1])
