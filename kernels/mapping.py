"""Per-channel affine maps ``y = x * scale + offset`` built from mean/std or value ranges.

An :class:`Affine` unpacks straight into the kernels' keyword arguments::

    preprocess(images, (224, 224), **normalization(IMAGENET_MEAN, IMAGENET_STD))
    postprocess(batch, **range_mapping(-1, 1).inverse())

Values are kept in float64 here; the kernels round them to float32 once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Affine", "normalization", "range_mapping"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet channel means (RGB, for values in [0, 1])."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet channel standard deviations (RGB, for values in [0, 1])."""

Triple = tuple[float, float, float]


def _triple(fn: str, name: str, value: float | Sequence[float]) -> Triple:
    if isinstance(value, bool):
        raise ValueError(f"{fn}: {name} is {value!r}; expected a finite number or 3 of them")
    try:
        items = [float(value)] * 3 if not isinstance(value, Sequence) else [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(
            f"{fn}: {name} is {value!r}; expected a finite number or 3 of them"
        ) from None
    if len(items) != 3 or not all(math.isfinite(v) for v in items):
        raise ValueError(f"{fn}: {name} is {value!r}; expected a finite number or 3 of them")
    return items[0], items[1], items[2]


@dataclass(frozen=True)
class Affine:
    """``y = x * scale[c] + offset[c]`` per channel; ``**affine`` gives ``scale=, offset=``."""

    scale: Triple
    offset: Triple

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _triple("Affine", "scale", self.scale))
        object.__setattr__(self, "offset", _triple("Affine", "offset", self.offset))

    def keys(self) -> tuple[str, str]:
        return ("scale", "offset")

    def __getitem__(self, key: str) -> Triple:
        if key == "scale":
            return self.scale
        if key == "offset":
            return self.offset
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def inverse(self) -> Affine:
        """``x = y * (1 / scale) - offset / scale`` (every scale must be non-zero)."""
        if any(s == 0 for s in self.scale):
            raise ValueError(f"Affine.inverse: scale is {self.scale}; a zero scale cannot invert")
        inv = tuple(1.0 / s for s in self.scale)
        off = tuple(-o / s for o, s in zip(self.offset, self.scale, strict=True))
        return Affine(inv, off)  # type: ignore[arg-type]

    def then(self, other: Affine) -> Affine:
        """This map followed by ``other`` (e.g. a model's output range into the next model's
        input normalisation, for :func:`~vetrina.kernels.adapt`)."""
        sc = tuple(a * b for a, b in zip(self.scale, other.scale, strict=True))
        of = tuple(
            o * b + p for o, b, p in zip(self.offset, other.scale, other.offset, strict=True)
        )
        return Affine(sc, of)  # type: ignore[arg-type]

    def swapped(self) -> Affine:
        """The same map for the other channel order (channels 0 and 2 exchanged)."""
        s, o = self.scale, self.offset
        return Affine((s[2], s[1], s[0]), (o[2], o[1], o[0]))


def normalization(
    mean: float | Sequence[float] = 0.0,
    std: float | Sequence[float] = 1.0,
    *,
    scale: float = 1 / 255,
) -> Affine:
    """``(x * scale - mean) / std`` as an :class:`Affine`: ``scale / std`` and ``-mean / std``.

    With the default ``scale = 1/255``, ``mean`` and ``std`` are in [0, 1] units (ImageNet
    style); pass ``scale=1`` for mean/std in pixel units (0..255). Channel order is the
    output's (``dst_order``) for :func:`~vetrina.kernels.preprocess`.
    """
    fn = "normalization"
    m = _triple(fn, "mean", mean)
    s = _triple(fn, "std", std)
    k = _triple(fn, "scale", scale)[0]
    if any(v == 0 for v in s) or k == 0:
        raise ValueError(f"{fn}: std is {std!r} and scale {scale!r}; expected non-zero values")
    return Affine(
        (k / s[0], k / s[1], k / s[2]),
        (-m[0] / s[0], -m[1] / s[1], -m[2] / s[2]),
    )


def range_mapping(
    lo: float | Sequence[float],
    hi: float | Sequence[float],
    *,
    src: tuple[float, float] = (0.0, 255.0),
) -> Affine:
    """The affine map taking ``[src[0], src[1]]`` onto ``[lo, hi]`` (per channel).

    ``range_mapping(0, 1)`` is ``x / 255``; ``range_mapping(-1, 1)`` is ``x / 127.5 - 1``;
    its :meth:`Affine.inverse` maps the model's range back to 0..255 for postprocess.
    """
    fn = "range_mapping"
    a = _triple(fn, "lo", lo)
    b = _triple(fn, "hi", hi)
    try:
        s0, s1 = (float(v) for v in src)
    except (TypeError, ValueError):
        raise ValueError(
            f"{fn}: src is {src!r}; expected (low, high), two finite numbers"
        ) from None
    if not (math.isfinite(s0) and math.isfinite(s1)) or s1 == s0:
        raise ValueError(f"{fn}: src is {src!r}; expected two different finite numbers")
    sc = tuple((b[c] - a[c]) / (s1 - s0) for c in range(3))
    of = tuple(a[c] - s0 * sc[c] for c in range(3))
    return Affine(sc, of)  # type: ignore[arg-type]
