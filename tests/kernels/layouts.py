"""Hypothesis strategies for the kernels' property tests: memory layouts of float NCHW batches
(strided, negative-step, pixel-interleaved and broadcast views) and image/output sizes up to
the 4096-wide images the numerics contract promises (docs/kernels.md, "Guarantees")."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

# steps of a strided view, per axis (N, C, H, W): negative ones included
STEPS = st.sampled_from([1, 2, -1, -2])
LAYOUTS = ("contiguous", "strided", "nhwc", "broadcast")


@st.composite
def layouts(draw) -> tuple[str, tuple[int, ...] | None]:
    """How a batch lies in memory: ("contiguous" | "nhwc" | "broadcast", None) or
    ("strided", (sn, sc, sy, sx))."""
    kind = draw(st.sampled_from(LAYOUTS))
    steps = tuple(draw(STEPS) for _ in range(4)) if kind == "strided" else None
    return kind, steps


def lay_out(batch: np.ndarray, layout: tuple[str, tuple[int, ...] | None], rng) -> np.ndarray:
    """``batch`` in ``layout``, a read-only view. "contiguous", "nhwc" (pixel-interleaved,
    like a transposed NHWC array) and "strided" hold ``batch``'s values; "broadcast" repeats
    its first image's first row over every image and row (zero strides). A strided view lies
    inside a larger array whose other elements are junk (large values, NaN and inf): a read
    outside the view changes the result."""
    kind, steps = layout
    if kind == "contiguous":
        return batch
    if kind == "broadcast":
        return np.broadcast_to(batch[:1, :, :1], batch.shape)
    if kind == "nhwc":
        n, c, h, w = batch.shape
        view = np.empty((n, h, w, c), batch.dtype).transpose(0, 3, 1, 2)
    else:
        assert steps is not None
        shape = [k * abs(s) + 2 for k, s in zip(batch.shape, steps, strict=True)]
        base = rng.uniform(-1e3, 1e3, shape).astype(batch.dtype)
        junk = base.reshape(-1)
        junk[::5] = np.nan
        junk[1::7] = np.inf
        index = tuple(
            slice(1, 1 + k * s, s) if s > 0 else slice(k * -s, 0, s)
            for k, s in zip(batch.shape, steps, strict=True)
        )
        view = base[index]
    view[...] = batch
    view.flags.writeable = False
    return view


def sizes(
    max_h: int, max_w: int, *, wide: tuple[int, int] = (1000, 4096), thin: int = 3
) -> st.SearchStrategy[tuple[int, int]]:
    """(h, w): up to max_h x max_w, or wide (``wide`` columns) and at most ``thin`` rows, so
    that 4096-wide cases stay cheap for the numpy references (their cost grows with the
    width)."""
    small = st.tuples(st.integers(1, max_h), st.integers(1, max_w))
    big = st.tuples(st.integers(1, thin), st.integers(*wide))
    return st.one_of(small, big)
