"""Public checkpoint formats: detection, key-for-key loading and parity with the public nets.

The reference nets below restate the public class definitions (same modules, same order, same
in-place activations) of junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py``,
pytorch/examples ``dcgan/main.py``, xinntao/Real-ESRGAN ``realesrgan/archs/srvgg_arch.py``
and XPixelGroup/BasicSR ``basicsr/archs/rrdbnet_arch.py``. Each is saved the way its project
saves it, loaded through vetrina's loader and detector into vetrina's module, and both are
run on the same input.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from vetrina.errors import CheckpointError
from vetrina.models.architectures import get_architecture
from vetrina.models.architectures.detect import (
    DETECTABLE,
    adapt_legacy_state_dict,
    detect_architecture,
    unwrap_public,
)
from vetrina.models.architectures.transformer_net import TransformerNet
from vetrina.models.checkpoint import load_checkpoint

# --- reference: pytorch-CycleGAN-and-pix2pix models/networks.py -------------------------------


class Identity(nn.Module):
    def forward(self, x):
        return x


def get_norm_layer(norm_type="instance", legacy=False):
    # legacy: the 2018 repository tracked InstanceNorm running statistics (PyTorch 0.4 era)
    if norm_type == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm_type == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=legacy)
    return lambda x: Identity()


def _use_bias(norm_layer):
    if type(norm_layer) is functools.partial:
        return norm_layer.func == nn.InstanceNorm2d
    return norm_layer == nn.InstanceNorm2d


class RefResnetBlock(nn.Module):
    def __init__(self, dim, padding_type, norm_layer, use_dropout, use_bias):
        super().__init__()
        assert padding_type == "reflect"
        block = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
            norm_layer(dim),
            nn.ReLU(True),
        ]
        if use_dropout:
            block += [nn.Dropout(0.5)]
        block += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
            norm_layer(dim),
        ]
        self.conv_block = nn.Sequential(*block)

    def forward(self, x):
        return x + self.conv_block(x)


class RefResnetGenerator(nn.Module):
    def __init__(
        self, input_nc, output_nc, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False, n_blocks=6
    ):
        super().__init__()
        use_bias = _use_bias(norm_layer)
        model = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2**i
            model += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=use_bias),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
            ]
        mult = 2**n_downsampling
        for _ in range(n_blocks):
            model += [RefResnetBlock(ngf * mult, "reflect", norm_layer, use_dropout, use_bias)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            model += [
                nn.ConvTranspose2d(
                    ngf * mult,
                    int(ngf * mult / 2),
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                    bias=use_bias,
                ),
                norm_layer(int(ngf * mult / 2)),
                nn.ReLU(True),
            ]
        model += [nn.ReflectionPad2d(3)]
        model += [nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0)]
        model += [nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, input):
        return self.model(input)


class RefUnetSkipConnectionBlock(nn.Module):
    def __init__(
        self,
        outer_nc,
        inner_nc,
        input_nc=None,
        submodule=None,
        outermost=False,
        innermost=False,
        norm_layer=nn.BatchNorm2d,
        use_dropout=False,
    ):
        super().__init__()
        self.outermost = outermost
        use_bias = _use_bias(norm_layer)
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = norm_layer(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = norm_layer(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(
                inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias
            )
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(
                inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias
            )
            model = [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm]
            if use_dropout:
                model += [nn.Dropout(0.5)]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class RefUnetGenerator(nn.Module):
    def __init__(
        self, input_nc, output_nc, num_downs, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False
    ):
        super().__init__()
        block = RefUnetSkipConnectionBlock(ngf * 8, ngf * 8, norm_layer=norm_layer, innermost=True)
        for _ in range(num_downs - 5):
            block = RefUnetSkipConnectionBlock(
                ngf * 8, ngf * 8, submodule=block, norm_layer=norm_layer, use_dropout=use_dropout
            )
        block = RefUnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm_layer=norm_layer)
        block = RefUnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm_layer=norm_layer)
        block = RefUnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm_layer=norm_layer)
        self.model = RefUnetSkipConnectionBlock(
            output_nc,
            ngf,
            input_nc=input_nc,
            submodule=block,
            outermost=True,
            norm_layer=norm_layer,
        )

    def forward(self, input):
        return self.model(input)


def patch_instance_norm_state_dict(state_dict, module, keys, i=0):
    """BaseModel.__patch_instance_norm_state_dict: what the repository does before loading."""
    key = keys[i]
    if i + 1 == len(keys):
        name = module.__class__.__name__
        stats = key in ("running_mean", "running_var")
        if name.startswith("InstanceNorm") and stats and getattr(module, key) is None:
            state_dict.pop(".".join(keys))
        if name.startswith("InstanceNorm") and key == "num_batches_tracked":
            state_dict.pop(".".join(keys))
    else:
        patch_instance_norm_state_dict(state_dict, getattr(module, key), keys, i + 1)


# --- reference: pytorch/examples dcgan/main.py ------------------------------------------------


class RefDCGANGenerator(nn.Module):
    def __init__(self, ngpu, nz=100, ngf=64, nc=3):
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)


# --- reference: Real-ESRGAN srvgg_arch.py, BasicSR rrdbnet_arch.py ----------------------------


class RefSRVGGNetCompact(nn.Module):
    def __init__(
        self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"
    ):
        super().__init__()
        self.upscale = upscale

        def act():
            if act_type == "relu":
                return nn.ReLU(inplace=True)
            if act_type == "prelu":
                return nn.PReLU(num_parameters=num_feat)
            return nn.LeakyReLU(negative_slope=0.1, inplace=True)

        self.body = nn.ModuleList()
        self.body.append(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1))
        self.body.append(act())
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(act())
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for i in range(0, len(self.body)):
            out = self.body[i](out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        out += base
        return out


def basicsr_pixel_unshuffle(x, scale):
    b, c, hh, hw = x.size()
    h, w = hh // scale, hw // scale
    x_view = x.view(b, c, h, scale, w, scale)
    return x_view.permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale**2, h, w)


class RefResidualDenseBlock(nn.Module):
    def __init__(self, num_feat=64, num_grow_ch=32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RefRRDB(nn.Module):
    def __init__(self, num_feat, num_grow_ch=32):
        super().__init__()
        self.rdb1 = RefResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = RefResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = RefResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        out = self.rdb1(x)
        out = self.rdb2(out)
        out = self.rdb3(out)
        return out * 0.2 + x


class RefRRDBNet(nn.Module):
    def __init__(self, num_in_ch, num_out_ch, scale=4, num_feat=64, num_block=23, num_grow_ch=32):
        super().__init__()
        self.scale = scale
        if scale == 2:
            num_in_ch = num_in_ch * 4
        elif scale == 1:
            num_in_ch = num_in_ch * 16
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RefRRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        if self.scale == 2:
            feat = basicsr_pixel_unshuffle(x, scale=2)
        elif self.scale == 1:
            feat = basicsr_pixel_unshuffle(x, scale=4)
        else:
            feat = x
        feat = self.conv_first(feat)
        body_feat = self.conv_body(self.body(feat))
        feat = feat + body_feat
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


# --- helpers ----------------------------------------------------------------------------------


def randomized(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random non-trivial weights and BatchNorm statistics (so eval mode matters)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + noise.abs())
            elif name.endswith("running_mean"):
                tensor.copy_(0.3 * noise)
            else:
                fan = max(1, tensor[0].numel()) if tensor.dim() > 1 else 1
                tensor.add_(noise / math.sqrt(fan) * 0.5)
    return net.eval()


def load_as_vetrina(path):
    """vetrina's path for a public file: safe load, detect, build, strict load."""
    checkpoint = load_checkpoint(path)
    name, config = detect_architecture(checkpoint.state_dict)
    module = get_architecture(name).build(config)
    module.load_state_dict(checkpoint.state_dict, strict=True)
    return checkpoint, name, config, module.eval()


def image(shape, low=-1.0, high=1.0, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) * (high - low) + low


def assert_same(ours, ref, x, atol=1e-5):
    with torch.no_grad():
        expected = ref(x.clone())
        got = ours(x.clone())
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=atol, rtol=1e-5)


# --- CycleGAN ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "norm, use_dropout",
    [("instance", False), ("instance", True), ("batch", False), ("none", False)],
)
def test_cyclegan_resnet_generator_loads_and_matches(tmp_path, norm, use_dropout):
    torch.manual_seed(0)
    ref = randomized(
        RefResnetGenerator(
            3, 3, ngf=4, norm_layer=get_norm_layer(norm), use_dropout=use_dropout, n_blocks=2
        )
    )
    path = tmp_path / "latest_net_G.pth"
    torch.save(ref.state_dict(), path)
    _, name, config, ours = load_as_vetrina(path)
    assert name == "cyclegan-resnet"
    assert config == {"ngf": 4, "n_blocks": 2, "norm": norm, "use_dropout": use_dropout}
    assert_same(ours, ref, image((2, 3, 32, 24)))


def test_cyclegan_pre_0_4_instance_norm_statistics_are_dropped_like_the_repository(tmp_path):
    old = randomized(RefResnetGenerator(3, 3, ngf=4, norm_layer=get_norm_layer(legacy=True)))
    saved = old.state_dict()
    assert any(k.endswith("2.running_mean") for k in saved)  # what old files carry
    torch.save(saved, tmp_path / "old.pth")
    _, name, config, ours = load_as_vetrina(tmp_path / "old.pth")
    assert (name, config["norm"], config["n_blocks"]) == ("cyclegan-resnet", "instance", 6)
    # the repository's own loading: today's net, stale keys deleted by its patch function
    ref = RefResnetGenerator(3, 3, ngf=4, norm_layer=get_norm_layer("instance"))
    state = dict(saved)
    for key in list(state):
        patch_instance_norm_state_dict(state, ref, key.split("."))
    ref.load_state_dict(state, strict=True)
    assert_same(ours, ref.eval(), image((1, 3, 16, 20)))


@pytest.mark.parametrize("n_blocks", [6, 9])
def test_cyclegan_public_sizes_are_detected(n_blocks):
    with torch.device("meta"):
        ref = RefResnetGenerator(3, 3, 64, get_norm_layer("instance"), n_blocks=n_blocks)
    assert detect_architecture(ref.state_dict()) == (
        "cyclegan-resnet",
        {"ngf": 64, "n_blocks": n_blocks, "norm": "instance", "use_dropout": False},
    )


def test_data_parallel_prefix_is_stripped_and_recorded(tmp_path):
    ref = randomized(RefResnetGenerator(3, 3, ngf=2, norm_layer=get_norm_layer(), n_blocks=1))
    torch.save(nn.DataParallel(ref).state_dict(), tmp_path / "dp.pth")
    checkpoint, name, _, ours = load_as_vetrina(tmp_path / "dp.pth")
    assert checkpoint.metadata == {"stripped_prefix": "module."}
    assert name == "cyclegan-resnet"
    assert_same(ours, ref, image((1, 3, 16, 16)))


# --- pix2pix ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_downs, norm, side",
    [(7, "batch", 128), (8, "batch", 256), (7, "instance", 128)],
)
def test_pix2pix_unet_loads_and_matches(tmp_path, num_downs, norm, side):
    ref = randomized(RefUnetGenerator(3, 3, num_downs, ngf=2, norm_layer=get_norm_layer(norm)))
    torch.save(ref.state_dict(), tmp_path / "latest_net_G.pth")
    _, name, config, ours = load_as_vetrina(tmp_path / "latest_net_G.pth")
    assert name == {7: "pix2pix-unet128", 8: "pix2pix-unet256"}[num_downs]
    assert config == {"ngf": 2, "norm": norm, "use_dropout": False, "num_downs": num_downs}
    assert get_architecture(name).spatial.multiple_of == 2**num_downs
    assert_same(ours, ref, image((2, 3, side, 2 * side)))


def test_pix2pix_dropout_changes_no_key_and_is_identity_at_inference(tmp_path):
    ref = randomized(RefUnetGenerator(3, 3, 8, ngf=2, use_dropout=True))
    torch.save(ref.state_dict(), tmp_path / "g.pth")
    _, name, _, ours = load_as_vetrina(tmp_path / "g.pth")
    assert name == "pix2pix-unet256"
    assert_same(ours, ref, image((1, 3, 256, 256)))


def test_unusual_unet_depth_is_named_not_guessed():
    with torch.device("meta"):
        ref = RefUnetGenerator(3, 3, 6, ngf=2)
    with pytest.raises(CheckpointError, match=r"U-Net of 6 levels.*unet_256 \(8\)"):
        detect_architecture(ref.state_dict())


# --- DCGAN ------------------------------------------------------------------------------------


def test_dcgan_generator_loads_and_matches(tmp_path):
    ref = randomized(RefDCGANGenerator(1, nz=8, ngf=4))
    torch.save(ref.state_dict(), tmp_path / "netG_epoch_24.pth")
    _, name, config, ours = load_as_vetrina(tmp_path / "netG_epoch_24.pth")
    assert (name, config) == ("dcgan-generator", {"nz": 8, "ngf": 4})
    assert ours.nz == 8
    z = torch.randn(3, 8, 1, 1, generator=torch.Generator().manual_seed(2))
    assert_same(ours, ref, z)
    assert ours(z).shape == (3, 3, 64, 64)


def test_dcgan_defaults_and_pre_0_4_batch_norm(tmp_path):
    with torch.device("meta"):
        ref = RefDCGANGenerator(1)
    assert detect_architecture(ref.state_dict()) == ("dcgan-generator", {"nz": 100, "ngf": 64})
    # files saved before PyTorch 0.4 have no num_batches_tracked
    small = randomized(RefDCGANGenerator(1, nz=4, ngf=2))
    old = {k: v for k, v in small.state_dict().items() if "num_batches_tracked" not in k}
    torch.save(old, tmp_path / "old.pth")
    _, name, _, ours = load_as_vetrina(tmp_path / "old.pth")
    assert name == "dcgan-generator"
    assert set(adapt_legacy_state_dict(ours, old)) == set(ours.state_dict())
    assert_same(ours, small, torch.randn(2, 4, 1, 1))


def test_dcgan_z_spec_fits_the_contract():
    spec = get_architecture("dcgan-generator")
    (z,) = spec.inputs
    assert (z.semantic, z.layout, z.channels, z.range) == ("z", "NCHW", "", None)
    assert spec.role == "generator" and spec.outputs[0].range == (-1.0, 1.0)


def test_grayscale_dcgan_is_refused_with_the_reason():
    with torch.device("meta"):
        ref = RefDCGANGenerator(1, nc=1)
    with pytest.raises(CheckpointError, match=r"main\.12 \(output\) has 1 channels.*RGB"):
        detect_architecture(ref.state_dict())


# --- Real-ESRGAN ------------------------------------------------------------------------------


@pytest.mark.parametrize("upscale", [4, 2])
def test_srvgg_compact_loads_from_params_and_matches(tmp_path, upscale):
    ref = randomized(RefSRVGGNetCompact(num_feat=8, num_conv=3, upscale=upscale))
    torch.save({"params": ref.state_dict()}, tmp_path / "realesr-general-x4v3.pth")
    checkpoint, name, config, ours = load_as_vetrina(tmp_path / "realesr-general-x4v3.pth")
    assert checkpoint.metadata == {"weights_key": "params"}
    assert name == f"srvgg-compact-x{upscale}"
    assert config == {"num_feat": 8, "num_conv": 3, "upscale": upscale, "act_type": "prelu"}
    assert get_architecture(name).spatial.scale == upscale
    assert_same(ours, ref, image((2, 3, 12, 10), 0.0, 1.0))


def test_public_srvgg_sizes_are_detected():
    for num_conv in (32, 16):  # realesr-general-x4v3, realesr-animevideov3
        with torch.device("meta"):
            ref = RefSRVGGNetCompact(num_feat=64, num_conv=num_conv, upscale=4)
        name, config = detect_architecture(ref.state_dict())
        assert (name, config["num_conv"], config["num_feat"]) == ("srvgg-compact-x4", num_conv, 64)


def test_srvgg_without_prelu_weights_is_ambiguous():
    ref = RefSRVGGNetCompact(num_feat=4, num_conv=1, upscale=4, act_type="relu")
    with pytest.raises(CheckpointError, match=r"several architectures.*relu.*leakyrelu") as info:
        detect_architecture(ref.state_dict())
    assert "save_checkpoint" in (info.value.hint or "")


@pytest.mark.parametrize("scale", [4, 2])
def test_rrdbnet_loads_from_params_ema_and_matches(tmp_path, scale):
    ref = randomized(RefRRDBNet(3, 3, scale=scale, num_feat=8, num_block=2, num_grow_ch=4))
    ema = ref.state_dict()
    stale = {k: torch.zeros_like(v) for k, v in ema.items()}
    torch.save({"params_ema": ema, "params": stale}, tmp_path / "RealESRGAN_x4plus.pth")
    checkpoint, name, config, ours = load_as_vetrina(tmp_path / "RealESRGAN_x4plus.pth")
    assert checkpoint.metadata == {"weights_key": "params_ema", "ignored_keys": ["params"]}
    assert name == f"rrdbnet-x{scale}"
    assert config == {"num_feat": 8, "num_block": 2, "num_grow_ch": 4, "scale": scale}
    assert_same(ours, ref, image((2, 3, 8, 6), 0.0, 1.0), atol=1e-4)


def test_public_rrdbnet_sizes_are_detected():
    with torch.device("meta"):
        x4plus = RefRRDBNet(3, 3)
        anime = RefRRDBNet(3, 3, num_block=6)
        x2plus = RefRRDBNet(3, 3, scale=2)
        x1 = RefRRDBNet(3, 3, scale=1, num_block=1)
    default = {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4}
    assert detect_architecture(x4plus.state_dict()) == ("rrdbnet-x4", default)
    assert detect_architecture(anime.state_dict())[1]["num_block"] == 6
    assert detect_architecture(x2plus.state_dict()) == ("rrdbnet-x2", {**default, "scale": 2})
    with pytest.raises(CheckpointError, match=r"scale 1 .*registers x4 and x2"):
        detect_architecture(x1.state_dict())


def test_fixed_scale_architectures_refuse_a_contradicting_config():
    with pytest.raises(CheckpointError, match=r"fixed at scale=2.*scale=4") as info:
        get_architecture("rrdbnet-x2").build({"scale": 4})
    assert "rrdbnet-x4" in (info.value.hint or "")
    with pytest.raises(CheckpointError, match="fixed at num_downs=8"):
        get_architecture("pix2pix-unet256").build({"num_downs": 7})


@pytest.mark.parametrize(
    "name, config",
    [("cyclegan-resnet", {"ngf": 2, "n_blocks": 1}), ("pix2pix-unet128", {"ngf": 2})],
)
def test_size_rules_are_the_nets_own_limits(name, config):
    spec = get_architecture(name)
    module = spec.build(config).eval()
    low, step = spec.spatial.min_size, spec.spatial.multiple_of
    with torch.no_grad():
        assert module(image((1, 3, low, low + step))).shape == (1, 3, low, low + step)
        with pytest.raises(RuntimeError):
            module(image((1, 3, low - step, low)))


# --- TransformerNet, unknown and malformed input ----------------------------------------------


def test_transformer_net_is_detected_including_pre_0_4_files():
    net = TransformerNet(channels=8, blocks=3)
    assert detect_architecture(net.state_dict()) == (
        "transformer-net",
        {"channels": 8, "blocks": 3},
    )
    old = dict(net.state_dict())
    old["in1.running_mean"] = torch.zeros(8)
    old["in1.running_var"] = torch.ones(8)
    assert detect_architecture(old)[0] == "transformer-net"


def test_unknown_state_dict_names_the_known_formats():
    with pytest.raises(CheckpointError, match=r"matches no known format.*known formats") as info:
        detect_architecture({"encoder.weight": torch.zeros(2, 2)})
    assert "--arch" in (info.value.hint or "")
    assert "CycleGAN" in info.value.message and "Real-ESRGAN" in info.value.message
    for names in DETECTABLE.values():
        assert all(get_architecture(name).name == name for name in names)


def test_near_miss_names_the_closest_format_and_the_difference():
    ref = RefResnetGenerator(3, 3, ngf=2, norm_layer=get_norm_layer(), n_blocks=1)
    damaged = dict(ref.state_dict())
    del damaged["model.4.weight"]
    with pytest.raises(CheckpointError, match=r"closest: CycleGAN.*missing: model\.4\.weight"):
        detect_architecture(damaged)
    damaged = dict(ref.state_dict())
    damaged["model.4.weight"] = torch.zeros(5, 2, 3, 3)
    with pytest.raises(CheckpointError, match=r"shape: model\.4\.weight \(5, 2, 3, 3\)"):
        detect_architecture(damaged)


def test_unwrap_public_refuses_what_it_does_not_know(tmp_path):
    with pytest.raises(CheckpointError, match=r"top-level keys: epoch, optimizer") as info:
        unwrap_public({"epoch": torch.tensor(3), "optimizer": {"lr": torch.tensor(1.0)}})
    assert "params_ema" in (info.value.hint or "")
    with pytest.raises(CheckpointError, match="'params' entry is not a state_dict"):
        unwrap_public({"params": {}})
    torch.save({"net": {"w": torch.zeros(1)}}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match=r"x\.pth: not a vetrina checkpoint"):
        load_checkpoint(tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="non-tensor"):
        detect_architecture({"params_ema": {"w": torch.zeros(1)}})


# --- ONNX -------------------------------------------------------------------------------------


def _onnx_matches(module, name, x, tmp_path, atol):
    ort = pytest.importorskip("onnxruntime")
    from vetrina.converters.export import export_onnx

    spec = get_architecture(name)
    path = export_onnx(module, spec, tmp_path / f"{name}.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {spec.inputs[0].name: x.numpy()})
    with torch.no_grad():
        expected = module(x).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=atol, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, config, shape",
    [
        ("cyclegan-resnet", {"ngf": 4, "n_blocks": 2}, (1, 3, 20, 36)),
        ("pix2pix-unet128", {"ngf": 2}, (1, 3, 128, 256)),
        ("srvgg-compact-x4", {"num_feat": 8, "num_conv": 2}, (1, 3, 9, 13)),
        ("rrdbnet-x4", {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}, (1, 3, 7, 5)),
        ("rrdbnet-x2", {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}, (1, 3, 10, 6)),
    ],
)
def test_public_modules_export_to_onnx_with_dynamic_sizes(tmp_path, name, config, shape):
    module = randomized(get_architecture(name).build(config))
    low, high = get_architecture(name).inputs[0].range
    _onnx_matches(module, name, image(shape, low, high), tmp_path, atol=1e-4)
