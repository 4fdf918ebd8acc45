"""Pieces every zoo training recipe shares: data pools, tensor conversion, progress, metadata.

Recipes are plain modules with a frozen ``Recipe`` dataclass (every knob, recorded in the
checkpoint), ``train(out, recipe, *, command, progress, log) -> Path``,
``evaluate(module, *, images=None, size=None) -> dict`` (metrics on the test split) and
``checks(metrics) -> list[Check]`` (the rows ``vetrina zoo eval`` prints). Torch is imported
inside functions so that listing the zoo stays light.
"""

from __future__ import annotations

import datetime as _dt
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from vetrina.models import catalog

Log = Callable[[str], None]


def print_log(line: str) -> None:
    print(line, flush=True)


def render_pool(
    count: int, size: int | tuple[int, int], split: str, start: int = 0
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """``count`` renders of ``split`` from seed offset ``start``: images, alphas, labels."""
    return catalog.render_batch(catalog.split_seeds(split, count, start=start), size)


def to_tensor(images: np.ndarray) -> Any:
    """uint8 (N, H, W, C) -> float32 torch (N, C, H, W) in [0, 1]."""
    import torch

    arr = images if images.ndim == 4 else images[..., None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2))).float().div_(255.0)


def from_tensor(batch: Any) -> np.ndarray:
    """float torch (N, C, H, W) in [0, 1] -> uint8 (N, H, W, C), rounded half up."""
    import torch

    arr = batch.detach().clamp(0, 1).mul(255.0).add_(0.5).floor_().to(dtype=torch.uint8)
    return arr.permute(0, 2, 3, 1).contiguous().numpy()


def random_flips(images: np.ndarray, rng: np.random.Generator, *extra: np.ndarray) -> None:
    """Mirror about half of a batch left-right, in place (and the same rows of ``extra``)."""
    flips = rng.random(images.shape[0]) < 0.5
    for arr in (images, *extra):
        arr[flips] = arr[flips, :, ::-1]


class Progress:
    """A tqdm bar with a running (EMA) loss per name, or log lines every ``every`` steps."""

    def __init__(self, total: int, desc: str, *, enabled: bool, log: Log, every: int = 100) -> None:
        self.total, self.log, self.every = total, log, every
        self.values: dict[str, float] = {}
        self.step = 0
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm comes with the convert extra; plain lines without it
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(
                    total=total, desc=desc, unit="step", file=sys.stderr, dynamic_ncols=True
                )

    def update(self, **losses: float) -> None:
        for name, value in losses.items():
            old = self.values.get(name, math.nan)
            self.values[name] = value if math.isnan(old) else 0.95 * old + 0.05 * value
        self.step += 1
        text = {k: f"{v:.4f}" for k, v in self.values.items()}
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(text)
        elif self.step % self.every == 1 or self.step == self.total or self.every == 1:
            self.log(
                f"step {self.step}/{self.total}  " + "  ".join(f"{k} {v}" for k, v in text.items())
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Stopwatch:
    """Wall-clock and CPU seconds since it was made (checkpoints record both: wall time alone
    overstates the cost when other work shares the cores)."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    @property
    def wall(self) -> float:
        return time.perf_counter() - self._wall

    @property
    def cpu(self) -> float:
        return time.process_time() - self._cpu


def optimise(loss: Any, optimiser: Any, schedule: Any = None) -> None:
    """One update: clear the gradients, back-propagate ``loss``, step the optimiser (and the
    learning-rate schedule)."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    if schedule is not None:
        schedule.step()


def cosine_lr(optimiser: Any, steps: int, warmup: float = 0.05) -> Any:
    """Linear warm-up then cosine decay to zero over ``steps`` (at least 2)."""
    import torch

    total = max(steps, 2)
    warm = max(1, int(total * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def metadata(
    recipe: Any, *, command: str, metrics: dict[str, Any], train_seconds: float, **extra: Any
) -> dict[str, Any]:
    """The metadata every zoo checkpoint carries (training command, seed, data, metrics)."""
    import torch

    return {
        "training_command": command,
        "recipe": asdict(recipe),
        "seed": recipe.seed,
        "data_version": catalog.DATA_VERSION,
        "metrics": metrics,
        "train_seconds": round(train_seconds, 1),
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch and return the numpy generator a recipe draws its batches from."""
    import torch

    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def batched(module: Any, inputs: Any, batch: int = 16) -> Any:
    """Run ``module`` over the first dimension in chunks under inference mode."""
    import torch

    module.eval()
    with torch.inference_mode():
        return torch.cat([module(inputs[i : i + batch]) for i in range(0, len(inputs), batch)])
