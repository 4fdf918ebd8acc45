"""Independent numpy references for vetrina.kernels, written from the contract in
docs/kernels.md (never calling the extension, nor vetrina.kernels' own planning code).

All pixel arithmetic is float32, element-wise and in the same order as the contract, so the
kernels (built with -ffp-contract=off) must match these bit for bit.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

F32 = np.float32
ONE = F32(1)
DBL_EPS = 2.220446049250313e-16


# ---------------------------------------------------------------------------------------
# tap tables
# ---------------------------------------------------------------------------------------


def axis_table(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV INTER_LINEAR pixel-centre taps: (i0, i1, f) with f float32 in [0, 1)."""
    scale = src / dst  # double
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(F32)
    s = np.floor(f)  # float32, exact
    f = f - s  # float32
    s = s.astype(np.int64)
    low = s < 0
    s[low] = 0
    f[low] = 0
    high = s >= src - 1
    s[high] = src - 1
    f[high] = 0
    return s, np.minimum(s + 1, src - 1), f


def area_taps(src: int, dst: int) -> list[list[tuple[int, np.float32]]]:
    """OpenCV INTER_AREA weights of one axis (downscale: cell overlaps, slivers < 1e-3
    dropped; upscale: OpenCV's 2-tap area formula), as (index, float32 weight) lists."""
    inv = dst / src
    scale = 1.0 / inv
    taps = []
    for d in range(dst):
        t: list[tuple[int, np.float32]] = []
        if src >= dst:
            f1 = d * scale
            f2 = f1 + scale
            cell = min(scale, src - f1)
            s1, s2 = math.ceil(f1), math.floor(f2)
            s2 = min(s2, src - 1)
            s1 = min(s1, s2)
            if s1 - f1 > 1e-3:
                t.append((s1 - 1, F32((s1 - f1) / cell)))
            t.extend((s, F32(1.0 / cell)) for s in range(s1, s2))
            if f2 - s2 > 1e-3:
                t.append((s2, F32(min(min(f2 - s2, 1.0), cell) / cell)))
        else:
            s = math.floor(d * scale)
            fx = F32((d + 1) - (s + 1) * inv)
            fx = F32(0) if fx <= 0 else F32(fx - F32(math.floor(fx)))
            if s >= src - 1:
                s, fx = src - 1, F32(0)
            t.append((s, ONE - fx))
            if fx != 0:
                t.append((s + 1, fx))
        taps.append(t)
    return taps


def linear_taps(src: int, dst: int) -> list[list[tuple[int, np.float32]]]:
    """The bilinear table as tap lists (one tap where f == 0)."""
    i0, i1, f = axis_table(src, dst)
    return [
        [(int(a), ONE)] if w == 0 else [(int(a), ONE - w), (int(b), w)]
        for a, b, w in zip(i0, i1, f, strict=True)
    ]


# sin(pi r) for |r| <= 1/2: the Taylor coefficients (-1)^k pi^(2k+1) / (2k+1)!, k = 0..11
_SINPI = (
    3.141592653589793,
    -5.16771278004997,
    2.5501640398773455,
    -0.5992645293207921,
    0.08214588661112823,
    -0.0073704309457143504,
    0.00046630280576761255,
    -2.1915353447830217e-05,
    7.952054001475513e-07,
    -2.2948428997269873e-08,
    5.392664662608129e-10,
    -1.0518471716932065e-11,
)


def sinpi(x: float) -> float:
    """sin(pi x) as the contract evaluates it, in Python floats (IEEE double, no FMA):
    n = floor(x + 1/2), r = x - n, Horner in r^2 from the r^23 term, times r, times (-1)^n;
    exactly 0 at the integers."""
    n = math.floor(x + 0.5)
    r = x - n
    if r == 0.0:
        return 0.0
    z = r * r
    s = _SINPI[11]
    for c in _SINPI[10::-1]:
        s = s * z + c
    s = s * r
    return -s if n & 1 else s


def lanczos3(t: float) -> float:
    """sinc(t) * sinc(t / 3) for |t| < 3, else 0; sinc(t) = sin(pi t) / (t * pi), 1 at 0."""
    if not -3.0 < t < 3.0:
        return 0.0

    def sinc(x: float) -> float:
        return 1.0 if x == 0.0 else sinpi(x) / (x * math.pi)

    return sinc(t) * sinc(t / 3.0)


def lanczos_taps(src: int, dst: int) -> list[list[tuple[int, np.float32]]]:
    """PIL's Lanczos weights of one axis (ImagingResample's precompute_coeffs): scale =
    src / dst, filterscale = max(scale, 1), support = 3 * filterscale; output d: center =
    (d + 0.5) * scale, taps k in [max(int(center - support + 0.5), 0),
    min(int(center + support + 0.5), src)), weight lanczos3((k - center + 0.5) * (1 /
    filterscale)) divided by the weights' sum (in tap order; kept when it is 0), in double,
    rounded once to float32. Every tap of the window is listed, weight 0 included."""
    scale = src / dst
    fs = max(scale, 1.0)
    support = 3.0 * fs
    ss = 1.0 / fs
    taps = []
    for d in range(dst):
        center = (d + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), src)
        raw = [lanczos3((k - center + 0.5) * ss) for k in range(lo, hi)]
        ww = 0.0
        for v in raw:
            ww += v
        taps.append(
            [(k, F32(v / ww if ww != 0.0 else v)) for k, v in zip(range(lo, hi), raw, strict=True)]
        )
    return taps


def cv_integer_scale(src: int, dst: int) -> int | None:
    """OpenCV's integer area factor: 1 / (dst / src) within DBL_EPSILON of an int (src >= dst)."""
    scale = 1.0 / (dst / src)
    k = math.floor(scale + 0.5)
    return k if src >= dst and abs(scale - k) < DBL_EPS else None


# ---------------------------------------------------------------------------------------
# resampling of (H, W[, C]) arrays
# ---------------------------------------------------------------------------------------


def bilinear(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W[, C]) float32 -> (h, w[, C]) float32, plain formula
    (p00*(1-fx) + p01*fx)*(1-fy) + (p10*(1-fx) + p11*fx)*fy."""
    y0, y1, fy = axis_table(plane.shape[0], h)
    x0, x1, fx = axis_table(plane.shape[1], w)
    extra = (1,) * (plane.ndim - 2)
    fx = fx.reshape((1, w, *extra))
    fy = fy.reshape((h, 1, *extra))
    r0, r1 = plane[y0], plane[y1]
    top = r0[:, x0] * (ONE - fx) + r0[:, x1] * fx
    bottom = r1[:, x0] * (ONE - fx) + r1[:, x1] * fx
    return top * (ONE - fy) + bottom * fy


def bilinear_skip_zero(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    """Same as :func:`bilinear`, except that a tap whose weight is exactly 0 is not read
    (fx == 0 -> the row value is p0; fy == 0 -> the value is the top row). Identical to
    :func:`bilinear` for finite input; keeps inf/NaN from leaking into their neighbours."""
    y0, y1, fy = axis_table(plane.shape[0], h)
    x0, x1, fx = axis_table(plane.shape[1], w)
    fx = fx.reshape(1, w)
    fy = fy.reshape(h, 1)
    r0, r1 = plane[y0], plane[y1]
    with np.errstate(invalid="ignore", over="ignore"):
        top = np.where(fx == 0, r0[:, x0], r0[:, x0] * (ONE - fx) + r0[:, x1] * fx)
        bottom = np.where(fx == 0, r1[:, x0], r1[:, x0] * (ONE - fx) + r1[:, x1] * fx)
        return np.where(fy == 0, top, top * (ONE - fy) + bottom * fy).astype(F32)


def separable(arr: np.ndarray, ytaps: list, xtaps: list, clamp_rows: bool = False) -> np.ndarray:
    """sum_j wy_j * (sum_k wx_k * p) in float32, taps in order, accumulating left to right
    (acc = w0 * p0; acc = acc + w_k * p_k); only the listed taps are read. clamp_rows: the
    horizontal pass values are clamped to [0, 255] (lanczos)."""
    arr = arr.astype(F32)
    with np.errstate(invalid="ignore", over="ignore"):
        rows = np.empty((arr.shape[0], len(xtaps), *arr.shape[2:]), dtype=F32)
        for d, t in enumerate(xtaps):
            acc = arr[:, t[0][0]] * t[0][1]
            for s, wt in t[1:]:
                acc = acc + arr[:, s] * wt
            rows[:, d] = acc
        if clamp_rows:
            rows = np.where(rows < 0, F32(0), rows)
            rows = np.where(rows > 255, F32(255), rows)
        out = np.empty((len(ytaps), *rows.shape[1:]), dtype=F32)
        for d, t in enumerate(ytaps):
            acc = rows[t[0][0]] if (len(t) == 1 and t[0][1] == 1) else rows[t[0][0]] * t[0][1]
            for s, wt in t[1:]:
                acc = acc + rows[s] * wt
            out[d] = acc
    return out


def area_u8(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """preprocess area values of a uint8 (H, W, C) image: OpenCV's integer-factor rule (exact
    block sum times float32(1 / (kx * ky))) or the separable pixel-area taps."""
    sh, sw = img.shape[:2]
    ky, kx = cv_integer_scale(sh, h), cv_integer_scale(sw, w)
    if ky is not None and kx is not None:
        # exact integer sums without an int64 copy of the image (broadcast views stay views):
        # column sums of ky rows in uint32 (exact: 255 * ky < 2**32), then int64 along x
        assert 255 * ky < 2**32
        s = img.reshape(h, ky, w, kx, -1).sum(axis=1, dtype=np.uint32)
        s = s.sum(axis=2, dtype=np.int64)
        return s.astype(F32) * (F32(1) / F32(kx * ky))
    return separable(img, area_taps(sh, h), area_taps(sw, w))


def area_float(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    """area on float input (postprocess / adapt): always the separable taps."""
    return separable(plane, area_taps(plane.shape[0], h), area_taps(plane.shape[1], w))


def _cv_u8_table(src: int, dst: int, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = 1.0 / (dst / src)
    i0, i1, wt = np.empty(dst, np.int64), np.empty(dst, np.int64), np.empty((dst, 2), np.int64)
    for d in range(dst):
        f = F32((d + 0.5) * scale - 0.5)
        s = math.floor(f)
        f = F32(f - F32(s))
        if clamp and s < 0:
            s, f = 0, F32(0)
        if clamp and s >= src - 1:
            s, f = src - 1, F32(0)
        i0[d], i1[d] = min(max(s, 0), src - 1), min(max(s + 1, 0), src - 1)
        wt[d] = int(np.rint(F32((ONE - f) * F32(2048)))), int(np.rint(F32(f * F32(2048))))
    return i0, i1, wt


def cv_resize_u8(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """cv2.resize(img, (w, h), interpolation=INTER_LINEAR) for uint8 (H, W, C), bit exact:
    identity copy; exact 2x -> (sum of 2x2 + 2) >> 2; else 11-bit fixed-point weights
    (x weights clamped at the edges, y weights not), rows >> 4, * beta >> 16, + 2 >> 2."""
    sh, sw = img.shape[:2]
    x = img.astype(np.int64)
    if (sh, sw) == (h, w):
        return img.copy()
    if sh == 2 * h and sw == 2 * w:
        s = x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2]
        return ((s + 2) >> 2).astype(np.uint8)
    y0, y1, b = _cv_u8_table(sh, h, clamp=False)
    x0, x1, a = _cv_u8_table(sw, w, clamp=True)
    hx = x[:, x0] * a[:, 0][None, :, None] + x[:, x1] * a[:, 1][None, :, None]
    b0, b1 = b[:, 0][:, None, None], b[:, 1][:, None, None]
    v = (((b0 * (hx[y0] >> 4)) >> 16) + ((b1 * (hx[y1] >> 4)) >> 16) + 2) >> 2
    return np.minimum(v, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------


def _round_half_up(q: Fraction) -> int:
    return math.floor(q + Fraction(1, 2))


def fit_ref(src_hw, dst_hw, fit):
    """(src_box, dst_box) of the contract's fit rules, with exact fractions."""
    h, w = src_hw
    oh, ow = dst_hw
    if fit == "stretch":
        return (0, 0, h, w), (0, 0, oh, ow)
    if fit == "letterbox":
        s = min(Fraction(oh, h), Fraction(ow, w))
        ch = oh if Fraction(oh, h) == s else min(oh, max(1, _round_half_up(h * s)))
        cw = min(ow, max(1, _round_half_up(w * s))) if Fraction(oh, h) == s else ow
        return (0, 0, h, w), ((oh - ch) // 2, (ow - cw) // 2, ch, cw)
    s = max(Fraction(oh, h), Fraction(ow, w))
    if Fraction(oh, h) == s:
        sh, sw = h, min(w, max(1, _round_half_up(ow / s)))
    else:
        sh, sw = min(h, max(1, _round_half_up(oh / s))), w
    return ((h - sh) // 2, (w - sw) // 2, sh, sw), (0, 0, oh, ow)


# ---------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------


def per_channel(value, n: int = 3) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).astype(F32)


def resample_u8(img: np.ndarray, h: int, w: int, interpolation: str) -> np.ndarray:
    """preprocess values (before mapping) of a uint8 (H, W, C) image."""
    if interpolation == "bilinear":
        return bilinear(img.astype(F32), h, w)
    if interpolation == "area":
        return area_u8(img, h, w)
    if interpolation == "lanczos":
        sh, sw = img.shape[:2]
        return separable(img, lanczos_taps(sh, h), lanczos_taps(sw, w), clamp_rows=True)
    return cv_resize_u8(img, h, w).astype(F32)


def preprocess_ref(
    images,
    size,
    *,
    scale=1 / 255,
    offset=0.0,
    src_order="RGB",
    dst_order="RGB",
    interpolation="bilinear",
    fit="stretch",
    pad_value=0.0,
    dtype=np.float32,
) -> np.ndarray:
    h, w = size
    sc, of, pad = per_channel(scale), per_channel(offset), per_channel(pad_value)
    out = np.empty((len(images), 3, h, w), dtype=F32)
    for i, img in enumerate(images):
        img = np.asarray(img)
        if img.ndim == 2:
            img = img[:, :, None]
        if img.shape[2] == 1:
            rgb = np.repeat(img, 3, axis=2)
        else:
            rgb = img[:, :, :3]
            if src_order != dst_order:
                rgb = rgb[:, :, ::-1]
        (sy, sx, sh, sw), (top, left, ch, cw) = fit_ref(img.shape[:2], (h, w), fit)
        value = resample_u8(rgb[sy : sy + sh, sx : sx + sw], ch, cw, interpolation)
        canvas = np.empty((h, w, 3), dtype=F32)
        canvas[...] = pad * sc + of
        canvas[top : top + ch, left : left + cw] = value * sc + of
        out[i] = canvas.transpose(2, 0, 1)
    return out.astype(dtype)


def to_uint8(v: np.ndarray) -> np.ndarray:
    """float32 -> uint8: NaN -> 0, clamp to [0, 255], floor(v + 0.5) in float32."""
    v = np.where(np.isnan(v), F32(0), v)
    v = np.clip(v, F32(0), F32(255))
    return np.floor(v + F32(0.5)).astype(np.uint8)


def resample_float(plane: np.ndarray, h: int, w: int, interpolation: str) -> np.ndarray:
    plane = np.asarray(plane, dtype=F32)
    if interpolation == "bilinear":
        return bilinear_skip_zero(plane, h, w)
    return area_float(plane, h, w)


def _scaled_box(box, num, den):
    y, x, h, w = box
    return (y * num[0] // den[0], x * num[1] // den[1], h * num[0] // den[0], w * num[1] // den[1])


def postprocess_ref(
    batch,
    sizes=None,
    *,
    scale=255.0,
    offset=0.0,
    src_order="RGB",
    dst_order="RGB",
    alphas=None,
    placements=None,
    interpolation="bilinear",
    fill=0,
) -> list[np.ndarray]:
    batch = np.asarray(batch).astype(F32)
    n, _, big_h, big_w = batch.shape
    sc, of = per_channel(scale), per_channel(offset)
    fills = np.broadcast_to(np.asarray(fill, dtype=np.uint8), (3,))
    order = [2, 1, 0] if src_order != dst_order else [0, 1, 2]
    outs = []
    for i in range(n):
        if sizes is not None:
            h, w = sizes[i]
        elif placements is not None:
            h, w = placements[i].src_hw
        else:
            h, w = big_h, big_w
        if placements is None:
            bbox, obox = (0, 0, big_h, big_w), (0, 0, h, w)
        else:
            p = placements[i]
            bbox = _scaled_box(p.dst_box, (big_h, big_w), p.dst_hw)
            obox = _scaled_box(p.src_box, (h, w), p.src_hw)
        by, bx, bh, bw = bbox
        oy, ox, ch, cw = obox
        chans = []
        for k, c in enumerate(order):
            plane = np.full((h, w), fills[k], dtype=np.uint8)
            value = resample_float(batch[i, c, by : by + bh, bx : bx + bw], ch, cw, interpolation)
            with np.errstate(invalid="ignore", over="ignore"):
                plane[oy : oy + ch, ox : ox + cw] = to_uint8(value * sc[c] + of[c])
            chans.append(plane)
        if alphas is not None and alphas[i] is not None:
            chans.append(np.asarray(alphas[i], dtype=np.uint8))
        outs.append(np.ascontiguousarray(np.stack(chans, axis=2)))
    return outs


def adapt_ref(
    batch,
    size=None,
    *,
    scale=1.0,
    offset=0.0,
    src_order="RGB",
    dst_order="RGB",
    dtype=None,
    interpolation="bilinear",
) -> np.ndarray:
    batch = np.asarray(batch)
    n, c, h, w = batch.shape
    oh, ow = (h, w) if size is None else size
    sc, of = per_channel(scale, c), per_channel(offset, c)
    chmap = list(range(c))
    if src_order != dst_order:
        chmap[0], chmap[2] = 2, 0
    out = np.empty((n, c, oh, ow), dtype=F32)
    with np.errstate(invalid="ignore", over="ignore"):
        for i in range(n):
            for k in range(c):
                value = resample_float(batch[i, chmap[k]], oh, ow, interpolation)
                out[i, k] = value * sc[k] + of[k]
    return out.astype(batch.dtype if dtype is None else dtype)


def composite_ref(rgba, background, premultiplied=False) -> np.ndarray:
    fg = np.asarray(rgba).astype(np.int64)
    bg = np.broadcast_to(np.asarray(background), (*fg.shape[:2], 3)).astype(np.int64)
    a = fg[:, :, 3:4]
    if premultiplied:
        out = np.minimum(fg[:, :, :3] + (bg * (255 - a) + 127) // 255, 255)
    else:
        out = (fg[:, :, :3] * a + bg * (255 - a) + 127) // 255
    return out.astype(np.uint8)


# ---------------------------------------------------------------------------------------
# tiling
# ---------------------------------------------------------------------------------------


def tile_ramps(origins, tile: int, scale: int) -> list[np.ndarray]:
    """Per-tile float32 weights along one axis at ``scale`` (docs/kernels.md, "Tiling"):
    ``min(1, (u + 0.5) / ov_prev, (len - u - 0.5) / ov_next)`` in float64, rounded once."""
    out = []
    length = tile * scale
    u = np.arange(length, dtype=np.float64) + 0.5
    for i, p in enumerate(origins):
        w = np.ones(length, dtype=np.float64)
        with np.errstate(divide="ignore"):  # an overlap of 0: x / 0 = inf, weight 1
            if i > 0:
                w = np.minimum(w, u / ((origins[i - 1] + tile - p) * scale))
            if i + 1 < len(origins):
                w = np.minimum(w, (length - u) / ((p + tile - origins[i + 1]) * scale))
        out.append(w.astype(F32))
    return out


def tile_blend_ref(image_hw, tile_hw, ys, xs, tiles, scale: int = 1) -> np.ndarray:
    """The feathered blend of row-major ``tiles`` (TilePlan.blend's numpy formulation before
    the Cython kernel): per tile, ``acc += t * (wy * wx)`` and ``wsum += wy * wx`` over full
    float32 images, then ``acc / wsum``; uint8 ``floor(clip(v, 0, 255) + 0.5)``."""
    oh, ow = image_hw[0] * scale, image_hw[1] * scale
    th, tw = tile_hw[0] * scale, tile_hw[1] * scale
    first = tiles[0]
    extra = first.shape[2:]
    acc = np.zeros((oh, ow, *extra), dtype=F32)
    wsum = np.zeros((oh, ow), dtype=F32)
    wys, wxs = tile_ramps(ys, tile_hw[0], scale), tile_ramps(xs, tile_hw[1], scale)
    k = 0
    with np.errstate(invalid="ignore", over="ignore"):
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                y0, x0 = y * scale, x * scale
                h, w = min(th, oh - y0), min(tw, ow - x0)
                w2 = wys[i][:h, None] * wxs[j][None, :w]
                t = tiles[k][:h, :w].astype(F32)
                acc[y0 : y0 + h, x0 : x0 + w] += t * (w2[:, :, None] if extra else w2)
                wsum[y0 : y0 + h, x0 : x0 + w] += w2
                k += 1
        res = acc / (wsum[:, :, None] if extra else wsum)
        if first.dtype == np.uint8:
            return np.floor(np.clip(res, 0, 255) + F32(0.5)).astype(np.uint8)
        return res.astype(first.dtype)
