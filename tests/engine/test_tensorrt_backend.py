"""The native TensorRT backend's own logic, without TensorRT or a GPU.

:class:`~vetrina.backends.tensorrt.TrtSession` is driven here by a fake ``tensorrt`` runtime
that follows the documented 10.x / 11.x runtime API (api-facts.md §1.8-1.10: profiles,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) and by host memory in
place of CUDA memory: the fake engine computes ``2 * x + 1`` from the addresses it is given,
so a wrong address, a stale buffer or a context used by two threads at once shows in the
results. Pinned here: profile choice and the error for uncovered shapes, buffer reuse (no
allocation in steady state), one context per concurrent request, CUDA-event timing, graph
capture and replay, and finding the newest stored plan for an ONNX file. The same session
runs on a real GPU in tests/converters/test_tensorrt_gpu.py.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vetrina.backends.tensorrt import TrtSession, open_engine
from vetrina.contract import Contract, TensorSpec
from vetrina.converters.engine_store import (
    BuildEnvironment,
    EngineKey,
    EngineMismatchError,
    EngineNotFoundError,
    EngineStore,
)
from vetrina.errors import DependencyError, ModelError

ENV = BuildEnvironment("10.9.0.34", "NVIDIA H100 80GB HBM3", (9, 0))
PLAN = b"FAKEPLAN"
# two optimisation profiles of the input "image" (N, 3, H, W): small images, then large ones
PROFILES = [
    ((1, 3, 8, 8), (1, 3, 32, 32), (4, 3, 64, 64)),
    ((1, 3, 65, 65), (1, 3, 128, 128), (2, 3, 256, 256)),
]


# -- host memory standing in for CUDA memory -------------------------------------------------


class HostBuffer:
    def __init__(self, nbytes: int) -> None:
        self.array = np.zeros(nbytes, dtype=np.uint8)
        self.nbytes = nbytes
        self.ptr = self.array.ctypes.data
        self.closed = False

    def view(self, shape, dtype) -> np.ndarray:
        dt = np.dtype(dtype)
        n = int(np.prod(shape)) * dt.itemsize
        return self.array[:n].view(dt).reshape(shape)

    def close(self) -> None:
        self.closed = True


class HostEvent:
    def record(self, stream) -> None:
        self.t = time.perf_counter()

    def elapsed_ms(self, start: HostEvent) -> float:
        return (self.t - start.t) * 1e3


class HostStream:
    count = 0

    def __init__(self) -> None:
        HostStream.count += 1
        self.handle = HostStream.count

    def __int__(self) -> int:
        return self.handle

    def synchronize(self) -> None:  # host copies and the fake compute run at once
        pass


class HostMemory:
    """The CudaMemory interface on host memory; graph capture records the enqueued work."""

    def __init__(self, *, capture_fails: bool = False) -> None:
        self.buffers: list[HostBuffer] = []
        self.capture_fails = capture_fails
        self.capturing: list | None = None
        self.launches = 0
        self.waits = 0

    def activate(self) -> None:
        pass

    def device_buffer(self, nbytes: int) -> HostBuffer:
        self.buffers.append(HostBuffer(nbytes))
        return self.buffers[-1]

    pinned = device_buffer

    def stream(self) -> HostStream:
        return HostStream()

    def event(self) -> HostEvent:
        return HostEvent()

    def h2d(self, dst: HostBuffer, src: np.ndarray, stream) -> None:
        assert not dst.closed and src.nbytes <= dst.nbytes
        ctypes.memmove(dst.ptr, src.ctypes.data, src.nbytes)

    def d2h(self, dst: np.ndarray, src: HostBuffer, stream) -> None:
        assert not src.closed and dst.nbytes <= src.nbytes
        ctypes.memmove(dst.ctypes.data, src.ptr, dst.nbytes)

    def capture(self, stream, enqueue):
        if self.capture_fails:
            raise ModelError("cudaStreamEndCapture failed: cudaErrorStreamCaptureInvalidated")
        self.capturing = []
        try:
            enqueue()  # the fake context records instead of computing
            return self.capturing
        finally:
            self.capturing = None

    def wait(self, stream, event) -> None:  # host copies and the fake compute are synchronous
        self.waits += 1

    def launch(self, graph, stream) -> None:
        self.launches += 1
        for op in graph:
            op()


# -- a fake tensorrt runtime (documented API; the engine computes 2 * x + 1) -----------------


def affine_graph(a: float, b: float) -> FakeGraph:
    """The default fake engine: "image" (N, 3, H, W) -> "out" = a * image + b."""

    def compute(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"out": x["image"] * np.float32(a) + np.float32(b)}

    return FakeGraph({"image": 3}, {"out": 3}, compute)


class FakeGraph:
    """What a fake engine computes: inputs and outputs, name -> the channels of an (N, C, H, W)
    image (N, H and W those of the first image input) or a tuple of the fixed dimensions after
    N (``(64,)`` for a latent, ``()`` for a label index, ``(3, 8, 8)`` for a generated image);
    ``dtypes``: an input's numpy dtype (default float32); ``compute``: numpy, inputs -> outputs;
    ``scale``: output images are ``scale`` times the input's height and width.
    """

    def __init__(
        self, inputs: dict, outputs: dict, compute, dtypes: dict | None = None, scale: int = 1
    ) -> None:
        self.inputs, self.outputs, self.compute = inputs, outputs, compute
        self.scale = scale
        self.channels = {**inputs, **outputs}
        self.dtypes = dtypes or {}
        self.first = next(iter(inputs))
        self.first_image = next((n for n, c in inputs.items() if isinstance(c, int)), None)

    def dims(self, name: str, batch, image) -> tuple:
        """The shape of ``name`` given N (``batch``) and an image shape for (H, W)."""
        spec = self.channels[name]
        if isinstance(spec, tuple):
            return (batch, *spec)
        if name in self.outputs and image[2] > 0:
            return (batch, spec, image[2] * self.scale, image[3] * self.scale)
        return (batch, spec, *image[2:])

    def dtype(self, name: str) -> np.dtype:
        return np.dtype(self.dtypes.get(name, np.float32))


def make_fake_trt(
    memory: HostMemory,
    *,
    profiles=PROFILES,
    out_dtype=np.float32,
    affine=(2.0, 1.0),
    graph: FakeGraph | None = None,
):
    """A fake ``tensorrt`` module whose engines run ``graph`` (default: ``affine`` on one
    image) on the host memory behind the addresses they are given. ``profiles`` are the first
    input's; every other tensor gets the same with its own channel count."""
    graph = graph or affine_graph(*affine)
    trt = types.ModuleType("tensorrt")
    trt.__version__ = ENV.tensorrt_version
    trt.calls = {"executes": 0, "profile_switches": [], "max_busy": 0}
    busy = {"n": 0}
    lock = threading.Lock()

    def profile_of(name: str, index: int):
        return tuple(graph.dims(name, s[0], s) for s in profiles[index])

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self) -> None:
            pass

    class TensorIOMode:
        INPUT, OUTPUT = "input", "output"

    def nptype(dt):
        if dt == "bf16":
            raise TypeError("bf16 has no numpy type")
        return dt

    class Context:
        def __init__(self) -> None:
            self.profile = 0
            self.shapes: dict = {}
            self.addresses: dict = {}
            self.in_use = False

        def set_optimization_profile_async(self, index: int, stream: int) -> bool:
            trt.calls["profile_switches"].append(index)
            self.profile = index
            return True

        def set_input_shape(self, name: str, shape) -> bool:
            lo, _, hi = profile_of(name, self.profile)
            ok = len(shape) == len(lo) and all(
                a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)
            )
            if ok:
                self.shapes[name] = tuple(shape)
            return ok

        def infer_shapes(self) -> list:
            return [] if all(n in self.shapes for n in graph.inputs) else list(graph.outputs)

        def get_tensor_shape(self, name: str) -> tuple:
            if name in graph.inputs:
                return self.shapes[name]
            image = self.shapes[graph.first_image] if graph.first_image else None
            return graph.dims(name, self.shapes[graph.first][0], image)

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            self.addresses[name] = ptr
            return True

        def execute_async_v3(self, stream: int) -> bool:
            shapes = {name: self.get_tensor_shape(name) for name in graph.channels}
            addresses = dict(self.addresses)

            def compute() -> None:
                x = {}
                for name in graph.inputs:
                    dt = graph.dtype(name)
                    n = int(np.prod(shapes[name])) * dt.itemsize
                    raw = np.ctypeslib.as_array((ctypes.c_ubyte * n).from_address(addresses[name]))
                    x[name] = raw.view(dt).reshape(shapes[name])
                for name, value in graph.compute(x).items():
                    assert value.shape == shapes[name], (name, value.shape, shapes[name])
                    n = int(np.prod(shapes[name])) * np.dtype(out_dtype).itemsize
                    y = np.ctypeslib.as_array((ctypes.c_ubyte * n).from_address(addresses[name]))
                    y.view(out_dtype)[:] = value.ravel().astype(out_dtype)

            if memory.capturing is not None:
                memory.capturing.append(compute)  # captured, not run
                return True
            assert not self.in_use, "one context used by two requests at once"
            self.in_use = True
            with lock:
                busy["n"] += 1
                trt.calls["max_busy"] = max(trt.calls["max_busy"], busy["n"])
                trt.calls["executes"] += 1
            try:
                time.sleep(0.002)  # long enough for concurrent requests to overlap
                compute()
            finally:
                with lock:
                    busy["n"] -= 1
                self.in_use = False
            return True

    class Engine:
        num_io_tensors = len(graph.channels)
        num_optimization_profiles = len(profiles)

        def get_tensor_name(self, i: int) -> str:
            return list(graph.channels)[i]

        def get_tensor_mode(self, name: str) -> str:
            return TensorIOMode.INPUT if name in graph.inputs else TensorIOMode.OUTPUT

        def get_tensor_shape(self, name: str) -> tuple:
            return graph.dims(name, -1, (-1, -1, -1, -1))

        def get_tensor_dtype(self, name: str):
            return graph.dtype(name) if name in graph.inputs else out_dtype

        def get_tensor_profile_shape(self, name: str, index: int):
            return profile_of(name, index)

        def create_execution_context(self) -> Context:
            return Context()

    class Runtime:
        def __init__(self, logger) -> None:
            pass

        def deserialize_cuda_engine(self, plan: bytes):
            return Engine() if plan.startswith(PLAN) else None

    trt.ILogger, trt.TensorIOMode, trt.nptype, trt.Runtime = ILogger, TensorIOMode, nptype, Runtime
    return trt


def _contract() -> Contract:
    spec = TensorSpec(name="image", range=(0.0, 1.0))
    return Contract(
        role="editor", inputs=(spec,), outputs=(TensorSpec(name="out", range=(0.0, 1.0)),)
    )


def _session(memory: HostMemory | None = None, **kw) -> tuple[TrtSession, object, HostMemory]:
    memory = memory or HostMemory()
    trt = make_fake_trt(memory, **{k: kw.pop(k) for k in ("profiles", "out_dtype") if k in kw})
    return TrtSession(PLAN, _contract(), trt=trt, memory=memory, **kw), trt, memory


def _x(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


# -- tests ------------------------------------------------------------------------------------


def test_runs_and_reports_like_a_session():
    session, _, _ = _session()
    assert session.device == "trt"
    assert [(t.name, t.shape, t.dtype) for t in session.inputs] == [
        ("image", (None, 3, None, None), np.dtype(np.float32))
    ]
    assert [t.name for t in session.outputs] == ["out"]
    assert Contract.from_json(session.metadata["vetrina.contract"]).role == "editor"
    for shape in [(1, 3, 16, 16), (2, 3, 64, 48), (1, 3, 8, 9)]:
        x = _x(shape)
        (y,) = session.run({"image": x})
        assert y.shape == shape and y.dtype == np.float32
        np.testing.assert_array_equal(y, 2 * x + 1)


def test_steady_state_allocates_nothing():
    session, _, memory = _session()
    session.run({"image": _x((2, 3, 64, 64))})
    allocated = session.allocations
    assert allocated == 4  # device + pinned, for the input and for the output
    for seed in range(30):
        shape = (1 + seed % 2, 3, 16 + seed, 64 - seed)
        x = _x(shape, seed)
        np.testing.assert_array_equal(session.run({"image": x})[0], 2 * x + 1)
    assert session.allocations == allocated and len(memory.buffers) == allocated
    session.run({"image": _x((4, 3, 64, 64))})  # larger: the buffers grow, once
    assert session.allocations == allocated + 4
    assert sum(b.closed for b in memory.buffers) == 4  # the smaller ones were freed


def test_returned_arrays_are_not_the_staging_buffers():
    session, _, _ = _session(contexts=1)
    first = session.run({"image": _x((1, 3, 8, 8), 1)})[0]
    kept = first.copy()
    session.run({"image": _x((1, 3, 8, 8), 2)})
    np.testing.assert_array_equal(first, kept)


def test_profiles_are_chosen_and_uncovered_shapes_refused():
    session, trt, _ = _session(contexts=1)
    x = _x((1, 3, 100, 120))  # only profile 1 covers it
    np.testing.assert_array_equal(session.run({"image": x})[0], 2 * x + 1)
    assert trt.calls["profile_switches"] == [1]
    session.run({"image": _x((1, 3, 100, 100))})  # still profile 1: no switch
    assert trt.calls["profile_switches"] == [1]
    session.run({"image": _x((1, 3, 32, 32))})
    assert trt.calls["profile_switches"] == [1, 0]
    with pytest.raises(ModelError, match="outside every optimisation profile") as err:
        session.run({"image": _x((3, 3, 128, 128))})  # batch 3 > profile 1's max 2
    assert "profile 0: image 1x3x8x8..4x3x64x64" in str(err.value)
    assert "never resized" in str(err.value)
    x = _x((1, 3, 8, 8))  # the refused request held no context
    np.testing.assert_array_equal(session.run({"image": x})[0], 2 * x + 1)


def test_bad_feeds_are_errors():
    session, _, _ = _session()
    with pytest.raises(ModelError, match=r"missing \['image'\]"):
        session.run({})
    with pytest.raises(ModelError, match=r"unknown \['mask'\]"):
        session.run({"image": _x((1, 3, 8, 8)), "mask": _x((1, 1, 8, 8))})
    with pytest.raises(ModelError, match="is float64; the engine takes float32"):
        session.run({"image": _x((1, 3, 8, 8)).astype(np.float64)})


def test_one_context_per_concurrent_request():
    session, trt, _ = _session(contexts=2)
    inputs = [_x((1, 3, 32, 32), s) for s in range(24)]
    with ThreadPoolExecutor(6) as pool:
        outs = list(pool.map(lambda x: session.run({"image": x})[0], inputs))
    for x, y in zip(inputs, outs, strict=True):
        np.testing.assert_array_equal(y, 2 * x + 1)
    assert trt.calls["max_busy"] == 2  # two at once, never more (and never one context twice)
    assert session.allocations == 8  # each context holds its own buffers


def test_device_times_come_from_events():
    session, _, _ = _session()
    for _ in range(3):
        session.run({"image": _x((1, 3, 16, 16))})
    times = session.device_times
    assert list(times.seconds) == ["h2d", "compute", "d2h"]
    assert times.calls == {"h2d": 3, "compute": 3, "d2h": 3}
    assert times.seconds["compute"] >= 3 * 0.002  # the fake engine's compute time


def test_cuda_graphs_capture_once_per_shape_and_replay():
    session, trt, memory = _session(contexts=1, cuda_graphs=True)
    for seed in range(4):
        x = _x((1, 3, 16, 16), seed)  # new data each time, copied into the same buffers
        np.testing.assert_array_equal(session.run({"image": x})[0], 2 * x + 1)
    assert trt.calls["executes"] == 1 and memory.launches == 3
    x = _x((4, 3, 64, 64))  # a larger shape moves the buffers: run, recapture
    np.testing.assert_array_equal(session.run({"image": x})[0], 2 * x + 1)
    x = _x((1, 3, 16, 16), 9)  # the old graph was dropped with the old buffers
    np.testing.assert_array_equal(session.run({"image": x})[0], 2 * x + 1)
    x = _x((4, 3, 64, 64), 10)
    np.testing.assert_array_equal(session.run({"image": x})[0], 2 * x + 1)
    assert trt.calls["executes"] == 3 and memory.launches == 4


def test_failed_capture_is_an_error():
    session, _, _ = _session(HostMemory(capture_fails=True), cuda_graphs=True)
    with pytest.raises(ModelError, match=r"CUDA graph capture of this engine failed.*without"):
        session.run({"image": _x((1, 3, 8, 8))})


def test_unloadable_plans_and_types():
    memory = HostMemory()
    with pytest.raises(ModelError, match=r"cannot deserialize the plan.*vetrina build"):
        TrtSession(b"garbage", _contract(), trt=make_fake_trt(memory), memory=memory)
    with pytest.raises(ModelError, match="numpy cannot hold"):
        _session(out_dtype="bf16")
    with pytest.raises(ValueError, match="contexts"):
        _session(contexts=0)


# -- finding the plan of an ONNX file in the store --------------------------------------------


def _put(store: EngineStore, sha: str, env: BuildEnvironment, profiles, created: str) -> str:
    key = EngineKey(sha, tuple(profiles), env, {"precision": "auto"})
    store.put(key, PLAN + created.encode(), _contract(), {"created": created})
    return key.digest


def test_newest_plan_for_a_model(tmp_path):
    store = EngineStore(tmp_path)
    sha = "ab" * 32
    with pytest.raises(EngineNotFoundError, match="vetrina build"):
        store.newest_for(sha, ENV)
    _put(store, sha, ENV, [{"image": "a"}], "2026-11-01T00:00:00+00:00")
    newest = _put(store, sha, ENV, [{"image": "b"}], "2026-11-02T00:00:00+00:00")
    _put(store, "cd" * 32, ENV, [], "2026-11-03T00:00:00+00:00")  # another model
    other_gpu = BuildEnvironment(ENV.tensorrt_version, "NVIDIA A100", (8, 0))
    _put(store, sha, other_gpu, [], "2026-11-04T00:00:00+00:00")
    assert store.newest_for(sha, ENV).key == newest
    with pytest.raises(EngineMismatchError, match=r"sm_80 NVIDIA A100.*different TensorRT version"):
        store.newest_for(sha, BuildEnvironment("11.4.0.106", "NVIDIA A100", (8, 0)))


def test_open_engine_runs_the_stored_plan(tmp_path, small_model):
    import hashlib

    store = EngineStore(tmp_path / "store")
    with pytest.raises(EngineNotFoundError, match="vetrina build"):
        open_engine(small_model, store=store, environment=ENV)
    with pytest.raises(ModelError, match="no such model file"):
        open_engine(tmp_path / "missing.onnx", store=store, environment=ENV)
    sha = hashlib.sha256(small_model.read_bytes()).hexdigest()  # a single-file ONNX
    key = _put(store, sha, ENV, [], "2026-11-01T00:00:00+00:00")
    memory = HostMemory()
    session = open_engine(
        small_model, store=store, environment=ENV, trt=make_fake_trt(memory), memory=memory
    )
    assert session.key == key
    x = _x((1, 3, 8, 8))
    np.testing.assert_array_equal(session.run({"image": x})[0], 2 * x + 1)


def test_trt_device_without_tensorrt_is_an_error(tmp_path, monkeypatch, small_model):
    from vetrina.model import Model

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails like an absent package
    with pytest.raises(DependencyError, match="vetrina\\[gpu\\]"):
        Model.open(small_model, device="trt")


def test_bench_reports_the_device_steps(tmp_path):
    from vetrina.bench import _device_times
    from vetrina.model import Model

    session, _, _ = _session()
    model = Model(session, _contract(), tmp_path / "m.onnx")
    shared, on_start = _device_times(model)
    session.run({"image": _x((1, 3, 8, 8))})  # warm-up: dropped at the start
    on_start()
    for _ in range(2):
        session.run({"image": _x((1, 3, 8, 8))})
    times = shared()
    assert list(times.seconds) == ["device h2d", "device compute", "device d2h"]
    assert times.calls["device compute"] == 2


# -- device memory in, device memory out (the pipeline's GPU data path) ----------------------


def test_run_device_reads_and_writes_the_callers_buffers():
    session, trt, memory = _session(contexts=1)
    x = _x((2, 3, 16, 24))
    src, dst = HostBuffer(x.nbytes), HostBuffer(x.nbytes)
    src.view(x.shape, np.float32)[...] = x
    stream = HostStream()
    shapes = session.run_device(
        {"image": (src.ptr, x.shape)}, {"out": (dst.ptr, dst.nbytes)}, stream
    )
    assert shapes == {"out": x.shape}
    np.testing.assert_array_equal(dst.view(x.shape, np.float32), 2 * x + 1)
    assert session.allocations == 0  # the caller's memory, nothing of the session's
    assert memory.waits == 1  # ordered after the context's previous device request
    y = _x((1, 3, 100, 100))  # another profile: switched on the caller's stream
    big = HostBuffer(y.nbytes)
    big.view(y.shape, np.float32)[...] = y
    session.run_device({"image": (big.ptr, y.shape)}, {"out": (big.ptr, big.nbytes)}, stream)
    assert trt.calls["profile_switches"] == [1]


def test_run_device_refuses_small_outputs_and_wrong_names():
    session, _, _ = _session()
    x = _x((1, 3, 16, 16))
    src = HostBuffer(x.nbytes)
    with pytest.raises(ModelError, match="needs 3072 bytes; its buffer has 3000"):
        session.run_device({"image": (src.ptr, x.shape)}, {"out": (src.ptr, 3000)}, HostStream())
    with pytest.raises(ModelError, match="takes inputs"):
        session.run_device({"x": (src.ptr, x.shape)}, {"out": (src.ptr, 3072)}, HostStream())
    with pytest.raises(ModelError, match="outside every optimisation profile"):
        session.run_device(
            {"image": (src.ptr, (9, 3, 16, 16))}, {"out": (src.ptr, 10**6)}, HostStream()
        )
    with pytest.raises(ModelError, match=r"'out' would be \(1, 3, 16, 16\); the caller expects"):
        session.run_device(
            {"image": (src.ptr, x.shape)}, {"out": (src.ptr, 3072)}, HostStream(),
            {"out": (1, 3, 32, 8)},
        )  # fmt: skip
    np.testing.assert_array_equal(session.run({"image": x})[0], 2 * x + 1)  # the pool is whole
