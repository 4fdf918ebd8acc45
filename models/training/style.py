"""Training recipe for the style editors: a fast-neural-style TransformerNet learns a catalog look.

Why paired targets: Johnson et al. train their TransformerNet with perceptual (VGG feature and
Gram-matrix) losses. No pretrained VGG can be downloaded here, and the features of a classifier
trained on our own catalog make a weak style loss. Instead each look is a deterministic image
operation (:mod:`vetrina.models.looks`), and the net learns to reproduce it from pairs
(render, look(render)) of the catalog's train split. The target defines the look exactly, and
the result is reproducible and measurable.

The loss, on images scaled to [0, 1]:

    MSE(out, target) + edge_weight * (MSE(dx out, dx target) + MSE(dy out, dy target))

where dx, dy are horizontal and vertical neighbour differences. The first term matches colour
and tone (and is what PSNR measures); the gradient term rewards crisp outlines and flat bands
(the cartoon look) and the soft edges of the vintage glow, which a plain pixel loss blurs while
the net is young. (L1 trained more slowly and gave lower PSNR in trials of a few hundred steps.)

The net is the public architecture at a reduced width (``channels``, 32 in the public net) and
depth (``blocks``, 5 in the public net) so a look trains in a few minutes on 2 CPU cores; the
checkpoint's config records both. Its input and output are 0..255 like the public net. Training
details that make the few minutes count:

* the residual blocks start as the identity (the scale of each block's last instance norm,
  ``res*.in2.weight``, starts at zero);
* the last conv (``deconv3``) works in 0..255: its weights start at 25.5 times the default
  initialisation (a tenth of 255: small output noise) and train at ``tail_lr_scale`` times the
  base learning rate; its bias starts at the mean colour of the training targets and trains at
  ``bias_lr`` grey levels per step (Adam);
* whole renders, not small crops, by default: the net normalises every feature map per image
  (instance norm), and a crop of plain studio background would have its faint texture
  amplified into noise.

Note that the input passes straight into instance normalisation, so the net is blind to a
global brightness or colour shift of its input (and to the overall contrast of an object
against the background): it infers absolute colour from the image's content. This caps how
exactly it can match a look's colours, more for saturated looks than for faded ones.

Training images are random ``crop`` px crops (with flips) of ``size`` px renders whose look was
applied to the whole render (the looks are local, so a crop of the target is the target of the
crop away from the borders); with ``crop == size`` they are the whole renders.

Metrics on the test split (``eval_images`` renders at ``eval_size`` px):

* ``ssim_luma``: structure kept, SSIM of the output's luma against the input's (Wang et al.
  2004: 11x11 Gaussian window with sigma 1.5 via ``cv2.GaussianBlur``, C1 = (0.01 * 255)^2,
  C2 = (0.03 * 255)^2, mean of the SSIM map; luma is Rec.601). Goal >= 0.5. The look target's
  own SSIM is the baseline shown beside it.
* ``stats_closed``: how far the output's colour and texture statistics moved toward the look.
  Each image is described by 7 numbers in CIE Lab units: the means and standard deviations of
  L, a and b and the mean gradient magnitude of L (central differences; texture/edge energy).
  With d the Euclidean distance between these vectors, ``stats_closed`` =
  1 - mean d(output, target) / mean d(input, target): 0 means the output is as far from the
  look as the input, 1 means the statistics match. Goal >= 0.5.
* ``psnr_target``: PSNR (dB) of the output against the look target; the input's PSNR against
  the target is the baseline. Goal: above the baseline.
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
from vetrina.models.looks import LOOKS, apply_look
from vetrina.models.training.common import (
    Log,
    Progress,
    Stopwatch,
    batched,
    cosine_lr,
    metadata,
    optimise,
    print_log,
    render_pool,
    seed_everything,
)

ARCHITECTURE = "transformer-net"
SSIM_GOAL = 0.5
STATS_GOAL = 0.5
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Recipe:
    """Every knob of a training run (recorded in the checkpoint)."""

    look: str = "vintage"
    steps: int = 1200
    batch: int = 2
    size: int = 128  # renders of the training pool
    crop: int = 128  # training crops (multiple of 4; == size: whole renders)
    pool: int = 512
    lr: float = 1e-3
    tail_lr_scale: float = 5.0  # deconv3 weights
    bias_lr: float = 0.5  # deconv3 bias, grey levels per step
    edge_weight: float = 1.0
    seed: int = 0
    channels: int = 16
    blocks: int = 2
    eval_images: int = 32
    eval_size: int = 128


def _check_recipe(recipe: Recipe) -> None:
    if recipe.look not in LOOKS:
        raise ValueError(f"unknown look {recipe.look!r}; known: {', '.join(LOOKS)}")
    if recipe.crop % 4 or recipe.crop > recipe.size:
        raise ValueError(f"crop must be a multiple of 4 and <= size, got {recipe.crop}")


def _to_net(images: np.ndarray) -> Any:
    """uint8 (N, H, W, 3) -> float32 torch (N, 3, H, W) in 0..255 (the net's range)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float()


def _from_net(batch: Any) -> np.ndarray:
    """float torch (N, 3, H, W) in 0..255 -> uint8 (N, H, W, 3), clamped, rounded half up."""
    import torch

    arr = batch.detach().clamp(0, 255).add(0.5).floor_().to(dtype=torch.uint8)
    return arr.permute(0, 2, 3, 1).contiguous().numpy()


def stylize(module: Any, images: np.ndarray, batch: int = 16) -> np.ndarray:
    """Run the TransformerNet ``module`` over uint8 RGB ``images`` (N, H, W, 3) -> uint8."""
    return _from_net(batched(module, _to_net(images), batch))


def evaluation_set(look: str, count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out (input, look target) pairs from the catalog's test split."""
    images = render_pool(count, size, "test")[0]
    return images, np.stack([apply_look(x, look) for x in images])


def luma(image: np.ndarray) -> np.ndarray:
    """Rec.601 luma of a uint8 RGB image, float64 in 0..255."""
    return image.astype(np.float64) @ _LUMA


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two single-channel images (Wang et al. 2004; Gaussian 11x11, sigma 1.5)."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"ssim: need two equal 2-D arrays, got {a.shape} and {b.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)

    def blur(v: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(v, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * cxy + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    return float(np.mean(num / den))


def look_statistics(image: np.ndarray) -> np.ndarray:
    """7 colour/texture statistics in Lab units: mean and std of L, a, b; mean |grad L|."""
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).astype(np.float64)
    flat = lab.reshape(-1, 3)
    light = lab[..., 0]
    gy, gx = np.gradient(light)
    return np.concatenate([flat.mean(0), flat.std(0), [np.sqrt(gx * gx + gy * gy).mean()]])


def evaluate(
    module: Any, recipe: Recipe = Recipe(), *, images: int | None = None, size: int | None = None
) -> dict[str, float | int | str]:
    """Structure kept (luma SSIM), statistics moved toward the look, and PSNR to the look."""
    _check_recipe(recipe)
    count, size = images or recipe.eval_images, size or recipe.eval_size
    if size % 4:
        raise ValueError(f"the TransformerNet needs sides that are multiples of 4, got {size}")
    inputs, targets = evaluation_set(recipe.look, count, size)
    outputs = stylize(module, inputs)
    s_in = [look_statistics(x) for x in inputs]
    s_tg = [look_statistics(x) for x in targets]
    s_out = [look_statistics(x) for x in outputs]
    d_in = np.mean([np.linalg.norm(a - t) for a, t in zip(s_in, s_tg, strict=True)])
    d_out = np.mean([np.linalg.norm(a - t) for a, t in zip(s_out, s_tg, strict=True)])
    return {
        "look": recipe.look,
        "ssim_luma": float(
            np.mean([ssim(luma(o), luma(x)) for o, x in zip(outputs, inputs, strict=True)])
        ),
        "ssim_luma_target": float(
            np.mean([ssim(luma(t), luma(x)) for t, x in zip(targets, inputs, strict=True)])
        ),
        "stats_distance_input": float(d_in),
        "stats_distance_output": float(d_out),
        "stats_closed": float(1.0 - d_out / d_in) if d_in > 0 else 0.0,
        "psnr_target": float(np.mean([psnr(o, t) for o, t in zip(outputs, targets, strict=True)])),
        "psnr_input_target": float(
            np.mean([psnr(x, t) for x, t in zip(inputs, targets, strict=True)])
        ),
        "images": count,
        "size": size,
    }


def checks(metrics: dict[str, Any], name: str = "style") -> list[Check]:
    """Structure kept (SSIM), look statistics reached, and PSNR to the look vs the input's."""
    return [
        Check(
            name,
            "luma SSIM vs input",
            metrics["ssim_luma"],
            "look target",
            metrics["ssim_luma_target"],
            f">= {SSIM_GOAL:g}",
            metrics["ssim_luma"] >= SSIM_GOAL,
        ),
        Check(
            name,
            "Lab/gradient stats gap closed",
            metrics["stats_closed"],
            "input (0 = unchanged)",
            0.0,
            f">= {STATS_GOAL:g}",
            metrics["stats_closed"] >= STATS_GOAL,
        ),
        Check(
            name,
            "PSNR to look target (dB)",
            metrics["psnr_target"],
            "input vs target",
            metrics["psnr_input_target"],
            "> baseline",
            metrics["psnr_target"] > metrics["psnr_input_target"],
        ),
    ]


def _gradient_mse(out: Any, target: Any) -> Any:
    from torch.nn.functional import mse_loss

    def diffs(x: Any) -> tuple[Any, Any]:
        return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]

    (ox, oy), (tx, ty) = diffs(out), diffs(target)
    return mse_loss(ox, tx) + mse_loss(oy, ty)


def _sample(
    inputs: np.ndarray, targets: np.ndarray, recipe: Recipe, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A batch of aligned random crops (with random left-right flips) of input and target."""
    idx = rng.integers(0, len(inputs), size=recipe.batch)
    top = rng.integers(0, recipe.size - recipe.crop + 1, size=recipe.batch)
    left = rng.integers(0, recipe.size - recipe.crop + 1, size=recipe.batch)
    flip = rng.random(recipe.batch) < 0.5
    c = recipe.crop
    xs, ys = [], []
    for i, t, lf, f in zip(idx, top, left, flip, strict=True):
        x, y = inputs[i, t : t + c, lf : lf + c], targets[i, t : t + c, lf : lf + c]
        xs.append(x[:, ::-1] if f else x)
        ys.append(y[:, ::-1] if f else y)
    return np.stack(xs), np.stack(ys)


def train(
    out: str | os.PathLike[str],
    recipe: Recipe = Recipe(),
    *,
    command: str = "vetrina zoo train style-vintage",
    progress: bool = True,
    log: Log = print_log,
) -> Path:
    """Train from scratch and write a vetrina checkpoint to ``out``."""
    import torch

    _check_recipe(recipe)
    rng = seed_everything(recipe.seed)
    config = {"channels": recipe.channels, "blocks": recipe.blocks}
    model = get_architecture(ARCHITECTURE).build(config)
    clock = Stopwatch()
    log(f"rendering {recipe.pool} training images at {recipe.size}px, look {recipe.look!r} ...")
    inputs = render_pool(recipe.pool, recipe.size, "train")[0]
    targets = np.stack([apply_look(x, recipe.look) for x in inputs])
    last = model.deconv3.conv2d
    with torch.no_grad():  # see the module docstring
        for i in range(recipe.blocks):
            getattr(model, f"res{i + 1}").in2.weight.zero_()
        last.weight.mul_(25.5)
        last.bias.copy_(torch.from_numpy(targets.reshape(-1, 3).mean(0)).float())
    body = [p for n, p in model.named_parameters() if not n.startswith("deconv3.")]
    optimiser = torch.optim.Adam(
        [
            {"params": body, "lr": recipe.lr},
            {"params": [last.weight], "lr": recipe.lr * recipe.tail_lr_scale},
            {"params": [last.bias], "lr": recipe.bias_lr},
        ]
    )
    schedule = cosine_lr(optimiser, recipe.steps)
    bar = Progress(recipe.steps, f"train style-{recipe.look}", enabled=progress, log=log)
    model.train()
    for _ in range(recipe.steps):
        x, y = _sample(inputs, targets, recipe, rng)
        result = model(_to_net(x)) / 255.0
        target = _to_net(y) / 255.0
        mse = torch.nn.functional.mse_loss(result, target)
        edge = _gradient_mse(result, target)
        loss = mse + recipe.edge_weight * edge
        optimise(loss, optimiser, schedule)
        bar.update(mse=mse.item(), edge=edge.item())
    bar.close()
    train_seconds = clock.wall
    metrics = evaluate(model, recipe)
    log(
        f"test split ({recipe.look}): luma SSIM {metrics['ssim_luma']:.3f}, stats gap closed "
        f"{metrics['stats_closed']:.3f}, PSNR to look {metrics['psnr_target']:.2f} dB (input "
        f"{metrics['psnr_input_target']:.2f} dB) in {train_seconds:.0f} s"
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
            look=recipe.look,
            final_mse=bar.values.get("mse"),
        ),
    )
