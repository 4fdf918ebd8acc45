"""Name the architecture of a bare state_dict from its key names and shapes.

Public projects publish weights without saying what built them (CycleGAN's
``latest_net_G.pth``, Real-ESRGAN's ``RealESRGAN_x4plus.pth``, ...). Each known format has a
key grammar (which keys look like its own) and an inference of its config from a few shapes;
the inferred module is then built on the meta device and every key and shape compared, so a
format is named only when the file fits it exactly. Several exact fits are an ambiguity, no
fit an error naming the closest formats and why they do not fit.

:func:`unwrap_public` finds the state_dict inside a public checkpoint file (``params_ema`` /
``params`` of BasicSR and Real-ESRGAN, a DataParallel ``module.`` prefix).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vetrina.errors import CheckpointError

from . import get_architecture

#: Where BasicSR / Real-ESRGAN files keep their weights, in order of preference (the EMA
#: weights are the ones the project evaluates and releases).
WEIGHT_KEYS = ("params_ema", "params")
DATA_PARALLEL_PREFIX = "module."

Candidates = list[tuple[str, dict[str, Any]]]


class _Miss(Exception):
    """The keys look like a format, but a shape or count rules it out (the reason why)."""


@dataclass(frozen=True)
class _Near:
    """A format the state_dict resembles, and why it is not that format."""

    score: float  # share of keys that fit (or look like the format's, if not built)
    what: str
    evidence: str
    why: str


@dataclass(frozen=True)
class _Format:
    label: str
    grammar: re.Pattern[str]
    infer: Callable[[Mapping[str, Any]], Candidates]


# --- public API -------------------------------------------------------------------------------


def detect_architecture(state_dict: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(registry name, config) of the one known format ``state_dict`` fits exactly.

    Raises :class:`CheckpointError` naming the candidates when several fit, or the closest
    formats (and what differs) when none does. A ``module.`` prefix on every key is ignored.
    """
    import torch

    state_dict, _ = strip_module_prefix(state_dict)
    if not state_dict:
        raise CheckpointError("the state_dict is empty: no tensors to recognise")
    odd = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise CheckpointError(
            f"the state_dict holds non-tensor entries ({', '.join(map(str, odd[:4]))})",
            hint="unwrap the file first (vetrina.models.architectures.detect.unwrap_public)",
        )
    matches: Candidates = []
    misses: list[_Near] = []
    for fmt in FORMATS:
        share = sum(bool(fmt.grammar.match(k)) for k in state_dict) / len(state_dict)
        if share == 0:
            continue
        try:
            candidates = fmt.infer(state_dict)
        except _Miss as miss:
            misses.append(_Near(share, fmt.label, f"{share:.0%} of its key names", str(miss)))
            continue
        for name, config in candidates:
            fit, problem = _compare(name, config, state_dict)
            if problem is None:
                matches.append((name, config))
            else:
                what = f"{fmt.label} as {name} {config}"
                misses.append(_Near(fit, what, f"{fit:.0%} of keys fit", problem))
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise _ambiguous(matches)
    raise _unknown(state_dict, misses)


def unwrap_public(raw: Mapping[Any, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state_dict inside a public checkpoint file, and notes on how it was found.

    Accepts a bare state_dict or one under ``params_ema`` / ``params`` (BasicSR, Real-ESRGAN;
    ``params_ema`` preferred); a ``module.`` prefix on every key (DataParallel) is removed.
    The notes (``weights_key``, ``ignored_keys``, ``stripped_prefix``) go into the
    checkpoint's metadata. Anything else is a :class:`CheckpointError`.
    """
    import torch

    notes: dict[str, Any] = {}
    if raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        state_dict = {str(k): v for k, v in raw.items()}
    else:
        key = next((k for k in WEIGHT_KEYS if isinstance(raw.get(k), Mapping)), None)
        if key is None:
            shown = ", ".join(sorted(map(str, raw))[:8]) or "none"
            raise CheckpointError(
                f"not a vetrina checkpoint nor a plain state_dict (top-level keys: {shown})",
                hint="vetrina reads a state_dict, bare or under 'params_ema' / 'params' "
                "(BasicSR, Real-ESRGAN); re-save the weights with "
                "torch.save(model.state_dict(), path)",
            )
        inner = raw[key]
        if not inner or not all(isinstance(v, torch.Tensor) for v in inner.values()):
            raise CheckpointError(
                f"the {key!r} entry is not a state_dict (it holds no tensors or other objects)"
            )
        state_dict = {str(k): v for k, v in inner.items()}
        notes["weights_key"] = key
        ignored = sorted(str(k) for k in raw if k != key)
        if ignored:
            notes["ignored_keys"] = ignored
    state_dict, prefix = strip_module_prefix(state_dict)
    if prefix:
        notes["stripped_prefix"] = prefix
    return state_dict, notes


def strip_module_prefix(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """``state_dict`` without the ``module.`` prefix that DataParallel puts on every key
    (only when every key has it), and the prefix removed ("" if none)."""
    keys = list(state_dict)
    if keys and all(str(k).startswith(DATA_PARALLEL_PREFIX) for k in keys):
        cut = len(DATA_PARALLEL_PREFIX)
        return {str(k)[cut:]: v for k, v in state_dict.items()}, DATA_PARALLEL_PREFIX
    return dict(state_dict), ""


def adapt_legacy_state_dict(module: Any, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``state_dict`` made to fit ``module`` where only pre-PyTorch-0.4 differences stand in
    the way (stale InstanceNorm statistics dropped, BatchNorm ``num_batches_tracked`` added).

    For code that compares key sets before ``load_state_dict(strict=True)``.
    """
    from .public.compat import adapt_legacy_state_dict as adapt

    return adapt(module, dict(state_dict))


# --- comparison and errors --------------------------------------------------------------------


def _compare(
    name: str, config: dict[str, Any], state_dict: Mapping[str, Any]
) -> tuple[float, str | None]:
    """(share of keys that fit, what does not fit or None) for ``name`` built with ``config``."""
    import torch

    try:
        with torch.device("meta"):
            module = get_architecture(name).build(config)
    except (CheckpointError, ValueError) as exc:
        return 0.0, str(exc)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in adapt_legacy_state_dict(module, state_dict).items()}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(
        f"{k} {given[k]} != {expected[k]}"
        for k in set(given) & set(expected)
        if given[k] != expected[k]
    )
    fit = (len(set(given) & set(expected)) - len(wrong)) / len(set(given) | set(expected))
    parts = [
        f"{label}: {_few(items)}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
        if items
    ]
    return fit, ("; ".join(parts) or None)


def _few(items: list[str], limit: int = 3) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _ambiguous(matches: Candidates) -> CheckpointError:
    listed = "; ".join(f"{name} {config}" for name, config in matches)
    names = sorted({name for name, _ in matches})
    if len(names) == 1:
        hint = (
            "the weights cannot tell these configs apart: save them as a vetrina checkpoint "
            "with the right one (vetrina.models.checkpoint.save_checkpoint(path, "
            f"architecture={names[0]!r}, config=..., ...))"
        )
    else:
        hint = f"pass --arch with one of {', '.join(names)}"
    return CheckpointError(f"the state_dict fits several architectures: {listed}", hint=hint)


def _unknown(state_dict: Mapping[str, Any], misses: list[_Near]) -> CheckpointError:
    keys = list(state_dict)
    head = f"the state_dict ({len(keys)} tensors, keys like {_few(keys)}) matches no known format"
    hint = (
        "for weights of another kind pass --arch NAME (an unknown name lists the known "
        "ones); their keys must follow that architecture's parameter names"
    )
    if not misses:
        labels = ", ".join(fmt.label for fmt in FORMATS)
        return CheckpointError(f"{head}; known formats: {labels}", hint=hint)
    misses.sort(key=lambda m: -m.score)
    closest = "; ".join(f"{m.what} ({m.evidence}): {m.why}" for m in misses[:2])
    return CheckpointError(f"{head}; closest: {closest}", hint=hint)


# --- the formats ------------------------------------------------------------------------------


def _shape(state_dict: Mapping[str, Any], key: str, ndim: int) -> tuple[int, ...]:
    value = state_dict.get(key)
    if value is None:
        raise _Miss(f"no {key!r}")
    shape = tuple(value.shape)
    if len(shape) != ndim:
        raise _Miss(f"{key!r} has shape {shape}, expected {ndim} dimensions")
    return shape


def _rgb(what: str, channels: int) -> None:
    if channels != 3:
        raise _Miss(
            f"{what} has {channels} channels; vetrina's contracts for this format are RGB (3)"
        )


def _norm(state_dict: Mapping[str, Any], *, conv: str, norm: str) -> str:
    """The repository's ``--norm`` from a conv and the norm layer after it: BatchNorm has
    affine weights (and the conv no bias), InstanceNorm none (and the conv a bias)."""
    if f"{norm}.weight" in state_dict:
        return "batch"
    return "instance" if f"{conv}.bias" in state_dict else "none"


def _indices(state_dict: Mapping[str, Any], pattern: str) -> list[int]:
    found = {int(m.group(1)) for k in state_dict if (m := re.match(pattern, k))}
    return sorted(found)


def _transformer_net(sd: Mapping[str, Any]) -> Candidates:
    c, c_in, _, _ = _shape(sd, "conv1.conv2d.weight", 4)
    _rgb("conv1 (input)", c_in)
    blocks = len(_indices(sd, r"^res(\d+)\.conv1\.conv2d\.weight$"))
    return [("transformer-net", {"channels": c, "blocks": blocks})]


def _cyclegan(sd: Mapping[str, Any]) -> Candidates:
    ngf, c_in, _, _ = _shape(sd, "model.1.weight", 4)
    _rgb("model.1 (input)", c_in)
    blocks = _indices(sd, r"^model\.(\d+)\.conv_block\.")
    last = _indices(sd, r"^model\.(\d+)\.weight$")[-1]
    _rgb(f"model.{last} (output)", _shape(sd, f"model.{last}.weight", 4)[0])
    # Dropout after the first ReLU moves the second conv from conv_block.5 to conv_block.6.
    dropout = bool(blocks) and not any(k.startswith(f"model.{blocks[0]}.conv_block.5.") for k in sd)
    norm = _norm(sd, conv="model.1", norm="model.2")
    config = {"ngf": ngf, "n_blocks": len(blocks), "norm": norm, "use_dropout": dropout}
    return [("cyclegan-resnet", config)]


_UNET_NAMES = {8: "pix2pix-unet256", 7: "pix2pix-unet128"}


def _pix2pix(sd: Mapping[str, Any]) -> Candidates:
    ngf, c_in, _, _ = _shape(sd, "model.model.0.weight", 4)
    _rgb("model.model.0 (input)", c_in)
    num_downs, inner = 1, "model.model.1.model."
    second = inner
    while any(k.startswith(inner) for k in sd):
        num_downs += 1
        inner += "3.model."
    name = _UNET_NAMES.get(num_downs)
    if name is None:
        raise _Miss(
            f"a U-Net of {num_downs} levels; vetrina registers unet_256 (8) and unet_128 (7)"
        )
    norm = _norm(sd, conv=f"{second}1", norm=f"{second}2")
    config = {"ngf": ngf, "norm": norm, "use_dropout": False, "num_downs": num_downs}
    return [(name, config)]


def _dcgan(sd: Mapping[str, Any]) -> Candidates:
    nz, width, _, _ = _shape(sd, "main.0.weight", 4)
    ngf, nc, _, _ = _shape(sd, "main.12.weight", 4)
    _rgb("main.12 (output)", nc)
    if width != 8 * ngf:
        raise _Miss(f"main.0 makes {width} channels, not 8 x ngf = {8 * ngf}")
    return [("dcgan-generator", {"nz": nz, "ngf": ngf})]


_SRVGG_NAMES = {4: "srvgg-compact-x4", 2: "srvgg-compact-x2"}


def _srvgg(sd: Mapping[str, Any]) -> Candidates:
    num_feat, c_in, _, _ = _shape(sd, "body.0.weight", 4)
    _rgb("body.0 (input)", c_in)
    last = _indices(sd, r"^body\.(\d+)\.weight$")[-1]
    if last < 2 or last % 2:
        raise _Miss(f"the last body layer is body.{last}, expected an even index >= 2")
    out = _shape(sd, f"body.{last}.weight", 4)[0]
    upscale = math.isqrt(out // 3)
    if out % 3 or upscale * upscale * 3 != out:
        raise _Miss(f"body.{last} makes {out} channels, not 3 x upscale**2")
    name = _SRVGG_NAMES.get(upscale)
    if name is None:
        raise _Miss(f"upscale {upscale}; vetrina registers x4 and x2")
    acts = ["prelu"] if "body.1.weight" in sd else ["relu", "leakyrelu"]
    common = {"num_feat": num_feat, "num_conv": (last - 2) // 2, "upscale": upscale}
    return [(name, {**common, "act_type": act}) for act in acts]


_RRDB_SCALES = {3: 4, 12: 2, 48: 1}  # conv_first input channels -> scale (pixel_unshuffle)
_RRDB_NAMES = {4: "rrdbnet-x4", 2: "rrdbnet-x2"}


def _rrdbnet(sd: Mapping[str, Any]) -> Candidates:
    num_feat, c_in, _, _ = _shape(sd, "conv_first.weight", 4)
    scale = _RRDB_SCALES.get(c_in)
    if scale is None:
        raise _Miss(f"conv_first takes {c_in} channels, not 3, 12 (x2) or 48 (x1)")
    name = _RRDB_NAMES.get(scale)
    if name is None:
        raise _Miss(f"scale {scale} (pixel_unshuffle 4); vetrina registers x4 and x2")
    _rgb("conv_last (output)", _shape(sd, "conv_last.weight", 4)[0])
    blocks = _indices(sd, r"^body\.(\d+)\.rdb1\.conv1\.weight$")
    grow = _shape(sd, "body.0.rdb1.conv1.weight", 4)[0] if blocks else 32
    config = {"num_feat": num_feat, "num_block": len(blocks), "num_grow_ch": grow, "scale": scale}
    return [(name, config)]


_U2NET_NAMES = {16: "u2netp", 32: "u2net"}  # stage1's mid channels -> variant


def _u2net(sd: Mapping[str, Any]) -> Candidates:
    _, c_in, _, _ = _shape(sd, "stage1.rebnconvin.conv_s1.weight", 4)
    _rgb("stage1 (input)", c_in)
    mid = _shape(sd, "stage1.rebnconv1.conv_s1.weight", 4)[0]
    name = _U2NET_NAMES.get(mid)
    if name is None:
        raise _Miss(f"stage1 has {mid} mid channels; U2NETP has 16, U2NET 32")
    maps = _shape(sd, "outconv.weight", 4)[0]
    if maps != 1:
        raise _Miss(f"outconv makes {maps} maps; vetrina's contract is one alpha map")
    # A bare state dict is a public release file: trained on ImageNet-normalised input.
    return [(name, {"imagenet_input": True})]


FORMATS: tuple[_Format, ...] = (
    _Format(
        "fast-neural-style TransformerNet (pytorch/examples)",
        re.compile(r"^(conv[1-3]|in[1-5]|res\d+|deconv[1-3])\."),
        _transformer_net,
    ),
    _Format(
        "CycleGAN ResnetGenerator (junyanz/pytorch-CycleGAN-and-pix2pix)",
        re.compile(r"^model\.\d+\."),
        _cyclegan,
    ),
    _Format(
        "pix2pix UnetGenerator (junyanz/pytorch-CycleGAN-and-pix2pix)",
        re.compile(r"^model\.model\."),
        _pix2pix,
    ),
    _Format(
        "DCGAN Generator (pytorch/examples dcgan)",
        re.compile(r"^main\.\d+\."),
        _dcgan,
    ),
    _Format(
        "Real-ESRGAN SRVGGNetCompact (xinntao/Real-ESRGAN)",
        re.compile(r"^body\.\d+\.(weight|bias)$"),
        _srvgg,
    ),
    _Format(
        "ESRGAN RRDBNet (XPixelGroup/BasicSR, Real-ESRGAN)",
        re.compile(r"^(conv_first|conv_body|conv_up[12]|conv_hr|conv_last)\.|^body\.\d+\.rdb"),
        _rrdbnet,
    ),
    _Format(
        "U²-Net U2NET / U2NETP (xuebinqin/U-2-Net)",
        re.compile(r"^(stage[1-6]d?|side[1-6]|outconv)\."),
        _u2net,
    ),
)

#: The registry names each format can resolve to.
DETECTABLE: dict[str, tuple[str, ...]] = {
    "transformer-net": ("transformer-net",),
    "cyclegan": ("cyclegan-resnet",),
    "pix2pix": tuple(_UNET_NAMES.values()),
    "dcgan": ("dcgan-generator",),
    "srvgg": tuple(_SRVGG_NAMES.values()),
    "rrdbnet": tuple(_RRDB_NAMES.values()),
    "u2net": tuple(_U2NET_NAMES.values()),
}
