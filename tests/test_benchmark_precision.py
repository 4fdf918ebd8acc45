"""benchmarks/precision.py's timing helpers (the benchmark itself needs the zoo and minutes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "precision.py"


@pytest.fixture(scope="module")
def precision():
    spec = importlib.util.spec_from_file_location("bench_precision", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_ratio_is_the_median_of_round_ratios(precision):
    fp32 = [10.0, 30.0, 12.0, 11.0, 40.0]
    int8 = [5.0, 10.0, 8.0, 5.5, 40.0]
    assert precision.paired_ratio(fp32, int8) == 2.0  # round ratios 2, 3, 1.5, 2, 1
    # one lucky round for one contender: best over best says 10, the rounds' median 2
    assert precision.paired_ratio([10.0, 10.0, 10.0], [5.0, 5.0, 1.0]) == 2.0


@pytest.mark.parametrize(("a", "b"), [([], []), ([1.0], [1.0, 2.0])])
def test_paired_ratio_rejects_unequal_or_empty_series(precision, a, b):
    with pytest.raises(ValueError, match="equal, non-empty"):
        precision.paired_ratio(a, b)


def test_interleaved_times_runs_every_contender_each_round(precision):
    calls: list[str] = []
    times = precision.interleaved_times(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3
    )
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3  # two warm-ups each, then rounds
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    assert all(t >= 0.0 for v in times.values() for t in v)
