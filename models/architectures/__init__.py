"""Registry of the architectures vetrina can build, convert and describe.

Each entry says how to build the module (imported lazily: this registry needs no torch)
and the contract its exports carry: role, tensors, size rules.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from vetrina.contract import SpatialRules, TensorSpec
from vetrina.errors import CheckpointError


@dataclass(frozen=True)
class ArchitectureSpec:
    """How to build one architecture and what its exported model promises."""

    name: str
    factory: str  # "module:callable" returning an nn.Module from keyword config
    role: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    spatial: SpatialRules
    description: str
    default_config: dict[str, Any] = field(default_factory=dict)

    def build(self, config: dict[str, Any] | None = None) -> Any:
        """Instantiate the torch module with ``config`` over the defaults (imports torch)."""
        module_name, _, attr = self.factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        merged = {**self.default_config, **(config or {})}
        try:
            return factory(**merged)
        except TypeError as exc:
            raise CheckpointError(
                f"architecture {self.name!r} does not accept config {merged} ({exc})"
            ) from None


_IMAGE_01 = TensorSpec(name="image", semantic="image", channels="RGB", range=(0.0, 1.0))

ARCHITECTURES: dict[str, ArchitectureSpec] = {
    spec.name: spec
    for spec in (
        ArchitectureSpec(
            name="enhancer",
            factory="vetrina.models.architectures.enhancer:Enhancer",
            role="editor",
            inputs=(_IMAGE_01,),
            outputs=(
                TensorSpec(name="enhanced", semantic="image", channels="RGB", range=(0.0, 1.0)),
            ),
            spatial=SpatialRules(multiple_of=2, min_size=8),
            description="residual CNN enhancer: fixes low contrast, colour cast and noise",
            default_config={"channels": 16, "blocks": 4},
        ),
    )
}


def get_architecture(name: str) -> ArchitectureSpec:
    """The architecture ``name``; a :class:`CheckpointError` lists the known ones if absent."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise CheckpointError(
            f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
