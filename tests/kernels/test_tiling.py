"""Tiling: plans, exact reconstruction, no seams, scale factors, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina.kernels import TilePlan, plan_tiles

RNG = np.random.default_rng(7)


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(1, 3000),
    w=st.integers(1, 3000),
    tile=st.integers(4, 64).map(lambda t: t * 8),
    ov=st.integers(0, 100),
)
def test_plan_covers_the_image_with_the_overlap(h, w, tile, ov):
    ov = min(ov, tile // 2)  # (larger overlaps are valid, but make huge plans)
    plan = plan_tiles((h, w), tile, ov, multiple=8)
    assert plan.tile_hw[0] % 8 == 0 and plan.tile_hw[1] % 8 == 0
    for length, origins, t in ((h, plan.ys, plan.tile_hw[0]), (w, plan.xs, plan.tile_hw[1])):
        assert origins[0] == 0
        assert origins[-1] + t >= length  # covered to the end
        if length > tile:
            assert t == tile and origins[-1] + t == length  # flush, never past the image
            gaps = np.diff(origins)
            assert (gaps > 0).all() and (t - gaps >= ov).all()  # overlap at least ov
        else:
            assert origins == (0,) and length <= t < length + 8
    assert len(plan) == len(plan.boxes) == len(plan.ys) * len(plan.xs)


@pytest.mark.parametrize(
    ("hw", "tile", "ov", "mult"),
    [
        ((300, 400), 128, 16, 8),
        ((97, 131), 32, 7, 1),
        ((50, 50), 64, 8, 8),
        ((64, 64), 64, 8, 8),
        ((1, 1), 16, 0, 4),
        ((513, 1), 128, 32, 1),
        ((200, 300), (64, 96), (10, 20), 2),
    ],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float16])
@pytest.mark.parametrize("channels", [None, 3])
def test_identity_processing_reconstructs_the_image(hw, tile, ov, mult, dtype, channels):
    shape = hw if channels is None else (*hw, channels)
    img = (RNG.random(shape) * 255).astype(dtype)
    plan = plan_tiles(hw, tile, ov, multiple=mult)
    tiles = plan.split(img)
    assert all(t.shape[:2] == plan.tile_hw for t in tiles)
    out = plan.blend(tiles)
    assert out.dtype == img.dtype and out.shape == img.shape
    if dtype == np.uint8:
        np.testing.assert_array_equal(out, img)
    else:
        np.testing.assert_allclose(
            out.astype(np.float32),
            img.astype(np.float32),
            rtol=2e-3 if dtype == np.float16 else 1e-6,
        )


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_upscaler_tiles_reconstruct_the_upscaled_image(scale):
    img = RNG.integers(0, 256, (75, 110, 3), dtype=np.uint8)
    plan = plan_tiles(img.shape[:2], 32, 8)
    up = [np.repeat(np.repeat(t, scale, 0), scale, 1) for t in plan.split(img)]
    out = plan.blend(up, scale=scale)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(img, scale, 0), scale, 1))


def _smooth(y, x):
    return np.sin(y / 9.0) * 40 + np.cos(x / 13.0) * 40 + 128


def _tile_fields(plan, offsets):
    """Each tile processed by a smooth function of global coordinates, plus its own constant
    (a model that is not quite consistent from tile to tile)."""
    tiles = []
    for (y, x, _, _), c in zip(plan.boxes, offsets, strict=True):
        yy, xx = np.mgrid[y : y + plan.tile_hw[0], x : x + plan.tile_hw[1]].astype(np.float64)
        tiles.append((_smooth(yy, xx) + c).astype(np.float32))
    return tiles


def _jumps(img, plan):
    """Largest neighbour difference across tile borders and inside tiles (both axes)."""
    border = np.zeros(img.shape, bool)
    for y, x, th, tw in plan.boxes:
        border[y, x : x + tw] = border[min(y + th, img.shape[0]) - 1, x : x + tw] = True
        border[y : y + th, x] = border[y : y + th, min(x + tw, img.shape[1]) - 1] = True
    dx = np.abs(np.diff(img, axis=1))
    dy = np.abs(np.diff(img, axis=0))
    bx = border[:, 1:] | border[:, :-1]
    by = border[1:] | border[:-1]
    return max(dx[bx].max(), dy[by].max()), max(dx[~bx].max(), dy[~by].max())


def test_per_tile_smooth_function_shows_no_seam():
    plan = plan_tiles((300, 420), 96, 24)
    out = plan.blend(_tile_fields(plan, [0.0] * len(plan))).astype(np.float64)
    across, inside = _jumps(out, plan)
    assert across <= inside + 1e-4
    np.testing.assert_allclose(out, _smooth(*np.mgrid[:300, :420].astype(np.float64)), atol=1e-4)


def test_inconsistent_tiles_are_feathered_not_cut():
    plan = plan_tiles((300, 420), 96, 24)
    offsets = [6 * np.sin(k * 1.7) for k in range(len(plan))]  # up to ~12 apart
    out = plan.blend(_tile_fields(plan, offsets)).astype(np.float64)
    across, inside = _jumps(out, plan)
    spread = (max(offsets) - min(offsets)) / 24  # a ramp spreads a step over the overlap
    assert across <= inside + 2 * spread
    hard = np.zeros(out.shape)
    for (y, x, th, tw), t in zip(plan.boxes, _tile_fields(plan, offsets), strict=True):
        hard[y : y + th, x : x + tw] = t[:th, :tw]
    assert _jumps(hard, plan)[0] > across + 3  # what a seam looks like


def test_weights_are_linear_ramps_summing_to_one_in_overlaps():
    plan = plan_tiles((200, 1000), 256, 64)
    wys, wxs = plan.weights()
    total = np.zeros(1000)
    for x, wx in zip(plan.xs, wxs, strict=True):
        total[x : x + 256] += wx
    np.testing.assert_allclose(total, 1, atol=1e-6)
    assert (wys[0] == 1).all()


def test_split_pads_tiles_larger_than_the_image():
    img = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7)
    plan = plan_tiles(img.shape, 64, 8, multiple=8)
    assert plan.tile_hw == (8, 8) and len(plan) == 1
    (t,) = plan.split(img)
    assert t.shape == (8, 8) and (t[5:, :7] == img[4]).all() and (t[:5, 7:] == img[:, 6:]).all()
    np.testing.assert_array_equal(plan.blend([t]), img)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (((100, 100), 0), {}, r"tile is 0"),
        (((100, 100), 60), {"multiple": 8}, r"tile is \(60, 60\); expected multiples of 8"),
        (
            ((100, 100), 32, 32),
            {},
            r"overlap is \(32, 32\) for tile \(32, 32\); expected overlap < tile",
        ),
        (((100, 100), 32, -1), {}, r"overlap is -1"),
        (((0, 100), 32), {}, r"image_hw is \(0, 100\)"),
        (((100,), 32), {}, r"image_hw is \(100,\)"),
        (((100, 100), 32), {"multiple": 0}, r"multiple is 0"),
        (((100, 100), (32, 32, 3)), {}, r"tile is \(32, 32, 3\)"),
        # the upper limit is said, not just the lower one
        (
            ((2**21, 5), 32),
            {},
            r"image_hw is \(2097152, 5\); expected \(height, width\), two "
            r"ints in 1\.\.1048576",
        ),
        (((5, 2**20 + 1), 32), {}, r"image_hw is \(5, 1048577\); .* in 1\.\.1048576"),
        (
            ((100, 100), 2**21),
            {},
            r"tile is 2097152; expected an int or \(height, width\) "
            r"ints in 1\.\.1048576",
        ),
        (((100, 100), 32, (0, 2**21)), {}, r"overlap is \(0, 2097152\); .* in 0\.\.1048576"),
    ],
)
def test_plan_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        plan_tiles(*args, **kwargs)
    assert str(info.value).startswith("plan_tiles: ")


def test_blend_validation():
    plan = plan_tiles((100, 100), 64, 8)
    tiles = plan.split(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match=r"tiles has 3 entries; expected 4"):
        plan.blend(tiles[:3])
    with pytest.raises(
        ValueError, match=r"tiles\[0\] has shape \(64, 64, 3\); expected \(128, 128\)"
    ):
        plan.blend(tiles, scale=2)
    with pytest.raises(ValueError, match=r"scale is 0"):
        plan.blend(tiles, scale=0)
    bad = [*tiles[:3], tiles[3].astype(np.float32)]
    with pytest.raises(
        ValueError, match=r"tiles\[3\] is float32 \(64, 64, 3\) but tiles\[0\] is uint8"
    ):
        plan.blend(bad)
    with pytest.raises(ValueError, match=r"tiles\[0\] has dtype int64"):
        plan.blend([t.astype(np.int64) for t in tiles])
    with pytest.raises(ValueError, match=r"image has shape \(100, 99\)"):
        plan.split(np.zeros((100, 99)))
    assert isinstance(plan, TilePlan)
