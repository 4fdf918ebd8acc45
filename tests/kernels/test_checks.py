"""kernels._checks.per_channel: its cached fast path for Python numbers against NumPy's
float64 -> float32 conversion, bit for bit, errors included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vetrina.kernels._checks import per_channel


def _numpy_way(value, n: int) -> np.ndarray | None:
    """What the general path computes (None where it refuses the value)."""
    arr = np.asarray(value, dtype=np.float64)
    arr = np.full(n, float(arr), np.float64) if arr.ndim == 0 else arr
    if arr.shape != (n,):
        return None
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32)
    return out if np.isfinite(out).all() else None


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**130), 2**130),
    st.sampled_from([0.0, -0.0, 3.4028235e38, 3.4028236e38, -3.40282357e38, 1 / 255]),
)


@given(
    value=st.one_of(
        numbers,
        st.lists(numbers, min_size=1, max_size=4),
        st.lists(numbers, min_size=1, max_size=4).map(tuple),
    ),
    n=st.sampled_from([1, 3, 4]),
)
def test_per_channel_equals_numpy_bit_for_bit(value, n):
    want = _numpy_way(value, n)
    for _ in range(2):  # the second call comes from the cache
        if want is None:
            with pytest.raises(ValueError, match="x"):
                per_channel("f", "x", value, n)
        else:
            got = per_channel("f", "x", value, n)
            assert got.dtype == np.float32 and got.shape == (n,)
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (value, got, want)


def test_zero_signs_do_not_share_a_cache_entry():
    assert np.signbit(per_channel("f", "x", 0.0)).tolist() == [False] * 3
    assert np.signbit(per_channel("f", "x", -0.0)).tolist() == [True] * 3
    assert np.signbit(per_channel("f", "x", (0.0, -0.0, 0))).tolist() == [False, True, False]


def test_results_are_fresh_arrays():
    a = per_channel("f", "x", 0.5)
    a[0] = 7.0
    assert per_channel("f", "x", 0.5).tolist() == [0.5] * 3


def test_booleans_and_other_types_take_the_general_path():
    with pytest.raises(ValueError, match="x is True"):
        per_channel("f", "x", True)
    assert per_channel("f", "x", np.float32(2.0)).tolist() == [2.0] * 3
    assert per_channel("f", "x", np.array([1, 2, 3])).tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="x is 'a'"):
        per_channel("f", "x", "a")


@pytest.mark.parametrize("value", [2**1100, (1, 2**1100, 3), [-(2**1100)] * 3])
def test_integers_beyond_float64_are_value_errors(value):
    with pytest.raises(ValueError, match="expected a finite number"):
        per_channel("f", "x", value)


def test_the_host_cost_benchmark_runs_without_a_gpu():
    """benchmarks/gpu_host_cost.py times the *_async calls' host work over a backend that
    launches nothing; it must keep running on machines without a GPU."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_host_cost.py"
    run = subprocess.run(
        [sys.executable, str(script), "--rounds", "1", "--calls", "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "matte_to_alpha_async", "preprocess_async", "postprocess_async", "adapt_async",
    ]  # fmt: skip
    assert all(float(line.split()[1]) > 0 for line in lines)
