"""TensorRT on a real GPU: build the enhancer's ONNX into the engine store, load it back, run a
batch through TensorRT and compare with ONNX Runtime; refuse a plan for another environment;
build an fp16 ONNX as fp16 (no silent downgrade).

Skipped without TensorRT (``pip install 'vetrina[gpu]'``) or without a CUDA GPU (detected
through cudaGetDeviceCount, like tests/kernels/test_cuda_gpu.py). The same flow runs against a
fake TensorRT in test_tensorrt_build.py on every CI machine.

Tolerances: ``--precision fp32`` turns TF32 off, so TensorRT and ONNX Runtime (CPU, fp32) differ
by float32 rounding in different summation orders (1e-4 on [0, 1] outputs); ``auto`` allows
TF32 (10-bit mantissa products: 5e-3); fp16 is compared with ONNX Runtime running the same
fp16 graph (3e-2).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

trt = pytest.importorskip("tensorrt", reason="needs TensorRT: pip install 'vetrina[gpu]'")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from vetrina.contract import METADATA_KEY, Contract  # noqa: E402
from vetrina.converters import tensorrt as vt  # noqa: E402
from vetrina.converters.engine_store import (  # noqa: E402
    PLAN_FILE,
    EngineMismatchError,
    EngineStore,
    EngineStoreError,
)
from vetrina.errors import ModelError  # noqa: E402


def _gpu_reason() -> str | None:
    try:
        from vetrina.kernels import gpu
    except ImportError as exc:  # pragma: no cover
        return str(exc)
    return gpu.gpu_unavailable_reason()


_REASON = _gpu_reason()
if _REASON is not None:
    pytest.skip(f"needs a CUDA GPU: {_REASON}", allow_module_level=True)

pytestmark = [pytest.mark.gpu]

PROFILE = ["image:1x3x16x16,2x3x64x96,4x3x128x128"]


def _batch(shape=(2, 3, 64, 96), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _ort(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _trt(plan: bytes, x: np.ndarray) -> np.ndarray:
    runner = vt.TrtRunner(plan)
    (name,) = runner.outputs
    return runner.run({"image": x})[name]


@pytest.fixture(scope="module")
def environment():
    return vt.detect_environment()


def test_environment_is_detected(environment):
    assert environment.tensorrt_version == trt.__version__
    assert environment.compute_capability[0] >= 7 and environment.gpu_name


def test_build_load_run_matches_onnxruntime(small_model, tmp_path, environment):
    store = EngineStore(tmp_path / "store")
    cache = tmp_path / "timing.cache"
    options = vt.BuildOptions(precision="fp32", workspace_mib=512, timing_cache=cache)
    result = vt.build_engine(small_model, profiles=PROFILE, options=options, store=store)
    assert not result.cached and result.precision["built"] == "fp32"
    assert cache.stat().st_size > 0
    stored = store.load(result.key, environment)
    assert stored.contract.role == "editor"
    x = _batch()
    got, want = _trt(stored.plan, x), _ort(small_model, x)
    assert got.shape == want.shape == (2, 3, 64, 96)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    # other sizes inside the profile run on the same plan
    x = _batch((1, 3, 16, 16), seed=1)
    np.testing.assert_allclose(_trt(stored.plan, x), _ort(small_model, x), atol=1e-4, rtol=0)
    # same key: found in the store, not rebuilt; the timing cache is reused on a forced build
    assert vt.build_engine(small_model, profiles=PROFILE, options=options, store=store).cached
    forced = vt.build_engine(
        small_model, profiles=PROFILE, options=options, store=store, force=True
    )
    assert any("reused" in n for n in forced.notes)


def test_auto_precision_allows_tf32(small_model, tmp_path):
    result = vt.build_engine(small_model, profiles=PROFILE, store=tmp_path / "s")
    plan = EngineStore(tmp_path / "s").load(result.key, result.environment).plan
    x = _batch(seed=2)
    np.testing.assert_allclose(_trt(plan, x), _ort(small_model, x), atol=5e-3, rtol=0)


def test_mismatch_and_corruption_are_refused(small_model, tmp_path, environment):
    store = EngineStore(tmp_path / "s")
    result = vt.build_engine(small_model, profiles=PROFILE, store=store)
    other = dataclasses.replace(environment, tensorrt_version="9.9.9.9")
    with pytest.raises(EngineMismatchError, match="rebuild with vetrina build"):
        store.load(result.key, other)
    plan_file = result.path / PLAN_FILE
    plan_file.write_bytes(plan_file.read_bytes()[:1000])
    with pytest.raises(EngineStoreError, match="truncated"):
        store.load(result.key, environment)
    with pytest.raises(ModelError, match="cannot deserialize"):
        vt.TrtRunner(b"\x00" * 4096)


def test_shape_outside_the_profile_is_refused(small_model, tmp_path):
    result = vt.build_engine(small_model, profiles=PROFILE, store=tmp_path / "s")
    plan = EngineStore(tmp_path / "s").load(result.key, result.environment).plan
    with pytest.raises(ModelError, match="outside the engine's profile"):
        _trt(plan, _batch((8, 3, 64, 64)))


def test_fp16_onnx_builds_fp16(small_model, tmp_path):
    from onnxconverter_common import float16

    model = onnx.load(str(small_model))
    half = float16.convert_float_to_float16(model, keep_io_types=True)
    meta = {p.key: p for p in half.metadata_props}
    contract = Contract.from_json(meta[METADATA_KEY].value)
    contract = dataclasses.replace(
        contract, provenance={**contract.provenance, "precision": "fp16"}
    )
    meta[METADATA_KEY].value = contract.to_json()
    path = tmp_path / "enhancer-fp16.onnx"
    onnx.save(half, str(path))

    result = vt.build_engine(path, profiles=PROFILE, store=tmp_path / "s")
    precision = result.precision
    assert precision["expected"] == "fp16" and precision["network"].get("fp16", 0) > 0
    assert precision["built"] == "fp16" or not precision["verified"], json.dumps(precision)
    plan = EngineStore(tmp_path / "s").load(result.key, result.environment).plan
    x = _batch(seed=3)
    got, want = _trt(plan, x), _ort(path, x)
    np.testing.assert_allclose(got, want, atol=3e-2, rtol=0)
    fp32_engine = vt.build_engine(small_model, profiles=PROFILE, store=tmp_path / "s")
    assert fp32_engine.key != result.key
    with pytest.raises(vt.EngineBuildError, match="--precision fp32 needs an fp32 ONNX"):
        vt.build_engine(
            path,
            profiles=PROFILE,
            options=vt.BuildOptions(precision="fp32"),
            store=tmp_path / "s",
        )


# -- the native TensorRT backend (vetrina.backends.tensorrt) ------------------------------------


def _engine_session(small_model, tmp_path, **options):
    from vetrina.backends.tensorrt import open_engine

    store = EngineStore(tmp_path / "store")
    opts = vt.BuildOptions(precision="fp32")
    vt.build_engine(small_model, profiles=PROFILE, options=opts, store=store)
    return open_engine(small_model, store=store, **options)


def test_native_session_matches_onnxruntime_and_reuses_buffers(small_model, tmp_path):
    session = _engine_session(small_model, tmp_path)
    assert session.device == "trt" and session.key
    x = _batch()
    (got,) = session.run({"image": x})
    np.testing.assert_allclose(got, _ort(small_model, x), atol=1e-4, rtol=0)
    allocated = session.allocations
    for seed in range(5):  # same or smaller shapes: nothing new on the device or pinned
        x = _batch((1, 3, 32, 48), seed=seed)
        np.testing.assert_allclose(
            session.run({"image": x})[0], _ort(small_model, x), atol=1e-4, rtol=0
        )
    assert session.allocations == allocated
    times = session.device_times
    assert set(times.seconds) == {"h2d", "compute", "d2h"} and times.calls["compute"] == 6
    assert all(v > 0 for v in times.seconds.values())
    with pytest.raises(ModelError, match="outside every optimisation profile"):
        session.run({"image": _batch((8, 3, 64, 64))})


def test_native_session_concurrent_requests(small_model, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    session = _engine_session(small_model, tmp_path, contexts=2)
    inputs = [_batch((1, 3, 64, 64), seed=s) for s in range(12)]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda x: session.run({"image": x})[0], inputs))
    for x, got in zip(inputs, outs, strict=True):
        np.testing.assert_allclose(got, _ort(small_model, x), atol=1e-4, rtol=0)


def test_native_session_cuda_graph_replay(small_model, tmp_path):
    session = _engine_session(small_model, tmp_path, contexts=1, cuda_graphs=True)
    for seed in range(4):  # run, capture, then replays with new data in the same buffers
        x = _batch(seed=seed)
        np.testing.assert_allclose(
            session.run({"image": x})[0], _ort(small_model, x), atol=1e-4, rtol=0
        )


def test_model_open_trt_device(small_model, tmp_path, monkeypatch):
    from vetrina.model import Model

    monkeypatch.setenv("VETRINA_ENGINE_STORE", str(tmp_path / "store"))
    with pytest.raises(ModelError, match="vetrina build"):
        Model.open(small_model, device="trt")
    vt.build_engine(small_model, profiles=PROFILE, store=tmp_path / "store")
    model = Model.open(small_model, device="trt")
    assert model.contract.role == "editor" and model.session.device == "trt"
