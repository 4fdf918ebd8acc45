"""U²-Net matting: parity with the public U2NETP / U2NET, detection, export, the recipe.

The reference nets below restate xuebinqin/U-2-Net ``model/u2net.py`` (same modules, same
names, same order; ``nn.Upsample`` by scale factors, as that file does). Random weights and
random BatchNorm statistics make the comparison meaningful.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from vetrina.models import zoo
from vetrina.models.architectures import get_architecture
from vetrina.models.architectures.detect import detect_architecture
from vetrina.models.architectures.u2net import U2Net
from vetrina.models.checkpoint import load_checkpoint, save_checkpoint
from vetrina.models.training import matting

# --- reference: xuebinqin/U-2-Net model/u2net.py ----------------------------------------------


class REBNCONV(nn.Module):
    def __init__(self, in_ch=3, out_ch=3, dirate=1):
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=1 * dirate, dilation=1 * dirate)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


def _up():
    return nn.Upsample(scale_factor=2, mode="bilinear")


def _pool():
    return nn.MaxPool2d(2, stride=2, ceil_mode=True)


class RSU7(nn.Module):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.pool1 = _pool()
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.pool2 = _pool()
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.pool3 = _pool()
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.pool4 = _pool()
        self.rebnconv5 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.pool5 = _pool()
        self.rebnconv6 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.rebnconv7 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv6d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv5d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv4d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)
        self.upscore2 = _up()

    def forward(self, x):
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(self.pool1(hx1))
        hx3 = self.rebnconv3(self.pool2(hx2))
        hx4 = self.rebnconv4(self.pool3(hx3))
        hx5 = self.rebnconv5(self.pool4(hx4))
        hx6 = self.rebnconv6(self.pool5(hx5))
        hx7 = self.rebnconv7(hx6)
        hx6d = self.rebnconv6d(torch.cat((hx7, hx6), 1))
        hx5d = self.rebnconv5d(torch.cat((self.upscore2(hx6d), hx5), 1))
        hx4d = self.rebnconv4d(torch.cat((self.upscore2(hx5d), hx4), 1))
        hx3d = self.rebnconv3d(torch.cat((self.upscore2(hx4d), hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((self.upscore2(hx3d), hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((self.upscore2(hx2d), hx1), 1))
        return hx1d + hxin


class RSU6(nn.Module):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.pool1 = _pool()
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.pool2 = _pool()
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.pool3 = _pool()
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.pool4 = _pool()
        self.rebnconv5 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.rebnconv6 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv5d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv4d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)
        self.upscore2 = _up()

    def forward(self, x):
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(self.pool1(hx1))
        hx3 = self.rebnconv3(self.pool2(hx2))
        hx4 = self.rebnconv4(self.pool3(hx3))
        hx5 = self.rebnconv5(self.pool4(hx4))
        hx6 = self.rebnconv6(hx5)
        hx5d = self.rebnconv5d(torch.cat((hx6, hx5), 1))
        hx4d = self.rebnconv4d(torch.cat((self.upscore2(hx5d), hx4), 1))
        hx3d = self.rebnconv3d(torch.cat((self.upscore2(hx4d), hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((self.upscore2(hx3d), hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((self.upscore2(hx2d), hx1), 1))
        return hx1d + hxin


class RSU5(nn.Module):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.pool1 = _pool()
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.pool2 = _pool()
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.pool3 = _pool()
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.rebnconv5 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv4d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)
        self.upscore2 = _up()

    def forward(self, x):
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(self.pool1(hx1))
        hx3 = self.rebnconv3(self.pool2(hx2))
        hx4 = self.rebnconv4(self.pool3(hx3))
        hx5 = self.rebnconv5(hx4)
        hx4d = self.rebnconv4d(torch.cat((hx5, hx4), 1))
        hx3d = self.rebnconv3d(torch.cat((self.upscore2(hx4d), hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((self.upscore2(hx3d), hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((self.upscore2(hx2d), hx1), 1))
        return hx1d + hxin


class RSU4(nn.Module):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.pool1 = _pool()
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.pool2 = _pool()
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=1)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, dirate=1)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)
        self.upscore2 = _up()

    def forward(self, x):
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(self.pool1(hx1))
        hx3 = self.rebnconv3(self.pool2(hx2))
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((self.upscore2(hx3d), hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((self.upscore2(hx2d), hx1), 1))
        return hx1d + hxin


class RSU4F(nn.Module):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=4)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=8)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, dirate=4)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, dirate=2)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x):
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((hx3d, hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((hx2d, hx1), 1))
        return hx1d + hxin


class _RefU2(nn.Module):
    """The common body of U2NET and U2NETP: stages, sides, upsamplers, outconv."""

    def forward(self, x):
        hx1 = self.stage1(x)
        hx2 = self.stage2(self.pool12(hx1))
        hx3 = self.stage3(self.pool23(hx2))
        hx4 = self.stage4(self.pool34(hx3))
        hx5 = self.stage5(self.pool45(hx4))
        hx6 = self.stage6(self.pool56(hx5))
        hx5d = self.stage5d(torch.cat((self.upscore2(hx6), hx5), 1))
        hx4d = self.stage4d(torch.cat((self.upscore2(hx5d), hx4), 1))
        hx3d = self.stage3d(torch.cat((self.upscore2(hx4d), hx3), 1))
        hx2d = self.stage2d(torch.cat((self.upscore2(hx3d), hx2), 1))
        hx1d = self.stage1d(torch.cat((self.upscore2(hx2d), hx1), 1))
        d1 = self.side1(hx1d)
        d2 = self.upscore2(self.side2(hx2d))
        d3 = self.upscore3(self.side3(hx3d))
        d4 = self.upscore4(self.side4(hx4d))
        d5 = self.upscore5(self.side5(hx5d))
        d6 = self.upscore6(self.side6(hx6))
        d0 = self.outconv(torch.cat((d1, d2, d3, d4, d5, d6), 1))
        return tuple(torch.sigmoid(d) for d in (d0, d1, d2, d3, d4, d5, d6))

    def _heads(self, sides, out_ch, fused_out):
        for i, ch in enumerate(sides, start=1):
            setattr(self, f"side{i}", nn.Conv2d(ch, out_ch, 3, padding=1))
        self.upscore6 = nn.Upsample(scale_factor=32, mode="bilinear")
        self.upscore5 = nn.Upsample(scale_factor=16, mode="bilinear")
        self.upscore4 = nn.Upsample(scale_factor=8, mode="bilinear")
        self.upscore3 = nn.Upsample(scale_factor=4, mode="bilinear")
        self.upscore2 = nn.Upsample(scale_factor=2, mode="bilinear")
        self.outconv = nn.Conv2d(6 * out_ch, fused_out, 1)


class RefU2NET(_RefU2):
    def __init__(self, in_ch=3, out_ch=1):
        super().__init__()
        self.stage1 = RSU7(in_ch, 32, 64)
        self.pool12 = _pool()
        self.stage2 = RSU6(64, 32, 128)
        self.pool23 = _pool()
        self.stage3 = RSU5(128, 64, 256)
        self.pool34 = _pool()
        self.stage4 = RSU4(256, 128, 512)
        self.pool45 = _pool()
        self.stage5 = RSU4F(512, 256, 512)
        self.pool56 = _pool()
        self.stage6 = RSU4F(512, 256, 512)
        self.stage5d = RSU4F(1024, 256, 512)
        self.stage4d = RSU4(1024, 128, 256)
        self.stage3d = RSU5(512, 64, 128)
        self.stage2d = RSU6(256, 32, 64)
        self.stage1d = RSU7(128, 16, 64)
        self._heads((64, 64, 128, 256, 512, 512), out_ch, 1)


class RefU2NETP(_RefU2):
    def __init__(self, in_ch=3, out_ch=1):
        super().__init__()
        self.stage1 = RSU7(in_ch, 16, 64)
        self.pool12 = _pool()
        self.stage2 = RSU6(64, 16, 64)
        self.pool23 = _pool()
        self.stage3 = RSU5(64, 16, 64)
        self.pool34 = _pool()
        self.stage4 = RSU4(64, 16, 64)
        self.pool45 = _pool()
        self.stage5 = RSU4F(64, 16, 64)
        self.pool56 = _pool()
        self.stage6 = RSU4F(64, 16, 64)
        self.stage5d = RSU4F(128, 16, 64)
        self.stage4d = RSU4(128, 16, 64)
        self.stage3d = RSU5(128, 16, 64)
        self.stage2d = RSU6(128, 16, 64)
        self.stage1d = RSU7(128, 16, 64)
        self._heads((64,) * 6, out_ch, out_ch)


# --- helpers ----------------------------------------------------------------------------------


def _randomised(net: nn.Module, seed: int = 0) -> nn.Module:
    """``net`` with random weights and BatchNorm statistics, in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * 0.5 + 0.75)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif name.endswith("bn_s1.weight"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * 0.5 + 0.75)
            else:  # conv weights, He-scaled so the activations keep their size
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def public_u2netp():
    return _randomised(RefU2NETP())


# --- parity, loading, detection ---------------------------------------------------------------


def test_u2netp_loads_the_public_state_dict_strictly_and_matches_it(public_u2netp):
    ours = get_architecture("u2netp").build()
    ours.load_state_dict(public_u2netp.state_dict(), strict=True)
    ours.eval()
    assert sum(p.numel() for p in ours.parameters()) == 1_131_181  # U2NETP's 1.1 M
    image = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = public_u2netp(image)
        got = ours.side_logits(image)
        fused = ours(image)
    assert fused.shape == (2, 1, 64, 96)
    torch.testing.assert_close(fused, want[0], rtol=0, atol=1e-5)
    for mine, theirs in zip(got, want, strict=True):
        torch.testing.assert_close(torch.sigmoid(mine), theirs, rtol=0, atol=1e-5)
    assert float(want[0].std()) > 1e-3  # the comparison is not between constant maps


def test_our_state_dict_loads_into_the_public_class_strictly():
    ours = _randomised(U2Net("u2netp"), seed=3)
    ref = RefU2NETP()
    ref.load_state_dict(ours.state_dict(), strict=True)
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(image), ref.eval()(image)[0], rtol=0, atol=1e-5)


def test_u2net_full_has_the_public_names_and_shapes():
    with torch.device("meta"):
        ref, ours = RefU2NET(), U2Net("u2net")
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == want
    assert sum(v.numel() for v in ref.parameters()) == 44_009_869  # U2NET's 44 M


def test_u2net_full_matches_the_public_net_on_a_small_input():
    ref = _randomised(RefU2NET(), seed=5)
    ours = get_architecture("u2net").build()
    ours.load_state_dict(ref.state_dict(), strict=True)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(image), ref(image)[0], rtol=0, atol=1e-5)


def test_detection_names_u2netp_and_u2net_from_bare_files(tmp_path, public_u2netp):
    path = tmp_path / "u2netp.pth"
    torch.save(public_u2netp.state_dict(), path)  # how U-2-Net saves: a bare state_dict
    ckpt = load_checkpoint(path)
    assert ckpt.architecture is None
    public = {"imagenet_input": True}  # a bare release file: ImageNet-normalised input
    assert detect_architecture(ckpt.state_dict) == ("u2netp", public)
    # files of PyTorch < 0.4 have no num_batches_tracked; DataParallel adds "module."
    old = {k: v for k, v in ckpt.state_dict.items() if not k.endswith("num_batches_tracked")}
    assert detect_architecture(old) == ("u2netp", public)
    assert detect_architecture({f"module.{k}": v for k, v in old.items()}) == ("u2netp", public)
    with torch.device("meta"):
        full = RefU2NET().state_dict()
    assert detect_architecture(full) == ("u2net", public)


def test_detection_refuses_a_damaged_u2netp(public_u2netp):
    from vetrina.errors import CheckpointError

    damaged = dict(public_u2netp.state_dict())
    del damaged["side3.weight"]
    with pytest.raises(CheckpointError, match=r"closest: U²-Net.*missing: side3\.weight"):
        detect_architecture(damaged)
    two_maps = dict(public_u2netp.state_dict())
    two_maps["outconv.weight"] = torch.zeros(2, 6, 1, 1)
    with pytest.raises(CheckpointError, match="outconv makes 2 maps"):
        detect_architecture(two_maps)


def test_specs_state_the_contract():
    for name in ("u2netp", "u2net"):
        spec = get_architecture(name)
        assert spec.role == "matting"
        assert spec.spatial.multiple_of == 32 and spec.spatial.min_size == 32
        (out,) = spec.outputs
        assert (out.name, out.semantic, out.channels, out.range) == ("alpha", "mask", "L", (0, 1))
        assert spec.inputs[0].range == (0.0, 1.0)
        assert "ImageNet" in spec.description  # what the public checkpoints expect


def test_imagenet_input_equals_normalising_outside_the_public_net(public_u2netp):
    ours = get_architecture("u2netp").build({"imagenet_input": True}).eval()
    ours.load_state_dict(public_u2netp.state_dict(), strict=True)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(image), public_u2netp.eval()((image - mean) / std)[0], rtol=0, atol=1e-5
        )


@pytest.mark.slow
def test_a_tiny_random_u2netp_checkpoint_converts(tmp_path):
    from vetrina.converters.convert import convert

    net = _randomised(U2Net("u2netp"), seed=7)
    ckpt = save_checkpoint(
        tmp_path / "m.pt",
        architecture="u2netp",
        config={},
        state_dict=net.state_dict(),
        metadata={},
    )
    # static: half the export time; the dynamic U²-Net export is the zoo model's
    # (tests/converters/test_convert.py)
    result = convert(ckpt, tmp_path / "m.onnx", static=(64, 64))
    assert result.output.is_file() and result.report.passed
    assert result.contract.role == "matting"
    assert result.contract.outputs[0].name == "alpha"
    # every upsampling exported with its constant factor (ONNX Runtime's NCHWc upsample),
    # not as sizes computed from shapes; no converter rewrite was needed for that
    graph = onnx.load(str(result.output)).graph
    constants = {t.name for t in graph.initializer}
    resizes = [n for n in graph.node if n.op_type == "Resize"]
    assert len(resizes) == 38 and "Shape" not in {n.op_type for n in graph.node}
    assert all(len(n.input) == 3 and n.input[2] in constants for n in resizes)
    assert "constant_resize_scales" not in result.contract.provenance["graph_rewrites"]


def test_inner_scale_runs_the_net_at_a_fraction_and_upsamples_back():
    net = _randomised(U2Net("u2netp"), seed=3).eval()
    inner = U2Net("u2netp", inner_scale=2).eval()
    inner.load_state_dict(net.state_dict(), strict=True)  # the same weights, no new ones
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        small = net(torch.nn.functional.avg_pool2d(x, 2))
        expected = torch.nn.functional.interpolate(small, size=(64, 64), mode="bilinear")
        torch.testing.assert_close(inner(x), expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="inner_scale"):
        U2Net("u2netp", inner_scale=0)


@pytest.mark.slow
def test_input_norm_export_takes_rembg_normalised_input(tmp_path):
    """--input-norm imagenet: the file takes (rgb/255 - mean)/std (rembg's convention) and
    gives what the net gives on rgb/255; the contract says so, and vetrina feeds it so."""
    import onnxruntime as ort

    from vetrina.converters.convert import convert
    from vetrina.errors import ConversionError

    net = _randomised(U2Net("u2netp"), seed=11).eval()
    ckpt = save_checkpoint(
        tmp_path / "m.pt",
        architecture="u2netp",
        config={},
        state_dict=net.state_dict(),
        metadata={},
    )
    result = convert(ckpt, tmp_path / "m.onnx", static=(64, 64), input_norm="imagenet")
    image = result.contract.inputs[0]
    assert image.mean == (0.485, 0.456, 0.406) and image.std == (0.229, 0.224, 0.225)
    rgb = np.random.default_rng(4).integers(0, 256, (1, 64, 64, 3)).astype(np.float32)
    unit = rgb.transpose(0, 3, 1, 2) / 255.0
    mean = np.array(image.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.array(image.std, np.float32).reshape(1, 3, 1, 1)
    session = ort.InferenceSession(str(result.output), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    got = session.run(None, {name: ((unit - mean) / std).astype(np.float32)})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(unit.astype(np.float32))).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(ConversionError, match="unknown --input-norm"):
        convert(ckpt, tmp_path / "x.onnx", input_norm="coco")


# --- recipe -----------------------------------------------------------------------------------


def test_composites_keep_the_product_and_change_the_background():
    images, alphas, _ = matting.render_pool(2, 64, "train")
    rng = np.random.default_rng(0)
    inside = alphas == 255
    for level in matting.LEVELS:
        for image, alpha, full in zip(images, alphas, inside, strict=True):
            out = matting.composite(image, alpha, level, rng)
            assert out.shape == image.shape and out.dtype == np.uint8
            assert np.abs(out[full].astype(int) - image[full]).max() <= 1
            if level != "studio":
                assert np.abs(out[alpha == 0].astype(int) - image[alpha == 0]).mean() > 5
    weights = [matting.level_weights(p, matting.Recipe()) for p in (0.0, 0.2, 1.0)]
    assert weights[0][2:].sum() == 0 and weights[-1].min() > 0
    assert all(abs(w.sum() - 1) < 1e-9 and w[0] >= 0.25 for w in weights)


def test_grabcut_baseline_and_scores():
    images, alphas, _ = matting.render_pool(2, 64, "test")
    base = np.stack([matting.grabcut(im) for im in images])
    assert base.shape == alphas.shape and set(np.unique(base)) <= {0.0, 1.0}
    truth = alphas.astype(np.float32) / 255
    assert matting.scores(truth, alphas) == (1.0, 0.0)
    iou, mae = matting.scores(1.0 - truth, alphas)
    assert iou == 0.0 and mae > 0.5


def test_training_recipe_smoke(tmp_path):
    tiny = dataclasses.replace(
        matting.Recipe(),
        steps=1,
        batch=2,
        size=64,
        warm_steps=1,
        warm_batch=2,
        warm_size=32,
        pool=4,
        eval_images=2,
        eval_size=64,
    )
    threads = torch.get_num_threads()
    out = matting.train(tmp_path / "m.pt", tiny, progress=False, log=lambda _: None)
    assert torch.get_num_threads() == threads
    ckpt = load_checkpoint(out)
    assert ckpt.architecture == "u2netp" and ckpt.config == {}
    assert ckpt.metadata["recipe"]["warm_steps"] == 1
    metrics = ckpt.metadata["metrics"]
    for level in matting.LEVELS:
        assert {f"iou_{level}", f"mae_{level}", f"grabcut_iou_{level}"} <= set(metrics)
    assert len(matting.checks(metrics)) == 2 + 2 * len(matting.LEVELS)


def test_zoo_entry():
    entry = zoo.get_entry("matting")
    assert entry.architecture == "u2netp"
    assert entry.recipe_module() is matting


def test_inner_scale_multiplies_the_size_rules_of_the_export():
    from vetrina.models.architectures import get_architecture

    spec = get_architecture("u2netp")
    assert spec.for_config({}) is spec and spec.for_config({"inner_scale": 1}) is spec
    rules = spec.for_config({"inner_scale": 2}).spatial
    assert (rules.multiple_of, rules.min_size, rules.max_size) == (64, 64, None)
    assert spec.spatial.multiple_of == 32  # the registry's spec is unchanged
