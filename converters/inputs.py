"""Inputs for a module, built from its contract's tensor specs (export examples, parity cases).

Each input is made from its :class:`~vetrina.contract.TensorSpec`: ``image`` and ``mask``
(NCHW, in the tensor's range, sharing height and width), ``z`` (standard normal, ``(N, C)`` for
layout NC or ``(N, C, 1, 1)`` for NCHW) and ``label`` (int64 ``(N,)``, inside the model's
embedding size). The sizes that a contract cannot state (the latent width, the number of label
values) are read from the module: see :func:`latent_size` and :func:`label_count`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vetrina.contract import TensorSpec
from vetrina.errors import ConversionError
from vetrina.models.architectures import ArchitectureSpec

#: Module attributes that may hold the width of a latent input (checked in this order after
#: ``<input name>_dim``).
LATENT_ATTRIBUTES = ("z_dim", "latent_dim", "nz")

Feeds = dict[str, np.ndarray]


def spatial_inputs(spec: ArchitectureSpec) -> list[TensorSpec]:
    """The inputs with height and width (images and masks), which share one size."""
    return [t for t in spec.inputs if t.layout == "NCHW" and t.semantic in ("image", "mask")]


def channel_count(tensor: TensorSpec) -> int:
    """Channels of an image/mask tensor: 1 for ``L`` (and every mask), 3 for RGB/BGR."""
    return 1 if tensor.semantic == "mask" or tensor.channels == "L" else 3


def latent_size(module: Any, tensor: TensorSpec) -> int:
    """Width C of latent input ``tensor``.

    Taken from the module's ``<name>_dim``, ``z_dim``, ``latent_dim`` or ``nz`` attribute; for a
    module whose only input is the latent, from the first Linear/Conv layer's input width.
    """
    for attr in (f"{tensor.name}_dim", *LATENT_ATTRIBUTES):
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    first = _first_layer_width(module)
    if first is not None and _forward_arity(module) == 1:
        return first
    raise ConversionError(
        f"cannot tell the width of latent input {tensor.name!r} of {type(module).__name__}",
        hint=f"give the module an int attribute '{tensor.name}_dim' (or 'z_dim')",
    )


def label_count(module: Any, tensor: TensorSpec) -> int:
    """Number of values label input ``tensor`` may take (valid labels are 0..count-1).

    From the module's ``label_sizes`` dict, or from the ``nn.Embedding`` registered under the
    input's name (e.g. ``labels.category`` for input ``category``).
    """
    sizes = getattr(module, "label_sizes", None)
    if isinstance(sizes, dict) and isinstance(sizes.get(tensor.name), int):
        return int(sizes[tensor.name])
    from torch import nn

    counts = {
        m.num_embeddings
        for name, m in module.named_modules()
        if isinstance(m, nn.Embedding) and name.rsplit(".", 1)[-1] == tensor.name
    }
    if len(counts) == 1:
        return counts.pop()
    found = "several embeddings of different sizes" if counts else "no embedding"
    raise ConversionError(
        f"cannot tell how many values label input {tensor.name!r} takes: "
        f"{type(module).__name__} has {found} named {tensor.name!r}",
        hint=f"give the module a 'label_sizes' dict, e.g. {{'{tensor.name}': 10}}",
    )


def input_shape(
    module: Any, tensor: TensorSpec, batch: int, size: tuple[int, int] | None
) -> tuple[int, ...]:
    """The shape of one batch of ``tensor`` (``size`` is (height, width) for images/masks)."""
    if tensor.semantic == "label":
        return (batch,)
    if tensor.semantic == "z":
        c = latent_size(module, tensor)
        return (batch, c) if tensor.layout == "NC" else (batch, c, 1, 1)
    if size is None:
        raise ValueError(f"input {tensor.name!r} needs a (height, width)")
    return (batch, channel_count(tensor), *size)


def random_feeds(
    module: Any,
    spec: ArchitectureSpec,
    *,
    batch: int,
    size: tuple[int, int] | None,
    rng: np.random.Generator,
    labels: str = "random",
) -> Feeds:
    """Seeded random inputs for every tensor of ``spec``.

    Images: uniform over the range; masks: binary (about 30% set); z: standard normal;
    labels: ``"random"`` draws each uniformly, ``"spread"`` gives ``arange(batch) % count``
    (every value once the batch is at least the count).
    """
    if labels not in ("random", "spread"):
        raise ValueError(f"labels must be 'random' or 'spread', got {labels!r}")
    feeds: Feeds = {}
    for tensor in spec.inputs:
        shape = input_shape(module, tensor, batch, size)
        if tensor.semantic == "label":
            count = label_count(module, tensor)
            values = (
                np.arange(batch) % count
                if labels == "spread"
                else rng.integers(0, count, size=batch)
            )
            feeds[tensor.name] = values.astype(np.int64)
        elif tensor.semantic == "z":
            feeds[tensor.name] = rng.standard_normal(shape).astype(np.float32)
        elif tensor.semantic == "mask":
            lo, hi = tensor.range or (0.0, 1.0)
            on = rng.random(shape) < 0.3
            feeds[tensor.name] = np.where(on, hi, lo).astype(np.float32)
        else:
            lo, hi = tensor.range or (0.0, 1.0)
            feeds[tensor.name] = rng.uniform(lo, hi, size=shape).astype(np.float32)
    return feeds


def catalog_feeds(
    module: Any, spec: ArchitectureSpec, *, batch: int, size: tuple[int, int], seed: int = 0
) -> Feeds:
    """Rendered held-out product photos for the image inputs; where the model also takes a
    mask, the photos get synthetic defects and the mask marks them (as an inpainter sees)."""
    from vetrina.models.defects import add_defects_batch

    photos = _render(batch, size)
    masks = None
    if any(t.semantic == "mask" for t in spec.inputs):
        photos, masks = add_defects_batch(photos, np.random.default_rng(seed))
    others = random_feeds(module, spec, batch=batch, size=size, rng=np.random.default_rng(seed))
    feeds: Feeds = {}
    for tensor in spec.inputs:
        if tensor.semantic == "image":
            feeds[tensor.name] = to_tensor(photos, tensor)
        elif tensor.semantic == "mask" and masks is not None:
            feeds[tensor.name] = to_tensor(masks[..., None], tensor)
        else:
            feeds[tensor.name] = others[tensor.name]
    return feeds


def to_tensor(images: np.ndarray, tensor: TensorSpec) -> np.ndarray:
    """uint8 NHWC (C = 3 RGB or 1) -> float32 NCHW in ``tensor``'s channel order and range."""
    x = images.astype(np.float32)
    if channel_count(tensor) == 1 and x.shape[3] == 3:
        x = x @ np.array([0.299, 0.587, 0.114], np.float32)[:, None]
    elif tensor.channels == "BGR":
        x = x[..., ::-1]
    if tensor.range is None:
        x = x / np.float32(255.0)
    else:  # the last axis is the channel one: per-channel mean/std broadcast over it
        scale, offset = tensor.from_uint8_affine()
        x = x * np.asarray(scale, np.float32) + np.asarray(offset, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def _render(batch: int, size: tuple[int, int]) -> np.ndarray:
    """``batch`` validation-split photos (uint8 NHWC) at ``size``; rendered within the
    catalog's 64..512 px and resized where ``size`` is outside."""
    import cv2

    from vetrina.models import catalog

    h, w = size
    rh, rw = (min(max(s, catalog.MIN_SIZE), catalog.MAX_SIZE) for s in size)
    seeds = catalog.split_seeds("val", batch)
    images = [catalog.render(int(s), (rh, rw)).image for s in seeds]
    if (rh, rw) != (h, w):
        area = h * w < rh * rw
        interp = cv2.INTER_AREA if area else cv2.INTER_LINEAR
        images = [cv2.resize(img, (w, h), interpolation=interp) for img in images]
    return np.stack(images)


def _first_layer_width(module: Any) -> int | None:
    from torch import nn

    for m in module.modules():
        if isinstance(m, nn.Linear):
            return int(m.in_features)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Conv1d)):
            return int(m.in_channels)
    return None


def _forward_arity(module: Any) -> int:
    import inspect

    params = inspect.signature(module.forward).parameters.values()
    return sum(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        for p in params
    )


def check_forward(module: Any, spec: ArchitectureSpec) -> None:
    """The module's forward must take the spec's inputs positionally, in order."""
    import inspect

    params = [
        p
        for p in inspect.signature(module.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
    required = _forward_arity(module)
    n = len(spec.inputs)
    if not variadic and not (required <= n <= len(params)):
        names = ", ".join(p.name for p in params)
        raise ConversionError(
            f"{type(module).__name__}.forward({names}) does not take the {n} input(s) the "
            f"contract of {spec.name!r} lists ({', '.join(t.name for t in spec.inputs)})",
            hint="check --arch, or the inputs of the architecture's spec",
        )
