"""Training recipe for the catalog classifier: name a photo's category and colour.

The classifier is the judge of the zoo generators (see :mod:`.generative`), so it is trained to
be fair to generated images: besides mirror flips, every training image may be blurred
slightly, resampled down and up, and given mild Gaussian noise -- the softness and grain a small
generator produces. Hues are never changed (the colour is a label). Data: renders of the
catalog's train split at 64 px; metrics on the test split. The baseline for the colour is what
a user could do without a model: the named colour nearest to the median of the pixels that
differ from the border (background) colour. The category has no classical baseline; chance
(1/8) is shown instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vetrina.models import catalog
from vetrina.models.architectures import get_architecture
from vetrina.models.checkpoint import save_checkpoint
from vetrina.models.evaluation import Check
from vetrina.models.latents import category_index, colour_index
from vetrina.models.training.common import (
    Log,
    Progress,
    Stopwatch,
    cosine_lr,
    metadata,
    optimise,
    print_log,
    random_flips,
    render_pool,
    seed_everything,
    to_tensor,
)

ARCHITECTURE = "catalog-classifier"
ACCURACY_GOAL = 0.95
_PALETTE = np.array(list(catalog.COLOURS.values()), dtype=np.float64)


@dataclass(frozen=True)
class Recipe:
    """Every knob of a training run (recorded in the checkpoint)."""

    steps: int = 900
    batch: int = 48
    size: int = 64
    pool: int = 6000
    lr: float = 3e-3
    weight_decay: float = 5e-4
    augment: float = 0.7  # probability that an image gets the robustness degradations
    seed: int = 0
    channels: int = 32
    eval_images: int = 800
    eval_size: int = 64


def labels_to_indices(labels: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """(category, colour) names -> int64 index arrays in CATEGORIES / COLOURS order."""
    cat = np.array([category_index(c) for c, _ in labels], dtype=np.int64)
    col = np.array([colour_index(c) for _, c in labels], dtype=np.int64)
    return cat, col


def augment(images: np.ndarray, rng: np.random.Generator, p: float = 0.7) -> np.ndarray:
    """Robustness degradations, each image independently: blur, down/up-sampling, noise.

    All of them keep hues: the colour of the product is a label.
    """
    out = images.copy()
    h, w = images.shape[1:3]
    for i in range(len(out)):
        if rng.random() >= p:
            continue
        img = out[i]
        if rng.random() < 0.5:
            sigma = rng.uniform(0.3, 1.2)
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        if rng.random() < 0.5:
            scale = rng.uniform(0.4, 0.85)
            small = cv2.resize(
                img, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=3
            )
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            noise = rng.normal(0.0, rng.uniform(2.0, 10.0), img.shape)
            img = np.clip(img + noise, 0, 255).astype(np.uint8)
        out[i] = img
    return out


def predict(module: Any, images: Any, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Predicted (category, colour) indices of float (N, 3, H, W) images in [0, 1]."""
    import torch

    module.eval()
    cats, cols = [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            cat, col = module(images[i : i + batch])
            cats.append(cat.argmax(1))
            cols.append(col.argmax(1))
    return torch.cat(cats).numpy(), torch.cat(cols).numpy()


def colour_baseline(image: np.ndarray) -> int:
    """Named colour (index) nearest the median of the pixels unlike the border colour."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).astype(np.float64)
    background = np.median(border, axis=0)
    pixels = image.reshape(-1, 3).astype(np.float64)
    far = np.linalg.norm(pixels - background, axis=1) > 40.0
    fg = pixels[far] if far.sum() >= 8 else pixels
    median = np.median(fg, axis=0)
    return int(np.argmin(((_PALETTE - median) ** 2).sum(axis=1)))


def evaluate(
    module: Any, recipe: Recipe = Recipe(), *, images: int | None = None, size: int | None = None
) -> dict[str, Any]:
    """Category and colour accuracy on the test split (and the colour baseline's accuracy)."""
    count, size = images or recipe.eval_images, size or recipe.eval_size
    pool, _, labels = render_pool(count, size, "test")
    cat, col = labels_to_indices(labels)
    pred_cat, pred_col = predict(module, to_tensor(pool))
    base_col = np.array([colour_baseline(img) for img in pool])
    return {
        "category_accuracy": float(np.mean(pred_cat == cat)),
        "colour_accuracy": float(np.mean(pred_col == col)),
        "colour_baseline_accuracy": float(np.mean(base_col == col)),
        "images": count,
        "size": size,
    }


def checks(metrics: dict[str, Any], name: str = "classifier") -> list[Check]:
    """Test-split accuracies (goal 0.95 each) beside chance / the median-colour baseline."""
    return [
        Check(
            name,
            "category accuracy",
            metrics["category_accuracy"],
            "chance",
            1.0 / len(catalog.CATEGORIES),
            f">= {ACCURACY_GOAL:g}",
            metrics["category_accuracy"] >= ACCURACY_GOAL,
        ),
        Check(
            name,
            "colour accuracy",
            metrics["colour_accuracy"],
            "nearest named colour of median",
            metrics["colour_baseline_accuracy"],
            f">= {ACCURACY_GOAL:g}",
            metrics["colour_accuracy"] >= ACCURACY_GOAL,
        ),
    ]


def train(
    out: str | os.PathLike[str],
    recipe: Recipe = Recipe(),
    *,
    command: str = "vetrina zoo train classifier",
    progress: bool = True,
    log: Log = print_log,
) -> Path:
    """Train from scratch and write a vetrina checkpoint to ``out``."""
    import torch
    from torch.nn import functional as F

    rng = seed_everything(recipe.seed)
    config = {"channels": recipe.channels}
    model = get_architecture(ARCHITECTURE).build(config)
    clock = Stopwatch()
    log(f"rendering {recipe.pool} training images at {recipe.size}px ...")
    pool, _, labels = render_pool(recipe.pool, recipe.size, "train")
    pool_cat, pool_col = labels_to_indices(labels)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    schedule = cosine_lr(optimiser, recipe.steps)
    bar = Progress(recipe.steps, "train classifier", enabled=progress, log=log)
    model.train()
    for _ in range(recipe.steps):
        idx = rng.integers(0, len(pool), size=recipe.batch)
        images = pool[idx]
        random_flips(images, rng)
        images = augment(images, rng, recipe.augment)
        cat_logits, col_logits = model(to_tensor(images))
        cat_loss = F.cross_entropy(cat_logits, torch.from_numpy(pool_cat[idx]))
        col_loss = F.cross_entropy(col_logits, torch.from_numpy(pool_col[idx]))
        loss = cat_loss + col_loss
        optimise(loss, optimiser, schedule)
        bar.update(category=cat_loss.item(), colour=col_loss.item())
    bar.close()
    train_seconds, cpu_seconds = clock.wall, clock.cpu
    model.eval()
    metrics = evaluate(model, recipe)
    log(
        f"test split: category accuracy {metrics['category_accuracy']:.3f}, colour accuracy "
        f"{metrics['colour_accuracy']:.3f} (median-colour baseline "
        f"{metrics['colour_baseline_accuracy']:.3f}) in {train_seconds:.0f} s "
        f"({cpu_seconds:.0f} s CPU)"
    )
    return save_checkpoint(
        out,
        architecture=ARCHITECTURE,
        config=config,
        state_dict=model.state_dict(),
        metadata=metadata(
            recipe,
            command=command,
            metrics=metrics,
            train_seconds=train_seconds,
            train_cpu_seconds=round(cpu_seconds, 1),
            categories=list(catalog.CATEGORIES),
            colours=list(catalog.COLOURS),
            augmentations=["flip", "gaussian blur", "down/up-sampling", "gaussian noise"],
        ),
    )
