"""The scalar, SSE2 and AVX2 paths give identical bits, for every kernel and mode."""

from __future__ import annotations

import numpy as np
import pytest

from vetrina.kernels import _cpu, adapt, postprocess, preprocess

LEVELS = [0, 1, 2]
RNG = np.random.default_rng(99)


@pytest.fixture
def at_level():
    old = _cpu.set_simd(2)

    def run(level, fn, *args, **kw):
        _cpu.set_simd(level)
        try:
            return fn(*args, **kw)
        finally:
            _cpu.set_simd(old)

    yield run
    _cpu.set_simd(old)


def img(h, w, c):
    return RNG.integers(0, 256, (h, w, c), dtype=np.uint8)


IMAGES = [
    img(64, 96, 3),
    img(37, 53, 4),
    img(64, 96, 4)[:, :, :3],
    img(50, 40, 3)[::-1],
    img(33, 35, 3)[:, ::-1],
    img(20, 31, 1),
    img(256, 256, 3),
    img(7, 1, 3),
]


@pytest.mark.parametrize("interpolation", ["bilinear", "area", "bilinear-u8"])
@pytest.mark.parametrize("size", [(32, 48), (16, 24), (64, 96), (100, 30), (8, 8), (128, 128)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_preprocess_levels_agree(at_level, interpolation, size, dtype):
    kw = {
        "interpolation": interpolation,
        "dtype": dtype,
        "src_order": "BGR",
        "scale": (1 / 58.4, 0.5, 3e-39),
        "offset": (-2.1, 0, 1),
    }
    outs = [at_level(lv, preprocess, IMAGES, size, **kw) for lv in LEVELS]
    for o in outs[1:]:
        np.testing.assert_array_equal(
            o.view(np.uint16 if dtype == np.float16 else np.uint32),
            outs[0].view(np.uint16 if dtype == np.float16 else np.uint32),
        )


def test_preprocess_large_output_levels_agree(at_level):
    # 9 MiB of output: the size that once switched to streaming stores (removed: RESULTS.md)
    imgs = [img(512, 512, 3)] * 12
    for interpolation in ("bilinear", "area"):
        outs = [
            at_level(lv, preprocess, imgs, (256, 256), interpolation=interpolation) for lv in LEVELS
        ]
        np.testing.assert_array_equal(outs[1], outs[0])
        np.testing.assert_array_equal(outs[2], outs[0])


@pytest.mark.parametrize(
    "sizes", [None, [(34, 46), (34, 46)], [(68, 92), (9, 500)], [(5, 7), (17, 23)]]
)
@pytest.mark.parametrize("alpha", [False, True])
@pytest.mark.parametrize("interpolation", ["bilinear", "area"])
def test_postprocess_levels_agree(at_level, sizes, alpha, interpolation):
    b = (RNG.standard_normal((2, 3, 17, 23)) * 0.5 + 0.5).astype(np.float32)
    b.flat[::13] = np.nan
    b.flat[::17] = np.inf
    targets = sizes or [(17, 23)] * 2
    alphas = [RNG.integers(0, 256, hw, dtype=np.uint8) for hw in targets] if alpha else None
    if alpha:
        alphas[1] = alphas[1][::-1]
    kw = {"alphas": alphas, "interpolation": interpolation, "scale": (255, 128, -64), "offset": 3}
    outs = [at_level(lv, postprocess, b, sizes, **kw) for lv in LEVELS]
    for o in outs[1:]:
        for g, w in zip(o, outs[0], strict=True):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("size", [None, (40, 60), (9, 11)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_adapt_levels_agree(at_level, size, dtype):
    b = RNG.standard_normal((2, 4, 20, 30)).astype(np.float32)[:, :, :, ::-1]
    outs = [at_level(lv, adapt, b, size, dtype=dtype, scale=2.0) for lv in LEVELS]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_set_simd_validates_and_reports():
    old = _cpu.set_simd(1)
    try:
        assert _cpu.simd_level() in (0, 1)
        with pytest.raises(ValueError):
            _cpu.set_simd(3)
    finally:
        _cpu.set_simd(old)
    assert _cpu.simd_level() in (0, 1, 2)  # 2 where the CPU has AVX2 (x86-64 builds)
