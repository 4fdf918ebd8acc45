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
from vetrina.errors import VetrinaError
from vetrina.metrics import psnr
from vetrina.model import Model
from vetrina.models import catalog, degrade, zoo
from vetrina.models.checkpoint import load_checkpoint
from vetrina.models.training import enhancer as recipe
from vetrina.models.training.common import from_tensor, to_tensor

TRAINED = list(zoo.ZOO)


def _ghost_zoo(monkeypatch):
    """The zoo plus one entry whose checkpoint file does not exist (an untrained model)."""
    ghost = dataclasses.replace(zoo.ZOO["enhancer"], name="ghost", checkpoint="ghost.pt")
    monkeypatch.setattr(zoo, "ZOO", {**zoo.ZOO, "ghost": ghost})
    return ghost


def test_every_zoo_model_has_its_checkpoint_and_a_missing_one_names_the_fix(monkeypatch):
    assert all(entry.path.is_file() for entry in zoo.ZOO.values())
    _ghost_zoo(monkeypatch)
    with pytest.raises(VetrinaError, match="run 'vetrina zoo train ghost'"):
        zoo.checkpoint_path("ghost")


@pytest.mark.parametrize("name", TRAINED)
def test_every_zoo_checkpoint_is_safe_small_and_documented(name):
    entry = zoo.get_entry(name)
    path = zoo.checkpoint_path(name)
    assert path.stat().st_size <= 8_000_000
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["architecture"] == entry.architecture
    meta = load_checkpoint(path).metadata
    for key in ("training_command", "seed", "data_version", "metrics", "recipe"):
        assert key in meta, key
    assert meta["training_command"].startswith(f"vetrina zoo train {name}")
    assert meta["data_version"] == catalog.DATA_VERSION
    # the recipe recorded is the one the zoo entry would run (overrides included)
    for field, value in entry.overrides.items():
        assert meta["recipe"][field] == value


def test_zoo_checkpoints_fit_the_size_budget():
    total = sum(e.path.stat().st_size for e in zoo.ZOO.values() if e.path.is_file())
    assert total <= 30_000_000


def test_zoo_names_resolve():
    assert zoo.resolve_names("all") == list(zoo.ZOO)
    assert zoo.resolve_names("enhancer") == ["enhancer"]
    with pytest.raises(VetrinaError, match="unknown zoo model 'nope'; known: "):
        zoo.resolve_names("nope")


def test_enhancer_metadata_records_every_degradation():
    meta = load_checkpoint(zoo.checkpoint_path("enhancer")).metadata
    assert meta["degradations"] == list(degrade.KINDS)
    assert meta["metrics"]["gain_db"] >= recipe.GAIN_GOAL_DB


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
        want = from_tensor(module(to_tensor(degraded)))
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
    out = capsys.readouterr().out
    assert all(name in out for name in zoo.ZOO)
    # 8 images at 128 px: the committed model clears both goals there with a wide margin
    assert main(["zoo", "eval", "enhancer", "--images", "8", "--size", "128"]) == 0
    out = capsys.readouterr().out
    assert "PSNR gain over degraded" in out and "CLAHE + fastNlMeans" in out
    assert "goals met" in out
    assert main(["zoo", "train", "nope"]) == 1
    assert "unknown zoo model" in capsys.readouterr().err


def test_zoo_eval_all_names_the_untrained_models(capsys, monkeypatch):
    # evaluate only the cheapest trained model; the others are left out of ZOO for speed
    ghost = _ghost_zoo(monkeypatch)
    monkeypatch.setattr(zoo, "ZOO", {"enhancer": zoo.ZOO["enhancer"], "ghost": ghost})
    assert main(["zoo", "eval", "all", "--images", "8", "--size", "128"]) == 0
    captured = capsys.readouterr()
    assert "not trained yet (skipped): ghost" in captured.err
    assert "enhancer" in captured.out


def test_zoo_eval_fails_loudly_on_a_missed_goal(tmp_path, capsys):
    # an untrained enhancer (identity at init) gains nothing: the goal row says NO, exit 1
    untrained = recipe.train(
        tmp_path / "e.pt",
        dataclasses.replace(
            recipe.Recipe(), steps=1, batch=2, size=64, pool=2, eval_images=2, eval_size=64, lr=1e-9
        ),
        progress=False,
        log=lambda _: None,
    )
    code = main(
        ["zoo", "eval", "enhancer", "--checkpoint", str(untrained), "--images", "2", "--size", "64"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "NO" in captured.out and "goal(s) missed: enhancer PSNR gain" in captured.err


def test_demo_end_to_end(tmp_path, capsys):
    from vetrina.demo import run_demo

    result = run_demo(tmp_path, images=4, size=96, log=lambda _: None)
    assert result.psnr_enhanced > result.psnr_degraded
    assert (tmp_path / "enhancer.onnx").is_file() and result.sheet.is_file()
    assert len(list((tmp_path / "enhanced").glob("*.png"))) == 4
    assert "inference" in result.times.seconds
    chains = result.chains
    assert chains is not None and len(chains.generated) == 6
    assert chains.generated_sheet.is_file() and chains.cleanup_sheet.is_file()
    assert len(list((tmp_path / "cleaned").glob("*.jpg"))) == 4
    assert chains.psnr_cleaned > chains.psnr_supplier


def test_enhancer_exports_its_shuffle_as_transposes_and_its_fuse_without_a_concat(zoo_model):
    """The export-only forms (``models/architectures/enhancer.py``): the pixel shuffle as two
    5-D transposes, bit for bit PyTorch's, and the fuse conv split over its two inputs."""
    import onnx

    from vetrina.models.architectures.enhancer import _pixel_shuffle_2

    z = torch.randn(2, 4 * 5, 6, 10)
    assert torch.equal(_pixel_shuffle_2(z), torch.nn.functional.pixel_shuffle(z, 2))
    nodes = onnx.load(str(zoo_model)).graph.node
    kinds = {n.op_type for n in nodes}
    assert "DepthToSpace" not in kinds and "Transpose" in kinds, kinds
    producers = {out: n.op_type for n in nodes for out in n.output}
    joined = [producers.get(i) for n in nodes if n.op_type == "Concat" for i in n.input]
    assert not {"Relu", "Conv", "Reshape"} & set(joined), joined  # only shape arithmetic
