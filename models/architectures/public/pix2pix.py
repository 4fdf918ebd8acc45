"""pix2pix's ``UnetGenerator``, with the parameter names of its public checkpoints.

Layout and indices follow ``UnetGenerator`` / ``UnetSkipConnectionBlock`` of
junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py`` (Isola et al. 2017), so a pix2pix
``latest_net_G.pth`` loads with ``strict=True``. The U-Net is built inside out as nested
blocks, hence keys such as ``model.model.1.model.3.model.1.weight``:

- outermost block: ``[Conv 4x4/2, <inner>, ReLU, ConvTranspose 4x4/2, Tanh]`` (no skip)
- middle blocks:   ``[LeakyReLU(0.2), Conv 4x4/2, norm, <inner>, ReLU, ConvTranspose, norm,
  (Dropout)]``, output ``cat([x, block(x)])``
- innermost block: ``[LeakyReLU(0.2), Conv 4x4/2, ReLU, ConvTranspose, norm]``, same skip

Widths: ngf, 2ngf, 4ngf, then 8ngf for the ``num_downs - 4`` deepest levels. ``unet_256``
has ``num_downs`` 8 and ``unet_128`` 7; both are registered separately because the side rule
depends on it. ``norm`` is ``batch`` by default (BatchNorm with running statistics, used in
eval mode), or ``instance`` / ``none`` as in the repository. Dropout sits at the end of a
block, so it does not change any key, and it is identity at inference.

Input and output: RGB in [-1, 1]; height and width multiples of ``2**num_downs`` (the
bottleneck is 1x1 for a ``2**num_downs`` input). Note: the repository's ``test.py`` runs the
net in train mode unless given ``--eval`` (BatchNorm then normalises with each image's own
statistics and dropout stays on); this module is the net in eval mode, like ``--eval``.
Exportable to ONNX with dynamic batch and sides.
"""

from __future__ import annotations

import torch
from torch import nn

from .compat import drop_stale_instance_norm_stats, make_norm, require, uses_bias


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down, the inner levels, up; a skip concatenation unless outermost."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        bias = uses_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        layers: list[nn.Module]
        if outermost:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, nn.ReLU(), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(
                inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias
            )
            layers = [nn.LeakyReLU(0.2), downconv, nn.ReLU(), upconv, make_norm(norm, outer_nc)]
        else:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(
                inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias
            )
            layers = [
                nn.LeakyReLU(0.2),
                downconv,
                make_norm(norm, inner_nc),
                submodule,
                nn.ReLU(),
                upconv,
                make_norm(norm, outer_nc),
            ]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        # The public block's first LeakyReLU is in place, so its concatenation carries
        # leaky_relu(x); the parent's ReLU makes that the same as x (relu(leaky(x)) == relu(x)).
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """Input and output: NCHW RGB in [-1, 1], sides multiples of ``2**num_downs``."""

    def __init__(
        self,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = False,
        input_nc: int = 3,
        output_nc: int = 3,
    ) -> None:
        super().__init__()
        if num_downs < 5 or ngf < 1:
            raise ValueError(f"num_downs must be >= 5 and ngf >= 1, got {num_downs}, {ngf}")
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(
                ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout
            )
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(
            output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm
        )
        self.register_load_state_dict_pre_hook(drop_stale_instance_norm_stats)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


def unet_256(
    ngf: int = 64, norm: str = "batch", use_dropout: bool = False, num_downs: int = 8
) -> UnetGenerator:
    """The registry's ``pix2pix-unet256`` factory (``--netG unet_256``: 8 levels)."""
    require("pix2pix-unet256", "num_downs", num_downs, 8, "'pix2pix-unet128' for num_downs 7")
    return UnetGenerator(num_downs=8, ngf=ngf, norm=norm, use_dropout=use_dropout)


def unet_128(
    ngf: int = 64, norm: str = "batch", use_dropout: bool = False, num_downs: int = 7
) -> UnetGenerator:
    """The registry's ``pix2pix-unet128`` factory (``--netG unet_128``: 7 levels)."""
    require("pix2pix-unet128", "num_downs", num_downs, 7, "'pix2pix-unet256' for num_downs 8")
    return UnetGenerator(num_downs=7, ngf=ngf, norm=norm, use_dropout=use_dropout)
