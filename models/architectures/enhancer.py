"""A small residual CNN that repairs low contrast, colour casts and noise in product photos.

Two paths: a global colour path (a 3x3 colour matrix and bias predicted from pooled features,
which undoes white-balance and contrast errors that need the whole image to judge) and a
local residual path (a half-resolution body with gated residual blocks, which removes noise).
Fully convolutional; sides must be even (one stride-2 level). Exportable to ONNX with dynamic
batch, height and width.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GatedResidualBlock(nn.Module):
    """conv-relu-conv with a channel gate computed from the block's global average."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.gate = nn.Sequential(
            nn.Linear(channels, max(4, channels // 4)),
            nn.ReLU(inplace=True),
            nn.Linear(max(4, channels // 4), channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        gate = torch.sigmoid(self.gate(y.mean(dim=(2, 3))))
        return x + y * gate[:, :, None, None]


def _pixel_shuffle_2(z: torch.Tensor) -> torch.Tensor:
    """``pixel_shuffle(z, 2)`` as two single-axis moves (a copy, so exactly the same values).

    For export: ONNX Runtime runs the ``DepthToSpace`` that PyTorch exports for a pixel
    shuffle through a generic 6-D shuffle, 5.2 ms for 64 -> 16 channels at 256 x 256 against
    1.7 ms for these two 5-D transposes (one thread)."""
    n, channels, h, w = z.shape
    c = channels // 4
    z = z.reshape(n, 2 * c, 2, h, w).permute(0, 1, 3, 4, 2).reshape(n, c, 2, h, 2 * w)
    return z.permute(0, 1, 3, 2, 4).reshape(n, c, 2 * h, 2 * w)


class Enhancer(nn.Module):
    """Input and output: RGB in [0, 1], NCHW, even height and width."""

    def __init__(self, channels: int = 16, blocks: int = 4) -> None:
        super().__init__()
        wide = 2 * channels
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.down = nn.Conv2d(channels, wide, 3, stride=2, padding=1)
        self.body = nn.Sequential(*[GatedResidualBlock(wide) for _ in range(blocks)])
        self.up = nn.Conv2d(wide, 4 * channels, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.fuse = nn.Conv2d(2 * channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        self.colour = nn.Linear(wide, 12)
        # Start as the identity: zero colour correction and zero residual.
        nn.init.zeros_(self.colour.weight)
        nn.init.zeros_(self.colour.bias)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        self.register_buffer("eye", torch.eye(3), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        head = F.relu(self.head(image))
        body = self.body(F.relu(self.down(head)))
        if torch.compiler.is_exporting() and not self.training:
            # the same function in ops ONNX Runtime runs faster: the shuffle as transposes,
            # and the fuse conv split over its two inputs instead of a concatenation
            up = _pixel_shuffle_2(self.up(body))
            split = head.shape[1]
            fused = F.conv2d(head, self.fuse.weight[:, :split], self.fuse.bias, padding=1)
            fused = fused + F.conv2d(up, self.fuse.weight[:, split:], padding=1)
        else:
            up = self.shuffle(self.up(body))
            fused = self.fuse(torch.cat([head, up], dim=1))
        residual = self.tail(F.relu(fused))
        colour = self.colour(body.mean(dim=(2, 3)))
        matrix = colour[:, :9].reshape(-1, 3, 3) + self.eye
        corrected = torch.einsum("nij,njhw->nihw", matrix, image) + colour[:, 9:, None, None]
        return corrected + residual
