"""The defect detector and the inpainter: architectures, recipes, exports, committed models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vetrina.models import zoo
from vetrina.models.architectures import get_architecture
from vetrina.models.architectures.defects import DefectDetector, Inpainter
from vetrina.models.checkpoint import load_checkpoint
from vetrina.models.evaluation import all_met
from vetrina.models.training import detector, inpainter

# The committed models are checked on fewer images than the recipe's 48 to stay fast; at 128
# px with 16 images the scores sit well clear of the goals (see the checkpoints' metadata for
# the full 48-image figures), so the assertions are stable while still meaningful.
CHECK_IMAGES, CHECK_SIZE = 16, 128


def test_architectures_are_registered_with_their_defaults():
    assert isinstance(get_architecture("defect-detector").build(), DefectDetector)
    assert isinstance(get_architecture("inpainter").build(), Inpainter)
    assert get_architecture("defect-detector").spatial.multiple_of == 8


def test_detector_outputs_a_probability_mask():
    torch.manual_seed(0)
    net = DefectDetector(channels=4).eval()
    with torch.inference_mode():
        out = net(torch.rand(2, 3, 24, 40))
    assert out.shape == (2, 1, 24, 40)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_inpainter_changes_only_masked_pixels():
    torch.manual_seed(0)
    net = Inpainter(channels=4)
    for p in net.parameters():  # non-trivial output everywhere
        torch.nn.init.normal_(p, std=0.3)
    image = torch.rand(2, 3, 32, 16)
    mask = (torch.rand(2, 1, 32, 16) > 0.7).float()
    with torch.inference_mode():
        out = net.eval()(image, mask)
    keep = (mask == 0).expand_as(image)
    assert torch.equal(out[keep], image[keep])
    assert not torch.equal(out[~keep], image[~keep])
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def _fill_reference(image: np.ndarray, mask: np.ndarray, sizes=(3, 7, 15, 31)) -> np.ndarray:
    """masked_fill by definition, in float64 from integral images: per pixel the mean of the
    unmasked pixels of the smallest window with at least 10% of its area unmasked."""
    keep = 1.0 - mask[:, 0]
    n, _, h, w = image.shape
    out = image.astype(np.float64).copy()
    done = np.zeros((n, h, w), bool)

    def window_sums(x, r):  # x (..., h, w) -> sums over (2r+1)^2 windows, zeros outside
        pad = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 0), (1, 0)]).cumsum(-1).cumsum(-2)
        ys, xs = np.arange(h), np.arange(w)
        top, bottom = np.clip(ys - r, 0, h), np.clip(ys + r + 1, 0, h)
        left, right = np.clip(xs - r, 0, w), np.clip(xs + r + 1, 0, w)
        return (
            pad[..., bottom[:, None], right]
            - pad[..., top[:, None], right]
            - pad[..., bottom[:, None], left]
            + pad[..., top[:, None], left]
        )

    for size in sorted(sizes):
        r = size // 2
        weight = window_sums(keep, r) / size**2
        sums = window_sums(image * keep[:, None], r) / size**2
        take = (weight >= 0.1) & ~done
        out = np.where(take[:, None], sums / np.maximum(weight, 1e-12)[:, None], out)
        done |= take
    return out


def test_masked_fill_takes_the_mean_of_the_smallest_window_with_enough_unmasked_pixels():
    from vetrina.models.architectures.defects import _boxes, masked_fill

    rng = np.random.default_rng(3)
    image = rng.random((2, 3, 40, 56), dtype=np.float32)
    mask = (rng.random((2, 1, 40, 56)) > 0.6).astype(np.float32)
    mask[0, :, 5:35, 8:50] = 1.0  # a hole the small windows cannot see across
    mask[1] = 1.0  # nothing to fill from: the pixels keep their values
    got = masked_fill(torch.from_numpy(image), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(got, _fill_reference(image, mask), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got[1], image[1])

    # and bit for bit the chain of where()s over the same box filters
    stack = torch.from_numpy(np.concatenate([image * (1 - mask), 1 - mask], 1))
    fill = torch.from_numpy(image)
    for box in _boxes(stack, (31, 15, 7, 3)):
        weight = box[:, 3:]
        fill = torch.where(weight >= 0.1, box[:, :3] / weight.clamp(min=1e-4), fill)
    assert torch.equal(torch.from_numpy(got), fill)


def _tiny(recipe_module, **changes):
    small = dict(
        steps=2, batch=4, crop=32, size=64, pool=4, channels=4, eval_images=2, eval_size=64
    )
    return dataclasses.replace(recipe_module.Recipe(), **(small | changes))


def test_detector_recipe_smoke(tmp_path):
    lines = []
    # the second, larger pool included, and half the renders in the zoo's looks
    recipe = _tiny(detector, large_size=96, large_pool=2, styled=0.5)
    out = detector.train(
        tmp_path / "d.pt", recipe, command="test", progress=False, log=lines.append
    )
    assert any("2 training images at 96px" in line for line in lines)
    assert any("restyling 50% of the renders" in line for line in lines)
    ckpt = load_checkpoint(out)
    assert ckpt.architecture == "defect-detector" and ckpt.config == {"channels": 4}
    meta = ckpt.metadata
    assert meta["recipe"]["steps"] == 2 and meta["training_command"] == "test"
    assert meta["recipe"]["large_size"] == 96
    for key in ("seed", "data_version", "metrics", "train_seconds", "defects"):
        assert key in meta, key
    assert {"iou", "iou_per_image", *(f"iou_{k}" for k in detector.KINDS)} <= set(meta["metrics"])
    keys = {"false_alarm", "false_alarm_product", "false_alarm_2x", "false_alarm_product_2x"}
    assert keys | {"iou_photos", "false_alarm_styled"} <= set(meta["metrics"])
    assert "false_alarm_styled_half" not in meta["metrics"]  # 32 px: below the renders' 64
    assert 0.0 <= meta["metrics"]["false_alarm"] <= 1.0
    rows = detector.checks(meta["metrics"], "d")
    assert rows[0].passed is not None and len(rows) == 8 + len(detector.KINDS)
    styled = next(r for r in rows if r.metric == "marked on renders in a brand look")
    assert styled.passed == (meta["metrics"]["false_alarm_styled"] <= detector.FALSE_ALARM_GOAL)
    alarm = next(r for r in rows if r.metric == "marked on defect-free photos")
    assert alarm.passed == (meta["metrics"]["false_alarm"] <= detector.FALSE_ALARM_GOAL)


def test_detector_checks_read_older_metrics_without_false_alarms():
    old = {"iou": 0.8, "iou_per_image": 0.6} | {f"iou_{k}": 0.5 for k in detector.KINDS}
    rows = detector.checks(old)
    assert len(rows) == 2 + len(detector.KINDS) and rows[0].passed


def _renders(count=4, size=64):
    from vetrina.models.training.common import render_pool

    return render_pool(count, size, "train")[:2]


def test_intact_training_images_have_empty_masks_and_no_damage():
    pool = _renders()
    recipe = _tiny(detector, intact=1.0, crop=64, crops_per_image=1)
    clean, damaged, masks = detector.detector_batch(pool, np.random.default_rng(3), recipe)
    assert np.array_equal(clean, damaged) and not masks.any()
    recipe = _tiny(detector, intact=0.0, crop=64, crops_per_image=1)
    clean, damaged, masks = detector.detector_batch(pool, np.random.default_rng(3), recipe)
    assert all(m.any() for m in masks)  # whole images: each carries at least one defect
    assert not np.array_equal(clean, damaged)


def test_photo_like_keeps_the_product_and_is_no_defect():
    renders, alphas = _renders()
    same = detector.photo_like(
        renders, alphas, np.random.default_rng(0), _tiny(detector, backgrounds=0.0, photo_jpeg=0.0)
    )
    assert np.array_equal(same, renders)
    placed = detector.photo_like(
        renders, alphas, np.random.default_rng(0), _tiny(detector, backgrounds=1.0, photo_jpeg=0.0)
    )
    opaque, clear = alphas == 255, alphas == 0
    assert np.array_equal(placed[opaque], renders[opaque])  # the product is untouched
    assert np.abs(placed[clear].astype(int) - renders[clear]).mean() > 10  # a new background
    saved = detector.photo_like(
        renders, alphas, np.random.default_rng(0), _tiny(detector, backgrounds=0.0, photo_jpeg=1.0)
    )
    import cv2

    for got, render in zip(saved, renders, strict=True):
        # one of the ordinary qualities, encoded in OpenCV's BGR order
        assert any(
            np.array_equal(
                got,
                cv2.imdecode(
                    cv2.imencode(".jpg", render[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])[1], 1
                )[:, :, ::-1],
            )
            for q in range(detector.PHOTO_QUALITIES[0], detector.PHOTO_QUALITIES[1] + 1)
        )


def test_styled_pool_restyles_its_share_in_the_zoo_looks_in_turn():
    from vetrina.models.training.style import stylize

    renders, _ = _renders()
    assert detector.styled_pool(renders, 0.0, np.random.default_rng(0)) is renders
    styled = detector.styled_pool(renders, 0.5, np.random.default_rng(0))
    changed = np.flatnonzero(
        [not np.array_equal(a, b) for a, b in zip(styled, renders, strict=True)]
    )
    assert len(changed) == 2  # half of 4, the rest untouched
    for look, i in zip(detector.LOOKS, changed, strict=True):
        assert np.array_equal(styled[i], stylize(zoo.load_module(look), renders[i : i + 1])[0])
    assert np.array_equal(styled, detector.styled_pool(renders, 0.5, np.random.default_rng(0)))
    every = detector.styled_set(4, 64)
    assert every.shape == (4, 64, 64, 3) and np.array_equal(every, detector.styled_set(4, 64))


def test_defect_free_photo_set_is_fixed_and_photo_like():
    photos, product = detector.photo_set(4, 64)
    again, _ = detector.photo_set(4, 64)
    assert np.array_equal(photos, again) and photos.shape == (4, 64, 64, 3)
    assert product.shape == (4, 64, 64) and 0 < product.mean() < 1


def test_inpainter_recipe_smoke(tmp_path):
    out = inpainter.train(
        tmp_path / "i.pt", _tiny(inpainter), command="test", progress=False, log=lambda _: None
    )
    ckpt = load_checkpoint(out)
    assert ckpt.architecture == "inpainter" and ckpt.config == {"channels": 4}
    metrics = ckpt.metadata["metrics"]
    assert {"psnr_model", "psnr_telea", "psnr_ns", "psnr_input"} <= set(metrics)
    assert {f"psnr_model_{k}" for k in inpainter.KINDS} <= set(metrics)
    rows = inpainter.checks(metrics, "i")
    assert [r.passed is not None for r in rows[:2]] == [True, True]


def test_iou_and_masked_psnr_definitions():
    truth = np.zeros((2, 4, 4), bool)
    truth[0, :2] = True  # 8 px
    pred = np.zeros_like(truth)
    pred[0, :1] = True  # 4 px, all inside
    dataset, per_image = detector.iou_scores(pred, truth)
    assert dataset == pytest.approx(0.5) and per_image == pytest.approx((0.5 + 1.0) / 2)
    clean = np.zeros((1, 2, 2, 3), np.uint8)
    noisy = clean.copy()
    noisy[0, 0, 0] = 10
    noisy[0, 1, 1] = 200  # outside the mask: ignored
    mask = np.zeros((1, 2, 2), np.uint8)
    mask[0, 0] = 255
    assert inpainter.masked_psnr(noisy, clean, mask) == pytest.approx(
        10 * np.log10(255**2 / (3 * 100 / 6))
    )


@pytest.mark.parametrize(
    ("name", "limit"),
    [("detector", 3_000_000)],
)
def test_committed_checkpoint_is_safe_small_and_documented(name, limit):
    path = zoo.checkpoint_path(name)
    assert path.stat().st_size <= limit
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["architecture"] == zoo.get_entry(name).architecture
    meta = load_checkpoint(path).metadata
    assert meta["training_command"].startswith(f"vetrina zoo train {name}")
    for key in ("seed", "data_version", "metrics", "recipe", "train_seconds"):
        assert key in meta, key


def test_committed_detector_meets_its_goal():
    # All 48 images of the recipe's evaluation: on 16 the IoU of this detector swings across
    # its goal (0.69 there, 0.715 on 48).
    module = zoo.load_module("detector")
    metrics = detector.evaluate(module, images=detector.Recipe().eval_images, size=CHECK_SIZE)
    assert metrics["iou"] >= detector.IOU_GOAL, metrics
    assert metrics["false_alarm"] <= detector.FALSE_ALARM_GOAL, metrics
    assert metrics["false_alarm_2x"] <= detector.FALSE_ALARM_GOAL, metrics
    # a brand look is no defect: generate-catalog cleans styled pictures at 64 px
    assert metrics["false_alarm_styled"] <= detector.FALSE_ALARM_GOAL, metrics
    assert metrics["false_alarm_styled_half"] <= detector.FALSE_ALARM_GOAL, metrics
    assert all_met(detector.checks(metrics))


@pytest.mark.skipif(
    not zoo.get_entry("inpainter").path.is_file(), reason="checkpoint not trained yet"
)
def test_committed_inpainter_meets_its_goal():
    module = zoo.load_module("inpainter")
    metrics = inpainter.evaluate(module, images=CHECK_IMAGES, size=CHECK_SIZE)
    for method in inpainter.BASELINES:
        assert metrics["psnr_model"] >= metrics[f"psnr_{method}"] + inpainter.GAIN_GOAL_DB, metrics
    assert all_met(inpainter.checks(metrics))


def _export(module, args, names, path):
    from torch.export import Dim

    batch = Dim("batch", min=1, max=64)
    height, width = 8 * Dim("h8", min=2, max=256), 8 * Dim("w8", min=2, max=256)
    spatial = {0: batch, 2: height, 3: width}
    torch.onnx.export(
        module.eval(),
        args,
        str(path),
        dynamo=True,
        input_names=names,
        dynamic_shapes=tuple(spatial for _ in args),
        verbose=False,
    )
    return path


@pytest.mark.filterwarnings("ignore")
def test_onnx_export_with_dynamic_shapes(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    nets = {
        "detector": (DefectDetector(channels=4), ("image",)),
        "inpainter": (Inpainter(channels=4), ("image", "mask")),
    }
    for name, (net, names) in nets.items():
        for p in net.parameters():  # weights that make every path matter
            torch.nn.init.normal_(p, std=0.2)
        for norm in net.modules():  # and batch norms the export folds by hand
            if isinstance(norm, torch.nn.BatchNorm2d):
                norm.running_mean.uniform_(-0.3, 0.3)
                norm.running_var.uniform_(0.5, 2.0)

        def inputs(n, h, w, names=names):
            image = torch.rand(n, 3, h, w)
            return (image,) if len(names) == 1 else (image, (torch.rand(n, 1, h, w) > 0.6).float())

        path = _export(net, inputs(2, 32, 48), list(names), tmp_path / f"{name}.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        args = inputs(3, 40, 24)
        got = session.run(None, {k: v.numpy() for k, v in zip(names, args, strict=True)})[0]
        with torch.inference_mode():
            want = net.eval()(*args).numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4, name
        _assert_export_rewrites(path, name)


def _assert_export_rewrites(path, name):
    """The export forms of _UNet (defects.py) are in the graph: the 1x1 fusion runs before
    the upsample (no Concat after a Resize), residuals live in the conv weights (no
    ``y + conv(y)`` Add), and the block branch is one strided conv (no pixel_unshuffle)."""
    import onnx

    nodes = onnx.load(str(path)).graph.node
    producers = {out: n for n in nodes for out in n.output}
    consumers = [
        n.op_type for n in nodes for r in nodes if r.op_type == "Resize" if r.output[0] in n.input
    ]
    assert consumers and set(consumers) == {"Add"}, (name, consumers)
    for add in (n for n in nodes if n.op_type == "Add"):
        for a, b in (add.input, add.input[::-1]):
            conv = producers.get(b)
            assert not (conv is not None and conv.op_type == "Conv" and conv.input[0] == a), name
    assert not any(n.op_type in ("Transpose", "SpaceToDepth") for n in nodes), name
    strides = [
        list(a.ints)
        for n in nodes
        if n.op_type == "Conv"
        for a in n.attribute
        if a.name == "strides"
    ]
    assert [8, 8] in strides, name


def test_evaluation_size_must_suit_the_nets():
    with pytest.raises(ValueError, match="multiple of 8"):
        detector.evaluate(DefectDetector(channels=4), images=1, size=100)
    with pytest.raises(ValueError, match="multiple of 8"):
        inpainter.evaluate(Inpainter(channels=4), images=1, size=68)
