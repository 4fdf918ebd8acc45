"""PyTorch module -> one self-contained, checked ONNX file (torch.onnx dynamo exporter)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from vetrina.errors import ConversionError
from vetrina.models.architectures import ArchitectureSpec

MAX_SIDE = 16384
MAX_BATCH = 1024


def example_input(
    spec: ArchitectureSpec, batch: int = 2, size: tuple[int, int] | None = None
) -> Any:
    """A deterministic example batch that satisfies the architecture's size rules.

    Batch 2 and distinct height/width keep torch.export from specialising those axes.
    """
    import torch

    step = spec.spatial.multiple_of
    h, w = size or (
        max(spec.spatial.min_size, 4 * step) * 2,
        max(spec.spatial.min_size, 4 * step) * 3,
    )
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, h, w, generator=generator)


def dynamic_shapes(spec: ArchitectureSpec, arg_name: str) -> dict[str, dict[int, Any]]:
    """Dynamic batch/height/width, with sides constrained to the multiple-of rule."""
    from torch.export import Dim

    step = spec.spatial.multiple_of
    low = max(1, -(-spec.spatial.min_size // step))
    high = (spec.spatial.max_size or MAX_SIDE) // step

    def side(name: str) -> Any:
        dim = Dim(name if step == 1 else f"{name}_div{step}", min=low, max=high)
        return dim if step == 1 else step * dim

    return {arg_name: {0: Dim("batch", min=1, max=MAX_BATCH), 2: side("height"), 3: side("width")}}


def export_onnx(
    module: Any,
    spec: ArchitectureSpec,
    path: str | os.PathLike[str],
    *,
    opset: int | None = None,
) -> Path:
    """Export ``module`` (eval mode) to ``path`` as one file, then run the ONNX checker and
    strict shape inference. Exporter chatter is captured and shown only on failure."""
    import inspect

    import onnx
    import torch

    path = Path(path)
    module = module.eval()
    arg_name = next(iter(inspect.signature(module.forward).parameters))
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
                (example_input(spec),),
                dynamo=True,
                input_names=[t.name for t in spec.inputs],
                output_names=[t.name for t in spec.outputs],
                dynamic_shapes=dynamic_shapes(spec, arg_name),
                opset_version=opset,
                optimize=True,
                verbose=False,
            )
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
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:
        raise ConversionError(f"exported model failed the ONNX checker: {exc}") from exc
    return path
