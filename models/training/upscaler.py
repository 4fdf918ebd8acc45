"""Training recipe for the x2 upscaler: a compact SRVGG-style net learns to double renders.

Pairs: high-resolution (HR) random ``crop`` px crops of ``size`` px renders of the catalog's
train split (random left-right flips and transposes), and their low-resolution (LR) versions,
``cv2.resize`` to half size with ``INTER_AREA`` (box averaging, the usual way a large photo is
shrunk). The loss is the mean squared error between the net's 2x output and the HR crop, in
[0, 1]: PSNR is what is measured, and on renders, whose flat backgrounds the nearest-neighbour
base already gets exactly right, an L1 loss (sign gradients of equal weight everywhere) pins the
residual near zero and stalls at bilinear quality, while MSE lets the edges dominate. The last
conv starts at zero, so training starts from nearest-neighbour upsampling.

Evaluation on the test split: ``eval_images`` clean renders at ``eval_size`` px (HR) are shrunk
the same way, upscaled 2x and compared with the HR render by PSNR over the whole image. The
baselines are what a user has at hand: ``cv2.resize`` with ``INTER_CUBIC`` (bicubic, the goal is
to beat it by ``GAIN_GOAL_DB``) and ``INTER_LINEAR`` (bilinear).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vetrina.metrics import psnr
from vetrina.models.architectures import get_architecture
from vetrina.models.checkpoint import save_checkpoint
from vetrina.models.evaluation import Check
from vetrina.models.training.common import (
    Log,
    Progress,
    Stopwatch,
    batched,
    cosine_lr,
    from_tensor,
    metadata,
    optimise,
    print_log,
    render_pool,
    seed_everything,
    to_tensor,
)

ARCHITECTURE = "compact-upscaler"
SCALE = 2
GAIN_GOAL_DB = 1.0


@dataclass(frozen=True)
class Recipe:
    """Every knob of a training run (recorded in the checkpoint)."""

    steps: int = 1500
    batch: int = 16
    size: int = 128  # renders of the training pool
    crop: int = 64  # HR training crops (even)
    pool: int = 1024
    lr: float = 1e-3
    seed: int = 0
    channels: int = 32
    convs: int = 8
    eval_images: int = 32
    eval_size: int = 128


def downscale(image: np.ndarray) -> np.ndarray:
    """The LR version of an HR uint8 image: half size (rounded down) with ``INTER_AREA``."""
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, w // SCALE), max(1, h // SCALE)), interpolation=cv2.INTER_AREA)


def evaluation_set(count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out (HR, LR) pairs from the catalog's test split; ``size`` must be even."""
    if size % SCALE:
        raise ValueError(f"eval size must be a multiple of {SCALE}, got {size}")
    hr = render_pool(count, size, "test")[0]
    return hr, np.stack([downscale(x) for x in hr])


def upscale(module: Any, images: np.ndarray, batch: int = 16) -> np.ndarray:
    """Run the upscaler ``module`` over uint8 RGB ``images`` (N, h, w, 3) -> (N, 2h, 2w, 3)."""
    return from_tensor(batched(module, to_tensor(images), batch))


def evaluate(
    module: Any, recipe: Recipe = Recipe(), *, images: int | None = None, size: int | None = None
) -> dict[str, float | int]:
    """Mean PSNR (dB) against the HR renders of the net, bicubic, bilinear and nearest 2x."""
    count, size = images or recipe.eval_images, size or recipe.eval_size
    hr, lr = evaluation_set(count, size)
    result = upscale(module, lr)

    def resized(flag: int) -> list[np.ndarray]:
        return [cv2.resize(x, (size, size), interpolation=flag) for x in lr]

    def mean_psnr(images: Any) -> float:
        return float(np.mean([psnr(x, h) for x, h in zip(images, hr, strict=True)]))

    net, cubic = mean_psnr(result), mean_psnr(resized(cv2.INTER_CUBIC))
    return {
        "psnr_upscaled": net,
        "psnr_bicubic": cubic,
        "psnr_bilinear": mean_psnr(resized(cv2.INTER_LINEAR)),
        "psnr_nearest": mean_psnr(resized(cv2.INTER_NEAREST)),
        "gain_over_bicubic_db": net - cubic,
        "images": count,
        "size": size,
    }


def checks(metrics: dict[str, float], name: str = "upscaler") -> list[Check]:
    """PSNR beside bicubic (goal +1 dB) and beside bilinear."""
    return [
        Check(
            name,
            "x2 PSNR (dB)",
            metrics["psnr_upscaled"],
            "bicubic (cv2 INTER_CUBIC)",
            metrics["psnr_bicubic"],
            f">= bicubic + {GAIN_GOAL_DB:g} dB",
            metrics["gain_over_bicubic_db"] >= GAIN_GOAL_DB,
        ),
        Check(
            name,
            "x2 PSNR (dB)",
            metrics["psnr_upscaled"],
            "bilinear (cv2 INTER_LINEAR)",
            metrics["psnr_bilinear"],
            "",
            None,
        ),
    ]


def _sample(pool: np.ndarray, recipe: Recipe, rng: np.random.Generator) -> tuple[Any, Any]:
    """A batch of (LR, HR) tensors: random even-aligned crops, flips and transposes."""
    c = recipe.crop
    idx = rng.integers(0, len(pool), size=recipe.batch)
    top = 2 * rng.integers(0, (recipe.size - c) // 2 + 1, size=recipe.batch)
    left = 2 * rng.integers(0, (recipe.size - c) // 2 + 1, size=recipe.batch)
    flips = rng.random((recipe.batch, 2)) < 0.5
    hrs = []
    for i, t, lf, (flip, swap) in zip(idx, top, left, flips, strict=True):
        hr = pool[i, t : t + c, lf : lf + c]
        hr = hr[:, ::-1] if flip else hr
        hrs.append(hr.transpose(1, 0, 2) if swap else hr)
    hr = np.ascontiguousarray(np.stack(hrs))
    lr = np.stack([downscale(x) for x in hr])
    return to_tensor(lr), to_tensor(hr)


def train(
    out: str | os.PathLike[str],
    recipe: Recipe = Recipe(),
    *,
    command: str = "vetrina zoo train upscaler",
    progress: bool = True,
    log: Log = print_log,
) -> Path:
    """Train from scratch and write a vetrina checkpoint to ``out``."""
    import torch

    if recipe.crop % SCALE or recipe.crop > recipe.size:
        raise ValueError(f"crop must be even and <= size, got {recipe.crop}")
    rng = seed_everything(recipe.seed)
    config = {"channels": recipe.channels, "convs": recipe.convs}
    model = get_architecture(ARCHITECTURE).build(config)
    last = model.body[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    clock = Stopwatch()
    log(f"rendering {recipe.pool} training images at {recipe.size}px ...")
    pool = render_pool(recipe.pool, recipe.size, "train")[0]
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    schedule = cosine_lr(optimiser, recipe.steps)
    bar = Progress(recipe.steps, "train upscaler", enabled=progress, log=log)
    model.train()
    for _ in range(recipe.steps):
        lr, hr = _sample(pool, recipe, rng)
        loss = torch.nn.functional.mse_loss(model(lr), hr)
        optimise(loss, optimiser, schedule)
        bar.update(mse=loss.item())
    bar.close()
    train_seconds = clock.wall
    metrics = evaluate(model, recipe)
    log(
        f"test split: x2 PSNR {metrics['psnr_upscaled']:.2f} dB (bicubic "
        f"{metrics['psnr_bicubic']:.2f} dB, {metrics['gain_over_bicubic_db']:+.2f} dB; bilinear "
        f"{metrics['psnr_bilinear']:.2f} dB) in {train_seconds:.0f} s"
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
            final_mse=bar.values.get("mse"),
        ),
    )
