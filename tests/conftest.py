"""Shared fixtures: a small random-weight enhancer checkpoint and its verified ONNX export."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vetrina checkpoint of a tiny enhancer with random (non-identity) weights."""
    torch = pytest.importorskip("torch")
    from vetrina.models.architectures import get_architecture
    from vetrina.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = {"channels": 8, "blocks": 1}
    module = get_architecture("enhancer").build(config)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("ckpt") / "tiny-enhancer.pt"
    return save_checkpoint(
        path,
        architecture="enhancer",
        config=config,
        state_dict=module.state_dict(),
        metadata={"purpose": "tests"},
    )


@pytest.fixture(scope="session")
def small_model(small_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny enhancer converted (and verified) to ONNX."""
    from vetrina.converters.convert import convert

    out = tmp_path_factory.mktemp("onnx") / "tiny-enhancer.onnx"
    return convert(small_checkpoint, out).output
