"""Shared pieces of the public-format modules: norm layers and old-checkpoint compatibility.

PyTorch 0.4 changed two things that still show in published checkpoints:

- ``InstanceNorm2d`` stopped tracking running statistics by default. Files saved before (or
  with ``track_running_stats=True``) carry ``running_mean`` / ``running_var`` /
  ``num_batches_tracked`` entries for modules that have none today. pytorch-CycleGAN-and-pix2pix
  (``BaseModel.__patch_instance_norm_state_dict``) and pytorch/examples' fast-neural-style
  delete them before loading; :func:`drop_stale_instance_norm_stats` does the same.
- ``BatchNorm2d`` gained the ``num_batches_tracked`` buffer, absent from older files. It plays
  no part at inference; ``load_state_dict`` fills it in itself, and
  :func:`adapt_legacy_state_dict` adds it for code that compares key sets before loading.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vetrina.errors import CheckpointError

NORMS = ("instance", "batch", "none")
_STALE_LEAVES = ("running_mean", "running_var", "num_batches_tracked")
_INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def make_norm(norm: str, channels: int) -> nn.Module:
    """The layer of pytorch-CycleGAN-and-pix2pix ``get_norm_layer(norm)`` for ``channels``."""
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")


def uses_bias(norm: str) -> bool:
    """Whether the convolutions before ``norm`` have a bias (the repository's ``use_bias``:
    only InstanceNorm, which has no affine shift of its own)."""
    return norm == "instance"


def require(architecture: str, key: str, value: Any, expected: Any, other: str) -> None:
    """Refuse a config value that would contradict the registered contract (scale, depth)."""
    if value != expected:
        raise CheckpointError(
            f"architecture {architecture!r} is fixed at {key}={expected!r}, the config says "
            f"{key}={value!r}",
            hint=f"use {other}",
        )


def stale_instance_norm_keys(module: nn.Module, keys: Any, prefix: str = "") -> list[str]:
    """The keys among ``keys`` that are running statistics of InstanceNorm layers of
    ``module`` that keep none (what the public repositories delete before loading)."""
    stale: list[str] = []
    wanted = set(keys)
    for name, sub in module.named_modules():
        if isinstance(sub, _INSTANCE_NORMS) and not sub.track_running_stats:
            base = f"{prefix}{name}." if name else prefix
            stale.extend(base + leaf for leaf in _STALE_LEAVES if base + leaf in wanted)
    return stale


def drop_stale_instance_norm_stats(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any
) -> None:
    """A ``load_state_dict`` pre-hook: delete stale InstanceNorm statistics in place."""
    for key in stale_instance_norm_keys(module, list(state_dict), prefix):
        del state_dict[key]


def adapt_legacy_state_dict(module: nn.Module, state_dict: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``state_dict`` that fits ``module`` key for key where only the two historical
    differences above stand in the way: stale InstanceNorm statistics are dropped and a
    missing BatchNorm ``num_batches_tracked`` is added (0, as ``load_state_dict`` would).

    Call it before comparing key sets; every other difference is left for the caller to report.
    """
    out = dict(state_dict)
    for key in stale_instance_norm_keys(module, list(out)):
        del out[key]
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.track_running_stats:
            base = f"{name}." if name else ""
            key = base + "num_batches_tracked"
            if key not in out and base + "running_mean" in out:
                out[key] = torch.tensor(0, dtype=torch.long)
    return out
