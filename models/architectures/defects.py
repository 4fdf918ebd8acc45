"""Small U-Nets that find local defects in a product photo and paint them out.

Both nets have three stride-2 levels, so height and width must be multiples of 8; the
coarsest level's cells are then exactly the 8x8 blocks of a JPEG grid anchored at the top
left, which is where blocking artifacts live. Fully convolutional, no data-dependent control
flow: exportable to ONNX with dynamic batch, height and width.

An export (``torch.compiler.is_exporting()``, eval mode) writes three exact rewrites of the
same function, for ONNX Runtime's sake (the converter verifies them against eager PyTorch):
the decoder's 1x1 fusion before its upsample, the residual identities folded into the
convs' centre taps, and the block branch's ``pixel_unshuffle`` + 1x1 conv as one strided
conv. The detector's fp32 export got 1.2x faster, its int8 one 1.3x (benchmarks/RESULTS.md).
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


def _folded(block: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a :func:`_conv` block with its batch norm folded in (eval mode)."""
    conv, norm = block[0], block[1]
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return conv.weight * scale[:, None, None, None], norm.bias - norm.running_mean * scale


def _exporting(module: nn.Module) -> bool:
    return torch.compiler.is_exporting() and not module.training


def _plus_residual(block: nn.Sequential, y: torch.Tensor) -> torch.Tensor:
    """``y + block(y)``; an export folds the identity into the conv's centre tap, so the
    graph has one conv and no Add (ONNX Runtime fuses such an Add into an fp32 conv but not
    into a quantized one, where each costs a pass over the tensor)."""
    if not _exporting(block):
        return y + block(y)
    weight, bias = _folded(block)
    centre = weight.shape[-1] // 2
    channels = torch.arange(weight.shape[0])
    identity = torch.zeros_like(weight)
    identity[channels, channels, centre, centre] = 1.0
    return F.conv2d(y, weight + identity, bias, padding=centre)


class _Stage(nn.Module):
    """conv-BN-ReLU then a residual conv-BN, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(cin, cout, stride)
        self.conv2 = _conv(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv1(x))
        return F.relu(_plus_residual(self.conv2, y))


class _Merge(nn.Module):
    """Decoder step: 1x1 fusion of the upsampled coarse features with the skip, then a 3x3
    residual conv (half the cost of a conv pair on the concatenation)."""

    def __init__(self, coarse: int, skip: int, cout: int) -> None:
        super().__init__()
        self.fuse = _conv(coarse + skip, cout, kernel=1)
        self.conv = _conv(cout, cout)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if _exporting(self):
            y = F.relu(self._fuse_upsampled(coarse, skip))
        else:
            up = F.interpolate(coarse, scale_factor=2.0, mode="nearest")
            y = F.relu(self.fuse(torch.cat([up, skip], 1)))
        return F.relu(_plus_residual(self.conv, y))

    def _fuse_upsampled(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``fuse(cat(up(coarse), skip))`` as ``up(Wc * coarse) + Ws * skip + b``: a 1x1 conv
        commutes with nearest upsampling, so the coarse half runs on a quarter of the pixels,
        the upsample moves ``cout`` channels instead of ``coarse`` ones and no concatenation
        is made (exports only: ONNX Runtime's Concat and its NHWC uint8 Resize are the
        decoder's slowest non-conv steps). The batch norm is folded in (eval mode)."""
        weight, bias = _folded(self.fuse)
        split = coarse.shape[1]
        low = F.conv2d(coarse, weight[:, :split])
        up = F.interpolate(low, scale_factor=2.0, mode="nearest")
        return up + F.conv2d(skip, weight[:, split:], bias)


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
        if _exporting(self):
            block = self.block[1:](self._block_conv(x[:, :3]))
        else:
            block = self.block(F.pixel_unshuffle(x[:, :3], 8))
        skips = []
        for stage in self.enc:
            x = stage(x)
            skips.append(x)
        x = F.relu(skips.pop() + block)
        for stage in self.dec:
            x = stage(x, skips.pop())
        return x

    def _block_conv(self, rgb: torch.Tensor) -> torch.Tensor:
        """``block[0](pixel_unshuffle(rgb, 8))`` as one 8x8 stride-8 conv (exports only): a
        1x1 conv over the unshuffled channels ``c * 64 + 8 * i + j`` is that conv with its
        weight viewed as (out, 3, 8, 8). It spares the 6-D transpose of ``pixel_unshuffle``
        (ONNX Runtime: 1.4 ms of the detector's 33 at 256x256). Batch norm folded (eval)."""
        weight, bias = _folded(self.block[0])
        return F.conv2d(rgb, weight.reshape(-1, 3, 8, 8), bias, stride=8)


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


def _boxes(x: torch.Tensor, sizes: tuple[int, ...]) -> list[torch.Tensor]:
    """Means over ``size`` x ``size`` windows of ``x``, one per size (zeros beyond the border).

    Each pass is a depthwise convolution with constant weights rather than ``avg_pool2d``:
    the same numbers (to float rounding), but ONNX Runtime's stride-1 ``AveragePool`` on a
    dynamic-size graph costs O(size) per pixel without vectorising (95 of the inpainter's
    150 ms at 256x256), while its depthwise conv runs the whole fill in under 10 ms; PyTorch
    is faster this way too. Sizes go in pairs: one conv filters ``x`` twice over, the second
    copy with the smaller window zero-padded to the larger one's width. ONNX Runtime pads a
    depthwise conv's channels to a block of 8 anyway, so for 4 channels the pair costs what
    the larger size alone does (the zero taps add exact zeros)."""
    boxes = []
    for first in range(0, len(sizes), 2):
        pair = sizes[first : first + 2]
        width = max(pair)
        channels = x.shape[1]
        row = torch.zeros((channels * len(pair), 1, 1, width), dtype=x.dtype, device=x.device)
        for k, size in enumerate(pair):
            start = (width - size) // 2
            row[k * channels : (k + 1) * channels, :, :, start : start + size] = 1.0 / size
        copies = x if len(pair) == 1 else torch.cat([x] * len(pair), 1)
        y = F.conv2d(copies, row, padding=(0, width // 2), groups=row.shape[0])
        y = F.conv2d(y, row.transpose(2, 3), padding=(width // 2, 0), groups=row.shape[0])
        # slices, not torch.split: an ONNX Split is quantizable, and int8 would then quantize
        # the float box means between the float convs and the float fill arithmetic
        boxes += [y[:, k * channels : (k + 1) * channels] for k in range(len(pair))]
    return boxes


def masked_fill(image: torch.Tensor, mask: torch.Tensor, sizes=(3, 7, 15, 31)) -> torch.Tensor:
    """Each masked pixel takes the mean of the unmasked pixels of the smallest window (of
    ``sizes``) in which they weigh at least 10%, else keeps its value: a cheap, exportable
    diffusion fill.

    Written as sums of 0/1-weighted box filters and one ``where`` rather than a chain of four:
    exactly one term per pixel is not zero, so the sums are exact and the result is bit for
    bit the chain's, while ONNX Runtime runs the multiplies and adds vectorised and its
    ``Where`` is not (0.45-0.5 ms each on 3 x 256 x 256, single-threaded)."""
    keep = 1.0 - mask
    colours = image.shape[1]
    # One box filter over (image * keep, keep) per size: 4 channels cost what 1 does in ONNX
    # Runtime's blocked layout (16 convs -> 8), and sizes go in pairs (8 convs -> 4).
    stack = torch.cat([image * keep, keep], 1)
    ordered = tuple(sorted(sizes, reverse=True))
    boxes = dict(zip(ordered, _boxes(stack, ordered), strict=True))
    chosen, open_ = None, None  # (sum, weight) of the window each pixel took; 1: none yet
    for size in sorted(sizes):
        box = boxes[size]
        take = (box[:, colours:] >= 0.1).to(image.dtype)
        if chosen is None:
            chosen, open_ = take * box, 1.0 - take
        else:
            take = take * open_
            chosen, open_ = chosen + take * box, open_ - take
    # a taken window weighs >= 0.1: the open pixels' zero weight is the only one to guard
    return torch.where(open_ > 0.5, image, chosen[:, :colours] / (chosen[:, colours:] + open_))


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
