"""Pipeline descriptions are user input: any YAML value anywhere gives a checked spec or a
PipelineError naming the fix, never another exception (no models needed)."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_edits import edited, places

from vetrina.pipeline_spec import (
    FORMATS,
    INPUTS,
    MATTE_RESIZES,
    MATTE_SIZE_PHOTO,
    STAGE_KINDS,
    PipelineError,
    PipelineSpec,
    parse_spec,
)

FULL = {
    "name": "everything",
    "description": "every option once",
    "input": "image",
    "stages": [
        {
            "matte": {
                "model": "zoo:matting",
                "size": [128, 96],
                "refine": 2,
                "eps": 0.001,
                "threshold": [0.3, 0.7],
                "shadow": 0.5,
                "stretch": True,
                "empty_check": False,
                "resize": "lanczos",
                "decontaminate": True,
            }
        },
        {
            "clean": {
                "detector": "zoo:detector",
                "inpainter": "zoo:inpainter",
                "threshold": 0.4,
                "dilate": 2,
            }
        },
        {"edit": "zoo:enhancer"},
    ],
    "output": {
        "format": "png",
        "background": "#ffffff",
        "quality": 90,
        "png_compression": 3,
        "crop": True,
        "canvas": 1024,
        "fill": 0.85,
    },
}
GENERATE = {
    "input": "generate",
    "stages": [{"generate": "zoo:gan"}, {"edit": {"model": "zoo:upscaler"}}],
    "output": {"format": "jpeg", "background": [10, 20, 30], "quality": 80},
}

# What YAML can hold (safe_load): scalars, lists and mappings, keys included.
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(
        [*INPUTS, *FORMATS, *MATTE_RESIZES, MATTE_SIZE_PHOTO, *STAGE_KINDS, "zoo:x", "#ff00zz"]
    )
)
_KEYS = st.text(max_size=6) | st.sampled_from(list(FULL) + list(FULL["output"]))
_YAML = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=10,
)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_sane(spec: PipelineSpec) -> None:
    """What the pipeline builder relies on in every spec the parser accepts."""
    assert spec.input in INPUTS and isinstance(spec.name, str)
    assert spec.stages
    for stage in spec.stages:
        slots, defaults = STAGE_KINDS[stage.kind]
        assert tuple(stage.models) == slots
        assert all(isinstance(m, str) and m for m in stage.models.values())
        assert set(stage.params) == set(defaults)
        p = stage.params
        if stage.kind == "clean":
            assert _number(p["threshold"]) and 0 < p["threshold"] < 1
            assert type(p["dilate"]) is int and 0 <= p["dilate"] <= 64
        if stage.kind == "matte":
            assert p["size"] in (None, MATTE_SIZE_PHOTO) or (
                len(p["size"]) == 2 and all(type(v) is int and v >= 16 for v in p["size"])
            )
            assert type(p["refine"]) is int and _number(p["eps"]) and 0 < p["eps"] <= 1
            assert p["threshold"] is None or all(_number(v) for v in p["threshold"])
            assert _number(p["shadow"]) and 0 <= p["shadow"] <= 1
            assert p["resize"] in MATTE_RESIZES
    out = spec.output
    assert out["format"] in FORMATS and type(out["quality"]) is int
    assert out["background"] is None or (
        len(out["background"]) == 3 and all(type(v) is int for v in out["background"])
    )
    assert isinstance(out["crop"], bool) and _number(out["fill"])


@pytest.mark.parametrize("raw", [FULL, GENERATE], ids=["everything", "generate"])
def test_the_seeds_parse(raw):
    _check_sane(parse_spec(raw))


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_any_edit_of_a_valid_pipeline_is_parsed_or_refused(data):
    """Replace or delete any one place of a valid description (keys and values)."""
    raw = data.draw(st.sampled_from([FULL, GENERATE]))
    path = data.draw(st.sampled_from(list(places(raw))))
    delete = bool(path) and data.draw(st.booleans())
    changed = edited(raw, path, None if delete else data.draw(_YAML), delete=delete)
    try:
        spec = parse_spec(changed)
    except PipelineError as exc:
        assert str(exc)
        return
    _check_sane(spec)


@settings(max_examples=200, deadline=None)
@given(raw=_YAML)
def test_any_yaml_value_is_parsed_or_refused(raw):
    try:
        spec = parse_spec(raw)
    except PipelineError:
        return
    _check_sane(spec)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_any_text_as_a_pipeline_file_is_parsed_or_refused(tmp_path_factory, text):
    from vetrina.pipeline_spec import load_spec

    path = tmp_path_factory.mktemp("spec") / "p.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        spec = load_spec(path)
    except PipelineError:
        return
    _check_sane(spec)


def test_yaml_round_trip_of_the_seed(tmp_path):
    from vetrina.pipeline_spec import load_spec

    path = tmp_path / "everything.yaml"
    path.write_text(yaml.safe_dump(FULL), encoding="utf-8")
    spec = load_spec(path)
    assert spec.stages[0].params["size"] == (128, 96)
    assert spec.output["background"] == (255, 255, 255)
