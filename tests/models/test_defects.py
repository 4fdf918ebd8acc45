"""vetrina.models.defects: local supplier-photo defects with an exact ground-truth mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina.models.catalog import render
from vetrina.models.defects import (
    JPEG_BLOCK_LEVELS,
    KINDS,
    ORDER,
    VISIBLE_LEVELS,
    add_defects,
    add_defects_batch,
)

kind_sets = st.lists(st.sampled_from(KINDS), min_size=1, max_size=5, unique=True)


def change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over channels of |a - b|."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)


def noise_image(seed: int, h: int, w: int) -> np.ndarray:
    """A random image with smooth regions and edges (cheap, any size)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, h // 8), max(1, w // 8), 3)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return render(5, 128, category="handbag", colour="red", background="gradient").image


def test_kinds_and_order() -> None:
    assert KINDS == ("scratch", "dust", "stain", "watermark", "jpeg")
    assert sorted(ORDER) == sorted(KINDS) and ORDER[-1] == "jpeg"


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    h=st.integers(1, 72),
    w=st.integers(1, 72),
    kinds=kind_sets,
    p=st.floats(0.0, 1.0),
)
def test_shapes_determinism_and_mask(seed: int, h: int, w: int, kinds: list[str], p: float):
    img = noise_image(seed, h, w)
    before = img.copy()
    out, mask, params = add_defects(img, np.random.default_rng(seed), kinds, p=p)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert mask.shape == (h, w) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    assert np.array_equal(img, before), "the input is not modified"
    assert params and set(params) <= set(kinds)
    assert list(params) == [k for k in ORDER if k in params]
    again = add_defects(img, np.random.default_rng(seed), kinds, p=p)
    assert np.array_equal(again[0], out) and np.array_equal(again[1], mask)
    assert again[2] == params
    # The mask is exactly the visibly changed pixels, except inside a JPEG region, where it
    # is a union of 8x8 blocks (and of the overlays' visible pixels, before the re-encoding).
    visible = change(out, img) >= VISIBLE_LEVELS
    outside = np.ones((h, w), bool)
    if "jpeg" in params:
        y0, x0, y1, x1 = params["jpeg"]["region"]
        outside[y0:y1, x0:x1] = False
    assert np.array_equal((mask > 0)[outside], visible[outside])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), h=st.integers(8, 80), w=st.integers(8, 80))
def test_jpeg_mask_is_the_visibly_changed_blocks(seed: int, h: int, w: int):
    img = noise_image(seed, h, w)
    out, mask, params = add_defects(img, np.random.default_rng(seed), ["jpeg"])
    y0, x0, y1, x1 = params["jpeg"]["region"]
    assert 5 <= params["jpeg"]["quality"] <= 12
    assert y0 % 16 == 0 and x0 % 16 == 0 and y1 <= h and x1 <= w
    inside = np.zeros((h, w), bool)
    inside[y0:y1, x0:x1] = True
    assert np.array_equal(out[~inside], img[~inside]), "only the region is re-encoded"
    err = change(out, img)
    for by in range(0, h, 8):
        for bx in range(0, w, 8):
            block = (slice(by, by + 8), slice(bx, bx + 8))
            sel = inside[block]
            if not sel.any():
                assert not mask[block].any()
                continue
            want = err[block][sel].mean() >= JPEG_BLOCK_LEVELS
            assert (mask[block][sel] > 0).all() == want and (mask[block][sel] > 0).any() == want
            assert not mask[block][~sel].any()


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_visible_on_a_product_photo(image: np.ndarray, kind: str) -> None:
    fractions = []
    for seed in range(6):
        out, mask, params = add_defects(image, np.random.default_rng(seed), [kind], p=1.0)
        assert list(params) == [kind] and isinstance(params[kind], dict)
        fractions.append((mask > 0).mean())
        assert not np.array_equal(out, image)
    # a white watermark can vanish on a light background; most draws are clearly visible
    assert sum(f > 0.002 for f in fractions) >= 5, fractions
    assert max(fractions) < 1.0 or kind == "jpeg"


@pytest.mark.parametrize("kind", ["scratch", "dust", "stain", "watermark"])
def test_defects_scale_with_image_size(kind: str) -> None:
    """The masked fraction of the image stays about the same from 64 to 256 px."""

    def mean_fraction(size: int) -> float:
        img = render(3, size, category="mug", colour="blue", background="white").image
        return float(
            np.mean(
                [
                    (add_defects(img, np.random.default_rng(s), [kind], p=1.0)[1] > 0).mean()
                    for s in range(12)
                ]
            )
        )

    small, large = mean_fraction(64), mean_fraction(256)
    # one-pixel minimum widths make the smallest defects relatively larger at 64 px
    assert 0.4 < small / large < 3.5, (kind, small, large)


def test_parameter_ranges(image: np.ndarray) -> None:
    for seed in range(20):
        _, _, prm = add_defects(image, np.random.default_rng(seed), KINDS, p=1.0)
        assert 1 <= prm["scratch"]["count"] <= 3
        assert all(0.75 <= s["opacity"] <= 1.0 for s in prm["scratch"]["strokes"])
        assert 6 <= prm["dust"]["count"] <= 24
        assert 1 <= prm["stain"]["count"] <= 2
        assert 0.3 <= prm["watermark"]["opacity"] <= 0.55
        assert prm["watermark"]["text"]


def test_probability_and_at_least_one(image: np.ndarray) -> None:
    counts = dict.fromkeys(KINDS, 0)
    for seed in range(100):
        _, _, prm = add_defects(image[:32, :32], np.random.default_rng(seed), KINDS)
        for k in prm:
            counts[k] += 1
    for k, n in counts.items():
        assert 0.35 < n / 100 < 0.75, (k, n)
    for seed in range(10):
        _, _, prm = add_defects(image, np.random.default_rng(seed), KINDS, p=0.0)
        assert len(prm) == 1


def test_single_kind_string(image: np.ndarray) -> None:
    _, _, prm = add_defects(image, np.random.default_rng(0), "stain")
    assert list(prm) == ["stain"]


def test_batch(image: np.ndarray) -> None:
    batch = np.stack([image, image[::-1].copy(), image[:, ::-1].copy()])
    out, masks = add_defects_batch(batch, np.random.default_rng(3))
    assert out.shape == batch.shape and out.dtype == np.uint8
    assert masks.shape == batch.shape[:3] and masks.dtype == np.uint8
    again = add_defects_batch(batch, np.random.default_rng(3))
    assert np.array_equal(out, again[0]) and np.array_equal(masks, again[1])
    assert all(not np.array_equal(out[i], batch[i]) for i in range(3))
    empty = add_defects_batch(batch[:0], np.random.default_rng(0))
    assert empty[0].shape == (0, 128, 128, 3) and empty[1].shape == (0, 128, 128)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((32, 32), np.uint8), "uint8 \\(H, W, 3\\)"),
        (np.zeros((32, 32, 4), np.uint8), "uint8 \\(H, W, 3\\)"),
        (np.zeros((32, 32, 3), np.float32), "float32"),
        ([[0, 0, 0]], "numpy array"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
    ],
)
def test_bad_image(bad: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        add_defects(bad, np.random.default_rng(0))  # type: ignore[arg-type]


def test_bad_arguments(image: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"unknown defect kind 'blur'.*scratch"):
        add_defects(image, rng, ["dust", "blur"])
    with pytest.raises(ValueError, match="empty"):
        add_defects(image, rng, [])
    with pytest.raises(ValueError, match="sequence"):
        add_defects(image, rng, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="p must"):
        add_defects(image, rng, p=-0.1)
    with pytest.raises(ValueError, match="Generator"):
        add_defects(image, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="N, H, W, 3"):
        add_defects_batch(image, rng)
    with pytest.raises(ValueError, match="N, H, W, 3"):
        add_defects_batch(np.zeros((2, 8, 8, 3), np.float32), rng)
    with pytest.raises(ValueError, match="unknown defect kind 'noise'"):
        add_defects_batch(image[None], rng, ["noise"])
