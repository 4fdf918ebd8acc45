"""Training recipe for the enhancer: learn to undo synthetic degradations of rendered products.

Pairs are made on the fly: clean renders from the catalog's train split, degraded with every
kind in :mod:`vetrina.models.degrade` (contrast, colour cast, exposure, noise, blur,
downscale). Deterministic for a given seed and thread count. The baseline a user has at hand
is CLAHE (on L of Lab) followed by OpenCV's non-local-means colour denoiser.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vetrina.metrics import psnr
from vetrina.models import degrade
from vetrina.models.architectures import get_architecture
from vetrina.models.checkpoint import save_checkpoint
from vetrina.models.evaluation import Check
from vetrina.models.training.common import (
    Log,
    Progress,
    Stopwatch,
    batched,
    from_tensor,
    metadata,
    optimise,
    print_log,
    random_flips,
    render_pool,
    seed_everything,
    to_tensor,
)

ARCHITECTURE = "enhancer"
KINDS = degrade.KINDS
GAIN_GOAL_DB = 4.0


@dataclass(frozen=True)
class Recipe:
    """Every knob of a training run (recorded in the checkpoint)."""

    steps: int = 1100
    batch: int = 16
    size: int = 96
    pool: int = 2048
    lr: float = 2e-3
    seed: int = 0
    channels: int = 16
    blocks: int = 4
    eval_images: int = 48
    eval_size: int = 128


def evaluation_set(count: int, size: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Held-out (clean, degraded) pairs from the catalog's test split, fixed by ``seed``."""
    clean = render_pool(count, size, "test")[0]
    rng = np.random.default_rng(seed)
    degraded = degrade.degrade_batch(clean, rng, KINDS)
    return clean, degraded


def classical_baseline(image: np.ndarray) -> np.ndarray:
    """What a user would reach for: CLAHE on lightness, then non-local-means denoising."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return cv2.fastNlMeansDenoisingColored(rgb, None, 5, 5, 7, 21)


def evaluate(
    module: Any, recipe: Recipe = Recipe(), *, images: int | None = None, size: int | None = None
) -> dict[str, float]:
    """Mean PSNR (dB) of degraded, baseline-restored and enhanced images vs the originals."""
    count, size = images or recipe.eval_images, size or recipe.eval_size
    clean, degraded = evaluation_set(count, size)
    result = from_tensor(batched(module, to_tensor(degraded)))
    baseline = [classical_baseline(d) for d in degraded]

    def mean_psnr(images: Any) -> float:
        return float(np.mean([psnr(x, c) for x, c in zip(images, clean, strict=True)]))

    before, after = mean_psnr(degraded), mean_psnr(result)
    return {
        "psnr_degraded": before,
        "psnr_enhanced": after,
        "psnr_baseline": mean_psnr(baseline),
        "gain_db": after - before,
        "images": count,
        "size": size,
    }


def checks(metrics: dict[str, float], name: str = "enhancer") -> list[Check]:
    """Gain over the degraded input (goal 4 dB) and PSNR beside CLAHE + NL-means."""
    return [
        Check(
            name,
            "PSNR gain over degraded (dB)",
            metrics["gain_db"],
            "degraded input PSNR",
            metrics["psnr_degraded"],
            f">= {GAIN_GOAL_DB:g} dB",
            metrics["gain_db"] >= GAIN_GOAL_DB,
        ),
        Check(
            name,
            "PSNR (dB)",
            metrics["psnr_enhanced"],
            "CLAHE + fastNlMeans",
            metrics["psnr_baseline"],
            "> baseline",
            metrics["psnr_enhanced"] > metrics["psnr_baseline"],
        ),
    ]


def train(
    out: str | os.PathLike[str],
    recipe: Recipe = Recipe(),
    *,
    command: str = "vetrina zoo train enhancer",
    progress: bool = True,
    log: Log = print_log,
) -> Path:
    """Train from scratch and write a vetrina checkpoint to ``out``."""
    import torch

    rng = seed_everything(recipe.seed)
    config = {"channels": recipe.channels, "blocks": recipe.blocks}
    model = get_architecture(ARCHITECTURE).build(config)
    clock = Stopwatch()
    log(f"rendering {recipe.pool} training images at {recipe.size}px ...")
    pool = render_pool(recipe.pool, recipe.size, "train")[0]
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=recipe.lr, total_steps=max(recipe.steps, 2), pct_start=0.1
    )
    bar = Progress(recipe.steps, "train enhancer", enabled=progress, log=log)
    model.train()
    for _ in range(recipe.steps):
        clean = pool[rng.integers(0, len(pool), size=recipe.batch)]
        random_flips(clean, rng)
        noisy = degrade.degrade_batch(clean, rng, KINDS)
        loss = torch.nn.functional.l1_loss(model(to_tensor(noisy)), to_tensor(clean))
        optimise(loss, optimiser, schedule)
        bar.update(l1=loss.item())
    bar.close()
    train_seconds = clock.wall
    metrics = evaluate(model, recipe)
    log(
        f"test split: degraded {metrics['psnr_degraded']:.2f} dB -> enhanced "
        f"{metrics['psnr_enhanced']:.2f} dB ({metrics['gain_db']:+.2f} dB; CLAHE+NLM "
        f"{metrics['psnr_baseline']:.2f} dB) in {train_seconds:.0f} s"
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
            degradations=list(KINDS),
            final_l1=bar.values.get("l1"),
        ),
    )
