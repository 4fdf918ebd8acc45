"""Training recipe for the inpainter: repaint the masked defects of a photo.

Examples come from :func:`vetrina.models.training.detector.training_batch`: studio
renders of the catalog's train split damaged by :mod:`vetrina.models.defects`, cut into
grid-aligned crops, with the synthesizer's ground-truth mask as the second input (grown by a
pixel for a quarter of the crops, so that the net also learns to leave clean pixels alone
under a generous mask, as a detector's may be). The net composites its prediction into the
masked pixels only, so the loss is the L1 error over the masked pixels (half averaged per
image, half over the batch).
Deterministic for a given seed and thread count.

Scores are PSNR inside the mask on the test split, pooled over the data set (the squared
error summed over every masked pixel and channel of every image, divided by their count),
beside what a user has at hand: OpenCV's ``cv2.inpaint`` with ``INPAINT_TELEA`` and
``INPAINT_NS`` (radius 3) on the same mask.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vetrina.models.architectures import get_architecture
from vetrina.models.checkpoint import save_checkpoint
from vetrina.models.evaluation import Check
from vetrina.models.training.common import (
    Log,
    Progress,
    Stopwatch,
    from_tensor,
    metadata,
    optimise,
    print_log,
    render_pool,
    seed_everything,
    to_tensor,
)
from vetrina.models.training.detector import KINDS, kind_sets, training_batch

ARCHITECTURE = "inpainter"
GAIN_GOAL_DB = 2.0
INPAINT_RADIUS = 3
BASELINES = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


@dataclass(frozen=True)
class Recipe:
    """Every knob of a training run (recorded in the checkpoint)."""

    steps: int = 1400
    batch: int = 16
    crop: int = 64
    size: int = 128
    pool: int = 1024
    crops_per_image: int = 2
    p: float = 0.5
    dilate_p: float = 0.25
    lr: float = 2e-3
    seed: int = 0
    channels: int = 16
    eval_images: int = 48
    eval_size: int = 128


def restore(module: Any, images: np.ndarray, masks: np.ndarray, batch: int = 16) -> np.ndarray:
    """Run the inpainter over uint8 (N, H, W, 3) images and (N, H, W) 0/255 masks."""
    import torch

    module.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            image = to_tensor(images[i : i + batch])
            mask = to_tensor((masks[i : i + batch] > 0).astype(np.uint8) * 255)
            out.append(from_tensor(module(image, mask)))
    return np.concatenate(out) if out else images.copy()


def classical_baseline(image: np.ndarray, mask: np.ndarray, method: str) -> np.ndarray:
    """``cv2.inpaint`` (``"telea"`` or ``"ns"``, radius 3) of uint8 RGB with a 0/255 mask."""
    return cv2.inpaint(image, (mask > 0).astype(np.uint8), INPAINT_RADIUS, BASELINES[method])


def masked_psnr(images: np.ndarray, clean: np.ndarray, masks: np.ndarray) -> float:
    """PSNR (dB) over the masked pixels of a set, pooled: one MSE over all of them."""
    sel = masks > 0
    count = int(sel.sum()) * 3
    if count == 0:
        return math.inf
    err = (images.astype(np.float64) - clean.astype(np.float64))[sel]
    mse = float((err**2).sum() / count)
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def evaluate(
    module: Any, recipe: Recipe = Recipe(), *, images: int | None = None, size: int | None = None
) -> dict[str, float]:
    """PSNR inside the ground-truth mask of the inpainter, TELEA and NS (and of the input)."""
    count, size = images or recipe.eval_images, size or recipe.eval_size
    if size % 8:
        raise ValueError(f"evaluation size must be a multiple of 8 (the net's rule), got {size}")
    metrics: dict[str, float] = {}
    for name, (clean, damaged, masks) in kind_sets(count, size).items():
        results = {"model": restore(module, damaged, masks), "input": damaged}
        for method in BASELINES:
            results[method] = np.stack(
                [classical_baseline(d, m, method) for d, m in zip(damaged, masks, strict=True)]
            )
        suffix = "" if name == "all" else f"_{name}"
        if name == "all":
            metrics["mask_fraction"] = float((masks > 0).mean())
        for key, restored in results.items():
            metrics[f"psnr_{key}{suffix}"] = masked_psnr(restored, clean, masks)
    metrics["images"] = count
    metrics["size"] = size
    return metrics


def checks(metrics: dict[str, float], name: str = "inpainter") -> list[Check]:
    """In-mask PSNR beside TELEA and NS (goal: 2 dB above each), and per kind beside the best
    alternative (TELEA, NS or leaving the pixels as they are)."""
    rows = [
        Check(
            name,
            "PSNR in mask (dB)",
            metrics["psnr_model"],
            f"cv2.inpaint {method.upper()} r={INPAINT_RADIUS}",
            metrics[f"psnr_{method}"],
            f">= baseline + {GAIN_GOAL_DB:g} dB",
            metrics["psnr_model"] >= metrics[f"psnr_{method}"] + GAIN_GOAL_DB,
        )
        for method in BASELINES
    ]
    rows.append(Check(name, "PSNR in mask, input (dB)", metrics["psnr_input"]))
    labels = {"input": "left as is", **{m: f"cv2.inpaint {m.upper()}" for m in BASELINES}}
    for kind in KINDS:  # beside the best of the alternatives, doing nothing included
        best = max(labels, key=lambda m: metrics[f"psnr_{m}_{kind}"])
        rows.append(
            Check(
                name,
                f"PSNR in mask, {kind} alone (dB)",
                metrics[f"psnr_model_{kind}"],
                labels[best],
                metrics[f"psnr_{best}_{kind}"],
            )
        )
    return rows


def train(
    out: str | os.PathLike[str],
    recipe: Recipe = Recipe(),
    *,
    command: str = "vetrina zoo train inpainter",
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
    bar = Progress(recipe.steps, "train inpainter", enabled=progress, log=log)
    model.train()
    for _ in range(recipe.steps):
        clean, damaged, masks = training_batch(pool, rng, recipe)
        mask = to_tensor(masks)
        if recipe.dilate_p > 0:  # a detector's mask is rarely exact: learn to keep clean pixels
            grow = torch.from_numpy(rng.random(len(mask)) < recipe.dilate_p)
            mask[grow] = F.max_pool2d(mask[grow], 3, stride=1, padding=1)
        restored = model(to_tensor(damaged), mask)
        err = (restored - to_tensor(clean)).abs() * mask
        # half per image (a few specks of dust weigh as much as a re-encoded half of the
        # photo), half over every masked pixel of the batch
        per_image = (err.sum((1, 2, 3)) / (3.0 * mask.sum((1, 2, 3)) + 1.0)).mean()
        loss = 0.5 * per_image + 0.5 * err.sum() / (3.0 * mask.sum() + 1.0)
        optimise(loss, optimiser, schedule)
        bar.update(l1_in_mask=loss.item())
    bar.close()
    train_seconds, cpu_seconds = clock.wall, clock.cpu
    metrics = evaluate(model, recipe)
    log(
        f"test split: PSNR in mask {metrics['psnr_model']:.2f} dB (input "
        f"{metrics['psnr_input']:.2f}, TELEA {metrics['psnr_telea']:.2f}, NS "
        f"{metrics['psnr_ns']:.2f}) in {train_seconds:.0f} s ({cpu_seconds:.0f} s CPU)"
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
            final_l1_in_mask=bar.values.get("l1_in_mask"),
        ),
    )
