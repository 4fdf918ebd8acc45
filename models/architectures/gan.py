"""A class-conditional GAN for 64x64 product photos: the generator (deployable) and its critic.

Generator: ``(z, category, colour) -> image`` in [-1, 1]. The two labels are looked up in
embedding tables (ONNX ``Gather``) and concatenated with ``z``; that vector is used twice: as
the input of the first linear layer, and as the source of the gain and bias of every batch norm
(conditional batch norm with the latent shared into every stage, as in BigGAN), so each
upsampling stage knows what to draw and the latent shapes every scale. Four upsampling stages
take 4x4 to 64x64, widths ``channels, channels, channels/2, channels/4, channels/8``: 4x4
transposed convs (``upsample="transposed"``, the first zoo GAN), or nearest-neighbour x2 then
a 3x3 conv (``upsample="nearest"``), which cannot draw the transposed conv's checkerboard
(uneven kernel overlap; Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").

Discriminator (training only, never exported nor saved in the zoo checkpoint): spectrally
normalised strided convs, sum pooling, an unconditional score plus projection terms for both
labels (Miyato & Koyama 2018), and an auxiliary classifier head per label (AC-GAN style).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

NUM_CATEGORIES = 8
NUM_COLOURS = 11


class ConditionalBatchNorm(nn.Module):
    """Batch norm without affine parameters, then ``x * (1 + gain(c)) + bias(c)``."""

    def __init__(self, channels: int, cond: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.affine = nn.Linear(cond, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain, bias = self.affine(cond)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1.0 + gain) + bias


UPSAMPLING = ("transposed", "nearest")


class UpStage(nn.Module):
    """x2 upsampling (transposed conv, or nearest + 3x3 conv), conditional batch norm, ReLU."""

    def __init__(self, cin: int, cout: int, cond: int, upsample: str = "transposed") -> None:
        super().__init__()
        if upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLING)}, got {upsample!r}")
        self.nearest = upsample == "nearest"
        if self.nearest:
            self.conv: nn.Module = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        else:
            self.conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)
        self.norm = ConditionalBatchNorm(cout, cond)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.nearest:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(x), cond))


class LabelEmbedding(nn.Module):
    """Category and colour indices -> the concatenation of their learned embeddings."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.category = nn.Embedding(NUM_CATEGORIES, dim)
        self.colour = nn.Embedding(NUM_COLOURS, dim)

    def forward(self, category: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.category(category), self.colour(colour)], dim=1)


def stage_widths(channels: int) -> tuple[int, ...]:
    """Feature widths at 4, 8, 16, 32 and 64 px."""
    return (channels, channels, channels // 2, channels // 4, max(4, channels // 8))


class ConditionalGenerator(nn.Module):
    """``forward(z (N, z_dim), category (N,) int64, colour (N,) int64) -> (N, 3, 64, 64)``.

    The output is an RGB image in [-1, 1] (tanh); ``(image + 1) / 2`` is in [0, 1].
    """

    def __init__(self, z_dim: int = 64, channels: int = 64, upsample: str = "transposed") -> None:
        super().__init__()
        self.z_dim = z_dim
        widths = stage_widths(channels)
        cond = 2 * 32 + z_dim
        self.labels = LabelEmbedding(32)
        self.project = nn.Linear(cond, widths[0] * 16)
        self.norm0 = ConditionalBatchNorm(widths[0], cond)
        self.stages = nn.ModuleList(
            UpStage(cin, cout, cond, upsample) for cin, cout in itertools.pairwise(widths)
        )
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(
        self, z: torch.Tensor, category: torch.Tensor, colour: torch.Tensor
    ) -> torch.Tensor:
        cond = torch.cat([self.labels(category, colour), z], dim=1)
        x = self.project(cond).reshape(z.shape[0], -1, 4, 4)
        x = F.relu(self.norm0(x, cond))
        for stage in self.stages:
            x = stage(x, cond)
        return torch.tanh(self.to_rgb(x))


class Discriminator(nn.Module):
    """Training-only critic: ``forward(image [-1, 1], category, colour) -> (score (N,),
    category_logits (N, 8), colour_logits (N, 11))``; projection-conditioned, spectral norm."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        c = channels
        widths = (3, c // 4, c // 2, c, 2 * c)
        layers: list[nn.Module] = []
        for cin, cout in itertools.pairwise(widths):  # 64 -> 4 px
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2)]
        layers += [spectral_norm(nn.Conv2d(2 * c, 2 * c, 3, 1, 1)), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        feat = 2 * c
        self.score = spectral_norm(nn.Linear(feat, 1))
        self.category_embed = spectral_norm(nn.Embedding(NUM_CATEGORIES, feat))
        self.colour_embed = spectral_norm(nn.Embedding(NUM_COLOURS, feat))
        self.category_head = nn.Linear(feat, NUM_CATEGORIES)
        self.colour_head = nn.Linear(feat, NUM_COLOURS)

    def forward(
        self, image: torch.Tensor, category: torch.Tensor, colour: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.body(image).sum(dim=(2, 3))
        proj = (self.category_embed(category) * h).sum(1) + (self.colour_embed(colour) * h).sum(1)
        score = self.score(h).squeeze(1) + proj
        return score, self.category_head(h), self.colour_head(h)
