"""Graph rewrites that make an exported model faster on ONNX Runtime's CPU provider.

ONNX Runtime runs convolutions in a blocked channel layout (NCHWc). Three things cost it dearly,
and each has a rewrite into the same function in ops that suit the layout:

``prelu_as_depthwise_conv``: an op it cannot run in NCHWc forces a reorder back to NCHW and
another into NCHWc around it; ``PRelu`` with a per-channel slope is such an op, and in a
conv/PReLU stack (Real-ESRGAN's SRVGGNetCompact, our upscaler) the reorders and the
broadcasting ``PRelu`` kernel cost a third of the run. For a slope ``a`` (per channel),

    PReLU(c) = c + (1 - a) * relu(-c)                      (any a)
             = c + relu(-(1 - a) * c)                      (when every a <= 1)

where a per-channel scale is a depthwise 1x1 ``Conv`` (``group = C``). The second form needs
one depthwise conv with a fused ``Relu`` and an ``Add``; the first two depthwise convs.

``narrow_conv_split``: NCHWc pads a conv's output channels to a block of 8, so a wide-kernel
conv to 1-3 channels (the style nets' last 9x9 conv to RGB) does up to 8x the work it needs;
it becomes two convs that waste far less (:func:`_split_narrow_conv`).

``constant_resize_scales``: a ``Resize`` given its output ``sizes`` (PyTorch's
``interpolate(size=...)``, as in the public U²-Net's ``_upsample_like``: the sizes computed
at run time from ``Shape`` of a tensor) stays in NCHW, with a reorder on each side; with
constant ``scales`` it runs as ONNX Runtime's NCHWc upsample. In a static export the spatial
sizes are known, so each such ``Resize`` whose ratios are exact binary fractions (2x, 4x,
0.5x...) gets them as ``scales``: the same output size and, since the scale ONNX Runtime
derives from ``sizes`` is the same number, the same sampling positions (a U²-Net-p exported
that way, at 320 px: 185 -> 153 ms).

``nchw_nearest_upsample`` (int8 ``cpu`` flavour only, applied by
:func:`~vetrina.converters.quantize.quantize_int8`): ONNX Runtime runs a quantized net in
NHWC and moves every ``Resize`` between two NHWC convs into NHWC too, where a nearest 2x
upsample takes its generic per-element path (2.3 ms on a 16 x 128 x 128 uint8 tensor); in NCHW
it has a 2x fast path (0.05 ms), and the transposes around it cost less than the difference
(0.1-0.3 ms). A ``Reshape`` of the input to its own ``Shape`` in front of the ``Resize``
is an identity that ONNX Runtime's transpose optimizer does not push a layout transpose
through, so the ``Resize`` stays in NCHW (:func:`pin_nearest_upsample_nchw`). In an fp32
graph it would cost the blocked layout instead, so the fp32 tuning never applies it.

``conv_input_channels_to_4`` (int8 ``cpu`` flavour only, before quantization): a quantized
conv with 3, 5, 6 or 7 input channels misses ONNX Runtime's fast int8 conv kernels, which
want a multiple of 4 (a 3x3 conv from 3 to 16 channels at 256 x 256: 3.9 ms; from 4: 1.9 ms;
from 7: 4.9 ms, from 8: 2.2 ms). A ``Pad`` of the input with zero channels and zero weights
for them gives the same sums (:func:`pad_conv_input_channels`). Only kernels up to 5x5: a
7x7 or 9x9 conv from 4 channels is slower than from 3. Float convs do not care.

The first two are exact in real arithmetic and within a few ulp in float32, the others
exact; the converter verifies the rewritten graph against PyTorch like any export.
TensorRT runs ``PRelu`` natively and has no such padding, so ``--target tensorrt`` leaves
the graph as exported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np


def tune_for_cpu(path: str | os.PathLike[str]) -> dict[str, int]:
    """Rewrite the model at ``path`` in place; returns how often each rewrite applied."""
    import onnx

    from .export import check_model

    path = Path(path)
    model = onnx.load(str(path))
    applied = {
        "prelu_as_depthwise_conv": _rewrite_prelu(model),
        "narrow_conv_split": _split_narrow_conv(model),
        "constant_resize_scales": _constant_resize_scales(model),
    }
    if any(applied.values()):
        check_model(model)
        onnx.save(model, str(path))
    return {name: count for name, count in applied.items() if count}


def _rewrite_prelu(model: Any) -> int:
    """Replace each ``PRelu`` fed by a 2-D ``Conv`` with a per-channel constant slope."""
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    fresh = _namer(graph)

    nodes: list[Any] = []
    count = 0
    for node in graph.node:
        slope = _channel_slope(node, initializers, producers)
        if slope is None:
            nodes.append(node)
            continue
        channels = slope.size
        source, output = node.input[0], node.output[0]
        base = node.name or output

        def depthwise(
            scale: np.ndarray, data: str, suffix: str, base: str = base, channels: int = channels
        ) -> tuple[Any, str]:
            weight = fresh(f"{base}_{suffix}_w")
            graph.initializer.append(
                numpy_helper.from_array(scale.astype(np.float32).reshape(channels, 1, 1, 1), weight)
            )
            out = fresh(f"{base}_{suffix}")
            conv = helper.make_node(
                "Conv",
                [data, weight],
                [out],
                name=fresh(f"{base}_{suffix}_conv"),
                group=channels,
                kernel_shape=[1, 1],
            )
            return conv, out

        if np.all(slope <= 1.0):
            conv, scaled = depthwise(-(1.0 - slope), source, "neg_scaled")
            relu_out = fresh(f"{base}_relu")
            nodes += [
                conv,
                helper.make_node("Relu", [scaled], [relu_out], name=fresh(f"{base}_relu_node")),
            ]
        else:
            conv, negated = depthwise(-np.ones_like(slope), source, "neg")
            relu_neg = fresh(f"{base}_relu")
            relu = helper.make_node("Relu", [negated], [relu_neg], name=fresh(f"{base}_relu_node"))
            scale_conv, relu_out = depthwise(1.0 - slope, relu_neg, "scaled")
            nodes += [conv, relu, scale_conv]
        nodes.append(
            helper.make_node("Add", [source, relu_out], [output], name=fresh(f"{base}_add"))
        )
        count += 1
    if count:
        _replace_nodes(graph, nodes)
    return count


def _namer(graph: Any) -> Callable[[str], str]:
    """A maker of names not yet used in ``graph`` (node, value or initializer)."""
    taken = {t.name for t in graph.initializer} | {
        name for node in graph.node for name in (*node.input, *node.output, node.name)
    }

    def fresh(base: str) -> str:
        name, k = base, 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        return name

    return fresh


def _replace_nodes(graph: Any, nodes: list[Any]) -> None:
    """Make ``nodes`` the graph's nodes and drop the initializers no node reads any more."""
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _channel_slope(node: Any, initializers: dict[str, Any], producers: dict[str, Any]):
    """The per-channel slope (1-D float array) of a rewritable ``PRelu``, else None."""
    from onnx import numpy_helper

    if node.op_type != "PRelu" or node.domain not in ("", "ai.onnx"):
        return None
    if len(node.input) != 2 or node.input[1] not in initializers:
        return None
    producer = producers.get(node.input[0])
    if producer is None or producer.op_type != "Conv":
        return None
    weight = initializers.get(producer.input[1]) if len(producer.input) > 1 else None
    if weight is None or len(weight.dims) != 4:
        return None
    slope = numpy_helper.to_array(initializers[node.input[1]])
    channels = int(weight.dims[0])
    per_channel = tuple(slope.shape) in ((channels, 1, 1), (1, channels, 1, 1))
    if slope.dtype != np.float32 or not (slope.size == 1 or per_channel):
        return None  # a (C,) slope broadcasts over width, not channels: leave it alone
    return np.broadcast_to(slope.reshape(-1), (channels,)).copy()


BLOCK = 8
"""Channels per NCHWc block on AVX2 (16 on AVX-512): a conv's output channels are padded to it."""

MIN_SAVING = 0.7
"""Split a conv only when the split's padded multiply-adds are at most this share of the
original's (the second, grouped conv and its reorder cost a little)..."""

MIN_TAPS = 25
"""...and only kernels of 5x5 taps or more: measured on the zoo's 3x3 convs to 1-4 channels
(enhancer, inpainter, the matting net's side outputs), splitting gained nothing."""


def _split_narrow_conv(model: Any) -> int:
    """Split each wide-kernel ``Conv`` with few output channels into two convs.

    NCHWc pads the output channels to a block of 8, so the style nets' last 9x9 conv to
    3 channels does 8/3 of its work (30 of their ~100 ms). The same function, exactly in real
    arithmetic: a ``kh x 1`` conv whose ``Co * kw`` outputs are the per-column partial sums
    (27 channels, padded to 32: 1.2x), then a ``1 x kw`` grouped conv (one group per output
    channel, one-hot weights) that adds the shifted columns and the bias. Zero padding splits
    with it: rows on the first conv, columns on the second (a zero column stays zero, since
    the first conv has no bias). The orientation with fewer padded multiply-adds is taken.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    fresh = _namer(graph)

    def constant(array: np.ndarray, base: str) -> str:
        name = fresh(base)
        graph.initializer.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    nodes: list[Any] = []
    count = 0
    for node in graph.node:
        plan = _narrow_conv_plan(node, initializers)
        if plan is None:
            nodes.append(node)
            continue
        weight, bias, pads, vertical_first = plan
        co, ci, kh, kw = weight.shape
        top, left, bottom, right = pads
        base = node.name or node.output[0]
        if vertical_first:  # partial sums per column j, then the columns added
            first = np.transpose(weight, (0, 3, 1, 2)).reshape(co * kw, ci, kh, 1)
            first_pads, second_pads = [top, 0, bottom, 0], [0, left, 0, right]
            second = np.zeros((co, kw, 1, kw), np.float32)
            second[:, np.arange(kw), 0, np.arange(kw)] = 1.0
        else:  # partial sums per row i, then the rows added
            first = np.transpose(weight, (0, 2, 1, 3)).reshape(co * kh, ci, 1, kw)
            first_pads, second_pads = [0, left, 0, right], [top, 0, bottom, 0]
            second = np.zeros((co, kh, kh, 1), np.float32)
            second[:, np.arange(kh), np.arange(kh), 0] = 1.0
        partial = fresh(f"{base}_partial")
        nodes.append(
            helper.make_node(
                "Conv",
                [node.input[0], constant(first, f"{base}_partial_w")],
                [partial],
                name=fresh(f"{base}_partial_conv"),
                kernel_shape=list(first.shape[2:]),
                pads=first_pads,
            )
        )
        nodes.append(
            helper.make_node(
                "Conv",
                [partial, constant(second, f"{base}_sum_w"), constant(bias, f"{base}_sum_b")],
                list(node.output),
                name=fresh(f"{base}_sum_conv"),
                kernel_shape=list(second.shape[2:]),
                pads=second_pads,
                group=co,
            )
        )
        count += 1
    if count:
        _replace_nodes(graph, nodes)
    return count


def _narrow_conv_plan(node: Any, initializers: dict[str, Any]):
    """(weight, bias, pads [t, l, b, r], vertical_first) for a conv worth splitting, else None."""
    from onnx import helper, numpy_helper

    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx"):
        return None
    if len(node.input) < 2 or any(name not in initializers for name in node.input[1:]):
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    weight = numpy_helper.to_array(initializers[node.input[1]])
    if weight.dtype != np.float32 or weight.ndim != 4:
        return None
    co, ci, kh, kw = weight.shape
    if (
        attrs.get("group", 1) != 1
        or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
        or any(s != 1 for s in attrs.get("strides", [1, 1]))
        or any(d != 1 for d in attrs.get("dilations", [1, 1]))
        or kh < 2
        or kw < 2
        or kh * kw < MIN_TAPS
        or co % BLOCK == 0
    ):
        return None
    padded = -(-co // BLOCK) * BLOCK
    original = ci * kh * kw * padded
    vertical = ci * kh * -(-(co * kw) // BLOCK) * BLOCK
    horizontal = ci * kw * -(-(co * kh) // BLOCK) * BLOCK
    if min(vertical, horizontal) > MIN_SAVING * original:
        return None
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(node.input) > 2:
        bias = numpy_helper.to_array(initializers[node.input[2]]).astype(np.float32)
    else:
        bias = np.zeros(co, np.float32)
    return weight, bias, pads, vertical <= horizontal


def _constant_resize_scales(model: Any) -> int:
    """Give each ``Resize`` with run-time ``sizes`` but static spatial shapes constant
    ``scales`` instead (see the module's docstring); returns how many were rewritten."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    sized = [n for n in graph.node if n.op_type == "Resize" and len(n.input) == 4]
    if not sized:
        return 0  # nothing to rewrite: no shape inference needed
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    shapes = {
        v.name: [d.dim_value if d.HasField("dim_value") else None for d in _dims(v)]
        for v in (*inferred.input, *inferred.value_info, *inferred.output)
        if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")
    }
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        constant = node.op_type == "Constant" and node.domain in ("", "ai.onnx")
        if constant and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    producers = {out: node for node in graph.node for out in node.output}
    fresh = _namer(graph)

    count = 0
    for node in sized:
        scales = _exact_scales(node, shapes, constants, producers)
        if scales is None:
            continue
        name = fresh(f"{node.name or node.output[0]}_scales")
        graph.initializer.append(numpy_helper.from_array(scales, name))
        inputs = [node.input[0], node.input[1], name]
        del node.input[:]
        node.input.extend(inputs)
        count += 1
    if count:
        _replace_nodes(graph, _live_nodes(graph))
    return count


def pin_nearest_upsample_nchw(model: Any) -> int:
    """Put ``Reshape(x, Shape(x))`` in front of each nearest 2x ``Resize`` that ONNX
    Runtime has an NCHW fast path for (constant scales 1, 1, 2, 2; asymmetric coordinates,
    floor rounding), so that it is not moved into the NHWC layout of a quantized graph (see
    the module's docstring); returns how many were pinned. For int8 ``cpu`` graphs only."""
    from onnx import helper

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    fresh = _namer(graph)
    nodes, count = [], 0
    for node in graph.node:
        if _is_nearest_2x(node, constants):
            name = node.name or node.output[0]
            shape, pinned = fresh(f"{name}_nchw_shape"), fresh(f"{name}_nchw")
            nodes.append(helper.make_node("Shape", [node.input[0]], [shape], name=shape))
            nodes.append(helper.make_node("Reshape", [node.input[0], shape], [pinned], name=pinned))
            node.input[0] = pinned
            count += 1
        nodes.append(node)
    if count:
        _replace_nodes(graph, nodes)
    return count


QUANTIZED_CONV_CHANNEL_STEP = 4
"""ONNX Runtime's fast int8 conv kernels want input channels in multiples of this."""

MAX_PADDED_CONV_TAPS = 25
"""Kernels up to 5x5 gain from the padding; wider ones lose (3 -> 16 channels at 128 x 128,
int8: 3x3 0.57 -> 0.31 ms and 5x5 1.06 -> 0.83 ms, but 7x7 1.70 -> 2.33 and 9x9 2.47 -> 3.41)."""


def pad_conv_input_channels(model: Any, keep: Iterable[str] = ()) -> int:
    """Give each ungrouped conv with fewer than 8 input channels, not a multiple of 4, zero
    channels up to the next multiple (a ``Pad`` of its input, shared by the convs that read
    the same tensor, and zero weights), for the int8 ``cpu`` flavour (see the module's
    docstring); returns how many convs were padded. The sums are unchanged. ``keep``: names
    of convs that stay float32 (nothing to gain there), left alone."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    fresh = _namer(graph)
    padded_inputs: dict[tuple[str, int], str] = {}
    nodes, count = [], 0
    keep = set(keep)
    for node in graph.node:
        extra = 0 if node.name in keep else _missing_channels(node, weights)
        if extra:
            key = (node.input[0], extra)
            if key not in padded_inputs:
                pads = fresh(f"{node.input[0]}_channel_pads")
                padded = fresh(f"{node.input[0]}_channels_{extra}")
                graph.initializer.append(
                    numpy_helper.from_array(np.array([0, 0, 0, 0, 0, extra, 0, 0]), pads)
                )
                nodes.append(helper.make_node("Pad", [node.input[0], pads], [padded], name=padded))
                padded_inputs[key] = padded
            weight = numpy_helper.to_array(weights[node.input[1]])
            zeros = np.zeros((weight.shape[0], extra, *weight.shape[2:]), weight.dtype)
            name = fresh(f"{node.input[1]}_channels_{extra}")
            graph.initializer.append(
                numpy_helper.from_array(np.concatenate([weight, zeros], axis=1), name)
            )
            node.input[0], node.input[1] = padded_inputs[key], name
            count += 1
        nodes.append(node)
    if count:
        _replace_nodes(graph, nodes)
    return count


def _missing_channels(node: Any, weights: dict[str, Any]) -> int:
    """How many zero input channels make ``node`` a conv with a multiple of 4 (0: none)."""
    from onnx import helper

    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
        return 0
    weight = weights.get(node.input[1])
    groups = {a.name: helper.get_attribute_value(a) for a in node.attribute}.get("group", 1)
    if weight is None or len(weight.dims) != 4 or groups != 1:
        return 0
    channels, taps = weight.dims[1], weight.dims[2] * weight.dims[3]
    if channels >= 2 * QUANTIZED_CONV_CHANNEL_STEP or channels % QUANTIZED_CONV_CHANNEL_STEP == 0:
        return 0
    if taps > MAX_PADDED_CONV_TAPS:
        return 0
    return QUANTIZED_CONV_CHANNEL_STEP - channels % QUANTIZED_CONV_CHANNEL_STEP


def _is_nearest_2x(node: Any, constants: dict[str, Any]) -> bool:
    from onnx import helper, numpy_helper

    if node.op_type != "Resize" or node.domain not in ("", "ai.onnx") or len(node.input) < 3:
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    expected = {
        "mode": b"nearest",
        "coordinate_transformation_mode": b"asymmetric",
        "nearest_mode": b"floor",
    }
    if any(attrs.get(key) != value for key, value in expected.items()):
        return False
    if (len(node.input) > 3 and node.input[3]) or node.input[2] not in constants:
        return False
    defaults = {"antialias": 0, "keep_aspect_ratio_policy": b"stretch", "exclude_outside": 0}
    if any(attrs.get(key, value) != value for key, value in defaults.items()):
        return False
    if set(attrs) - {*expected, *defaults, "extrapolation_value", "cubic_coeff_a"}:
        return False  # axes: not the fast path's form
    scales = numpy_helper.to_array(constants[node.input[2]])
    return scales.shape == (4,) and scales.tolist() == [1.0, 1.0, 2.0, 2.0]


def _dims(value: Any) -> Any:
    return value.type.tensor_type.shape.dim


def _exact_scales(
    node: Any,
    shapes: dict[str, list[int | None]],
    constants: dict[str, np.ndarray],
    producers: dict[str, Any],
) -> np.ndarray | None:
    """float32 scales that make this ``Resize`` compute exactly what its ``sizes`` do, or None."""
    from onnx import helper

    if node.op_type != "Resize" or node.domain not in ("", "ai.onnx") or len(node.input) != 4:
        return None
    if node.input[2] or not node.input[3]:
        return None  # scales given already, or no sizes
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    mode = attrs.get("coordinate_transformation_mode", b"half_pixel")
    policy = attrs.get("keep_aspect_ratio_policy", b"stretch")
    if "axes" in attrs or mode == b"tf_crop_and_resize" or policy != b"stretch":
        return None
    source = shapes.get(node.input[0])
    sizes = _size_entries(node.input[3], node.input[0], constants, producers)
    if source is None or sizes is None or len(sizes) != len(source):
        return None
    scales = []
    for axis, (size, entry) in enumerate(zip(source, sizes, strict=True)):
        if entry == ("same", axis):
            scales.append(1.0)
            continue
        if not isinstance(entry, int) or not size or entry <= 0:
            return None
        scale = np.float32(entry / size)
        # the exact ratio (a binary fraction), and ONNX Runtime's floor(size * scale) is entry
        if float(scale) * size != entry or int(np.float32(size) * scale) != entry:
            return None
        scales.append(float(scale))
    if all(s == 1.0 for s in scales):
        return None
    return np.array(scales, np.float32)


def _size_entries(
    name: str, source: str, constants: dict[str, np.ndarray], producers: dict[str, Any]
) -> list[int | tuple[str, int]] | None:
    """The ``sizes`` tensor ``name`` entry by entry: an int where it is a constant,
    ``("same", i)`` where it is dimension ``i`` of ``source`` (``Shape(source)`` sliced by
    its start/end attributes, possibly concatenated with constants); None if neither."""
    from onnx import helper

    if name in constants:
        return [int(v) for v in constants[name].reshape(-1)]
    node = producers.get(name)
    if node is None or node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type == "Shape" and node.input[0] == source:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        start, end = attrs.get("start", 0), attrs.get("end")
        if start < 0 or (end is not None and end < 0):
            return None  # counted from the rank, which this pass does not track
        return [("same", i) for i in range(start, end)] if end is not None else None
    if node.op_type == "Concat":
        entries: list[int | tuple[str, int]] = []
        for part in node.input:
            piece = _size_entries(part, source, constants, producers)
            if piece is None:
                return None
            entries += piece
        return entries
    return None


def _live_nodes(graph: Any) -> list[Any]:
    """The graph's nodes that the outputs depend on, in order (a rewrite left the rest dead)."""
    needed = {out.name for out in graph.output}
    live = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            live.append(node)
            needed.update(_reads(node))
    return live[::-1]


def _reads(node: Any) -> set[str]:
    """The names a node reads: its inputs and those its subgraphs (If, Loop) read."""
    from onnx import AttributeProto

    names = set(node.input)
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
        for sub in graphs:
            for inner in sub.node:
                names |= _reads(inner)
    return names
