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
it becomes three convs that waste far less (:func:`_split_narrow_conv`).

``constant_resize_scales``: a ``Resize`` given its output ``sizes`` (PyTorch's
``interpolate(size=...)``, as in the public U²-Net's ``_upsample_like``: the sizes computed
at run time from ``Shape`` of a tensor) stays in NCHW, with a reorder on each side; with
constant ``scales`` it runs as ONNX Runtime's NCHWc upsample. In a static export the spatial
sizes are known, so each such ``Resize`` whose ratios are exact binary fractions (2x, 4x,
0.5x...) gets them as ``scales``: the same output size and, since the scale ONNX Runtime
derives from ``sizes`` is the same number, the same sampling positions (a U²-Net-p exported
that way, at 320 px: 185 -> 153 ms).

The first two are exact in real arithmetic and within a few ulp in float32, the third
exact; the converter verifies the rewritten graph against PyTorch like any export.
TensorRT runs ``PRelu`` natively and has no such padding, so ``--target tensorrt`` leaves
the graph as exported. The rewrites for quantized graphs are in :mod:`.int8_graph`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .graph_edit import constant_values, fresh_namer, inferred_shapes, live_nodes, replace_nodes


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
    fresh = fresh_namer(graph)

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
        replace_nodes(graph, nodes)
    return count


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
original's (the shift and sum convs after it cost a little)..."""

MIN_TAPS = 25
"""...and only kernels of 5x5 taps or more: measured on the zoo's 3x3 convs to 1-4 channels
(enhancer, inpainter, the matting net's side outputs), splitting gained nothing."""


def _split_narrow_conv(model: Any) -> int:
    """Split each wide-kernel ``Conv`` with few output channels into three cheap convs.

    NCHWc pads the output channels to a block of 8, so the style nets' last 9x9 conv to
    3 channels does 8/3 of its work (30 of their ~100 ms). The same function, exactly in real
    arithmetic: a ``kh x 1`` conv whose ``Co * kw`` outputs are the per-column partial sums
    (27 channels, with zero filters to 32: 1.2x), a depthwise ``1 x kw`` conv with one-hot
    weights that shifts each partial sum to its column, and a 1x1 conv that adds each output's
    shifted sums and the bias. All three run in NCHWc (a grouped ``1 x kw`` conv that shifts
    and adds at once does not: at 256 x 256 it took 3.1 ms and a reorder of the 27 channels
    0.9 ms, against 0.75 + 0.45 ms for the pair, 2 threads). Zero padding splits with it:
    rows on the first conv, columns on the second (a zero column stays zero, since the first
    conv has no bias). The orientation with fewer padded multiply-adds is taken.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    fresh = fresh_namer(graph)

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
        # Zero filters pad the partial sums to whole NCHWc blocks, so the two convs after
        # it run blocked too and only the 3-channel result is reordered.
        sums = first.shape[0]
        blocked = -(-sums // BLOCK) * BLOCK
        first = np.concatenate([first, np.zeros((blocked - sums, *first.shape[1:]), np.float32)])
        shift = np.zeros((blocked, 1, *second.shape[2:]), np.float32)  # each sum to its place
        add = np.zeros((co, blocked, 1, 1), np.float32)  # the shifted sums of each output
        taps = second.shape[1]
        for channel in range(sums):
            shift[channel, 0] = second[channel // taps, channel % taps]
            add[channel // taps, channel, 0, 0] = 1.0
        partial, shifted = fresh(f"{base}_partial"), fresh(f"{base}_shifted")
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
                [partial, constant(shift, f"{base}_shift_w")],
                [shifted],
                name=fresh(f"{base}_shift_conv"),
                kernel_shape=list(shift.shape[2:]),
                pads=second_pads,
                group=blocked,
            )
        )
        nodes.append(
            helper.make_node(
                "Conv",
                [shifted, constant(add, f"{base}_sum_w"), constant(bias, f"{base}_sum_b")],
                list(node.output),
                name=fresh(f"{base}_sum_conv"),
                kernel_shape=[1, 1],
            )
        )
        count += 1
    if count:
        replace_nodes(graph, nodes)
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
    from onnx import numpy_helper

    graph = model.graph
    sized = [n for n in graph.node if n.op_type == "Resize" and len(n.input) == 4]
    if not sized:
        return 0  # nothing to rewrite: no shape inference needed
    shapes = inferred_shapes(model)
    constants = constant_values(graph)
    producers = {out: node for node in graph.node for out in node.output}
    fresh = fresh_namer(graph)

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
        replace_nodes(graph, live_nodes(graph))
    return count


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
