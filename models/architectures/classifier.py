"""A small CNN that names a product photo's category and colour: the judge of the generators.

Four stride-2 conv-BN-ReLU stages (the last three each followed by a 3x3 conv-BN-ReLU), then
global average pooling, so any input of at least 32x32 works; two linear heads give the
category logits (8) and the colour logits (11), in the order of
:data:`vetrina.models.catalog.CATEGORIES` and ``COLOURS``. Exportable to ONNX with
dynamic batch, height and width.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_CATEGORIES = 8
NUM_COLOURS = 11


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class CatalogClassifier(nn.Module):
    """Input: RGB in [0, 1], NCHW, height and width >= 32.

    Output: ``(category_logits (N, 8), colour_logits (N, 11))``.
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            _conv(3, c // 2, 2),
            _conv(c // 2, c, 2),
            _conv(c, c),
            _conv(c, 2 * c, 2),
            _conv(2 * c, 2 * c),
            _conv(2 * c, 4 * c, 2),
            _conv(4 * c, 4 * c),
        )
        self.dropout = nn.Dropout(0.1)
        self.category = nn.Linear(4 * c, NUM_CATEGORIES)
        self.colour = nn.Linear(4 * c, NUM_COLOURS)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), False)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, 4 * channels) of the last stage."""
        return self.body((image - self.mean) * 2.0).mean(dim=(2, 3))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.dropout(self.features(image))
        return self.category(feats), self.colour(feats)
