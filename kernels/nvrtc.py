"""NVRTC compilation of the CUDA C sources in ``kernels/cuda/`` and the on-disk cubin cache.

Needs NVRTC only, no GPU or driver: CI compiles every kernel for sm_80 and sm_90. Cubins are
cached keyed by the sha256 of the sources, options, NVRTC version and architecture
(:func:`cache_dir`); :class:`vetrina.kernels.gpu.GpuKernels` loads them onto a device.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cuda_api import (
    INSTALL_HINT,
    CompileError,
    CudaError,
    CudaUnavailableError,
    _bindings,
    _check,
    _err_name,
)

SOURCE_DIR = Path(__file__).resolve().with_name("cuda")
"""Folder of the CUDA C sources (``*.cu``) and their headers (``*.cuh``)."""
SOURCES = ("preprocess", "postprocess", "adapt", "tiles", "alpha", "clamp", "mask")
"""The compiled units: ``kernels/cuda/<name>.cu``, one module each."""
NVRTC_OPTIONS = (
    "--std=c++17",
    "-default-device",
    "--fmad=false",
    "--ftz=false",
    "--prec-div=true",
    "--prec-sqrt=true",
)
"""NVRTC options besides ``--gpu-architecture``: IEEE float32 without contraction (the CPU
build's ``-ffp-contract=off``), so GPU and CPU round every operation the same way."""
_CACHE_FORMAT = b"vetrina-cuda-cache-1"
_GLOBAL_RE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(')


def _nvrtc_call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call an NVRTC function; a missing libnvrtc becomes a CudaUnavailableError."""
    try:
        return fn(*args)
    except (RuntimeError, OSError) as exc:  # cuda.pathfinder: library not found
        if isinstance(exc, CudaError):
            raise
        raise CudaUnavailableError(
            f"cannot load NVRTC (libnvrtc): {exc}; install the nvidia-cuda-nvrtc wheel or a "
            f"CUDA toolkit ({INSTALL_HINT})"
        ) from exc


def nvrtc_version() -> tuple[int, int]:
    """(major, minor) of the NVRTC library that compiles the kernels."""
    _, nvrtc, _ = _bindings()
    major, minor = _check(_nvrtc_call(nvrtc.nvrtcVersion), "nvrtcVersion")
    return int(major), int(minor)


def supported_archs() -> list[str]:
    """The ``sm_XY`` targets this NVRTC can compile for."""
    _, nvrtc, _ = _bindings()
    archs = _check(_nvrtc_call(nvrtc.nvrtcGetSupportedArchs), "nvrtcGetSupportedArchs")
    return [f"sm_{int(a)}" for a in archs]


def normalize_arch(arch: str | int | tuple[int, int]) -> str:
    """``"sm_90"``, ``"90"``, ``90``, ``"9.0"`` or ``(9, 0)`` -> ``"sm_90"``."""
    if isinstance(arch, tuple) and len(arch) == 2 and all(isinstance(v, int) for v in arch):
        return f"sm_{arch[0]}{arch[1]}"
    if isinstance(arch, int) and not isinstance(arch, bool) and 10 <= arch < 1000:
        return f"sm_{arch}"
    if isinstance(arch, str):
        m = re.fullmatch(r"(?:sm_|compute_)?(\d)\.?(\d{1,2})", arch.strip())
        if m:
            return f"sm_{m.group(1)}{m.group(2)}"
    raise ValueError(
        f"arch is {arch!r}; expected a compute capability such as 'sm_90', 90, '9.0' or (9, 0)"
    )


def cache_dir() -> Path:
    """Where compiled cubins are cached: ``$VETRINA_CACHE_DIR/cuda``, else
    ``$XDG_CACHE_HOME/vetrina/cuda``, else ``~/.cache/vetrina/cuda``."""
    root = os.environ.get("VETRINA_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "cuda"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vetrina" / "cuda"


def _read_sources(name: str) -> tuple[str, dict[str, str]]:
    if name not in SOURCES:
        raise ValueError(f"kernel source is {name!r}; expected one of {', '.join(SOURCES)}")
    source = (SOURCE_DIR / f"{name}.cu").read_text(encoding="utf-8")
    headers = {p.name: p.read_text(encoding="utf-8") for p in sorted(SOURCE_DIR.glob("*.cuh"))}
    return source, headers


def kernel_names(name: str) -> list[str]:
    """The ``extern "C" __global__`` kernels that ``kernels/cuda/<name>.cu`` defines."""
    source, _ = _read_sources(name)
    return _GLOBAL_RE.findall(source)


@dataclass(frozen=True)
class CompiledModule:
    """One compiled source: its cubin and where it came from."""

    name: str
    arch: str
    cubin: bytes
    key: str
    """sha256 of the sources, options, NVRTC version and architecture."""
    from_cache: bool
    path: Path | None
    """The cache file, or None when caching was off or the cache was not writable."""
    log: str
    """NVRTC's compile log (warnings); empty for a cache hit."""


def _cache_key(name: str, source: str, headers: dict[str, str], arch: str) -> str:
    h = hashlib.sha256()
    h.update(_CACHE_FORMAT + b"\0")
    h.update(f"{name}\0{arch}\0nvrtc {nvrtc_version()}\0".encode())
    for opt in NVRTC_OPTIONS:
        h.update(opt.encode() + b"\0")
    h.update(source.encode() + b"\0")
    for hname in sorted(headers):
        h.update(hname.encode() + b"\0" + headers[hname].encode() + b"\0")
    return h.hexdigest()


def _nvrtc_compile(
    name: str, source: str, headers: dict[str, str], arch: str, *, target: str = "cubin"
) -> tuple[bytes, str]:
    """NVRTC: source -> (cubin for ``arch`` | PTX for its virtual architecture, log)."""
    _, nvrtc, _ = _bindings()
    ok = nvrtc.nvrtcResult.NVRTC_SUCCESS
    hnames = sorted(headers)
    prog = _check(
        _nvrtc_call(
            nvrtc.nvrtcCreateProgram,
            source.encode(),
            f"{name}.cu".encode(),
            len(hnames),
            [headers[h].encode() for h in hnames],
            [h.encode() for h in hnames],
        ),
        "nvrtcCreateProgram",
    )
    try:
        gpu_arch = arch if target == "cubin" else arch.replace("sm_", "compute_")
        opts = [o.encode() for o in (*NVRTC_OPTIONS, f"--gpu-architecture={gpu_arch}")]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        size = _check(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
        buf = bytearray(max(size, 1))  # filled in place (never a shared bytes constant)
        _check(nvrtc.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
        log = bytes(buf).split(b"\0", 1)[0].decode(errors="replace").strip()
        if err != ok:
            raise CompileError(
                f"NVRTC could not compile kernels/cuda/{name}.cu for {arch} "
                f"({_err_name(err)}):\n{log}",
                log,
            )
        if target == "ptx":
            size = _check(nvrtc.nvrtcGetPTXSize(prog), "nvrtcGetPTXSize")
            out = bytearray(size)
            _check(nvrtc.nvrtcGetPTX(prog, out), "nvrtcGetPTX")
            return bytes(out).split(b"\0", 1)[0], log
        size = _check(nvrtc.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
        out = bytearray(size)
        _check(nvrtc.nvrtcGetCUBIN(prog, out), "nvrtcGetCUBIN")
        cubin = bytes(out)
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    if not cubin.startswith(b"\x7fELF"):
        raise CudaError(f"NVRTC returned no cubin for kernels/cuda/{name}.cu ({arch})")
    return cubin, log


def compile_source(
    name: str,
    arch: str | int | tuple[int, int] = "sm_90",
    *,
    cache: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> CompiledModule:
    """Compile ``kernels/cuda/<name>.cu`` to a cubin for ``arch`` (no GPU needed).

    ``cache``: the cache folder (default :func:`cache_dir`); ``use_cache=False`` always
    compiles and writes nothing. A cache that cannot be written only loses the caching.
    Raises :class:`CompileError` with NVRTC's log when the source does not compile.
    """
    arch = normalize_arch(arch)
    archs = supported_archs()
    if arch not in archs:
        raise CudaUnavailableError(
            f"this NVRTC {nvrtc_version()} cannot compile for {arch}; it supports "
            f"{', '.join(archs)} (a newer nvidia-cuda-nvrtc may: {INSTALL_HINT})"
        )
    source, headers = _read_sources(name)
    key = _cache_key(name, source, headers, arch)
    path = Path(cache if cache is not None else cache_dir()) / f"{name}-{arch}-{key[:32]}.cubin"
    if use_cache:
        with contextlib.suppress(OSError):
            data = path.read_bytes()
            if data.startswith(b"\x7fELF"):
                return CompiledModule(name, arch, data, key, True, path, "")
    cubin, log = _nvrtc_compile(name, source, headers, arch)
    stored: Path | None = None
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(cubin)
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            stored = path
        except OSError as exc:
            warnings.warn(
                f"vetrina: cannot write the CUDA kernel cache {path.parent}: {exc}; "
                f"set VETRINA_CACHE_DIR to a writable folder",
                RuntimeWarning,
                stacklevel=2,
            )
    return CompiledModule(name, arch, cubin, key, False, stored, log)


def compile_kernels(
    arch: str | int | tuple[int, int] = "sm_90",
    *,
    cache: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> dict[str, bytes]:
    """Compile every kernel source for ``arch``: ``{name: cubin}`` (no GPU needed)."""
    return {
        name: compile_source(name, arch, cache=cache, use_cache=use_cache).cubin for name in SOURCES
    }


compile_all = compile_kernels
"""Alias of :func:`compile_kernels`."""
