"""--profile parsing, contract defaults and validation against the model's inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina.contract import Contract, SpatialRules, TensorSpec
from vetrina.converters.profiles import (
    DEFAULT_BATCH,
    MAX_DIM,
    Profile,
    ProfileError,
    ShapeRange,
    default_profile,
    onnx_input_shapes,
    parse_profiles,
    parse_range,
    profiles_from_json,
    profiles_to_json,
    resolve_profiles,
    validate_profiles,
)

IMAGE = TensorSpec(name="image")
MASK = TensorSpec(name="mask", semantic="mask", channels="L")
Z = TensorSpec(name="z", semantic="z", layout="NC", channels="", range=None)


def _contract(*inputs: TensorSpec, step: int = 4, lo: int = 16, hi: int | None = None):
    return Contract(
        role="editor",
        inputs=inputs,
        outputs=(TensorSpec(name="out"),),
        spatial=SpatialRules(multiple_of=step, min_size=lo, max_size=hi),
    )


IMG_IN = {"image": (None, 3, None, None)}


def test_parse_range_forms():
    r = parse_range("image:1x3x64x64,4x3x256x256,8x3x512x512")
    assert r == ShapeRange("image", (1, 3, 64, 64), (4, 3, 256, 256), (8, 3, 512, 512))
    fixed = parse_range(" image : 2X3x32x32 ")
    assert fixed.min == fixed.opt == fixed.max == (2, 3, 32, 32)
    assert str(r) == "image:1x3x64x64,4x3x256x256,8x3x512x512"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("image", "expected NAME:MIN,OPT,MAX"),
        (":1x3x4x4", "expected NAME:MIN,OPT,MAX"),
        ("image:1x3x4x4,2x3x4x4", "2 shapes"),
        ("image:1x3x4x4,2x3x4x4,3x3x4x4,4x3x4x4", "4 shapes"),
        ("image:1x3x4xa", "not like 1x3x256x256"),
        ("image:1x0x4x4", "dim outside 1..2147483647"),
        ("image:1x3x4x2147483648", "dim outside 1..2147483647"),
        ("image:1x3x4x\uff14", "not like"),  # a fullwidth digit
        ("image:1x3x4x4,,8x3x4x4", "not like"),
    ],
)
def test_parse_errors(text, match):
    with pytest.raises(ProfileError, match=match):
        parse_range(text)


_NAMES = st.text(
    st.characters(blacklist_characters=":", blacklist_categories=("Cs",)), min_size=1, max_size=8
).filter(lambda n: n.strip() == n and n)
_SHAPES = st.lists(st.integers(1, MAX_DIM), min_size=1, max_size=5).map(tuple)


@settings(max_examples=200, deadline=None)
@given(name=_NAMES, lo=_SHAPES, opt=_SHAPES, hi=_SHAPES)
def test_a_printed_range_parses_back(name, lo, opt, hi):
    r = ShapeRange(name, lo, opt, hi)
    assert parse_range(str(r)) == r


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40) | st.from_regex(r"\A\w{1,4}:[0-9x,]{0,24}\Z"))
def test_any_flag_text_parses_or_is_a_profile_error(text):
    try:
        r = parse_range(text)
    except ProfileError as exc:
        assert "--profile" in str(exc)
        return
    for shape in (r.min, r.opt, r.max):
        assert shape and all(type(d) is int and 1 <= d <= MAX_DIM for d in shape)


def test_repeated_input_starts_next_profile():
    flags = [
        "image:1x3x8x8,1x3x16x16,1x3x32x32",
        "mask:1x1x8x8,1x1x16x16,1x1x32x32",
        "image:4x3x64x64",
        "mask:4x1x64x64",
        "image:8x3x8x8",
    ]
    profiles = parse_profiles(flags)
    assert [p.names() for p in profiles] == [["image", "mask"], ["image", "mask"], ["image"]]
    assert profiles[1].get("mask").min == (4, 1, 64, 64)


def test_default_profile_follows_contract():
    prof = default_profile(IMG_IN, _contract(IMAGE, step=4, lo=18, hi=1000))
    (r,) = prof.inputs
    # min side 18 rounded up to 20; max 1000 rounded down to 1000 (multiple of 4); opt 512
    assert r.min == (DEFAULT_BATCH[0], 3, 20, 20)
    assert r.opt == (DEFAULT_BATCH[1], 3, 512, 512)
    assert r.max == (DEFAULT_BATCH[2], 3, 1000, 1000)
    # no max_size: the runtime's default max side
    r = default_profile(IMG_IN, _contract(IMAGE, step=8, lo=16)).inputs[0]
    assert r.max[2:] == (2048, 2048) and r.min[2:] == (16, 16)
    # tiny models keep opt within their range
    r = default_profile(IMG_IN, _contract(IMAGE, step=1, lo=8, hi=64)).inputs[0]
    assert (r.min[2], r.opt[2], r.max[2]) == (8, 64, 64)


def test_default_profile_latent_and_static_dims():
    inputs = {"z": (None, 64), "label": (None,), "fixed": (1, 3, 8, 8)}
    prof = default_profile(inputs, _contract(Z))
    assert prof.names() == ["z", "label"]  # the static input needs no range
    assert prof.get("z").max == (DEFAULT_BATCH[2], 64)


def test_default_needs_contract_or_flags():
    with pytest.raises(ProfileError, match="no vetrina contract"):
        default_profile(IMG_IN, None)
    with pytest.raises(ProfileError, match="axis 1"):  # a dynamic channel axis has no default
        default_profile({"image": (None, None, 8, 8)}, _contract(IMAGE))


def _check(flags, inputs=IMG_IN, contract=None):
    return validate_profiles(parse_profiles(flags), inputs, contract)


@pytest.mark.parametrize(
    ("flags", "rules", "match"),
    [
        (["img:1x3x8x8"], False, r"no input 'img'.*image \(\?x3x\?x\?\)"),
        (["image:1x3x8"], False, "has 3 dims"),
        (["image:2x3x8x8,1x3x8x8,4x3x8x8"], False, "min 2, opt 1, max 4"),
        (["image:1x3x8x8,1x3x16x16,1x3x12x12"], False, "axis 2 has min 8, opt 16, max 12"),
        (["image:1x4x8x8,1x4x8x8,1x4x8x8"], False, "axis 1 is fixed at 3"),
        (["image:1x3x12x12,1x3x16x16,1x3x30x32"], True, "max side 30 .* not a multiple of 4"),
        (["image:1x3x8x8,1x3x16x16,1x3x32x32"], True, "min side 8 .* below the model's min"),
        (["image:1x3x16x16,1x3x16x16,1x3x128x128"], True, "above the model's maximum side 64"),
    ],
)
def test_validation_errors(flags, rules, match):
    contract = _contract(IMAGE, step=4, lo=12, hi=64) if rules else None
    with pytest.raises(ProfileError, match=match):
        _check(flags, contract=contract)
    if rules:  # without the contract's rules the same shapes are fine
        assert _check(flags, contract=None)


def test_profile_missing_a_dynamic_input():
    inputs = {"image": (None, 3, None, None), "mask": (None, 1, None, None)}
    flags = ["image:1x3x8x8", "mask:1x1x8x8", "image:2x3x8x8"]
    with pytest.raises(ProfileError, match=r"profile 1 misses the dynamic input\(s\) mask"):
        _check(flags, inputs)


def test_static_inputs_checked_then_dropped():
    inputs = {"image": (None, 3, 8, 8), "scale": (1,)}
    (prof,) = _check(["scale:1", "image:1x3x8x8,2x3x8x8,4x3x8x8"], inputs)
    assert prof.names() == ["image"]
    with pytest.raises(ProfileError, match="fixed at 1"):
        _check(["scale:2", "image:1x3x8x8"], inputs)


def test_resolve_profiles_defaults_and_static_models():
    contract = _contract(IMAGE, step=2, lo=8)
    (prof,) = resolve_profiles(None, IMG_IN, contract)
    assert prof.get("image").opt == (4, 3, 512, 512)
    assert resolve_profiles(None, {"image": (1, 3, 64, 64)}, contract) == []
    with pytest.raises(ProfileError, match="fixed at 64"):
        resolve_profiles(["image:1x3x32x32"], {"image": (1, 3, 64, 64)}, contract)


def test_json_round_trip_is_canonical():
    a = [Profile((ShapeRange("mask", (1,), (2,), (3,)), ShapeRange("image", (1,), (1,), (1,))))]
    b = [Profile((ShapeRange("image", (1,), (1,), (1,)), ShapeRange("mask", (1,), (2,), (3,))))]
    assert profiles_to_json(a) == profiles_to_json(b)
    back = profiles_from_json(profiles_to_json(a))
    assert back[0].get("mask") == ShapeRange("mask", (1,), (2,), (3,))


def test_onnx_input_shapes_reads_symbolic_dims():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "h", 64])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, "h", 64])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["image", "w"], ["out"])],
        "g",
        [x, helper.make_tensor_value_info("w", TensorProto.FLOAT, [1])],
        [y],
        initializer=[w],
    )
    model = helper.make_model(graph)
    assert onnx_input_shapes(model) == {"image": (None, 3, None, 64)}
    assert onnx.checker.check_model(model) is None
