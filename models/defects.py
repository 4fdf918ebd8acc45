"""Synthetic local defects of product photos: what a defect detector marks and an inpainter
removes.

Supplier photos arrive with *local* damage, unlike the global problems of
:mod:`vetrina.models.degrade`: a scratched print or scan, dust on the sensor or the scanner
glass, a stain on the product or the print, a stock-photo watermark, or a patch saved as a
very low quality JPEG. Each kind is drawn clearly visible at any size from 64 to 512 px (every
length scales with the shorter image side, relative to 128 px):

* ``scratch``: 1-3 thin, slightly curved strokes, light or dark, nearly opaque;
* ``dust``: 6-24 small dark or light specks and short curly hairs;
* ``stain``: 1-2 soft, blotchy, tinted blobs (coffee, tea, water, rust, ink), multiplied
  into the image with a darker drying ring at the edge;
* ``watermark``: semi-transparent text ("SAMPLE", "© SHOP", ...) in white, grey or black,
  either one large rotated word or a rotated tiling of small ones;
* ``jpeg``: the whole image, or a 16-px aligned rectangle of it, re-encoded at JPEG quality
  5-12 (blocking, ringing, colour bleeding).

:func:`add_defects` applies each requested kind with probability ``p`` (at least one always
is), in the physical order :data:`ORDER` (stains on the product, then scratches and dust on
the print or glass, then the digital watermark, then the lossy save), and returns the
defective image, the ground-truth mask and the parameters it used. Everything is drawn from
the caller's ``np.random.Generator``, so the result is deterministic given its state. Only
numpy and OpenCV are used.

The mask (uint8, 0 or 255) is exactly the union of

* the pixels whose value the overlay kinds (scratch, dust, stain, watermark) changed by at
  least :data:`VISIBLE_LEVELS` levels in some channel, measured on the uint8 image before any
  JPEG step: ``max_c |before_jpeg - image| >= VISIBLE_LEVELS``;
* the 8x8 blocks (on the image's own grid, partial blocks at the right/bottom edge included)
  inside the JPEG region where the re-encoding changed the pixels by at least
  :data:`JPEG_BLOCK_LEVELS` levels on average (the mean over the block of the per-pixel
  maximum over channels of ``|after_jpeg - before_jpeg|``).

So a faint defect (a white watermark on a white background) is not in the mask, every masked
pixel was visibly changed, and pixels outside the mask and outside the JPEG region differ
from the input by less than :data:`VISIBLE_LEVELS` levels, which makes IoU against it a
meaningful score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

__all__ = [
    "JPEG_BLOCK_LEVELS",
    "KINDS",
    "ORDER",
    "VISIBLE_LEVELS",
    "add_defects",
    "add_defects_batch",
]

KINDS: tuple[str, ...] = ("scratch", "dust", "stain", "watermark", "jpeg")

#: Order of application: the physical defects of the product and the print, then the
#: digital watermark, then the lossy save.
ORDER: tuple[str, ...] = ("stain", "scratch", "dust", "watermark", "jpeg")

#: A pixel is in the mask when an overlay changed some channel by at least this many levels.
VISIBLE_LEVELS = 16

#: An 8x8 JPEG block is in the mask when its mean (max-channel) error is at least this.
JPEG_BLOCK_LEVELS = 2.0

WATERMARK_TEXTS: tuple[str, ...] = (
    "SAMPLE",
    "© SHOP",
    "PREVIEW",
    "PROOF",
    "© STUDIO",
    "DEMO",
    "COPY",
)

#: Stain tints (RGB), multiplied into the image.
STAIN_TINTS: dict[str, tuple[int, int, int]] = {
    "coffee": (150, 96, 50),
    "tea": (200, 160, 80),
    "water": (150, 155, 170),
    "rust": (175, 90, 55),
    "ink": (90, 110, 180),
}

_SHIFT = 4  # fixed-point bits for sub-pixel OpenCV drawing
_ONE = 1 << _SHIFT
_FONT = cv2.FONT_HERSHEY_DUPLEX

Params = dict[str, Any]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * rng.random())


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[min(int(rng.random() * len(options)), len(options) - 1)]


def _scale(x: np.ndarray) -> float:
    """Lengths are drawn for a 128-px image and scaled by the shorter side."""
    return min(x.shape[:2]) / 128.0


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _over(x: np.ndarray, alpha: np.ndarray, colour: Sequence[float]) -> np.ndarray:
    """Alpha-composite a flat colour over ``x`` (float32 HxWx3) with coverage ``alpha``."""
    a = alpha[..., None].astype(np.float32)
    return x * (1.0 - a) + np.asarray(colour, np.float32) * a


def _curve(
    rng: np.random.Generator, start: np.ndarray, length: float, bend: float, n: int = 24
) -> np.ndarray:
    """A quadratic Bezier of about ``length`` px from ``start`` in a random direction."""
    theta = _u(rng, 0.0, 2.0 * np.pi)
    direction = np.array([np.cos(theta), np.sin(theta)])
    normal = np.array([-direction[1], direction[0]])
    end = start + direction * length
    ctrl = (start + end) / 2.0 + normal * length * bend
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * ctrl + t**2 * end


def _scratch(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """1-3 thin curved strokes, each light or dark, opacity 0.75-1."""
    h, w = x.shape[:2]
    s = _scale(x)
    side = min(h, w)
    strokes = []
    for _ in range(int(rng.integers(1, 4))):
        start = np.array([_u(rng, 0, w), _u(rng, 0, h)])
        length = _u(rng, 0.3, 0.9) * side
        pts = _curve(rng, start, length, _u(rng, -0.25, 0.25))
        pts += rng.normal(0.0, 0.3 * s, pts.shape)  # a slightly shaky hand
        thickness = max(1, round(_u(rng, 0.9, 2.2) * s))
        light = rng.random() < 0.5
        grey = _u(rng, 205, 255) if light else _u(rng, 10, 60)
        opacity = _u(rng, 0.75, 1.0)
        canvas = np.zeros((h, w), np.uint8)
        cv2.polylines(canvas, [_fixed(pts)], False, 255, thickness, cv2.LINE_AA, _SHIFT)
        x = _over(x, canvas * np.float32(opacity / 255.0), (grey, grey, grey))
        strokes.append({"length": length, "thickness": thickness, "grey": grey, "opacity": opacity})
    return x, {"count": len(strokes), "strokes": strokes}


def _dust(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """6-24 specks (discs of radius 0.7-2.2 px at 128) and short hairs, mostly dark."""
    h, w = x.shape[:2]
    s = _scale(x)
    dark = np.zeros((h, w), np.uint8)
    light = np.zeros((h, w), np.uint8)
    count = int(rng.integers(6, 25))
    hairs = 0
    for _ in range(count):
        canvas = light if rng.random() < 0.3 else dark
        centre = np.array([_u(rng, 0, w), _u(rng, 0, h)])
        if rng.random() < 0.75:
            radius = max(0.7, _u(rng, 0.7, 2.2) * s)
            cv2.circle(
                canvas, tuple(int(v) for v in _fixed(centre)[0, 0]), round(radius * _ONE),
                255, -1, cv2.LINE_AA, _SHIFT,
            )  # fmt: skip
        else:
            hairs += 1
            pts = _curve(rng, centre, _u(rng, 5.0, 14.0) * s, _u(rng, -0.6, 0.6), n=12)
            cv2.polylines(
                canvas, [_fixed(pts)], False, 255, max(1, round(0.8 * s)), cv2.LINE_AA, _SHIFT
            )
    dark_grey, light_grey = _u(rng, 10, 60), _u(rng, 215, 250)
    opacity = _u(rng, 0.75, 0.95)
    x = _over(x, dark * np.float32(opacity / 255.0), (dark_grey,) * 3)
    x = _over(x, light * np.float32(opacity / 255.0), (light_grey,) * 3)
    return x, {
        "count": count,
        "hairs": hairs,
        "opacity": opacity,
        "dark_grey": dark_grey,
        "light_grey": light_grey,
    }


def _stain(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """1-2 soft blotchy blobs (radius 8-22% of the shorter side), tint multiplied in."""
    h, w = x.shape[:2]
    side = min(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stains = []
    for _ in range(int(rng.integers(1, 3))):
        cy, cx = _u(rng, 0.1, 0.9) * h, _u(rng, 0.1, 0.9) * w
        radius = _u(rng, 0.08, 0.22) * side
        aspect = _u(rng, 0.7, 1.4)
        dist = np.sqrt(((xx - cx) / aspect) ** 2 + ((yy - cy) * aspect) ** 2) / radius
        # low-frequency noise makes the outline blotchy
        noise = cv2.resize(
            rng.standard_normal((6, 6)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
        )
        field = 1.0 - dist**2 + 0.3 * noise
        edge = 0.25
        body = np.clip(field / edge, 0.0, 1.0)
        body = body * body * (3.0 - 2.0 * body)  # smoothstep: soft edge
        ring = np.exp(-(((field - 0.1) / 0.08) ** 2)) * (field > -0.1)
        ring_strength = _u(rng, 0.0, 0.6)
        opacity = _u(rng, 0.35, 0.65)
        alpha = np.clip(opacity * (body + ring_strength * ring), 0.0, 1.0)
        name = _pick(rng, tuple(STAIN_TINTS))
        tint = np.asarray(STAIN_TINTS[name], np.float32) / 255.0
        x = x * (1.0 - alpha[..., None] * (1.0 - tint))
        stains.append({"tint": name, "radius": radius, "opacity": opacity, "ring": ring_strength})
    return x, {"count": len(stains), "stains": stains}


def _text_size(text: str, scale: float, thickness: int) -> tuple[int, int]:
    (tw, th), _ = cv2.getTextSize(text.replace("©", "(c)"), _FONT, scale, thickness)
    return tw, th


def _put_text(
    canvas: np.ndarray, text: str, org: tuple[float, float], scale: float, thickness: int
) -> None:
    """cv2.putText with a drawn © (the Hershey fonts have no such glyph)."""
    x, y = org
    if text.startswith("©"):
        tw, th = _text_size("(c)", scale, thickness)
        radius = max(1.0, 0.62 * th)
        centre = (x + tw / 2.0, y - th / 2.0)
        cv2.circle(
            canvas, tuple(int(v) for v in _fixed(centre)[0, 0]), round(radius * _ONE),
            255, max(1, thickness // 2), cv2.LINE_AA, _SHIFT,
        )  # fmt: skip
        cw, ch = _text_size("c", 0.55 * scale, max(1, thickness // 2))
        cv2.putText(
            canvas, "c", (round(centre[0] - cw / 2), round(centre[1] + ch / 2)), _FONT,
            0.55 * scale, 255, max(1, thickness // 2), cv2.LINE_AA,
        )  # fmt: skip
        text = text[1:]
        x += tw
    cv2.putText(canvas, text, (round(x), round(y)), _FONT, scale, 255, thickness, cv2.LINE_AA)


def _watermark(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Semi-transparent text: one large rotated word, or a rotated tiling of small ones."""
    h, w = x.shape[:2]
    s = _scale(x)
    text = _pick(rng, WATERMARK_TEXTS)
    tiled = rng.random() < 0.4
    angle = _u(rng, -35.0, 35.0)
    big = int(np.ceil(np.hypot(h, w))) + 2
    canvas = np.zeros((big, big), np.uint8)
    unit_w, _ = _text_size(text, 1.0, 1)
    if tiled:
        width = _u(rng, 0.3, 0.45) * min(h, w)
        scale = width / unit_w
        thickness = max(1, round(_u(rng, 1.0, 1.6) * s))
        tw, th = _text_size(text, scale, thickness)
        step_x, step_y = max(2.0, tw * _u(rng, 1.3, 1.7)), max(2.0, th * _u(rng, 2.5, 3.5))
        offset = _u(rng, 0.0, 1.0)
        for row, y in enumerate(np.arange(th + _u(rng, 0, step_y), big, step_y)):
            shift = ((offset + 0.5 * row) % 1.0) * step_x
            for xx in np.arange(-shift, big, step_x):
                _put_text(canvas, text, (xx, y), scale, thickness)
    else:
        width = _u(rng, 0.55, 0.9) * min(h, w)
        scale = width / unit_w
        thickness = max(1, round(_u(rng, 1.6, 2.8) * s))
        tw, th = _text_size(text, scale, thickness)
        cx, cy = big / 2 + _u(rng, -0.15, 0.15) * w, big / 2 + _u(rng, -0.15, 0.15) * h
        _put_text(canvas, text, (cx - tw / 2, cy + th / 2), scale, thickness)
    rot = cv2.getRotationMatrix2D((big / 2, big / 2), angle, 1.0)
    rot[:, 2] -= ((big - w) / 2, (big - h) / 2)
    alpha = cv2.warpAffine(canvas, rot, (w, h), flags=cv2.INTER_LINEAR)
    r = rng.random()
    grey = 255.0 if r < 0.45 else (_u(rng, 120, 180) if r < 0.75 else _u(rng, 0, 40))
    opacity = _u(rng, 0.3, 0.55)
    x = _over(x, alpha * np.float32(opacity / 255.0), (grey, grey, grey))
    return x, {
        "text": text,
        "tiled": tiled,
        "angle": angle,
        "scale": scale,
        "thickness": thickness,
        "grey": grey,
        "opacity": opacity,
    }


def _jpeg(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """The whole image (40%) or a 16-px aligned rectangle re-encoded at quality 5-12."""
    h, w = x.shape[:2]
    quality = int(rng.integers(5, 13))
    if rng.random() < 0.4 or min(h, w) < 32:
        y0, x0, y1, x1 = 0, 0, h, w
    else:
        rh, rw = round(_u(rng, 0.35, 0.8) * h), round(_u(rng, 0.35, 0.8) * w)
        y0 = int(_u(rng, 0, h - rh)) // 16 * 16
        x0 = int(_u(rng, 0, w - rw)) // 16 * 16
        y1, x1 = min(h, y0 + max(16, rh)), min(w, x0 + max(16, rw))
    patch = np.ascontiguousarray(x[y0:y1, x0:x1, ::-1])
    ok, data = cv2.imencode(".jpg", patch, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR patch
        raise RuntimeError("cv2.imencode failed")
    out = x.copy()
    out[y0:y1, x0:x1] = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    return out, {"quality": quality, "region": (y0, x0, y1, x1), "bytes": int(data.size)}


def _block_mask(error: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    """8x8 blocks (image grid) inside ``region`` whose mean of ``error`` (HxW) is large."""
    h, w = error.shape
    y0, x0, y1, x1 = region
    inside = np.zeros((h, w), bool)
    inside[y0:y1, x0:x1] = True
    ph, pw = -(-h // 8) * 8, -(-w // 8) * 8
    err = np.zeros((ph, pw), np.float64)
    err[:h, :w] = np.where(inside, error, 0.0)
    cnt = np.zeros((ph, pw), np.float64)
    cnt[:h, :w] = inside
    sums = err.reshape(ph // 8, 8, pw // 8, 8).sum(axis=(1, 3))
    counts = cnt.reshape(ph // 8, 8, pw // 8, 8).sum(axis=(1, 3))
    blocks = (counts > 0) & (sums >= JPEG_BLOCK_LEVELS * np.maximum(counts, 1))
    full = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)[:h, :w]
    return full & inside


_OVERLAYS: dict[str, Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, Params]]] = {
    "scratch": _scratch,
    "dust": _dust,
    "stain": _stain,
    "watermark": _watermark,
}


def _check_kinds(kinds: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = (kinds,)
    try:
        kinds = tuple(kinds)
    except TypeError:
        raise ValueError(
            f"kinds must be a sequence of names from {', '.join(KINDS)}, got {type(kinds).__name__}"
        ) from None
    if not kinds:
        raise ValueError(f"kinds is empty; choose from {', '.join(KINDS)}")
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown defect kind {k!r}; valid: {', '.join(KINDS)}")
    return tuple(k for k in ORDER if k in kinds)


def _check_image(image: Any) -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be uint8 (H, W, 3) RGB, got {image.dtype} with shape {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image is empty: shape {image.shape}")


def _check_common(rng: Any, p: Any) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")


def add_defects(
    image: np.ndarray,
    rng: np.random.Generator,
    kinds: Sequence[str] = KINDS,
    *,
    p: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, dict[str, Params]]:
    """Damage a uint8 (H, W, 3) RGB image; returns (defective copy, mask, {kind: params}).

    Each kind in ``kinds`` is applied with probability ``p`` (at least one always is), in the
    order :data:`ORDER`; the params dict lists the applied kinds in that order. The mask is
    uint8 (H, W) with values 0 and 255, defined in the module docstring.
    """
    _check_image(image)
    _check_common(rng, p)
    order = _check_kinds(kinds)
    chosen = [k for k in order if rng.random() < p]
    if not chosen:
        chosen = [_pick(rng, order)]
    params: dict[str, Params] = {}
    x = image.astype(np.float32)
    for k in chosen:
        if k in _OVERLAYS:
            x, params[k] = _OVERLAYS[k](x, rng)
    np.clip(x, 0.0, 255.0, out=x)
    x += np.float32(0.5)
    out = x.astype(np.uint8)
    change = np.abs(out.astype(np.int16) - image.astype(np.int16)).max(axis=2)
    mask = change >= VISIBLE_LEVELS
    if "jpeg" in chosen:
        after, params["jpeg"] = _jpeg(out, rng)
        error = np.abs(after.astype(np.int16) - out.astype(np.int16)).max(axis=2)
        mask |= _block_mask(error, params["jpeg"]["region"])
        out = after
    return out, mask.astype(np.uint8) * np.uint8(255), params


def add_defects_batch(
    images: np.ndarray,
    rng: np.random.Generator,
    kinds: Sequence[str] = KINDS,
    *,
    p: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`add_defects` over a uint8 (N, H, W, 3) batch: (defective NHW3, masks NHW)."""
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError(
            "images must be a uint8 (N, H, W, 3) array, got "
            + (f"shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__)
        )
    if images.dtype != np.uint8 or images.shape[3] != 3:
        raise ValueError(
            f"images must be uint8 (N, H, W, 3) RGB, got {images.dtype} with shape {images.shape}"
        )
    _check_common(rng, p)
    _check_kinds(kinds)
    out = np.empty_like(images)
    masks = np.empty(images.shape[:3], np.uint8)
    for i in range(images.shape[0]):
        out[i], masks[i], _ = add_defects(images[i], rng, kinds, p=p)
    return out, masks
