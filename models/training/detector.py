"""Training recipe for the defect detector: mark the pixels local defects visibly changed.

Examples are made on the fly: clean renders from the catalog's train split at the evaluation
size, made photo-like first (a share placed on the matting recipe's textured, shadowed or
tinted backgrounds, a share saved as an ordinary JPEG of quality 70-95: neither is a defect),
damaged with :func:`vetrina.models.defects.add_defects` (scratches, dust, stains, watermarks,
JPEG blocks) except for a share left intact, then cut into crops whose corners sit on the
8-px grid (so the JPEG blocks stay aligned with the net's coarsest level). With
``large_size``, a share of the steps draws from a second pool rendered larger, so the net also
sees products, print and defects at more pixels than the training size gives them. The
target is the synthesizer's ground truth mask; the loss is binary cross-entropy plus a soft
Dice term (the mask covers a small part of most images). Deterministic for a given seed and
thread count.

Why the photo-like share and the intact share: a detector trained only on damaged studio
renders flags what it never saw undamaged. The first zoo detector marked 43 % of the pixels
and 47 % of the products of defect-free supplier-style photos (:func:`photo_set`, 128 px), so
a clean stage repainted clock faces and print. Why the styled share (a quarter of the pool
renders in the zoo's cartoon or vintage look, :func:`styled_pool`): ``generate-catalog`` runs
its clean stage after a brand look, and the second zoo detector, which never saw one, took
the cartoon look's dark outlines for scratches (14 % of the pixels of styled test renders at
64 px; 8.7 % at 128). The looks come from the zoo's committed style nets: train those first.

Scores are mask IoU at threshold 0.5 on the test split: the data-set IoU (intersections and
unions summed over all images), the mean per-image IoU (an image where both masks are empty
counts 1), and the data-set IoU with each kind alone; the false-alarm rate: the fraction of
pixels marked on defect-free supplier-style photos (test-split renders on each background
level, saved as JPEG quality 90), overall and on the product, at the evaluation size and at
twice it; the data-set IoU on those photos damaged with mixed kinds; and the fraction marked
on defect-free test renders in the zoo's looks, at the evaluation size and at half it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vetrina.models import catalog, defects
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
from vetrina.models.training.matting import LEVELS, composite

ARCHITECTURE = "defect-detector"
KINDS = defects.KINDS
IOU_GOAL = 0.7
#: At most this fraction of a defect-free supplier-style photo may be marked.
FALSE_ALARM_GOAL = 0.1
THRESHOLD = 0.5
#: Seeds of the defect generator for the evaluation sets: mixed kinds, then each kind alone.
EVAL_SEED = 7
#: Seed of the backgrounds of the defect-free photo set.
PHOTO_SEED = 13
#: JPEG quality of the defect-free photo set (a supplier's ordinary save).
PHOTO_QUALITY = 90
#: JPEG qualities of the photo-like training share (ordinary saves, not the defect).
PHOTO_QUALITIES = (70, 95)
#: The zoo's brand looks: a styled picture's outlines and flat colours are no defect.
LOOKS = ("style-cartoon", "style-vintage")


@dataclass(frozen=True)
class Recipe:
    """Every knob of a training run (recorded in the checkpoint)."""

    steps: int = 2400
    batch: int = 16
    crop: int = 64
    size: int = 128
    pool: int = 1024
    large_size: int = 256  # > 0: a second pool rendered at this size (objects and defects larger)
    large_pool: int = 256
    large_share: float = 0.5  # share of the steps drawn from the large pool
    crops_per_image: int = 2
    p: float = 0.5
    lr: float = 2e-3
    dice_weight: float = 1.0
    dice_per_image: bool = True
    dice_on_empty: bool = False  # crops without a defect pixel in the Dice term (BCE has them)
    intact: float = 0.25  # share of training images left without any defect
    backgrounds: float = 0.25  # share placed on a textured / shadowed / tinted background
    photo_jpeg: float = 0.5  # share saved as an ordinary JPEG (quality 70-95) before damage
    styled: float = 0.25  # share of the pool renders in a zoo brand look (no defect either)
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


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """An RGB uint8 image saved as JPEG at ``quality`` and read back."""
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]


def photo_like(
    images: np.ndarray, alphas: np.ndarray, rng: np.random.Generator, recipe: Any
) -> np.ndarray:
    """Renders made to look like supplier photos before any damage: a ``recipe.backgrounds``
    share on a textured / shadowed / tinted background, a ``recipe.photo_jpeg`` share saved as
    an ordinary JPEG. Neither is a defect: the mask stays empty for them."""
    out = images.copy()
    hard = LEVELS[1:]  # "studio" keeps the render's own background
    for i in range(len(out)):
        if rng.random() < recipe.backgrounds:
            out[i] = composite(out[i], alphas[i], hard[int(rng.integers(len(hard)))], rng)
        if rng.random() < recipe.photo_jpeg:
            out[i] = jpeg_round_trip(out[i], int(rng.integers(*PHOTO_QUALITIES, endpoint=True)))
    return out


def in_looks(images: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """``images`` with those at ``picks`` restyled by the zoo's looks in turn (cartoon,
    vintage, ...), as a brand-look stage before a clean stage hands them on."""
    from vetrina.models.training.style import stylize
    from vetrina.models.zoo import load_module

    out = images.copy()
    for i, look in enumerate(LOOKS):
        chosen = picks[i :: len(LOOKS)]
        if len(chosen):
            out[chosen] = stylize(load_module(look), images[chosen])
    return out


def styled_pool(images: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A training pool with a ``share`` of its renders (drawn by ``rng``) in the zoo's looks."""
    if share <= 0:
        return images
    count = round(share * len(images))
    return in_looks(images, np.sort(rng.choice(len(images), size=count, replace=False)))


def styled_set(count: int, size: int) -> np.ndarray:
    """Defect-free test renders, each in one of the zoo's looks (the looks in turn)."""
    images = render_pool(count, size, "test")[0]
    return in_looks(images, np.arange(len(images)))


def photo_set(count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Defect-free supplier-style photos of the test split: (images, product masks).

    The renders go on the background levels in turn (studio, texture, shadow, tinted) and are
    saved as JPEG quality :data:`PHOTO_QUALITY`."""
    clean, alphas, _ = render_pool(count, size, "test")
    rng = np.random.default_rng(PHOTO_SEED)
    photos = np.stack(
        [
            jpeg_round_trip(composite(im, a, LEVELS[i % len(LEVELS)], rng), PHOTO_QUALITY)
            for i, (im, a) in enumerate(zip(clean, alphas, strict=True))
        ]
    )
    return photos, alphas > 127


def kind_sets(count: int, size: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The mixed evaluation set (key ``"all"``) and one set per kind alone (same images)."""
    sets = {"all": evaluation_set(count, size)}
    for i, kind in enumerate(KINDS):
        sets[kind] = evaluation_set(count, size, (kind,), seed=EVAL_SEED + 1 + i)
    return sets


def training_batch(
    pool: np.ndarray, rng: np.random.Generator, recipe: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, defective, mask) crops of ``pool`` (studio renders), every image damaged:
    ``recipe.batch`` of ``recipe.crop`` px, grid-aligned. The inpainter's examples."""
    n = -(-recipe.batch // max(1, recipe.crops_per_image))
    clean = pool[rng.integers(0, len(pool), size=n)]
    random_flips(clean, rng)
    damaged, masks = defects.add_defects_batch(clean, rng, KINDS, p=recipe.p)
    return _crops(rng, recipe, clean, damaged, masks)


def detector_batch(
    pool: tuple[np.ndarray, np.ndarray], rng: np.random.Generator, recipe: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detector's examples from ``pool`` = (renders, alphas): as :func:`training_batch`,
    but the renders are made :func:`photo_like` first and a ``recipe.intact`` share is left
    undamaged (empty mask)."""
    n = -(-recipe.batch // max(1, recipe.crops_per_image))
    pick = rng.integers(0, len(pool[0]), size=n)
    renders, alphas = pool[0][pick], pool[1][pick]
    random_flips(renders, rng, alphas)
    clean = photo_like(renders, alphas, rng, recipe)
    damaged, masks = defects.add_defects_batch(clean, rng, KINDS, p=recipe.p)
    intact = rng.random(n) < recipe.intact
    damaged[intact], masks[intact] = clean[intact], 0
    return _crops(rng, recipe, clean, damaged, masks)


def _crops(rng: np.random.Generator, recipe: Any, *images: np.ndarray) -> tuple[np.ndarray, ...]:
    """The same ``recipe.batch`` grid-aligned ``recipe.crop`` px crops of each array, drawn
    ``recipe.crops_per_image`` per image."""
    per = max(1, recipe.crops_per_image)
    h, w = images[0].shape[1:3]
    c = recipe.crop
    ys = rng.integers(0, (h - c) // 8 + 1, size=recipe.batch) * 8
    xs = rng.integers(0, (w - c) // 8 + 1, size=recipe.batch) * 8
    src = np.arange(recipe.batch) // per
    return tuple(
        np.stack([arr[i, y : y + c, x : x + c] for i, y, x in zip(src, ys, xs, strict=True)])
        for arr in images
    )


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
    """Mask IoU at threshold 0.5 on the test split, mixed kinds and each kind alone; the
    false-alarm rate on defect-free supplier-style photos (overall and on the product), and
    the mask IoU on the same photos damaged (mixed kinds)."""
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
    photos: dict[int, np.ndarray] = {}
    for suffix, scale in (("", 1), ("_2x", 2)):
        # Photos are larger than the renders the net learns from: false alarms at twice the
        # size too (products and their print twice as large in pixels).
        photos[scale], product = photo_set(count, size * scale)
        marked = predict_masks(module, photos[scale]) >= THRESHOLD
        metrics["false_alarm" + suffix] = float(marked.mean())
        metrics["false_alarm_product" + suffix] = float(marked[product].mean())
    damaged, masks = defects.add_defects_batch(
        photos[1], np.random.default_rng(EVAL_SEED), KINDS, p=0.5
    )
    pred = predict_masks(module, damaged) >= THRESHOLD
    metrics["iou_photos"] = iou_scores(pred, masks > 0)[0]
    for suffix, styled_size in (("", size), ("_half", size // 2)):
        # a clean stage after a brand-look stage (generate-catalog runs it at 64 px)
        if styled_size % 8 == 0 and styled_size >= catalog.MIN_SIZE:
            marked = predict_masks(module, styled_set(count, styled_size)) >= THRESHOLD
            metrics["false_alarm_styled" + suffix] = float(marked.mean())
    metrics["images"] = count
    metrics["size"] = size
    return metrics


def checks(metrics: dict[str, float], name: str = "detector") -> list[Check]:
    """Data-set mask IoU (goal 0.7), mean per-image IoU, IoU per kind, false alarms on
    defect-free photos at the evaluation size and twice it (goal 10 % each; metrics of older
    checkpoints, which lack them, give the rows before these)."""
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
    if "false_alarm" in metrics:
        for suffix, label in (("", ""), ("_2x", ", 2x size")):
            alarm = metrics["false_alarm" + suffix]
            rows += [
                Check(
                    name,
                    "marked on defect-free photos" + label,
                    alarm,
                    goal=f"<= {FALSE_ALARM_GOAL:g}",
                    passed=alarm <= FALSE_ALARM_GOAL,
                ),
                Check(
                    name,
                    "marked on their products" + label,
                    metrics["false_alarm_product" + suffix],
                ),
            ]
        rows.append(Check(name, "mask IoU (same photos, damaged)", metrics["iou_photos"]))
    for suffix, label in (("", ""), ("_half", ", half size")):
        if "false_alarm_styled" + suffix in metrics:
            alarm = metrics["false_alarm_styled" + suffix]
            rows.append(
                Check(
                    name,
                    "marked on renders in a brand look" + label,
                    alarm,
                    goal=f"<= {FALSE_ALARM_GOAL:g}",
                    passed=alarm <= FALSE_ALARM_GOAL,
                )
            )
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
    pools = [render_pool(recipe.pool, recipe.size, "train")[:2]]
    if recipe.large_size:
        log(f"rendering {recipe.large_pool} training images at {recipe.large_size}px ...")
        pools.append(render_pool(recipe.large_pool, recipe.large_size, "train", recipe.pool)[:2])
    if recipe.styled:
        log(f"restyling {recipe.styled:.0%} of the renders in the zoo's looks ...")
        pools = [(styled_pool(images, recipe.styled, rng), alphas) for images, alphas in pools]
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=recipe.lr, total_steps=max(recipe.steps, 2), pct_start=0.1
    )
    bar = Progress(recipe.steps, "train detector", enabled=progress, log=log)
    model.train()
    for _ in range(recipe.steps):
        large = len(pools) > 1 and rng.random() < recipe.large_share
        _, damaged, masks = detector_batch(pools[int(large)], rng, recipe)
        target = to_tensor(masks)
        prob = model(to_tensor(damaged)).clamp(1e-6, 1.0 - 1e-6)
        bce = F.binary_cross_entropy(prob, target)
        dims = (1, 2, 3) if recipe.dice_per_image else (0, 1, 2, 3)
        inter = (prob * target).sum(dims)
        dice = 1.0 - (2.0 * inter + 1.0) / (prob.sum(dims) + target.sum(dims) + 1.0)
        if recipe.dice_per_image and not recipe.dice_on_empty:
            # On an empty crop Dice is ~1 for any stray probability: it would drive the net
            # to mark nothing it is unsure of; BCE alone teaches those crops.
            dice = dice[target.sum(dims) > 0]
        dice = dice.mean() if dice.numel() else dice.sum()  # no defect in the batch: 0
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
