from __future__ import annotations

import numpy as np
import pytest

from vetrina.contract import Contract, SpatialRules, TensorSpec
from vetrina.errors import ModelError


def _contract() -> Contract:
    return Contract(
        role="editor",
        inputs=(TensorSpec("image", range=(-1.0, 1.0)),),
        outputs=(TensorSpec("out", channels="BGR"),),
        spatial=SpatialRules(multiple_of=4, min_size=8, max_size=1024, scale=2),
        provenance={"architecture": "x", "checkpoint_sha256": "ab"},
        verification={"passed": True},
    )


def test_json_round_trip():
    c = _contract()
    assert Contract.from_json(c.to_json()) == c


def test_affine_maps_range_endpoints():
    spec = TensorSpec("image", range=(-1.0, 1.0))
    s, o = spec.from_uint8_affine()
    assert (0 * s + o, 255 * s + o) == (-1.0, 1.0)
    s, o = spec.to_uint8_affine()
    assert (-1 * s + o, 1 * s + o) == (0.0, 255.0)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        '{"version": 99}',
        '{"version": 1, "role": "painter", "inputs": [], "outputs": []}',
        '{"version": 1, "role": "editor", "inputs": [{"name": "a", "layout": "NHWC"}], '
        '"outputs": []}',
    ],
)
def test_malformed_contracts_are_model_errors(text):
    with pytest.raises(ModelError):
        Contract.from_json(text)


IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def test_mean_std_normalise_per_channel_and_round_trip():
    spec = TensorSpec("input", range=(0.0, 1.0), **IMAGENET)
    s, o = spec.from_uint8_affine()
    u = np.array([0.0, 128.0, 255.0])
    for c in range(3):  # the rembg convention: (u / 255 - mean) / std
        expected = (u / 255.0 - IMAGENET["mean"][c]) / IMAGENET["std"][c]
        np.testing.assert_allclose(u * s[c] + o[c], expected, rtol=1e-12)
    back_s, back_o = spec.to_uint8_affine()
    for c in range(3):
        np.testing.assert_allclose((u * s[c] + o[c]) * back_s[c] + back_o[c], u, atol=1e-9)
    lo, hi = spec.bounds
    assert lo == pytest.approx(o) and hi == pytest.approx(
        [255 * a + b for a, b in zip(s, o, strict=True)]
    )
    c = Contract(role="matting", inputs=(spec,), outputs=(TensorSpec("a", channels="L"),))
    assert Contract.from_json(c.to_json()) == c


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mean": (0.5, 0.5, 0.5)},  # std missing
        {"mean": (0.5, 0.5), "std": (0.2, 0.2)},  # two values for RGB
        {"mean": (0.5, 0.5, 0.5), "std": (0.2, 0.0, 0.2)},  # std 0
        {"mean": (0.5, 0.5, 0.5), "std": (0.2, 0.2, 0.2), "range": None},
        {"mean": ("a", 0, 0), "std": (1, 1, 1)},
    ],
)
def test_bad_mean_std_is_refused(kwargs):
    with pytest.raises(ModelError, match="mean"):
        TensorSpec("input", **kwargs)
