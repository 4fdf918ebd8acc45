from __future__ import annotations

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
