"""The TensorRT builder without TensorRT: pure helpers, and the build flow against a fake
``tensorrt`` module that follows the documented 10.x / 11.x Python API (see
/work/shared/reference/api-facts.md §1). The real thing runs in test_tensorrt_gpu.py.

The fake records every call, so these tests pin what the builder asks of TensorRT: strong
typing per version, no FP16/INT8 builder flags ever, TF32 cleared only for --precision fp32,
the workspace limit, the profile shapes, timing-cache load/save, and the errors it reports.
"""

from __future__ import annotations

import enum
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from vetrina.contract import METADATA_KEY, Contract, SpatialRules, TensorSpec
from vetrina.converters import tensorrt as vt
from vetrina.converters.engine_store import BuildEnvironment, EngineStore
from vetrina.errors import DependencyError, DeviceError, ModelError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ENV = BuildEnvironment("10.9.0.34", "NVIDIA H100 80GB HBM3", (9, 0))

FP16_LAYERS = {
    "Layers": [
        {
            "Name": "Reformatting CopyNode for Input Tensor 0",
            "LayerType": "Reformat",
            "Inputs": [{"Format/Datatype": "Row major linear FP32"}],
            "Outputs": [{"Format/Datatype": "Row major linear FP16 format"}],
        },
        {
            "Name": "/conv/Conv",
            "LayerType": "CaskConvolution",
            "Inputs": [{"Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
            "Outputs": [{"Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
            "Weights": {"Type": "Half", "Count": 432},
        },
        {"Name": "/act", "LayerType": "PointWiseV2", "Outputs": [{"Format/Datatype": "Half"}]},
    ]
}
FP32_LAYERS = {
    "Layers": [
        {
            "Name": "/conv/Conv",
            "LayerType": "CaskConvolution",
            "Inputs": [{"Format/Datatype": "Row major linear FP32"}],
            "Outputs": [{"Format/Datatype": "Row major linear FP32"}],
            "Weights": {"Type": "Float", "Count": 432},
        },
        {"Name": "/act", "LayerType": "PointWiseV2", "Outputs": [{"Format/Datatype": "Float"}]},
    ]
}
MYELIN_LAYERS = {
    "Layers": [
        {
            "Name": "{ForeignNode[/Cast.../Cast_1]}",
            "LayerType": "Myelin",
            "Inputs": [{"Format/Datatype": "Float"}],
            "Outputs": [{"Format/Datatype": "Float"}],
        }
    ]
}


# ----------------------------------------------------------------------------------------------
# a fake tensorrt module (the documented Python API, recording calls)
# ----------------------------------------------------------------------------------------------


class _DType:
    def __init__(self, name: str) -> None:
        self.name = name


def make_fake_trt(
    version: str = "10.9.0.34",
    *,
    parse_errors: list[tuple[str, str, str]] | None = None,
    build_fails: bool = False,
    layers: dict | str = FP16_LAYERS,
    network_dtype: str = "HALF",
    cache_matches: bool = True,
) -> types.ModuleType:
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    calls: dict = {"flags_set": [], "flags_cleared": [], "profiles": [], "pools": {}}
    trt.calls = calls

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self) -> None:
            calls["logger_init"] = True

    trt.ILogger = ILogger
    trt.init_libnvinfer_plugins = lambda logger, namespace: calls.setdefault("plugins", True)
    if major >= 11:
        trt.NetworkDefinitionCreationFlag = enum.IntEnum("F", {"STRONGLY_TYPED": 1})
        flag_names = ["DEBUG", "TF32", "REFIT", "STRIP_PLAN"]
    else:
        trt.NetworkDefinitionCreationFlag = enum.IntEnum(
            "F", {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}
        )
        flag_names = ["FP16", "BF16", "INT8", "DEBUG", "TF32", "REFIT", "FP8"]
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", flag_names)
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", ["WORKSPACE", "TACTIC_SHARED_MEMORY"])
    trt.ProfilingVerbosity = enum.IntEnum("PV", ["LAYER_NAMES_ONLY", "NONE", "DETAILED"])
    trt.LayerInformationFormat = enum.IntEnum("LIF", ["ONELINE", "JSON"])

    class ParserError:
        def __init__(self, name: str, op: str, desc: str) -> None:
            self._n, self._o, self._d = name, op, desc

        def node_name(self) -> str:
            return self._n

        def node_operator(self) -> str:
            return self._o

        def desc(self) -> str:
            return self._d

    class Network:
        def __init__(self, flags: int) -> None:
            calls["network_flags"] = flags
            self.num_layers = 2

        def get_layer(self, i: int):
            out = types.SimpleNamespace(dtype=_DType(network_dtype if i else "FLOAT"))
            return types.SimpleNamespace(num_outputs=1, get_output=lambda j: out)

    class OnnxParser:
        def __init__(self, network: Network, logger: ILogger) -> None:
            self.errors = [ParserError(*e) for e in parse_errors or []]
            self.num_errors = len(self.errors)

        def parse_from_file(self, path: str) -> bool:
            calls["parsed"] = path
            assert Path(path).is_file()
            return not self.errors

        def get_error(self, i: int) -> ParserError:
            return self.errors[i]

    class Cache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> memoryview:
            return memoryview(b"TCACHE:" + self.data[-8:] + b"+1")

    class Config:
        profiling_verbosity = None

        def set_flag(self, flag) -> None:
            calls["flags_set"].append(flag.name)

        def clear_flag(self, flag) -> None:
            calls["flags_cleared"].append(flag.name)

        def set_memory_pool_limit(self, pool, size: int) -> None:
            calls["pools"][pool.name] = size

        def add_optimization_profile(self, profile) -> int:
            calls["profiles"].append(profile.shapes)
            return len(calls["profiles"]) - 1

        def create_timing_cache(self, data: bytes) -> Cache:
            calls.setdefault("cache_loaded", []).append(bytes(data))
            return Cache(bytes(data))

        def set_timing_cache(self, cache: Cache, ignore_mismatch: bool) -> bool:
            assert ignore_mismatch is False
            self.cache = cache
            return cache_matches or not cache.data

        def get_timing_cache(self) -> Cache:
            return self.cache

    class OptimizationProfile:
        def __init__(self) -> None:
            self.shapes = {}

        def set_shape(self, name, min, opt, max) -> None:
            self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

    class Builder:
        def __init__(self, logger: ILogger) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> Network:
            return Network(flags)

        def create_builder_config(self) -> Config:
            config = Config()
            calls["config"] = config
            return config

        def create_optimization_profile(self) -> OptimizationProfile:
            return OptimizationProfile()

        def build_serialized_network(self, network: Network, config: Config):
            calls["built"] = calls.get("built", 0) + 1
            calls["verbosity"] = config.profiling_verbosity
            if build_fails:
                self.logger.log(ILogger.WARNING, "some warning")
                self.logger.log(ILogger.ERROR, "Error Code 4: out of workspace memory")
                return None
            return memoryview(b"PLAN" + bytes(range(64)))

    class Engine:
        def create_engine_inspector(self):
            text = layers if isinstance(layers, str) else json.dumps(layers)
            return types.SimpleNamespace(get_engine_information=lambda fmt: text)

    class Runtime:
        def __init__(self, logger: ILogger) -> None:
            pass

        def deserialize_cuda_engine(self, plan: bytes):
            assert bytes(plan).startswith(b"PLAN")
            return Engine()

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


@pytest.fixture
def fake_trt(monkeypatch):
    def install(**kw):
        trt = make_fake_trt(**kw)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return trt

    return install


# ----------------------------------------------------------------------------------------------
# small ONNX models with a contract
# ----------------------------------------------------------------------------------------------


def _model(path: Path, *, precision: str = "fp32", contract: bool = True) -> Path:
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    if precision == "fp16":
        nodes = [
            helper.make_node("Cast", ["image"], ["x16"], to=TensorProto.FLOAT16),
            helper.make_node("Mul", ["x16", "k"], ["y16"]),
            helper.make_node("Cast", ["y16"], ["out"], to=TensorProto.FLOAT),
        ]
        k = numpy_helper.from_array(np.array([2.0], np.float16), "k")
    else:
        nodes = [helper.make_node("Mul", ["image", "k"], ["out"])]
        k = numpy_helper.from_array(np.array([2.0], np.float32), "k")
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], initializer=[k]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    if contract:
        c = Contract(
            role="editor",
            inputs=(TensorSpec(name="image"),),
            outputs=(TensorSpec(name="out"),),
            spatial=SpatialRules(multiple_of=8, min_size=16),
            provenance={"precision": precision},
        )
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, c.to_json()
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


INT8_LAYERS = {
    "Layers": [
        {
            "Name": "/conv/Conv",
            "LayerType": "CaskConvolution",
            "Inputs": [{"Format/Datatype": "CHW4 | Int8"}],
            "Outputs": [{"Format/Datatype": "CHW4 | Int8"}],
        }
    ]
}


def _int8_model(path: Path, *, target: str) -> Path:
    """Q/DQ around a Mul, in the flavour ``target`` writes: "cpu" uint8 with zero point 128,
    "tensorrt" int8 with zero point 0; the contract records the target like convert does."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    cpu = target == "cpu"
    zp = np.array(128 if cpu else 0, np.uint8 if cpu else np.int8)
    nodes = [
        helper.make_node("QuantizeLinear", ["image", "s", "zp"], ["q"], name="q_in"),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["dq"], name="dq_in"),
        helper.make_node("Mul", ["dq", "k"], ["out"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(1 / 64, np.float32), "s"),
        numpy_helper.from_array(zp, "zp"),
        numpy_helper.from_array(np.array([2.0], np.float32), "k"),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], initializer=inits),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    c = Contract(
        role="editor",
        inputs=(TensorSpec(name="image"),),
        outputs=(TensorSpec(name="out"),),
        spatial=SpatialRules(multiple_of=8, min_size=16),
        provenance={
            "precision": "int8",
            "target": target,
            "reduced_precision": {"precision": "int8", "target": target, "islands": []},
        },
    )
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, c.to_json()
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


PROFILE = ["image:1x3x16x16,2x3x64x64,4x3x128x128"]
SHAPES = ((1, 3, 16, 16), (2, 3, 64, 64), (4, 3, 128, 128))


# ----------------------------------------------------------------------------------------------
# pure helpers
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dtype"),
    [
        ("Row major linear FP16 format", "fp16"),
        ("Channel major FP16 format where channel % 8 == 0", "fp16"),
        ("Half", "fp16"),
        ("HWC8 | FP16", "fp16"),
        ("Float", "fp32"),
        ("Row major linear FP32", "fp32"),
        ("CHW4 | Int8", "int8"),
        ("Row major linear BF16", "bf16"),
        ("Int32", "int32"),
        ("", None),
    ],
)
def test_dtype_of_format(text, dtype):
    assert vt.dtype_of_format(text) == dtype


def test_precision_check_accepts_fp16_and_counts_compute_layers():
    report = vt.check_engine_precision("fp16", json.dumps(FP16_LAYERS))
    assert report.verified and report.built == "fp16"
    assert report.layers == {"fp16": 2}  # the reformat layer is not counted
    assert "expected fp16, built fp16" in report.summary()


def test_precision_check_refuses_a_downgrade():
    with pytest.raises(vt.EngineBuildError, match=r"silent downgrade refused: .* fp16"):
        vt.check_engine_precision("fp16", json.dumps(FP32_LAYERS), {"fp16": 3})
    with pytest.raises(vt.EngineBuildError, match="no int8 layer"):
        vt.check_engine_precision("int8", json.dumps(FP16_LAYERS))
    fp32 = vt.check_engine_precision("fp32", json.dumps(FP32_LAYERS))
    assert fp32.verified and fp32.built == "fp32"


def test_precision_check_with_opaque_myelin_layers():
    report = vt.check_engine_precision("fp16", json.dumps(MYELIN_LAYERS), {"fp16": 2})
    assert not report.verified and report.opaque_layers == 1
    with pytest.raises(vt.EngineBuildError, match="silent downgrade"):
        vt.check_engine_precision("fp16", json.dumps(MYELIN_LAYERS), {"fp32": 2})
    with pytest.raises(vt.EngineBuildError, match="no layer types"):
        vt.check_engine_precision("fp16", json.dumps({"Layers": ["conv", "relu"]}))


def test_layer_information_with_unescaped_metadata():
    # the inspector can leave quotes unescaped inside Metadata: recover the types anyway
    text = json.dumps(FP16_LAYERS).replace(
        '"LayerType": "CaskConvolution"', '"LayerType": "CaskConvolution", "Metadata": "{"a": 1}"'
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    layers = vt.parse_layer_information(text)
    assert [ly["LayerType"] for ly in layers] == ["Reformat", "CaskConvolution", "PointWiseV2"]
    assert vt.check_engine_precision("fp16", text).layers == {"fp16": 2}


def test_graph_and_expected_precision(tmp_path):
    fp16 = vt.read_onnx(_model(tmp_path / "h.onnx", precision="fp16"))
    fp32 = vt.read_onnx(_model(tmp_path / "f.onnx"))
    assert (fp16.graph_precision, fp32.graph_precision) == ("fp16", "fp32")
    assert vt.expected_precision(fp16) == "fp16"
    assert fp32.inputs == {"image": (None, 3, None, None)}
    assert fp32.sha256 == vt._file_sha(tmp_path / "f.onnx")
    lying = vt.OnnxModelInfo(fp32.path, fp32.sha256, fp16.contract, fp32.inputs, "fp32")
    with pytest.raises(ModelError, match="contract says fp16 but the graph computes in fp32"):
        vt.expected_precision(lying)
    qdq = helper.make_model(
        helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s"], ["q"])], "g", [], [])
    )
    assert vt.graph_precision(qdq) == "int8"


def test_external_weights_are_part_of_the_hash(tmp_path):
    path = _model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.onnx.data", size_threshold=0)  # fmt: skip
    first = vt.read_onnx(path).sha256
    data = tmp_path / "m.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[0] ^= 1
    data.write_bytes(bytes(raw))
    assert vt.read_onnx(path).sha256 != first
    data.unlink()
    with pytest.raises(ModelError, match=r"external weights file 'm.onnx.data' is missing"):
        vt.read_onnx(path)


def test_parser_error_names_the_node():
    pe = make_fake_trt(parse_errors=[("resize_3", "Resize", "scales must be an initializer")])
    e = pe.OnnxParser(None, None).get_error(0)
    assert vt._parser_error(e) == "node 'resize_3' (Resize): scales must be an initializer"


# ----------------------------------------------------------------------------------------------
# dependencies and devices
# ----------------------------------------------------------------------------------------------


def test_missing_tensorrt_is_a_dependency_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails like an absent package
    with pytest.raises(DependencyError, match=r"pip install 'vetrina\[gpu\]'"):
        vt.import_tensorrt()
    with pytest.raises(DependencyError, match="tensorrt package"):
        vt.build_engine(_model(tmp_path / "m.onnx"), store=tmp_path / "s")


def test_old_tensorrt_is_refused(fake_trt):
    fake_trt(version="8.6.1")
    with pytest.raises(DependencyError, match=r"TensorRT 8.6.1 is too old"):
        vt.import_tensorrt()


def test_no_gpu_is_a_device_error(fake_trt, monkeypatch):
    from vetrina.kernels import gpu

    fake_trt()
    monkeypatch.setattr(gpu, "gpu_unavailable_reason", lambda: "no NVIDIA driver: test")
    with pytest.raises(DeviceError, match=r"needs an NVIDIA GPU: no NVIDIA driver.*vetrina\[gpu\]"):
        vt.detect_environment()


def test_environment_from_tensorrt_and_the_gpu(fake_trt, monkeypatch):
    fake_trt(version="10.16.0.72")
    monkeypatch.setattr(vt, "_gpu_properties", lambda device: ("NVIDIA L4", (8, 9)))
    env = vt.detect_environment()
    assert env == BuildEnvironment("10.16.0.72", "NVIDIA L4", (8, 9)) and env.sm == "sm_89"


# ----------------------------------------------------------------------------------------------
# the build flow
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "flags"), [("10.9.0.34", 1 << 1), ("11.1.0.106", 0)])
def test_build_is_strongly_typed_and_stored(fake_trt, tmp_path, version, flags):
    trt = fake_trt(version=version)
    model = _model(tmp_path / "m.onnx", precision="fp16")
    store = EngineStore(tmp_path / "store")
    cache = tmp_path / "timing.cache"
    options = vt.BuildOptions(workspace_mib=256, timing_cache=cache)
    result = vt.build_engine(model, profiles=PROFILE, options=options, store=store, environment=ENV)
    calls = trt.calls
    assert calls["network_flags"] == flags  # STRONGLY_TYPED on 10.x, nothing on 11.x
    assert calls["flags_set"] == [] and calls["flags_cleared"] == []  # no FP16/INT8, TF32 kept
    assert calls["pools"] == {"WORKSPACE": 256 << 20}
    assert calls["profiles"] == [{"image": SHAPES}]
    assert calls["verbosity"] == trt.ProfilingVerbosity.DETAILED
    assert calls["parsed"] == str(model)
    assert not result.cached and result.precision["built"] == "fp16"
    assert result.precision["verified"] and result.precision["network"] == {"fp32": 1, "fp16": 1}
    stored = store.load(result.key, ENV)
    assert stored.plan == b"PLAN" + bytes(range(64))
    assert stored.contract.provenance["precision"] == "fp16"
    assert stored.parts["options"]["precision"] == "auto" and stored.build["precision"]
    assert cache.read_bytes() == b"TCACHE:+1"  # a new cache, saved after the build
    assert any("created" in n for n in result.notes)

    again = vt.build_engine(model, profiles=PROFILE, options=options, store=store, environment=ENV)
    assert again.cached and again.key == result.key and calls["built"] == 1
    forced = vt.build_engine(
        model, profiles=PROFILE, options=options, store=store, environment=ENV, force=True
    )
    assert not forced.cached and calls["built"] == 2
    assert calls["cache_loaded"][-1] == b"TCACHE:+1"  # the saved cache was reused
    assert any("reused" in n for n in forced.notes)


def test_precision_fp32_clears_tf32_and_changes_the_key(fake_trt, tmp_path):
    trt = fake_trt(layers=FP32_LAYERS, network_dtype="FLOAT")
    model = _model(tmp_path / "m.onnx")
    store = tmp_path / "store"
    auto = vt.build_engine(model, profiles=PROFILE, store=store, environment=ENV)
    assert trt.calls["flags_cleared"] == []
    strict = vt.build_engine(
        model,
        profiles=PROFILE,
        options=vt.BuildOptions(precision="fp32"),
        store=store,
        environment=ENV,
    )
    assert trt.calls["flags_cleared"] == ["TF32"] and "WORKSPACE" not in trt.calls["pools"]
    assert strict.key != auto.key and strict.precision["built"] == "fp32"


def test_default_profile_comes_from_the_contract(fake_trt, tmp_path):
    trt = fake_trt(layers=FP32_LAYERS, network_dtype="FLOAT")
    result = vt.build_engine(_model(tmp_path / "m.onnx"), store=tmp_path / "s", environment=ENV)
    (shapes,) = trt.calls["profiles"]
    assert shapes["image"] == ((1, 3, 16, 16), (4, 3, 512, 512), (8, 3, 2048, 2048))
    assert str(result.profiles[0]) == "image:1x3x16x16,4x3x512x512,8x3x2048x2048"


def test_fp16_model_with_fp32_precision_is_refused(fake_trt, tmp_path):
    fake_trt()
    with pytest.raises(vt.EngineBuildError, match="fp16 model; --precision fp32 needs"):
        vt.build_engine(
            _model(tmp_path / "m.onnx", precision="fp16"),
            options=vt.BuildOptions(precision="fp32"),
            store=tmp_path / "s",
            environment=ENV,
        )


def test_downgraded_engine_is_not_stored(fake_trt, tmp_path):
    fake_trt(layers=FP32_LAYERS)
    store = EngineStore(tmp_path / "s")
    with pytest.raises(vt.EngineBuildError, match="silent downgrade refused"):
        vt.build_engine(
            _model(tmp_path / "m.onnx", precision="fp16"),
            profiles=PROFILE,
            store=store,
            environment=ENV,
        )
    assert store.entries() == []


def test_cpu_flavoured_int8_is_refused_before_tensorrt(fake_trt, tmp_path):
    trt = fake_trt(layers=INT8_LAYERS, network_dtype="INT8")
    store = EngineStore(tmp_path / "s")
    with pytest.raises(vt.EngineBuildError, match="quantized for ONNX Runtime CPU") as info:
        vt.build_engine(
            _int8_model(tmp_path / "cpu.onnx", target="cpu"), profiles=PROFILE, store=store
        )  # no environment given: refused before TensorRT or the GPU is asked anything
    assert "--target tensorrt" in info.value.hint
    assert "network_flags" not in trt.calls and "built" not in trt.calls
    assert store.entries() == []
    # the TensorRT flavour goes on to the build
    result = vt.build_engine(
        _int8_model(tmp_path / "trt.onnx", target="tensorrt"),
        profiles=PROFILE,
        store=store,
        environment=ENV,
    )
    assert result.precision["built"] == "int8" and trt.calls["built"] == 1


def test_cli_build_refuses_cpu_flavoured_int8(fake_trt, tmp_path, capsys):
    from vetrina.cli import main

    fake_trt()
    path = _int8_model(tmp_path / "cpu.onnx", target="cpu")
    assert main(["build", str(path), "--store", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert "quantized for ONNX Runtime CPU" in err and "--target tensorrt" in err


def test_weakly_typed_network_is_refused_before_building(fake_trt, tmp_path):
    trt = fake_trt(network_dtype="FLOAT")
    with pytest.raises(vt.EngineBuildError, match="parsed network has no fp16 tensor"):
        vt.build_engine(
            _model(tmp_path / "m.onnx", precision="fp16"),
            profiles=PROFILE,
            store=tmp_path / "s",
            environment=ENV,
        )
    assert "built" not in trt.calls


def test_parse_errors_name_nodes(fake_trt, tmp_path):
    fake_trt(parse_errors=[("up_1", "Resize", "Resize scales must be an initializer!")])
    with pytest.raises(vt.EngineBuildError) as info:
        vt.build_engine(
            _model(tmp_path / "m.onnx"), profiles=PROFILE, store=tmp_path / "s", environment=ENV
        )
    assert "node 'up_1' (Resize): Resize scales must be an initializer!" in str(info.value)
    assert "vetrina doctor" in str(info.value)


def test_failed_build_reports_logged_errors(fake_trt, tmp_path):
    fake_trt(build_fails=True)
    with pytest.raises(vt.EngineBuildError, match="Error Code 4: out of workspace memory"):
        vt.build_engine(
            _model(tmp_path / "m.onnx"), profiles=PROFILE, store=tmp_path / "s", environment=ENV
        )


def test_timing_cache_from_another_device_is_replaced(fake_trt, tmp_path):
    trt = fake_trt(cache_matches=False, layers=FP32_LAYERS, network_dtype="FLOAT")
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"other-gpu-cache")
    result = vt.build_engine(
        _model(tmp_path / "m.onnx"),
        profiles=PROFILE,
        options=vt.BuildOptions(timing_cache=cache),
        store=tmp_path / "s",
        environment=ENV,
    )
    assert trt.calls["cache_loaded"] == [b"other-gpu-cache", b""]
    assert any("from another device" in n for n in result.notes)
    assert cache.read_bytes() == b"TCACHE:+1"


def test_model_without_contract_is_refused(fake_trt, tmp_path):
    fake_trt()
    with pytest.raises(ModelError, match="has no vetrina contract"):
        vt.build_engine(
            _model(tmp_path / "m.onnx", contract=False), store=tmp_path / "s", environment=ENV
        )


def test_build_options_validation():
    with pytest.raises(ValueError, match="precision 'fp16'"):
        vt.BuildOptions(precision="fp16")
    with pytest.raises(ValueError, match="workspace_mib"):
        vt.BuildOptions(workspace_mib=0)
    assert vt.BuildOptions(precision="fp32").key_options()["tf32"] is False


def test_cli_build_without_tensorrt(tmp_path, monkeypatch, capsys):
    from vetrina.cli import main

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    code = main(["build", str(_model(tmp_path / "m.onnx")), "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 1 and "tensorrt package" in err and "vetrina[gpu]" in err


def test_cli_build_with_fake_tensorrt(fake_trt, tmp_path, monkeypatch, capsys):
    from vetrina.cli import main

    fake_trt(layers=FP32_LAYERS, network_dtype="FLOAT")
    monkeypatch.setattr(vt, "detect_environment", lambda device=0: ENV)
    args = ["build", str(_model(tmp_path / "m.onnx")), "--store", str(tmp_path / "s")]
    assert main([*args, "--profile", PROFILE[0], "--workspace", "64"]) == 0
    out = capsys.readouterr().out
    assert "built in" in out and "sm_90 NVIDIA H100" in out and "profile 0" in out
    assert main([*args, "--profile", PROFILE[0], "--workspace", "64", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["cached"] is True and record["profiles"] == PROFILE
    assert main([*args, "--profile", "image:1x3x10x10"]) == 1
    assert "not a multiple of 8" in capsys.readouterr().err
