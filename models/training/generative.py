"""How the zoo generators (GAN, VAE decoder) are judged: by the zoo classifier, on every label.

For each of the 8 x 11 (category, colour) conditions the generator draws ``k`` images from the
fixed latent seeds ``0 .. k-1`` (:func:`vetrina.models.latents.latent`). The images are rounded
to uint8, as a deployed generator would hand them out, and the zoo classifier names their
category and colour: the two accuracies are the fidelity figures (goal >= 0.8 each).

Diversity is the mean absolute pixel difference (RGB in [0, 1]) between two images of the same
condition drawn from different seeds, averaged over all such pairs; the same figure for ``k``
real renders of each condition (test split, label forced) is its baseline. A collapsed
generator scores 0 (and pixel noise scores high: read it beside the pictures). The smallest
such distance must exceed 0.01, 2.5 grey levels on average over the image: well above what
rounding alone makes (one level is 0.004), so two seeds never give the same picture, and below
the closest pair of real renders of one label (about 0.02 with 8 per label), which a real
catalog still counts as two photos. Finally the seed -> image contract: the first
batch drawn again must give exactly the same bytes, and the first seeds drawn one image per
call may differ from the batched images by at most one grey level (a convolution may sum in
another order for another batch size; the rounding to uint8 can then flip).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from vetrina.models import catalog
from vetrina.models.checkpoint import save_checkpoint
from vetrina.models.evaluation import Check
from vetrina.models.latents import latents
from vetrina.models.training.common import Progress, Stopwatch, metadata

GENERATOR_SIZE = 64
ACCURACY_GOAL = 0.8
MIN_DISTANCE_GOAL = 0.01
NUM_CONDITIONS = len(catalog.CATEGORIES) * len(catalog.COLOURS)


def conditions() -> list[tuple[int, int]]:
    """Every (category index, colour index) pair, categories outermost."""
    return list(product(range(len(catalog.CATEGORIES)), range(len(catalog.COLOURS))))


def samples_per_condition(images: int) -> int:
    """``images`` spread over the 88 conditions: at least 2 per condition (for pairs)."""
    return max(2, -(-int(images) // NUM_CONDITIONS))


def random_labels(rng: np.random.Generator, n: int) -> tuple[Any, Any]:
    """``n`` uniformly drawn (category, colour) index tensors."""
    import torch

    cat = torch.from_numpy(rng.integers(0, len(catalog.CATEGORIES), size=n))
    col = torch.from_numpy(rng.integers(0, len(catalog.COLOURS), size=n))
    return cat, col


def standing_statistics(generator: Any, z_dim: int, batches: int, batch: int, seed: int) -> None:
    """Re-estimate the generator's batch-norm statistics from its own forward passes."""
    import torch

    norms = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or batches <= 0:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    generator.train()
    with torch.no_grad():
        for _ in range(batches):
            cat, col = random_labels(rng, batch)
            generator(torch.randn(batch, z_dim, generator=gen), cat, col)
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    generator.eval()


def generate(module: Any, z: Any, category: Any, colour: Any, batch: int = 128) -> np.ndarray:
    """uint8 (N, 64, 64, 3) images of a generator whose output is in [-1, 1]."""
    import torch

    from vetrina.models.training.common import from_tensor

    module.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(z), batch):
            sl = slice(i, i + batch)
            image = module(z[sl], category[sl], colour[sl])
            out.append(from_tensor(image.add(1.0).mul(0.5)))
    return np.concatenate(out)


def condition_batch(k: int, z_dim: int) -> tuple[Any, Any, Any]:
    """Inputs for ``k`` seeds x every condition: z (88k, z_dim), category, colour (88k,)."""
    import torch

    pairs = np.repeat(np.array(conditions(), dtype=np.int64), k, axis=0)
    z = np.tile(latents(range(k), z_dim), (NUM_CONDITIONS, 1))
    return torch.from_numpy(z), torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])


def real_condition_images(k: int, split: str = "test") -> np.ndarray:
    """``k`` renders of ``split`` for every condition (label forced), ordered like the samples."""
    seeds = catalog.split_seeds(split, k)
    images = []
    for cat, col in conditions():
        images.append(
            catalog.render_batch(
                seeds,
                GENERATOR_SIZE,
                category=catalog.CATEGORIES[cat],
                colour=tuple(catalog.COLOURS)[col],
            )[0]
        )
    return np.concatenate(images)


def pairwise_distances(images: np.ndarray, k: int) -> np.ndarray:
    """Mean |a - b| in [0, 1] of every pair within each consecutive group of ``k`` images."""
    groups = images.reshape(-1, k, *images.shape[1:]).astype(np.float32) / 255.0
    i, j = np.triu_indices(k, 1)
    flat = groups.reshape(groups.shape[0], k, -1)
    return np.abs(flat[:, i] - flat[:, j]).mean(axis=2).ravel()


def classifier_features(judge: Any, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """The judge's pooled features (N, F) float64 of uint8 (N, H, W, 3) images."""
    import torch

    from vetrina.models.training.common import to_tensor

    judge.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            out.append(judge.features(to_tensor(images[i : i + batch])).double().numpy())
    return np.concatenate(out)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are samples):
    ``|mu_a - mu_b|^2 + tr(Ca + Cb - 2 (Ca^1/2 Cb Ca^1/2)^1/2)``, symmetric and exact."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (N >= 2, F) feature sets, got {a.shape} and {b.shape}")
    diff = a.mean(axis=0) - b.mean(axis=0)
    cov_a, cov_b = (np.atleast_2d(np.cov(x, rowvar=False)) for x in (a, b))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace = np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.sqrt(np.clip(cross, 0.0, None)).sum()
    return float(diff @ diff + max(trace, 0.0))


def high_frequency(images: np.ndarray) -> float:
    """Mean ``|image - its 3x3 box mean|`` in [0, 1] over uint8 (N, H, W, C) images (edges
    replicated): grain and noise raise it, blur lowers it."""
    x = np.asarray(images, np.float32) / 255.0
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = x.shape[1:3]
    box = sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
    return float(np.abs(x - box).mean())


def evaluate_generator(
    module: Any, z_dim: int, images: int, *, judge: Any = None, reproduce: int = 8
) -> dict[str, Any]:
    """Fidelity (judge accuracies), diversity and reproducibility of a generator."""

    from vetrina.models.training.classifier import predict
    from vetrina.models.training.common import to_tensor

    if judge is None:
        from vetrina.models.zoo import load_module

        judge = load_module("classifier")
    k = samples_per_condition(images)
    z, cat, col = condition_batch(k, z_dim)
    samples = generate(module, z, cat, col)
    pred_cat, pred_col = predict(judge, to_tensor(samples))
    want_cat, want_col = cat.numpy(), col.numpy()
    per_category = {
        name: float(np.mean(pred_cat[want_cat == i] == i))
        for i, name in enumerate(catalog.CATEGORIES)
    }
    generated = pairwise_distances(samples, k)
    reference = real_condition_images(k)
    real = pairwise_distances(reference, k)
    held_out = real_condition_images(k, "val")
    reference_features = classifier_features(judge, reference)
    # Seed -> image: the first chunk again, the same call, must give the same bytes; and
    # the first seeds one image per call (another batch size) at most one grey level off.
    first = min(len(z), 128)
    again = generate(module, z[:first], cat[:first], col[:first])
    rerun = int(np.abs(again.astype(np.int16) - samples[:first]).max())
    alone = [
        generate(module, z[i : i + 1], cat[i : i + 1], col[i : i + 1]) for i in range(reproduce)
    ]
    batch_diff = max(
        (int(np.abs(a.astype(np.int16) - samples[i]).max()) for i, a in enumerate(alone)), default=0
    )
    return {
        "category_accuracy": float(np.mean(pred_cat == want_cat)),
        "colour_accuracy": float(np.mean(pred_col == want_col)),
        "category_accuracy_by_category": per_category,
        "diversity": float(generated.mean()),
        "diversity_real": float(real.mean()),
        "min_pairwise_distance": float(generated.min()),
        "min_pairwise_distance_real": float(real.min()),
        "frechet_distance": frechet_distance(
            classifier_features(judge, samples), reference_features
        ),
        "frechet_distance_real": frechet_distance(
            classifier_features(judge, held_out), reference_features
        ),
        "high_frequency": high_frequency(samples),
        "high_frequency_real": high_frequency(reference),
        "reproduce_max_diff": rerun,
        "batch_size_max_diff": batch_diff,
        "samples_per_condition": k,
        "images": len(samples),
        "size": GENERATOR_SIZE,
    }


def monitor_generator(
    generator: Any, recipe: Any, judge: Any, step: int, log: Callable[[str], None]
) -> None:
    """Every ``recipe.monitor_every`` steps but the last, log the judge's accuracies and the
    diversity of a copy of ``generator`` with standing statistics (the training run's own
    batch-norm state is left alone). ``judge``: the zoo classifier, or None (no monitoring)."""
    if judge is None or (step + 1) % recipe.monitor_every or step + 1 >= recipe.steps:
        return
    snapshot = copy.deepcopy(generator)
    standing_statistics(snapshot, recipe.z_dim, 4, 64, recipe.seed + 1)
    quick = evaluate_generator(snapshot, recipe.z_dim, 176, judge=judge, reproduce=0)
    log(
        f"step {step + 1}: judge category accuracy {quick['category_accuracy']:.3f}, "
        f"colour {quick['colour_accuracy']:.3f}, diversity {quick['diversity']:.3f} "
        f"(real {quick['diversity_real']:.3f})"
    )


def finish_generator(
    generator: Any,
    recipe: Any,
    out: str | os.PathLike[str],
    *,
    architecture: str,
    config: dict[str, Any],
    command: str,
    clock: Stopwatch,
    bar: Progress,
    saved_weights: str,
    log: Callable[[str], None],
) -> Path:
    """The end of a generator's training run: standing batch-norm statistics, the test
    evaluation (logged) and the checkpoint of ``generator`` alone, written to ``out``."""
    bar.close()
    standing_statistics(
        generator, recipe.z_dim, recipe.standing_batches, 2 * recipe.batch, recipe.seed + 1
    )
    train_seconds, cpu_seconds = clock.wall, clock.cpu
    metrics = evaluate_generator(generator, generator.z_dim, recipe.eval_images)
    log(
        f"test: judge category accuracy {metrics['category_accuracy']:.3f}, colour accuracy "
        f"{metrics['colour_accuracy']:.3f}, diversity {metrics['diversity']:.3f} (real renders "
        f"{metrics['diversity_real']:.3f}), min distance {metrics['min_pairwise_distance']:.3f} "
        f"in {train_seconds:.0f} s ({cpu_seconds:.0f} s CPU)"
    )
    return save_checkpoint(
        out,
        architecture=architecture,
        config=config,
        state_dict=generator.state_dict(),
        metadata=metadata(
            recipe,
            command=command,
            metrics=metrics,
            train_seconds=train_seconds,
            train_cpu_seconds=round(cpu_seconds, 1),
            saved_weights=saved_weights,
            output_range=[-1.0, 1.0],
            latent="vetrina.models.latents.latent(seed, z_dim): standard normal, default_rng(seed)",
            final_losses=dict(bar.values),
        ),
    )


def _picture_checks(metrics: dict[str, Any], name: str) -> list[Check]:
    """Fréchet distance and high-frequency energy beside real renders (absent from the
    metrics of checkpoints evaluated before they existed)."""
    rows = [
        ("frechet_distance", "Fréchet distance (classifier features)", "val renders"),
        ("high_frequency", "high-frequency energy", "real renders"),
    ]
    return [
        Check(name, label, metrics[key], baseline, metrics[f"{key}_real"])
        for key, label, baseline in rows
        if key in metrics
    ]


def check_size(size: int | None) -> None:
    if size is not None and size != GENERATOR_SIZE:
        raise ValueError(f"the zoo generators draw {GENERATOR_SIZE}x{GENERATOR_SIZE} images only")


def generator_checks(metrics: dict[str, Any], name: str) -> list[Check]:
    """Fidelity goals (>= 0.8), diversity beside real renders, distinct seeds, same seed."""
    return [
        Check(
            name,
            "category accuracy (zoo classifier)",
            metrics["category_accuracy"],
            "chance",
            1.0 / len(catalog.CATEGORIES),
            f">= {ACCURACY_GOAL:g}",
            metrics["category_accuracy"] >= ACCURACY_GOAL,
        ),
        Check(
            name,
            "colour accuracy (zoo classifier)",
            metrics["colour_accuracy"],
            "chance",
            1.0 / len(catalog.COLOURS),
            f">= {ACCURACY_GOAL:g}",
            metrics["colour_accuracy"] >= ACCURACY_GOAL,
        ),
        Check(
            name,
            "diversity (mean |a-b|, same label)",
            metrics["diversity"],
            "real renders",
            metrics["diversity_real"],
        ),
        *_picture_checks(metrics, name),
        Check(
            name,
            "min distance between seeds",
            metrics["min_pairwise_distance"],
            "real renders",
            metrics["min_pairwise_distance_real"],
            f"> {MIN_DISTANCE_GOAL:g}",
            metrics["min_pairwise_distance"] > MIN_DISTANCE_GOAL,
        ),
        Check(
            name,
            "same seed again, max diff (levels)",
            float(metrics["reproduce_max_diff"]),
            goal="== 0",
            passed=metrics["reproduce_max_diff"] == 0,
        ),
        Check(
            name,
            "same seed, batch of 1, max diff",
            float(metrics["batch_size_max_diff"]),
            goal="<= 1",
            passed=metrics["batch_size_max_diff"] <= 1,
        ),
    ]
