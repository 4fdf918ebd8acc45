"""Procedural, seedable renderer of e-commerce product photos: the training data of the zoo.

Nothing can be downloaded to train the reference models, so this module *is* the data set: each
``render(seed)`` draws one catalog-style photo (a product of one of eight categories, in one of
a few named colours, on a light studio background) together with its soft alpha mask. Every
choice comes from ``np.random.default_rng(seed)``, so a seed identifies an image exactly and the
train/val/test splits are just disjoint seed ranges (``split_seeds``).

How an image is made, and why:

* each category builder describes its silhouette as polygons and thick polylines in an object
  frame (height about 1, ground at y = 1) with random proportions, so a model has to learn the
  category, not one template;
* the polygons are drawn with anti-aliasing on a supersampled 4-channel canvas (coverage,
  secondary material, tertiary material, darkening) and reduced with ``INTER_AREA``, which gives
  smooth edges and a soft alpha;
* studio lighting: normals from a blurred mask ("pillow" shading) or per-row cylinders for
  turned objects, a Lambert term from the upper left and a specular highlight;
* a soft contact/drop shadow darkens the background only; it is not part of alpha.

Only numpy and OpenCV are used: the runtime imports this module too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = [
    "BACKGROUNDS",
    "CATEGORIES",
    "COLOURS",
    "DATA_VERSION",
    "MAX_SIZE",
    "MIN_SIZE",
    "PATTERNS",
    "SPLITS",
    "Product",
    "render",
    "render_batch",
    "split_seeds",
]

#: Bump whenever the pixels produced for a seed change; checkpoints record it.
DATA_VERSION = "catalog-1"

CATEGORIES: tuple[str, ...] = (
    "tshirt",
    "mug",
    "bottle",
    "sneaker",
    "handbag",
    "watch",
    "lamp",
    "chair",
)

#: Named product colours (RGB). Well separated so that a classifier can tell them apart after
#: jitter and shading.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 32, 38),
    "orange": (236, 122, 24),
    "yellow": (240, 204, 36),
    "green": (44, 150, 68),
    "blue": (34, 84, 192),
    "purple": (118, 52, 160),
    "pink": (238, 134, 182),
    "brown": (122, 76, 42),
    "black": (32, 32, 34),
    "white": (240, 240, 236),
    "grey": (138, 138, 140),
}

_COLOUR_NAMES = tuple(COLOURS)

BACKGROUNDS: tuple[str, ...] = ("white", "gradient", "texture")

#: Surface patterns, in a contrasting colour, on the product's main material.
PATTERNS: tuple[str, ...] = ("solid", "stripes", "dots", "two-tone")
_PATTERN_CDF = np.cumsum((0.5, 0.2, 0.15, 0.15))[:-1]

MIN_SIZE = 64
MAX_SIZE = 512

#: Disjoint seed ranges: (first seed, number of seeds).
SPLITS: dict[str, tuple[int, int]] = {
    "train": (0, 10_000_000),
    "val": (10_000_000, 10_000_000),
    "test": (20_000_000, 10_000_000),
}


@dataclass(frozen=True, eq=False)
class Product:
    """One rendered catalog photo and what it shows.

    ``image`` is uint8 (H, W, 3) RGB; ``alpha`` is uint8 (H, W), 255 on the product, 0 on the
    background, anti-aliased in between (the shadow is not part of it).
    """

    image: np.ndarray = field(repr=False)
    alpha: np.ndarray = field(repr=False)
    category: str
    colour: str
    background: str
    pattern: str
    seed: int


# --------------------------------------------------------------------------------------------
# Geometry helpers (object frame: x right, y down, ground at y = 1)
# --------------------------------------------------------------------------------------------

# Canvas channel values (coverage, secondary, tertiary, darkening) used as fill "materials".
_BODY = (255, 0, 0, 0)
_SEC = (255, 255, 0, 0)
_TER = (255, 0, 255, 0)
_HOLE = (0, 0, 0, 0)


def _dark(mat: tuple[int, int, int, int], amount: int = 255) -> tuple[int, int, int, int]:
    """The material ``mat`` darkened by ``amount`` (255 = a detail line, less = a shaded face)."""
    return (mat[0], mat[1], mat[2], amount)


@functools.lru_cache(maxsize=256)
def _arc(a0: float, a1: float, n: int) -> np.ndarray:
    t = np.radians(np.linspace(a0, a1, n))
    arc = np.stack([np.cos(t), np.sin(t)], axis=1)
    arc.flags.writeable = False
    return arc


def _ellipse(
    cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 360.0, n: int = 48
) -> np.ndarray:
    """Points of an elliptic arc; angles in degrees, 90 points down (y grows downwards)."""
    return _arc(float(a0), float(a1), int(n)) * (rx, ry) + (cx, cy)


@functools.lru_cache(maxsize=16)
def _rrect_unit(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Corner arcs of a rounded rectangle (unit radius) and which side each point is on."""
    arcs = np.concatenate([_arc(270, 360, n), _arc(0, 90, n), _arc(90, 180, n), _arc(180, 270, n)])
    side = np.repeat(np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=bool), n, axis=0)
    return arcs, side


def _rrect(x0: float, y0: float, x1: float, y1: float, r: float, n: int = 8) -> np.ndarray:
    """Rounded rectangle outline."""
    r = max(0.0, min(r, (x1 - x0) / 2, (y1 - y0) / 2))
    arcs, side = _rrect_unit(n)
    return arcs * r + np.where(side, (x1 - r, y1 - r), (x0 + r, y0 + r))


def _chaikin(pts: np.ndarray | list, iters: int = 3, closed: bool = True) -> np.ndarray:
    """Corner-cutting subdivision: turns a control polygon into a smooth outline."""
    p = np.asarray(pts, dtype=np.float64)
    for _ in range(iters):
        if closed:
            a, b = p, np.concatenate([p[1:], p[:1]])
        else:
            a, b = p[:-1], p[1:]
        out = np.empty((2 * len(a) + (0 if closed else 2), 2))
        mid = out if closed else out[1:-1]
        mid[0::2] = 0.75 * a + 0.25 * b
        mid[1::2] = 0.25 * a + 0.75 * b
        if not closed:
            out[0], out[-1] = p[0], p[-1]
        p = out
    return p


def _densify(pts: np.ndarray | list, step: float) -> np.ndarray:
    """Closed polygon with extra points so no edge is longer than ``step``: Chaikin smoothing
    then only rounds the corners slightly instead of cutting them."""
    p = np.asarray(pts, dtype=np.float64)
    nxt = np.concatenate([p[1:], p[:1]])
    n = np.maximum(1, np.ceil(np.linalg.norm(nxt - p, axis=1) / step).astype(np.intp))
    idx = np.repeat(np.arange(len(p)), n)
    start = np.repeat(np.cumsum(n) - n, n)
    t = (np.arange(len(idx)) - start) / np.repeat(n, n)
    return p[idx] + (nxt[idx] - p[idx]) * t[:, None]


def _mirror(right: np.ndarray | list) -> np.ndarray:
    """Closed symmetric outline from its right half, listed top to bottom (x >= 0)."""
    r = np.asarray(right, dtype=np.float64)
    left = r[::-1] * np.array([-1.0, 1.0])
    if abs(r[-1, 0]) < 1e-9:
        left = left[1:]
    if abs(r[0, 0]) < 1e-9:
        left = left[:-1]
    return np.concatenate([r, left])


@dataclass
class _Shape:
    """What a category builder hands to the renderer."""

    ops: list = field(default_factory=list)
    sec: np.ndarray = field(default_factory=lambda: np.zeros(3))
    ter: np.ndarray = field(default_factory=lambda: np.zeros(3))
    cylinder: bool = False  # turned object around x = 0: per-row cylindrical shading
    standing: bool = True  # stands on the ground (contact shadow) or lies flat (drop shadow)
    ks: float = 0.2  # specular strength of the main material
    ks_ter: float = 0.0  # extra specular strength of the tertiary material (metal)
    pillow: float = 1.0  # strength of the mask-derived bulge

    def fill(self, poly: np.ndarray | list, mat: tuple[int, int, int, int]) -> None:
        self.ops.append((False, [np.asarray(poly, dtype=np.float64)], mat, 0.0, True))

    def fills(self, polys: list, mat: tuple[int, int, int, int]) -> None:
        """Several disjoint polygons of one material in one draw call."""
        self.ops.append((False, [np.asarray(p, dtype=np.float64) for p in polys], mat, 0.0, True))

    def lines(self, polylines: list, mat: tuple[int, int, int, int], width: float) -> None:
        """Several open polylines of one material and width in one draw call."""
        self.ops.append(
            (True, [np.asarray(p, dtype=np.float64) for p in polylines], mat, width, False)
        )

    def rotate(self, degrees: float, centre: tuple[float, float]) -> None:
        """Rotate every op about ``centre`` (degrees, clockwise on screen)."""
        t = np.radians(degrees)
        rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
        c = np.asarray(centre)
        polys = [p for op in self.ops for p in op[1]]
        flat = (np.concatenate(polys) - c) @ rot + c
        ends = np.cumsum([len(p) for p in polys]).tolist()
        parts = iter([flat[e - len(p) : e] for p, e in zip(polys, ends, strict=True)])
        self.ops = [
            (is_line, [next(parts) for _ in op_polys], mat, width, closed)
            for is_line, op_polys, mat, width, closed in self.ops
        ]

    def line(
        self,
        pts: np.ndarray | list,
        mat: tuple[int, int, int, int],
        width: float,
        closed: bool = False,
    ) -> None:
        self.ops.append((True, [np.asarray(pts, dtype=np.float64)], mat, width, closed))


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Uniform draw in [lo, hi) (rng.random is several times cheaper than rng.uniform)."""
    return lo + (hi - lo) * rng.random()


def _pick(rng: np.random.Generator, n: int) -> int:
    """Uniform index in range(n)."""
    return min(int(rng.random() * n), n - 1)


def _shade_of(c: np.ndarray, f: float) -> np.ndarray:
    return np.clip(c * f, 0, 255)


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a * (1 - t) + b * t


_METALS = (
    np.array([200.0, 200.0, 205.0]),  # steel
    np.array([205.0, 170.0, 90.0]),  # brass / gold
    np.array([40.0, 40.0, 42.0]),  # black metal
)


def _lum(c: np.ndarray) -> float:
    return float(c[0] * 0.299 + c[1] * 0.587 + c[2] * 0.114)


# --------------------------------------------------------------------------------------------
# Category builders
# --------------------------------------------------------------------------------------------


def _tshirt(rng: np.random.Generator, body: np.ndarray) -> _Shape:
    """Flat-lay T-shirt: sleeves of random length and angle, crew or V neck."""
    sh = _Shape(standing=False, ks=0.03, pillow=0.45)
    sh.sec = _shade_of(body, 0.62)
    bw = _u(rng, 0.6, 0.72)
    flare = _u(rng, 0.0, 0.035)
    sy = _u(rng, 0.03, 0.07)
    nhw = _u(rng, 0.1, 0.14)
    shw = bw / 2 + _u(rng, 0.05, 0.09)
    sl = _u(rng, 0.2, 0.4)
    ang = np.radians(_u(rng, 20, 38))
    cw = _u(rng, 0.16, 0.22)
    vneck = rng.random() < 0.3
    nd = _u(rng, 0.14, 0.22) if vneck else _u(rng, 0.06, 0.12)

    dvec = np.array([np.cos(ang), np.sin(ang)])
    perp = np.array([-np.sin(ang), np.cos(ang)])
    sp = np.array([shw, sy])
    e1 = sp + sl * dvec
    e2 = e1 + cw * perp
    t = max(0.0, (e2[0] - bw / 2) / np.cos(ang))
    ay = float(np.clip(e2[1] - t * np.sin(ang), sy + 0.16, 0.45))
    right = [(nhw, 0.0), tuple(sp), tuple(e1), tuple(e2), (bw / 2, ay), (bw / 2 + flare, 1.0)]
    outline = _mirror([*right, (0.0, 1.008)])
    back = np.stack([np.linspace(-nhw * 0.95, nhw * 0.95, 9), np.zeros(9)], axis=1)
    back[:, 1] = -0.015 * (1 - (back[:, 0] / nhw) ** 2)
    outline = np.concatenate([outline, back])
    sh.fill(_chaikin(_densify(outline, 0.05), 2), _BODY)

    if vneck:
        neck = np.array([(-nhw, 0.0), (0.0, nd), (nhw, 0.0)])
        neck_fill = _chaikin(neck, 1, closed=True)
    else:
        neck = _ellipse(0, 0, nhw, nd, 0, 180, 24)
        neck_fill = neck
    sh.fill(neck_fill, _dark(_SEC, 60))
    sh.line(neck, _dark(_BODY, 30), 0.032)
    sh.line(neck * np.array([1.12, 1.0]) + np.array([0, 0.022]), _dark(_BODY), 0.008)
    sh.line(back, _dark(_BODY, 30), 0.02)
    # seams: sleeve hems, armholes, bottom hem
    for sgn in (1.0, -1.0):
        m = np.array([sgn, 1.0])
        hem = np.array([e1 - 0.045 * dvec + 0.02 * perp, e2 - 0.045 * dvec - 0.02 * perp]) * m
        sh.line(hem, _dark(_BODY), 0.008)
        arm = np.array([sp + np.array([-0.03, 0.015]), (bw / 2 + 0.005, ay - 0.015)]) * m
        mid = (arm[0] + arm[1]) / 2 + [0.012 * sgn, 0]
        sh.line(
            _chaikin(np.array([arm[0], mid, arm[1]]), 2, closed=False), _dark(_BODY, 150), 0.007
        )
    y_hem = 0.955
    xh = bw / 2 + flare * 0.95 - 0.025
    sh.line([(-xh, y_hem), (xh, y_hem)], _dark(_BODY), 0.008)
    return sh


def _mug(rng: np.random.Generator, body: np.ndarray) -> _Shape:
    """Mug seen slightly from above: tapered or straight body, rim, handle with a hole."""
    sh = _Shape(cylinder=True, ks=0.55)
    inner_white = rng.random() < 0.35
    sh.sec = np.array([235.0, 235.0, 230.0]) if inner_white else _shade_of(body, 0.75)
    rt = _u(rng, 0.32, 0.48)
    rb = rt * _u(rng, 0.82, 1.0)
    ratio = _u(rng, 0.13, 0.22)
    ryt, ryb = rt * ratio, rb * ratio
    yt = ryt
    yb = 1.0 - ryb
    # handle: ring (ellipse or D) on the right side, drawn first so the body covers its root
    hc = (rt - 0.03, _u(rng, 0.42, 0.52) * (yb - yt) + yt)
    hx = _u(rng, 0.18, 0.3)
    hy = _u(rng, 0.2, 0.3)
    th = _u(rng, 0.06, 0.09)
    if rng.random() < 0.5:
        outer = _ellipse(hc[0], hc[1], hx, hy)
        inner = _ellipse(hc[0], hc[1], hx - th, hy - th)
    else:
        outer = _rrect(hc[0] - hx, hc[1] - hy, hc[0] + hx, hc[1] + hy, hy * 0.9)
        inner = _rrect(
            hc[0] - hx + th, hc[1] - hy + th, hc[0] + hx - th, hc[1] + hy - th, (hy - th) * 0.9
        )
    sh.fill(outer, _BODY)
    sh.fill(inner, _HOLE)
    outline = np.concatenate(
        [
            _ellipse(0, yt, rt, ryt, 180, 360, 32),
            _ellipse(0, yb, rb, ryb, 0, 180, 32),
        ]
    )
    sh.fill(outline, _BODY)
    wall = _u(rng, 0.025, 0.04)
    sh.fill(_ellipse(0, yt, rt - wall, ryt - wall * ratio * 1.5, n=40), _dark(_SEC, 40))
    sh.line(
        _ellipse(0, yt, rt - wall, ryt - wall * ratio * 1.5, 180, 360, 24), _dark(_SEC, 140), 0.008
    )
    return sh


def _bottle(rng: np.random.Generator, body: np.ndarray) -> _Shape:
    """Bottle: random neck length, shoulder shape, body width and cap."""
    sh = _Shape(cylinder=True, ks=0.7)
    caps = [*_METALS, np.array([236.0, 236.0, 232.0]), _shade_of(body, 0.55)]
    sh.sec = caps[_pick(rng, len(caps))]
    bw = _u(rng, 0.13, 0.22)
    nw = _u(rng, 0.045, 0.075)
    nl = _u(rng, 0.04, 0.24)
    shh = _u(rng, 0.05, 0.2)
    ch = _u(rng, 0.06, 0.11)
    cw = nw + _u(rng, 0.005, 0.02)
    rc = _u(rng, 0.015, 0.05)
    lip = 0.012
    y_neck = ch + nl
    t = np.linspace(0, 1, 12)
    round_sh = _u(rng, 0.0, 1.0)
    ease = 0.5 - 0.5 * np.cos(np.pi * t)
    prof = round_sh * np.sin(0.5 * np.pi * t) + (1 - round_sh) * ease
    shoulder = np.stack([nw + (bw - nw) * prof, y_neck + shh * t], axis=1)
    right = np.concatenate(
        [
            [
                (cw - 0.01, 0.0),
                (cw, 0.01),
                (cw, ch),
                (nw + lip, ch),
                (nw + lip, ch + 0.02),
                (nw, ch + 0.025),
            ],
            shoulder,
            _ellipse(bw - rc, 1 - rc, rc, rc, 0, 90, 6),
            [(0.0, 1.0)],
        ]
    )
    outline = _mirror(right)
    sh.fill(outline, _BODY)
    sh.fill(_rrect(-cw, 0.0, cw, ch, 0.012), _SEC)
    for x in np.linspace(-cw * 0.7, cw * 0.7, 4):
        sh.line([(x, 0.012), (x, ch - 0.008)], _dark(_SEC, 70), 0.006)
    sh.line([(-nw - lip, ch + 0.022), (nw + lip, ch + 0.022)], _dark(_BODY, 110), 0.006)
    return sh


def _sneaker(rng: np.random.Generator, body: np.ndarray) -> _Shape:
    """Side view of a sneaker: random sole height, collar height, toe shape, laces."""
    sh = _Shape(ks=0.15, pillow=1.0)
    soles = [
        np.array([238.0, 236.0, 230.0]),
        np.array([196.0, 142.0, 82.0]),
        np.array([38.0, 38.0, 40.0]),
    ]
    if _lum(body) > 200:
        soles = [*soles[1:], soles[0]]
    r = rng.random()
    sh.sec = soles[0 if r < 0.6 else (1 if r < 0.8 else 2)]
    sh.ter = np.array([242.0, 242.0, 238.0]) if _lum(body) < 170 else _shade_of(body, 0.55)
    length = _u(rng, 2.2, 2.7)
    soh = _u(rng, 0.13, 0.24)
    ys = 1.0 - soh
    yh = _u(rng, 0.0, 0.25)
    toe_h = _u(rng, ys - 0.42, ys - 0.28)
    toe_r = _u(rng, 0.25, 0.5)
    lace_end = _u(rng, 1.3, 1.55)
    upper = [
        (0.06, ys + 0.04),
        (-0.03, ys - 0.25),
        (0.0, yh + 0.12),
        (0.1, yh),
        (0.36, yh + 0.12),
        (0.52, yh + 0.12),
        (0.6, yh - 0.04),
        (0.7, yh + 0.02),
        (lace_end, toe_h - 0.04),
        (length - toe_r, toe_h),
        (length - 0.02, ys - 0.1),
        (length - 0.05, ys + 0.04),
    ]
    up = _chaikin(upper, 3)
    sh.fill(up, _BODY)
    # heel counter and toe cap panels (slightly darker overlays with a seam)
    heel = _chaikin(
        [
            (0.0, ys + 0.03),
            (-0.02, ys - 0.2),
            (0.06, yh + 0.18),
            (0.3, ys - 0.12),
            (0.5, ys + 0.03),
        ],
        2,
    )
    sh.fill(heel, _dark(_BODY, 25))
    sh.line(heel[: len(heel) * 3 // 4], _dark(_BODY, 170), 0.01)
    toe_seam = _chaikin(
        [
            (length - toe_r - 0.3, ys + 0.02),
            (length - toe_r - 0.1, toe_h + 0.09),
            (length - toe_r * 0.4, toe_h + 0.08),
            (length - 0.16, ys - 0.07),
        ],
        2,
        closed=False,
    )
    sh.line(toe_seam, _dark(_BODY, 170), 0.01)
    if rng.random() < 0.6:  # side stripe
        a = _u(rng, 0.45, 0.7)
        stripe = _chaikin([(a, ys), (a + 0.2, ys), (1.45, toe_h + 0.04), (1.33, toe_h - 0.02)], 1)
        sh.fill(stripe, _TER)
    # collar seam, laces and eyelets
    sh.line(
        _chaikin([(0.08, yh + 0.05), (0.36, yh + 0.18), (0.52, yh + 0.17)], 2, closed=False),
        _dark(_BODY, 170),
        0.01,
    )
    p0 = np.array([0.72, yh + 0.07])
    p1 = np.array([lace_end - 0.05, toe_h + 0.0])
    dirv = (p1 - p0) / max(np.linalg.norm(p1 - p0), 1e-6)
    nrm = np.array([dirv[1], -dirv[0]])
    n_l = 4 + _pick(rng, 3)
    centres = [p0 + (p1 - p0) * (k + 0.5) / n_l for k in range(n_l)]
    sh.lines(
        [[c - nrm * 0.05 - dirv * 0.03, c + nrm * 0.05 + dirv * 0.03] for c in centres], _TER, 0.03
    )
    sh.fills([_ellipse(*(c - nrm * 0.07), 0.014, 0.014, n=10) for c in centres], _dark(_BODY))
    sole = _chaikin(
        [
            (-0.02, ys - 0.015),
            (length - 0.2, ys - 0.015),
            (length + 0.03, ys + 0.02),
            (length - 0.08, 1.0),
            (0.15, 1.0),
            (-0.04, 1.0 - soh * 0.45),
        ],
        2,
    )
    sh.fill(sole, _SEC)
    sh.line(sole[(sole[:, 1] < ys + 0.01)], _dark(_SEC, 110), 0.008)
    tread = sole.copy()
    tread[:, 1] = np.maximum(tread[:, 1], 1.0 - soh * 0.3)
    sh.fill(tread, _dark(_SEC, 70))
    return sh


def _handbag(rng: np.random.Generator, body: np.ndarray) -> _Shape:
    """Handbag: trapezoid body, arched handle(s), optional flap with a clasp."""
    sh = _Shape(ks=0.3, ks_ter=0.6)
    sh.sec = _shade_of(body, 0.8) if rng.random() < 0.7 else np.array([120.0, 74.0, 40.0])
    sh.ter = _METALS[_pick(rng, 2)]
    bwb = _u(rng, 1.0, 1.35)
    bwt = bwb * _u(rng, 0.72, 0.95)
    bh = _u(rng, 0.5, 0.7)
    y0 = 1.0 - bh
    r = _u(rng, 0.05, 0.12)
    hx = bwt * _u(rng, 0.22, 0.36)
    hy = _u(rng, 0.24, 0.42)
    hth = _u(rng, 0.035, 0.06)
    two = rng.random() < 0.5
    if two:  # back handle, offset
        arc = _ellipse(0.03, y0 + 0.02, hx * 1.05, hy * 0.95, 180, 360, 40)
        sh.line(arc, _dark(_SEC, 90), hth)
    arc = _ellipse(0, y0 + 0.03, hx, hy, 180, 360, 40)
    sh.line(arc, _SEC, hth)
    outline = _chaikin(
        [
            (-bwt / 2, y0),
            (bwt / 2, y0),
            (bwb / 2 - r * 0.2, 1.0 - r),
            (bwb / 2 - r, 1.0),
            (-bwb / 2 + r, 1.0),
            (-bwb / 2 + r * 0.2, 1.0 - r),
        ],
        2,
    )
    sh.fill(outline, _BODY)
    for sgn in (-1.0, 1.0):
        sh.fill(_ellipse(sgn * hx, y0 + 0.035, hth * 0.9, hth * 1.2, n=16), _TER)
    if rng.random() < 0.6:
        yf = y0 + bh * _u(rng, 0.35, 0.55)
        flap = _chaikin(
            [
                (-bwt / 2 - 0.015, y0 - 0.01),
                (bwt / 2 + 0.015, y0 - 0.01),
                (bwt / 2 + 0.02, y0 + (yf - y0) * 0.5),
                (bwt * 0.3, yf),
                (-bwt * 0.3, yf),
                (-bwt / 2 - 0.02, y0 + (yf - y0) * 0.5),
            ],
            2,
        )
        sh.fill(flap, _dark(_BODY, 20))
        lower = flap[flap[:, 1] > y0 + 0.02]
        sh.line(lower[np.argsort(lower[:, 0])], _dark(_BODY, 200), 0.012)
        sh.fill(_rrect(-0.05, yf - 0.05, 0.05, yf + 0.03, 0.02), _TER)
    else:
        sh.line(
            [(-bwt / 2 + 0.07, y0 + 0.08), (bwt / 2 - 0.07, y0 + 0.08)], _dark(_BODY, 160), 0.01
        )
        pw = bwt * _u(rng, 0.3, 0.45)
        pocket = _rrect(-pw, y0 + bh * 0.35, pw, 1.0 - 0.12, 0.04)
        sh.line(pocket, _dark(_BODY, 160), 0.01, closed=True)
    sh.line(
        _chaikin([(-bwb / 2 + r, 1.0 - 0.045), (bwb / 2 - r, 1.0 - 0.045)], 1, closed=False),
        _dark(_BODY, 140),
        0.008,
    )
    return sh


def _watch(rng: np.random.Generator, body: np.ndarray) -> _Shape:
    """Flat-lay wristwatch: strap of random width, round or square case, dial and hands."""
    sh = _Shape(standing=False, ks=0.12, ks_ter=0.9, pillow=0.8)
    dials = [
        np.array([240.0, 240.0, 236.0]),
        np.array([30.0, 32.0, 36.0]),
        np.array([28.0, 44.0, 90.0]),
    ]
    sh.sec = dials[_pick(rng, 3)]
    sh.ter = _METALS[_pick(rng, 3)]
    sw = _u(rng, 0.22, 0.3)
    r = _u(rng, 0.125, 0.16)
    taper = _u(rng, 0.8, 0.95)
    square = rng.random() < 0.3
    yc = 0.5
    for top in (True, False):
        y_end = 0.0 if top else 1.0
        half = sw / 2
        tip = half * taper
        if top:
            strap = [
                (-half, yc),
                (-tip, y_end + 0.04),
                (-tip * 0.8, y_end),
                (tip * 0.8, y_end),
                (tip, y_end + 0.04),
                (half, yc),
            ]
        else:
            strap = [
                (half, yc),
                (tip, y_end - 0.06),
                (0.0, y_end),
                (-tip, y_end - 0.06),
                (-half, yc),
            ]
        sh.fill(_chaikin(strap, 2), _BODY)
        for sgn in (-1.0, 1.0):
            sh.line(
                [
                    (sgn * (half - 0.018), yc),
                    (sgn * (tip - 0.018), y_end + (0.05 if top else -0.08)),
                ],
                _dark(_BODY, 70),
                0.005,
            )
    holes = [_ellipse(0, 0.77 + 0.045 * k, 0.012, 0.012, n=10) for k in range(3 + _pick(rng, 3))]
    sh.fills(holes, _dark(_BODY))
    # buckle on the top strap
    by = _u(rng, 0.08, 0.14)
    sh.line(
        _rrect(-sw / 2 * taper - 0.02, by - 0.035, sw / 2 * taper + 0.02, by + 0.035, 0.015),
        _TER,
        0.018,
        closed=True,
    )
    # lugs, crown, case, dial
    for sx in (-1.0, 1.0):
        for sy in (-1.0, 1.0):
            x = sx * (sw / 2 - 0.012)
            sh.fill(
                _rrect(
                    x - 0.016,
                    yc + sy * (r + 0.035) - 0.03,
                    x + 0.016,
                    yc + sy * (r + 0.035) + 0.03,
                    0.01,
                ),
                _TER,
            )
    sh.fill(_rrect(r - 0.01, yc - 0.025, r + 0.035, yc + 0.025, 0.01), _TER)
    if square:
        case = _rrect(-r, yc - r, r, yc + r, r * 0.35)
        dial = _rrect(-r * 0.8, yc - r * 0.8, r * 0.8, yc + r * 0.8, r * 0.25)
    else:
        case = _ellipse(0, yc, r, r)
        dial = _ellipse(0, yc, r * 0.8, r * 0.8)
    sh.fill(case, _TER)
    sh.fill(dial, _SEC)
    mark = _dark(_SEC) if _lum(sh.sec) > 128 else (255, 0, 255, 0)
    ang = np.arange(12) * (np.pi / 6)
    unit = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    r0 = np.where(np.arange(12) % 3 == 0, 0.6, 0.66)[:, None] * r
    ticks = np.stack([unit * r0, unit * (r * 0.74)], axis=1) + np.array([0.0, yc])
    sh.lines(list(ticks[0::3]), mark, 0.012)
    sh.lines([t for k, t in enumerate(ticks) if k % 3], mark, 0.006)
    a1, a2 = rng.uniform(0, 2 * np.pi, size=2)
    sh.line([(0, yc), (np.cos(a1) * r * 0.45, yc + np.sin(a1) * r * 0.45)], mark, 0.014)
    sh.line([(0, yc), (np.cos(a2) * r * 0.68, yc + np.sin(a2) * r * 0.68)], mark, 0.009)
    sh.fill(_ellipse(0, yc, 0.012, 0.012, n=10), mark)
    sh.rotate(_u(rng, -30.0, 30.0), (0.0, yc))
    return sh


def _lamp(rng: np.random.Generator, body: np.ndarray) -> _Shape:
    """Table lamp: drum, empire or dome shade over a stem and base of random shape."""
    sh = _Shape(cylinder=True, ks=0.08, ks_ter=0.7)
    sh.sec = _mix(body, np.array([255.0, 240.0, 200.0]), 0.55)
    sh.ter = _METALS[_pick(rng, 3)] if rng.random() < 0.7 else np.array([236.0, 234, 228])
    style = _pick(rng, 3)
    sbr = _u(rng, 0.26, 0.4)
    shh = _u(rng, 0.28, 0.4)
    str_ = sbr * (_u(rng, 0.85, 0.98), _u(rng, 0.5, 0.7), _u(rng, 0.12, 0.2))[style]
    persp = 0.12
    yt = 0.04
    yb = yt + shh
    top = _ellipse(0, yt, str_, str_ * persp, 180, 360, 24)
    bottom = _ellipse(0, yb, sbr, sbr * persp, 0, 180, 32)
    if style == 2:  # dome: curved sides
        t = np.linspace(0, 1, 14)[1:-1]
        side = np.stack([str_ + (sbr - str_) * np.sin(0.5 * np.pi * t), yt + shh * t], axis=1)
        outline = np.concatenate([top, side, bottom, side[::-1] * [-1, 1]])
    else:
        outline = np.concatenate([top, bottom])
    # stem and base (drawn first: the shade covers the top of the stem)
    bh = _u(rng, 0.04, 0.08)
    br = _u(rng, 0.16, 0.28)
    stw = _u(rng, 0.018, 0.035)
    base_style = _pick(rng, 3)
    sh.fill(_rrect(-stw, yb - 0.02, stw, 1.0 - bh * 0.5, stw * 0.5), _TER)
    if base_style == 0:  # disc
        sh.fill(
            np.concatenate(
                [
                    _ellipse(0, 1.0 - bh, br, br * persp, 180, 360, 24),
                    _ellipse(0, 1.0 - br * persp, br, br * persp, 0, 180, 24),
                ]
            ),
            _TER,
        )
    elif base_style == 1:  # vase in the product colour
        vh = _u(rng, 0.25, 0.4)
        vr = _u(rng, 0.12, 0.2)
        t = np.linspace(0, 1, 16)
        prof = np.stack(
            [0.04 + vr * np.sin(np.pi * (0.15 + 0.75 * t)) ** 1.3, 1.0 - vh + vh * t], axis=1
        )
        vase = _mirror(np.concatenate([[(0.035, 1.0 - vh - 0.02)], prof, [(0.0, 1.0)]]))
        sh.fill(vase, _BODY)
    else:  # column on a square foot
        sh.fill(_rrect(-br * 0.8, 1.0 - bh, br * 0.8, 1.0, 0.01), _TER)
        sh.fill(_ellipse(0, yb + (1 - yb) * 0.45, stw * 2.5, stw * 2.5, n=20), _TER)
    sh.fill(outline, _BODY)
    sh.fill(_ellipse(0, yt, str_ * 0.96, str_ * persp * 0.8, n=32), _SEC)
    if rng.random() < 0.5:  # trims
        sh.line(top, _dark(_BODY, 120), 0.012)
        sh.line(bottom, _dark(_BODY, 120), 0.012)
    sh.fill(_ellipse(0, yt - 0.005, 0.02, 0.02, n=16), _TER)
    return sh


def _chair(rng: np.random.Generator, body: np.ndarray) -> _Shape:
    """Chair in a slightly high front view: legs, seat and a solid or slatted back."""
    sh = _Shape(ks=0.08, pillow=0.6)
    woods = [
        np.array([150.0, 100.0, 58.0]),
        np.array([196.0, 158.0, 110.0]),
        np.array([40.0, 36.0, 34.0]),
        np.array([196.0, 196.0, 200.0]),
    ]
    sh.sec = woods[_pick(rng, 4)]
    sw = _u(rng, 0.62, 0.85)
    sy = _u(rng, 0.48, 0.6)
    dep = _u(rng, 0.07, 0.12)
    bwr = _u(rng, 0.8, 0.9)
    st = _u(rng, 0.04, 0.08)
    lw = _u(rng, 0.03, 0.055)
    splay = _u(rng, 0.0, 0.05)
    fx, bx, by = sw / 2, sw * bwr / 2, sy - dep
    back_floor = 1.0 - dep * 0.8
    for sgn in (-1.0, 1.0):  # back legs
        x0 = sgn * (bx - lw * 0.6)
        sh.fill(
            [
                (x0 - lw * 0.4, by),
                (x0 + lw * 0.4, by),
                (x0 + sgn * splay + lw * 0.35, back_floor),
                (x0 + sgn * splay - lw * 0.35, back_floor),
            ],
            _dark(_SEC, 50),
        )
    style = _pick(rng, 3)
    bth = _u(rng, 0.05, 0.09)
    if style == 2:  # frame with horizontal slats: background shows between them
        for sgn in (-1.0, 1.0):
            sh.fill(
                _rrect(sgn * bx - bth / 2, 0.0, sgn * bx + bth / 2, by + 0.01, bth * 0.3), _BODY
            )
        n_s = 2 + _pick(rng, 2)
        for k in range(n_s):
            y = 0.0 + k * (by * 0.55) / max(n_s - 1, 1)
            sh.fill(_rrect(-bx, y, bx, y + _u(rng, 0.07, 0.12), 0.02), _BODY)
    else:
        rtop = (0.03, _u(rng, 0.15, 0.3))[style]
        sh.fill(_rrect(-bx, 0.0, bx, by + 0.02, rtop), _BODY)
        sh.line(
            _rrect(-bx + 0.04, 0.04, bx - 0.04, by - 0.03, max(rtop - 0.03, 0.01)),
            _dark(_BODY, 90),
            0.008,
            closed=True,
        )
    sh.fill([(-fx, sy), (fx, sy), (bx, by), (-bx, by)], _BODY)
    sh.fill(_rrect(-fx, sy - 0.005, fx, sy + st, 0.015), _dark(_BODY, 80))
    sh.line([(-fx + 0.01, sy), (fx - 0.01, sy)], _dark(_BODY, 40), 0.012)
    for sgn in (-1.0, 1.0):  # front legs
        x0 = sgn * (fx - lw * 0.6)
        sh.fill(
            [
                (x0 - lw / 2, sy + st),
                (x0 + lw / 2, sy + st),
                (x0 + sgn * splay + lw * 0.42, 1.0),
                (x0 + sgn * splay - lw * 0.42, 1.0),
            ],
            _SEC,
        )
    if rng.random() < 0.5:  # stretcher
        yr = sy + st + (1.0 - sy - st) * _u(rng, 0.45, 0.65)
        sh.line(
            [(-fx + lw * 0.5 - splay * 0.5, yr), (fx - lw * 0.5 + splay * 0.5, yr)],
            _dark(_SEC, 40),
            lw * 0.5,
        )
    return sh


_BUILDERS: dict[str, Callable[[np.random.Generator, np.ndarray], _Shape]] = {
    "tshirt": _tshirt,
    "mug": _mug,
    "bottle": _bottle,
    "sneaker": _sneaker,
    "handbag": _handbag,
    "watch": _watch,
    "lamp": _lamp,
    "chair": _chair,
}

# --------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------

_TINTS = (
    np.array([0.0, 0.0, 0.0]),
    np.array([3.0, 1.0, -4.0]),  # warm
    np.array([-3.0, 0.0, 4.0]),  # cool
)


def _background(rng: np.random.Generator, kind: str, h: int, w: int) -> np.ndarray:
    """Light studio background, planar float32 broadcastable to (3, H, W)."""
    tint = (_TINTS[_pick(rng, len(_TINTS))] * _u(rng, 0.5, 1.5)).astype(np.float32)
    if kind == "white":
        level = np.float32(_u(rng, 246.0, 255.0))
        return np.minimum(level + tint * np.float32(0.4), 255.0)[:, None, None]
    if kind == "gradient":
        top = _u(rng, 238.0, 252.0)
        bottom = top - _u(rng, 14.0, 34.0)
        if rng.random() < 0.5:  # vertical sweep
            t = (np.linspace(0.0, 1.0, h, dtype=np.float32) ** 1.3)[None, :, None]
        else:  # radial: bright behind the product
            yy = (np.arange(h, dtype=np.float32)[:, None] - h * 0.45) / h
            xx = (np.arange(w, dtype=np.float32)[None, :] - w * 0.5) / w
            t = np.minimum((xx * xx + yy * yy) * 2.2, 1.0)[None]
        col_top = (np.float32(top) + tint)[:, None, None]
        col_bot = (np.float32(bottom) + tint * np.float32(1.6))[:, None, None]
        return col_top + (col_bot - col_top) * t
    base = np.float32(_u(rng, 222.0, 242.0))
    amp = np.float32(_u(rng, 2.0, 4.5))
    fine = rng.random(((h + 1) // 2, (w + 1) // 2), dtype=np.float32) - np.float32(0.5)
    tex = cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR) * (amp * np.float32(3.0))
    if rng.random() < 0.5:  # linen: thread-like rows and columns
        rows = rng.standard_normal(h, dtype=np.float32)[:, None]
        cols = rng.standard_normal(w, dtype=np.float32)[None, :]
        tex = tex * np.float32(0.6) + (rows + cols) * (amp * np.float32(0.8))
    else:  # paper: soft blotches
        blot = rng.standard_normal((5, 5), dtype=np.float32)
        tex = tex + cv2.resize(blot, (w, h), interpolation=cv2.INTER_CUBIC) * (amp * 0.6)
    return (tex + base)[None] + tint[:, None, None]


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

_LIGHT = np.array([-0.45, -0.55, 1.0]) / np.linalg.norm([-0.45, -0.55, 1.0])
_HALF = (_LIGHT + np.array([0.0, 0.0, 1.0])) / np.linalg.norm(_LIGHT + np.array([0.0, 0.0, 1.0]))
_AMBIENT = 0.42
#: Canvas supersampling up to 192 px (2x above): edges are also drawn with LINE_AA.
_SUPERSAMPLE = 4
_F32 = np.float32


def _col(rgb: np.ndarray) -> np.ndarray:
    """An RGB triple as a (3, 1, 1) float32 array, to broadcast over planar images."""
    return np.asarray(rgb, dtype=np.float32).reshape(3, 1, 1)


def _parse_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    elif (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    ):
        h, w = int(size[0]), int(size[1])
    else:
        raise ValueError(f"size must be an int or a (height, width) pair of ints, got {size!r}")
    if not (MIN_SIZE <= h <= MAX_SIZE and MIN_SIZE <= w <= MAX_SIZE):
        raise ValueError(
            f"size {size!r} out of range: height and width must be {MIN_SIZE}..{MAX_SIZE} px"
        )
    return h, w


def _check_name(what: str, value: str | None, valid: Iterable[str]) -> None:
    valid = tuple(valid)
    if value is not None and value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int]) -> np.ndarray:
    c = np.asarray(rgb, dtype=np.float64)
    c = c * _u(rng, 0.95, 1.04) + rng.normal(0.0, 5.0, 3)
    return np.clip(c, 0, 255)


def _far_colours(name: str, k: int = 4) -> tuple[str, ...]:
    main = np.asarray(COLOURS[name], dtype=np.float64)
    names = [n for n in COLOURS if n != name]
    dist = [float(np.linalg.norm(np.asarray(COLOURS[n]) - main)) for n in names]
    return tuple(names[i] for i in np.argsort(dist)[::-1][:k])


#: For each colour, the four most distant ones: candidates for the pattern colour.
_FAR = {name: _far_colours(name) for name in COLOURS}


def _contrast_colour(rng: np.random.Generator, name: str) -> np.ndarray:
    far = _FAR[name]
    return _jitter(rng, COLOURS[far[_pick(rng, len(far))]])


def _pattern_weight(
    rng: np.random.Generator,
    pattern: str,
    ox: np.ndarray,
    oy: np.ndarray,
    s: float,
    bbox: tuple[float, float, float, float],
) -> np.ndarray | None:
    """Anti-aliased coverage (0..1) of the contrasting colour, from object coordinates."""
    if pattern == "solid":
        return None
    s = _F32(s)
    if pattern == "stripes":
        ang = np.radians((0.0, 0.0, 90.0, 45.0)[_pick(rng, 4)])
        period = _F32(_u(rng, 0.07, 0.14))
        duty = _F32(_u(rng, 0.2, 0.33))
        v = (ox * _F32(np.sin(ang)) + oy * _F32(np.cos(ang))) / period
        d = np.abs(v - np.floor(v) - _F32(0.5)) * period
        return np.clip((duty * period * _F32(0.5) - d) * s + _F32(0.5), 0.0, 1.0)
    if pattern == "dots":
        period = _F32(_u(rng, 0.07, 0.12))
        rad = period * _F32(_u(rng, 0.14, 0.21))
        u, v = ox / period, oy / period
        row = np.floor(v + _F32(0.5))
        u = u + _F32(0.5) * (row % 2)
        du = u - np.round(u)
        dv = v - row
        dist = np.sqrt(du * du + dv * dv) * period
        return np.clip((rad - dist) * s + _F32(0.5), 0.0, 1.0)
    # two-tone: a colour block over one end of the product
    _, y0, _, y1 = bbox
    frac = _u(rng, 0.2, 0.3)
    tilt = _F32(_u(rng, -0.25, 0.25))
    if rng.random() < 0.5:
        edge = _F32(y1 - frac * (y1 - y0))
        return np.clip((oy - edge - tilt * ox) * s + _F32(0.5), 0.0, 1.0)
    edge = _F32(y0 + frac * (y1 - y0))
    return np.clip((edge - oy - tilt * ox) * s + _F32(0.5), 0.0, 1.0)


def _draw(
    shape: _Shape,
    pts: np.ndarray,
    roi: tuple[int, int, int, int],
    ss: int,
) -> np.ndarray:
    """Rasterise the shape on a supersampled canvas, reduced to the ROI: uint8 (h, w, 4).

    ``pts`` are all the ops' points already in supersampled, 3-bit fixed-point canvas units.
    The reduction is a box filter done as exact 2x halvings (much faster than INTER_AREA).
    """
    x0, y0, x1, y1 = roi
    canvas = np.zeros(((y1 - y0) * ss, (x1 - x0) * ss, 4), np.uint8)
    i = 0
    for is_line, polys, mat, _width, closed, px_width in shape.ops:
        chunk = []
        for p in polys:
            chunk.append(pts[i : i + len(p)])
            i += len(p)
        if is_line:
            th = max(1, round(px_width))
            cv2.polylines(canvas, chunk, closed, mat, thickness=th, lineType=cv2.LINE_AA, shift=3)
        else:
            cv2.fillPoly(canvas, chunk, mat, lineType=cv2.LINE_AA, shift=3)
    while ss > 1:
        hh, ww = canvas.shape[0] // 2, canvas.shape[1] // 2
        canvas = cv2.resize(canvas, (ww, hh), interpolation=cv2.INTER_LINEAR)
        ss //= 2
    return canvas


def _smooth(img: np.ndarray, sigma: float, target: float = 1.5) -> tuple[np.ndarray, int]:
    """Gaussian blur with zero borders, done at 1/f resolution so large sigmas stay cheap.

    Returns the blurred map at the reduced resolution and ``f``.
    """
    f = max(1, int(sigma / target))
    if f > 1:
        h, w = img.shape[:2]
        img = cv2.resize(img, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_LINEAR)
    out = cv2.GaussianBlur(img, (0, 0), sigma / f, borderType=cv2.BORDER_CONSTANT)
    return out, f


def _up(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if img.shape[0] == h and img.shape[1] == w:
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def _cylinder(a: np.ndarray, axis_x: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row cylinder coordinate of a turned object with axis at column ``axis_x``.

    Returns ``u`` in (-1, 1) (clipped), the mask where the row's cylinder applies, and each
    row's radius in pixels, from the left silhouette edge (handles stick out on the right).
    """
    inside = a > 0.5
    has = inside.any(axis=1)
    left = np.argmax(inside, axis=1).astype(np.float32)
    hw = np.maximum(np.where(has, axis_x - left + 0.5, 0.0).astype(np.float32), _F32(0.5))
    xs = np.arange(a.shape[1], dtype=np.float32)[None, :]
    u = (xs - _F32(axis_x)) / hw[:, None]
    cyl = (np.abs(u) < 1.0) & has[:, None]
    return np.clip(u, _F32(-0.999), _F32(0.999)), cyl, hw


def _shading(
    a: np.ndarray,
    shape: _Shape,
    cyl: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    obj_px: float,
    ny0: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Diffuse factor and specular term over the ROI (float32, h x w each)."""
    h, w = a.shape
    sig = max(1.0, 0.045 * obj_px)
    hgt, f = _smooth(a, sig)
    gx = cv2.Sobel(hgt, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_CONSTANT)
    gy = cv2.Sobel(hgt, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_CONSTANT)
    k = _F32(-shape.pillow * 2.6 * sig / (8.0 * f))
    nx = _up(gx, w, h) * k
    ny = _up(gy, w, h) * k
    nz = None
    if cyl is not None:
        uc, mask, _ = cyl
        nx = np.where(mask, uc, nx)
        ny = np.where(mask, ny * _F32(0.35), ny)
        nz = np.where(mask, np.sqrt(1.0 - uc * uc), _F32(1.0))
    if nz is None:
        inv = _F32(1.0) / np.sqrt(nx * nx + ny * ny + _F32(1.0))
        nz = inv
    else:
        inv = _F32(1.0) / np.sqrt(nx * nx + ny * ny + nz * nz)
        nz = nz * inv
    nx = nx * inv
    ny = ny * inv
    lx, ly, lz = (_F32(v) for v in _LIGHT)
    ndl = nx * lx + ny * ly + nz * lz
    diffuse = _F32(_AMBIENT) + _F32((1 - _AMBIENT) / lz) * np.maximum(ndl, _F32(0.0))
    diffuse = np.minimum(diffuse, _F32(1.18)) * (_F32(1.05) - _F32(0.1) * ny0)
    hx, hy, hz = (_F32(v) for v in _HALF)
    c0 = _F32(0.97 if shape.cylinder else float(_HALF[2]) + 0.005)
    spec = np.clip((nx * hx + ny * hy + nz * hz - c0) * _F32(1.0 / (1.0 - c0)), 0.0, 1.0)
    return diffuse, spec * spec


def _shadow(
    alpha: np.ndarray, shape: _Shape, obj_px: float, ground_y: float, rng: np.random.Generator
) -> np.ndarray:
    """Soft shadow opacity (float32 H x W, 0..1): drop shadow, plus contact shadow if standing.

    Computed at about 48 px resolution (it is smooth) and scaled up.
    """
    h, w = alpha.shape
    f = max(1, min(h, w) // 48)
    small = alpha if f == 1 else cv2.resize(alpha, (w // f, h // f), interpolation=cv2.INTER_AREA)
    sh_, sw_ = small.shape
    px = obj_px / f
    dx = round(px * _u(rng, 0.015, 0.035))
    dy = round(px * _u(rng, 0.02, 0.04))
    drop = np.zeros_like(small)
    drop[dy:, dx:] = small[: sh_ - dy, : sw_ - dx]
    strength = _u(rng, 0.08, 0.14) if shape.standing else _u(rng, 0.16, 0.26)
    out = cv2.GaussianBlur(drop, (0, 0), max(0.8, px * 0.035)) * _F32(strength)
    if shape.standing:
        gy = ground_y / f
        band = small[max(0, int(gy - px * 0.06)) : int(gy) + 1]
        cols = np.nonzero(band.max(axis=0) > 0.3)[0] if band.size else np.zeros(0)
        if cols.size:
            cx = (cols[0] + cols[-1]) / 2
            rx = (cols[-1] - cols[0]) / 2 * 1.05 + px * 0.02
            ry = max(0.7, px * 0.035)
            cont = np.zeros_like(small)
            cv2.ellipse(
                cont,
                (round(cx * 16), round(gy * 16)),
                (round(rx * 16), round(ry * 16)),
                0,
                0,
                360,
                1.0,
                -1,
                cv2.LINE_AA,
                shift=4,
            )
            cont = cv2.GaussianBlur(cont, (0, 0), max(0.8, px * 0.03))
            out = np.maximum(out, cont * _F32(_u(rng, 0.3, 0.45)))
    return _up(out, w, h)


def render(
    seed: int,
    size: int | tuple[int, int] = 128,
    *,
    category: str | None = None,
    colour: str | None = None,
    background: str | None = None,
    pattern: str | None = None,
) -> Product:
    """Render the catalog photo identified by ``seed``.

    ``size`` is an int (square) or ``(height, width)``, each 64..512 px. ``category``,
    ``colour``, ``background`` and ``pattern`` force that attribute; ``None`` lets the seed
    choose. The same arguments always give the same bytes.
    """
    h, w = _parse_size(size)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _check_name("category", category, CATEGORIES)
    _check_name("colour", colour, COLOURS)
    _check_name("background", background, BACKGROUNDS)
    _check_name("pattern", pattern, PATTERNS)

    rng = np.random.default_rng(int(seed))
    # draw every attribute even when forced, so forcing one does not reshuffle the others
    cat = CATEGORIES[_pick(rng, len(CATEGORIES))]
    col = _COLOUR_NAMES[_pick(rng, len(_COLOUR_NAMES))]
    bg_kind = BACKGROUNDS[_pick(rng, len(BACKGROUNDS))]
    pat = PATTERNS[int(np.searchsorted(_PATTERN_CDF, rng.random(), side="right"))]
    cat = category or cat
    col = colour or col
    bg_kind = background or bg_kind
    pat = pattern or pat

    main = _jitter(rng, COLOURS[col])
    contrast = _contrast_colour(rng, col)
    shape = _BUILDERS[cat](rng, main)

    # placement: the larger relative dimension fills 50-85 % of the frame, small offset
    allp = np.concatenate([p for op in shape.ops for p in op[1]])
    pad = max((op[3] for op in shape.ops), default=0.0) / 2
    bx0, by0 = allp.min(axis=0) - pad
    bx1, by1 = allp.max(axis=0) + pad
    bw_o, bh_o = bx1 - bx0, by1 - by0
    s = _u(rng, 0.5, 0.85) * min(w / bw_o, h / bh_o)
    free_x = max(0.0, (w - bw_o * s) / 2 - 2)
    free_y = max(0.0, (h - bh_o * s) / 2 - 2)
    cx = w / 2 + _u(rng, -1, 1) * min(0.05 * w, free_x)
    cy = h / 2 + _u(rng, -1, 1) * min(0.05 * h, free_y)
    off = np.array([cx - s * (bx0 + bx1) / 2, cy - s * (by0 + by1) / 2])
    rx0 = max(0, int(np.floor(bx0 * s + off[0])) - 2)
    ry0 = max(0, int(np.floor(by0 * s + off[1])) - 2)
    rx1 = min(w, int(np.ceil(bx1 * s + off[0])) + 3)
    ry1 = min(h, int(np.ceil(by1 * s + off[1])) + 3)
    ss = _SUPERSAMPLE if max(h, w) <= 192 else 2
    fixed = np.round(((allp * s + (off - (rx0, ry0)) + 0.5) * ss - 0.5) * 8.0).astype(np.int32)
    shape.ops = [(*op, op[3] * s * ss) for op in shape.ops]
    planes = cv2.split(_draw(shape, fixed, (rx0, ry0, rx1, ry1), ss))
    inv255 = _F32(1.0 / 255.0)
    a = planes[0].astype(np.float32) * inv255
    inv = _F32(1.0) / np.maximum(a, _F32(1e-3))
    ws = np.minimum(planes[1] * (inv * inv255), _F32(1.0))
    wt = np.minimum(planes[2] * (inv * inv255), _F32(1.0))
    wd = np.minimum(planes[3] * (inv * inv255), _F32(1.0))
    wb = np.maximum(_F32(1.0) - ws - wt, _F32(0.0))

    ys = np.arange(ry0, ry1, dtype=np.float32)[:, None]
    xs = np.arange(rx0, rx1, dtype=np.float32)[None, :]
    ox = (xs - _F32(off[0])) / _F32(s)
    oy = (ys - _F32(off[1])) / _F32(s)
    cyl = _cylinder(a, float(off[0] - rx0)) if shape.cylinder else None
    if cyl is not None and pat != "two-tone":  # wrap the pattern around the cylinder
        uc, mask, hw = cyl
        ox = np.where(mask, np.arcsin(uc) * (hw / _F32(s))[:, None], ox)
    pw = _pattern_weight(rng, pat, ox, oy, s, (bx0, by0, bx1, by1))

    obj_px = max(bw_o, bh_o) * s
    ny0 = np.clip((oy - _F32(by0)) / _F32(bh_o), 0.0, 1.0)
    diffuse, spec = _shading(a, shape, cyl, obj_px, ny0)
    spec = spec * (_F32(shape.ks) + _F32(shape.ks_ter) * wt) * _F32(255.0)

    # albedo mix -> detail darkening -> lighting, as planar (3, h, w) float32 math
    body = _col(main) if pw is None else _col(main) + _col(contrast - main) * pw
    alb = body * wb
    alb += _col(shape.sec) * ws + _col(shape.ter) * wt
    lum = alb[0] * _F32(0.299) + alb[1] * _F32(0.587) + alb[2] * _F32(0.114)
    lift = (lum < 60).astype(np.float32) * _F32(40.0) * wd
    keep = _F32(1.0) - _F32(0.58) * wd
    prod = (alb * keep + lift) * diffuse + spec

    alpha_full = np.zeros((h, w), np.float32)
    alpha_full[ry0:ry1, rx0:rx1] = a
    bg = _background(rng, bg_kind, h, w)
    shadow = _shadow(alpha_full, shape, obj_px, by1 * s + off[1], rng)
    plane = bg * (_F32(1.0) - shadow)
    roi = plane[:, ry0:ry1, rx0:rx1]
    roi += (prod - roi) * a
    np.clip(plane, 0.0, 254.5, out=plane)
    plane += _F32(0.5)
    u8 = plane.astype(np.uint8)
    image = cv2.merge([u8[0], u8[1], u8[2]])
    alpha = (alpha_full * _F32(255.0) + _F32(0.5)).astype(np.uint8)
    return Product(
        image=image,
        alpha=alpha,
        category=cat,
        colour=col,
        background=bg_kind,
        pattern=pat,
        seed=int(seed),
    )


def render_batch(
    seeds: Iterable[int], size: int | tuple[int, int] = 128, **kw: str | None
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Render many seeds: images (N, H, W, 3) uint8, alphas (N, H, W) uint8, (category, colour).

    ``kw`` are the keyword arguments of :func:`render` (category, colour, background, pattern).
    """
    h, w = _parse_size(size)
    seeds = list(seeds)
    images = np.empty((len(seeds), h, w, 3), np.uint8)
    alphas = np.empty((len(seeds), h, w), np.uint8)
    labels = []
    for i, sd in enumerate(seeds):
        p = render(sd, (h, w), **kw)
        images[i] = p.image
        alphas[i] = p.alpha
        labels.append((p.category, p.colour))
    return images, alphas, labels


def split_seeds(split: str, n: int, start: int = 0) -> np.ndarray:
    """``n`` seeds of ``split`` ("train", "val" or "test") from offset ``start`` (int64).

    The splits are disjoint seed ranges, so held-out images are never trained on.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    first, count = SPLITS[split]
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be non-negative, got n={n}, start={start}")
    if start + n > count:
        raise ValueError(f"split {split!r} has {count} seeds; start={start} + n={n} goes beyond it")
    return np.arange(first + start, first + start + n, dtype=np.int64)
