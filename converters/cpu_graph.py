"""Graph rewrites that make an exported model faster on ONNX Runtime's CPU provider.

ONNX Runtime runs convolutions in a blocked channel layout (NCHWc). An op it cannot run in
that layout forces a reorder back to NCHW and another into NCHWc around it; ``PRelu`` with a
per-channel slope is such an op, and in a conv/PReLU stack (Real-ESRGAN's SRVGGNetCompact,
our upscaler) the reorders and the broadcasting ``PRelu`` kernel cost a third of the run.

The rewrite expresses the same function with ops that stay in NCHWc and fuse into the
convolution kernels: for a slope ``a`` (per channel),

    PReLU(c) = c + (1 - a) * relu(-c)                      (any a)
             = c + relu(-(1 - a) * c)                      (when every a <= 1)

where a per-channel scale is a depthwise 1x1 ``Conv`` (``group = C``). The second form needs
one depthwise conv with a fused ``Relu`` and an ``Add``; the first two depthwise convs.
Both are exact in real arithmetic and within a few ulp in float32; the converter verifies the
rewritten graph against PyTorch like any export. TensorRT runs ``PRelu`` natively, so
``--target tensorrt`` leaves the graph as exported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def tune_for_cpu(path: str | os.PathLike[str]) -> dict[str, int]:
    """Rewrite the model at ``path`` in place; returns how often each rewrite applied."""
    import onnx

    from .export import check_model

    path = Path(path)
    model = onnx.load(str(path))
    applied = {"prelu_as_depthwise_conv": _rewrite_prelu(model)}
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
        del graph.node[:]
        graph.node.extend(nodes)
        used = {name for node in graph.node for name in node.input}
        kept = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept)
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
