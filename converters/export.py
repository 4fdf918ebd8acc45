"""PyTorch module -> one self-contained, checked ONNX file (torch.onnx dynamo exporter).

Inputs follow the architecture's contract (any number of image, mask, latent and label
inputs). The batch axis is dynamic for every input; height and width are dynamic (one pair,
shared by every image and mask input, constrained to the size rules) unless ``static`` fixes
them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from vetrina.errors import ConversionError
from vetrina.models.architectures import ArchitectureSpec

from .inputs import check_forward, random_feeds, spatial_inputs
from .sizes import MAX_SIDE, Size, check_size

MAX_BATCH = 1024


def example_size(spec: ArchitectureSpec) -> Size:
    """A height != width that keeps the size rules (distinct sides keep torch.export from
    treating them as one symbol)."""
    rules = spec.spatial
    step = rules.multiple_of
    h = max(rules.min_size, 4 * step)
    h = -(-h // step) * step
    w = h + step
    if rules.max_size is not None and w > rules.max_size:
        w = h - step if h - step >= rules.min_size else h
    return h, w


def example_inputs(
    module: Any, spec: ArchitectureSpec, *, batch: int = 2, size: Size | None = None
) -> tuple[Any, ...]:
    """A deterministic example batch (torch tensors, in the spec's input order).

    Batch 2 keeps torch.export from specialising the batch axis.
    """
    import torch

    if spatial_inputs(spec):
        size = size or example_size(spec)
    feeds = random_feeds(
        module, spec, batch=batch, size=size, rng=np.random.default_rng(0), labels="spread"
    )
    return tuple(torch.from_numpy(feeds[t.name]) for t in spec.inputs)


def dynamic_shapes(spec: ArchitectureSpec, *, static: Size | None = None) -> tuple[Any, ...]:
    """Per input (positional): a dynamic batch axis shared by all inputs, and for images and
    masks a shared dynamic height/width (multiples of the rule's step), unless ``static``."""
    from torch.export import Dim

    rules = spec.spatial
    step = rules.multiple_of
    low = max(1, -(-rules.min_size // step))
    high = (rules.max_size or MAX_SIDE) // step
    batch = Dim("batch", min=1, max=MAX_BATCH)

    def side(name: str) -> Any:
        if step == 1:
            return Dim(name, min=low, max=high)
        return step * Dim(f"{name}_div{step}", min=low, max=high)

    spatial = spatial_inputs(spec)
    height, width = (side("height"), side("width")) if spatial and static is None else (None, None)
    shapes = []
    for tensor in spec.inputs:
        axes: dict[int, Any] = {0: batch}
        if tensor in spatial and height is not None and rules.min_size != rules.max_size:
            axes.update({2: height, 3: width})
        shapes.append(axes)
    return tuple(shapes)


def export_onnx(
    module: Any,
    spec: ArchitectureSpec,
    path: str | os.PathLike[str],
    *,
    opset: int | None = None,
    static: Size | None = None,
) -> Path:
    """Export ``module`` (eval mode) to ``path`` as one file, then run the ONNX checker and
    strict shape inference. Exporter chatter is captured and shown only on failure.

    ``static`` (height, width) fixes the spatial size (it must keep the size rules); the
    batch stays dynamic. ``opset`` is refused if the exporter cannot write exactly that opset.
    """
    import onnx
    import torch

    path = Path(path)
    module = module.eval()
    check_forward(module, spec)
    if static is not None:
        if not spatial_inputs(spec):
            raise ConversionError(
                f"--static {static[0]}x{static[1]}: {spec.name} takes no image input, so it has "
                "no height/width to fix",
                hint="drop --static",
            )
        check_size(spec, static, option="--static")
    try:
        args = example_inputs(module, spec, size=static)
    except ValueError as exc:
        raise ConversionError(f"cannot make example inputs for {spec.name}: {exc}") from None
    captured = io.StringIO()
    quiet = logging.getLogger("torch.onnx")
    previous_level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with (
            contextlib.redirect_stdout(captured),
            contextlib.redirect_stderr(captured),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                input_names=[t.name for t in spec.inputs],
                output_names=[t.name for t in spec.outputs],
                dynamic_shapes=dynamic_shapes(spec, static=static),
                opset_version=opset,
                optimize=True,
                verbose=False,
            )
            fold_parameter_arithmetic(program.model)
            program.save(str(path), external_data=False)
    except Exception as exc:
        detail = " ".join(str(exc).split())[:600]
        raise ConversionError(
            f"torch.onnx.export failed for {spec.name}: {type(exc).__name__}: {detail}",
            hint="run with --debug for the exporter log",
        ) from exc
    finally:
        quiet.setLevel(previous_level)
    try:
        model = onnx.load(str(path))
        check_model(model)
    except ConversionError:
        raise
    except Exception as exc:
        raise ConversionError(f"exported model failed the ONNX checker: {exc}") from exc
    written = model_opset(model)
    if opset is not None and written != opset:
        raise ConversionError(
            f"asked for opset {opset} but the exporter wrote opset {written} (it cannot "
            f"write this model at opset {opset})",
            hint=f"use --opset {written} or leave --opset out",
        )
    return path


FOLD_LIMIT = 1 << 24
"""Largest tensor (elements) that constant folding reads or writes after an export."""


def fold_parameter_arithmetic(model: Any) -> None:
    """Fold the ops that compute only on parameters (a batch norm folded by hand, a weight
    sliced or reshaped in ``forward``, weight norm) into initializers, in place.

    The exporter's own optimizer folds tensors of up to 8,192 elements only, so a 64x64x3x3
    conv weight computed in ``forward`` stayed a run-time computation: ONNX Runtime folds it
    when a session starts, but int8 quantization took it for an activation (per-tensor uint8
    instead of per-channel int8 weights) and TensorRT would see a computed weight."""
    from onnxscript import optimizer

    optimizer.optimize(model, input_size_limit=FOLD_LIMIT, output_size_limit=FOLD_LIMIT)


def check_model(model: Any) -> None:
    """ONNX checker (full) and strict shape inference; raises on any problem."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def model_opset(model: Any) -> int:
    """The default-domain opset of an ONNX model."""
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def slim_onnx(path: str | os.PathLike[str]) -> Path:
    """Simplify the model in place with onnxslim (constant folding, fusions), then re-check.

    The caller verifies the result against PyTorch like any export.
    """
    import onnx

    try:
        import onnxslim
    except ImportError:
        from vetrina.errors import DependencyError

        raise DependencyError(
            "--slim needs onnxslim, which is not installed",
            hint="pip install 'vetrina[convert]'",
        ) from None
    path = Path(path)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            slimmed = onnxslim.slim(onnx.load(str(path)))
        if slimmed is None:
            raise RuntimeError("onnxslim returned no model")
        check_model(slimmed)
    except Exception as exc:
        detail = " ".join(str(exc).split())[:400]
        raise ConversionError(
            f"onnxslim failed: {type(exc).__name__}: {detail}", hint="convert without --slim"
        ) from exc
    onnx.save(slimmed, str(path))
    return path
