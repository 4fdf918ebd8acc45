"""A conditional VAE for 64x64 product photos: the decoder (deployable) and its encoder.

Decoder: ``(z, category, colour) -> image`` in [-1, 1], the same network shape as the GAN
generator (label embeddings, conditional batch norm, four x2 transposed-conv stages); only the
training differs. With ``z`` drawn from the prior N(0, I) it is a generator.

Encoder (training only, not in the zoo checkpoint): strided convs with batch norm, then the
flattened 4x4 features and the label embeddings give the mean and log-variance of q(z | x, y).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from vetrina.models.architectures.gan import ConditionalGenerator, LabelEmbedding


class ConditionalDecoder(ConditionalGenerator):
    """``forward(z (N, z_dim), category (N,) int64, colour (N,) int64) -> (N, 3, 64, 64)``.

    The output is an RGB image in [-1, 1] (tanh); ``(image + 1) / 2`` is in [0, 1].
    """

    def __init__(self, z_dim: int = 32, channels: int = 64) -> None:
        super().__init__(z_dim=z_dim, channels=channels)


class Encoder(nn.Module):
    """Training-only: ``forward(image [-1, 1], category, colour) -> (mean, logvar)``.

    With ``grey=True`` the encoder sees only the luminance of the image: the latent then cannot
    carry the hue, which the decoder must take from the colour label.
    """

    def __init__(self, z_dim: int = 32, channels: int = 64, grey: bool = False) -> None:
        super().__init__()
        c = channels
        self.grey = grey
        widths = (1 if grey else 3, c // 4, c // 2, c, 2 * c)
        layers: list[nn.Module] = []
        for cin, cout in itertools.pairwise(widths):  # 64 -> 4 px
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout)]
            layers.append(nn.LeakyReLU(0.2))
        self.body = nn.Sequential(*layers)
        self.labels = LabelEmbedding(16)
        self.head = nn.Linear(2 * c * 16 + 32, 2 * z_dim)
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), False)

    def forward(
        self, image: torch.Tensor, category: torch.Tensor, colour: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.grey:
            image = (image * self.luma).sum(dim=1, keepdim=True)
        h = self.body(image).flatten(1)
        stats = self.head(torch.cat([h, self.labels(category, colour)], dim=1))
        mean, logvar = stats.chunk(2, dim=1)
        return mean, logvar.clamp(-10.0, 4.0)
