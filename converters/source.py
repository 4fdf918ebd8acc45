"""Checkpoint -> architecture -> PyTorch module: the source every export is checked against.

The architecture comes from ``--arch`` (a registry name, or ``package.module:factory`` for a
user's own class), from the checkpoint, or, for a bare state_dict, from its keys
(:func:`vetrina.models.architectures.detect.detect_architecture`).

A user factory is called with the checkpoint's config as keyword arguments and must return a
``torch.nn.Module``. Because a module alone does not say what its tensors mean, the factory
(a function attribute or class attribute) or its Python module must define ``VETRINA_SPEC``,
an :class:`~vetrina.models.architectures.ArchitectureSpec` (role, inputs, outputs, size rules);
its ``factory`` field is replaced by the ``--arch`` value.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

from vetrina.errors import CheckpointError
from vetrina.models.architectures import ArchitectureSpec, get_architecture
from vetrina.models.checkpoint import Checkpoint, load_checkpoint

SPEC_ATTRIBUTE = "VETRINA_SPEC"


@dataclass
class Source:
    """A loaded checkpoint, its architecture, the config it was built with and the module."""

    checkpoint: Checkpoint
    spec: ArchitectureSpec
    config: dict[str, Any]
    module: Any


def load_source(
    checkpoint_path: str | os.PathLike[str], *, arch: str | None = None, trusted: bool = False
) -> Source:
    """Load ``checkpoint_path`` safely, resolve its architecture and build the module (eval)."""
    checkpoint = load_checkpoint(checkpoint_path, trusted=trusted)
    spec, config = identify(checkpoint, arch)
    module = build_module(spec, checkpoint, config)
    merged = {**spec.default_config, **config}
    return Source(checkpoint, spec.for_config(merged), merged, module)


def identify(checkpoint: Checkpoint, arch: str | None) -> tuple[ArchitectureSpec, dict[str, Any]]:
    """The architecture and config of ``checkpoint``: from ``arch``, the checkpoint, or the
    state_dict's keys. ``arch`` contradicting the checkpoint is an error."""
    spec = factory_spec(arch) if arch and ":" in arch else None
    name = spec.name if spec else arch
    if name and checkpoint.architecture and name != checkpoint.architecture:
        raise CheckpointError(
            f"--arch {arch} contradicts the checkpoint, which says {checkpoint.architecture!r}",
            hint="drop --arch for vetrina checkpoints",
        )
    if spec is not None:
        return spec, dict(checkpoint.config)
    name = name or checkpoint.architecture
    if name is not None:
        spec = get_architecture(name)
        config = dict(checkpoint.config)
        if not config and checkpoint.architecture is None:
            detected = _detect(checkpoint, required=False)
            if detected is not None and detected[0] == name:
                config = detected[1]
        return spec, config
    found = _detect(checkpoint, required=True)
    assert found is not None
    return get_architecture(found[0]), found[1]


def resolve_architecture(checkpoint: Checkpoint, arch: str | None) -> ArchitectureSpec:
    """The architecture of ``checkpoint`` (see :func:`identify`, which also gives the config)."""
    return identify(checkpoint, arch)[0]


def factory_spec(target: str) -> ArchitectureSpec:
    """The spec of a user factory ``package.module:callable`` (its ``VETRINA_SPEC``).

    The module is imported from ``sys.path`` and the current directory.
    """
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise CheckpointError(
            f"--arch {target!r}: expected a registry name or 'package.module:factory'"
        )
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CheckpointError(
            f"--arch {target}: cannot import {module_name!r} ({exc})",
            hint="run from the folder that holds it or add it to PYTHONPATH",
        ) from None
    finally:
        if added:
            sys.path.remove(cwd)
    factory: Any = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise CheckpointError(f"--arch {target}: {module_name!r} has no attribute {attr!r}")
    if not callable(factory):
        raise CheckpointError(f"--arch {target}: {attr!r} is not callable")
    spec = getattr(factory, SPEC_ATTRIBUTE, None) or getattr(module, SPEC_ATTRIBUTE, None)
    if not isinstance(spec, ArchitectureSpec):
        raise CheckpointError(
            f"--arch {target}: vetrina cannot tell what the inputs and outputs of {attr!r} mean",
            hint=f"define {SPEC_ATTRIBUTE} = ArchitectureSpec(name=..., role=..., inputs=..., "
            f"outputs=..., spatial=...) on the factory or in {module_name!r} (see "
            "vetrina.models.architectures for examples)",
        )
    return dataclasses.replace(spec, factory=target)


def build_module(
    spec: ArchitectureSpec, checkpoint: Checkpoint, config: dict[str, Any] | None = None
) -> Any:
    """Build the module (``config``, default the checkpoint's, over the spec's defaults) and
    load the weights strictly, listing every mismatch on failure."""
    import torch

    from vetrina.models.architectures.public.compat import adapt_legacy_state_dict

    config = checkpoint.config if config is None else config
    module = spec.build(config)
    if not isinstance(module, torch.nn.Module):
        raise CheckpointError(
            f"architecture {spec.name!r} ({spec.factory}) returned a {type(module).__name__}, "
            "not a torch.nn.Module"
        )
    own = module.state_dict()
    given = adapt_legacy_state_dict(module, _without_data_parallel_prefix(checkpoint.state_dict))
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    wrong = sorted(
        f"{k} {tuple(given[k].shape)} != {tuple(own[k].shape)}"
        for k in set(own) & set(given)
        if tuple(given[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or wrong:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
        ):
            if items:
                shown = ", ".join(items[:6]) + (
                    f" (+{len(items) - 6} more)" if len(items) > 6 else ""
                )
                parts.append(f"{label}: {shown}")
        raise CheckpointError(
            f"{checkpoint.path}: weights do not fit architecture {spec.name!r} with config "
            f"{config or spec.default_config}: " + "; ".join(parts),
            hint="check --arch and the checkpoint's config",
        )
    module.load_state_dict(given, strict=True)
    return module.eval()


def _detect(checkpoint: Checkpoint, *, required: bool) -> tuple[str, dict[str, Any]] | None:
    """Name the architecture of a bare state_dict from its keys and shapes."""
    try:
        from vetrina.models.architectures.detect import detect_architecture
    except ModuleNotFoundError as exc:
        if exc.name != "vetrina.models.architectures.detect":
            raise
        if not required:
            return None
        raise CheckpointError(
            f"{checkpoint.path}: a bare state_dict does not name its architecture",
            hint="pass --arch NAME (see 'vetrina zoo list')",
        ) from None
    try:
        name, config = detect_architecture(checkpoint.state_dict)
    except CheckpointError as exc:
        if not required:
            return None
        raise CheckpointError(
            f"{checkpoint.path}: a bare state_dict whose architecture cannot be told from its "
            f"keys ({exc.message})",
            hint=exc.hint
            if exc.hint and "--arch" in exc.hint
            else "pass --arch NAME (see 'vetrina zoo list')",
        ) from None
    return name, dict(config)


def _without_data_parallel_prefix(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Drop the ``module.`` that ``nn.DataParallel`` puts on every key (only if on all)."""
    prefix = "module."
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict
