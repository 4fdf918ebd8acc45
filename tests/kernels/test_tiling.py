"""Tiling: plans, exact reconstruction, no seams, scale factors, edge cases; the Cython blend
against the numpy reference (tests/kernels/reference.py) bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina.kernels import TilePlan, _cpu, plan_tiles

from .reference import tile_blend_ref, tile_ramps

RNG = np.random.default_rng(7)
DTYPES = [np.uint8, np.float32, np.float16]


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


def test_blend_validation_of_num_threads_and_odd_channels():
    plan = plan_tiles((40, 30), 16, 4)
    tiles = plan.split(np.zeros((40, 30, 3), np.float32))
    for bad in (0, -1, 1025, 1.5, "2", True):
        with pytest.raises(ValueError, match=r"TilePlan\.blend: num_threads is"):
            plan.blend(tiles, num_threads=bad)
    with pytest.raises(TypeError, match=r"tiles\[1\] has type list"):
        plan.blend([tiles[0], [[0.0]], *tiles[2:]])
    with pytest.raises(ValueError, match=r"tiles is an ndarray of shape \(9, 16, 16, 3\)"):
        plan.blend(np.stack(tiles))
    empty = [t[:, :, :0] for t in tiles]  # zero channels: accepted, an empty image
    out = plan.blend(empty)
    assert out.shape == (40, 30, 0) and out.dtype == np.float32


# --- the Cython kernel against the numpy reference ------------------------------------------


def _ref(plan, tiles, scale=1):
    return tile_blend_ref(plan.image_hw, plan.tile_hw, plan.ys, plan.xs, tiles, scale)


def assert_same_bits(out: np.ndarray, ref: np.ndarray) -> None:
    """Equal dtype, shape and bits (NaN positions equal; NaN payloads not compared)."""
    assert out.dtype == ref.dtype and out.shape == ref.shape
    assert out.flags.c_contiguous
    if out.dtype.kind != "f":
        np.testing.assert_array_equal(out, ref)
        return
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(out), nan)
    bits = np.dtype(f"u{out.itemsize}")
    np.testing.assert_array_equal(out.view(bits)[~nan], ref.view(bits)[~nan])


def _random_tiles(plan, dtype, channels, scale=1, rng=RNG, specials=False):
    """Independent random tiles (a model whose tiles disagree everywhere)."""
    shape = (plan.tile_hw[0] * scale, plan.tile_hw[1] * scale)
    if channels is not None:
        shape = (*shape, channels)
    tiles = []
    for _ in range(len(plan)):
        if dtype == np.uint8:
            t = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            t = (rng.standard_normal(shape) * 300).astype(dtype)
            if specials:
                pick = rng.random(shape)
                t[pick < 0.01] = np.nan
                t[(pick >= 0.01) & (pick < 0.02)] = np.inf
                t[(pick >= 0.02) & (pick < 0.03)] = -np.inf
                t[(pick >= 0.03) & (pick < 0.06)] = -0.0
                t[(pick >= 0.06) & (pick < 0.08)] = 0.0
        tiles.append(t)
    return tiles


GRIDS = [
    pytest.param((1, 1), 16, 0, 4, id="1x1-one-padded-tile"),
    pytest.param((20, 24), 32, 8, 8, id="one-padded-tile"),
    pytest.param((40, 37), 16, 5, 1, id="grid"),
    pytest.param((3, 70), 16, 4, 1, id="thin-wide"),
    pytest.param((70, 2), (16, 8), (6, 2), 2, id="thin-tall"),
    pytest.param((1, 45), 8, 3, 1, id="one-row"),
    pytest.param((33, 45), (12, 20), (11, 3), 1, id="heavy-overlap"),
]


@pytest.mark.parametrize(("hw", "tile", "ov", "mult"), GRIDS)
@pytest.mark.parametrize("scale", [1, 2, 3])
@pytest.mark.parametrize("channels", [None, 1, 3, 4])
@pytest.mark.parametrize("dtype", DTYPES)
def test_blend_equals_the_numpy_reference(hw, tile, ov, mult, scale, channels, dtype):
    plan = plan_tiles(hw, tile, ov, multiple=mult)
    tiles = _random_tiles(plan, dtype, channels, scale)
    out = plan.blend(tiles, scale)
    assert out.shape[:2] == (hw[0] * scale, hw[1] * scale)
    assert_same_bits(out, _ref(plan, tiles, scale))


def _layouts(tiles: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """The same tiles in other memory layouts (values unchanged)."""
    th, tw, c = tiles[0].shape
    big = np.zeros((th + 3, tw + 5, c), tiles[0].dtype)

    def in_bigger(t):  # a view with padded rows
        b = big.copy()
        b[1 : th + 1, 2 : tw + 2] = t
        return b[1 : th + 1, 2 : tw + 2]

    def unaligned(t):
        raw = np.zeros(t.nbytes + 1, np.uint8)[1:]
        u = raw.view(t.dtype).reshape(t.shape)
        u[...] = t
        return u

    def read_only(t):
        r = t.copy()
        r.flags.writeable = False
        return r

    out = {
        "packed": tiles,
        "padded-rows": [in_bigger(t) for t in tiles],
        "chw-views": [np.ascontiguousarray(t.transpose(2, 0, 1)).transpose(1, 2, 0) for t in tiles],
        "fortran": [np.asfortranarray(t) for t in tiles],
        "negative-steps": [
            np.ascontiguousarray(t[::-1, ::-1, ::-1])[::-1, ::-1, ::-1] for t in tiles
        ],
        "every-other-column": [np.repeat(t, 2, axis=1)[:, ::2] for t in tiles],
        "read-only": [read_only(t) for t in tiles],
        "constant-rows": [np.broadcast_to(t[:1], t.shape) for t in tiles],
    }
    if tiles[0].dtype != np.uint8:
        out["unaligned"] = [unaligned(t) for t in tiles]
    return out


@pytest.mark.parametrize("channels", [1, 3, 4, 7])
@pytest.mark.parametrize("dtype", DTYPES)
def test_blend_takes_any_strides(dtype, channels):
    plan = plan_tiles((50, 61), (24, 16), (6, 5), multiple=2)
    tiles = _random_tiles(plan, dtype, channels)
    for name, layout in _layouts(tiles).items():
        if name == "constant-rows":
            ref = _ref(plan, [np.ascontiguousarray(t) for t in layout])
        else:
            ref = _ref(plan, tiles)
        if name == "unaligned":
            assert not layout[0].flags.aligned
        assert_same_bits(plan.blend(layout), ref)
    # 2-D tiles: the same as 1 channel, without the channel axis
    flat = [t[:, :, 0] for t in tiles]
    assert_same_bits(plan.blend(flat), _ref(plan, flat))
    assert_same_bits(
        plan.blend([t[:, :, 1 % channels] for t in _layouts(tiles)["chw-views"]]),
        _ref(plan, [np.ascontiguousarray(t[:, :, 1 % channels]) for t in tiles]),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_blend_special_values_follow_the_reference(dtype):
    plan = plan_tiles((45, 50), 16, 6)
    for channels in (None, 3):
        tiles = _random_tiles(plan, dtype, channels, specials=True)
        out = plan.blend(tiles)
        assert np.isnan(out).any() and np.isinf(out).any()
        assert_same_bits(out, _ref(plan, tiles))
    big = [np.full((16, 16), 6e4 if dtype == np.float16 else 3e38, dtype) for _ in range(len(plan))]
    assert_same_bits(plan.blend(big), _ref(plan, big))  # float32: sums overflow to inf


def test_blend_uint8_rounding_and_extremes():
    plan = plan_tiles((30, 40), 16, 8)
    for values in ([0, 255], [254, 255], [0, 1], [127, 128]):
        tiles = [
            np.full((16, 16, 3), values[k % 2], np.uint8) for k in range(len(plan))
        ]  # neighbours alternate: every overlap value lands between two levels
        assert_same_bits(plan.blend(tiles), _ref(plan, tiles))


@pytest.mark.parametrize("dtype", DTYPES)
def test_blend_results_never_depend_on_threads_or_instruction_set(dtype):
    plan = plan_tiles((97, 131), 32, 9)
    tiles = _random_tiles(plan, dtype, 3)
    chw = _layouts(tiles)["chw-views"]
    ref = _ref(plan, tiles)
    old = _cpu.set_simd(2)
    try:
        for level in (0, 1, 2):
            _cpu.set_simd(level)
            for n in (None, 1, 2, 3, 7):
                assert_same_bits(plan.blend(tiles, num_threads=n), ref)
            assert_same_bits(plan.blend(chw, num_threads=2), ref)
    finally:
        _cpu.set_simd(old)


def test_weights_equal_the_reference_ramps():
    for hw, tile, ov in (((300, 1000), 256, 64), ((97, 131), (32, 20), (9, 19)), ((5, 5), 8, 2)):
        plan = plan_tiles(hw, tile, ov)
        for scale in (1, 2, 5):
            wys, wxs = plan.weights(scale)
            for got, want in (
                (wys, tile_ramps(plan.ys, plan.tile_hw[0], scale)),
                (wxs, tile_ramps(plan.xs, plan.tile_hw[1], scale)),
            ):
                assert len(got) == len(want)
                for g, w in zip(got, want, strict=True):
                    assert g.dtype == np.float32 and g.tobytes() == w.tobytes()


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 90),
    w=st.integers(1, 90),
    th=st.integers(1, 12),
    tw=st.integers(1, 12),
    ov=st.tuples(st.floats(0, 0.99), st.floats(0, 0.99)),
    mult=st.integers(1, 4),
    scale=st.integers(1, 3),
    dtype=st.sampled_from(DTYPES),
    channels=st.sampled_from([None, 1, 2, 3, 4, 5]),
    chw=st.booleans(),
    specials=st.booleans(),
    threads=st.sampled_from([None, 1, 2]),
    seed=st.integers(0, 2**32 - 1),
)
def test_blend_property_random_plans(
    h, w, th, tw, ov, mult, scale, dtype, channels, chw, specials, threads, seed
):
    tile = (th * mult, tw * mult)
    overlap = (int(ov[0] * tile[0]), int(ov[1] * tile[1]))
    plan = plan_tiles((h, w), tile, overlap, multiple=mult)
    rng = np.random.default_rng(seed)
    tiles = _random_tiles(plan, dtype, channels, scale, rng=rng, specials=specials)
    ref = _ref(plan, tiles, scale)
    if chw and channels is not None:
        tiles = _layouts(tiles)["chw-views"]
    assert_same_bits(plan.blend(tiles, scale, num_threads=threads), ref)
