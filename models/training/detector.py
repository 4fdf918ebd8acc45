"""Training recipe for the defect detector: mark the pixels local defects visibly changed.

Examples are made on the fly: clean renders from the catalog's train split at the evaluation
size, damaged with :func:`vetrina.models.defects.add_defects` (scratches, dust, stains,
watermarks, JPEG blocks), then cut into crops whose corners sit on the 8-px grid (so the JPEG
blocks stay aligned with the net's coarsest level). The target is the synthesizer's ground
truth mask; the loss is binary cross-entropy plus a soft Dice term (the mask covers a small
part of most images). Deterministic for a given seed and thread count.

Scores are mask IoU at threshold 0.5 on the test split: the data-set IoU (intersections and
unions summed over all images), the mean per-image IoU (an image where both masks are empty
counts 1), and the data-set IoU with each kind alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vetrina.models import defects
from vetrina.models.architectures import get_architecture
from vetrina.models.checkpoint import save_checkpoint
from vetrina.models.evaluation import Check
from vetrina.models.training.common import (
    Log,
    Progress,
    Stopwatch,
    batched,
    metadata,
    optimise,
    print_log,
    random_flips,
    render_pool,
    seed_everything,
    to_tensor,
)

ARCHITECTURE = "defect-detector"
KINDS = defects.KINDS
IOU_GOAL = 0.7
THRESHOLD = 0.5
#: Seeds of the defect generator for the evaluation sets: mixed kinds, then each kind alone.
EVAL_SEED = 7


@dataclass(frozen=True)
class Recipe:
    """Every knob of a training run (recorded in the checkpoint)."""

    steps: int = 1600
    batch: int = 16
    crop: int = 64
    size: int = 128
    pool: int = 1024
    crops_per_image: int = 2
    p: float = 0.5
    lr: float = 2e-3
    dice_weight: float = 1.0
    dice_per_image: bool = True
    seed: int = 0
    channels: int = 16
    eval_images: int = 48
    eval_size: int = 128


def evaluation_set(
    count: int, size: int, kinds: tuple[str, ...] = KINDS, seed: int = EVAL_SEED, p: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-out (clean, defective, mask) from the catalog's test split, fixed by ``seed``."""
    clean = render_pool(count, size, "test")[0]
    damaged, masks = defects.add_defects_batch(clean, np.random.default_rng(seed), kinds, p=p)
    return clean, damaged, masks


def kind_sets(count: int, size: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The mixed evaluation set (key ``"all"``) and one set per kind alone (same images)."""
    sets = {"all": evaluation_set(count, size)}
    for i, kind in enumerate(KINDS):
        sets[kind] = evaluation_set(count, size, (kind,), seed=EVAL_SEED + 1 + i)
    return sets


def training_batch(
    pool: np.ndarray, rng: np.random.Generator, recipe: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, defective, mask) crops: ``recipe.batch`` of ``recipe.crop`` px, grid-aligned."""
    per = max(1, recipe.crops_per_image)
    n = -(-recipe.batch // per)
    clean = pool[rng.integers(0, len(pool), size=n)]
    random_flips(clean, rng)
    damaged, masks = defects.add_defects_batch(clean, rng, KINDS, p=recipe.p)
    h, w = clean.shape[1:3]
    c = recipe.crop
    ys = rng.integers(0, (h - c) // 8 + 1, size=recipe.batch) * 8
    xs = rng.integers(0, (w - c) // 8 + 1, size=recipe.batch) * 8
    src = np.arange(recipe.batch) // per

    def cut(arr: np.ndarray) -> np.ndarray:
        return np.stack([arr[i, y : y + c, x : x + c] for i, y, x in zip(src, ys, xs, strict=True)])

    return cut(clean), cut(damaged), cut(masks)


def iou_scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(data-set IoU, mean per-image IoU) of boolean (N, H, W) masks; empty vs empty is 1."""
    inter = (pred & truth).reshape(len(pred), -1).sum(1).astype(np.float64)
    union = (pred | truth).reshape(len(pred), -1).sum(1).astype(np.float64)
    dataset = float(inter.sum() / union.sum()) if union.sum() else 1.0
    per_image = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return dataset, float(per_image.mean())


def predict_masks(module: Any, images: np.ndarray) -> np.ndarray:
    """Probability masks (N, H, W) float32 of uint8 (N, H, W, 3) images."""
    return batched(module, to_tensor(images))[:, 0].numpy()


def evaluate(
    module: Any, recipe: Recipe = Recipe(), *, images: int | None = None, size: int | None = None
) -> dict[str, float]:
    """Mask IoU at threshold 0.5 on the test split, mixed kinds and each kind alone."""
    count, size = images or recipe.eval_images, size or recipe.eval_size
    if size % 8:
        raise ValueError(f"evaluation size must be a multiple of 8 (the net's rule), got {size}")
    metrics: dict[str, float] = {}
    for name, (_, damaged, masks) in kind_sets(count, size).items():
        pred = predict_masks(module, damaged) >= THRESHOLD
        dataset, per_image = iou_scores(pred, masks > 0)
        if name == "all":
            metrics["iou"] = dataset
            metrics["iou_per_image"] = per_image
            metrics["mask_fraction"] = float((masks > 0).mean())
            metrics["predicted_fraction"] = float(pred.mean())
        else:
            metrics[f"iou_{name}"] = dataset
    metrics["images"] = count
    metrics["size"] = size
    return metrics


def checks(metrics: dict[str, float], name: str = "detector") -> list[Check]:
    """Data-set mask IoU (goal 0.7), mean per-image IoU and IoU per kind."""
    rows = [
        Check(
            name,
            "mask IoU (data set, t=0.5)",
            metrics["iou"],
            goal=f">= {IOU_GOAL:g}",
            passed=metrics["iou"] >= IOU_GOAL,
        ),
        Check(name, "mask IoU (mean per image)", metrics["iou_per_image"]),
    ]
    rows += [Check(name, f"mask IoU ({k} alone)", metrics[f"iou_{k}"]) for k in KINDS]
    return rows


def train(
    out: str | os.PathLike[str],
    recipe: Recipe = Recipe(),
    *,
    command: str = "vetrina zoo train detector",
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
    pool = render_pool(recipe.pool, recipe.size, "train")[0]
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=recipe.lr, total_steps=max(recipe.steps, 2), pct_start=0.1
    )
    bar = Progress(recipe.steps, "train detector", enabled=progress, log=log)
    model.train()
    for _ in range(recipe.steps):
        _, damaged, masks = training_batch(pool, rng, recipe)
        target = to_tensor(masks)
        prob = model(to_tensor(damaged)).clamp(1e-6, 1.0 - 1e-6)
        bce = F.binary_cross_entropy(prob, target)
        dims = (1, 2, 3) if recipe.dice_per_image else (0, 1, 2, 3)
        inter = (prob * target).sum(dims)
        dice = (1.0 - (2.0 * inter + 1.0) / (prob.sum(dims) + target.sum(dims) + 1.0)).mean()
        loss = bce + recipe.dice_weight * dice
        optimise(loss, optimiser, schedule)
        bar.update(bce=bce.item(), dice=dice.item())
    bar.close()
    train_seconds, cpu_seconds = clock.wall, clock.cpu
    metrics = evaluate(model, recipe)
    log(
        f"test split: mask IoU {metrics['iou']:.3f} (per image {metrics['iou_per_image']:.3f}; "
        + ", ".join(f"{k} {metrics[f'iou_{k}']:.3f}" for k in KINDS)
        + f") in {train_seconds:.0f} s ({cpu_seconds:.0f} s CPU)"
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
            defects=list(KINDS),
            threshold=THRESHOLD,
            final_bce=bar.values.get("bce"),
            final_dice=bar.values.get("dice"),
        ),
    )
