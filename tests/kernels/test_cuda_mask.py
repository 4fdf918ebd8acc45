"""The clean stage's defect mask: kernels.defect_mask (CPU, OpenCV) against a brute-force
reference, and its CUDA twin (kernels/cuda/mask.cu via kernels.gpu_mask) against the CPU.

NVRTC compiles mask.cu for sm_80 and sm_90 in test_cuda_compile.py (every source in
``gpu.SOURCES``); here: its parameter layout, the host emulation of the very same source driven
by the launcher's own packing (bit for bit equal to the CPU: the kernels only compare and
select), bad input, and the same comparison on a real GPU (skipped without one).
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina import kernels
from vetrina.kernels import gpu_mask
from vetrina.kernels.composite import structuring_rows

from .test_cuda_compile import EmuBackend, build_emulation

F32 = np.float32


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    from vetrina.kernels import gpu

    libs, names = build_emulation(tmp_path_factory.mktemp("emu-mask"))
    return gpu.GpuKernels._with_backend(EmuBackend(libs, names))


def _brute(prob: np.ndarray, level: float, radius: int, on: float, off: float) -> np.ndarray:
    """Pixel by pixel: on where a pixel with prob >= level (float32) lies inside OpenCV's
    elliptical element centred there (pixels outside the map count as clean)."""
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    offsets = [(dy - radius, dx - radius) for dy, dx in zip(*np.nonzero(element), strict=True)]
    hit = prob[:, 0] >= F32(level)
    n, h, w = hit.shape
    out = np.full(prob.shape, F32(off), F32)
    for k in range(n):
        for y in range(h):
            for x in range(w):
                if any(
                    0 <= y + dy < h and 0 <= x + dx < w and hit[k, y + dy, x + dx]
                    for dy, dx in offsets
                ):
                    out[k, 0, y, x] = F32(on)
    return out


def _prob(shape, seed: int, density: float, specials: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.random(shape, dtype=F32)
    p = np.where(rng.random(shape) < density, p * F32(0.5) + F32(0.5), p * F32(0.5))
    if specials and p.size >= 5:
        p.flat[:5] = [np.nan, np.inf, -np.inf, -0.0, F32(0.5)]
    return p.astype(F32)


# ---------------------------------------------------------------------------------------------
# CPU: kernels.defect_mask
# ---------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2),
    h=st.integers(1, 17),
    w=st.integers(1, 17),
    radius=st.integers(0, 6),
    level=st.sampled_from([0.5, 0.7, 0.25, 0.999]),
    density=st.sampled_from([0.0, 0.02, 0.2, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_cpu_mask_equals_brute_force(n, h, w, radius, level, density, seed):
    prob = _prob((n, 1, h, w), seed, density, specials=seed % 3 == 0)
    got = kernels.defect_mask(prob, level, radius, on=1.0, off=-1.0)
    np.testing.assert_array_equal(got, _brute(prob, level, radius, 1.0, -1.0))


def test_cpu_level_is_compared_in_float32():
    """NumPy compares a float32 map with a Python float in float32: float32(0.7) < 0.7 is
    still a defect at level 0.7."""
    prob = np.full((1, 1, 1, 2), F32(0.7), F32)
    prob[0, 0, 0, 1] = np.nextafter(F32(0.7), F32(0))
    assert kernels.defect_mask(prob, 0.7).ravel().tolist() == [1.0, 0.0]


def test_cpu_bad_input():
    good = np.zeros((1, 1, 4, 4), F32)
    with pytest.raises(ValueError, match=r"defect_mask: prob is float64"):
        kernels.defect_mask(good.astype(np.float64), 0.5)
    with pytest.raises(ValueError, match=r"expected float32 \(N, 1, H, W\)"):
        kernels.defect_mask(np.zeros((1, 3, 4, 4), F32), 0.5)
    with pytest.raises(ValueError, match=r"radius is 65; expected an int in 0\.\.64"):
        kernels.defect_mask(good, 0.5, 65)
    with pytest.raises(ValueError, match=r"finite numbers"):
        kernels.defect_mask(good, float("nan"))
    with pytest.raises(TypeError, match=r"expected a numpy array"):
        kernels.defect_mask([[0.5]], 0.5)


def test_structuring_rows_are_opencvs_element():
    for r in (0, 1, 2, 7, 64):
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)
        half = structuring_rows(r)
        rebuilt = np.abs(np.arange(-r, r + 1))[None, :] <= half[:, None]
        np.testing.assert_array_equal(rebuilt, element.astype(bool))


# ---------------------------------------------------------------------------------------------
# layout and code
# ---------------------------------------------------------------------------------------------


def test_mask_is_a_source_with_both_kernels():
    from vetrina.kernels import gpu

    assert "mask" in gpu.SOURCES
    assert gpu.kernel_names("mask") == ["vt_mask_rows", "vt_mask_dilate"]


def test_parameter_layout_matches_the_struct():
    """The packing constants equal the offsets mask.cu static_asserts (checked by NVRTC and by
    the g++ build of the emulation)."""
    from vetrina.kernels import gpu

    text = (gpu.SOURCE_DIR / "mask.cu").read_text()
    at = {f: int(o) for f, o in re.findall(r"VT_AT\(VtMask, (\w+), (\d+)\)", text)}
    assert at == {"h": 8, "w": 12, "r": 16, "level": 20, "on": 24, "off": 28, "half": 32}
    assert gpu_mask._HEAD.size == gpu_mask._HALF_AT == 32
    (size,) = re.findall(r"VT_SIZE\(VtMask, (\d+)\)", text)
    assert int(size) == gpu_mask._SIZE
    radius = int(re.search(r"#define VT_MASK_MAX_RADIUS (\d+)", text).group(1))
    assert radius == kernels.MAX_DEFECT_RADIUS
    assert gpu_mask._HALF_AT + 4 * (2 * radius + 1) <= gpu_mask._SIZE


# ---------------------------------------------------------------------------------------------
# host emulation == CPU
# ---------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    radius=st.sampled_from([0, 1, 2, 3, 5, 9]),
    level=st.sampled_from([0.5, 0.7, 0.05]),
    density=st.sampled_from([0.0, 0.01, 0.1, 0.6]),
    values=st.sampled_from([(1.0, 0.0), (1.0, -1.0), (255.0, 0.0), (-0.0, 0.0)]),
    seed=st.integers(0, 2**16),
)
def test_emulated_mask_equals_cpu(emu, n, h, w, radius, level, density, values, seed):
    prob = _prob((n, 1, h, w), seed, density, specials=seed % 2 == 0)
    on, off = values
    want = kernels.defect_mask(prob, level, radius, on=on, off=off)
    got = gpu_mask.defect_mask(emu, prob, level, radius, on=on, off=off)
    assert got.dtype == F32 and got.shape == prob.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_emulated_largest_radius_and_edges(emu):
    """Radius 64 on a map smaller than the element: every row and column clipped."""
    prob = np.zeros((2, 1, 50, 90), F32)
    prob[0, 0, 0, 0] = 1.0
    prob[1, 0, 49, 45] = 1.0
    want = kernels.defect_mask(prob, 0.5, 64)
    np.testing.assert_array_equal(gpu_mask.defect_mask(emu, prob, 0.5, 64), want)
    assert 0 < want[0].sum() < want[0].size and want[0, 0, 49, 89] == 0


def test_emulated_bad_input(emu):
    good = np.zeros((1, 1, 4, 4), F32)
    with pytest.raises(ValueError, match=r"defect_mask: radius is 65"):
        gpu_mask.defect_mask(emu, good, 0.5, 65)
    with pytest.raises(ValueError, match=r"defect_mask: prob is float64"):
        gpu_mask.defect_mask(emu, good.astype(np.float64), 0.5)
    with pytest.raises(ValueError, match=r"batch_shape is \(1, 3, 4, 4\)"):
        gpu_mask.defect_mask(emu, np.zeros((1, 3, 4, 4), F32), 0.5)
    with pytest.raises(ValueError, match=r"finite numbers"):
        gpu_mask.defect_mask_async(emu, 1, (1, 1, 4, 4), 1, 1, level=0.5, on=float("inf"))
    with pytest.raises(ValueError, match=r"prob is a null device pointer"):
        gpu_mask.defect_mask_async(emu, 0, (1, 1, 4, 4), 1, 1, level=0.5)
    assert gpu_mask.scratch_bytes((2, 1, 3, 5)) == 30


# ---------------------------------------------------------------------------------------------
# a real GPU (skipped without one)
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_gpu_mask_equals_cpu():
    from vetrina.kernels import gpu

    reason = gpu.gpu_unavailable_reason()
    if reason is not None:
        pytest.skip(f"needs a CUDA GPU: {reason}")
    with gpu.GpuKernels(0) as gk:
        for radius in (0, 3, 64):
            prob = _prob((3, 1, 517, 389), seed=radius, density=0.002, specials=True)
            want = kernels.defect_mask(prob, 0.5, radius, on=1.0, off=-1.0)
            got = gpu_mask.defect_mask(gk, prob, 0.5, radius, on=1.0, off=-1.0)
            np.testing.assert_array_equal(got, want)
