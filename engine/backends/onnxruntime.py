"""ONNX Runtime backend: the embedded CPU default, and the CUDA / TensorRT execution providers
when onnxruntime-gpu is installed. A requested provider that does not come up is an error.

On the GPU providers a session also runs on device memory the caller owns
(:meth:`OrtSession.run_device`, through ONNX Runtime's IO binding), so a pipeline's GPU data
path keeps its tensors on the device with ONNX Runtime as it does with native TensorRT."""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import DependencyError, DeviceError, ModelError
from . import TensorInfo

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

BINDING_DEVICES = {"cpu": "cpu", "cuda": "cuda", "tensorrt": "cuda"}
"""Where :meth:`OrtSession.run_device` binds its buffers, per device (IO binding's
``device_type``)."""

_ORT_TYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(uint8)": np.dtype(np.uint8),
}


def import_onnxruntime() -> Any:
    """Import onnxruntime, or explain which extra installs it and why only one build may exist."""
    installed = [d for d in ("onnxruntime", "onnxruntime-gpu") if _has_distribution(d)]
    if len(installed) > 1:
        raise DependencyError(
            "both onnxruntime and onnxruntime-gpu are installed; they overwrite each other and "
            "the GPU providers vanish",
            hint="pip uninstall -y onnxruntime onnxruntime-gpu, then pip install 'vetrina[cpu]' "
            "or 'vetrina[gpu]'",
        )
    try:
        return importlib.import_module("onnxruntime")
    except ImportError as exc:
        raise DependencyError(
            f"ONNX Runtime is not installed ({exc})",
            hint="pip install 'vetrina[cpu]' (or 'vetrina[gpu]' on NVIDIA machines; never both)",
        ) from None


def _has_distribution(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


class OrtSession:
    """One ONNX Runtime inference session on one device.

    ``threads`` sets intra-op threads (None: ONNX Runtime's default, one per physical core).
    ``spinning`` lets idle intra-op threads spin-wait for work (ONNX Runtime's default, but
    off here): it helps one model called back to back, but vetrina runs its own kernels
    between calls, and in a chain other sessions run, and spinning threads take the cores
    from both (measured on the 4-stage chain: 632 ms with spinning, 449 ms without).
    Thread-safe: ONNX Runtime allows concurrent ``run`` calls on one session.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str = "cpu",
        threads: int | None = None,
        spinning: bool = False,
    ) -> None:
        if device not in PROVIDERS:
            raise DeviceError(f"unknown device {device!r}; choose one of {', '.join(PROVIDERS)}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        ort = import_onnxruntime()
        provider = PROVIDERS[device]
        available = ort.get_available_providers()
        if provider not in available:
            raise DeviceError(
                f"device {device!r} needs ONNX Runtime's {provider}, which this installation "
                f"lacks (available: {', '.join(available)})",
                hint="install 'vetrina[gpu]' on a machine with an NVIDIA GPU, or use --device cpu",
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [provider] if device == "cpu" else [provider, "CPUExecutionProvider"]
        try:
            # enable_fallback=0: a provider that fails to initialise raises instead of
            # silently running on the CPU.
            self._session = ort.InferenceSession(
                os.fspath(path), sess_options=options, providers=providers, enable_fallback=0
            )
        except Exception as exc:  # ORT raises its own exception types, not importable portably
            raise ModelError(
                f"{path}: ONNX Runtime cannot load the model ({_one_line(exc)})"
            ) from None
        active = self._session.get_providers()
        if not active or active[0] != provider:
            raise DeviceError(f"{path}: asked for {provider} but ONNX Runtime activated {active}")
        self._device = device
        self._binding_device = BINDING_DEVICES[device]
        self._inputs = [_info(i) for i in self._session.get_inputs()]
        self._outputs = [_info(o) for o in self._session.get_outputs()]
        self._metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    @property
    def inputs(self) -> list[TensorInfo]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        return self._outputs

    @property
    def metadata(self) -> dict[str, str]:
        return self._metadata

    @property
    def device(self) -> str:
        return self._device

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run on host arrays; returns the outputs in model order."""
        return self._session.run(None, feeds)

    def run_device(
        self,
        inputs: Mapping[str, tuple[int, tuple[int, ...]]],
        outputs: Mapping[str, tuple[int, int]],
        stream: Any,
        shapes: Mapping[str, tuple[int, ...]] | None = None,
    ) -> dict[str, tuple[int, ...]]:
        """Run on device memory the caller owns (IO binding; :meth:`TrtSession.run_device`'s
        protocol): ``inputs`` name -> (device pointer, shape), ``outputs`` name -> (device
        pointer, capacity in bytes) at the output ``shapes`` the caller expects (ONNX Runtime
        writes bound outputs in place only at a known shape; a model that produces another
        shape is an error). ONNX Runtime runs on its own CUDA stream: the caller's ``stream``
        is synchronised first (its queued work may write the inputs), and the run returns
        once the outputs are written. Returns the output shapes."""
        expected = [t.name for t in self._inputs]
        names = [t.name for t in self._outputs]
        if sorted(inputs) != sorted(expected) or sorted(outputs) != sorted(names):
            raise ModelError(
                f"the model takes inputs {expected} and gives outputs {names}; got "
                f"{sorted(inputs)} -> {sorted(outputs)}"
            )
        missing = [n for n in names if shapes is None or n not in shapes]
        if missing:
            raise ModelError(
                f"run_device on ONNX Runtime needs the shapes of outputs {missing} (it binds "
                "them in place)"
            )
        assert shapes is not None
        binding = self._session.io_binding()
        where = self._binding_device
        for info in self._inputs:
            ptr, shape = inputs[info.name]
            binding.bind_input(info.name, where, 0, info.dtype, list(shape), int(ptr))
        result = {}
        for info in self._outputs:
            ptr, capacity = outputs[info.name]
            shape = tuple(int(d) for d in shapes[info.name])
            need = math.prod(shape) * info.dtype.itemsize
            if need > capacity:
                raise ModelError(
                    f"output {info.name!r} of shape {shape} needs {need} bytes; its buffer has "
                    f"{capacity}"
                )
            binding.bind_output(info.name, where, 0, info.dtype, list(shape), int(ptr))
            result[info.name] = shape
        synchronize = getattr(stream, "synchronize", None)
        if synchronize is not None:
            synchronize()
        try:
            self._session.run_with_iobinding(binding)
        except Exception as exc:  # ORT's own exception types
            raise ModelError(f"ONNX Runtime failed on device memory: {_one_line(exc)}") from None
        return result


def _info(node: Any) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else None for d in node.shape)
    dtype = _ORT_TYPES.get(node.type)
    if dtype is None:
        raise ModelError(f"tensor {node.name!r} has unsupported type {node.type}")
    return TensorInfo(node.name, shape, dtype)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] if text else type(exc).__name__
