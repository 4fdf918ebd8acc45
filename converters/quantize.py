"""fp32 ONNX -> int8 ONNX with explicit Q/DQ nodes, calibrated on images.

TensorRT 11 has no INT8 builder flag or calibrator: int8 is explicit quantization, Q/DQ pairs
in the graph. Two flavours, because the two runtimes want different things:

* ``target="tensorrt"``: int8 activations and weights, all symmetric (zero points 0, which the
  ONNX-TensorRT parser requires), weights per output channel, biases left float32 (TensorRT
  folds them; it has no int32 DequantizeLinear). Only compute-heavy ops are quantized
  (Conv, ConvTranspose, Gemm, MatMul): TensorRT fuses the rest around them.
* ``target="cpu"``: uint8 activations with a zero point (asymmetric), int8 per-channel
  symmetric weights, every op ONNX Runtime has a quantized kernel for. ONNX Runtime's CPU
  kernels are fast with uint8 activations (U8S8); with int8 activations they are slower than
  fp32 (U²-Net-p 320x320 on 2 cores: fp32 205 ms, symmetric int8 324 ms, u8 activations 128 ms).

Calibration is ``onnxruntime.quantization.quantize_static`` over images (see
:mod:`.calibration`). Method: ``minmax`` by default. These are image-to-image nets: an
activation's rare extreme values are real highlights and edges, and clipping them (the point
of ``percentile`` or ``entropy``, designed for classifiers) shows as flattened highlights; with
a few dozen images the min/max are stable. ``percentile`` (99.999) is available.
``nodes_to_exclude`` (``exclude``) are the int8 islands kept float32.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vetrina.contract import METADATA_KEY, Contract, TensorSpec
from vetrina.errors import ConversionError

from .activations import ORT, load
from .calibration import calibration_feeds, feeds_reader, round_size
from .int8_graph import (
    pad_conv_input_channels,
    pad_conv_output_channels,
    pad_in_uint8,
    pin_nearest_upsample_nchw,
    shape_of_uint8,
    spatial_mean_as_pooling,
)
from .precision import PrecisionResult, activation_tensors

TARGETS = ("tensorrt", "cpu")
METHODS = ("minmax", "percentile")
TENSORRT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
DEFAULT_SIZE = (256, 256)


@dataclass(frozen=True)
class QdqSummary:
    """What the Q/DQ nodes of a quantized model hold (for checks and reports)."""

    quantize_nodes: int
    dequantize_nodes: int
    activation_types: set[str] = field(default_factory=set)  # Q output types
    weight_types: set[str] = field(default_factory=set)  # constant DQ input types
    nonzero_zero_points: list[str] = field(default_factory=list)
    per_channel_weights: int = 0
    quantized_nodes: list[str] = field(default_factory=list)  # consumers of a DQ output


def quantize_int8(
    source: str | os.PathLike[str] | Any,
    output: str | os.PathLike[str],
    calibration: str | os.PathLike[str] | np.ndarray | Sequence[Any],
    *,
    target: str,
    inputs: Sequence[TensorSpec] | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    multiple_of: int | None = None,
    limit: int | None = 64,
    exclude: Iterable[str] = (),
    method: str = "minmax",
    reduce_range: bool | None = None,
    preprocess: bool = True,
    calibration_cache: str | os.PathLike[str] | None = None,
    quant_format: str = "qdq",
    speed_islands: bool = True,
) -> PrecisionResult:
    """Quantize ``source`` (fp32 ONNX) to ``output`` for ``target`` ("cpu" or "tensorrt").

    ``calibration``: a folder of images, a uint8 (N, H, W, 3) RGB array, or a list of feed
    dicts. Images are fitted to ``size`` (rounded to ``multiple_of``) and mapped onto the
    ranges of ``inputs`` (default: the contract stored in the model). ``exclude``: node names
    kept float32. ``reduce_range`` (default: on for ``cpu``, off for ``tensorrt``): 7-bit
    weights. x86 CPUs without VNNI (AVX2) multiply u8 x s8 pairs into saturating int16 sums
    (``vpmaddubsw``); with full 8-bit weights the zoo enhancer fell to 24 dB PSNR against fp32
    on such a CPU, with 7-bit weights it keeps 48 dB. ``calibration_cache``: a JSON file of
    tensor ranges, written on the first call and reused after (the island search re-quantizes
    the same model many times). ``quant_format``: "qdq" (both targets) or "qoperator"
    (ONNX Runtime's QLinear* ops, cpu only: for speed comparisons; ONNX Runtime fuses QDQ into
    the same kernels). ``speed_islands`` (``cpu`` only): also keep float32 the convs ONNX
    Runtime runs slower in int8 (:func:`slow_int8_convs`), with that reason in the result.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if target not in TARGETS:
        raise ConversionError(f"unknown int8 target {target!r}; choose one of {', '.join(TARGETS)}")
    if method not in METHODS:
        raise ConversionError(
            f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}"
        )
    if quant_format not in ("qdq", "qoperator") or (
        quant_format == "qoperator" and target != "cpu"
    ):
        raise ConversionError(
            f"quant_format {quant_format!r} is not available for target {target!r}",
            hint="use 'qdq' (TensorRT parses only Q/DQ graphs)",
        )
    model = load(source)
    exclude = list(exclude)
    missing = sorted(set(exclude) - {n.name for n in model.graph.node})
    if missing:
        raise ConversionError(
            f"exclude names nodes the model does not have: {', '.join(missing[:8])}",
            hint="use node names of the fp32 ONNX model",
        )
    requested = set(exclude)
    speed = slow_int8_convs(model) if speed_islands and target == "cpu" else {}
    speed = {name: why for name, why in speed.items() if name not in requested}
    exclude += list(speed)
    specs, spatial_step = _input_specs(model, inputs)
    step = multiple_of or spatial_step
    feeds, count = calibration_feeds(calibration, specs, round_size(size, step), limit=limit)
    symmetric = target == "tensorrt"
    if reduce_range is None:
        reduce_range = target == "cpu"
    extra: dict[str, Any] = {
        "ActivationSymmetric": symmetric,
        "WeightSymmetric": True,
    }
    if symmetric:
        extra["QuantizeBias"] = False
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="vetrina-int8-") as tmp:
        src = Path(tmp) / "fp32.onnx"
        plain, rewrites = model, {}
        if target == "cpu":
            plain = _copy(model)
            padded = pad_conv_input_channels(plain, keep=exclude)
            pooled = spatial_mean_as_pooling(plain)
            rewrites = {"conv_input_channels_to_4": padded} if padded else {}
            rewrites |= {"spatial_mean_as_pooling": pooled} if pooled else {}
        _save_plain(plain, src)
        if preprocess:
            src = _preprocess(src, Path(tmp) / "pre.onnx")
        with _quiet():
            try:
                quantize_static(
                    os.fspath(src),
                    os.fspath(Path(tmp) / "int8.onnx"),
                    feeds_reader(feeds),
                    quant_format=(
                        QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator
                    ),
                    op_types_to_quantize=list(TENSORRT_OPS) if symmetric else None,
                    per_channel=True,
                    reduce_range=reduce_range,
                    activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=exclude,
                    calibrate_method=(
                        CalibrationMethod.Percentile
                        if method == "percentile"
                        else CalibrationMethod.MinMax
                    ),
                    extra_options=extra,
                    calibration_cache_path=(
                        os.fspath(calibration_cache) if calibration_cache is not None else None
                    ),
                )
            except Exception as exc:
                detail = " ".join(str(exc).split())[:500]
                raise ConversionError(
                    f"int8 quantization failed: {type(exc).__name__}: {detail}"
                ) from exc
        quantized = load(Path(tmp) / "int8.onnx")
    if target == "cpu":
        pinned = pin_nearest_upsample_nchw(quantized)
        if quant_format == "qdq":
            filters = pad_conv_output_channels(quantized)
            rewrites |= {"conv_output_channels_to_16": filters} if filters else {}
            pads = pad_in_uint8(quantized)
            rewrites |= {"pad_in_uint8": pads} if pads else {}
        rewrites |= {"nchw_nearest_upsample": pinned} if pinned else {}
        shapes = shape_of_uint8(quantized)
        rewrites |= {"shape_of_uint8": shapes} if shapes else {}
    _copy_metadata(model, quantized)
    _check(quantized)
    if quant_format == "qdq":
        _check_excluded(quantized, exclude)
    import onnx

    onnx.save(quantized, os.fspath(output))
    summary = qdq_summary(quantized)
    if not summary.quantize_nodes:
        raise ConversionError(
            "int8 quantization left no node quantized",
            hint="the model has no quantizable ops, or every one was excluded (by request, or "
            "as a conv ONNX Runtime runs slower in int8: pass speed_islands=False to quantize "
            "those anyway)",
        )
    return PrecisionResult(
        path=output,
        precision="int8",
        target=target,
        islands=[n.name for n in model.graph.node if n.name in set(exclude)],
        reasons={n: speed.get(n, "requested") for n in exclude},
        evaluator=ORT,
        calibration={
            "images": count,
            "method": method,
            "size": list(round_size(size, step)),
            "activations": "int8 symmetric" if symmetric else "uint8 asymmetric",
            "weights": "int8 symmetric per-channel" + (" (7-bit)" if reduce_range else ""),
            "preprocess": preprocess,
            "format": quant_format,
        },
        rewrites=rewrites or None,
    )


TINY_CHANNELS = 4
"""A conv with at most this many input and output channels is 'tiny' (see
:func:`slow_int8_convs`)."""


def slow_int8_convs(source: Any) -> dict[str, str]:
    """Convs that ONNX Runtime's CPU int8 kernels run slower than its fp32 ones, and the nodes
    next to them that int8 would only wrap in quantize steps, by rule: {node name: reason}.
    The ``cpu`` target keeps them float32 (speed islands).

    * grouped convs with a spatial kernel (depthwise box filters, the style nets' depthwise
      1x9 column shift): ONNX Runtime's u8 grouped/depthwise conv is generic, its fp32 one runs
      in the blocked NCHWc layout;
    * tiny convs, at most :data:`TINY_CHANNELS` channels in and out (the inpainter's
      single-channel mask filters): too little work per pixel for the u8 GEMM.

    * convs with a kernel wider than 5x5 on at most :data:`TINY_CHANNELS` input channels
      whose output only an ``InstanceNormalization`` reads (the style nets' 9x9 conv from
      RGB: 13 ms in int8, 7.5 ms in fp32 at 256 x 256), together with that normalization,
      which has no int8 kernel: with its input float, the conv is really float32 (see below);
    * convs whose output only such float32 convs read (the style nets' 9x1 partial sums
      before the column shift: 7.2 ms in int8 and 7.4 ms in fp32 at 256 x 256, plus 1.7 ms to
      dequantize and reorder their output for the float convs): their output must be
      dequantized anyway. One step only: convs before those stay int8;
    * convs that read such a float32 conv and write the model's output (the 1x1 sum after the
      column shift): int8 would add a quantize before and a dequantize after one conv;
    * other nodes (``Relu``, ``Pad``, ``Concat``, ``InstanceNormalization``...) whose output
      only float32 nodes read: as int8 they only add a quantize step (the inpainter's
      ``Concat`` in front of its box filters made ONNX Runtime dequantize and reorder it once
      per filter);
    * such nodes, comparisons and casts that read only float32 results (the inpainter's
      fill arithmetic on its box sums: as int8 it quantized the sums it divides and
      compares, with a quantize step around each op), except a chain of one-input ops that
      ends in quantized nodes (an instance norm's ``Relu`` and ``Pad`` before a quantized
      conv are better quantized early).

    Depthwise 1x1 convs (the CPU graph's PReLU rewrite) stay int8: they fuse into the
    surrounding quantized ops. Measured on the zoo (``benchmarks/precision.py``, RESULTS.md):
    the inpainter's int8 file went from 0.5x to 1.0-1.3x fp32's speed.

    A conv excluded from quantization *between* quantized tensors (its input dequantized, its
    output quantized) is not float32 at run time: ONNX Runtime quantizes its weights itself
    and runs it as a ``QLinearConv``. The rules above leave such convs alone."""
    from onnx import helper

    model = load(source)
    weights = {t.name: t for t in model.graph.initializer}
    slow: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in weights:
            continue
        dims = list(weights[node.input[1]].dims)  # (out, in / group, kh, kw)
        if len(dims) != 4:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        group = int(attrs.get("group", 1))
        channels_in, channels_out = dims[1] * group, dims[0]
        if group > 1 and dims[2] * dims[3] > 1:
            slow[node.name] = (
                f"slower in int8 on ONNX Runtime CPU (grouped {dims[2]}x{dims[3]} conv)"
            )
        elif max(channels_in, channels_out) <= TINY_CHANNELS:
            slow[node.name] = (
                f"slower in int8 on ONNX Runtime CPU ({channels_in} -> {channels_out} channels)"
            )
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.name)
    by_name = {node.name: node for node in model.graph.node}
    for node in model.graph.node:
        if node.op_type != "Conv" or node.name in slow or node.input[1] not in weights:
            continue
        dims = list(weights[node.input[1]].dims)
        readers = [by_name[r] for r in consumers.get(node.output[0], [])]
        wide = len(dims) == 4 and dims[1] <= TINY_CHANNELS and dims[2] * dims[3] > 25
        if wide and len(readers) == 1 and readers[0].op_type == "InstanceNormalization":
            why = f"slower in int8 on ONNX Runtime CPU ({dims[2]}x{dims[3]} conv from {dims[1]})"
            slow[node.name] = why
            slow[readers[0].name] = f"keeps {node.name} float32 (no int8 instance norm)"
    _add_float_neighbours(model, weights, slow, consumers)
    return slow


CHEAP_OPS = frozenset(
    [
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Relu",
        "Clip",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Where",
        "Pad",
        "Concat",
        "Split",
        "Slice",
        "Reshape",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Resize",
        "InstanceNormalization",
        "BatchNormalization",
    ]
)
"""Ops a float32 island may take in from the nodes around it (see :func:`slow_int8_convs`):
memory-bound, so int8 gains nothing on them but the quantize steps around. Convs, matrix
products and the rest stop it."""

LOGIC_OPS = frozenset(["Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Not"])
LOGIC_OPS |= {"And", "Or", "Cast"}
"""Comparisons and casts: never quantized, but the float32 islands grow through them."""


def _add_float_neighbours(
    model: Any, weights: dict[str, Any], slow: dict[str, str], consumers: dict[str, list[str]]
) -> None:
    """Add to ``slow`` the nodes whose int8 form would only add quantize steps around the
    float32 convs already in it (see :func:`slow_int8_convs`; ``consumers``: tensor name ->
    names of the nodes that read it). One step out from those convs, so a chain of convs
    before a float32 one does not turn float32 with it."""
    outputs = {o.name for o in model.graph.output}
    producers = {out: node for node in model.graph.node for out in node.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in weights]
    by_shape = set(slow)

    def read_only_by(node: Any, floats: set[str]) -> bool:
        readers = [r for out in node.output for r in consumers.get(out, [])]
        return bool(readers) and all(r in floats for r in readers)

    for node in convs:
        if node.name not in slow and read_only_by(node, by_shape) and node.output[0] not in outputs:
            channels = weights[node.input[1]].dims[0]
            slow[node.name] = (
                f"slower in int8 on ONNX Runtime CPU ({channels} output "
                f"channel{'s' if channels > 1 else ''}, read only by float32 convs)"
            )
    float_convs = {n.name for n in convs if n.name in slow}
    for node in convs:
        source = producers.get(node.input[0])
        from_float = source is not None and source.name in float_convs
        if node.name not in slow and from_float and node.output[0] in outputs:
            slow[node.name] = "between a float32 conv and the output (int8 adds quantize steps)"
    _spread_through_cheap_ops(model, slow, consumers, producers, outputs)


def _spread_through_cheap_ops(model, slow, consumers, producers, outputs) -> None:
    """Grow the float32 islands in ``slow`` through :data:`CHEAP_OPS` (to a fixed point):
    backwards over the nodes that only float32 nodes read, forwards over the nodes that read
    only float32 nodes' results (the inpainter's fill arithmetic after its box filters: int8
    would quantize the box sums it divides and compares). A forward chain of one-input ops
    that ends in quantized nodes is given back (an instance norm's ``Relu`` and ``Pad`` before
    a quantized conv: quantized early, they fuse into the quantize step or run on uint8)."""
    active = activation_tensors(model)
    forward: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in model.graph.node:
            if node.name in slow or node.op_type not in CHEAP_OPS | LOGIC_OPS:
                continue
            readers = [r for out in node.output for r in consumers.get(out, [])]
            only_floats_read = bool(readers) and all(r in slow for r in readers)
            if node.op_type in CHEAP_OPS and only_floats_read and not set(node.output) & outputs:
                slow[node.name] = "read only by float32 nodes (int8 would add a quantize step)"
                changed = True
            elif _reads_only_islands(node, slow, producers, active):
                slow[node.name] = "reads only float32 results (int8 would quantize them)"
                forward.add(node.name)
                changed = True
    changed = True
    while changed:
        changed = False
        for node in model.graph.node:
            if node.name not in forward or sum(name in active for name in node.input) != 1:
                continue
            readers = [r for out in node.output for r in consumers.get(out, [])]
            if all(r not in slow for r in readers):
                del slow[node.name]
                forward.discard(node.name)
                changed = True


def _reads_only_islands(node, slow, producers, active) -> bool:
    """Whether ``node`` reads a float32 island's result and no other activation."""
    names = [name for name in node.input if name]
    sources = [producers.get(name) for name in names]
    if not any(p is not None and p.name in slow for p in sources):
        return False
    return all(
        p is not None and p.name in slow
        for name, p in zip(names, sources, strict=True)
        if name in active
    )


def quantizable_nodes(source: Any, target: str = "cpu") -> list[str]:
    """Nodes an activation flows through that ``target``'s quantization may touch (in graph
    order): the candidates of an int8 island search."""
    model = load(source)
    active = activation_tensors(model)
    ops = set(TENSORRT_OPS) if target == "tensorrt" else None
    return [
        n.name
        for n in model.graph.node
        if any(i in active for i in n.input) and (ops is None or n.op_type in ops)
    ]


def qdq_summary(model: Any) -> QdqSummary:
    """Count Q/DQ nodes and collect their element types and zero points."""
    from onnx import TensorProto, numpy_helper

    model = load(model)
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    type_name = {v: k.lower() for k, v in TensorProto.DataType.items()}
    q = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    activation_types, weight_types, nonzero = set(), set(), []
    per_channel = 0
    for node in q + dq:
        zp_name = node.input[2] if len(node.input) > 2 else ""
        if zp_name in consts:
            zp = consts[zp_name]
            if np.any(numpy_helper.to_array(zp) != 0):
                nonzero.append(node.name)
            elem = type_name[zp.data_type]
        else:
            elem = "uint8"  # the default zero point type
        if node.op_type == "QuantizeLinear":
            activation_types.add(elem)
        elif node.input[0] in consts:
            weight_types.add(type_name[consts[node.input[0]].data_type])
            scale = numpy_helper.to_array(consts[node.input[1]]) if node.input[1] in consts else 0
            per_channel += int(np.ndim(scale) == 1 and np.size(scale) > 1)
    dq_out = {n.output[0] for n in dq}
    quantized = [
        n.name
        for n in graph.node
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
        and any(i in dq_out for i in n.input)
    ]
    return QdqSummary(
        len(q), len(dq), activation_types, weight_types, nonzero, per_channel, quantized
    )


def _input_specs(model: Any, inputs: Sequence[TensorSpec] | None) -> tuple[list[TensorSpec], int]:
    """The input specs (given, or from the contract in the model) and the multiple-of rule."""
    meta = {p.key: p.value for p in model.metadata_props}
    contract = Contract.from_json(meta[METADATA_KEY]) if METADATA_KEY in meta else None
    if inputs is None:
        if contract is None:
            raise ConversionError(
                "the model carries no vetrina contract, so the calibration inputs' ranges "
                "are unknown",
                hint="pass inputs=spec.inputs (the architecture's TensorSpecs)",
            )
        inputs = contract.inputs
    graph_inputs = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    names = {t.name for t in inputs}
    if names != graph_inputs:
        raise ConversionError(
            f"the input specs name {sorted(names)} but the model's inputs are "
            f"{sorted(graph_inputs)}"
        )
    return list(inputs), contract.spatial.multiple_of if contract else 1


def _copy(model: Any) -> Any:
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _save_plain(model: Any, path: Path) -> None:
    import onnx

    onnx.save(model, os.fspath(path))


def _preprocess(src: Path, dst: Path) -> Path:
    """``quant_pre_process``: ONNX Runtime's basic graph optimisations and shape inference, so
    the quantizer sees fused ops and every tensor's type. Symbolic shape inference is skipped:
    the exports' dims are already symbolic and ONNX shape inference covers them."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet():
        try:
            quant_pre_process(os.fspath(src), os.fspath(dst), skip_symbolic_shape=True)
        except Exception as exc:
            detail = " ".join(str(exc).split())[:400]
            raise ConversionError(f"quantization pre-processing failed: {detail}") from exc
    return dst


def _check_excluded(model: Any, exclude: Sequence[str]) -> None:
    """Every excluded node is still there and keeps float32 weights (its activation input may
    still carry the Q/DQ pair of a quantized producer: that is the quantizer's semantics).

    A conv's or Gemm's bias is not a weight here: ONNX Runtime's preprocessing merges equal
    initializers (all-zero biases, say), and when a quantized conv shares the bias with an
    excluded one, both read it through the quantized conv's int32 DequantizeLinear (the value
    rounded to that conv's scale)."""
    graph = model.graph
    consts = {t.name for t in graph.initializer}
    dq_weights = {
        n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in consts
    }
    nodes = {n.name: n for n in graph.node}
    lost = [n for n in exclude if n not in nodes]
    quantized = [n for n in exclude if n in nodes and dq_weights.intersection(_weights(nodes[n]))]
    if lost or quantized:
        raise ConversionError(
            "the int8 model does not keep the requested float32 nodes "
            f"(missing: {lost[:6]}, quantized anyway: {quantized[:6]})",
            hint="retry with preprocess=False (ONNX Runtime's graph optimisation renamed them)",
        )


def _weights(node: Any) -> list[str]:
    """The inputs of ``node`` that hold weights: all but a conv's or Gemm's bias, and none of
    an instance norm's (its per-channel scale and shift are shared the same way: untrained
    norms all hold ones and zeros)."""
    if node.op_type in ("Conv", "ConvTranspose", "Gemm"):
        return list(node.input[:2])
    if node.op_type == "InstanceNormalization":
        return list(node.input[:1])
    return list(node.input)


def _copy_metadata(source: Any, target: Any) -> None:
    existing = {p.key for p in target.metadata_props}
    for prop in source.metadata_props:
        if prop.key not in existing:
            target.metadata_props.add(key=prop.key, value=prop.value)


def _check(model: Any) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ConversionError(f"the int8 model failed the ONNX checker: {exc}") from exc


@contextlib.contextmanager
def _quiet() -> Any:
    """ONNX Runtime's quantizer logs and prints progress; keep it out of the CLI output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
