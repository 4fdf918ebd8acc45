"""Real-ESRGAN's super-resolution nets, with the parameter names of their release files.

``SRVGGNetCompact`` follows xinntao/Real-ESRGAN ``realesrgan/archs/srvgg_arch.py``
(``realesr-general-x4v3.pth``: num_feat 64, num_conv 32; ``realesr-animevideov3.pth``:
num_feat 64, num_conv 16; both upscale 4, PReLU): ``body`` is a ModuleList of a 3x3 conv, an
activation, ``num_conv`` x (3x3 conv, activation) and a last conv to ``3 * upscale**2``
channels; ``PixelShuffle(upscale)`` makes the residual, added to the nearest-neighbour
upscaled input.

``RRDBNet`` follows XPixelGroup/BasicSR ``basicsr/archs/rrdbnet_arch.py`` (ESRGAN's
generator, used by ``RealESRGAN_x4plus.pth``, ``RealESRNet_x4plus.pth``: num_feat 64,
num_block 23, num_grow_ch 32; ``RealESRGAN_x4plus_anime_6B.pth``: num_block 6;
``RealESRGAN_x2plus.pth``: scale 2): ``conv_first``, ``body.N.rdb{1,2,3}.conv{1..5}``,
``conv_body``, two nearest x2 upsamplings each followed by ``conv_up1`` / ``conv_up2`` and
LeakyReLU(0.2), ``conv_hr``, ``conv_last``. Scale 2 first folds the input with
``pixel_unshuffle(2)`` (so it has 12 input channels); scale 1 (``pixel_unshuffle(4)``) is
built by the class but has no registered contract.

The release files hold the weights under ``params_ema`` (or ``params``); the checkpoint
loader unwraps them. Input and output: RGB in [0, 1] (output not clamped), the output
``scale`` times the input. Exportable to ONNX with dynamic batch and sides.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .compat import require

ACTIVATIONS = ("prelu", "relu", "leakyrelu")


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU()
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1)
    raise ValueError(f"unknown act_type {act_type!r}; expected one of {', '.join(ACTIVATIONS)}")


class SRVGGNetCompact(nn.Module):
    """Convolutions at the input resolution, PixelShuffle, plus nearest upsampling."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        if num_feat < 1 or num_conv < 0 or upscale < 1:
            raise ValueError(
                f"num_feat >= 1, num_conv >= 0 and upscale >= 1 needed, got {num_feat}, "
                f"{num_conv}, {upscale}"
            )
        if num_in_ch != num_out_ch:
            raise ValueError("the nearest-upsampled input is added: num_in_ch == num_out_ch")
        self.upscale = upscale
        layers: list[nn.Module] = [
            nn.Conv2d(num_in_ch, num_feat, 3, 1, 1),
            _activation(act_type, num_feat),
        ]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = image
        for layer in self.body:
            out = layer(out)
        # A constant float factor: the export has no data-dependent output sizes.
        base = F.interpolate(image, scale_factor=float(self.upscale), mode="nearest")
        return self.upsampler(out) + base


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; the last one's output, times 0.2, plus the input."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        f, g = num_feat, num_grow_ch
        self.conv1 = nn.Conv2d(f, g, 3, 1, 1)
        self.conv2 = nn.Conv2d(f + g, g, 3, 1, 1)
        self.conv3 = nn.Conv2d(f + 2 * g, g, 3, 1, 1)
        self.conv4 = nn.Conv2d(f + 3 * g, g, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(self.lrelu(conv(torch.cat(features, 1))))
        return self.conv5(torch.cat(features, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Three residual dense blocks; their output, times 0.2, plus the input."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator; scale 4 as is, scale 2 / 1 after pixel_unshuffle(2 / 4)."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet upscales by 1, 2 or 4, not {scale}")
        if num_feat < 1 or num_block < 0 or num_grow_ch < 1:
            raise ValueError(
                f"num_feat >= 1, num_block >= 0, num_grow_ch >= 1 needed, got {num_feat}, "
                f"{num_block}, {num_grow_ch}"
            )
        self.scale = scale
        self.unshuffle = 4 // scale  # 1: none; 2 for scale 2; 4 for scale 1
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feat = image if self.unshuffle == 1 else F.pixel_unshuffle(image, self.unshuffle)
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def srvgg_compact_x4(
    num_feat: int = 64, num_conv: int = 16, act_type: str = "prelu", upscale: int = 4
) -> SRVGGNetCompact:
    """The registry's ``srvgg-compact-x4`` factory (RGB, upscale 4)."""
    require("srvgg-compact-x4", "upscale", upscale, 4, "'srvgg-compact-x2' for upscale 2")
    return SRVGGNetCompact(num_feat=num_feat, num_conv=num_conv, upscale=4, act_type=act_type)


def srvgg_compact_x2(
    num_feat: int = 64, num_conv: int = 16, act_type: str = "prelu", upscale: int = 2
) -> SRVGGNetCompact:
    """The registry's ``srvgg-compact-x2`` factory (RGB, upscale 2)."""
    require("srvgg-compact-x2", "upscale", upscale, 2, "'srvgg-compact-x4' for upscale 4")
    return SRVGGNetCompact(num_feat=num_feat, num_conv=num_conv, upscale=2, act_type=act_type)


def rrdbnet_x4(
    num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32, scale: int = 4
) -> RRDBNet:
    """The registry's ``rrdbnet-x4`` factory (RGB, scale 4)."""
    require("rrdbnet-x4", "scale", scale, 4, "'rrdbnet-x2' for scale 2")
    return RRDBNet(scale=4, num_feat=num_feat, num_block=num_block, num_grow_ch=num_grow_ch)


def rrdbnet_x2(
    num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32, scale: int = 2
) -> RRDBNet:
    """The registry's ``rrdbnet-x2`` factory (RGB, scale 2: sides must be even)."""
    require("rrdbnet-x2", "scale", scale, 2, "'rrdbnet-x4' for scale 4")
    return RRDBNet(scale=2, num_feat=num_feat, num_block=num_block, num_grow_ch=num_grow_ch)
