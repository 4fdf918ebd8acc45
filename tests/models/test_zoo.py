"""The committed enhancer: safe to load, provenance recorded, and it really enhances.

Quality is asserted end to end on held-out renders through the engine (ONNX Runtime + the
fused kernels), and the training recipe is smoke-tested for a few steps.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vetrina.cli import main
from vetrina.editor import Editor
from vetrina.metrics import psnr
from vetrina.model import Model
from vetrina.models import zoo
from vetrina.models.checkpoint import load_checkpoint
from vetrina.models.training import enhancer as recipe


def test_committed_checkpoint_is_safe_small_and_documented():
    path = zoo.checkpoint_path("enhancer")
    assert path.stat().st_size <= 8_000_000
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["architecture"] == "enhancer"
    meta = load_checkpoint(path).metadata
    for key in ("training_command", "seed", "data_version", "metrics", "recipe"):
        assert key in meta, key
    assert meta["training_command"].startswith("vetrina zoo train enhancer")
    assert meta["metrics"]["gain_db"] > 3.0


@pytest.fixture(scope="module")
def zoo_model(tmp_path_factory):
    from vetrina.converters.convert import convert

    out = tmp_path_factory.mktemp("zoo") / "enhancer.onnx"
    return convert(zoo.checkpoint_path("enhancer"), out).output


def test_engine_enhances_held_out_renders(zoo_model):
    clean, degraded = recipe.evaluation_set(12, 160, seed=11)
    editor = Editor(Model.open(zoo_model))
    enhanced = editor.edit(list(degraded), order="RGB")
    before = np.mean([psnr(d, c) for d, c in zip(degraded, clean, strict=True)])
    after = np.mean([psnr(e, c) for e, c in zip(enhanced, clean, strict=True)])
    assert after > before + 3.0, (before, after)


def test_engine_matches_pytorch_on_the_zoo_model(zoo_model):
    from vetrina.converters.convert import build_module, resolve_architecture

    ckpt = load_checkpoint(zoo.checkpoint_path("enhancer"))
    module = build_module(resolve_architecture(ckpt, None), ckpt)
    _, degraded = recipe.evaluation_set(4, 96, seed=3)
    with torch.inference_mode():
        want = recipe._from_tensor(module(recipe._to_tensor(degraded)))
    got = np.stack(Editor(Model.open(zoo_model)).edit(list(degraded), order="RGB"))
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_training_recipe_smoke(tmp_path):
    tiny = dataclasses.replace(
        recipe.Recipe(),
        steps=3,
        batch=4,
        size=64,
        pool=8,
        channels=4,
        blocks=1,
        eval_images=4,
        eval_size=64,
    )
    out = recipe.train(tmp_path / "e.pt", tiny, progress=False, log=lambda _: None)
    ckpt = load_checkpoint(out)
    assert ckpt.architecture == "enhancer" and ckpt.config == {"channels": 4, "blocks": 1}
    assert ckpt.metadata["recipe"]["steps"] == 3
    assert set(ckpt.metadata["metrics"]) >= {"psnr_degraded", "psnr_enhanced", "gain_db"}


def test_zoo_list_and_eval_cli(capsys):
    assert main(["zoo", "list"]) == 0
    assert "enhancer" in capsys.readouterr().out
    assert main(["zoo", "eval", "enhancer", "--images", "6"]) == 0
    assert "enhanced" in capsys.readouterr().out
    assert main(["zoo", "train", "nope"]) == 1
    assert "unknown zoo model" in capsys.readouterr().err


def test_demo_end_to_end(tmp_path, capsys):
    from vetrina.demo import run_demo

    result = run_demo(tmp_path, images=2, size=96, log=lambda _: None)
    assert result.psnr_enhanced > result.psnr_degraded
    assert (tmp_path / "enhancer.onnx").is_file() and result.sheet.is_file()
    assert len(list((tmp_path / "enhanced").glob("*.png"))) == 2
    assert "inference" in result.times.seconds
