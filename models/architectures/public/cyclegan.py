"""CycleGAN's ``ResnetGenerator``, with the parameter names of its public checkpoints.

Layout and indices follow ``ResnetGenerator`` / ``ResnetBlock`` of
junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py`` (Johnson et al.'s residual
transformer, as CycleGAN uses it), so a ``latest_net_G.pth`` (saved as ``net.state_dict()``)
loads with ``strict=True``::

    model.0  ReflectionPad2d(3)      model.1  Conv2d(3, ngf, 7)   model.2 norm   model.3 ReLU
    model.4..9   two Conv2d 3x3/2 (ngf -> 2ngf -> 4ngf), each + norm + ReLU
    model.10..   n_blocks ResnetBlock(4ngf): conv_block = [pad, conv3x3, norm, ReLU,
                 (Dropout), pad, conv3x3, norm], output x + conv_block(x)
    then two ConvTranspose2d 3x3/2 (output_padding 1), each + norm + ReLU,
    ReflectionPad2d(3), Conv2d(ngf, 3, 7), Tanh

``norm`` is the repository's ``--norm``: ``instance`` (CycleGAN's default: InstanceNorm
without affine parameters or running statistics, convolutions with bias), ``batch``
(BatchNorm, convolutions without bias) or ``none``. ``use_dropout`` shifts the indices of each
block's second convolution (it is identity at inference). ``ngf`` is 64 and ``n_blocks`` 9
(``resnet_9blocks``) or 6 (``resnet_6blocks``) in the public models.

Input and output: RGB in [-1, 1] (the repository normalises with mean 0.5, std 0.5); height
and width multiples of 4, at least 8. Checkpoints with InstanceNorm running statistics (saved
before PyTorch 0.4) load: those entries are dropped, as the repository's loader does.
Exportable to ONNX with dynamic batch and sides.
"""

from __future__ import annotations

import torch
from torch import nn

from .compat import drop_stale_instance_norm_stats, make_norm, uses_bias

N_DOWNSAMPLING = 2


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convolutions with norm, plus the input."""

    def __init__(self, dim: int, norm: str, use_dropout: bool, use_bias: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
            make_norm(norm, dim),
            nn.ReLU(),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
            make_norm(norm, dim),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Input and output: NCHW RGB in [-1, 1], sides multiples of 4 (at least 8)."""

    def __init__(
        self,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        use_dropout: bool = False,
        input_nc: int = 3,
        output_nc: int = 3,
    ) -> None:
        super().__init__()
        if ngf < 1 or n_blocks < 0:
            raise ValueError(f"ngf must be >= 1 and n_blocks >= 0, got {ngf}, {n_blocks}")
        bias = uses_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=bias),
            make_norm(norm, ngf),
            nn.ReLU(),
        ]
        for i in range(N_DOWNSAMPLING):
            width = ngf * 2**i
            layers += [
                nn.Conv2d(width, width * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                make_norm(norm, width * 2),
                nn.ReLU(),
            ]
        deep = ngf * 2**N_DOWNSAMPLING
        layers += [ResnetBlock(deep, norm, use_dropout, bias) for _ in range(n_blocks)]
        for i in range(N_DOWNSAMPLING):
            width = ngf * 2 ** (N_DOWNSAMPLING - i)
            layers += [
                nn.ConvTranspose2d(
                    width,
                    width // 2,
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                    bias=bias,
                ),
                make_norm(norm, width // 2),
                nn.ReLU(),
            ]
        layers += [
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)
        self.register_load_state_dict_pre_hook(drop_stale_instance_norm_stats)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


def resnet_generator(
    ngf: int = 64, n_blocks: int = 9, norm: str = "instance", use_dropout: bool = False
) -> ResnetGenerator:
    """The registry's factory: an RGB -> RGB ``ResnetGenerator`` (``resnet_{n_blocks}blocks``)."""
    return ResnetGenerator(ngf=ngf, n_blocks=n_blocks, norm=norm, use_dropout=use_dropout)
