"""ONNX -> TensorRT plan, stored in the content-addressed engine store.

What the builder does, and for which TensorRT version (10.x and 11.x are supported; TensorRT
8/9 are refused: their bindings differ, see docs of ``build_serialized_network``):

* **Parsing**: ``trt.OnnxParser.parse_from_file`` (so external weights beside the file are
  found). Parser errors are reported with the ONNX node name and operator
  (``IParserError.node_name()/node_operator()``, TensorRT >= 10).
* **Strong typing**: the network takes its precision from the ONNX graph (fp16 graphs made by
  vetrina's converter carry Casts and fp16 weights; int8 graphs carry Q/DQ nodes). On 10.x
  this needs ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``; on 11.x strong typing is always
  on and the flag is deprecated, so no flag is passed. ``EXPLICIT_BATCH`` is never used (10.x
  ignores it, 11.x removed it). The FP16/INT8 builder flags are never touched: deprecated and
  incompatible with strong typing in 10.x, removed in 11.x (code that sets them only
  "if present" silently builds fp32 on 11.x).
* ``--precision fp32`` additionally clears ``BuilderFlag.TF32`` (on by default in 10.x and
  11.x), for bit-for-bit-minded fp32; it refuses a reduced-precision ONNX.
* Optimisation profiles (``create_optimization_profile``/``set_shape``), the workspace pool
  limit (``set_memory_pool_limit(MemoryPoolType.WORKSPACE, n)``), a timing cache loaded from
  and saved (atomically) to a file, then ``build_serialized_network``; ``None`` is an error
  carrying the logger's captured errors.
* **No silent downgrade**: the plan is deserialized and inspected (built with
  ``ProfilingVerbosity.DETAILED``; ``IEngineInspector`` JSON). The layer data types are
  compared with the precision the ONNX model declares (contract ``provenance.precision``, else
  the graph's own types): an fp16 model whose engine shows no fp16 layer is refused.

TensorRT and CUDA are imported lazily: without them, :class:`~vetrina.errors.DependencyError`
or :class:`~vetrina.errors.DeviceError` names ``pip install 'vetrina[gpu]'``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vetrina import __version__
from vetrina.atomic import atomic_write_bytes
from vetrina.contract import METADATA_KEY, Contract
from vetrina.errors import ConversionError, DependencyError, DeviceError, ModelError

from .engine_store import BuildEnvironment, EngineKey, EngineStore
from .profiles import Profile, onnx_input_shapes, profiles_to_json, resolve_profiles

INSTALL_HINT = "pip install 'vetrina[gpu]' on a machine with an NVIDIA GPU"
MIN_TENSORRT_MAJOR = 10
PRECISIONS = ("auto", "fp32")
BUILDER_RECIPE = 1
"""Bumped whenever the way plans are built changes (part of every store key)."""

#: ONNX TensorProto data types -> precision names.
_ONNX_FLOAT16, _ONNX_BFLOAT16 = 10, 16
_ONNX_FLOAT8 = (17, 18, 19, 20)
_LOW_PRECISIONS = ("fp16", "bf16", "int8", "fp8")


class EngineBuildError(ConversionError):
    """TensorRT could not parse or build the model, or built something other than asked."""


# ----------------------------------------------------------------------------------------------
# TensorRT and the GPU
# ----------------------------------------------------------------------------------------------


def import_tensorrt() -> Any:
    """The ``tensorrt`` module (10.x or newer); a clear error when missing or too old."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise DependencyError(
            f"building TensorRT engines needs the tensorrt package ({exc})", hint=INSTALL_HINT
        ) from None
    if tensorrt_major(trt) < MIN_TENSORRT_MAJOR:
        raise DependencyError(
            f"TensorRT {trt.__version__} is too old: vetrina builds with TensorRT "
            f"{MIN_TENSORRT_MAJOR}.x or newer",
            hint="pip install -U 'vetrina[gpu]'",
        )
    return trt


def tensorrt_major(trt: Any) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:
        raise DependencyError(f"unreadable TensorRT version {trt.__version__!r}") from None


def _gpu_properties(device: int) -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of CUDA device ``device``, through cuda.bindings."""
    from vetrina.kernels import gpu

    reason = gpu.gpu_unavailable_reason()
    if reason is not None:
        raise DeviceError(f"TensorRT needs an NVIDIA GPU: {reason}", hint=INSTALL_HINT)
    count = gpu.device_count()
    if not 0 <= device < count:
        raise DeviceError(f"no CUDA device {device}: {count} visible", hint="pick --device 0..")
    from cuda.bindings import driver, runtime

    def check(result: Any, what: str) -> Any:
        err, *values = result
        if int(err) != 0:
            raise DeviceError(f"{what} failed: {getattr(err, 'name', err)}")
        return values[0] if len(values) == 1 else values

    check(driver.cuInit(0), "cuInit")
    handle = check(driver.cuDeviceGet(device), "cuDeviceGet")
    raw = check(driver.cuDeviceGetName(256, handle), "cuDeviceGetName")
    name = bytes(raw).split(b"\0", 1)[0].decode(errors="replace").strip()
    attr = runtime.cudaDeviceAttr
    major = check(
        runtime.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMajor, device),
        "cudaDeviceGetAttribute",
    )
    minor = check(
        runtime.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMinor, device),
        "cudaDeviceGetAttribute",
    )
    return name, (int(major), int(minor))


def detect_environment(device: int = 0) -> BuildEnvironment:
    """The TensorRT version and GPU a plan built here is tied to."""
    trt = import_tensorrt()
    name, capability = _gpu_properties(device)
    return BuildEnvironment(str(trt.__version__), name, capability)


# ----------------------------------------------------------------------------------------------
# the ONNX side (no TensorRT needed)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnnxModelInfo:
    """What the builder and the store need to know about an ONNX file."""

    path: Path
    sha256: str
    contract: Contract | None
    inputs: dict[str, tuple[int | None, ...]]
    graph_precision: str


def read_onnx(path: str | os.PathLike[str]) -> OnnxModelInfo:
    """Hash, contract, input shapes and precision of an ONNX file (weights not loaded)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({exc})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    contract = Contract.from_json(meta[METADATA_KEY]) if METADATA_KEY in meta else None
    return OnnxModelInfo(
        path=path,
        sha256=model_sha256(path, model),
        contract=contract,
        inputs=onnx_input_shapes(model),
        graph_precision=graph_precision(model),
    )


def model_sha256(path: Path, model: Any) -> str:
    """sha256 of the ONNX file, folding in any external-data files it references."""
    digest = hashlib.sha256(_file_sha(path).encode())
    locations = set()
    for init in model.graph.initializer:
        if init.data_location == 1:  # TensorProto.EXTERNAL
            locations.update(e.value for e in init.external_data if e.key == "location")
    for loc in sorted(locations):
        ext = path.parent / loc
        if not ext.is_file():
            raise ModelError(f"{path}: its external weights file {loc!r} is missing")
        digest.update(f"\n{loc}:{_file_sha(ext)}".encode())
    return digest.hexdigest() if locations else _file_sha(path)


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def graph_precision(model: Any) -> str:
    """The reduced precision an ONNX graph computes in: ``int8`` (Q/DQ nodes), ``fp8``,
    ``fp16``/``bf16`` (tensors of that type anywhere), else ``fp32``."""
    types: set[int] = set()
    graph = model.graph
    for init in graph.initializer:
        types.add(init.data_type)
    for value in (*graph.input, *graph.output, *graph.value_info):
        types.add(value.type.tensor_type.elem_type)
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to":
                types.add(int(attr.i))
            elif attr.name == "value" and attr.HasField("t"):
                types.add(attr.t.data_type)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node):
        return "fp8" if types & set(_ONNX_FLOAT8) else "int8"
    if _ONNX_FLOAT16 in types:
        return "fp16"
    if _ONNX_BFLOAT16 in types:
        return "bf16"
    return "fp32"


def expected_precision(info: OnnxModelInfo) -> str:
    """The precision the engine must show: the contract's, which must agree with the graph."""
    declared = (info.contract.provenance.get("precision") if info.contract else None) or None
    if declared is None:
        return info.graph_precision
    declared = str(declared).lower()
    if declared != info.graph_precision:
        raise ModelError(
            f"{info.path}: the contract says {declared} but the graph computes in "
            f"{info.graph_precision}",
            hint="re-convert the model; the file was altered after vetrina wrote it",
        )
    return declared


# ----------------------------------------------------------------------------------------------
# engine precision (pure: parses the inspector's JSON)
# ----------------------------------------------------------------------------------------------

_DTYPE_TOKENS = (
    ("fp16", re.compile(r"\b(fp16|half)\b", re.I)),
    ("bf16", re.compile(r"\bbf16\b", re.I)),
    ("fp8", re.compile(r"\b(fp8|e4m3)\b", re.I)),
    ("int8", re.compile(r"\bint8\b", re.I)),
    ("fp32", re.compile(r"\b(fp32|float)\b", re.I)),
    ("int32", re.compile(r"\bint32\b", re.I)),
    ("int64", re.compile(r"\bint64\b", re.I)),
    ("bool", re.compile(r"\bbool\b", re.I)),
)
_DATA_LAYER_SKIP = {"reformat", "shuffle", "constant", "noop", "cast", "identity", "shape"}


def dtype_of_format(text: str) -> str | None:
    """``"Row major linear FP16 format"``/``"Half"`` -> ``"fp16"``; None if no type named."""
    for name, pattern in _DTYPE_TOKENS:
        if pattern.search(text):
            return name
    return None


@dataclass
class PrecisionReport:
    """What the engine computes in, compared with what the ONNX model declares."""

    expected: str
    layers: dict[str, int] = field(default_factory=dict)
    """Compute layers (data-movement layers excluded) by the type of their first output."""
    network: dict[str, int] = field(default_factory=dict)
    """Layer outputs of the parsed (strongly typed) network by type, before building."""
    opaque_layers: int = 0
    """Fused layers (Myelin ForeignNodes) whose inner types the inspector does not show."""
    verified: bool = False

    @property
    def built(self) -> str:
        """The lowest precision found in the engine, as a label (``fp16``, ``fp32``, ...)."""
        for name in _LOW_PRECISIONS:
            if self.layers.get(name):
                return name
        return "fp32" if self.layers.get("fp32") else "unknown"

    def summary(self) -> str:
        total = sum(self.layers.values())
        mix = ", ".join(f"{n} {c}" for n, c in sorted(self.layers.items(), key=lambda x: -x[1]))
        text = f"expected {self.expected}, built {self.built} ({mix or 'no layer detail'}"
        text += f"; {total} compute layers"
        if self.opaque_layers:
            text += f", {self.opaque_layers} fused Myelin layers"
        return text + ")"

    def to_json(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "built": self.built,
            "layers": dict(self.layers),
            "network": dict(self.network),
            "opaque_layers": self.opaque_layers,
            "verified": self.verified,
        }


def parse_layer_information(text: str) -> list[dict[str, Any]]:
    """The ``Layers`` of ``IEngineInspector.get_engine_information(JSON)``.

    The inspector sometimes leaves quotes unescaped inside ``Metadata``; then the layers are
    recovered from the ``Format/Datatype`` and ``LayerType`` fields one by one.
    """
    try:
        raw = json.loads(text)
        layers = raw.get("Layers", []) if isinstance(raw, dict) else []
        return [ly if isinstance(ly, dict) else {"Name": str(ly)} for ly in layers]
    except ValueError:
        pass
    layers = []
    for chunk in re.split(r'(?=\{\s*"Name"\s*:)', text)[1:]:
        kind = re.search(r'"LayerType"\s*:\s*"([^"]*)"', chunk)
        outputs_part = chunk.split('"Outputs"', 1)[1] if '"Outputs"' in chunk else ""
        formats = re.findall(r'"Format/Datatype"\s*:\s*"([^"]*)"', outputs_part)
        layers.append(
            {
                "LayerType": kind.group(1) if kind else "",
                "Outputs": [{"Format/Datatype": f} for f in formats],
            }
        )
    return layers


def check_engine_precision(
    expected: str, layer_information: str, network: Mapping[str, int] | None = None
) -> PrecisionReport:
    """Compare the engine's layer types with ``expected``; raise on a downgrade.

    An fp16/bf16/int8/fp8 model whose engine shows no layer of that type is refused. When the
    only layers that could hide it are fused Myelin nodes (opaque to the inspector), the parsed
    network's types decide: with strong typing TensorRT must keep them.
    """
    report = PrecisionReport(expected=expected, network=dict(network or {}))
    counts: Counter[str] = Counter()
    anywhere: set[str] = set()
    for layer in parse_layer_information(layer_information):
        kind = str(layer.get("LayerType", "")).lower()
        outs = [
            dtype_of_format(str(o.get("Format/Datatype", ""))) for o in layer.get("Outputs", [])
        ]
        ins = [dtype_of_format(str(i.get("Format/Datatype", ""))) for i in layer.get("Inputs", [])]
        weights = layer.get("Weights")
        wtype = dtype_of_format(str(weights.get("Type", ""))) if isinstance(weights, dict) else None
        anywhere.update(t for t in (*outs, *ins, wtype) if t)
        if kind == "myelin" or "foreignnode" in str(layer.get("Name", "")).lower():
            report.opaque_layers += 1
            continue
        if kind in _DATA_LAYER_SKIP or str(layer.get("Name", "")).startswith("Reformatting"):
            continue
        first = next((t for t in outs if t), None)
        if first:
            counts[first] += 1
    report.layers = dict(counts)
    if expected not in _LOW_PRECISIONS:
        report.verified = bool(counts)
        return report
    if expected in anywhere:
        report.verified = True
        return report
    if report.opaque_layers and report.network.get(expected):
        report.verified = False  # strongly typed network had it; the fused layers hide it
        return report
    if not anywhere and not report.opaque_layers:
        raise EngineBuildError(
            f"cannot verify that the engine computes in {expected}: the inspector gave no "
            "layer types",
            hint="report this with the TensorRT version; the engine was not stored",
        )
    raise EngineBuildError(
        f"silent downgrade refused: the ONNX model is {expected} but the engine has no "
        f"{expected} layer ({report.summary()})",
        hint="check the model with 'vetrina doctor'; TensorRT >= 10 must build it strongly typed",
    )


def check_int8_flavour(info: OnnxModelInfo, expected: str) -> None:
    """Refuse an int8 model quantized for ONNX Runtime CPU (``--target cpu``: uint8
    activations with non-zero zero points), which TensorRT's parser rejects: TensorRT takes
    symmetric int8 Q/DQ only. The flavour is the contract's ``target``."""
    if expected != "int8" or info.contract is None:
        return
    provenance = info.contract.provenance
    reduced = provenance.get("reduced_precision")
    target = (reduced.get("target") if isinstance(reduced, dict) else None) or provenance.get(
        "target"
    )
    if target == "cpu":
        raise EngineBuildError(
            f"{info.path.name} is int8 quantized for ONNX Runtime CPU (--target cpu: uint8 "
            "activations, non-zero zero points); TensorRT takes symmetric int8 only",
            hint="re-quantize for TensorRT: vetrina convert CKPT --precision int8 --target "
            "tensorrt --calib DIR",
        )


# ----------------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    """Builder settings. ``precision``: ``auto`` builds the types the ONNX graph carries (TF32
    allowed for fp32 layers, TensorRT's default); ``fp32`` also disables TF32 and refuses a
    reduced-precision graph. ``workspace_mib``: the workspace pool limit (None: TensorRT's
    default, the device memory). ``timing_cache``: a file to reuse and update."""

    precision: str = "auto"
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    device: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}; expected one of {PRECISIONS}")
        if self.workspace_mib is not None and self.workspace_mib < 1:
            raise ValueError(f"workspace_mib must be >= 1, got {self.workspace_mib}")

    def key_options(self) -> dict[str, Any]:
        """The settings that change the plan (the store key's ``options``)."""
        return {
            "recipe": BUILDER_RECIPE,
            "precision": self.precision,
            "tf32": self.precision != "fp32",
            "strongly_typed": True,
            "workspace_mib": self.workspace_mib,
        }


@dataclass
class BuildResult:
    """A plan in the store (just built, or found there)."""

    key: str
    path: Path
    cached: bool
    environment: BuildEnvironment
    profiles: list[Profile]
    precision: dict[str, Any]
    plan_bytes: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def build_engine(
    onnx_path: str | os.PathLike[str],
    *,
    profiles: Sequence[str] | None = None,
    options: BuildOptions | None = None,
    store: EngineStore | str | os.PathLike[str] | None = None,
    force: bool = False,
    environment: BuildEnvironment | None = None,
) -> BuildResult:
    """Build ``onnx_path`` into the engine store (or return the stored plan for the same key).

    ``profiles`` are ``--profile`` strings (:mod:`vetrina.converters.profiles`); None derives
    one from the contract. ``force`` rebuilds even when the store has the key.
    """
    options = options or BuildOptions()
    store = store if isinstance(store, EngineStore) else EngineStore(store)
    info = read_onnx(onnx_path)
    if info.contract is None:
        raise ModelError(
            f"{info.path}: has no vetrina contract ({METADATA_KEY} metadata); the engine store "
            "keeps it beside each plan",
            hint="convert the checkpoint with 'vetrina convert'",
        )
    expected = expected_precision(info)
    check_int8_flavour(info, expected)
    if options.precision == "fp32" and expected != "fp32":
        raise EngineBuildError(
            f"{info.path} is a {expected} model; --precision fp32 needs an fp32 ONNX (TensorRT "
            "builds the types the graph carries)",
            hint="use --precision auto, or build the fp32 export",
        )
    resolved = resolve_profiles(profiles, info.inputs, info.contract)
    environment = environment or detect_environment(options.device)
    key = EngineKey(
        info.sha256, tuple(profiles_to_json(resolved)), environment, options.key_options()
    )
    if not force:
        found = store.lookup(key)
        if found is not None:
            return BuildResult(
                key=found.key,
                path=found.path,
                cached=True,
                environment=environment,
                profiles=resolved,
                precision=dict(found.build.get("precision", {})),
                plan_bytes=len(found.plan),
                seconds=0.0,
                notes=["found in the store (same model, profiles, TensorRT and GPU)"],
            )
    start = time.perf_counter()
    plan, report, notes = build_plan(info.path, resolved, options, expected)
    seconds = time.perf_counter() - start
    build = {
        "precision": report.to_json(),
        "onnx": info.path.name,
        "seconds": round(seconds, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "vetrina": __version__,
        "notes": notes,
    }
    path = store.put(key, plan, info.contract, build)
    return BuildResult(
        key=key.digest,
        path=path,
        cached=False,
        environment=environment,
        profiles=resolved,
        precision=report.to_json(),
        plan_bytes=len(plan),
        seconds=seconds,
        notes=notes,
    )


def make_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` that keeps errors and warnings for error messages (10.x and 11.x)."""

    class CapturingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                self.errors.append(str(msg))
            elif severity == trt.ILogger.WARNING:
                self.warnings.append(str(msg))

    return CapturingLogger()


def network_flags(trt: Any) -> int:
    """``create_network`` flags: strongly typed. 10.x: opt in with STRONGLY_TYPED (and no
    EXPLICIT_BATCH: ignored since 10.0). 11.x: strong typing is always on, the flag is
    deprecated and ignored, EXPLICIT_BATCH no longer exists: pass 0."""
    if tensorrt_major(trt) >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def build_plan(
    onnx_path: Path,
    profiles: Sequence[Profile],
    options: BuildOptions,
    expected: str,
) -> tuple[bytes, PrecisionReport, list[str]]:
    """Parse, configure and build one plan; returns (plan, precision report, notes)."""
    trt = import_tensorrt()
    if options.device != 0:  # TensorRT builds on the calling thread's current CUDA device
        from vetrina.kernels.gpu import Stream

        Stream(options.device).close()  # retains and activates that device's primary context
    logger = make_logger(trt)
    notes: list[str] = []
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(
            f"TensorRT cannot parse {onnx_path.name}: "
            + "; ".join(errors[:8] or logger.errors[-4:]),
            hint="run 'vetrina doctor' on the model for the fix",
        )
    network_types = _network_types(network)
    if expected in _LOW_PRECISIONS and not network_types.get(expected):
        raise EngineBuildError(
            f"the parsed network has no {expected} tensor although the model is {expected}",
            hint="TensorRT did not build it strongly typed; upgrade to TensorRT >= 10",
        )
    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if options.precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    for index, profile in enumerate(profiles):
        prof = builder.create_optimization_profile()
        for rng in profile.inputs:
            prof.set_shape(rng.name, rng.min, rng.opt, rng.max)
        if config.add_optimization_profile(prof) < 0:
            raise EngineBuildError(
                f"TensorRT rejected optimisation profile {index} ({profile}): "
                + "; ".join(logger.errors[-4:])
            )
    cache = _use_timing_cache(config, options.timing_cache, notes) if options.timing_cache else None
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        detail = "; ".join(logger.errors[-6:]) or "no error was logged"
        raise EngineBuildError(
            f"TensorRT could not build {onnx_path.name}: {detail}",
            hint="try a larger --workspace, narrower --profile ranges, or 'vetrina doctor'",
        )
    data = bytes(memoryview(plan))
    if cache is not None and options.timing_cache is not None:
        atomic_write_bytes(
            options.timing_cache, bytes(memoryview(config.get_timing_cache().serialize()))
        )
    report = check_engine_precision(expected, _inspect(trt, logger, data), network_types)
    if not report.verified and expected in _LOW_PRECISIONS:
        notes.append(
            f"{expected} kept by strong typing; {report.opaque_layers} fused Myelin layer(s) "
            "hide their inner types from the inspector"
        )
    notes.extend(f"TensorRT warning: {w}" for w in logger.warnings[-5:])
    return data, report, notes


def _parser_error(err: Any) -> str:
    """``node 'name' (Op): description`` from an ``IParserError`` (node_name and
    node_operator exist from TensorRT 10.0 on; older fields as a fallback)."""

    def get(attr: str) -> str:
        fn = getattr(err, attr, None)
        try:
            return str(fn()) if callable(fn) else ""
        except Exception:
            return ""

    name, op, desc = get("node_name"), get("node_operator"), get("desc") or str(err)
    if not name and get("node") not in ("", "-1"):
        name = f"#{get('node')}"
    where = f"node {name!r}" + (f" ({op})" if op else "") if name or op else "model"
    return f"{where}: {desc}"


def _network_types(network: Any) -> dict[str, int]:
    """Output types of the parsed network's layers (``DataType.HALF`` -> ``fp16``, ...)."""
    names = {"HALF": "fp16", "FLOAT": "fp32", "BF16": "bf16", "INT8": "int8", "FP8": "fp8"}
    counts: Counter[str] = Counter()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            dtype = layer.get_output(j).dtype
            label = getattr(dtype, "name", str(dtype).rsplit(".", 1)[-1])
            counts[names.get(label, label.lower())] += 1
    return dict(counts)


def _use_timing_cache(config: Any, path: Path, notes: list[str]) -> Any:
    """Load ``path`` into the config (TensorRT 10.x/11.x ``create_timing_cache`` /
    ``set_timing_cache``); a cache from another device or an unreadable file is replaced by
    a fresh one (and noted), never ignored silently."""
    data = path.read_bytes() if path.is_file() else b""
    cache = None
    if data:
        try:
            cache = config.create_timing_cache(data)
        except Exception:
            cache = None
        if cache is None:
            notes.append(f"timing cache {path} unreadable: started a new one")
        elif not config.set_timing_cache(cache, ignore_mismatch=False):
            notes.append(f"timing cache {path} is from another device: started a new one")
            cache = None
        else:
            notes.append(f"timing cache {path} reused ({len(data)} bytes)")
            return cache
    cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    if not data:
        notes.append(f"timing cache {path} created")
    return cache


def _inspect(trt: Any, logger: Any, plan: bytes) -> str:
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise EngineBuildError(
            "TensorRT cannot load the plan it just built: " + "; ".join(logger.errors[-4:])
        )
    inspector = engine.create_engine_inspector()
    return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


# ----------------------------------------------------------------------------------------------
# running a plan (verification and tests)
# ----------------------------------------------------------------------------------------------


def deserialize_plan(trt: Any, plan: bytes) -> tuple[Any, Any, Any]:
    """(capturing logger, runtime, engine) of a serialized plan; a clear error when TensorRT
    cannot load it (another TensorRT version, a corrupt file). Keep the runtime alive as long
    as the engine."""
    logger = make_logger(trt)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(bytes(plan))
    if engine is None:
        raise ModelError(
            "TensorRT cannot deserialize the plan: "
            + ("; ".join(logger.errors[-4:]) or "no error was logged"),
            hint="rebuild it with 'vetrina build MODEL.onnx --force'",
        )
    return logger, runtime, engine


class TrtRunner:
    """A deserialized plan with one execution context, run on host arrays.

    Meant for checks (GPU tests, engine-vs-ONNX Runtime comparisons), not for serving: each
    :meth:`run` allocates its device buffers. Uses ``set_input_shape``/``set_tensor_address``/
    ``execute_async_v3`` (identical in TensorRT 10.x and 11.x) on a non-default stream.
    """

    def __init__(self, plan: bytes, *, device: int = 0) -> None:
        from vetrina.kernels.gpu import Stream

        trt = import_tensorrt()
        self._trt = trt
        self._stream = Stream(device)  # makes the device's primary context current
        self.device = device
        self._logger, self._runtime, self.engine = deserialize_plan(trt, plan)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) != mode]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns every output by name."""
        from vetrina.kernels.gpu import DeviceBuffer

        trt, ctx = self._trt, self.context
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise ValueError(f"missing inputs {missing}; the engine takes {self.inputs}")
        buffers = []
        for name in self.inputs:
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            arr = np.ascontiguousarray(feeds[name], dtype=dtype)
            if not ctx.set_input_shape(name, arr.shape):
                raise ModelError(
                    f"input {name!r} of shape {arr.shape} is outside the engine's profile",
                    hint="rebuild with a --profile that covers it",
                )
            buf = DeviceBuffer(max(1, arr.nbytes), device=self.device)
            buf.copy_from_host(arr, stream=self._stream)
            ctx.set_tensor_address(name, buf.ptr)
            buffers.append(buf)
        unresolved = ctx.infer_shapes()
        if unresolved:
            raise ModelError(f"TensorRT cannot infer the shapes of {list(unresolved)}")
        results = {}
        for name in self.outputs:
            shape = tuple(ctx.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            buf = DeviceBuffer.empty(shape, dtype, device=self.device)
            ctx.set_tensor_address(name, buf.ptr)
            buffers.append(buf)
            results[name] = buf
        if not ctx.execute_async_v3(self._stream.handle):
            raise ModelError(
                "TensorRT execute_async_v3 failed: " + "; ".join(self._logger.errors[-4:])
            )
        out = {name: buf.copy_to_host(stream=self._stream) for name, buf in results.items()}
        self._stream.synchronize()
        for buf in buffers:
            buf.close()
        return out
