"""Shared fixtures: a small random-weight enhancer checkpoint and its verified ONNX export;
one private cache for zoo models converted by pipelines (never the user's ~/.cache)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def zoo_cache(tmp_path_factory: pytest.TempPathFactory):
    """``VETRINA_CACHE`` for the whole run: each zoo model is converted once per test run."""
    folder = tmp_path_factory.mktemp("vetrina-cache")
    previous = os.environ.get("VETRINA_CACHE")
    os.environ["VETRINA_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("VETRINA_CACHE", None)
    else:
        os.environ["VETRINA_CACHE"] = previous


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
