"""Training recipe for the conditional VAE: (z, category, colour) -> 64x64 product photo.

Data: a pool of 64 px renders of the catalog's train split with their labels, rendered once
(mirror flips on the fly). The encoder q(z | x, y) (training only) and the decoder p(x | z, y)
are trained on the beta-VAE objective: mean absolute reconstruction error over pixels (images
in [-1, 1]; the product's pixels, from the render's alpha, weigh ``1 + product_weight`` = 5)
plus ``kl_weight`` (8) times the KL divergence to N(0, I) per pixel, the KL weight ramped up
linearly over the first ``kl_warmup`` of the steps. Why: with a plain L1 the small product gets
a quarter of the gradient and its colour comes out blended with the contrasting pattern
colours (green drifts to olive, blue to purple: colour accuracy 0.73); and with a weak KL the
latent carries the shape (200+ nats), so samples of the prior, which is what the decoder meets
as a generator, draw shapes of no category. At these weights the KL settles near 30 nats and
the labels carry category and colour. The checkpoint stores the decoder alone, with
batch-norm statistics re-estimated from prior samples; the encoder is not saved.

Judged by the zoo classifier (see :mod:`.generative`): train the classifier first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vetrina.models.architectures import get_architecture
from vetrina.models.evaluation import Check
from vetrina.models.training.classifier import labels_to_indices
from vetrina.models.training.common import (
    Log,
    Progress,
    Stopwatch,
    cosine_lr,
    optimise,
    print_log,
    random_flips,
    render_pool,
    seed_everything,
    to_tensor,
)
from vetrina.models.training.generative import (
    check_size,
    evaluate_generator,
    finish_generator,
    generator_checks,
    monitor_generator,
)

ARCHITECTURE = "cvae-decoder"


@dataclass(frozen=True)
class Recipe:
    """Every knob of a training run (recorded in the checkpoint)."""

    steps: int = 1500
    batch: int = 32
    size: int = 64
    pool: int = 5000
    lr: float = 2e-3
    kl_weight: float = 8.0
    product_weight: float = 4.0  # extra weight of the product's pixels (alpha) in the L1
    kl_warmup: float = 0.2
    standing_batches: int = 16
    monitor_every: int = 200  # 0: no judge accuracies during training
    seed: int = 0
    z_dim: int = 32
    channels: int = 64
    encoder_channels: int = 64
    grey_encoder: bool = False  # the encoder sees luminance only: hue must come from the label
    eval_images: int = 704
    eval_size: int = 64


def evaluate(
    module: Any, recipe: Recipe = Recipe(), *, images: int | None = None, size: int | None = None
) -> dict[str, Any]:
    """Judge accuracies, diversity and seed reproducibility over every (category, colour)."""
    check_size(size)
    return evaluate_generator(module, module.z_dim, images or recipe.eval_images)


def checks(metrics: dict[str, Any], name: str = "vae") -> list[Check]:
    return generator_checks(metrics, name)


def train(
    out: str | os.PathLike[str],
    recipe: Recipe = Recipe(),
    *,
    command: str = "vetrina zoo train vae",
    progress: bool = True,
    log: Log = print_log,
) -> Path:
    """Train from scratch and write a vetrina checkpoint (the decoder only) to ``out``."""
    import torch

    from vetrina.models.architectures.vae import Encoder

    rng = seed_everything(recipe.seed)
    config = {"z_dim": recipe.z_dim, "channels": recipe.channels}
    decoder = get_architecture(ARCHITECTURE).build(config)
    encoder = Encoder(recipe.z_dim, recipe.encoder_channels, grey=recipe.grey_encoder)
    clock = Stopwatch()
    log(f"rendering {recipe.pool} training images at {recipe.size}px ...")
    pool, alphas, labels = render_pool(recipe.pool, recipe.size, "train")
    pool_cat, pool_col = labels_to_indices(labels)
    params = [*decoder.parameters(), *encoder.parameters()]
    optimiser = torch.optim.Adam(params, lr=recipe.lr)
    schedule = cosine_lr(optimiser, recipe.steps)
    judge = None
    if recipe.monitor_every:
        from vetrina.models.zoo import load_module

        judge = load_module("classifier")
    pixels = 3 * recipe.size * recipe.size
    warm = max(1, int(recipe.kl_warmup * recipe.steps))
    bar = Progress(recipe.steps, "train vae", enabled=progress, log=log, every=50)
    gen = torch.Generator().manual_seed(recipe.seed)
    for step in range(recipe.steps):
        idx = rng.integers(0, len(pool), size=recipe.batch)
        images, alpha = pool[idx], alphas[idx]
        random_flips(images, rng, alpha)
        x = to_tensor(images).mul_(2.0).sub_(1.0)
        pixel_weight = 1.0 + recipe.product_weight * to_tensor(alpha)
        cat = torch.from_numpy(pool_cat[idx])
        col = torch.from_numpy(pool_col[idx])
        decoder.train()
        encoder.train()
        mean, logvar = encoder(x, cat, col)
        z = mean + torch.randn(mean.shape, generator=gen) * (0.5 * logvar).exp()
        recon = ((decoder(z, cat, col) - x).abs() * pixel_weight).mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()
        weight = recipe.kl_weight * min(1.0, (step + 1) / warm)
        loss = recon + weight * kl / pixels
        optimise(loss, optimiser, schedule)
        bar.update(l1=recon.item(), kl=kl.item())
        monitor_generator(decoder, recipe, judge, step, log)
    return finish_generator(
        decoder,
        recipe,
        out,
        architecture=ARCHITECTURE,
        config=config,
        command=command,
        clock=clock,
        bar=bar,
        saved_weights="the decoder only (the deployable generator), batch-norm statistics "
        "re-estimated from prior samples; the encoder is training only and not saved",
        log=log,
    )
