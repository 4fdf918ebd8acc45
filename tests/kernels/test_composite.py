"""composite (exact integer alpha blending) and the mask helpers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vetrina.kernels import composite, dilate_mask, feather_mask

from .reference import composite_ref

RNG = np.random.default_rng(42)


def rand_rgba(h=31, w=47):
    return RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)


@pytest.mark.parametrize("alpha", ["straight", "premultiplied"])
@pytest.mark.parametrize("background", [255, 0, (10, 200, 30), "image", "image4"])
def test_matches_reference(alpha, background):
    fg = rand_rgba()
    if background == "image":
        background = RNG.integers(0, 256, (31, 47, 3), dtype=np.uint8)
    elif background == "image4":
        background = RNG.integers(0, 256, (31, 47, 4), dtype=np.uint8)[:, ::-1]
    bg = background[:, :, :3] if isinstance(background, np.ndarray) else background
    got = composite(fg, background, alpha=alpha)
    assert got.dtype == np.uint8 and got.shape == (31, 47, 3) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, composite_ref(fg, bg, alpha == "premultiplied"))


def test_alpha_extremes_and_rounding():
    fg = np.zeros((1, 4, 4), np.uint8)
    fg[0, :, :3] = 200
    fg[0, :, 3] = (0, 255, 128, 1)
    got = composite(fg, 100)
    # round((200 a + 100 (255 - a)) / 255)
    assert got[0, :, 0].tolist() == [100, 200, round((200 * 128 + 100 * 127) / 255), 100]
    # straight alpha: white over white stays white; any colour at a=255 stays
    full = rand_rgba()
    full[:, :, 3] = 255
    np.testing.assert_array_equal(composite(full, 17), full[:, :, :3])


def test_premultiplied_equals_straight_after_premultiplying_to_one_lsb():
    fg = rand_rgba()
    a = fg[:, :, 3:].astype(np.int64)
    pre = fg.copy()
    pre[:, :, :3] = (fg[:, :, :3] * a + 127) // 255
    d = composite(pre, (30, 60, 90), alpha="premultiplied").astype(int) - composite(
        fg, (30, 60, 90)
    )
    assert np.abs(d).max() <= 1


def test_strided_inputs():
    big = rand_rgba(60, 90)
    fg = big[::2, ::-3]
    bg = RNG.integers(0, 256, (60, 90, 3), dtype=np.uint8)[1::2, ::3]
    np.testing.assert_array_equal(composite(fg, bg), composite_ref(fg, bg))


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros((4, 4, 3), np.uint8),), {}, r"rgba has shape \(4, 4, 3\); expected \(H, W, 4\)"),
        ((np.zeros((4, 4, 4), np.float32),), {}, r"rgba has dtype float32; expected uint8"),
        ((np.zeros((4, 4, 4), np.uint8), 256), {}, r"background is 256; expected an int or 3"),
        ((np.zeros((4, 4, 4), np.uint8), (1, 2)), {}, r"background is \(1, 2\)"),
        (
            (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 5, 3), np.uint8)),
            {},
            r"background has shape \(4, 5, 3\)",
        ),
        (
            (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)),
            {},
            r"background has dtype float32",
        ),
        ((np.zeros((4, 4, 4), np.uint8),), {"alpha": "linear"}, r"alpha is 'linear'"),
        ((np.zeros((0, 4, 4), np.uint8),), {}, r"rgba has shape \(0, 4, 4\)"),
    ],
)
def test_composite_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        composite(*args, **kwargs)
    assert str(info.value).startswith("composite: ")


def test_dilate_grows_by_radius():
    m = np.zeros((41, 41), np.uint8)
    m[20, 20] = 255
    d = dilate_mask(m, 5)
    ys, xs = np.nonzero(d)
    assert ys.min() == 15 and ys.max() == 25 and xs.min() == 15 and xs.max() == 25
    assert d[15, 15] == 0  # elliptical, not square
    np.testing.assert_array_equal(dilate_mask(m, 0), m)
    f = dilate_mask(m.astype(np.float32) / 255, 2)
    assert f.dtype == np.float32 and f.max() == 1


def test_feather_softens_edges_and_keeps_dtype():
    m = np.zeros((64, 64), np.uint8)
    m[:, 32:] = 255
    f = feather_mask(m, 8)
    assert f.dtype == np.uint8
    row = f[10].astype(int)
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row) >= 0).all()
    assert 0 < row[30] < 255 and 0 < row[33] < 255
    np.testing.assert_array_equal(
        f, cv2.GaussianBlur(m, (17, 17), 4, borderType=cv2.BORDER_REPLICATE)
    )
    g = feather_mask(m.astype(np.float32), 3, sigma=1.0)
    assert g.dtype == np.float32


@pytest.mark.parametrize("fn", [dilate_mask, feather_mask])
@pytest.mark.parametrize(
    ("mask", "radius", "match"),
    [
        (np.zeros((4, 4), np.int32), 1, r"mask has dtype int32"),
        (np.zeros((4, 4, 1), np.uint8), 1, r"mask has shape \(4, 4, 1\)"),
        (np.zeros((0, 4), np.uint8), 1, r"mask has shape \(0, 4\)"),
        (np.zeros((4, 4), np.uint8), -1, r"radius is -1"),
        (np.zeros((4, 4), np.uint8), 1.5, r"radius is 1\.5"),
        (np.zeros((4, 4), np.uint8), 10**6, r"radius is 1000000"),
    ],
)
def test_mask_validation(fn, mask, radius, match):
    with pytest.raises(ValueError, match=match):
        fn(mask, radius)
    with pytest.raises(TypeError, match=r"mask has type list"):
        fn([[0]], 1)


def test_feather_sigma_validation():
    with pytest.raises(ValueError, match=r"sigma is -1"):
        feather_mask(np.zeros((4, 4), np.uint8), 1, sigma=-1)
