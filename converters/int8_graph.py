"""Graph rewrites that make a quantized (int8 ``cpu`` flavour) model faster on ONNX Runtime.

ONNX Runtime runs a quantized net's convs as u8 x s8 ``QLinearConv`` in NHWC. Six things
cost it dearly on an x86 CPU without VNNI (AVX2), and each has a rewrite that computes the
same function (bit for bit, except the mean, which ONNX Runtime then sums in integers instead
of floats), applied by :func:`~vetrina.converters.quantize.quantize_int8` for the ``cpu`` target
only (TensorRT and float graphs do not care, or prefer the original):

``nchw_nearest_upsample`` (after quantization): ONNX Runtime moves every ``Resize``
between two NHWC convs into NHWC too, where a nearest 2x upsample takes its generic
per-element path (2.3 ms on a 16 x 128 x 128 uint8 tensor); in NCHW it has a 2x fast path
(0.05 ms), and the transposes around it cost less than the difference (0.1-0.3 ms). A
``Reshape`` of the input to its own ``Shape`` in front of the ``Resize`` is an identity that
ONNX Runtime's transpose optimizer does not push a layout transpose through, so the
``Resize`` stays in NCHW (:func:`pin_nearest_upsample_nchw`). In an fp32 graph it would cost
the blocked layout instead, so the fp32 tuning never applies it.

``conv_input_channels_to_4`` (before quantization): a quantized conv with 3, 5, 6 or 7 input
channels misses ONNX Runtime's fast int8 conv kernels, which want a multiple of 4 (a 3x3 conv
from 3 to 16 channels at 256 x 256: 3.9 ms; from 4: 1.9 ms; from 7: 4.9 ms, from 8: 2.2 ms).
A ``Pad`` of the input with zero channels and zero weights for them gives the same sums
(:func:`pad_conv_input_channels`). Only kernels up to 5x5: a 7x7 or 9x9 conv from 4 channels
is slower than from 3. Float convs do not care.

``conv_output_channels_to_16`` (after quantization): its int8 conv kernels compute output
channels in blocks of 16 and take a slow path for the rest (a 3x3 conv from 16 channels at
256 x 256: 2.3 ms to 16 channels, 3.1 ms to 4 or 8, 4.3 ms to 12, 5.8 ms to 24 and 4.6 ms to
32). Zero int8 filters up to the next multiple of 16 and a ``Slice`` of the real channels of
the uint8 output (:func:`pad_conv_output_channels`): the inpainter's 4-channel head 3.6 ->
2.3 ms. The output keeps its calibrated scale, so the real channels are the same bit for bit.

``pad_in_uint8`` (after quantization): a ``Pad`` has no quantized form in ONNX Runtime's
QDQ fusions, so ``DequantizeLinear -> Pad -> QuantizeLinear`` runs in float32 with a
dequantize and a quantize around it (the style nets' 10 reflection pads: 5.1 ms at 256 x
256). Where both sides share one scale and zero point (min/max calibration gives that to a
reflect, edge or zero pad) the ``Pad`` runs on the uint8 tensor itself: 1.6 ms in all, the
same numbers (:func:`pad_in_uint8`).

``spatial_mean_as_pooling`` (before quantization): a mean over height and width (a channel
gate's or a colour head's pooled features) exports as ``ReduceMean``, which has no quantized
form, so ONNX Runtime transposes the NHWC uint8 tensor back to NCHW and dequantizes all of it
to take the mean (the enhancer's five: about 0.4 ms each at 256 x 256). As
``GlobalAveragePool`` (+ ``Flatten`` where the mean drops the axes) it quantizes into a
``QLinearGlobalAveragePool`` that reads the NHWC uint8 tensor directly
(:func:`spatial_mean_as_pooling`). The same mean; in float graphs no faster, so only here.

``shape_of_uint8`` (after quantization): a ``Shape`` of a dequantized tensor keeps its
``DequantizeLinear`` alive after ONNX Runtime's fusions, a full pass over the tensor for its
shape alone (0.04-0.6 ms each: the enhancer's pixel shuffle reads two). The ``Shape`` of
the uint8 tensor is the same (:func:`shape_of_uint8`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .graph_edit import constant_values, fresh_namer, inferred_shapes, live_nodes, replace_nodes


def pin_nearest_upsample_nchw(model: Any) -> int:
    """Put ``Reshape(x, Shape(x))`` in front of each nearest 2x ``Resize`` that ONNX
    Runtime has an NCHW fast path for (constant scales 1, 1, 2, 2; asymmetric coordinates,
    floor rounding), so that it is not moved into the NHWC layout of a quantized graph (see
    the module's docstring); returns how many were pinned. For int8 ``cpu`` graphs only;
    :func:`shape_of_uint8` then lets the ``Shape`` read the uint8 tensor."""
    from onnx import helper

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    fresh = fresh_namer(graph)
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
        replace_nodes(graph, nodes)
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
    fresh = fresh_namer(graph)
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
        replace_nodes(graph, nodes)
    return count


QUANTIZED_CONV_OUTPUT_STEP = 16
"""ONNX Runtime's int8 conv kernels (x86, AVX2) work on output channels in blocks of 16 and
take a slow path for the rest: a 3x3 conv from 16 channels at 256 x 256 takes 2.3 ms to 16
channels but 3.1 ms to 4 or 8, 4.3 ms to 12 and 5.8 ms to 24 (4.6 ms to 32)."""


def pad_conv_output_channels(model: Any) -> int:
    """Give each quantized ungrouped conv whose output channels are not a multiple of 16
    zero filters up to the next multiple, and a ``Slice`` of its uint8 output back to the real
    channels; returns how many convs were padded. On a QDQ graph, after quantization: the
    int8 weights, their scales and the int32 bias get the zero rows, the output keeps its
    calibrated scale, so the real channels are the same bit for bit."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    fresh = fresh_namer(graph)

    def padded(dq: Any, rows: int, fill: float) -> str:
        """A new DequantizeLinear of ``dq``'s constants with ``rows`` more entries."""
        arrays = [numpy_helper.to_array(constants[name]) for name in dq.input]
        real = arrays[0].shape[0]
        arrays[0] = np.concatenate(
            [arrays[0], np.zeros((rows, *arrays[0].shape[1:]), arrays[0].dtype)]
        )
        arrays[1:] = [  # one scale (and zero point) per row, the new ones 1 (and 0)
            np.concatenate([np.broadcast_to(a.reshape(-1), (real,)), np.full(rows, v, a.dtype)])
            for a, v in zip(arrays[1:], (fill, 0), strict=False)
        ]
        names = [fresh(f"{name}_filters") for name in dq.input]
        for name, array in zip(names, arrays, strict=True):
            graph.initializer.append(numpy_helper.from_array(array, name))
        out = fresh(f"{dq.output[0]}_filters")
        nodes.append(helper.make_node("DequantizeLinear", names, [out], name=out, axis=0))
        return out

    nodes, after, count = [], {}, 0
    for node in graph.node:
        plan = _output_padding_plan(node, constants, producers, consumers, outputs)
        if plan is None:
            nodes.append(node)
            continue
        weight_dq, bias_dq, quantize_node, rows, input_scale = plan
        node.input[1] = padded(weight_dq, rows, 1.0)
        if bias_dq is not None:  # ONNX Runtime fuses only a bias scaled input x weight scale
            node.input[2] = padded(bias_dq, rows, input_scale)
        base = node.name or node.output[0]
        cout = constants[weight_dq.input[0]].dims[0]
        node.output[0] = quantize_node.input[0] = fresh(f"{node.output[0]}_filters")
        result = quantize_node.output[0]
        quantize_node.output[0] = fresh(f"{result}_filters")
        bounds = [fresh(f"{base}_slice_{what}") for what in ("starts", "ends", "axes")]
        for name, value in zip(bounds, (0, cout, 1), strict=True):
            graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), name))
        slice_node = helper.make_node(
            "Slice", [quantize_node.output[0], *bounds], [result], name=fresh(f"{base}_real")
        )
        nodes.append(node)
        after[id(quantize_node)] = slice_node
        count += 1
    if count:
        ordered = []
        for node in nodes:
            ordered += [node, after[id(node)]] if id(node) in after else [node]
        replace_nodes(graph, ordered)
        replace_nodes(graph, live_nodes(graph))
    return count


def _output_padding_plan(node, constants, producers, consumers, outputs):
    """(weight DQ, bias DQ or None, output QuantizeLinear, zero filters to add, input scale)
    for a quantized conv worth padding, else None."""
    from onnx import helper, numpy_helper

    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    weight_dq = producers.get(node.input[1])
    if attrs.get("group", 1) != 1 or not _constant_per_channel_dq(weight_dq, constants):
        return None
    cout = constants[weight_dq.input[0]].dims[0]
    rows = -cout % QUANTIZED_CONV_OUTPUT_STEP
    bias_dq = producers.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if not rows or (len(node.input) > 2 and node.input[2] and bias_dq is None):
        return None
    if bias_dq is not None and not _constant_per_channel_dq(bias_dq, constants):
        return None
    readers = consumers.get(node.output[0], [])
    if len(readers) != 1 or readers[0].op_type != "QuantizeLinear" or node.output[0] in outputs:
        return None
    input_dq = producers.get(node.input[0])
    if input_dq is None or input_dq.op_type != "DequantizeLinear":
        return None
    scale = constants.get(input_dq.input[1])
    if scale is None or np.size(numpy_helper.to_array(scale)) != 1:
        return None
    return weight_dq, bias_dq, readers[0], rows, float(numpy_helper.to_array(scale))


def _constant_per_channel_dq(dq: Any, constants: dict[str, Any]) -> bool:
    """Whether ``dq`` dequantizes a constant along axis 0 with one scale per row."""
    from onnx import helper

    if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) not in (2, 3):
        return False
    if any(name not in constants for name in dq.input):
        return False
    rows = constants[dq.input[0]].dims[0]
    axis = {a.name: helper.get_attribute_value(a) for a in dq.attribute}.get("axis", 1)
    return list(constants[dq.input[1]].dims) == [rows] and (rows == 1 or axis == 0)


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


def pad_in_uint8(model: Any) -> int:
    """Run each ``Pad`` between a ``DequantizeLinear`` and a ``QuantizeLinear`` of the same
    scale and zero point on the uint8 tensor itself; returns how many. For int8 ``cpu``
    graphs, after quantization."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    fresh = fresh_namer(graph)
    dropped: set[int] = set()
    count = 0
    for pad in graph.node:
        if pad.op_type != "Pad" or pad.domain not in ("", "ai.onnx"):
            continue
        dq = producers.get(pad.input[0])
        readers = consumers.get(pad.output[0], [])
        if dq is None or dq.op_type != "DequantizeLinear" or len(readers) != 1:
            continue
        q = readers[0]
        if q.op_type != "QuantizeLinear" or pad.output[0] in outputs:
            continue
        if not _same_quantization(dq, q, constants):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
        mode = attrs.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        inputs = [dq.input[0], pad.input[1]]
        if mode == "constant":
            value = pad.input[2] if len(pad.input) > 2 else ""
            if value and (value not in constants or float(constants[value]) != 0.0):
                continue
            name = fresh(f"{pad.name or pad.output[0]}_zero_point")
            point = constants[dq.input[2]].astype(np.uint8).reshape(())
            graph.initializer.append(numpy_helper.from_array(point, name))
            inputs.append(name)
        elif mode not in ("reflect", "edge"):
            continue
        if len(pad.input) > 3 and pad.input[3]:
            inputs += [""] * (3 - len(inputs)) + [pad.input[3]]
        del pad.input[:]
        pad.input.extend(inputs)
        pad.output[0] = q.output[0]
        dropped.add(id(q))
        count += 1
    if count:
        replace_nodes(graph, [node for node in graph.node if id(node) not in dropped])
        replace_nodes(graph, live_nodes(graph))
    return count


def _same_quantization(dq: Any, q: Any, constants: dict[str, np.ndarray]) -> bool:
    """Whether a DequantizeLinear and a QuantizeLinear use one per-tensor uint8 scale and
    zero point (constants), so a value passed from one to the other is unchanged."""
    if len(dq.input) < 3 or len(q.input) < 3:
        return False  # a missing zero point: leave the unusual graph alone
    names = (dq.input[1], dq.input[2], q.input[1], q.input[2])
    if any(name not in constants for name in names):
        return False
    dq_scale, dq_zero, q_scale, q_zero = (constants[name] for name in names)
    return (
        dq_scale.size == 1
        and dq_zero.dtype == np.uint8
        and q_zero.dtype == np.uint8
        and np.array_equal(dq_scale, q_scale)
        and np.array_equal(dq_zero, q_zero)
    )


def shape_of_uint8(model: Any) -> int:
    """Let each ``Shape`` of a ``DequantizeLinear`` output read the quantized tensor instead
    (the same shape), so that the dequantize dies where nothing else reads it; returns how
    many ``Shape`` nodes moved. For int8 ``cpu`` graphs, after quantization."""
    graph = model.graph
    dequantized = {
        node.output[0]: node.input[0]
        for node in graph.node
        if node.op_type == "DequantizeLinear" and node.domain in ("", "ai.onnx")
    }
    count = 0
    for node in graph.node:
        if node.op_type == "Shape" and node.domain in ("", "ai.onnx"):
            source = dequantized.get(node.input[0])
            if source is not None:
                node.input[0] = source
                count += 1
    if count:
        replace_nodes(graph, live_nodes(graph))
    return count


def spatial_mean_as_pooling(model: Any) -> int:
    """Write each ``ReduceMean`` over exactly the two spatial axes of a 4-D tensor as
    ``GlobalAveragePool``, followed by ``Flatten`` where the mean does not keep the axes
    (the node keeps its name, so fp32 islands still find it); returns how many. For the int8
    ``cpu`` flavour, before quantization (see the module's docstring)."""
    from onnx import helper

    graph = model.graph
    if not any(node.op_type == "ReduceMean" for node in graph.node):
        return 0  # nothing to rewrite: no shape inference needed
    shapes = inferred_shapes(model)
    constants = constant_values(graph)
    fresh = fresh_namer(graph)
    nodes, count = [], 0
    for node in graph.node:
        axes = _reduced_axes(node, constants) if node.op_type == "ReduceMean" else None
        rank = len(shapes.get(node.input[0], ())) if node.input else 0
        if axes is None or rank != 4 or sorted(a % 4 for a in axes) != [2, 3]:
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        name = node.name or fresh(f"{node.output[0]}_pool")
        if attrs.get("keepdims", 1):
            nodes.append(
                helper.make_node("GlobalAveragePool", [node.input[0]], node.output, name=name)
            )
        else:
            pooled = fresh(f"{node.output[0]}_pooled")
            nodes.append(
                helper.make_node("GlobalAveragePool", [node.input[0]], [pooled], name=name)
            )
            flat = fresh(f"{name}_flatten")
            nodes.append(helper.make_node("Flatten", [pooled], node.output, name=flat, axis=1))
        count += 1
    if count:
        replace_nodes(graph, nodes)
    return count


def _reduced_axes(node: Any, constants: dict[str, np.ndarray]) -> list[int] | None:
    """The axes a ``ReduceMean`` reduces, when they are constants, else None (also for
    ``noop_with_empty_axes`` and for no axes, which means all of them)."""
    from onnx import helper

    if node.domain not in ("", "ai.onnx"):
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("noop_with_empty_axes", 0):
        return None
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(node.input) > 1 and node.input[1] in constants:
        return [int(a) for a in constants[node.input[1]].ravel()]
    return None
