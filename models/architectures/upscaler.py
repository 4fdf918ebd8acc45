"""A compact x2 super-resolution net in the style of Real-ESRGAN's ``SRVGGNetCompact``.

All convolutions work at the input resolution (cheap): a 3x3 conv to ``channels`` features,
``convs`` 3x3 conv + PReLU layers, a last 3x3 conv to 3 * 2 * 2 channels that ``PixelShuffle(2)``
turns into the 2x residual, added to the nearest-neighbour 2x upsampled input (so the net only
learns the detail that nearest upsampling misses). Parameter names follow Real-ESRGAN's
``srvgg_arch.py`` (``body.N`` in a ModuleList, ``upsampler``), so an ``SRVGGNetCompact`` with
``num_feat=channels, num_conv=convs, upscale=2, act_type='prelu'`` loads as it is.

Input: RGB in [0, 1], NCHW, any size (at least 1 px); output: RGB, exactly twice the height and
width (not clamped). Exportable to ONNX with dynamic batch, height and width.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

SCALE = 2


class CompactUpscaler(nn.Module):
    """conv3x3 + PReLU, ``convs`` x (conv3x3 + PReLU), conv3x3 -> 12, PixelShuffle(2) + base."""

    def __init__(self, channels: int = 32, convs: int = 8) -> None:
        super().__init__()
        if channels < 1 or convs < 0:
            raise ValueError(f"channels must be >= 1 and convs >= 0, got {channels}, {convs}")
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, 1, 1), nn.PReLU(channels)]
        for _ in range(convs):
            layers += [nn.Conv2d(channels, channels, 3, 1, 1), nn.PReLU(channels)]
        layers.append(nn.Conv2d(channels, 3 * SCALE * SCALE, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(SCALE)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = image
        for layer in self.body:
            out = layer(out)
        base = F.interpolate(image, scale_factor=float(SCALE), mode="nearest")
        return self.upsampler(out) + base
