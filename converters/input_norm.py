"""Export with the input normalisation left outside the graph (rembg's convention).

rembg, and most tools built on torchvision-style models, feed a U²-Net file
``(rgb / 255 - mean) / std`` (ImageNet's mean and std) at 320 x 320. ``--input-norm imagenet``
exports a model whose own input is ``rgb / 255`` so that it takes that normalised input
instead: the graph first undoes the normalisation (``x * std + mean``, two constant ops), then
runs the model. The contract records ``mean``/``std`` on the image input, so vetrina feeds the
file the same way rembg does, and both can run the very same ONNX file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vetrina.errors import ConversionError
from vetrina.kernels import IMAGENET_MEAN, IMAGENET_STD

from .source import Source

INPUT_NORMS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": (tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)),
}
"""``--input-norm`` choices: name -> (mean, std) per RGB channel."""


def with_input_norm(source: Source, norm: str) -> Source:
    """``source`` wrapped so its image input is normalised by ``norm``'s mean and std."""
    import torch

    if norm not in INPUT_NORMS:
        raise ConversionError(
            f"unknown --input-norm {norm!r}; choose one of {', '.join(INPUT_NORMS)}"
        )
    spec = source.spec
    image = spec.inputs[0]
    if (
        len(spec.inputs) != 1
        or image.semantic != "image"
        or image.channels not in ("RGB", "BGR")
        or image.range != (0.0, 1.0)
        or image.mean is not None
    ):
        raise ConversionError(
            f"--input-norm applies to models with one RGB image input in [0, 1]; "
            f"{spec.name} takes "
            + ", ".join(f"{t.name} ({t.channels} {t.range})" for t in spec.inputs),
            hint="drop --input-norm",
        )
    mean, std = INPUT_NORMS[norm]
    if image.channels == "BGR":
        mean, std = mean[::-1], std[::-1]

    class Denormalised(torch.nn.Module):
        """x * std + mean, then the model (which expects [0, 1])."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, x: Any) -> Any:
            return self.inner(x * self.std + self.mean)

    normalised = dataclasses.replace(image, mean=mean, std=std)
    new_spec = dataclasses.replace(spec, inputs=(normalised,))
    module = Denormalised(source.module).eval()
    return dataclasses.replace(
        source, spec=new_spec, module=module, config={**source.config, "input_norm": norm}
    )
