"""Fit modes (stretch / letterbox / centre-crop) and the :class:`Placement` that inverts them.

Pure Python and exact integer arithmetic, so the CPU and GPU kernels (and any caller mapping
boxes or keypoints back to the source image) agree to the pixel. See docs/kernels.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ._checks import check_choice, check_size, is_int

__all__ = ["FITS", "Placement", "plan_fit"]

FITS = ("stretch", "letterbox", "crop")
"""Accepted ``fit`` values."""

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Placement:
    """Where one source image went in a preprocessed batch.

    ``src_box = (y, x, h, w)`` is the part of the source image that was used (all of it for
    stretch and letterbox, a centred window for crop); it was resized to ``dst_box`` (same
    layout) inside the ``dst_hw`` output. Outside ``dst_box`` the output holds the pad value
    (letterbox only).
    """

    src_hw: tuple[int, int]
    dst_hw: tuple[int, int]
    src_box: Box
    dst_box: Box
    fit: str = "stretch"

    @property
    def scale(self) -> tuple[float, float]:
        """Resize factors (sy, sx) = dst_box size / src_box size."""
        return self.dst_box[2] / self.src_box[2], self.dst_box[3] / self.src_box[3]

    def to_source(self, y: float, x: float) -> tuple[float, float]:
        """Continuous output coordinates (pixel edges, not centres) -> source coordinates."""
        sy, sx = self.scale
        return (
            (y - self.dst_box[0]) / sy + self.src_box[0],
            (x - self.dst_box[1]) / sx + self.src_box[1],
        )

    def to_output(self, y: float, x: float) -> tuple[float, float]:
        """Continuous source coordinates -> output coordinates (inverse of :meth:`to_source`)."""
        sy, sx = self.scale
        return (
            (y - self.src_box[0]) * sy + self.dst_box[0],
            (x - self.src_box[1]) * sx + self.dst_box[1],
        )


def _round_div(num: int, den: int) -> int:
    """round(num / den) for num >= 0, den > 0, halves up, in exact integers."""
    return (2 * num + den) // (2 * den)


def plan_fit(src_hw: Sequence[int], dst_hw: Sequence[int], fit: str = "stretch") -> Placement:
    """The :class:`Placement` of a ``src_hw`` image in a ``dst_hw`` output.

    * ``stretch``: the whole source fills the whole output (aspect ratio not kept);
    * ``letterbox``: the whole source, scaled by ``min(H/h, W/w)``, centred; the content size
      along the scaled axis is ``round(len * H / h)`` (halves up, at least 1), the left/top
      margin is ``(margin total) // 2``;
    * ``crop``: scaled by ``max(H/h, W/w)`` so the output is covered; the source window is
      ``round(H * h / H')``-style rounding of the output size back to the source, centred
      (``(h - window) // 2``), and resized to the whole output.
    """
    fn = "plan_fit"
    h, w = _check_hw(fn, "src_hw", src_hw)
    oh, ow = check_size(fn, "dst_hw", dst_hw)
    check_choice(fn, "fit", fit, FITS)
    if fit == "stretch":
        return Placement((h, w), (oh, ow), (0, 0, h, w), (0, 0, oh, ow), fit)
    if fit == "letterbox":
        if oh * w <= ow * h:  # height-limited: scale oh / h
            ch, cw = oh, min(ow, max(1, _round_div(w * oh, h)))
        else:
            ch, cw = min(oh, max(1, _round_div(h * ow, w))), ow
        top, left = (oh - ch) // 2, (ow - cw) // 2
        return Placement((h, w), (oh, ow), (0, 0, h, w), (top, left, ch, cw), fit)
    # crop
    if oh * w >= ow * h:  # scale oh / h covers the width: crop the width
        sh, sw = h, min(w, max(1, _round_div(ow * h, oh)))
    else:
        sh, sw = min(h, max(1, _round_div(oh * w, ow))), w
    y, x = (h - sh) // 2, (w - sw) // 2
    return Placement((h, w), (oh, ow), (y, x, sh, sw), (0, 0, oh, ow), fit)


def _check_hw(fn: str, name: str, value: object) -> tuple[int, int]:
    """A source size: two positive ints (no upper bound beyond sanity)."""
    try:
        items = list(value)  # type: ignore[call-overload]
    except TypeError:
        items = []
    if isinstance(value, (str, bytes)) or len(items) != 2 or not all(is_int(v) for v in items):
        raise ValueError(f"{fn}: {name} is {value!r}; expected (height, width), two positive ints")
    h, w = int(items[0]), int(items[1])
    if h < 1 or w < 1 or h > 2**31 - 1 or w > 2**31 - 1:
        raise ValueError(f"{fn}: {name} is {(h, w)}; expected (height, width), two positive ints")
    return h, w


def check_placement(fn: str, name: str, value: object) -> Placement:
    """A :class:`Placement` whose sizes are two positive ints each and whose boxes are
    consistent with them; returned with every field as a tuple of Python ints."""
    if not isinstance(value, Placement):
        raise TypeError(f"{fn}: {name} has type {type(value).__name__}; expected a Placement")
    h, w = _check_hw(fn, f"{name}.src_hw", value.src_hw)
    oh, ow = _check_hw(fn, f"{name}.dst_hw", value.dst_hw)
    boxes = []
    for box, (bh, bw), what in ((value.src_box, (h, w), "src"), (value.dst_box, (oh, ow), "dst")):
        try:
            items = [] if isinstance(box, (str, bytes)) else list(box)  # type: ignore[call-overload]
        except TypeError:
            items = []
        if (
            len(items) != 4
            or not all(is_int(v) for v in items)
            or items[0] < 0
            or items[1] < 0
            or items[2] < 1
            or items[3] < 1
            or items[0] + items[2] > bh
            or items[1] + items[3] > bw
        ):
            raise ValueError(
                f"{fn}: {name}.{what}_box is {box!r}; expected (y, x, h, w) inside {(bh, bw)}"
            )
        boxes.append(tuple(int(v) for v in items))
    return replace(value, src_hw=(h, w), dst_hw=(oh, ow), src_box=boxes[0], dst_box=boxes[1])
