"""Per-step wall-clock accounting for the CLI, the demo and benchmarks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class StepTimes:
    """Accumulated seconds and call counts per named step, in first-seen order.

    Thread-safe: batcher workers running one editor add to the same instance.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the body of a ``with`` block and add it to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float, calls: int = 1) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + calls

    def merge(self, other: StepTimes) -> None:
        with other._lock:
            items = [(name, secs, other.calls[name]) for name, secs in other.seconds.items()]
        for name, secs, calls in items:
            self.add(name, secs, calls)

    def table(self, title: str = "step") -> str:
        """A fixed-width table: step, calls, total ms, ms per call."""
        width = max([len(title)] + [len(n) for n in self.seconds])
        lines = [f"{title:<{width}}  {'calls':>5}  {'total ms':>10}  {'ms/call':>9}"]
        for name, secs in self.seconds.items():
            n = self.calls[name]
            lines.append(f"{name:<{width}}  {n:>5}  {secs * 1e3:>10.1f}  {secs * 1e3 / n:>9.2f}")
        return "\n".join(lines)
