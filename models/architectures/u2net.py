"""U²-Net salient-object nets with the parameter names of xuebinqin/U-2-Net's release files.

Written from the public definition in ``model/u2net.py`` (classes ``REBNCONV``, ``RSU7`` ..
``RSU4``, ``RSU4F``, ``U2NET``, ``U2NETP``) so that ``u2netp.pth`` (1.1 M parameters) and
``u2net.pth`` (44 M) — bare state_dicts — load with ``strict=True``:

- ``REBNCONV``: 3x3 conv (padding = dilation) -> BatchNorm -> ReLU, as ``conv_s1`` / ``bn_s1``;
- a residual U-block ``RSU`` of depth L (7, 6, 5, 4): ``rebnconvin`` (in -> out), an inner
  U-Net ``rebnconv1`` .. ``rebnconvL`` (max-pooling, ceil mode, after levels 1 .. L-2; the
  last level dilated 2), decoder ``rebnconv{L-1}d`` .. ``rebnconv1d`` on concatenations with
  bilinear upsampling; the output is added to ``rebnconvin``'s;
- ``RSU4F``: the same with dilations 1, 2, 4, 8 instead of pooling (full resolution);
- the outer U-Net: ``stage1`` .. ``stage6`` (pooled between stages), ``stage5d`` ..
  ``stage1d``, one 3x3 ``side1`` .. ``side6`` conv per decoder level (``side6`` on
  ``stage6``) upsampled to the input size, and a 1x1 ``outconv`` fusing the six into ``d0``.

The public ``forward`` returns the seven sigmoid maps (d0 .. d6). Here ``forward`` returns the
fused map d0 only, as a probability in [0, 1] of shape (N, 1, H, W) (what an export needs);
:meth:`U2Net.side_logits` gives all seven as logits for deep supervision in training.

The net pools five times (``stage6`` and every RSU's deepest level run at 1/32 of the input),
so height and width must be multiples of 32; at such sizes the bilinear upsampling to the
target size used here equals the public ``scale_factor`` upsampling exactly.

Input: RGB. The zoo model trained here takes RGB in [0, 1] as is; the public checkpoints
expect ImageNet normalisation (``(x / max(x) - mean) / std``, mean 0.485, 0.456, 0.406, std
0.229, 0.224, 0.225) and their outputs are usually min-max rescaled per image afterwards.
Fully convolutional, no data-dependent control flow: exportable with dynamic batch and sides.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: (mid, out) channels of the encoder stages 1..6 and the decoder stages 5d..1d, and the input
#: channels of side1..side6, for each variant of the public repository.
_VARIANTS: dict[str, dict[str, tuple[tuple[int, int], ...]]] = {
    "u2netp": {
        "encoder": ((16, 64),) * 6,
        "decoder": ((16, 64),) * 5,
    },
    "u2net": {
        "encoder": ((32, 64), (32, 128), (64, 256), (128, 512), (256, 512), (256, 512)),
        "decoder": ((256, 512), (128, 256), (64, 128), (32, 64), (16, 64)),
    },
}
#: RSU depth per outer level 1..6 (0: the dilated RSU4F); decoder level i uses level i's.
_DEPTHS = (7, 6, 5, 4, 0, 0)


def _upsample_like(x: torch.Tensor, like: torch.Tensor, factor: int) -> torch.Tensor:
    """``x`` resized (bilinear) to ``like``'s size, which the net's sizes (multiples of 32)
    make exactly ``factor`` times ``x``'s. Eager code resizes to the size, as the public
    definition does; an export writes the constant factor, so ONNX gets a ``Resize`` with
    constant scales (ONNX Runtime runs it in its blocked NCHWc layout, not between two
    reorders, 15 % of the net's time) instead of sizes computed from shapes at run time."""
    if torch.compiler.is_exporting():
        return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, stride=2, ceil_mode=True)


class REBNCONV(nn.Module):
    """Dilated 3x3 conv, batch norm, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, dirate: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dirate, dilation=dirate)
        self.bn_s1 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn_s1(self.conv_s1(x)))


class RSU(nn.Module):
    """Residual U-block of ``depth`` levels (the public RSU7, RSU6, RSU5, RSU4)."""

    def __init__(self, depth: int, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        if depth < 3:
            raise ValueError(f"an RSU needs at least 3 levels, got {depth}")
        self.depth = depth
        self.rebnconvin = REBNCONV(in_ch, out_ch)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch)
        for i in range(2, depth):
            setattr(self, f"rebnconv{i}", REBNCONV(mid_ch, mid_ch))
        setattr(self, f"rebnconv{depth}", REBNCONV(mid_ch, mid_ch, dirate=2))
        for i in range(depth - 1, 1, -1):
            setattr(self, f"rebnconv{i}d", REBNCONV(2 * mid_ch, mid_ch))
        self.rebnconv1d = REBNCONV(2 * mid_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = self.rebnconvin(x)
        skips = [self.rebnconv1(top)]
        for i in range(2, self.depth):
            skips.append(getattr(self, f"rebnconv{i}")(_pool(skips[-1])))
        y = getattr(self, f"rebnconv{self.depth}")(skips[-1])
        y = getattr(self, f"rebnconv{self.depth - 1}d")(torch.cat((y, skips[-1]), 1))
        for i in range(self.depth - 2, 0, -1):
            skip = skips[i - 1]
            y = getattr(self, f"rebnconv{i}d")(torch.cat((_upsample_like(y, skip, 2), skip), 1))
        return y + top


class RSU4F(nn.Module):
    """Residual U-block at full resolution: dilations 1, 2, 4, 8 instead of pooling."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=4)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=8)
        self.rebnconv3d = REBNCONV(2 * mid_ch, mid_ch, dirate=4)
        self.rebnconv2d = REBNCONV(2 * mid_ch, mid_ch, dirate=2)
        self.rebnconv1d = REBNCONV(2 * mid_ch, out_ch, dirate=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = self.rebnconvin(x)
        y1 = self.rebnconv1(top)
        y2 = self.rebnconv2(y1)
        y3 = self.rebnconv3(y2)
        y = self.rebnconv3d(torch.cat((self.rebnconv4(y3), y3), 1))
        y = self.rebnconv2d(torch.cat((y, y2), 1))
        return self.rebnconv1d(torch.cat((y, y1), 1)) + top


def _block(depth: int, in_ch: int, mid_ch: int, out_ch: int) -> nn.Module:
    return RSU4F(in_ch, mid_ch, out_ch) if depth == 0 else RSU(depth, in_ch, mid_ch, out_ch)


class U2Net(nn.Module):
    """RGB (N, 3, H, W), H and W multiples of 32 -> salient-object probability (N, 1, H, W).

    ``variant`` "u2netp" (the public U2NETP) or "u2net" (U2NET). ``imagenet_input``: the
    input is RGB in [0, 1] and the net normalises it with ImageNet's mean and std first, as the
    public checkpoints were trained (constants in the graph, not parameters: the state dict is
    the public one). The zoo model takes [0, 1] as is.

    ``inner_scale`` k > 1 runs the net at 1/k of the input size: the input is average-pooled
    by k and the probability upsampled back (bilinear). A net trained at 128 px then serves a
    320 px input convention (rembg's) at the scale it learned; only ``forward`` changes, and
    the weights are the same.
    """

    def __init__(
        self,
        variant: str = "u2netp",
        in_ch: int = 3,
        out_ch: int = 1,
        imagenet_input: bool = False,
        inner_scale: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(inner_scale, int) or not 1 <= inner_scale <= 8:
            raise ValueError(f"inner_scale must be an int in 1..8, got {inner_scale!r}")
        self.imagenet_input = imagenet_input
        self.inner_scale = inner_scale
        if variant not in _VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(_VARIANTS)}")
        widths = _VARIANTS[variant]
        cin = in_ch
        enc_out = []
        for level, (mid, out) in enumerate(widths["encoder"], start=1):
            setattr(self, f"stage{level}", _block(_DEPTHS[level - 1], cin, mid, out))
            enc_out.append(out)
            cin = out
        dec_out = {}
        for level, (mid, out) in zip(range(5, 0, -1), widths["decoder"], strict=True):
            skip = enc_out[level - 1]
            setattr(self, f"stage{level}d", _block(_DEPTHS[level - 1], cin + skip, mid, out))
            dec_out[level] = out
            cin = out
        for level in range(1, 6):
            setattr(self, f"side{level}", nn.Conv2d(dec_out[level], out_ch, 3, padding=1))
        self.side6 = nn.Conv2d(enc_out[5], out_ch, 3, padding=1)
        # U2NET's outconv writes 1 channel, U2NETP's out_ch: the same for the one-channel nets.
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def side_logits(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logits (d0, d1, .., d6), each (N, 1, H, W): d0 fused, d1 finest side .. d6 coarsest.

        The public net returns their sigmoids; U-2-Net trains with BCE on all seven.
        """
        skips = []
        x = image
        if self.imagenet_input:
            mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        for level in range(1, 6):
            x = getattr(self, f"stage{level}")(x)
            skips.append(x)
            x = _pool(x)
        deepest = self.stage6(x)
        decoded = {}
        y = deepest
        for level in range(5, 0, -1):
            skip = skips[level - 1]
            y = getattr(self, f"stage{level}d")(torch.cat((_upsample_like(y, skip, 2), skip), 1))
            decoded[level] = y
        sides = [self.side1(decoded[1])]
        for level in range(2, 6):
            side = getattr(self, f"side{level}")(decoded[level])
            sides.append(_upsample_like(side, image, 2 ** (level - 1)))
        sides.append(_upsample_like(self.side6(deepest), image, 32))
        fused = self.outconv(torch.cat(sides, 1))
        return (fused, *sides)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        k = self.inner_scale
        if k == 1:
            return torch.sigmoid(self.side_logits(image)[0])
        small = F.avg_pool2d(image, k)
        prob = torch.sigmoid(self.side_logits(small)[0])
        return F.interpolate(prob, scale_factor=float(k), mode="bilinear", align_corners=False)


def u2netp(imagenet_input: bool = False, inner_scale: int = 1) -> U2Net:
    """The registry's ``u2netp`` factory (public U2NETP: RGB in, one map out)."""
    return U2Net("u2netp", imagenet_input=imagenet_input, inner_scale=inner_scale)


def u2net(imagenet_input: bool = False, inner_scale: int = 1) -> U2Net:
    """The registry's ``u2net`` factory (public U2NET: RGB in, one map out)."""
    return U2Net("u2net", imagenet_input=imagenet_input, inner_scale=inner_scale)
