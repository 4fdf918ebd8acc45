"""Independent numpy references for vetrina.kernels, written from the contract in
docs/kernels.md (never calling the extension).

All pixel arithmetic is float32, element-wise and in the same order as the contract, so the
kernels (built with -ffp-contract=off) must match these bit for bit.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
ONE = F32(1)


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


def per_channel(value) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (3,)).astype(F32)


def preprocess_ref(
    images, size, *, scale=1 / 255, offset=0.0, src_order="RGB", dst_order="RGB"
) -> np.ndarray:
    h, w = size
    sc, of = per_channel(scale), per_channel(offset)
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
        value = bilinear(rgb.astype(F32), h, w)  # (h, w, 3)
        out[i] = (value * sc + of).transpose(2, 0, 1)
    return out


def to_uint8(v: np.ndarray) -> np.ndarray:
    """float32 -> uint8: NaN -> 0, clamp to [0, 255], floor(v + 0.5) in float32."""
    v = np.where(np.isnan(v), F32(0), v)
    v = np.clip(v, F32(0), F32(255))
    return np.floor(v + F32(0.5)).astype(np.uint8)


def postprocess_ref(
    batch, sizes=None, *, scale=255.0, offset=0.0, src_order="RGB", dst_order="RGB", alphas=None
) -> list[np.ndarray]:
    batch = np.asarray(batch)
    n, _, big_h, big_w = batch.shape
    sc, of = per_channel(scale), per_channel(offset)
    order = [2, 1, 0] if src_order != dst_order else [0, 1, 2]
    outs = []
    for i in range(n):
        h, w = (big_h, big_w) if sizes is None else sizes[i]
        chans = []
        for c in order:
            value = bilinear_skip_zero(batch[i, c], h, w)
            with np.errstate(invalid="ignore", over="ignore"):
                chans.append(to_uint8(value * sc[c] + of[c]))
        if alphas is not None and alphas[i] is not None:
            chans.append(np.asarray(alphas[i], dtype=np.uint8))
        outs.append(np.ascontiguousarray(np.stack(chans, axis=2)))
    return outs
