"""Small U-Nets that find local defects in a product photo and paint them out.

Both nets have three stride-2 levels, so height and width must be multiples of 8; the
coarsest level's cells are then exactly the 8x8 blocks of a JPEG grid anchored at the top
left, which is where blocking artifacts live. Fully convolutional, no data-dependent control
flow: exportable to ONNX with dynamic batch, height and width.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _conv(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    """conv (no bias) + batch norm; the norm folds into the conv when exported."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    )


class _Stage(nn.Module):
    """conv-BN-ReLU then a residual conv-BN, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(cin, cout, stride)
        self.conv2 = _conv(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv1(x))
        return F.relu(y + self.conv2(y))


class _Merge(nn.Module):
    """Decoder step: 1x1 fusion of the upsampled coarse features with the skip, then a 3x3
    residual conv (half the cost of a conv pair on the concatenation)."""

    def __init__(self, coarse: int, skip: int, cout: int) -> None:
        super().__init__()
        self.fuse = _conv(coarse + skip, cout, kernel=1)
        self.conv = _conv(cout, cout)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse, scale_factor=2.0, mode="nearest")
        y = F.relu(self.fuse(torch.cat([up, skip], 1)))
        return F.relu(y + self.conv(y))


class _UNet(nn.Module):
    """Encoder widths (c, 2c, 4c, 4c) at strides 1, 2, 4, 8; nearest-upsampling decoder.

    A block branch sees each 8x8 block of the RGB input whole (``pixel_unshuffle`` by 8, then
    1x1 convs: it can learn the DCT and spot quantised blocks) and adds its features to the
    stride-8 level, whose cells are those blocks.
    """

    def __init__(self, cin: int, channels: int) -> None:
        super().__init__()
        c = channels
        widths = (c, 2 * c, 4 * c, 4 * c)
        self.block = nn.Sequential(
            _conv(3 * 64, widths[3], kernel=1), nn.ReLU(), _conv(widths[3], widths[3], kernel=1)
        )
        self.enc = nn.ModuleList(
            [_Stage(cin, widths[0])]
            + [_Stage(widths[i - 1], widths[i], stride=2) for i in range(1, 4)]
        )
        self.dec = nn.ModuleList(
            [_Merge(widths[i + 1], widths[i], widths[i]) for i in reversed(range(3))]
        )
        self.out_channels = widths[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = self.block(F.pixel_unshuffle(x[:, :3], 8))
        skips = []
        for stage in self.enc:
            x = stage(x)
            skips.append(x)
        x = F.relu(skips.pop() + block)
        for stage in self.dec:
            x = stage(x, skips.pop())
        return x


class DefectDetector(nn.Module):
    """RGB [0, 1] (N, 3, H, W) -> defect probability mask (N, 1, H, W) in [0, 1].

    The sigmoid is inside, so an exported model outputs the mask itself; threshold at 0.5.
    """

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.body = _UNet(3, channels)
        self.head = nn.Conv2d(channels, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, -2.0)  # start near "no defect" (the common case)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.body(image - 0.5)))


def _box(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a ``size`` x ``size`` window (separable; zeros beyond the border).

    Written as two depthwise convolutions with constant weights rather than ``avg_pool2d``:
    the same numbers (to float rounding), but ONNX Runtime's stride-1 ``AveragePool`` on a
    dynamic-size graph costs O(size) per pixel without vectorising (95 of the inpainter's
    150 ms at 256x256), while its depthwise conv runs the whole fill in under 10 ms; PyTorch
    is faster this way too."""
    channels = x.shape[1]
    weight = torch.full((channels, 1, 1, size), 1.0 / size, dtype=x.dtype, device=x.device)
    x = F.conv2d(x, weight, padding=(0, size // 2), groups=channels)
    return F.conv2d(x, weight.transpose(2, 3), padding=(size // 2, 0), groups=channels)


def masked_fill(image: torch.Tensor, mask: torch.Tensor, sizes=(3, 7, 15, 31)) -> torch.Tensor:
    """Each masked pixel takes the mean of the unmasked pixels of the smallest window (of
    ``sizes``) in which they weigh at least 10%: a cheap, exportable diffusion fill."""
    keep = 1.0 - mask
    fill = image
    for size in reversed(sizes):
        weight = _box(keep, size)
        mean = _box(image * keep, size) / weight.clamp(min=1e-4)
        fill = torch.where(weight >= 0.1, mean, fill)
    return fill


class Inpainter(nn.Module):
    """(RGB [0, 1] (N, 3, H, W), mask [0, 1] (N, 1, H, W)) -> restored RGB (N, 3, H, W).

    Unlike ``cv2.inpaint``, which throws the masked pixels away and diffuses the surroundings
    into the hole, this net sees the defective pixels too: a semi-transparent watermark or a
    tinted stain still carries the photo underneath, and JPEG blocks are a damaged version of
    it, so they can be *undone* rather than guessed. Where a defect is opaque (a scratch, a
    speck of dust) it starts from :func:`masked_fill` of the surroundings instead: the net
    predicts a per-pixel gate between the input and that fill plus a correction, and
    composites ``out = image * (1 - mask) + pred * mask`` with
    ``pred = clamp(g * image + (1 - g) * fill + delta)``, so nothing outside the mask changes
    (a soft mask blends).
    """

    def __init__(self, channels: int = 24) -> None:
        super().__init__()
        self.body = _UNet(7, channels)
        self.head = nn.Conv2d(channels, 4, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        nn.init.constant_(self.head.bias[3:], 2.0)  # start close to the input (gate 0.88)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        fill = masked_fill(image, mask)
        out = self.head(self.body(torch.cat([image - 0.5, mask, fill - 0.5], 1)))
        gate = torch.sigmoid(out[:, 3:])
        pred = torch.clamp(gate * image + (1.0 - gate) * fill + out[:, :3], 0.0, 1.0)
        return image * (1.0 - mask) + pred * mask
