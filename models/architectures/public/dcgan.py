"""The DCGAN generator of pytorch/examples ``dcgan/main.py``, with its parameter names.

Radford et al. 2016, as pytorch/examples (and the PyTorch DCGAN tutorial) write it: one
``nn.Sequential`` called ``main``, so ``netG_epoch_N.pth`` (saved as ``netG.state_dict()``)
loads with ``strict=True``::

    main.0  ConvTranspose2d(nz, 8ngf, 4, 1, 0)   main.1  BatchNorm2d   main.2  ReLU  -> 4x4
    main.3  ConvTranspose2d(8ngf, 4ngf, 4, 2, 1) main.4  BatchNorm2d   main.5  ReLU  -> 8x8
    main.6  ConvTranspose2d(4ngf, 2ngf, 4, 2, 1) main.7  BatchNorm2d   main.8  ReLU  -> 16x16
    main.9  ConvTranspose2d(2ngf, ngf, 4, 2, 1)  main.10 BatchNorm2d   main.11 ReLU  -> 32x32
    main.12 ConvTranspose2d(ngf, 3, 4, 2, 1)     main.13 Tanh                        -> 64x64

No convolution has a bias. Defaults are the script's: ``nz`` 100, ``ngf`` 64 (``nc`` 3).
Input: the latent ``z`` as (N, nz, 1, 1), standard normal; output: (N, 3, 64, 64) RGB in
[-1, 1]. BatchNorm uses its running statistics (eval mode). Exportable to ONNX with a
dynamic batch.
"""

from __future__ import annotations

import torch
from torch import nn

LEVELS = 4  # ConvTranspose + BatchNorm + ReLU stages before the output layer


class Generator(nn.Module):
    """z (N, nz, 1, 1) -> image (N, nc, 64, 64) in [-1, 1]."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        if nz < 1 or ngf < 1 or nc < 1:
            raise ValueError(f"nz, ngf and nc must be >= 1, got {nz}, {ngf}, {nc}")
        self.nz = nz  # the latent width: vetrina's exporter reads it to make example inputs
        layers: list[nn.Module] = []
        width_in = nz
        for level in range(LEVELS):
            width = ngf * 2 ** (LEVELS - 1 - level)
            first = level == 0
            layers += [
                nn.ConvTranspose2d(
                    width_in, width, 4, 1 if first else 2, 0 if first else 1, bias=False
                ),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
            width_in = width
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


def dcgan_generator(nz: int = 100, ngf: int = 64) -> Generator:
    """The registry's factory: an RGB (``nc`` 3) DCGAN generator."""
    return Generator(nz=nz, ngf=ngf, nc=3)
