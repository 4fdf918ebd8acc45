"""One entry point for ``vetrina convert``: fp16 or int8, with float32 islands found by search.

``reduce_precision(fp32_onnx, output, "fp16" | "int8", passes=gate, samples=feeds, ...)``
applies the static island rules, then, when a gate is given and the result fails it, searches
the smallest extra set of float32 islands that passes (:mod:`.islands`), and writes the final
model. The returned :class:`~.precision.PrecisionResult` goes into the contract's provenance.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vetrina.contract import TensorSpec
from vetrina.errors import ConversionError

from .activations import EMULATED, FP16_MAX, Feeds, load
from .islands import search_islands
from .precision import PrecisionResult, activation_tensors, convert_fp16
from .quantize import DEFAULT_SIZE, quantizable_nodes, quantize_int8

PRECISIONS = ("fp16", "int8")


def reduce_precision(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    precision: str,
    *,
    passes: Callable[[Path], bool] | None = None,
    samples: Sequence[Feeds] | None = None,
    keep_fp32: Iterable[str] = (),
    target: str | None = None,
    calibration: str | os.PathLike[str] | np.ndarray | Sequence[Any] | None = None,
    inputs: Sequence[TensorSpec] | None = None,
    calibration_size: tuple[int, int] = DEFAULT_SIZE,
    method: str = "minmax",
    max_trials: int = 24,
    speed_islands: bool = True,
) -> PrecisionResult:
    """Write ``source`` (fp32 ONNX) at ``precision`` to ``output``.

    fp16: static rules (:data:`.precision.FP32_OPS`, big reductions, constants and, with
    ``samples``, activations beyond the float16 range). int8: ``target`` "tensorrt" or "cpu",
    calibrated on ``calibration`` (folder, uint8 RGB array or feeds) mapped through ``inputs``
    (default: the model's contract). ``passes(path)``: the verification gate; when given, the
    island search runs on ``samples`` (required then) if the plain result fails it.
    ``speed_islands`` (int8, ``cpu``): keep fp32 the convs ONNX Runtime runs slower in int8
    (:func:`.quantize.slow_int8_convs`).
    """
    if precision not in PRECISIONS:
        raise ConversionError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    keep = list(keep_fp32)
    output = Path(output)
    if passes is not None and not samples:
        raise ConversionError("the island search needs sample inputs (samples=[{name: array}])")
    if precision == "fp16":
        base = convert_fp16(source, output, keep_fp32=keep, samples=samples)
        fixed = list(base.islands)

        def transform(islands: list[str], path: Path) -> PrecisionResult:
            return convert_fp16(source, path, keep_fp32=fixed + islands, check_ranges=False)

        active = activation_tensors(load(source))
        candidates = [
            n.name
            for n in load(source).graph.node
            if n.name not in set(fixed) and any(i in active for i in n.input)
        ]
        evaluator, limit = EMULATED, FP16_MAX
    else:
        if target is None:
            raise ConversionError(
                "int8 needs a target: 'tensorrt' (symmetric int8, what TensorRT parses) or "
                "'cpu' (uint8 activations, what ONNX Runtime CPU runs fast)",
                hint="pass target='tensorrt' or target='cpu'",
            )
        if calibration is None:
            raise ConversionError(
                "int8 needs calibration images",
                hint="pass a folder of representative photos (--calibration DIR)",
            )
        cache_dir = tempfile.TemporaryDirectory(prefix="vetrina-calib-")
        cache = Path(cache_dir.name) / "ranges.json"
        fixed = keep

        def transform(islands: list[str], path: Path) -> PrecisionResult:
            return quantize_int8(
                source,
                path,
                calibration,
                target=target,
                inputs=inputs,
                size=calibration_size,
                exclude=fixed + islands,
                method=method,
                calibration_cache=cache,
                speed_islands=speed_islands,
            )

        base = transform([], output)
        candidates = [n for n in quantizable_nodes(source, target) if n not in set(fixed)]
        evaluator, limit = "auto", None
    try:
        if passes is None or passes(output):
            if passes is not None:
                base.search_trials = 1
            return base
        search = search_islands(
            source,
            transform,
            passes,
            samples=samples or [],
            candidates=candidates,
            max_trials=max_trials,
            evaluator=evaluator,
            range_limit=limit,
        )
        result = transform(search.islands, output)
    finally:
        if precision == "int8":
            cache_dir.cleanup()
    result.reasons = {**base.reasons, **{n: "island search" for n in search.islands}}
    result.islands = [n.name for n in load(source).graph.node if n.name in result.reasons]
    result.search_trials = search.trials + 1
    if precision == "fp16":
        result.evaluator = base.evaluator
    return result
