"""normalization / range_mapping / Affine: scale and offset builders."""

from __future__ import annotations

import numpy as np
import pytest

from vetrina.kernels import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Affine,
    normalization,
    postprocess,
    preprocess,
    range_mapping,
)


def test_normalization_is_scale_then_mean_std():
    a = normalization(IMAGENET_MEAN, IMAGENET_STD)
    x = np.array([0.0, 17.0, 255.0])
    for c in range(3):
        want = (x / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        np.testing.assert_allclose(x * a.scale[c] + a.offset[c], want, rtol=1e-12)
    px = normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), scale=1.0)
    np.testing.assert_allclose(px.scale, a.scale, rtol=1e-12)
    np.testing.assert_allclose(px.offset, a.offset, rtol=1e-12)


@pytest.mark.parametrize(("lo", "hi"), [(0, 1), (-1, 1), (-0.5, 0.5), ((0, -1, 2), (1, 1, 3))])
def test_range_mapping_maps_the_ends(lo, hi):
    a = range_mapping(lo, hi)
    lo3, hi3 = np.broadcast_to(lo, 3), np.broadcast_to(hi, 3)
    for c in range(3):
        assert 0 * a.scale[c] + a.offset[c] == pytest.approx(lo3[c])
        assert 255 * a.scale[c] + a.offset[c] == pytest.approx(hi3[c])
    b = a.inverse()
    for c in range(3):
        assert lo3[c] * b.scale[c] + b.offset[c] == pytest.approx(0, abs=1e-12)
        assert hi3[c] * b.scale[c] + b.offset[c] == pytest.approx(255)


def test_affine_unpacks_into_the_kernels_and_round_trips():
    img = np.random.default_rng(0).integers(0, 256, (16, 48, 3), dtype=np.uint8)
    for a in (
        range_mapping(-1, 1),
        normalization(IMAGENET_MEAN, IMAGENET_STD),
        range_mapping(0, 1),
    ):
        batch = preprocess([img], img.shape[:2], **a)
        np.testing.assert_array_equal(postprocess(batch, **a.inverse())[0], img)
    assert dict(**range_mapping(0, 1)) == {"scale": (1 / 255,) * 3, "offset": (0.0,) * 3}


def test_then_and_swapped():
    a = range_mapping(-1, 1).inverse().then(normalization(IMAGENET_MEAN, IMAGENET_STD))
    x = 0.3
    for c in range(3):
        want = ((x + 1) * 127.5 / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert x * a.scale[c] + a.offset[c] == pytest.approx(want)
    s = a.swapped()
    assert s.scale == a.scale[::-1] and s.offset == a.offset[::-1]
    assert Affine((1, 2, 3), 0).offset == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: normalization(std=0), r"std is 0"),
        (lambda: normalization(mean=(1, 2)), r"mean is \(1, 2\)"),
        (lambda: normalization(mean=float("nan")), r"mean is nan"),
        (lambda: range_mapping(0, 1, src=(3, 3)), r"src is \(3, 3\)"),
        (lambda: range_mapping("a", 1), r"lo is 'a'"),
        (lambda: Affine((0, 1, 1), 0).inverse(), r"a zero scale cannot invert"),
        (lambda: Affine(True, 0), r"scale is True"),
    ],
)
def test_validation(call, match):
    with pytest.raises(ValueError, match=match):
        call()
