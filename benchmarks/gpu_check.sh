#!/usr/bin/env bash
# One-shot GPU check of vetrina's CUDA kernels. Run from the repository root on a machine with
# an NVIDIA GPU:
#
#     OUT=/some/folder bash benchmarks/gpu_check.sh        # OUT defaults to ./gpu-check-out
#
# Installs nothing and needs no network. Uses python3 (or $PYTHON) with whatever it has; each
# step is bounded by a timeout, a failing or impossible step is reported and the script goes on,
# and the summary at the end says what ran and what could not. Files written under $OUT:
#   gpu_check.log  everything below        build.log      the Cython build
#   pytest_gpu.log GPU + emulation tests   bench.txt      benchmark table (markdown)
#   bench.json     benchmark numbers       sanitizer.log  compute-sanitizer memcheck
#   ncu.txt        Nsight Compute sections per kernel (NCU_PROFILE=1)
#
# Steps: 1 environment (onnxruntime providers, tensorrt, nvidia-smi, packages), 2 build the
# CPU kernels in place (setup.py build_ext --inplace, else cython + cc directly), 3 make
# `import vetrina` work from this tree (symlinked package on PYTHONPATH, nothing installed),
# 4 pytest: tests/kernels/test_cuda_gpu.py, test_cuda_alpha.py, test_cuda_clamp.py,
# test_cuda_mask.py (GPU vs CPU), tests/engine/test_device_chain.py (the pipeline's GPU data
# path), test_gpu_memory.py (device memory readings) + test_cuda_compile.py (NVRTC; its
# host-emulation tests are left to CI), 5 benchmarks/kernels_gpu.py, 6 compute-sanitizer
# memcheck of the GPU comparison tests (only if under 150 s were used so far), 7 with
# NCU_PROFILE=1: Nsight Compute's profile of one launch of each benchmark case (ncu.txt).
#
# SKIP="tests bench sanitizer" leaves those steps out (a rerun after a kernel change, say).
set -u -o pipefail

ROOT="$(pwd)"
if [ ! -f "$ROOT/kernels/gpu.py" ] || [ ! -f "$ROOT/setup.py" ]; then
    echo "run this from the vetrina repository root (kernels/gpu.py not found in $ROOT)" >&2
    exit 2
fi
OUT="${OUT:-$ROOT/gpu-check-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d -t vetrina-gpu-check.XXXXXX)"
export PYTHONUNBUFFERED=1
export PYTHONDONTWRITEBYTECODE=1
export VETRINA_CACHE_DIR="$WORK/cache"      # fresh NVRTC cubin cache
export MPLBACKEND=Agg
START=$(date +%s)
declare -a SUMMARY=()
note() { SUMMARY+=("$1"); }
section() { echo; echo "=== [$(( $(date +%s) - START ))s] $* ==="; }
have_mod() { "$PY" -c "import $1" >/dev/null 2>&1; }
SKIP=" ${SKIP:-} "
skipped() { case "$SKIP" in *" $1 "*) note "$1: skipped (SKIP)"; return 0;; esac; return 1; }

main() {
# ---------------------------------------------------------------------------------------------
section "1. environment"
"$PY" -c "import onnxruntime; print(onnxruntime.get_available_providers())" \
    || echo "onnxruntime: not importable"
if "$PY" -c "import tensorrt; print('import tensorrt works:', tensorrt.__version__)"; then :; else
    echo "import tensorrt: FAILS (not installed)"
fi
nvidia-smi -L || echo "nvidia-smi -L failed"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
    --format=csv 2>/dev/null || true
echo "python: $(command -v "$PY") $("$PY" -V 2>&1)"
uname -srm
"$PY" - <<'EOF'
import importlib, importlib.metadata as md, sys
mods = {"numpy": "numpy", "cv2": "opencv-python-headless", "Cython": "Cython",
        "setuptools": "setuptools", "pytest": "pytest", "hypothesis": "hypothesis",
        "pytest_timeout": "pytest-timeout", "cuda.bindings": "cuda-bindings",
        "cuda.pathfinder": "cuda-pathfinder"}
for dist in ("cuda-core", "torch", "cupy-cuda13x", "cupy-cuda12x"):  # versions only: slow imports
    try:
        print(f"  {dist:<24} {md.version(dist)}")
    except md.PackageNotFoundError:
        pass
for mod, dist in mods.items():
    try:
        importlib.import_module(mod)
        try:
            ver = md.version(dist)
        except md.PackageNotFoundError:
            ver = "?"
        print(f"  {mod:<16} yes  {ver}")
    except Exception as exc:
        print(f"  {mod:<16} NO   ({type(exc).__name__}: {exc})")
for dist in ("nvidia-cuda-nvrtc", "nvidia-cuda-nvrtc-cu12", "cuda-toolkit", "cuda-python"):
    try:
        print(f"  {dist:<24} {md.version(dist)}")
    except md.PackageNotFoundError:
        pass
try:
    from cuda.bindings import nvrtc, runtime
    print("  NVRTC", nvrtc.nvrtcVersion()[1:], "archs", nvrtc.nvrtcGetSupportedArchs()[1])
    print("  cudaGetDeviceCount", runtime.cudaGetDeviceCount(),
          "driver API", runtime.cudaDriverGetVersion()[1])
except Exception as exc:
    print("  cuda.bindings check failed:", type(exc).__name__, exc)
EOF
command -v nvcc >/dev/null && nvcc --version | tail -n 2
command -v gcc >/dev/null && gcc --version | head -n 1 || echo "gcc: not found"

# ---------------------------------------------------------------------------------------------
section "2. build the Cython CPU kernels in place"
built=no
if have_mod Cython && have_mod setuptools; then
    if timeout 180 "$PY" setup.py build_ext --inplace -q >"$OUT/build.log" 2>&1; then
        built="setup.py build_ext --inplace"
    else
        echo "setup.py build_ext failed (tail of build.log):"; tail -n 15 "$OUT/build.log"
    fi
fi
if [ "$built" = no ] && have_mod Cython; then
    echo "building directly with cython + cc (same flags as setup.py)"
    EXT=$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
    INC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
    ok=yes
    for pyx in kernels/*.pyx; do
        mod=$(basename "$pyx" .pyx)
        {
            "$PY" -m cython -3 --directive \
                boundscheck=False,wraparound=False,cdivision=True,initializedcheck=False \
                "$pyx" -o "$WORK/$mod.c" &&
            ${CC:-cc} -shared -fPIC -O3 -fopenmp -ffp-contract=off -fno-math-errno \
                -I"$INC" "$WORK/$mod.c" -o "kernels/$mod$EXT"
        } >>"$OUT/build.log" 2>&1 || ok=no
    done
    if [ $ok = yes ]; then built="cython + cc"; else tail -n 15 "$OUT/build.log"; fi
fi
echo "CPU kernels build: $built"
note "build of the CPU kernels: $built"

# ---------------------------------------------------------------------------------------------
section "3. import vetrina from this tree"
SITE="$WORK/site"
mkdir -p "$SITE/vetrina"
for f in "$ROOT"/engine/*; do ln -s "$f" "$SITE/vetrina/$(basename "$f")"; done
for p in kernels converters models; do ln -s "$ROOT/$p" "$SITE/vetrina/$p"; done
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
cpu_ok=no
if "$PY" -c "import vetrina.kernels as k, numpy as np; \
print('vetrina.kernels from', k.__file__); \
print('CPU preprocess ok', k.preprocess([np.zeros((4, 4, 3), np.uint8)], (2, 2)).shape)"; then
    cpu_ok=yes
fi
"$PY" -c "import sys, vetrina.kernels.gpu as g; \
assert not [m for m in sys.modules if m.startswith('cuda')], 'import loaded CUDA'; \
print('GPU:', g.gpu_unavailable_reason() or 'available')" || true
note "import vetrina.kernels (CPU kernels usable): $cpu_ok"

# ---------------------------------------------------------------------------------------------
section "4. GPU tests (GPU vs CPU kernels) and NVRTC compile tests"
if skipped tests; then :
elif [ $cpu_ok = yes ] && have_mod pytest; then
    # the host-emulation tests (test_cuda_compile.py -k emulated) run in CI; skip them here
    # pytest-xdist, where installed, spreads the tests over 8 processes (one CUDA context each)
    PARALLEL=()
    have_mod xdist && PARALLEL=(-n 8)
    timeout 240 "$PY" -m pytest -p no:cacheprovider -q -rs -o addopts="" "${PARALLEL[@]}" \
        tests/kernels/test_cuda_gpu.py tests/kernels/test_cuda_compile.py \
        tests/kernels/test_cuda_alpha.py tests/kernels/test_cuda_clamp.py tests/kernels/test_cuda_mask.py \
        tests/engine/test_device_chain.py tests/engine/test_gpu_memory.py \
        -k "not emulated and not emulation and not shipped and not onnxruntime" \
        2>&1 | tee "$OUT/pytest_gpu.log"
    rc=${PIPESTATUS[0]}
    note "pytest test_cuda_gpu.py + test_cuda_compile.py: exit $rc ($(tail -n 1 "$OUT/pytest_gpu.log"))"
else
    note "pytest: NOT RUN (CPU kernels: $cpu_ok, pytest importable: $(have_mod pytest && echo yes || echo no))"
fi

# ---------------------------------------------------------------------------------------------
section "5. GPU kernel benchmark"
if skipped bench; then :
elif [ $cpu_ok = yes ]; then
    timeout 150 "$PY" benchmarks/kernels_gpu.py --json "$OUT/bench.json" 2>&1 \
        | tee "$WORK/bench.out"
    rc=${PIPESTATUS[0]}
    sed -n '/^GPU kernel benchmark on/,$p' "$WORK/bench.out" >"$OUT/bench.txt"
    note "benchmark: exit $rc (table in bench.txt, numbers in bench.json)"
else
    note "benchmark: NOT RUN (vetrina.kernels not importable)"
fi

# ---------------------------------------------------------------------------------------------
section "6. compute-sanitizer memcheck (GPU tests, out-of-bounds and API errors)"
SAN="$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)"
ELAPSED=$(( $(date +%s) - START ))
if skipped sanitizer; then :
elif [ -z "$SAN" ]; then
    note "compute-sanitizer: NOT RUN (not found)"
elif [ $cpu_ok != yes ]; then
    note "compute-sanitizer: NOT RUN (vetrina.kernels not importable)"
elif [ $ELAPSED -gt 150 ]; then
    note "compute-sanitizer: NOT RUN (time: ${ELAPSED}s used)"
else
    timeout 75 "$SAN" --tool memcheck --leak-check no --report-api-errors no --error-exitcode 99 \
        "$PY" -m pytest -p no:cacheprovider -q -x -o addopts="" \
        tests/kernels/test_cuda_gpu.py -k "matches_cpu or match_cpu or tile_blend" >"$OUT/sanitizer.log" 2>&1
    rc=$?
    tail -n 25 "$OUT/sanitizer.log"
    note "compute-sanitizer memcheck of the GPU tests: exit $rc (99 = errors found, 124 = timeout)"
fi

# ---------------------------------------------------------------------------------------------
section "7. Nsight Compute profile of each benchmark case (NCU_PROFILE=1)"
NCU="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -n 1)"
if [ "${NCU_PROFILE:-0}" != 1 ]; then
    note "ncu profile: not asked for (NCU_PROFILE=1)"
elif [ -z "$NCU" ] || [ $cpu_ok != yes ]; then
    note "ncu profile: NOT RUN (ncu: ${NCU:-not found}, CPU kernels: $cpu_ok)"
else
    # --clock-control none: the card's clocks as found (ncu would otherwise lock them)
    timeout 150 "$NCU" --clock-control none -k regex:^vt_ \
        --section SpeedOfLight --section LaunchStats --section Occupancy \
        --section MemoryWorkloadAnalysis --section SchedulerStats --section WarpStateStats \
        "$PY" benchmarks/kernels_gpu.py --once >"$OUT/ncu.txt" 2>&1
    rc=$?
    grep -E "^  vt_|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per" \
        "$OUT/ncu.txt" | head -n 120
    note "ncu profile: exit $rc (ncu.txt)"
fi

# ---------------------------------------------------------------------------------------------
section "summary ($(( $(date +%s) - START ))s)"
for line in "${SUMMARY[@]}"; do echo "- $line"; done
if [ -f "$OUT/bench.txt" ]; then echo; cat "$OUT/bench.txt"; fi
}

main 2>&1 | tee "$OUT/gpu_check.log"
rm -rf "$WORK"
