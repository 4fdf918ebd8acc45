"""vetrina.models.catalog: the procedural product-photo renderer that is the training data."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina.models import catalog
from vetrina.models.catalog import (
    BACKGROUNDS,
    CATEGORIES,
    COLOURS,
    DATA_VERSION,
    PATTERNS,
    Product,
    render,
    render_batch,
    split_seeds,
)

SIZES = [64, 128, (96, 160), 512, (64, 512), (512, 64)]
STANDING = ("mug", "bottle", "sneaker", "handbag", "lamp", "chair")
PALETTE_NAMES = list(COLOURS)
PALETTE = np.array([COLOURS[n] for n in PALETTE_NAMES], dtype=np.float64)


def nearest_colour(rgb: np.ndarray) -> str:
    return PALETTE_NAMES[int(np.argmin(((PALETTE - rgb) ** 2).sum(axis=1)))]


def dominant(p: Product) -> np.ndarray:
    """Median RGB of the fully opaque product pixels."""
    return np.median(p.image[p.alpha == 255], axis=0)


def enclosed_background(alpha: np.ndarray) -> np.ndarray:
    """Mask of transparent pixels not connected to the image border (holes in the product)."""
    _, lab = cv2.connectedComponents((alpha == 0).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return (lab > 0) & ~np.isin(lab, border)


def corners(img: np.ndarray, k: int = 4) -> np.ndarray:
    return np.concatenate(
        [c.reshape(-1, 3) for c in (img[:k, :k], img[:k, -k:], img[-k:, :k], img[-k:, -k:])]
    )


# ------------------------------------------------------------------------------ constants


def test_constants() -> None:
    assert CATEGORIES == (
        "tshirt",
        "mug",
        "bottle",
        "sneaker",
        "handbag",
        "watch",
        "lamp",
        "chair",
    )
    assert BACKGROUNDS == ("white", "gradient", "texture")
    assert {
        "red",
        "orange",
        "yellow",
        "green",
        "blue",
        "purple",
        "pink",
        "brown",
        "black",
        "white",
        "grey",
    } <= set(COLOURS)
    for rgb in COLOURS.values():
        assert len(rgb) == 3 and all(0 <= v <= 255 for v in rgb)
    assert "solid" in PATTERNS
    assert isinstance(DATA_VERSION, str) and DATA_VERSION


def test_palette_well_separated() -> None:
    d = np.sqrt(((PALETTE[:, None] - PALETTE[None]) ** 2).sum(-1))
    assert d[~np.eye(len(PALETTE), dtype=bool)].min() > 60


# ----------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("size", [64, (80, 120), 256])
def test_same_seed_same_bytes(size: int | tuple[int, int]) -> None:
    for seed in (0, 1, 12345, 2**40 + 7):
        a, b = render(seed, size), render(seed, size)
        assert a.image.tobytes() == b.image.tobytes()
        assert a.alpha.tobytes() == b.alpha.tobytes()
        assert (a.category, a.colour, a.background, a.pattern) == (
            b.category,
            b.colour,
            b.background,
            b.pattern,
        )


def test_different_seeds_differ() -> None:
    imgs = [render(s, 64).image for s in range(12)]
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert not np.array_equal(imgs[i], imgs[j]), (i, j)


def test_forced_category_changes_shape_not_other_choices() -> None:
    for seed in range(10):
        free = render(seed, 64)
        for cat in ("mug", "chair"):
            forced = render(seed, 64, category=cat)
            assert forced.category == cat
            assert (forced.colour, forced.background, forced.pattern) == (
                free.colour,
                free.background,
                free.pattern,
            )


def test_seed_chooses_every_attribute() -> None:
    ps = [render(s, 64) for s in range(300)]
    assert {p.category for p in ps} == set(CATEGORIES)
    assert {p.colour for p in ps} == set(COLOURS)
    assert {p.background for p in ps} == set(BACKGROUNDS)
    assert {p.pattern for p in ps} == set(PATTERNS)


# ------------------------------------------------------------------- every category renders


@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("category", CATEGORIES)
def test_category_renders(category: str, size: int | tuple[int, int]) -> None:
    h, w = (size, size) if isinstance(size, int) else size
    p = render(7, size, category=category)
    assert isinstance(p, Product)
    assert p.category == category and p.seed == 7
    assert p.colour in COLOURS and p.background in BACKGROUNDS and p.pattern in PATTERNS
    assert p.image.shape == (h, w, 3) and p.image.dtype == np.uint8
    assert p.alpha.shape == (h, w) and p.alpha.dtype == np.uint8
    assert (p.alpha == 0).any() and (p.alpha == 255).any()
    soft = ((p.alpha > 0) & (p.alpha < 255)).sum()
    assert soft > 0, "edges are anti-aliased"
    # the larger relative dimension of the product fills 50-85 % of the frame
    ys, xs = np.nonzero(p.alpha > 127)
    fill = max((ys.max() - ys.min() + 1) / h, (xs.max() - xs.min() + 1) / w)
    assert 0.45 < fill < 0.9, fill
    if max(h, w) <= 2 * min(h, w):
        cover = (p.alpha > 127).mean()
        assert 0.03 < cover < 0.75, cover
    # the product stays inside the frame: no opaque pixel on the border
    border = np.concatenate([p.alpha[0], p.alpha[-1], p.alpha[:, 0], p.alpha[:, -1]])
    assert border.max() < 128


@pytest.mark.parametrize("colour", list(COLOURS))
def test_every_colour_renders(colour: str) -> None:
    for k, cat in enumerate(CATEGORIES):
        p = render(100 + k, 64, category=cat, colour=colour)
        assert p.colour == colour and p.category == cat


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_backgrounds_are_light(background: str) -> None:
    for seed in range(16):
        p = render(seed, 96, background=background)
        assert p.background == background
        c = corners(p.image, 8).astype(np.float64)
        assert c.mean() > 195, c.mean()
        patch = p.image[:8, :8].astype(np.float64)
        assert patch.std() < 6  # smooth studio backgrounds, no busy content
    white = render(3, 96, background="white").image
    assert corners(white).min() >= 240


def test_product_is_placed_and_scaled() -> None:
    fills, offsets = [], []
    for seed in range(60):
        p = render(seed, 128)
        ys, xs = np.nonzero(p.alpha > 127)
        fills.append(max((ys.max() - ys.min() + 1), (xs.max() - xs.min() + 1)) / 128)
        offsets.append(((ys.max() + ys.min()) / 2 - 63.5, (xs.max() + xs.min()) / 2 - 63.5))
    assert min(fills) > 0.42 and max(fills) < 0.9
    assert max(fills) - min(fills) > 0.2, "random scale"
    assert np.abs(np.array(offsets)).max() < 128 * 0.1


def test_shadow_darkens_background_not_alpha() -> None:
    for k, cat in enumerate(STANDING):
        p = render(40 + k, 128, category=cat, background="white")
        ys, xs = np.nonzero(p.alpha > 0)
        below = p.image[ys.max() - 3 : ys.max() + 4, xs.min() : xs.max() + 1]
        clear = p.alpha[ys.max() - 3 : ys.max() + 4, xs.min() : xs.max() + 1] == 0
        lum = below.astype(np.float64).mean(axis=-1)[clear]
        bg = corners(p.image).astype(np.float64).mean()
        assert lum.size and lum.min() < bg - 12, (cat, lum.min(), bg)


# --------------------------------------------------------------------------------- content


def test_dominant_colour_is_the_requested_one_for_most_renders() -> None:
    hits = total = 0
    for seed in range(160):
        p = render(seed, 96)
        hits += nearest_colour(dominant(p)) == p.colour
        total += 1
    assert hits / total > 0.8, hits / total


@pytest.mark.parametrize("colour", list(COLOURS))
def test_solid_mug_colour(colour: str) -> None:
    hits = sum(
        nearest_colour(dominant(render(s, 96, category="mug", colour=colour, pattern="solid")))
        == colour
        for s in range(6)
    )
    assert hits >= 5


def test_patterns_add_a_contrasting_colour() -> None:
    def spread(pattern: str) -> float:
        vals = []
        for s in range(8):
            p = render(s, 128, category="mug", colour="blue", pattern=pattern)
            px = p.image[p.alpha == 255].astype(np.float64)
            vals.append(np.abs(px - np.median(px, axis=0)).sum(-1).mean())
        return float(np.mean(vals))

    solid = spread("solid")
    for pattern in ("stripes", "dots", "two-tone"):
        assert spread(pattern) > solid * 1.5, pattern


@pytest.mark.parametrize("size", [64, 128, 256])
def test_mug_handle_hole_is_transparent(size: int) -> None:
    for seed in range(12):
        p = render(seed, size, category="mug")
        hole = enclosed_background(p.alpha)
        assert hole.sum() >= 2, seed
        assert (p.alpha[hole] == 0).all()
        # the background shows through the hole: as light as the frame's corners
        assert p.image[hole].mean() > corners(p.image).mean() - 40


def test_shading_and_highlight() -> None:
    p = render(5, 256, category="bottle", colour="blue", pattern="solid", background="white")
    lum = p.image.astype(np.float64).mean(-1)[p.alpha == 255]
    assert lum.max() - np.percentile(lum, 5) > 60  # lit side, shadow side and a highlight
    assert lum.max() > 200  # specular highlight on a blue bottle


def test_product_fields_and_immutability() -> None:
    p = render(1, 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.category = "mug"  # type: ignore[misc]
    text = repr(p)
    assert "array(" not in text and f"category={p.category!r}" in text


# ------------------------------------------------------------------------------- batch/split


def test_render_batch_matches_render() -> None:
    seeds = [3, 9, 27]
    images, alphas, labels = render_batch(seeds, 64, background="white")
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8
    assert alphas.shape == (3, 64, 64) and alphas.dtype == np.uint8
    for i, s in enumerate(seeds):
        p = render(s, 64, background="white")
        assert np.array_equal(images[i], p.image) and np.array_equal(alphas[i], p.alpha)
        assert labels[i] == (p.category, p.colour)
    images, alphas, labels = render_batch(np.arange(2), (64, 96), category="lamp")
    assert images.shape == (2, 64, 96, 3) and [c for c, _ in labels] == ["lamp", "lamp"]
    empty = render_batch([], 64)
    assert empty[0].shape == (0, 64, 64, 3) and empty[2] == []


def test_split_seeds_disjoint() -> None:
    tr, va, te = (split_seeds(s, 1000) for s in ("train", "val", "test"))
    assert tr.dtype == np.int64 and len(tr) == len(va) == len(te) == 1000
    assert not (set(tr) & set(va) or set(tr) & set(te) or set(va) & set(te))
    ranges = {s: catalog.SPLITS[s] for s in ("train", "val", "test")}
    spans = sorted((a, a + n) for a, n in ranges.values())
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))
    first, count = ranges["val"]
    assert split_seeds("val", 5, start=10).tolist() == list(range(first + 10, first + 15))
    assert split_seeds("test", 3, start=count - 3)[-1] == ranges["test"][0] + count - 1
    assert len(split_seeds("train", 0)) == 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("holdout", 10), "unknown split.*train, val, test"),
        (("train", 10_000_001), "beyond"),
        (("val", 10, 9_999_995), "beyond"),
        (("test", -1), "non-negative"),
    ],
)
def test_split_seeds_errors(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        split_seeds(*args)


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("size", [63, 513, 0, -128, (64, 513), (32, 128), (64,), "128", 128.0])
def test_bad_size(size: object) -> None:
    with pytest.raises(ValueError, match="size"):
        render(0, size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "valid"),
    [
        ({"category": "sofa"}, "tshirt, mug"),
        ({"colour": "teal"}, "red, orange"),
        ({"background": "black"}, "white, gradient, texture"),
        ({"pattern": "plaid"}, "solid, stripes"),
    ],
)
def test_bad_names_list_valid_ones(kw: dict, valid: str) -> None:
    with pytest.raises(ValueError, match=f"unknown .*{next(iter(kw.values()))}.*{valid}"):
        render(0, 64, **kw)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", None, True])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        render(seed, 64)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- property


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    h=st.integers(64, 512),
    w=st.integers(64, 512),
)
def test_render_never_fails_and_is_deterministic(seed: int, h: int, w: int) -> None:
    a = render(seed, (h, w))
    b = render(seed, (h, w))
    assert a.image.shape == (h, w, 3) and a.alpha.shape == (h, w)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.alpha, b.alpha)
    assert (a.alpha == 255).any() and (a.alpha == 0).any()
