"""Training recipe for the matting model: U²-Net-p alpha of the product, shadow excluded.

Examples are the catalog's train-split renders with their alpha, composited over backgrounds
of rising difficulty (``LEVELS``):

- ``studio``: the render as it is (light studio background, soft shadow on it);
- ``texture``: the product over a procedural background (value noise, stripes, gradients,
  blotches of random colours, grain);
- ``shadow``: a texture or plain background darkened by a soft drop shadow of the product
  (in the image, not in the alpha: the net must not cut out shadows);
- ``tinted``: a background in the product's own mean colour, weakly textured, with a shadow
  half of the time (low contrast at the silhouette).

The product is composited with its alpha (``a * image + (1 - a) * background``; the edge
pixels keep a trace of the studio background, as a photo's fringe would). The harder levels
are unlocked as training goes on (``unlock_*``: the fraction of training at which each level
joins; levels are then drawn uniformly, ``studio`` at least a quarter of the time). Most
steps train at ``warm_size`` px (the renders downscaled: four times cheaper than ``size``);
``steps`` steps at ``size`` are spread evenly among them, and the BatchNorm statistics are
re-estimated at ``size`` at the end. The loss is U-2-Net's: binary cross-entropy summed over
the seven maps (fused d0 and the six side outputs), plus a soft IoU term on d0. One thread by
default (``threads``): on two shared cores a second thread cost more than it gave.
Deterministic for a given seed and thread count, unless the wall-clock guard
(``budget_seconds``) stops training early (the checkpoint's ``steps_done`` says).

Evaluation (test split, held-out seeds, at ``eval_size``): every level on the same images
(backgrounds fixed by ``EVAL_SEED``), per-image IoU of alpha >= 0.5 (mean over images) and
mean absolute alpha error, beside OpenCV GrabCut initialised with a rectangle
``GRABCUT_MARGIN`` px inside the border (``GRABCUT_ITERS`` iterations; its hard mask is its
alpha). The goal: beat GrabCut on both, over all levels together.
"""

from __future__ import annotations

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
    batched,
    metadata,
    optimise,
    print_log,
    random_flips,
    render_pool,
    seed_everything,
    to_tensor,
)

ARCHITECTURE = "u2netp"
LEVELS = ("studio", "texture", "shadow", "tinted")
THRESHOLD = 0.5
#: Seed of the background generator for the evaluation sets (one stream per level).
EVAL_SEED = 11
GRABCUT_MARGIN = 4
GRABCUT_ITERS = 5


@dataclass(frozen=True)
class Recipe:
    """Every knob of a training run (recorded in the checkpoint)."""

    steps: int = 216  # at ``size``, spread evenly among the warm steps
    batch: int = 4
    size: int = 128
    warm_steps: int = 1440  # at ``warm_size``: four times cheaper
    warm_batch: int = 4
    warm_size: int = 64
    bn_batches: int = 16  # BatchNorm statistics re-estimated at ``size`` after training
    pool: int = 768
    lr: float = 3e-3
    iou_weight: float = 1.0
    unlock_texture: float = 0.1  # fraction of all steps at which each level joins
    unlock_shadow: float = 0.2
    unlock_tinted: float = 0.3
    budget_seconds: float = 4000.0  # training stops early (and says so) past this wall time
    seed: int = 0
    threads: int = 1  # 2 threads ran 4-10x slower whenever another process shared the 2 cores
    eval_images: int = 32  # per level
    eval_size: int = 128


# --- backgrounds ------------------------------------------------------------------------------


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 255.0, 3).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A procedural background, float32 (H, W, 3) in 0..255."""
    kind = int(rng.integers(4))
    c1, c2 = _colour(rng), _colour(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # multi-octave value noise
        t = sum(
            _smooth_noise(rng, h, w, int(cells)) * np.float32(0.5**i)
            for i, cells in enumerate(rng.integers(2, 6) * 2 ** np.arange(3))
        )
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    elif kind == 1:  # stripes, soft or hard
        theta = rng.uniform(0.0, np.pi)
        period = rng.uniform(4.0, 0.4 * max(h, w))
        phase = (xx * np.cos(theta) + yy * np.sin(theta)) * np.float32(2 * np.pi / period)
        t = np.float32(0.5) + np.float32(0.5) * np.sin(phase)
        if rng.random() < 0.5:
            t = (t > 0.5).astype(np.float32)
    elif kind == 2:  # linear or radial gradient
        if rng.random() < 0.5:
            theta = rng.uniform(0.0, 2 * np.pi)
            t = xx * np.cos(theta) / w + yy * np.sin(theta) / h
        else:
            cy, cx = rng.uniform(0.0, h), rng.uniform(0.0, w)
            t = np.hypot((yy - cy) / h, (xx - cx) / w)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    else:  # blotches / tiles of random colours
        cells = int(rng.integers(2, 9))
        tiles = rng.uniform(0.0, 255.0, (cells, cells, 3)).astype(np.float32)
        interp = cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_CUBIC
        bg = cv2.resize(tiles, (w, h), interpolation=interp)
        return _grain(rng, bg)
    bg = c1 + (c2 - c1) * t[..., None]
    return _grain(rng, bg)


def _grain(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    sigma = rng.uniform(0.0, 8.0)
    noise = rng.standard_normal(bg.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(bg + noise, 0.0, 255.0)


def shadow(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """A soft drop shadow of ``alpha`` (float32 H x W, 0..1): opacity 0..1, offset, blurred."""
    h, w = alpha.shape
    dx = round(rng.uniform(-0.08, 0.08) * w)
    dy = round(rng.uniform(0.0, 0.08) * h)
    moved = np.zeros_like(alpha)
    moved[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = alpha[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    sigma = rng.uniform(0.015, 0.06) * max(h, w)
    return cv2.GaussianBlur(moved, (0, 0), sigma) * np.float32(rng.uniform(0.2, 0.6))


def mean_colour(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The product's mean RGB (float32), over pixels at least half covered."""
    inside = alpha >= 128
    if not inside.any():
        return image.reshape(-1, 3).mean(0).astype(np.float32)
    return image[inside].mean(0).astype(np.float32)


def composite(
    image: np.ndarray, alpha: np.ndarray, level: str, rng: np.random.Generator
) -> np.ndarray:
    """``image`` (uint8 H x W x 3, a render) over a background of difficulty ``level``."""
    if level == "studio":
        return image.copy()
    h, w = alpha.shape
    a = alpha.astype(np.float32)[..., None] / np.float32(255.0)
    if level == "texture":
        bg = texture(rng, h, w)
    elif level == "shadow":
        bg = texture(rng, h, w) if rng.random() < 0.6 else np.broadcast_to(_colour(rng), (h, w, 3))
        bg = bg * (np.float32(1.0) - shadow(rng, a[..., 0]))[..., None]
    elif level == "tinted":
        tint = mean_colour(image, alpha) * np.float32(rng.uniform(0.85, 1.15))
        mix = np.float32(rng.uniform(0.05, 0.2))
        bg = _grain(rng, tint + (texture(rng, h, w) - tint) * mix)
        if rng.random() < 0.5:
            bg = bg * (np.float32(1.0) - shadow(rng, a[..., 0]))[..., None]
    else:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    out = a * image.astype(np.float32) + (np.float32(1.0) - a) * bg
    return np.clip(out + np.float32(0.5), 0.0, 255.0).astype(np.uint8)


def level_weights(progress: float, recipe: Recipe) -> np.ndarray:
    """Probabilities of the levels at ``progress`` (0..1 of training): unlocked levels uniform,
    studio at least a quarter."""
    unlock = (0.0, recipe.unlock_texture, recipe.unlock_shadow, recipe.unlock_tinted)
    open_ = np.array([progress >= u for u in unlock], dtype=np.float64)
    weights = open_ / open_.sum()
    if weights[0] < 0.25:
        weights = np.concatenate([[0.25], weights[1:] * 0.75 / weights[1:].sum()])
    return weights


# --- data -------------------------------------------------------------------------------------


def _resize(images: np.ndarray, alphas: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    if images.shape[1] == size:
        return images, alphas
    ims = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])
    als = np.stack([cv2.resize(al, (size, size), interpolation=cv2.INTER_AREA) for al in alphas])
    return ims, als


def training_batch(
    images: np.ndarray,
    alphas: np.ndarray,
    batch: int,
    weights: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(composited images, alphas) of ``batch`` pool entries, flipped, levels by ``weights``."""
    pick = rng.integers(0, len(images), size=batch)
    ims, als = images[pick], alphas[pick]
    random_flips(ims, rng, als)
    levels = rng.choice(len(LEVELS), size=batch, p=weights)
    out = np.stack(
        [composite(im, al, LEVELS[k], rng) for im, al, k in zip(ims, als, levels, strict=True)]
    )
    return out, als


def evaluation_sets(count: int, size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per level, (images, alphas) of the same ``count`` test-split renders."""
    images, alphas, _ = render_pool(count, size, "test")
    sets = {}
    for i, level in enumerate(LEVELS):
        rng = np.random.default_rng(EVAL_SEED + i)
        sets[level] = (
            np.stack(
                [composite(im, al, level, rng) for im, al in zip(images, alphas, strict=True)]
            ),
            alphas,
        )
    return sets


# --- metrics ----------------------------------------------------------------------------------


def grabcut(image: np.ndarray, margin: int = GRABCUT_MARGIN, iters: int = GRABCUT_ITERS) -> Any:
    """GrabCut's hard alpha (float32 H x W, 0 or 1) of an RGB uint8 image, from a rectangle
    ``margin`` px inside the border."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    rect = (margin, margin, w - 2 * margin, h - 2 * margin)
    bgr = np.ascontiguousarray(image[..., ::-1])
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, mask, rect, bgd, fgd, iters, cv2.GC_INIT_WITH_RECT)
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)


def scores(pred: np.ndarray, alphas: np.ndarray) -> tuple[float, float]:
    """(mean per-image IoU of alpha >= 0.5, mean absolute alpha error) of float (N, H, W)
    predictions in [0, 1] against uint8 alphas; an image where both masks are empty counts 1."""
    truth = alphas.astype(np.float32) / np.float32(255.0)
    p, t = pred >= THRESHOLD, truth >= THRESHOLD
    inter = (p & t).reshape(len(p), -1).sum(1).astype(np.float64)
    union = (p | t).reshape(len(p), -1).sum(1).astype(np.float64)
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return float(iou.mean()), float(np.abs(pred - truth).mean())


def predict_alpha(module: Any, images: np.ndarray) -> np.ndarray:
    """Alpha (N, H, W) float32 in [0, 1] of uint8 (N, H, W, 3) images."""
    return batched(module, to_tensor(images), batch=8)[:, 0].numpy()


def evaluate(
    module: Any, recipe: Recipe = Recipe(), *, images: int | None = None, size: int | None = None
) -> dict[str, float]:
    """IoU and alpha MAE per level and over all levels, the model's and GrabCut's."""
    count, size = images or recipe.eval_images, size or recipe.eval_size
    if size % 32:
        raise ValueError(f"evaluation size must be a multiple of 32 (the net's rule), got {size}")
    metrics: dict[str, float] = {}
    ours, theirs, truths = [], [], []
    for level, (ims, als) in evaluation_sets(count, size).items():
        pred = predict_alpha(module, ims)
        base = np.stack([grabcut(im) for im in ims])
        metrics[f"iou_{level}"], metrics[f"mae_{level}"] = scores(pred, als)
        metrics[f"grabcut_iou_{level}"], metrics[f"grabcut_mae_{level}"] = scores(base, als)
        ours.append(pred)
        theirs.append(base)
        truths.append(als)
    truth = np.concatenate(truths)
    metrics["iou"], metrics["mae"] = scores(np.concatenate(ours), truth)
    metrics["grabcut_iou"], metrics["grabcut_mae"] = scores(np.concatenate(theirs), truth)
    metrics["images"] = count
    metrics["size"] = size
    return metrics


def checks(metrics: dict[str, float], name: str = "matting") -> list[Check]:
    """IoU and alpha MAE over all levels (goal: better than GrabCut), then per level."""
    rows = [
        Check(
            name,
            "alpha IoU (t=0.5, all levels)",
            metrics["iou"],
            "GrabCut (rect)",
            metrics["grabcut_iou"],
            "> baseline",
            metrics["iou"] > metrics["grabcut_iou"],
        ),
        Check(
            name,
            "alpha MAE (all levels)",
            metrics["mae"],
            "GrabCut (rect)",
            metrics["grabcut_mae"],
            "< baseline",
            metrics["mae"] < metrics["grabcut_mae"],
        ),
    ]
    for level in LEVELS:
        rows.append(
            Check(
                name,
                f"alpha IoU ({level})",
                metrics[f"iou_{level}"],
                "GrabCut (rect)",
                metrics[f"grabcut_iou_{level}"],
            )
        )
        rows.append(
            Check(
                name,
                f"alpha MAE ({level})",
                metrics[f"mae_{level}"],
                "GrabCut (rect)",
                metrics[f"grabcut_mae_{level}"],
            )
        )
    return rows


# --- training ---------------------------------------------------------------------------------


def size_schedule(warm_steps: int, steps: int) -> list[int]:
    """The step indices (of ``warm_steps + steps``) that train at full size: spread evenly,
    the last one last."""
    total = warm_steps + steps
    return [round((j + 1) * total / steps) - 1 for j in range(steps)] if steps else []


def recalibrate_batch_norm(
    model: Any, images: np.ndarray, alphas: np.ndarray, recipe: Recipe, rng: np.random.Generator
) -> None:
    """Re-estimate every BatchNorm's running statistics at full size (training mixes sizes,
    so the running averages lean towards the small one): the plain mean over
    ``recipe.bn_batches`` batches of every level, no weight changes."""
    import torch
    from torch import nn

    if recipe.bn_batches <= 0:
        return
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.train()
    weights = np.full(len(LEVELS), 1.0 / len(LEVELS))
    with torch.no_grad():
        for _ in range(recipe.bn_batches):
            ims, _ = training_batch(images, alphas, recipe.batch, weights, rng)
            model(to_tensor(ims).contiguous(memory_format=torch.channels_last))
    for norm in norms:
        norm.momentum = 0.1
    model.eval()


def train(
    out: str | os.PathLike[str],
    recipe: Recipe = Recipe(),
    *,
    command: str = "vetrina zoo train matting",
    progress: bool = True,
    log: Log = print_log,
) -> Path:
    """Train from scratch and write a vetrina checkpoint to ``out``."""
    import torch
    from torch.nn import functional as F

    for size in (recipe.size, recipe.warm_size, recipe.eval_size):
        if size % 32:
            raise ValueError(f"sizes must be multiples of 32 (the net's rule), got {size}")
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        rng = seed_everything(recipe.seed)
        model = get_architecture(ARCHITECTURE).build()
        model.to(memory_format=torch.channels_last)  # about 20 % faster on the CPU
        clock = Stopwatch()
        log(f"rendering {recipe.pool} training images at {recipe.size}px ...")
        images, alphas, _ = render_pool(recipe.pool, recipe.size, "train")
        small = _resize(images, alphas, recipe.warm_size)
        total = recipe.warm_steps + recipe.steps
        large = set(size_schedule(recipe.warm_steps, recipe.steps))
        optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=recipe.lr, total_steps=max(total, 2), pct_start=0.1
        )
        bar = Progress(total, "train matting", enabled=progress, log=log)
        model.train()
        done = 0
        for step in range(total):
            if clock.wall > recipe.budget_seconds:
                log(f"time budget of {recipe.budget_seconds:.0f} s spent: stopped at step {step}")
                break
            weights = level_weights(step / max(total, 1), recipe)
            if step in large:
                ims, als = training_batch(images, alphas, recipe.batch, weights, rng)
            else:
                ims, als = training_batch(*small, recipe.warm_batch, weights, rng)
            target = to_tensor(als)
            inputs = to_tensor(ims).contiguous(memory_format=torch.channels_last)
            logits = model.side_logits(inputs)
            bce = sum(F.binary_cross_entropy_with_logits(d, target) for d in logits)
            prob = torch.sigmoid(logits[0])
            inter = (prob * target).sum((1, 2, 3))
            union = (prob + target - prob * target).sum((1, 2, 3))
            iou = (1.0 - (inter + 1.0) / (union + 1.0)).mean()
            loss = bce + recipe.iou_weight * iou
            optimise(loss, optimiser, schedule)
            bar.update(bce=bce.item() / len(logits), iou=iou.item())
            done += 1
        recalibrate_batch_norm(model, images, alphas, recipe, rng)
        bar.close()
        train_seconds, cpu_seconds = clock.wall, clock.cpu
        metrics = evaluate(model, recipe)
        meta = metadata(
            recipe,
            command=command,
            metrics=metrics,
            train_seconds=train_seconds,
            train_cpu_seconds=round(cpu_seconds, 1),
            levels=list(LEVELS),
            threshold=THRESHOLD,
            input_range=[0.0, 1.0],
            steps_done=done,
            final_bce=bar.values.get("bce"),
            final_iou_loss=bar.values.get("iou"),
        )
    finally:
        torch.set_num_threads(threads)
    log(
        f"test split: alpha IoU {metrics['iou']:.3f} (GrabCut {metrics['grabcut_iou']:.3f}), "
        f"MAE {metrics['mae']:.4f} (GrabCut {metrics['grabcut_mae']:.4f}) "
        f"in {train_seconds:.0f} s ({cpu_seconds:.0f} s CPU)"
    )
    return save_checkpoint(
        out,
        architecture=ARCHITECTURE,
        config={},
        state_dict=model.state_dict(),
        metadata=meta,
    )
