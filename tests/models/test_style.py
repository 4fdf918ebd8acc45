"""Catalog looks, the public-compatible TransformerNet, and the committed style editors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from vetrina.models import zoo
from vetrina.models.architectures import get_architecture
from vetrina.models.architectures.transformer_net import TransformerNet
from vetrina.models.catalog import render
from vetrina.models.checkpoint import load_checkpoint
from vetrina.models.looks import LOOKS, apply_look
from vetrina.models.training import style

# --- looks -----------------------------------------------------------------------------------

images = st.tuples(st.integers(2, 40), st.integers(2, 40), st.integers(0, 2**32 - 1)).map(
    lambda t: np.random.default_rng(t[2]).integers(0, 256, (t[0], t[1], 3), dtype=np.uint8)
)


@settings(max_examples=25, deadline=None)
@given(image=images, name=st.sampled_from(sorted(LOOKS)))
def test_look_keeps_shape_dtype_and_is_deterministic(image, name):
    before = image.copy()
    out = apply_look(image, name)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out, apply_look(image, name))
    assert np.array_equal(image, before), "the input is not modified"


@settings(max_examples=10, deadline=None)
@given(image=images, name=st.sampled_from(sorted(LOOKS)))
def test_look_is_mirror_symmetric(image, name):
    # Local operations with symmetric filters: no absolute position, so mirroring commutes
    # (up to rounding: OpenCV sums the mirrored window in another order; seen at most 2).
    mirrored = apply_look(image[:, ::-1], name).astype(int)
    assert np.abs(mirrored - apply_look(image, name)[:, ::-1]).max() <= 3


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((8, 8), np.uint8), "H x W x 3"),
        (np.zeros((8, 8, 4), np.uint8), "H x W x 3"),
        (np.zeros((1, 8, 3), np.uint8), "at least 2"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_look_rejects_bad_images(bad, match):
    with pytest.raises(ValueError, match=match):
        apply_look(bad, "vintage")


def test_unknown_look_named():
    with pytest.raises(ValueError, match=r"unknown look 'sepia'.*vintage"):
        apply_look(np.zeros((8, 8, 3), np.uint8), "sepia")


def test_looks_are_distinct_and_visible():
    product = render(5, 96, colour="red")
    photo, inside = product.image, product.alpha > 250
    vintage, cartoon = apply_look(photo, "vintage"), apply_look(photo, "cartoon")
    for out in (vintage, cartoon):
        assert np.abs(out.astype(int) - photo).mean() > 3
    assert np.abs(vintage.astype(int) - cartoon).mean() > 3
    # vintage: faded blacks (no deep shadows) and a less saturated product
    assert vintage.min() >= 20
    sat = lambda x: (x.max(-1).astype(int) - x.min(-1))[inside].mean()  # noqa: E731
    assert sat(vintage) < 0.8 * sat(photo)


# --- TransformerNet: public pytorch/examples compatibility -------------------------------------


def _reference_keys() -> list[tuple[str, tuple[int, ...]]]:
    """The state_dict of pytorch/examples' fast_neural_style TransformerNet(), in order."""

    def conv(name, cin, cout, k):
        return [(f"{name}.conv2d.weight", (cout, cin, k, k)), (f"{name}.conv2d.bias", (cout,))]

    def norm(name, c):
        return [(f"{name}.weight", (c,)), (f"{name}.bias", (c,))]

    keys = conv("conv1", 3, 32, 9) + norm("in1", 32)
    keys += conv("conv2", 32, 64, 3) + norm("in2", 64)
    keys += conv("conv3", 64, 128, 3) + norm("in3", 128)
    for i in range(1, 6):
        r = f"res{i}"
        keys += conv(f"{r}.conv1", 128, 128, 3) + norm(f"{r}.in1", 128)
        keys += conv(f"{r}.conv2", 128, 128, 3) + norm(f"{r}.in2", 128)
    keys += conv("deconv1", 128, 64, 3) + norm("in4", 64)
    keys += conv("deconv2", 64, 32, 3) + norm("in5", 32)
    keys += conv("deconv3", 32, 3, 9)
    return keys


def _reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The reference net's computation, restated functionally over a state_dict."""

    def conv(name, y, stride=1, up=False):
        if up:
            y = F.interpolate(y, scale_factor=2, mode="nearest")
        w = sd[f"{name}.conv2d.weight"]
        y = F.pad(y, [w.shape[-1] // 2] * 4, mode="reflect")
        return F.conv2d(y, w, sd[f"{name}.conv2d.bias"], stride=stride)

    def norm(name, y):
        return F.instance_norm(y, weight=sd[f"{name}.weight"], bias=sd[f"{name}.bias"])

    y = F.relu(norm("in1", conv("conv1", x)))
    y = F.relu(norm("in2", conv("conv2", y, 2)))
    y = F.relu(norm("in3", conv("conv3", y, 2)))
    for i in range(1, 6):
        r = f"res{i}"
        h = F.relu(norm(f"{r}.in1", conv(f"{r}.conv1", y)))
        y = y + norm(f"{r}.in2", conv(f"{r}.conv2", h))
    y = F.relu(norm("in4", conv("deconv1", y, up=True)))
    y = F.relu(norm("in5", conv("deconv2", y, up=True)))
    return conv("deconv3", y)


def _random_public_state_dict() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(shape, generator=g) * 0.1 for k, shape in _reference_keys()}


def test_default_net_has_the_public_state_dict_layout():
    net = get_architecture("transformer-net").build()
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == _reference_keys()


def test_public_weights_load_and_compute_the_reference():
    sd = _random_public_state_dict()
    net = TransformerNet()
    net.load_state_dict(sd, strict=True)
    x = torch.rand(2, 3, 36, 44, generator=torch.Generator().manual_seed(1)) * 255
    with torch.inference_mode():
        want = _reference_forward(sd, x)
        got = net.eval()(x)
    assert got.shape == (2, 3, 36, 44)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


def test_pre_0_4_checkpoints_with_running_stats_load():
    sd = _random_public_state_dict()
    stale = dict(sd)
    for k in list(sd):
        if k.endswith(".weight") and k.split(".")[-2].startswith("in"):
            stale[k.replace(".weight", ".running_mean")] = torch.zeros(sd[k].shape)
            stale[k.replace(".weight", ".running_var")] = torch.ones(sd[k].shape)
    net = TransformerNet()
    net.load_state_dict(stale, strict=True)
    assert torch.equal(net.state_dict()["res3.in2.weight"], sd["res3.in2.weight"])


def test_narrow_config():
    net = TransformerNet(channels=8, blocks=2)
    keys = net.state_dict().keys()
    assert "res2.conv2.conv2d.weight" in keys and not any(k.startswith("res3") for k in keys)
    assert net.state_dict()["conv3.conv2d.weight"].shape == (32, 16, 3, 3)
    with pytest.raises(ValueError, match="channels"):
        TransformerNet(channels=0)


def test_onnx_export_is_dynamic_and_matches_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from vetrina.converters.export import export_onnx

    spec = get_architecture("transformer-net")
    torch.manual_seed(0)
    net = spec.build({"channels": 4, "blocks": 1}).eval()
    path = export_onnx(net, spec, tmp_path / "t.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for shape in ((1, 3, 20, 28), (3, 3, 48, 32)):
        x = torch.rand(shape, generator=torch.Generator().manual_seed(2)) * 255
        with torch.inference_mode():
            want = net(x).numpy()
        (got,) = session.run(None, {name: x.numpy()})
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-2 * max(1.0, np.abs(want).max())


# --- recipe ----------------------------------------------------------------------------------


def test_ssim_and_statistics():
    photo = render(3, 64).image
    y = style.luma(photo)
    assert style.ssim(y, y) == pytest.approx(1.0)
    assert style.ssim(y, 255 - y) < 0.0
    assert style.look_statistics(photo).shape == (7,)
    with pytest.raises(ValueError, match="equal 2-D"):
        style.ssim(y, y[1:])


def test_training_recipe_smoke(tmp_path):
    tiny = dataclasses.replace(
        style.Recipe(look="cartoon"),
        steps=2,
        batch=2,
        size=64,
        crop=16,
        pool=4,
        channels=4,
        blocks=1,
        eval_images=2,
        eval_size=64,
    )
    out = style.train(tmp_path / "s.pt", tiny, progress=False, log=lambda _: None)
    ckpt = load_checkpoint(out)
    assert ckpt.architecture == "transformer-net"
    assert ckpt.config == {"channels": 4, "blocks": 1}
    assert ckpt.metadata["recipe"]["look"] == "cartoon" and ckpt.metadata["look"] == "cartoon"
    assert set(ckpt.metadata["metrics"]) >= {"ssim_luma", "stats_closed", "psnr_target"}
    with pytest.raises(ValueError, match="unknown look"):
        style.train(tmp_path / "x.pt", dataclasses.replace(tiny, look="nope"), progress=False)


# --- committed checkpoints -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["style-vintage", "style-cartoon"])
def test_committed_style_editor_meets_its_goals(name):
    if not zoo.get_entry(name).path.is_file():
        pytest.skip("checkpoint not trained yet")
    path = zoo.checkpoint_path(name)
    assert path.stat().st_size <= 3_000_000
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["architecture"] == "transformer-net"
    meta = load_checkpoint(path).metadata
    entry = zoo.get_entry(name)
    assert meta["training_command"].startswith(f"vetrina zoo train {name}")
    assert meta["recipe"]["look"] == entry.overrides["look"]
    module = zoo.load_module(name)
    # 12 held-out images at 96 px: a few seconds, and averages over enough products (every
    # category appears) that the figures sit well clear of the goals' margins.
    metrics = style.evaluate(module, entry.make_recipe(), images=12, size=96)
    failed = [c for c in style.checks(metrics, name) if c.passed is False]
    assert not failed, failed
