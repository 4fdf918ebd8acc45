from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_edits import edited, places

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


# --- property tests: a contract read from a model file is untrusted input --------------------

_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.sampled_from([10**400, -(10**400)])
    | st.text(max_size=8)
)
_JSON_FLOATS = st.floats(allow_nan=True, allow_infinity=True)
_JSON = st.recursive(
    _JSON_LEAVES | _JSON_FLOATS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _valid_raw() -> dict:
    c = Contract(
        role="matting",
        inputs=(
            TensorSpec(
                "image", range=(0.0, 1.0), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
            ),
            TensorSpec(
                "label",
                semantic="label",
                layout="N",
                channels="",
                range=None,
                dtype="int64",
                labels=("red", "blue"),
            ),
        ),
        outputs=(TensorSpec("mask", semantic="mask", channels="L"),),
        spatial=SpatialRules(multiple_of=32, min_size=32, max_size=2048, scale=1),
        provenance={"static_size": [320, 320]},
    )
    return json.loads(c.to_json())


def _check_sane(c: Contract) -> None:
    """What the runtime relies on in every contract it accepts."""
    for t in (*c.inputs, *c.outputs):
        assert isinstance(t.name, str) and t.name
        for values in (t.range, t.mean, t.std):
            assert values is None or all(
                isinstance(v, float) and math.isfinite(v) for v in values
            ), t
    s = c.spatial
    for v in (s.multiple_of, s.min_size, s.scale, *(() if s.max_size is None else (s.max_size,))):
        assert type(v) is int and v >= 1, s
    c.static_size  # noqa: B018 -- a ModelError or a size, never another error


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_contract_is_read_or_refused_with_a_model_error(data):
    """Replace any one place of a valid contract with any JSON value: the result is either a
    sane contract or a ModelError, never another exception and never NaN/inf ranges,
    non-int size rules or nameless tensors."""
    raw = _valid_raw()
    path = data.draw(st.sampled_from(list(places(raw))))
    value = data.draw(_JSON)
    text = json.dumps(edited(raw, path, value))
    try:
        c = Contract.from_json(text)
    except ModelError:
        return
    with contextlib.suppress(ModelError):  # static_size is read lazily
        _check_sane(c)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=64) | _JSON.map(json.dumps))
def test_any_text_is_read_or_refused_with_a_model_error(text):
    with contextlib.suppress(ModelError):
        _check_sane(Contract.from_json(text))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("inputs", 0, "range"), [0, math.inf]),
        (("inputs", 0, "range"), [0, 10**400]),
        (("inputs", 0, "range"), [0, 1, 2]),
        (("inputs", 0, "range"), [True, 2]),
        (("inputs", 0, "mean"), [math.nan, 0.5, 0.5]),
        (("inputs", 0, "std"), [math.inf, 1, 1]),
        (("inputs", 0, "name"), None),
        (("inputs", 0, "name"), ""),
        (("spatial", "multiple_of"), 2.5),
        (("spatial", "scale"), True),
        (("spatial", "max_size"), "64"),
        (("verification",), [1, 2]),
        (("provenance",), [["static_size", [1, 2]]]),
    ],
)
def test_contract_values_the_runtime_cannot_use_are_refused(path, value):
    text = json.dumps(edited(_valid_raw(), path, value))
    with pytest.raises(ModelError, match="contract"):
        Contract.from_json(text)


@pytest.mark.parametrize("size", [[320, math.inf], [320.5, 320], [True, 320], [320], "320"])
def test_bad_static_size_is_a_model_error(size):
    raw = edited(_valid_raw(), ("provenance", "static_size"), size)
    contract = Contract.from_json(json.dumps(raw))
    with pytest.raises(ModelError, match="static_size"):
        contract.static_size  # noqa: B018


def test_deeply_nested_metadata_is_a_model_error():
    with pytest.raises(ModelError, match="malformed"):
        Contract.from_json("[" * 100_000 + "]" * 100_000)
