"""Johnson et al.'s feed-forward style transformer, with pytorch/examples' parameter names.

The layout and every parameter name follow ``TransformerNet`` of pytorch/examples
``fast_neural_style/neural_style/transformer_net.py`` (Johnson, Alahi and Fei-Fei 2016,
"Perceptual Losses for Real-Time Style Transfer and Super-Resolution", with Ulyanov et al.'s
instance normalisation), so its public checkpoints (``candy.pth``, ``mosaic.pth``, ...) load
into ``TransformerNet()`` with its defaults:

    conv1 9x9 (3 -> c), conv2 3x3/2 (c -> 2c), conv3 3x3/2 (2c -> 4c), each + in1..in3 + ReLU;
    res1..res5 residual blocks at 4c; deconv1 (nearest x2, 3x3, 4c -> 2c) + in4 + ReLU;
    deconv2 (nearest x2, 3x3, 2c -> c) + in5 + ReLU; deconv3 9x9 (c -> 3).

Convolutions are reflection padded; ``InstanceNorm2d(affine=True)`` keeps no running
statistics. ``channels`` (c, 32 in the public net) and ``blocks`` (5) are the only knobs; the zoo
trains narrower nets. Input and output: RGB in 0..255 like the public net (the output is not
clamped). Height and width must be multiples of 4 (two stride-2 levels) and at least 16.

Checkpoints saved by PyTorch < 0.4 carry ``in*.running_mean`` / ``running_var`` buffers that
today's InstanceNorm does not have; ``load_state_dict`` drops them (pytorch/examples'
``neural_style.py`` deletes them the same way). Exportable to ONNX with dynamic batch and sides.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

_STALE_INSTANCE_NORM = re.compile(r"(^|\.)in\d+\.running_(mean|var)$")


class ConvLayer(nn.Module):
    """Reflection padding of ``kernel_size // 2`` then a convolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    """conv-IN-ReLU-conv-IN plus the input (He et al. 2016, as in the Torch blog recipe)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour upsampling by an integer factor, then a reflection-padded convolution
    (instead of a transposed convolution, which makes checkerboard artefacts)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        upsample: int | None = None,
    ) -> None:
        super().__init__()
        self.upsample = upsample
        if upsample:
            # A constant scale factor: the export has no data-dependent output sizes.
            self.upsample_layer = nn.Upsample(mode="nearest", scale_factor=float(upsample))
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = self.upsample_layer(x)
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    """Input and output: RGB in 0..255, NCHW, sides multiples of 4 (at least 16)."""

    def __init__(self, channels: int = 32, blocks: int = 5) -> None:
        super().__init__()
        if channels < 1 or blocks < 0:
            raise ValueError(f"channels must be >= 1 and blocks >= 0, got {channels}, {blocks}")
        c1, c2, c3 = channels, 2 * channels, 4 * channels
        # Initial convolution layers
        self.conv1 = ConvLayer(3, c1, kernel_size=9, stride=1)
        self.in1 = nn.InstanceNorm2d(c1, affine=True)
        self.conv2 = ConvLayer(c1, c2, kernel_size=3, stride=2)
        self.in2 = nn.InstanceNorm2d(c2, affine=True)
        self.conv3 = ConvLayer(c2, c3, kernel_size=3, stride=2)
        self.in3 = nn.InstanceNorm2d(c3, affine=True)
        # Residual layers: res1 .. res{blocks}
        self.blocks = blocks
        for i in range(blocks):
            setattr(self, f"res{i + 1}", ResidualBlock(c3))
        # Upsampling layers
        self.deconv1 = UpsampleConvLayer(c3, c2, kernel_size=3, stride=1, upsample=2)
        self.in4 = nn.InstanceNorm2d(c2, affine=True)
        self.deconv2 = UpsampleConvLayer(c2, c1, kernel_size=3, stride=1, upsample=2)
        self.in5 = nn.InstanceNorm2d(c1, affine=True)
        self.deconv3 = ConvLayer(c1, 3, kernel_size=9, stride=1)
        self.relu = nn.ReLU()
        self.register_load_state_dict_pre_hook(_drop_stale_running_stats)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(image)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        for i in range(self.blocks):
            y = getattr(self, f"res{i + 1}")(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def _drop_stale_running_stats(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any
) -> None:
    """Remove the InstanceNorm running statistics of pre-0.4 checkpoints (never used)."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        if _STALE_INSTANCE_NORM.search(key[len(prefix) :]):
            del state_dict[key]
