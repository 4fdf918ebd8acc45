"""vetrina.models.degrade: realistic, recoverable supplier-photo degradations."""

from __future__ import annotations

import numpy as np
import pytest

from vetrina.models.catalog import render
from vetrina.models.degrade import FOUNDATION_KINDS, KINDS, ORDER, degrade, degrade_batch

LUMA = np.array([0.299, 0.587, 0.114])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return render(11, 96, category="mug", colour="blue", pattern="stripes").image


def test_kinds() -> None:
    assert KINDS == ("contrast", "cast", "exposure", "noise", "blur", "downscale")
    assert FOUNDATION_KINDS == ("contrast", "cast", "noise")
    assert sorted(ORDER) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_alone(image: np.ndarray, kind: str) -> None:
    before = image.copy()
    for seed in range(8):
        out, params = degrade(image, np.random.default_rng(seed), [kind], p=1.0)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert list(params) == [kind]
        assert isinstance(params[kind], dict) and params[kind]
        assert not np.array_equal(out, image)
        assert 10.0 < psnr(image, out) < 40.0, (kind, psnr(image, out))
    assert np.array_equal(image, before), "the input is not modified"


def test_parameter_ranges(image: np.ndarray) -> None:
    for seed in range(40):
        _, prm = degrade(image, np.random.default_rng(seed), KINDS, p=1.0)
        assert 0.45 <= prm["contrast"]["factor"] <= 0.8
        gains = np.array(prm["cast"]["gains"])
        assert ((gains >= 0.75) & (gains <= 1.25)).all()
        assert abs(gains @ LUMA - 1.0) < 0.05
        assert prm["cast"]["tint"] in ("warm", "cool", "green", "magenta")
        assert 0.4 <= abs(prm["exposure"]["stops"]) <= 1.0
        assert 3.0 <= prm["noise"]["sigma"] <= 14.0
        assert 0.6 <= prm["blur"]["sigma"] <= 1.6
        assert 2.0 <= prm["downscale"]["factor"] <= 3.0


def test_contrast_blends_toward_mean(image: np.ndarray) -> None:
    out, prm = degrade(image, np.random.default_rng(0), ["contrast"], p=1.0)
    ratio = out.astype(np.float64).std() / image.astype(np.float64).std()
    assert abs(ratio - prm["contrast"]["factor"]) < 0.03


def test_cast_keeps_brightness_and_tints(image: np.ndarray) -> None:
    for seed in range(10):
        out, prm = degrade(image, np.random.default_rng(seed), ["cast"], p=1.0)
        lum_in = (image.astype(np.float64) @ LUMA).mean()
        lum_out = (out.astype(np.float64) @ LUMA).mean()
        assert abs(lum_out / lum_in - 1.0) < 0.06
        shift = out.astype(np.float64).mean((0, 1)) - image.astype(np.float64).mean((0, 1))
        tint = prm["cast"]["tint"]
        if tint == "warm":
            assert shift[0] > shift[2]
        elif tint == "cool":
            assert shift[2] > shift[0]
        elif tint == "green":
            assert shift[1] > max(shift[0], shift[2])
        else:
            assert shift[1] < min(shift[0], shift[2])


def test_exposure_direction(image: np.ndarray) -> None:
    for seed in range(10):
        out, prm = degrade(image, np.random.default_rng(seed), ["exposure"], p=1.0)
        delta = out.astype(np.float64).mean() - image.astype(np.float64).mean()
        assert np.sign(delta) == np.sign(prm["exposure"]["stops"])


def test_noise_level() -> None:
    flat = np.full((96, 96, 3), 128, np.uint8)
    for seed in range(6):
        out, prm = degrade(flat, np.random.default_rng(seed), ["noise"], p=1.0)
        sigma = (out.astype(np.float64) - 128).std()
        assert abs(sigma / prm["noise"]["sigma"] - 1.0) < 0.15
        # partly chroma: the channels' noise is not identical
        assert not np.array_equal(out[..., 0], out[..., 1])


def test_blur_and_downscale_remove_detail(image: np.ndarray) -> None:
    def detail(x: np.ndarray) -> float:
        return float(np.abs(np.diff(x.astype(np.float64), axis=1)).mean())

    for kind in ("blur", "downscale"):
        out, _ = degrade(image, np.random.default_rng(1), [kind], p=1.0)
        assert detail(out) < detail(image) * 0.9, kind


def test_deterministic_given_rng_state(image: np.ndarray) -> None:
    for seed in range(5):
        a, pa = degrade(image, np.random.default_rng(seed), KINDS)
        b, pb = degrade(image, np.random.default_rng(seed), KINDS)
        assert np.array_equal(a, b) and pa == pb
    outs = {degrade(image, np.random.default_rng(s), KINDS)[0].tobytes() for s in range(8)}
    assert len(outs) == 8


def test_at_least_one_kind_applied(image: np.ndarray) -> None:
    seen = set()
    for seed in range(40):
        out, prm = degrade(image, np.random.default_rng(seed), KINDS, p=0.0)
        assert len(prm) == 1
        seen |= set(prm)
        assert not np.array_equal(out, image)
    assert seen == set(KINDS)


def test_probability_and_order(image: np.ndarray) -> None:
    counts = dict.fromkeys(FOUNDATION_KINDS, 0)
    for seed in range(200):
        _, prm = degrade(image, np.random.default_rng(seed))
        assert set(prm) <= set(FOUNDATION_KINDS) and prm
        assert list(prm) == [k for k in ORDER if k in prm]
        for k in prm:
            counts[k] += 1
    for k, n in counts.items():
        assert 0.55 < n / 200 < 0.9, (k, n)
    _, prm = degrade(image, np.random.default_rng(0), list(reversed(KINDS)), p=1.0)
    assert list(prm) == list(ORDER)


def test_single_kind_string(image: np.ndarray) -> None:
    _, prm = degrade(image, np.random.default_rng(0), "blur")
    assert list(prm) == ["blur"]


def test_degrade_batch(image: np.ndarray) -> None:
    batch = np.stack([image, image[::-1].copy(), image[:, ::-1].copy()])
    out = degrade_batch(batch, np.random.default_rng(3), KINDS, p=0.5)
    assert out.shape == batch.shape and out.dtype == np.uint8
    assert np.array_equal(out, degrade_batch(batch, np.random.default_rng(3), KINDS, p=0.5))
    assert all(not np.array_equal(out[i], batch[i]) for i in range(3))
    assert degrade_batch(batch[:0], np.random.default_rng(0)).shape == (0, 96, 96, 3)


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
        degrade(bad, np.random.default_rng(0))  # type: ignore[arg-type]


def test_bad_arguments(image: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"unknown degradation kind 'jpeg'.*contrast"):
        degrade(image, rng, ["noise", "jpeg"])
    with pytest.raises(ValueError, match="empty"):
        degrade(image, rng, [])
    with pytest.raises(ValueError, match="p must"):
        degrade(image, rng, p=1.5)
    with pytest.raises(ValueError, match="Generator"):
        degrade(image, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="N, H, W, 3"):
        degrade_batch(image, rng)
    with pytest.raises(ValueError, match="N, H, W, 3"):
        degrade_batch(np.zeros((2, 8, 8, 3), np.float32), rng)
    with pytest.raises(ValueError, match="unknown degradation kind 'sharpen'"):
        degrade_batch(image[None], rng, ["sharpen"])
