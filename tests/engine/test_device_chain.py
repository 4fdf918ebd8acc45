"""The pipeline's GPU data path (vetrina.device_chain) without a GPU.

The CUDA kernels run as their host emulation (the .cu sources compiled as C++, driven by
GpuKernels' own packing: tests/kernels/test_cuda_compile.py) and TensorRT is the fake runtime
of test_tensorrt_backend.py, here computing ``a * x + b`` from the device addresses it is given.
The reference is the CPU path: the same pipeline with ONNX Runtime running ONNX models that
compute the same affine maps. Two stages with different contracts (range [0, 1] RGB, then
[-1, 1] BGR) exercise the hand-off (adapt + clamp); the results must equal the CPU path's
to the last bit, alpha included, and a lane's buffers must be reused from the second batch on.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_tensorrt_backend import PLAN, FakeGraph, HostMemory, make_fake_trt

from vetrina.backends.tensorrt import TrtSession
from vetrina.contract import METADATA_KEY, Contract, SpatialRules, TensorSpec
from vetrina.errors import InputError
from vetrina.pipeline import Pipeline
from vetrina.pipeline_spec import parse_spec
from vetrina.timing import StepTimes

onnx = pytest.importorskip("onnx")

# stage 1: RGB in [0, 1] -> 1.5 x - 0.25 (leaves [0, 1]: the hand-off clamps); stage 2: BGR in
# [-1, 1] -> 0.5 x + 0.5 (back into [0, 1])
STAGES = [
    ("one", (1.5, -0.25), TensorSpec("image", range=(0.0, 1.0), channels="RGB")),
    ("two", (0.5, 0.5), TensorSpec("image", range=(-1.0, 1.0), channels="BGR")),
]
PROFILES = [((1, 3, 8, 8), (1, 3, 64, 64), (4, 3, 256, 256))]


class HostEvent:
    count = 0

    def record(self, stream) -> None:
        HostEvent.count += 1
        self.at = HostEvent.count

    def elapsed_ms(self, start) -> float:
        return float(self.at - start.at)  # order of the records, not time


@pytest.fixture(scope="module")
def emulated_gpu(tmp_path_factory):
    from kernels.test_cuda_compile import EmuBackend, build_emulation

    from vetrina.kernels import gpu

    libs, names = build_emulation(tmp_path_factory.mktemp("emu-chain"))
    return lambda: gpu.GpuKernels._with_backend(EmuBackend(libs, names))


def _affine_model(path, a: float, b: float, spec: TensorSpec):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["image", "a"], ["ax"]),
            helper.make_node("Add", ["ax", "b"], ["out"]),
        ],
        "affine",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [
            numpy_helper.from_array(np.array(a, np.float32), "a"),
            numpy_helper.from_array(np.array(b, np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out = TensorSpec("out", range=spec.range, channels=spec.channels)
    contract = Contract("editor", (spec,), (out,), spatial=SpatialRules(multiple_of=8))
    helper.set_model_props(model, {METADATA_KEY: contract.to_json()})
    onnx.save(model, str(path))
    return path


@pytest.fixture
def pipelines(tmp_path, monkeypatch, emulated_gpu):
    """(cpu pipeline, device pipeline, the fake TensorRT modules) over the same two models."""
    from vetrina import device_chain
    from vetrina.backends import tensorrt as backend

    paths, fakes = {}, {}
    for name, (a, b), spec in STAGES:
        paths[name] = _affine_model(tmp_path / f"{name}.onnx", a, b, spec)
        fakes[paths[name].resolve()] = (a, b)
    raw = {
        "name": "two-stages",
        "stages": [{"edit": {"model": str(paths[n])}} for n, _, _ in STAGES],
        "output": {"format": "png"},
    }
    cpu = Pipeline(parse_spec(raw, origin="test"), device="cpu", tile_side=None)
    memories: list[HostMemory] = []

    def open_engine(path, **_):
        memory = HostMemory()
        memories.append(memory)
        trt = make_fake_trt(memory, profiles=PROFILES, affine=fakes[path.resolve()])
        contract = cpu.models[len(memories) - 1].contract
        return TrtSession(PLAN, contract, trt=trt, memory=memory)

    monkeypatch.setattr(backend, "open_engine", open_engine)
    monkeypatch.setattr(device_chain, "open_gpu", lambda device=0: (emulated_gpu(), HostEvent))
    dev = Pipeline(parse_spec(raw, origin="test"), device="trt", tile_side=None)
    return cpu, dev


def _photos(seed: int, sizes, channels=3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, channels), dtype=np.uint8) for h, w in sizes]


def test_device_path_equals_the_cpu_path(pipelines):
    cpu, dev = pipelines
    assert cpu.device_chain is None and dev.device_chain is not None
    photos = _photos(0, [(40, 56), (40, 56), (37, 61)])
    for order in ("RGB", "BGR"):
        want = cpu.run(photos, order=order)
        got = dev.run(photos, order=order)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape and g.dtype == np.uint8
            np.testing.assert_array_equal(g, w)
    # the hand-off clamped (stage 1 leaves [0, 1]) and changed the order: not a no-op
    assert any((w == 0).any() or (w == 255).any() for w in want)


def test_alpha_and_grey_photos(pipelines):
    cpu, dev = pipelines
    grey = _photos(2, [(24, 40)])[0][:, :, 0]
    photos = [*_photos(1, [(32, 48)], channels=4), grey]
    for g, w in zip(dev.run(photos), cpu.run(photos), strict=True):
        np.testing.assert_array_equal(g, w)
    assert dev.run(photos)[0].shape == (32, 48, 4)


def test_steady_state_allocates_nothing_and_times_each_step(pipelines):
    _, dev = pipelines
    chain = dev.device_chain
    dev.run(_photos(3, [(64, 64)] * 2))
    allocated = chain.allocations
    assert allocated > 0
    dev.times = StepTimes()
    for seed in range(4):
        dev.run(_photos(4 + seed, [(64, 64), (48, 40)]))
    assert chain.allocations == allocated
    assert list(dev.times.seconds) == [
        "upload",
        "preprocess",
        "1 edit:one",
        "hand-off",
        "2 edit:two",
        "postprocess",
        "download",
    ]


def test_pipelines_the_device_path_does_not_take_stay_on_the_host(tmp_path, monkeypatch):
    from vetrina import device_chain

    called = []
    monkeypatch.setattr(device_chain, "open_gpu", lambda device=0: called.append(1))
    path = _affine_model(tmp_path / "m.onnx", 1.0, 0.0, STAGES[0][2])
    raw = {"name": "cpu-only", "stages": [{"edit": {"model": str(path)}}]}
    assert Pipeline(parse_spec(raw, origin="t"), device="cpu").device_chain is None
    assert not called


# -- on a real GPU (skipped without one): the same chain, the CUDA kernels for real ---------


def _gpu_reason() -> str | None:
    try:
        from vetrina.kernels import gpu
    except ImportError as exc:  # pragma: no cover
        return str(exc)
    return gpu.gpu_unavailable_reason()


class GpuAffineSession:
    """A device-memory 'model' for GPU machines without TensorRT: ``a * x + b`` by the CUDA
    adapt kernel (separate multiply and add, as ONNX Runtime's Mul and Add), run on the
    caller's buffers and stream like :meth:`TrtSession.run_device`."""

    device = "trt"

    def __init__(self, contract: Contract, affine: tuple[float, float]) -> None:
        from vetrina.backends import TensorInfo
        from vetrina.kernels import gpu

        self._gpu = gpu.GpuKernels(0)
        self.contract = contract
        self.affine = affine
        f32 = np.dtype(np.float32)
        self.inputs = [TensorInfo("image", (None, 3, None, None), f32)]
        self.outputs = [TensorInfo("out", (None, 3, None, None), f32)]
        self.metadata = {METADATA_KEY: contract.to_json()}

    def run(self, feeds):
        x = feeds["image"]
        return [x * np.float32(self.affine[0]) + np.float32(self.affine[1])]

    def run_device(self, inputs, outputs, stream, shapes=None):
        (ptr, shape) = inputs["image"]
        out_ptr, capacity = outputs["out"]
        assert int(np.prod(shape)) * 4 <= capacity
        assert shapes is None or tuple(shapes["out"]) == tuple(shape)
        handle = getattr(stream, "handle", stream)
        a, b = self.affine
        self._gpu.adapt_async(ptr, tuple(shape), out_ptr, scale=a, offset=b, stream=handle)
        return {"out": tuple(shape)}


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_reason() is not None, reason=f"needs a CUDA GPU: {_gpu_reason()}")
def test_device_path_on_the_gpu_equals_the_cpu_path(tmp_path, monkeypatch):
    from vetrina.backends import tensorrt as backend

    paths, affines = [], {}
    for name, (a, b), spec in STAGES:
        paths.append(_affine_model(tmp_path / f"{name}.onnx", a, b, spec))
        affines[paths[-1].resolve()] = ((a, b), spec)
    raw = {"name": "gpu", "stages": [{"edit": {"model": str(p)}} for p in paths]}
    cpu = Pipeline(parse_spec(raw, origin="test"), device="cpu", tile_side=None)

    def open_engine(path, **_):
        (a, b), _spec = affines[path.resolve()]
        contract = cpu.models[[p.resolve() for p in paths].index(path.resolve())].contract
        return GpuAffineSession(contract, (a, b))

    monkeypatch.setattr(backend, "open_engine", open_engine)
    dev = Pipeline(parse_spec(raw, origin="test"), device="trt", tile_side=None)
    photos = _photos(5, [(64, 96), (64, 96), (50, 70)]) + _photos(6, [(40, 40)], channels=4)
    for order in ("RGB", "BGR"):
        for g, w in zip(dev.run(photos, order=order), cpu.run(photos, order=order), strict=True):
            np.testing.assert_array_equal(g, w)
    allocated = dev.device_chain.allocations
    dev.times = StepTimes()
    dev.run(photos)
    assert dev.device_chain.allocations == allocated
    assert all(v > 0 for v in dev.times.seconds.values())  # CUDA-event times of every step


# -- a clean stage (detector -> defect mask -> inpainter) on the device path ----------------

# detector: BGR in [-1, 1] (so the stage adapts and clamps its input) -> mask = 0.5 x[:, 0] + 0.5
# in [0, 1]; inpainter: RGB image in [0, 1] and a mask in [-1, 1] -> image + 0.25 mask
DETECTOR = TensorSpec("image", range=(-1.0, 1.0), channels="BGR")
PROB = TensorSpec("prob", semantic="mask", channels="L", range=(0.0, 1.0))
IN_IMAGE = TensorSpec("image", range=(0.0, 1.0), channels="RGB")
IN_MASK = TensorSpec("holes", semantic="mask", channels="L", range=(-1.0, 1.0))
RESTORED = TensorSpec("restored", range=(0.0, 1.0), channels="RGB")


def _save(path, nodes, inputs, outputs, consts, contract):
    from onnx import TensorProto, helper, numpy_helper

    def info(spec, c):
        return helper.make_tensor_value_info(spec.name, TensorProto.FLOAT, ["n", c, "h", "w"])

    graph = helper.make_graph(
        nodes,
        path.stem,
        [info(s, c) for s, c in inputs],
        [info(s, c) for s, c in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {METADATA_KEY: contract.to_json()})
    onnx.save(model, str(path))
    return path


def _clean_models(tmp_path):
    from onnx import helper

    rules = SpatialRules(multiple_of=8)
    detector = _save(
        tmp_path / "detector.onnx",
        [
            helper.make_node("Slice", ["image", "zero", "one", "one"], ["first"]),
            helper.make_node("Mul", ["first", "half"], ["scaled"]),
            helper.make_node("Add", ["scaled", "half"], ["prob"]),
        ],
        [(DETECTOR, 3)],
        [(PROB, 1)],
        {"zero": np.array([0]), "one": np.array([1]), "half": np.array(0.5, np.float32)},
        Contract("detector", (DETECTOR,), (PROB,), spatial=rules),
    )
    inpainter = _save(
        tmp_path / "inpainter.onnx",
        [
            helper.make_node("Mul", ["holes", "quarter"], ["shift"]),
            helper.make_node("Add", ["image", "shift"], ["restored"]),
        ],
        [(IN_IMAGE, 3), (IN_MASK, 1)],
        [(RESTORED, 3)],
        {"quarter": np.array(0.25, np.float32)},
        Contract("inpainter", (IN_IMAGE, IN_MASK), (RESTORED,), spatial=rules),
    )
    return detector, inpainter


def _clean_graphs():
    half, quarter = np.float32(0.5), np.float32(0.25)
    detector = FakeGraph(
        {"image": 3}, {"prob": 1}, lambda x: {"prob": x["image"][:, 0:1] * half + half}
    )
    inpainter = FakeGraph(
        {"image": 3, "holes": 1},
        {"restored": 3},
        lambda x: {"restored": x["image"] + x["holes"] * quarter},
    )
    return detector, inpainter


def _edit_and_clean(tmp_path) -> tuple[dict[str, str], dict]:
    """The edit model 'one' and the clean pair: their paths (``one``, ``detector``,
    ``inpainter``) and the fake engines by resolved path."""
    from test_tensorrt_backend import affine_graph

    name, (a, b), spec = STAGES[0]
    first = _affine_model(tmp_path / f"{name}.onnx", a, b, spec)
    detector, inpainter = _clean_models(tmp_path)
    det_graph, inp_graph = _clean_graphs()
    paths = {"one": str(first), "detector": str(detector), "inpainter": str(inpainter)}
    graphs = {
        first.resolve(): affine_graph(a, b),
        detector.resolve(): det_graph,
        inpainter.resolve(): inp_graph,
    }
    return paths, graphs


def _fake_trt_pair(raw, graphs, monkeypatch, emulated_gpu, *, profiles=PROFILES, **options):
    """(cpu pipeline, device pipeline) of the spec ``raw``: the device one on fake TensorRT
    engines computing ``graphs`` (by resolved model path) and the emulated GPU kernels."""
    from vetrina import device_chain
    from vetrina.backends import tensorrt as backend

    cpu = Pipeline(parse_spec(raw, origin="test"), device="cpu", **options)
    contracts = {m.path.resolve(): m.contract for m in cpu.models}

    def open_engine(path, **_):
        memory = HostMemory()
        trt = make_fake_trt(memory, profiles=profiles, graph=graphs[path.resolve()])
        return TrtSession(PLAN, contracts[path.resolve()], trt=trt, memory=memory)

    monkeypatch.setattr(backend, "open_engine", open_engine)
    monkeypatch.setattr(device_chain, "open_gpu", lambda device=0: (emulated_gpu(), HostEvent))
    return cpu, Pipeline(parse_spec(raw, origin="test"), device="trt", **options)


@pytest.fixture
def clean_pipelines(tmp_path, monkeypatch, emulated_gpu):
    """(cpu pipeline, device pipeline) of edit:one -> clean (dilate 2) over the same models."""
    paths, graphs = _edit_and_clean(tmp_path)
    raw = {
        "name": "edit-clean",
        "stages": [
            {"edit": {"model": paths["one"]}},
            {
                "clean": {
                    "detector": paths["detector"],
                    "inpainter": paths["inpainter"],
                    "dilate": 2,
                }
            },
        ],
        "output": {"format": "png"},
    }
    return _fake_trt_pair(raw, graphs, monkeypatch, emulated_gpu, tile_side=None)


def _spotty(seed: int, sizes, channels=3) -> list[np.ndarray]:
    """Dark photos with a few white pixels: the defects the detector finds."""
    photos = []
    for k, img in enumerate(_photos(seed, sizes, channels)):
        img[..., :3] //= 3
        rng = np.random.default_rng(seed * 100 + k)
        ys, xs = rng.integers(0, img.shape[0], 6), rng.integers(0, img.shape[1], 6)
        img[ys, xs, :3] = 255
        photos.append(img)
    return photos


def test_clean_stage_on_the_device_path_equals_the_cpu_path(clean_pipelines):
    cpu, dev = clean_pipelines
    assert dev.device_chain is not None
    photos = _spotty(7, [(40, 56), (40, 56)]) + _spotty(8, [(33, 47)], channels=4)
    for order in ("RGB", "BGR"):
        want = cpu.run(photos, order=order)
        for g, w in zip(dev.run(photos, order=order), want, strict=True):
            assert g.shape == w.shape
            np.testing.assert_array_equal(g, w)
    # not a no-op: the spots are defects, the rest is not, and the growth enlarges them
    clean = cpu.stages[1]
    batch = cpu.handoffs[1].apply(cpu.stages[0].run(cpu._entry(photos[:1], (40, 56), "RGB")))
    grown = (clean.detect(batch) > 0).sum()
    clean.dilate = 0
    spots = (clean.detect(batch) > 0).sum()
    assert 0 < spots <= 6 < grown < batch[0, 0].size / 2


def test_clean_stage_steps_and_buffers(clean_pipelines):
    _, dev = clean_pipelines
    chain = dev.device_chain
    dev.run(_spotty(10, [(64, 64)] * 2))
    allocated = chain.allocations
    dev.times = StepTimes()
    for seed in range(3):
        dev.run(_spotty(11 + seed, [(64, 64), (48, 40)]))
    assert chain.allocations == allocated
    assert list(dev.times.seconds) == [
        "upload",
        "preprocess",
        "1 edit:one",
        "hand-off",
        "2 clean:detector+inpainter",
        "postprocess",
        "download",
    ]


# -- generation: generator -> edit -> clean, from latents to uint8 on the device ------------

Z = TensorSpec("z", semantic="z", layout="NC", channels="", range=None)
CATEGORY = TensorSpec(
    "category", semantic="label", layout="N", channels="", range=None, dtype="int64",
    labels=("mug", "lamp", "chair"),
)  # fmt: skip
GENERATED = TensorSpec("picture", range=(-1.0, 1.0), channels="RGB")


def _generator(tmp_path):
    """picture = reshape(z, (N, 3, 8, 8)) / 2 + category / 8 (in [-1, 1] for |z| <= 1)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Reshape", ["z", "image_shape"], ["grid"]),
        helper.make_node("Mul", ["grid", "half"], ["scaled"]),
        helper.make_node("Cast", ["category"], ["index"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["index", "per_image"], ["index4"]),
        helper.make_node("Mul", ["index4", "eighth"], ["shift"]),
        helper.make_node("Add", ["scaled", "shift"], ["picture"]),
    ]
    consts = {
        "image_shape": np.array([-1, 3, 8, 8]),
        "per_image": np.array([-1, 1, 1, 1]),
        "half": np.array(0.5, np.float32),
        "eighth": np.array(0.125, np.float32),
    }
    graph = helper.make_graph(
        nodes,
        "generator",
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 192]),
            helper.make_tensor_value_info("category", TensorProto.INT64, ["n"]),
        ],
        [helper.make_tensor_value_info("picture", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    contract = Contract(
        "generator", (Z, CATEGORY), (GENERATED,), spatial=SpatialRules(min_size=8, max_size=8)
    )
    helper.set_model_props(model, {METADATA_KEY: contract.to_json()})
    path = tmp_path / "generator.onnx"
    onnx.save(model, str(path))

    def compute(x):
        n = x["z"].shape[0]
        index = x["category"].astype(np.float32).reshape(n, 1, 1, 1)
        return {"picture": x["z"].reshape(n, 3, 8, 8) * np.float32(0.5) + index * np.float32(0.125)}

    graph = FakeGraph({"z": (192,), "category": ()}, {"picture": (3, 8, 8)}, compute,
                      dtypes={"category": np.int64})  # fmt: skip
    return path, graph


@pytest.fixture
def generation_pipelines(tmp_path, monkeypatch, emulated_gpu):
    """(cpu pipeline, device pipeline) of generate -> edit:one -> clean (dilate 1)."""
    paths, graphs = _edit_and_clean(tmp_path)
    generator, gen_graph = _generator(tmp_path)
    graphs[generator.resolve()] = gen_graph
    raw = {
        "name": "generate-edit-clean",
        "input": "generate",
        "stages": [
            {"generate": {"model": str(generator)}},
            {"edit": {"model": paths["one"]}},
            {
                "clean": {
                    "detector": paths["detector"],
                    "inpainter": paths["inpainter"],
                    "dilate": 1,
                }
            },
        ],
        "output": {"format": "png"},
    }
    profiles = [((1, 3, 8, 8), (1, 3, 8, 8), (4, 3, 64, 64))]
    return _fake_trt_pair(raw, graphs, monkeypatch, emulated_gpu, profiles=profiles, tile_side=None)


def test_generation_on_the_device_path_equals_the_cpu_path(generation_pipelines):
    from vetrina.stages import GenerationRequest

    cpu, dev = generation_pipelines
    assert dev.device_chain is not None and dev.device_chain.generated_size == (8, 8)
    requests = [GenerationRequest(seed, {"category": c}) for seed, c in
                [(0, "mug"), (1, "lamp"), (2, "chair"), (2, "mug")]]  # fmt: skip
    for order in ("RGB", "BGR"):
        want = cpu.generate(requests, output_order=order)
        got = dev.generate(requests, output_order=order)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape == (8, 8, 3)
            np.testing.assert_array_equal(g, w)
    assert not np.array_equal(want[2], want[3])  # the label reaches the generator
    dev.times = StepTimes()
    dev.generate(requests[:2])
    assert list(dev.times.seconds) == [  # "hand-off" sums both hand-offs
        "upload",
        "1 generate:generator",
        "hand-off",
        "2 edit:one",
        "3 clean:detector+inpainter",
        "postprocess",
        "download",
    ]
    with pytest.raises(InputError, match="category"):
        dev.generate([GenerationRequest(0, {"category": "sofa"})])


# -- tiles: a large photo split, chained and blended on the device --------------------------


def _upscaler(tmp_path):
    """Nearest-neighbour x2 (ONNX Resize) in [0, 1] RGB, and its fake engine."""
    from onnx import helper

    spec = TensorSpec("image", range=(0.0, 1.0), channels="RGB")
    out = TensorSpec("big", range=(0.0, 1.0), channels="RGB")
    path = _save(
        tmp_path / "upscaler.onnx",
        [helper.make_node("Resize", ["image", "", "scales"], ["big"], mode="nearest")],
        [(spec, 3)],
        [(out, 3)],
        {"scales": np.array([1.0, 1.0, 2.0, 2.0], np.float32)},
        Contract("upscaler", (spec,), (out,), spatial=SpatialRules(multiple_of=8, scale=2)),
    )
    graph = FakeGraph({"image": 3}, {"big": 3},
                      lambda x: {"big": x["image"].repeat(2, axis=2).repeat(2, axis=3)},
                      scale=2)  # fmt: skip
    return path, graph


@pytest.mark.parametrize("batch_size", [1, 3])
def test_tiled_photos_on_the_device_path_equal_the_cpu_path(
    tmp_path, monkeypatch, emulated_gpu, batch_size
):
    from test_tensorrt_backend import affine_graph

    upscaler, up_graph = _upscaler(tmp_path)
    paths, graphs = [], {upscaler.resolve(): up_graph}
    for name, (a, b), spec in STAGES:
        paths.append(_affine_model(tmp_path / f"{name}.onnx", a, b, spec))
        graphs[paths[-1].resolve()] = affine_graph(a, b)
    raw = {
        "name": "tiled",
        "stages": [{"edit": {"model": str(p)}} for p in (paths[0], upscaler, paths[1])],
        "output": {"format": "png"},
    }
    options = {"tile_side": 32, "tile_overlap": 8, "batch_size": batch_size}
    cpu, dev = _fake_trt_pair(raw, graphs, monkeypatch, emulated_gpu, **options)
    photos = _photos(12, [(70, 90)]) + _photos(13, [(56, 41)], channels=4)
    sizes = [cpu.working_size(*p.shape[:2]) for p in photos]
    assert all(max(s) > 32 for s in sizes)  # both are tiled
    assert len(cpu._tile_plan(sizes[0])) >= 6
    for order in ("RGB", "BGR"):
        want = cpu.run(photos, order=order)
        got = dev.run(photos, order=order)
        for g, w, p in zip(got, want, photos, strict=True):
            assert g.shape == w.shape == (2 * p.shape[0], 2 * p.shape[1], p.shape[2])
            np.testing.assert_array_equal(g, w)
    dev.times = StepTimes()
    dev.run(photos[:1])
    steps = list(dev.times.seconds)
    assert steps[:3] == ["upload", "preprocess", "tile split"]
    assert steps[-3:] == ["tile blend", "postprocess", "download"]
    assert "2 edit:upscaler" in steps


# -- a matte stage: its model on the device, each alpha made there too ---------------------

MATTE_IN = TensorSpec("image", range=(0.0, 1.0), channels="RGB")
MATTE_OUT = TensorSpec("alpha", semantic="mask", channels="L", range=(0.0, 1.0))


def _matting(tmp_path, side_output: bool = False):
    """alpha = the green channel (and, with ``side_output``, a second output like U²-Net's
    side mattes, the red channel, which the pipeline ignores); and its fake engine."""
    from onnx import helper

    nodes = [helper.make_node("Slice", ["image", "one", "two", "one"], ["alpha"])]
    outputs = [(MATTE_OUT, 1)]
    if side_output:
        nodes.append(helper.make_node("Slice", ["image", "zero", "one", "one"], ["side"]))
        outputs.append((TensorSpec("side", semantic="mask", channels="L"), 1))
    path = _save(
        tmp_path / ("matting-side.onnx" if side_output else "matting.onnx"),
        nodes,
        [(MATTE_IN, 3)],
        outputs,
        {"zero": np.array([0]), "one": np.array([1]), "two": np.array([2])},
        Contract("matting", (MATTE_IN,), (MATTE_OUT,), spatial=SpatialRules(multiple_of=8)),
    )
    graph = FakeGraph({"image": 3}, {"alpha": 1}, lambda x: {"alpha": x["image"][:, 1:2].copy()})
    return path, graph


def _products(seed: int, sizes, channels=3) -> list[np.ndarray]:
    """Grey noisy backgrounds with a green square product (and a few white specks)."""
    out = []
    for k, img in enumerate(_spotty(seed, sizes, channels)):
        img[..., :3] = img[..., :3] // 2 + 40
        h, w = img.shape[:2]
        img[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3, :3] = (30, 220 - 10 * k, 60)
        out.append(img)
    return out


@pytest.mark.parametrize(
    ("stages", "output", "matte"),
    [
        ([], {"format": "png"}, {"size": [32, 32], "refine": 2, "threshold": [0.3, 0.7]}),
        ([], {"format": "png"}, {"size": [24, 40], "resize": "lanczos", "stretch": True}),
        (
            ["one", "clean"],
            {"background": "white", "crop": True, "canvas": 96, "format": "png"},
            {"size": [32, 32], "refine": 2},
        ),
    ],
    ids=["cutout", "lanczos-stretch", "matte-edit-clean-white"],
)
def test_matte_pipelines_on_the_device_path_equal_the_cpu_path(
    tmp_path, monkeypatch, emulated_gpu, stages, output, matte
):
    matting, matte_graph = _matting(tmp_path)
    paths, graphs = _edit_and_clean(tmp_path)
    graphs[matting.resolve()] = matte_graph
    entries = {
        "one": {"edit": {"model": paths["one"]}},
        "clean": {"clean": {"detector": paths["detector"], "inpainter": paths["inpainter"]}},
    }
    raw = {
        "name": "matte-test",
        "stages": [{"matte": {"model": str(matting), **matte}}] + [entries[s] for s in stages],
        "output": output,
    }
    cpu, dev = _fake_trt_pair(raw, graphs, monkeypatch, emulated_gpu, tile_side=48)
    assert dev.device_chain is not None and dev.device_chain.matte is not None
    # the last photo is above the tile size: with stages after the matte it is tiled
    photos = _products(20, [(40, 56), (40, 56)]) + _products(21, [(36, 30), (64, 72)], channels=4)
    launches = dev.device_chain.gpu._backend.launches
    for order in ("RGB", "BGR"):
        launches.clear()
        want = cpu.run(photos, order=order)
        got = dev.run(photos, order=order)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape
            np.testing.assert_array_equal(g, w)
        # each photo's alpha was made on the device: resized (and guided-filtered) there
        kernels = [name for name, _, _ in launches]
        guided = "vt_alpha_prepare" if matte.get("refine") else "vt_matte_alpha"
        assert kernels.count(guided) == len(photos)
    alpha = want[0][..., 3] if want[0].shape[-1] == 4 else None
    if alpha is not None:  # the product is found: opaque inside, clear in the corners
        h, w = alpha.shape
        assert alpha[h // 2, w // 2] >= 200 and alpha[0, 0] <= 60
    dev.times = StepTimes()
    dev.run(photos[:1])
    steps = list(dev.times.seconds)
    assert steps[:4] == ["upload", "matte preprocess", "1 matte:matting", "matte download"]
    if stages:
        assert "2 edit:one" in steps and "3 clean:detector+inpainter" in steps
        dev.times = StepTimes()
        dev.run(photos[3:])
        assert "tile split" in dev.times.seconds and "tile blend" in dev.times.seconds


class GpuGreenMatteSession:
    """The matting stand-in of :func:`_matting` on a GPU without TensorRT: alpha = the green
    plane of each image, copied device to device on the caller's stream."""

    device = "trt"

    def __init__(self, contract: Contract) -> None:
        from vetrina.backends import TensorInfo
        from vetrina.kernels import gpu

        self._gpu = gpu.GpuKernels(0)
        self.contract = contract
        f32 = np.dtype(np.float32)
        self.inputs = [TensorInfo("image", (None, 3, None, None), f32)]
        self.outputs = [TensorInfo("alpha", (None, 1, None, None), f32)]
        self.metadata = {METADATA_KEY: contract.to_json()}

    def run(self, feeds):
        return [feeds["image"][:, 1:2].copy()]

    def run_device(self, inputs, outputs, stream, shapes=None):
        ptr, (n, c, h, w) = inputs["image"]
        out_ptr, capacity = outputs["alpha"]
        plane = h * w * 4
        assert c == 3 and n * plane <= capacity
        handle = getattr(stream, "handle", stream)
        for i in range(n):
            self._gpu._backend.d2d(out_ptr + i * plane, ptr + (3 * i + 1) * plane, plane, handle)
        return {"alpha": (n, 1, h, w)}


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_reason() is not None, reason=f"needs a CUDA GPU: {_gpu_reason()}")
def test_matte_pipeline_on_the_gpu_equals_the_cpu_path(tmp_path, monkeypatch):
    """The matte's model on the device, then each alpha made there by the CUDA alpha kernels
    (resize, guided filter, ramp): the CPU path's RGBA bit for bit."""
    from vetrina.backends import tensorrt as backend

    matting, _ = _matting(tmp_path)
    matte = {"size": [32, 32], "refine": 2, "threshold": [0.3, 0.7]}
    raw = {"name": "gpu-cutout", "stages": [{"matte": {"model": str(matting), **matte}}]}
    cpu = Pipeline(parse_spec(raw, origin="test"), device="cpu")
    contract = cpu.models[0].contract
    monkeypatch.setattr(backend, "open_engine", lambda path, **_: GpuGreenMatteSession(contract))
    dev = Pipeline(parse_spec(raw, origin="test"), device="trt")
    assert dev.device_chain is not None and dev.device_chain.alpha is not None
    photos = _products(30, [(40, 56), (96, 128)]) + _products(31, [(36, 30)], channels=4)
    for order in ("RGB", "BGR"):
        for g, w in zip(dev.run(photos, order=order), cpu.run(photos, order=order), strict=True):
            np.testing.assert_array_equal(g, w)


# -- ONNX Runtime through IO binding: the same data path with real sessions ------------------


@pytest.fixture
def ort_on_device(monkeypatch, emulated_gpu):
    """Device 'cuda' as ONNX Runtime's CPU provider bound to the emulated device memory (host
    memory here): the GPU data path then runs real ONNX Runtime sessions through
    ``OrtSession.run_device`` (IO binding), no fake anywhere but the GPU kernels' emulation."""
    from vetrina import device_chain
    from vetrina.backends import onnxruntime as ort_backend

    monkeypatch.setitem(ort_backend.PROVIDERS, "cuda", "CPUExecutionProvider")
    monkeypatch.setitem(ort_backend.BINDING_DEVICES, "cuda", "cpu")
    monkeypatch.setattr(device_chain, "open_gpu", lambda device=0: (emulated_gpu(), HostEvent))


def _ort_pipeline_specs(tmp_path) -> dict[str, dict]:
    name, (a, b), spec = STAGES[0]
    one = str(_affine_model(tmp_path / f"{name}.onnx", a, b, spec))
    name, (a, b), spec = STAGES[1]
    two = str(_affine_model(tmp_path / f"{name}.onnx", a, b, spec))
    detector, inpainter = (str(p) for p in _clean_models(tmp_path))
    clean = {"clean": {"detector": detector, "inpainter": inpainter, "dilate": 1}}
    matting = str(_matting(tmp_path)[0])
    with_side = str(_matting(tmp_path, side_output=True)[0])
    upscaler = str(_upscaler(tmp_path)[0])
    generator = str(_generator(tmp_path)[0])
    png = {"format": "png"}
    return {
        "edit-edit": {"stages": [{"edit": one}, {"edit": two}], "output": png},
        "edit-up-clean-tiled": {
            "stages": [{"edit": one}, {"edit": upscaler}, clean],
            "output": png,
        },
        "matte-edit-clean-white": {
            "stages": [
                {"matte": {"model": matting, "size": [32, 32], "refine": 2}},
                {"edit": one},
                clean,
            ],
            "output": {"background": "white", "crop": True, "canvas": 80, "format": "png"},
        },
        "cutout-side-output": {
            "stages": [{"matte": {"model": with_side, "size": [32, 32], "refine": 2}}],
            "output": png,
        },
        "generate-edit-clean": {
            "input": "generate",
            "stages": [{"generate": generator}, {"edit": one}, clean],
            "output": png,
        },
    }


@pytest.mark.filterwarnings("ignore:Duplicate provider")
@pytest.mark.parametrize(
    "which",
    [
        "edit-edit",
        "edit-up-clean-tiled",
        "matte-edit-clean-white",
        "cutout-side-output",
        "generate-edit-clean",
    ],
)
def test_onnxruntime_on_device_memory_equals_the_cpu_path(tmp_path, ort_on_device, which):
    from vetrina.stages import GenerationRequest

    raw = {"name": which, **_ort_pipeline_specs(tmp_path)[which]}
    cpu = Pipeline(parse_spec(raw, origin="test"), device="cpu", tile_side=48, batch_size=2)
    dev = Pipeline(parse_spec(raw, origin="test"), device="cuda", tile_side=48, batch_size=2)
    assert dev.device_chain is not None
    assert all(type(m.session).__name__ == "OrtSession" for m in dev.models)
    if which.startswith("generate"):
        requests = [GenerationRequest(s, {"category": c}) for s, c in [(3, "mug"), (4, "chair")]]
        pairs = [(dev.generate(requests), cpu.generate(requests))]
    else:
        photos = _products(30, [(40, 56), (40, 56), (64, 72)])
        photos += _products(31, [(36, 30)], channels=4)
        pairs = [(dev.run(photos, order=o), cpu.run(photos, order=o)) for o in ("RGB", "BGR")]
    for got, want in pairs:
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape
            np.testing.assert_array_equal(g, w)


def test_onnxruntime_run_device_checks_its_arguments(tmp_path, ort_on_device):
    from vetrina.backends.onnxruntime import OrtSession
    from vetrina.errors import ModelError

    _, (a, b), spec = STAGES[0]
    session = OrtSession(_affine_model(tmp_path / "m.onnx", a, b, spec))
    x = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    y = np.zeros_like(x)
    feeds = {"image": (x.ctypes.data, x.shape)}
    shapes = {"out": x.shape}
    assert session.run_device(feeds, {"out": (y.ctypes.data, y.nbytes)}, None, shapes) == shapes
    np.testing.assert_array_equal(y, session.run({"image": x})[0])
    with pytest.raises(ModelError, match=r"needs the shapes of outputs \['out'\]"):
        session.run_device(feeds, {"out": (y.ctypes.data, 768)}, None)
    with pytest.raises(ModelError, match=r"needs 768 bytes; its buffer has 100"):
        session.run_device(feeds, {"out": (y.ctypes.data, 100)}, None, shapes)
    with pytest.raises(ModelError, match=r"takes inputs \['image'\]"):
        session.run_device({"x": feeds["image"]}, {"out": (y.ctypes.data, 768)}, None, shapes)
    with pytest.raises(ModelError, match=r"failed on device memory: .*shape"):
        session.run_device(feeds, {"out": (y.ctypes.data, 768)}, None, {"out": (1, 3, 4, 16)})


@pytest.mark.filterwarnings("ignore:Duplicate provider")
@pytest.mark.parametrize("name", ["catalog-cleanup", "catalog-white", "generate-catalog"])
def test_shipped_pipelines_on_the_device_path_equal_the_cpu_path(zoo_cache, ort_on_device, name):
    """The shipped chains on the zoo models, end to end: the device path (emulated GPU kernels,
    ONNX Runtime on device memory) gives the CPU path's pixels."""
    from vetrina.models import catalog
    from vetrina.stages import GenerationRequest

    cpu = Pipeline.load(name)
    dev = Pipeline.load(name, device="cuda")
    assert dev.device_chain is not None
    if name == "generate-catalog":
        requests = [GenerationRequest(5, {"category": "mug", "colour": "red"})]
        pairs = [(dev.generate(requests), cpu.generate(requests))]
    else:
        photos = [catalog.render(seed, 96).image for seed in (3002, 3003)]
        pairs = [(dev.run(photos), cpu.run(photos))]
    for got, want in pairs:
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape
            np.testing.assert_array_equal(g, w)
