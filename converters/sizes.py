"""Image sizes given on the command line (``HxW``) and their check against a model's size rules.

A size that breaks a rule is refused with the rule and the nearest sizes that keep it; it is
never rounded silently.
"""

from __future__ import annotations

import re

from vetrina.contract import SpatialRules
from vetrina.errors import ConversionError
from vetrina.models.architectures import ArchitectureSpec

Size = tuple[int, int]

MAX_SIDE = 16384
"""The largest side vetrina exports or verifies at (also the dynamic axes' upper bound)."""

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str, *, option: str = "size") -> Size:
    """``"96x128"`` -> ``(96, 128)`` (height x width, both positive)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{option} {text!r}: expected HEIGHTxWIDTH in pixels, e.g. 256x256")
    h, w = int(match.group(1)), int(match.group(2))
    if h < 1 or w < 1:
        raise ValueError(f"{option} {text!r}: height and width must be at least 1 pixel")
    return h, w


def parse_sizes(text: str, *, option: str = "sizes") -> list[Size]:
    """``"64x96,128x128"`` -> ``[(64, 96), (128, 128)]`` (at least one)."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"{option} {text!r}: expected HxW[,HxW...], e.g. 64x96,128x128")
    return [parse_size(p, option=option) for p in parts]


def check_size(spec: ArchitectureSpec, size: Size, *, option: str = "size") -> Size:
    """Return ``size`` if it keeps ``spec``'s size rules and :data:`MAX_SIDE`; else a
    :class:`ConversionError` naming the rule and suggesting the nearest sizes that keep it."""
    rules = spec.spatial
    h, w = size
    shown = f"{option} {h}x{w}"
    step, low, high = rules.multiple_of, rules.min_size, rules.max_size
    if min(h, w) < low:
        raise ConversionError(
            f"{shown}: sides must be at least {low} px for {spec.name}",
            hint=f"try {_fmt(_fit(h, rules), _fit(w, rules))}",
        )
    if max(h, w) > MAX_SIDE and (high is None or high > MAX_SIDE):
        raise ConversionError(
            f"{shown}: sides must be at most {MAX_SIDE} px (vetrina's limit for export and "
            "verification)",
            hint=f"try {_fmt(_fit(h, rules), _fit(w, rules))}",
        )
    if high is not None and max(h, w) > high:
        raise ConversionError(
            f"{shown}: sides must be at most {high} px for {spec.name}",
            hint=f"try {_fmt(_fit(h, rules), _fit(w, rules))}",
        )
    if h % step or w % step:
        down = (_fit(h, rules, up=False), _fit(w, rules, up=False))
        up = (_fit(h, rules, up=True), _fit(w, rules, up=True))
        options = " or ".join(dict.fromkeys(_fmt(*s) for s in (down, up)))
        raise ConversionError(
            f"{shown}: sides must be multiples of {step} for {spec.name}", hint=f"try {options}"
        )
    return size


def default_size(spec: ArchitectureSpec, size: Size) -> Size:
    """``size`` moved to the nearest size the rules allow (for built-in defaults only)."""
    return _fit(size[0], spec.spatial), _fit(size[1], spec.spatial)


def _fit(side: int, rules: SpatialRules, *, up: bool | None = None) -> int:
    """The allowed side nearest ``side`` (rounded down, up, or to nearest when ``up`` is None)."""
    step = rules.multiple_of
    low = -(-rules.min_size // step) * step
    high = (min(rules.max_size or MAX_SIDE, MAX_SIDE) // step) * step
    if up is None:
        value = int(side / step + 0.5) * step
    else:
        value = (-(-side // step) if up else side // step) * step
    return min(max(low, value), high)


def _fmt(h: int, w: int) -> str:
    return f"{h}x{w}"
