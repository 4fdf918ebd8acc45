"""Training recipe for the enhancer: learn to undo synthetic degradations of rendered products.

Pairs are made on the fly: clean renders from the catalog's train split, degraded with low
contrast, colour cast and noise. Deterministic for a given seed and thread count.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vetrina.metrics import psnr
from vetrina.models import catalog, degrade
from vetrina.models.architectures import get_architecture
from vetrina.models.checkpoint import save_checkpoint

ARCHITECTURE = "enhancer"
KINDS = degrade.FOUNDATION_KINDS


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


def _render_pool(count: int, size: int, split: str, start: int = 0) -> np.ndarray:
    seeds = catalog.split_seeds(split, count, start=start)
    return np.stack([catalog.render(int(s), size).image for s in seeds])


def _to_tensor(images: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float().div_(255.0)


def _from_tensor(batch: Any) -> np.ndarray:
    arr = batch.clamp(0, 1).mul(255.0).add_(0.5).floor_().to(dtype=__import__("torch").uint8)
    return arr.permute(0, 2, 3, 1).contiguous().numpy()


def evaluation_set(count: int, size: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Held-out (clean, degraded) pairs from the catalog's test split, fixed by ``seed``."""
    clean = _render_pool(count, size, "test")
    rng = np.random.default_rng(seed)
    degraded = degrade.degrade_batch(clean, rng, KINDS)
    return clean, degraded


def evaluate(module: Any, count: int = 48, size: int = 128) -> dict[str, float]:
    """Mean PSNR (dB) of degraded and enhanced images against the clean originals."""
    import torch

    clean, degraded = evaluation_set(count, size)
    module.eval()
    enhanced = []
    with torch.inference_mode():
        for start in range(0, count, 16):
            enhanced.append(_from_tensor(module(_to_tensor(degraded[start : start + 16]))))
    result = np.concatenate(enhanced)
    before = float(np.mean([psnr(d, c) for d, c in zip(degraded, clean, strict=True)]))
    after = float(np.mean([psnr(e, c) for e, c in zip(result, clean, strict=True)]))
    return {
        "psnr_degraded": before,
        "psnr_enhanced": after,
        "gain_db": after - before,
        "images": count,
        "size": size,
    }


def train(
    out: str | os.PathLike[str],
    recipe: Recipe = Recipe(),
    *,
    command: str = "vetrina zoo train enhancer",
    progress: bool = True,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> Path:
    """Train from scratch and write a vetrina checkpoint to ``out``."""
    import torch

    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    spec = get_architecture(ARCHITECTURE)
    config = {"channels": recipe.channels, "blocks": recipe.blocks}
    model = spec.build(config)
    started = time.perf_counter()
    log(f"rendering {recipe.pool} training images at {recipe.size}px ...")
    pool = _render_pool(recipe.pool, recipe.size, "train")
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=recipe.lr, total_steps=max(recipe.steps, 2), pct_start=0.1
    )
    bar = _progress(recipe.steps, progress)
    model.train()
    loss_avg = math.nan
    for step in range(recipe.steps):
        idx = rng.integers(0, len(pool), size=recipe.batch)
        clean = pool[idx]
        flips = rng.random(recipe.batch) < 0.5
        clean[flips] = clean[flips, :, ::-1]
        noisy = degrade.degrade_batch(clean, rng, KINDS)
        target, source = _to_tensor(clean), _to_tensor(noisy)
        loss = torch.nn.functional.l1_loss(model(source), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        value = loss.item()
        loss_avg = value if math.isnan(loss_avg) else 0.95 * loss_avg + 0.05 * value
        if bar is not None:
            bar.update(1)
            bar.set_postfix(l1=f"{loss_avg:.4f}")
        elif step % 100 == 0 or step == recipe.steps - 1:
            log(f"step {step + 1}/{recipe.steps}  l1 {loss_avg:.4f}")
    if bar is not None:
        bar.close()
    train_seconds = time.perf_counter() - started
    metrics = evaluate(model, recipe.eval_images, recipe.eval_size)
    log(
        f"test split: degraded {metrics['psnr_degraded']:.2f} dB -> enhanced "
        f"{metrics['psnr_enhanced']:.2f} dB ({metrics['gain_db']:+.2f} dB) in {train_seconds:.0f} s"
    )
    return save_checkpoint(
        out,
        architecture=ARCHITECTURE,
        config=config,
        state_dict=model.state_dict(),
        metadata={
            "training_command": command,
            "recipe": asdict(recipe),
            "seed": recipe.seed,
            "data_version": catalog.DATA_VERSION,
            "degradations": list(KINDS),
            "metrics": metrics,
            "final_l1": loss_avg,
            "train_seconds": round(train_seconds, 1),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(
        total=total, desc="train enhancer", unit="step", file=sys.stderr, dynamic_ncols=True
    )
