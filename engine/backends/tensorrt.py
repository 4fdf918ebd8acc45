"""Native TensorRT backend: a plan from the engine store, run with ``execute_async_v3``.

``vetrina build MODEL.onnx`` puts the plan in the content-addressed engine store
(:mod:`vetrina.converters.engine_store`); ``Model.open(MODEL.onnx, device="trt")`` finds the
plan built from that very file for this GPU and TensorRT version and runs it here. What a
request costs, and what it does not:

* **Execution contexts in a pool** (``contexts``, default 2): one context per concurrent
  request, each with its own non-default stream, so two threads overlap one's copies with the
  other's compute. A request waits for a free context; nothing is shared between two running
  requests. A context switches optimisation profile (``set_optimization_profile_async``) when
  a request's shapes need another one; a shape no profile covers is an error naming the
  profiles, never a resize.
* **Buffer pools**: every context keeps its device buffers and page-locked staging buffers
  and grows them (to the next power of two) only when a larger request arrives, so in steady
  state a request allocates nothing on the device or in pinned memory (``allocations`` counts
  them); the returned numpy arrays are the caller's.
* **Device timing with CUDA events**: host-to-device copies, compute and device-to-host copies
  of every request are timed on the GPU (``device_times``, seconds per step), never as
  enqueue time.
* **CUDA graphs** (``cuda_graphs=True``, for repeated shapes): the first request of a shape
  runs normally, then ``execute_async_v3`` is captured on the context's stream and replayed
  for the next requests of that shape (addresses stay fixed: the inputs are copied into the
  same buffers). A plan that cannot be captured is an error, not a quiet fallback.

TensorRT and CUDA are imported lazily (``tensorrt``, ``cuda.bindings``); without them, or
without a GPU, opening fails with the install hint. The memory operations go through a small
object (:class:`CudaMemory`), which the unit tests replace with host memory to check this
orchestration on machines without a GPU.
"""

from __future__ import annotations

import importlib
import math
import os
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import METADATA_KEY, Contract
from ..errors import DependencyError, DeviceError, ModelError
from ..timing import StepTimes
from . import TensorInfo

DEVICE = "trt"
DEVICE_STEPS = ("h2d", "compute", "d2h")
"""The names :attr:`TrtSession.device_times` uses (host-to-device, compute, device-to-host)."""


class CudaMemory:
    """Device memory, pinned memory, streams, events and graph capture on one GPU, through
    :mod:`vetrina.kernels.gpu` and ``cuda.bindings``."""

    def __init__(self, device: int = 0) -> None:
        from vetrina.kernels import gpu

        reason = gpu.gpu_unavailable_reason()
        if reason is not None:
            raise DeviceError(
                f"device 'trt' needs an NVIDIA GPU, but {reason}",
                hint="use --device cpu, or install 'vetrina[gpu]' on a machine with a GPU",
            )
        self._gpu = gpu
        self.device = device
        self.activate()

    def activate(self) -> None:
        """Make the device's primary context current on the calling thread."""
        self._gpu._Context.get(self.device)

    def device_buffer(self, nbytes: int) -> Any:
        return self._gpu.DeviceBuffer(nbytes, device=self.device)

    def pinned(self, nbytes: int) -> Any:
        return self._gpu.PinnedBuffer(nbytes, device=self.device)

    def stream(self) -> Any:
        return self._gpu.Stream(self.device)

    def event(self) -> Any:
        return self._gpu.Event(self.device)

    def h2d(self, dst: Any, src: np.ndarray, stream: Any) -> None:
        dst.copy_from_host(src, stream=stream)

    def d2h(self, dst: np.ndarray, src: Any, stream: Any) -> None:
        src.copy_to_host(dst, stream=stream)

    def wait(self, stream: Any, event: Any) -> None:
        """Make ``stream`` wait (on the device) for the work before ``event``'s last record
        (an event never recorded: no wait)."""
        from cuda.bindings import runtime

        _cuda_check(
            runtime.cudaStreamWaitEvent(stream_handle(stream), event._obj, 0),
            "cudaStreamWaitEvent",
        )

    def capture(self, stream: Any, enqueue: Callable[[], None]) -> Any:
        """A graph of what ``enqueue`` queues on ``stream`` (instantiated), or raise."""
        from cuda.bindings import runtime

        handle = stream_handle(stream)
        mode = runtime.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        _cuda_check(runtime.cudaStreamBeginCapture(handle, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        except BaseException:
            runtime.cudaStreamEndCapture(handle)
            runtime.cudaGetLastError()  # clear the capture error
            raise
        graph = _cuda_check(runtime.cudaStreamEndCapture(handle), "cudaStreamEndCapture")
        return _cuda_check(runtime.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")

    def launch(self, graph: Any, stream: Any) -> None:
        from cuda.bindings import runtime

        _cuda_check(runtime.cudaGraphLaunch(graph, stream_handle(stream)), "cudaGraphLaunch")


def stream_handle(stream: Any) -> int:
    """The int handle of a stream object (vetrina's Stream and cuda-python's convert with
    ``int()``; other stream wrappers carry ``handle``)."""
    handle = getattr(stream, "handle", None)
    return int(handle) if isinstance(handle, int) else int(stream)


def _cuda_check(result: Any, what: str) -> Any:
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise ModelError(f"{what} failed: {getattr(err, 'name', err)}")
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class ProfileRange:
    """One optimisation profile: per input, the (min, max) shape it accepts."""

    index: int
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]

    def covers(self, shapes: Mapping[str, tuple[int, ...]]) -> bool:
        for name, shape in shapes.items():
            lo, hi = self.shapes[name]
            if len(shape) != len(lo) or not all(
                a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)
            ):
                return False
        return True

    def describe(self) -> str:
        return "; ".join(
            f"{name} {'x'.join(map(str, lo))}..{'x'.join(map(str, hi))}"
            for name, (lo, hi) in self.shapes.items()
        )


class _Slot:
    """One execution context with its stream, timing events, buffers and captured graphs."""

    def __init__(self, context: Any, memory: Any) -> None:
        self.context = context
        self.stream = memory.stream()
        self.events = [memory.event() for _ in range(4)]
        self.done = memory.event()  # recorded after each device-memory request (run_device)
        self.profile = 0  # a new context starts on profile 0
        self.device: dict[str, Any] = {}
        self.host: dict[str, Any] = {}
        self.graphs: dict[tuple[Any, ...], Any] = {}


class TrtSession:
    """A TensorRT plan with a pool of execution contexts, run on host arrays.

    ``plan``: serialized engine bytes; ``contract``: the model contract stored beside it.
    ``contexts``: how many requests may run at once. ``cuda_graphs``: capture and replay
    per shape. ``key``: the store key the plan came from (reported, not checked here).
    ``trt`` / ``memory``: the tensorrt module and the memory object (tests pass fakes).
    Thread-safe: each request holds its own context until it returns.
    """

    def __init__(
        self,
        plan: bytes,
        contract: Contract,
        *,
        device: int = 0,
        contexts: int = 2,
        cuda_graphs: bool = False,
        key: str | None = None,
        trt: Any = None,
        memory: Any = None,
    ) -> None:
        if contexts < 1:
            raise ValueError(f"contexts must be >= 1, got {contexts}")
        if trt is None:
            from vetrina.converters.tensorrt import import_tensorrt

            trt = import_tensorrt()
        self._memory = memory if memory is not None else CudaMemory(device)
        from vetrina.converters.tensorrt import deserialize_plan

        self._trt = trt
        self._logger, self._runtime, self.engine = deserialize_plan(trt, plan)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._inputs = [self._info(n) for n in names if is_input[n]]
        self._outputs = [self._info(n) for n in names if not is_input[n]]
        self.profiles = [
            ProfileRange(p, {t.name: self._profile_shape(t.name, p) for t in self._inputs})
            for p in range(self.engine.num_optimization_profiles)
        ]
        self.contract = contract
        self.key = key
        self.device_index = device
        self.cuda_graphs = cuda_graphs
        self.device_times = StepTimes()
        self.allocations = 0
        self._count_lock = threading.Lock()
        self._metadata = {METADATA_KEY: contract.to_json()}
        self._slots: list[_Slot] = []
        # last in, first out: a lone client keeps reusing one warm context and its buffers
        self._free: queue.LifoQueue[_Slot] = queue.LifoQueue()
        for _ in range(contexts):
            context = self.engine.create_execution_context()
            if context is None:
                raise ModelError(
                    "TensorRT could not create an execution context (out of GPU memory?): "
                    + "; ".join(self._logger.errors[-4:]),
                    hint="use fewer contexts, or free GPU memory",
                )
            slot = _Slot(context, self._memory)
            self._slots.append(slot)
            self._free.put(slot)

    # -- the Session protocol ------------------------------------------------------------------

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
        return DEVICE

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one request on host arrays; returns the outputs in engine order."""
        arrays = self._check_feeds(feeds)
        shapes = {name: arr.shape for name, arr in arrays.items()}
        profile = self._profile_for(shapes)
        slot = self._free.get()
        try:
            self._memory.activate()
            return self._run_on(slot, arrays, profile)
        finally:
            self._free.put(slot)

    def run_device(
        self,
        inputs: Mapping[str, tuple[int, tuple[int, ...]]],
        outputs: Mapping[str, tuple[int, int]],
        stream: Any,
        shapes: Mapping[str, tuple[int, ...]] | None = None,
    ) -> dict[str, tuple[int, ...]]:
        """Queue one request on device memory the caller owns, on the caller's ``stream``, and
        return the output shapes; nothing is copied to or from the host and nothing waits.

        ``inputs``: name -> (device pointer, shape), in the engine's dtype; ``outputs``:
        name -> (device pointer, capacity in bytes); an output larger than its buffer, or of
        another shape than ``shapes`` says (where given), is an error before anything is
        queued. The context is ordered after its previous request on the device
        (``cudaStreamWaitEvent``), so two streams can use the pool at once.
        This is how a pipeline keeps its tensors on the GPU from stage to stage.
        """
        in_shapes = {name: tuple(int(d) for d in shape) for name, (_, shape) in inputs.items()}
        expected = [t.name for t in self._inputs]
        if sorted(in_shapes) != sorted(expected) or sorted(outputs) != sorted(
            t.name for t in self._outputs
        ):
            raise ModelError(
                f"the engine takes inputs {expected} and gives outputs "
                f"{[t.name for t in self._outputs]}; got {sorted(in_shapes)} -> {sorted(outputs)}"
            )
        profile = self._profile_for(in_shapes)
        slot = self._free.get()
        try:
            self._memory.activate()
            ctx = slot.context
            out_shapes = self._prepare(slot, stream, profile, in_shapes)
            result = {}
            for info, shape in zip(self._outputs, out_shapes, strict=True):
                need = math.prod(shape) * info.dtype.itemsize
                if need > outputs[info.name][1]:
                    raise ModelError(
                        f"output {info.name!r} of shape {shape} needs {need} bytes; its buffer "
                        f"has {outputs[info.name][1]}"
                    )
                want = None if shapes is None else shapes.get(info.name)
                if want is not None and tuple(int(d) for d in want) != tuple(shape):
                    raise ModelError(
                        f"output {info.name!r} would be {tuple(shape)}; the caller expects "
                        f"{tuple(want)}"
                    )
                result[info.name] = shape
            for name, (ptr, _) in {**inputs, **outputs}.items():
                if not ctx.set_tensor_address(name, int(ptr)):
                    raise ModelError(f"TensorRT refuses the address of tensor {name!r}")
            if not ctx.execute_async_v3(stream_handle(stream)):
                raise ModelError(
                    "TensorRT execute_async_v3 failed: " + "; ".join(self._logger.errors[-4:])
                )
            slot.done.record(stream)
            return result
        finally:
            self._free.put(slot)

    # -- internals -----------------------------------------------------------------------------

    def _info(self, name: str) -> TensorInfo:
        shape = tuple(int(d) if d >= 0 else None for d in self.engine.get_tensor_shape(name))
        try:
            dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))
        except TypeError:
            raise ModelError(
                f"tensor {name!r} has type {self.engine.get_tensor_dtype(name)}, which numpy "
                "cannot hold",
                hint="export the model with float32/float16 inputs and outputs",
            ) from None
        return TensorInfo(name, shape, dtype)

    def _profile_shape(self, name: str, index: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        lo, _, hi = self.engine.get_tensor_profile_shape(name, index)
        return tuple(int(d) for d in lo), tuple(int(d) for d in hi)

    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        expected = [t.name for t in self._inputs]
        unknown = sorted(set(feeds) - set(expected))
        missing = [n for n in expected if n not in feeds]
        if unknown or missing:
            raise ModelError(
                f"the engine takes inputs {expected}; "
                + (f"missing {missing}" if missing else f"unknown {unknown}")
            )
        arrays = {}
        for info in self._inputs:
            arr = np.asarray(feeds[info.name])
            if arr.dtype != info.dtype:
                raise ModelError(
                    f"input {info.name!r} is {arr.dtype}; the engine takes {info.dtype}",
                    hint="convert the array before running (nothing is cast silently)",
                )
            arrays[info.name] = np.ascontiguousarray(arr)
        return arrays

    def _profile_for(self, shapes: Mapping[str, tuple[int, ...]]) -> int:
        for profile in self.profiles:
            if profile.covers(shapes):
                return profile.index
        given = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in shapes.items())
        ranges = " | ".join(f"profile {p.index}: {p.describe()}" for p in self.profiles)
        raise ModelError(
            f"shape {given} is outside every optimisation profile of the engine ({ranges})",
            hint="rebuild with 'vetrina build MODEL.onnx --profile NAME:MIN,OPT,MAX' covering "
            "it (inputs are never resized to fit)",
        )

    def _prepare(
        self,
        slot: _Slot,
        stream: Any,
        profile: int,
        shapes: Mapping[str, tuple[int, ...]],
    ) -> list[tuple[int, ...]]:
        """Order ``slot`` after its previous request on ``stream``, put it on ``profile``, set
        the input shapes; returns the output shapes (engine order)."""
        ctx = slot.context
        self._memory.wait(stream, slot.done)  # after a run_device request on another stream
        if slot.profile != profile:
            if not ctx.set_optimization_profile_async(profile, stream_handle(stream)):
                raise ModelError(f"TensorRT cannot switch to optimisation profile {profile}")
            slot.profile = profile
            slot.graphs.clear()
        for name, shape in shapes.items():
            if not ctx.set_input_shape(name, tuple(shape)):
                raise ModelError(
                    f"TensorRT refuses input {name!r} of shape {tuple(shape)}: "
                    + "; ".join(self._logger.errors[-2:]),
                    hint="rebuild with a --profile that covers it",
                )
        unresolved = ctx.infer_shapes()
        if unresolved:
            raise ModelError(f"TensorRT cannot infer the shapes of {list(unresolved)}")
        return [tuple(int(d) for d in ctx.get_tensor_shape(t.name)) for t in self._outputs]

    def _ensure(self, slot: _Slot, name: str, nbytes: int) -> bool:
        """Give ``slot`` buffers of at least ``nbytes`` for ``name``; True if they moved."""
        held = slot.device.get(name)
        if held is not None and held.nbytes >= nbytes:
            return False
        from vetrina.kernels.gpu import grown_capacity

        size = grown_capacity(nbytes)
        for pool in (slot.device, slot.host):
            old = pool.pop(name, None)
            if old is not None:
                old.close()
        slot.device[name] = self._memory.device_buffer(size)
        slot.host[name] = self._memory.pinned(size)
        with self._count_lock:
            self.allocations += 2
        return True

    def _run_on(self, slot: _Slot, arrays: dict[str, np.ndarray], profile: int) -> list[np.ndarray]:
        ctx, stream, memory = slot.context, slot.stream, self._memory
        out_shapes = self._prepare(slot, stream, profile, {n: a.shape for n, a in arrays.items()})
        moved = False
        for name, arr in arrays.items():
            moved |= self._ensure(slot, name, arr.nbytes)
        for info, shape in zip(self._outputs, out_shapes, strict=True):
            moved |= self._ensure(slot, info.name, math.prod(shape) * info.dtype.itemsize)
        if moved:
            slot.graphs.clear()
        for name, buf in slot.device.items():
            if not ctx.set_tensor_address(name, buf.ptr):
                raise ModelError(f"TensorRT refuses the address of tensor {name!r}")
        staged = []
        for name, arr in arrays.items():
            view = slot.host[name].view(arr.shape, arr.dtype)
            np.copyto(view, arr)
            staged.append((slot.device[name], view))
        start, copied, computed, done = slot.events
        start.record(stream)
        for dst, src in staged:
            memory.h2d(dst, src, stream)
        copied.record(stream)
        self._execute(slot, (profile, tuple(arrays[n].shape for n in arrays)))
        computed.record(stream)
        results = []
        for info, shape in zip(self._outputs, out_shapes, strict=True):
            view = slot.host[info.name].view(shape, info.dtype)
            memory.d2h(view, slot.device[info.name], stream)
            results.append(view)
        done.record(stream)
        stream.synchronize()
        self.device_times.add("h2d", copied.elapsed_ms(start) / 1e3)
        self.device_times.add("compute", computed.elapsed_ms(copied) / 1e3)
        self.device_times.add("d2h", done.elapsed_ms(computed) / 1e3)
        return [np.array(view) for view in results]  # the staging buffers stay with the slot

    def _enqueue(self, slot: _Slot) -> None:
        if not slot.context.execute_async_v3(stream_handle(slot.stream)):
            raise ModelError(
                "TensorRT execute_async_v3 failed: " + "; ".join(self._logger.errors[-4:])
            )

    def _execute(self, slot: _Slot, shapes: tuple[Any, ...]) -> None:
        if not self.cuda_graphs:
            self._enqueue(slot)
            return
        graph = slot.graphs.get(shapes)
        if graph is not None:
            self._memory.launch(graph, slot.stream)
            return
        # first request of this shape: run it normally (TensorRT's own set-up happens outside
        # the capture, as trtexec does), then capture the same enqueue for the next ones
        self._enqueue(slot)
        try:
            slot.graphs[shapes] = self._memory.capture(slot.stream, lambda: self._enqueue(slot))
        except ModelError as exc:
            raise ModelError(
                f"CUDA graph capture of this engine failed ({exc})",
                hint="open the model without cuda_graphs",
            ) from None

    def close(self) -> None:
        """Free every context's buffers (the contexts go with the session)."""
        for slot in self._slots:
            for pool in (slot.device, slot.host):
                for buf in pool.values():
                    buf.close()
                pool.clear()
            slot.graphs.clear()


def open_engine(
    onnx_path: str | os.PathLike[str],
    *,
    device: int = 0,
    store: Any = None,
    environment: Any = None,
    **options: Any,
) -> TrtSession:
    """The stored plan built from the ONNX file at ``onnx_path`` for this GPU and TensorRT,
    as a :class:`TrtSession` (``options``: its keyword arguments). With several builds of the
    file (other profiles or builder options), the newest is used; none is an error naming
    ``vetrina build``. ``environment``: detected (TensorRT version, GPU) unless given."""
    from vetrina.converters.engine_store import EngineStore
    from vetrina.converters.tensorrt import INSTALL_HINT, detect_environment

    path = Path(onnx_path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if environment is None:
        try:
            importlib.import_module("tensorrt")
        except ImportError as exc:
            raise DependencyError(
                f"device 'trt' runs TensorRT engines and needs the tensorrt package ({exc})",
                hint=INSTALL_HINT,
            ) from None
        environment = detect_environment(device)  # TensorRT >= 10 and a GPU, or a clear error
    store = store if isinstance(store, EngineStore) else EngineStore(store)
    stored = store.newest_for(onnx_sha256(path), environment)
    return TrtSession(stored.plan, stored.contract, device=device, key=stored.key, **options)


def onnx_sha256(path: Path) -> str:
    """The store's hash of an ONNX file (external weights folded in when the onnx package can
    list them; vetrina's exports are single files)."""
    from vetrina.converters.tensorrt import _file_sha, model_sha256

    try:
        import onnx
    except ImportError:
        return _file_sha(path)
    return model_sha256(path, onnx.load(str(path), load_external_data=False))
