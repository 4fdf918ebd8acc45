"""Overlapping tiles for large images and seamless blending of the processed tiles.

A :class:`TilePlan` cuts an image into tiles of one size (a multiple of the model's
``multiple``) that overlap by at least ``overlap`` pixels and cover the image exactly; an
image smaller than a tile becomes one tile padded by edge replication. After processing
(optionally with an integer scale factor, e.g. x2 for an upscaler) :meth:`TilePlan.blend`
puts them back with feathered weights: linear ramps across each overlap, 1 elsewhere,
normalised per pixel, so identity processing gives the image back and no seam shows. The blend
is one fused Cython/OpenMP pass over the output rows (kernels/_tiles.pxi), bit for bit the
numpy formulation kept in tests/kernels/reference.py (docs/kernels.md, "Tiling").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import _checks as ck
from . import _cpu

__all__ = ["MAX_SCALE", "TilePlan", "plan_tiles"]

MAX_SCALE = 16
"""Largest integer scale factor accepted by :meth:`TilePlan.blend`."""


def _pair(fn: str, name: str, value: object, lo: int) -> tuple[int, int]:
    items = [value, value] if ck.is_int(value) else value
    if (
        not isinstance(items, (list, tuple))
        or len(items) != 2
        or not all(ck.is_int(v) and lo <= int(v) <= ck.MAX_IMAGE_SIZE for v in items)
    ):
        raise ValueError(
            f"{fn}: {name} is {value!r}; expected an int or (height, width) ints in "
            f"{lo}..{ck.MAX_IMAGE_SIZE}"
        )
    return int(items[0]), int(items[1])


def _axis(length: int, tile: int, overlap: int, multiple: int) -> tuple[int, tuple[int, ...]]:
    """(tile length, origins) along one axis."""
    if length <= tile:
        return -(-length // multiple) * multiple, (0,)
    n = -(-(length - overlap) // (tile - overlap))  # stride <= tile - overlap
    return tile, tuple(i * (length - tile) // (n - 1) for i in range(n))


def _ramps(origins: Sequence[int], tile: int, scale: int) -> list[np.ndarray]:
    """Per-tile float32 weights along one axis at ``scale``: linear ramps over the overlaps
    with the neighbours ((u + 0.5) / overlap up, mirrored down), 1 in between."""
    out = []
    u = np.arange(tile * scale, dtype=np.float64) + 0.5
    for i, p in enumerate(origins):
        w = np.ones(tile * scale, dtype=np.float64)
        with np.errstate(divide="ignore"):  # neighbours that just touch: x / 0 = inf, no ramp
            if i > 0:
                ov = (origins[i - 1] + tile - p) * scale
                w = np.minimum(w, u / ov)
            if i + 1 < len(origins):
                ov = (p + tile - origins[i + 1]) * scale
                w = np.minimum(w, (tile * scale - u) / ov)
        out.append(w.astype(np.float32))
    return out


@dataclass(frozen=True)
class TilePlan:
    """Tiles of ``tile_hw`` at the origins ``ys`` x ``xs`` (row-major order) of an image of
    ``image_hw``. Tiles never start outside the image; they extend past it only when the
    image is smaller than a tile along that axis (then there is one tile, padded)."""

    image_hw: tuple[int, int]
    tile_hw: tuple[int, int]
    overlap: tuple[int, int]
    multiple: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    @property
    def boxes(self) -> list[tuple[int, int, int, int]]:
        """(y, x, h, w) of every tile inside the image (clipped), row-major."""
        (h, w), (th, tw) = self.image_hw, self.tile_hw
        return [(y, x, min(th, h - y), min(tw, w - x)) for y in self.ys for x in self.xs]

    def split(self, image: np.ndarray) -> list[np.ndarray]:
        """The tiles of ``image`` ((H, W) or (H, W, C), any dtype): views where a tile lies
        inside the image, edge-padded copies where it extends past it."""
        fn = "TilePlan.split"
        if not isinstance(image, np.ndarray):
            raise TypeError(f"{fn}: image has type {type(image).__name__}; expected an array")
        if image.ndim not in (2, 3) or image.shape[:2] != self.image_hw:
            raise ValueError(
                f"{fn}: image has shape {image.shape}; expected {self.image_hw} (+ channels)"
            )
        th, tw = self.tile_hw
        tiles = []
        for y, x, h, w in self.boxes:
            t = image[y : y + h, x : x + w]
            if (h, w) != (th, tw):
                pad = [(0, th - h), (0, tw - w)] + [(0, 0)] * (image.ndim - 2)
                t = np.pad(t, pad, mode="edge")
            tiles.append(t)
        return tiles

    def weights(self, scale: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-tile float32 blend weights along y and along x at ``scale`` (for inspection);
        a tile's 2-D weight is their outer product."""
        s = _check_scale("TilePlan.weights", scale)
        return _ramps(self.ys, self.tile_hw[0], s), _ramps(self.xs, self.tile_hw[1], s)

    def blend(
        self, tiles: Sequence[np.ndarray], scale: int = 1, *, num_threads: int | None = None
    ) -> np.ndarray:
        """Processed tiles (row-major, each ``scale * tile_hw`` [+ channels], one dtype:
        uint8, float32 or float16, any strides) -> the C-contiguous ``scale * image_hw``
        image, same dtype.

        Each pixel is ``sum(w_i * tile_i) / sum(w_i)`` in float32 over the tiles covering it,
        summed in tile order (weights from :meth:`weights`); uint8 results are clamped and
        rounded half up. One fused Cython/OpenMP pass over the output rows (``num_threads``:
        None = OpenMP default, else 1..1024; results never depend on it).
        """
        fn = "TilePlan.blend"
        s = _check_scale(fn, scale)
        seq = ck.check_sequence(fn, "tiles", tiles)
        if len(seq) != len(self):
            raise ValueError(f"{fn}: tiles has {len(seq)} entries; expected {len(self)}")
        want = (self.tile_hw[0] * s, self.tile_hw[1] * s)
        first = seq[0]
        for i, t in enumerate(seq):
            if not isinstance(t, np.ndarray):
                raise TypeError(f"{fn}: tiles[{i}] has type {type(t).__name__}; expected an array")
            if t.dtype not in (ck.U8, ck.F32, ck.F16):
                raise ValueError(
                    f"{fn}: tiles[{i}] has dtype {t.dtype}; expected uint8, float32 or float16"
                )
            if t.ndim not in (2, 3) or t.shape[:2] != want:
                raise ValueError(
                    f"{fn}: tiles[{i}] has shape {t.shape}; expected {want} (+ channels) = "
                    f"tile size {self.tile_hw} x scale {s}"
                )
            if t.dtype != first.dtype or t.shape != first.shape:
                raise ValueError(
                    f"{fn}: tiles[{i}] is {t.dtype} {t.shape} but tiles[0] is "
                    f"{first.dtype} {first.shape}; expected one dtype and shape"
                )
        nthreads = ck.check_threads(fn, num_threads)
        oh, ow = self.image_hw[0] * s, self.image_hw[1] * s
        extra = first.shape[2:]
        out = np.empty((oh, ow, *extra), dtype=first.dtype)
        c = extra[0] if extra else 1
        if c == 0:
            return out
        wy, wx, ys, xs = _tables(self.ys, self.xs, self.tile_hw, s)
        wxe = wx if c == 1 else np.repeat(wx, c, axis=1)
        kind = _KINDS[first.dtype]
        views = [_tile_view(t) for t in seq]
        raw = out.view(np.uint8).reshape(oh, -1)  # the kernel writes bytes of any dtype
        _cpu.blend_tiles(views, kind, wy, wx, wxe, ys, xs, raw, nthreads)
        return out


_KINDS = {ck.F32: 0, ck.F16: 1, ck.U8: 2}  # _cpu.TILE_F32, TILE_F16, TILE_U8


def _tile_view(t: np.ndarray) -> np.ndarray:
    """A 3-D view of a tile for the kernel: float tiles aligned (else an aligned copy),
    float16 seen as uint16 (the kernel converts the bits)."""
    if t.dtype != ck.U8 and not t.flags.aligned:
        t = np.array(t, order="C")  # a fresh, aligned copy
    if t.ndim == 2:
        t = t[:, :, None]
    return t.view(np.uint16) if t.dtype == ck.F16 else t


@functools.lru_cache(maxsize=32)
def _tables(
    ys: tuple[int, ...], xs: tuple[int, ...], tile_hw: tuple[int, int], scale: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's tables of a plan at ``scale`` (read-only, kept per geometry): stacked
    float32 weights along y (ny, th) and x (nx, tw), and the scaled origins."""
    wy = np.stack(_ramps(ys, tile_hw[0], scale))
    wx = np.stack(_ramps(xs, tile_hw[1], scale))
    oy = np.array(ys, dtype=np.intp) * scale
    ox = np.array(xs, dtype=np.intp) * scale
    for a in (wy, wx, oy, ox):
        a.flags.writeable = False
    return wy, wx, oy, ox


def _check_scale(fn: str, scale: object) -> int:
    if not ck.is_int(scale) or not 1 <= int(scale) <= MAX_SCALE:
        raise ValueError(f"{fn}: scale is {scale!r}; expected an int in 1..{MAX_SCALE}")
    return int(scale)


def plan_tiles(
    image_hw: Sequence[int],
    tile: int | Sequence[int],
    overlap: int | Sequence[int] = 32,
    *,
    multiple: int = 1,
) -> TilePlan:
    """Plan tiles of ``tile`` (int or (h, w); each a multiple of ``multiple``) overlapping by
    at least ``overlap`` (0 <= overlap < tile) over an ``image_hw`` image.

    Along an axis of length L > tile: ``n = ceil((L - overlap) / (tile - overlap))`` tiles at
    ``i * (L - tile) // (n - 1)`` (first at 0, last flush with the far edge). L <= tile: one
    tile of L rounded up to ``multiple`` (padded by :meth:`TilePlan.split`).
    """
    fn = "plan_tiles"
    try:
        hw = [int(v) for v in image_hw if ck.is_int(v)]  # type: ignore[union-attr]
    except TypeError:
        hw = []
    expected = f"expected (height, width), two ints in 1..{ck.MAX_IMAGE_SIZE}"
    if isinstance(image_hw, (str, bytes)) or len(hw) != 2 or len(list(image_hw)) != 2:
        raise ValueError(f"{fn}: image_hw is {image_hw!r}; {expected}")
    if min(hw) < 1 or max(hw) > ck.MAX_IMAGE_SIZE:
        raise ValueError(f"{fn}: image_hw is {tuple(hw)}; {expected}")
    if not ck.is_int(multiple) or not 1 <= int(multiple) <= 4096:
        raise ValueError(f"{fn}: multiple is {multiple!r}; expected an int in 1..4096")
    m = int(multiple)
    th, tw = _pair(fn, "tile", tile, 1)
    oy, ox = _pair(fn, "overlap", overlap, 0)
    if th % m or tw % m:
        raise ValueError(f"{fn}: tile is {(th, tw)}; expected multiples of {m} (multiple)")
    if oy >= th or ox >= tw:
        raise ValueError(
            f"{fn}: overlap is {(oy, ox)} for tile {(th, tw)}; expected overlap < tile"
        )
    eh, ys = _axis(hw[0], th, oy, m)
    ew, xs = _axis(hw[1], tw, ox, m)
    return TilePlan((hw[0], hw[1]), (eh, ew), (oy, ox), m, ys, xs)
