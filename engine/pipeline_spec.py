"""Pipeline files: parse and check a YAML (or dict) description before anything is loaded.

A pipeline names its input (``image``: photos in; ``generate``: requests in), a list of
stages and how to write the result::

    name: catalog-cleanup
    input: image
    stages:
      - clean: {detector: zoo:detector, inpainter: zoo:inpainter, threshold: 0.5}
      - edit: zoo:enhancer
    output: {background: white, format: jpeg}

Each stage is a one-key mapping ``KIND: MODEL`` or ``KIND: {model: ..., param: ...}``. Every key
is checked here (unknown stage kinds, parameters and output options are errors that list the
valid ones); models are resolved and their contracts checked later, by
:class:`vetrina.pipeline.Pipeline`, still before the first request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import InputError, ModelError

INPUTS = ("image", "generate")
FORMATS = ("png", "jpeg", "webp")

# kind -> (model slots, {parameter: default}); a slot named "model" takes the short form.
STAGE_KINDS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "generate": (("model",), {}),
    "edit": (("model",), {}),
    "clean": (("detector", "inpainter"), {"threshold": 0.5, "dilate": 0}),
    "matte": (
        ("model",),
        {
            "size": None,
            "refine": 0,
            "eps": 1e-3,
            "threshold": None,
            "shadow": 0.0,
            "stretch": False,
            "empty_check": True,
            "resize": "area",
            "decontaminate": False,
        },
    ),
}
MATTE_RESIZES = ("area", "lanczos")
"""How a photo is shrunk for the matting model: ``lanczos`` is PIL's filter, as rembg uses."""
MATTE_SIZE_PHOTO = "photo"
"""``size: photo``: the matte at the photo's own (working) size instead of a fixed square."""
OUTPUT_OPTIONS: dict[str, Any] = {
    "format": "png",
    "background": None,
    "quality": 92,
    "png_compression": None,
    "crop": False,
    "canvas": None,
    "fill": 0.85,
}

#: The largest working size (pixels) a chain that cannot be tiled runs whole by default:
#: 2048 x 2048, about 3 GB of activations for a style net on ONNX Runtime CPU.
MAX_WHOLE_PIXELS = 2048 * 2048

BUILTIN_PACKAGE = "vetrina.pipelines"


class PipelineError(InputError):
    """A pipeline file or description that cannot run; the message names the fix."""


@dataclass(frozen=True)
class StageSpec:
    kind: str
    models: dict[str, str]
    params: dict[str, Any]

    @property
    def label(self) -> str:
        """``kind:model`` (``clean:detector+inpainter``) for logs, timings and metadata."""
        return f"{self.kind}:" + "+".join(_short(m) for m in self.models.values())


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    input: str
    stages: tuple[StageSpec, ...]
    output: dict[str, Any] = field(default_factory=lambda: dict(OUTPUT_OPTIONS))
    description: str = ""
    base_dir: Path = field(default_factory=Path.cwd)


def builtin_names() -> list[str]:
    """Names of the pipelines shipped with vetrina (``engine/pipelines/*.yaml``)."""
    folder = resources.files(BUILTIN_PACKAGE)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_spec(ref: str | os.PathLike[str]) -> PipelineSpec:
    """A pipeline by shipped name (``catalog-cleanup``) or by path to a YAML file."""
    import yaml

    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise PipelineError(f"{path}: no such pipeline file")
        source, base = path.read_text(encoding="utf-8"), path.resolve().parent
    else:
        name = str(ref)
        if name not in builtin_names():
            raise PipelineError(
                f"no pipeline named {name!r}; shipped: {', '.join(builtin_names())}",
                hint="or give the path of a .yaml file",
            )
        source = resources.files(BUILTIN_PACKAGE).joinpath(f"{name}.yaml").read_text("utf-8")
        base = Path.cwd()
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise PipelineError(f"{ref}: not valid YAML ({' '.join(str(exc).split())})") from None
    return parse_spec(raw, base_dir=base, origin=str(ref))


def single_model_spec(model: str | os.PathLike[str]) -> PipelineSpec:
    """The one-stage pipeline ``edit: MODEL`` that ``vetrina run MODEL.onnx`` runs, so a
    single model gets what a pipeline gets: tiling of large photos where the model allows it,
    no downscaling unless asked, provenance in the PNG metadata."""
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    return parse_spec(
        {"name": path.stem, "stages": [{"edit": path.name}]},
        base_dir=path.resolve().parent,
        origin=str(path),
    )


def parse_spec(raw: Any, *, base_dir: Path | None = None, origin: str = "pipeline") -> PipelineSpec:
    """Check a pipeline description (the YAML's mapping) and return its spec."""
    if not isinstance(raw, dict):
        raise PipelineError(f"{origin}: expected a mapping with 'input' and 'stages'")
    _only(raw, ("name", "description", "input", "stages", "output"), f"{origin}")
    name = str(raw.get("name") or Path(origin).stem)
    kind = raw.get("input", "image")
    if kind not in INPUTS:
        raise PipelineError(f"{origin}: input {kind!r} is not one of {', '.join(INPUTS)}")
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise PipelineError(f"{origin}: 'stages' must be a non-empty list")
    stages = tuple(_stage(s, i, origin) for i, s in enumerate(stages_raw))
    generators = [i for i, s in enumerate(stages) if s.kind == "generate"]
    if kind == "generate" and generators != [0]:
        raise PipelineError(
            f"{origin}: an 'input: generate' pipeline starts with one generate stage"
        )
    if kind == "image" and generators:
        raise PipelineError(
            f"{origin}: stage {generators[0] + 1} generates, but the input is an image",
            hint="set 'input: generate' and put the generate stage first",
        )
    output = _output(raw.get("output") or {}, origin)
    return PipelineSpec(
        name=name,
        input=kind,
        stages=stages,
        output=output,
        description=str(raw.get("description") or ""),
        base_dir=base_dir or Path.cwd(),
    )


def _stage(raw: Any, index: int, origin: str) -> StageSpec:
    where = f"{origin}: stage {index + 1}"
    if not isinstance(raw, dict) or len(raw) != 1:
        raise PipelineError(f"{where}: expected one 'KIND: MODEL' or 'KIND: {{...}}' entry")
    ((kind, body),) = raw.items()
    if kind not in STAGE_KINDS:
        raise PipelineError(f"{where}: unknown stage {kind!r}; known: {', '.join(STAGE_KINDS)}")
    slots, defaults = STAGE_KINDS[kind]
    if isinstance(body, str):
        if slots != ("model",):
            raise PipelineError(f"{where}: {kind} needs {', '.join(slots)}")
        body = {"model": body}
    if not isinstance(body, dict):
        raise PipelineError(f"{where}: {kind} takes a model reference or a mapping")
    _only(body, (*slots, *defaults), where)
    missing = [s for s in slots if not isinstance(body.get(s), str) or not body.get(s)]
    if missing:
        raise PipelineError(f"{where}: {kind} needs {', '.join(missing)} (a model reference)")
    params = {**defaults, **{k: v for k, v in body.items() if k in defaults}}
    _check_params(kind, params, where)
    return StageSpec(kind, {s: str(body[s]) for s in slots}, params)


def _check_params(kind: str, params: dict[str, Any], where: str) -> None:
    if kind == "matte":
        _check_matte(params, where)
    if kind == "clean":
        t = params["threshold"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < t < 1.0:
            raise PipelineError(f"{where}: threshold {t!r} must be a number in (0, 1)")
        d = params["dilate"]
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 64:
            raise PipelineError(f"{where}: dilate {d!r} must be an int in 0..64 (pixels)")


def _check_matte(params: dict[str, Any], where: str) -> None:
    """Matte options: ``size`` (the model's input side: int, [h, w] or ``photo``; default the
    model's static size, else 320 as rembg's U²-Net), ``refine`` (guided-filter radius in the
    matte's pixels, scaled to the photo: 2 on a 128 px matte of a 1024 px photo is 16 px; 0
    off) and ``eps``, ``threshold`` ([low, high]: alpha ramps from 0
    at low to 1 at high; equal values cut hard), ``shadow`` (0..1: keep soft shadows at this
    strength), ``stretch`` (rescale each matte to [0, 1] first, as rembg does), ``empty_check``
    (a matte whose outline follows no edge of the photo counts as no product), ``resize``
    (the filter that shrinks the photo for the model: ``area`` or ``lanczos``, rembg's),
    ``decontaminate`` (estimate the product's own colour under soft edges, removing the
    background's rim: :mod:`vetrina.foreground`)."""
    size = params["size"]
    if size is not None and size != MATTE_SIZE_PHOTO:
        sides = size if isinstance(size, list) else [size, size]
        if len(sides) != 2 or not all(_int_in(v, 16, 4096) for v in sides):
            raise PipelineError(
                f"{where}: size {size!r} must be a side in 16..4096, [height, width] or "
                f"'{MATTE_SIZE_PHOTO}'"
            )
        params["size"] = (int(sides[0]), int(sides[1]))
    if not _int_in(params["refine"], 0, 16):
        raise PipelineError(
            f"{where}: refine {params['refine']!r} must be a radius in 0..16 (matte pixels)"
        )
    eps = params["eps"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 1:
        raise PipelineError(f"{where}: eps {eps!r} must be a number in (0, 1]")
    t = params["threshold"]
    if t is not None:
        if (
            not isinstance(t, list)
            or len(t) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in t)
            or not 0 <= t[0] <= t[1] <= 1
        ):
            raise PipelineError(
                f"{where}: threshold {t!r} must be [low, high] with 0 <= low <= high <= 1"
            )
        params["threshold"] = (float(t[0]), float(t[1]))
    sh = params["shadow"]
    if sh is False:
        params["shadow"] = sh = 0.0
    if isinstance(sh, bool) or not isinstance(sh, (int, float)) or not 0 <= sh <= 1:
        raise PipelineError(f"{where}: shadow {sh!r} must be a strength in 0..1 (0: off)")
    if params["resize"] not in MATTE_RESIZES:
        raise PipelineError(
            f"{where}: resize {params['resize']!r}; choose {', '.join(MATTE_RESIZES)}"
        )
    for key in ("stretch", "empty_check", "decontaminate"):
        if not isinstance(params[key], bool):
            raise PipelineError(f"{where}: {key} {params[key]!r} must be true or false")


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _output(raw: Any, origin: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise PipelineError(f"{origin}: 'output' must be a mapping")
    _only(raw, tuple(OUTPUT_OPTIONS), f"{origin}: output")
    out = {**OUTPUT_OPTIONS, **raw}
    if out["format"] not in FORMATS:
        raise PipelineError(
            f"{origin}: output format {out['format']!r}; choose {', '.join(FORMATS)}"
        )
    q = out["quality"]
    if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100:
        raise PipelineError(f"{origin}: output quality {q!r} must be an int in 1..100")
    level = out["png_compression"]
    if level is not None:
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise PipelineError(
                f"{origin}: output png_compression {level!r} must be a zlib level in 0..9 "
                "(or absent: OpenCV's fast default)"
            )
        if out["format"] != "png":
            raise PipelineError(
                f"{origin}: output png_compression is set but the format is {out['format']}",
                hint="drop png_compression, or set quality for JPEG and WebP",
            )
    out["background"] = parse_colour(out["background"], f"{origin}: output background")
    if not isinstance(out["crop"], bool):
        raise PipelineError(f"{origin}: output crop {out['crop']!r} must be true or false")
    c = out["canvas"]
    if c is not None and (isinstance(c, bool) or not isinstance(c, int) or not 16 <= c <= 8192):
        raise PipelineError(f"{origin}: output canvas {c!r} must be a side in 16..8192 px")
    f = out["fill"]
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.05 <= f <= 1.0:
        raise PipelineError(f"{origin}: output fill {f!r} must be a fraction in 0.05..1")
    return out


def parse_colour(value: Any, where: str) -> tuple[int, int, int] | None:
    """None, ``white``/``black``/``grey``, ``#rrggbb`` or ``[r, g, b]`` -> an RGB triple."""
    named = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128)}
    if value is None or value == "none":
        return None
    if isinstance(value, str):
        if value in named:
            return named[value]
        text = value.lstrip("#")
        if value.startswith("#") and len(text) == 6:
            try:
                return tuple(int(text[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
            except ValueError:
                pass
    elif (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    ):
        return tuple(value)  # type: ignore[return-value]
    raise PipelineError(
        f"{where} {value!r} is not a colour; use white, black, grey, '#rrggbb' or [r, g, b]"
    )


def _only(raw: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise PipelineError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(allowed)}"
        )


def _short(ref: str) -> str:
    return ref[4:] if ref.startswith("zoo:") else Path(ref).stem
