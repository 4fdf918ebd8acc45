"""GPU memory sampling for `vetrina bench` on GPU devices, with a fake driver reading."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from vetrina.gpu_memory import MemorySampler, device_memory_reader


def test_sampler_keeps_the_peak_and_the_first_reading():
    values = itertools.chain([100, 300, 250], itertools.repeat(120))
    lock = threading.Lock()

    def read():
        with lock:
            return next(values)

    with MemorySampler(read, interval=0.001) as sampler:
        time.sleep(0.05)
    assert sampler.first == 100 and sampler.peak == 300 and sampler.samples >= 4


def test_unreadable_memory_gives_none():
    with MemorySampler(lambda: None, interval=0.001) as sampler:
        time.sleep(0.01)
    assert sampler.peak is None and sampler.first is None and sampler.samples >= 2
    with pytest.raises(ValueError, match="interval"):
        MemorySampler(lambda: 0, interval=0)


def test_without_a_gpu_the_reader_says_none():
    from vetrina.kernels import gpu

    if gpu.gpu_unavailable_reason() is None:
        assert device_memory_reader()() > 0
    else:
        assert device_memory_reader()() is None


def test_the_bench_table_shows_gpu_memory_only_when_measured(small_model):
    from vetrina.bench import bench_model

    report = bench_model(small_model, duration=0.2, warmup=0.05, size=(32, 32))
    assert report.results[0].gpu_memory_peak is None
    assert "GPU MiB" not in report.table()
    report.results[0].gpu_memory_peak = 3 * 2**20
    table = report.table()
    assert "GPU MiB (device)" in table and " 3.0" in table.splitlines()[3]
    again = type(report).from_json(report.to_json())
    assert again.results[0].gpu_memory_peak == 3 * 2**20
