"""GPU memory in use during a benchmark run, sampled from the CUDA driver.

``cudaMemGetInfo`` reports the whole device (every process and context on it), so the numbers
are "device memory in use", not this process's alone; the report says so. Sampling runs on a
background thread every ``interval`` seconds while the run lasts, so a short spike between two
samples can be missed; the peak is at least what was seen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Reader = Callable[[], "int | None"]


def device_memory_reader(device: int = 0) -> Reader:
    """A function returning the bytes in use on CUDA device ``device`` (None when it cannot
    be read: no GPU, no cuda-python)."""

    def read() -> int | None:
        try:
            from cuda.bindings import runtime

            from vetrina.kernels import gpu

            if gpu.gpu_unavailable_reason() is not None:
                return None
            gpu._Context.get(device)  # the primary context, current on this thread
            err, free, total = runtime.cudaMemGetInfo()
        except Exception:  # a reading is best effort: the benchmark itself must not fail
            return None
        return int(total) - int(free) if int(err) == 0 else None

    return read


class MemorySampler:
    """``with MemorySampler(read) as s: ...`` -> ``s.peak`` (bytes, None if never read) and
    ``s.first`` (the reading at the start)."""

    def __init__(self, read: Reader, interval: float = 0.02) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self._read = read
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.first: int | None = None
        self.peak: int | None = None
        self.samples = 0

    def _take(self) -> None:
        value = self._read()
        self.samples += 1
        if value is not None:
            if self.first is None:
                self.first = value
            self.peak = value if self.peak is None else max(self.peak, value)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._take()

    def __enter__(self) -> MemorySampler:
        self._take()
        self._thread = threading.Thread(target=self._loop, name="gpu-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._take()
