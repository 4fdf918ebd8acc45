"""The load and the statistics of ``vetrina bench``: closed-loop client threads that warm
up, start together at a barrier and send requests until ``duration`` has passed
(:func:`drive`), and one (batch, concurrency) run's latency percentiles, throughput, step
means and window stability (:func:`summarise`, :class:`BenchResult`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .timing import StepTimes

NOISY_CV = 0.10
"""Throughput coefficient of variation across windows above which a run is flagged noisy."""

Request = Callable[[], StepTimes]
"""Runs one request and returns the seconds each of its steps took."""


@dataclass
class BenchResult:
    """The measurements of one (batch, concurrency) combination."""

    batch: int
    concurrency: int
    requests: int
    images: int
    elapsed_s: float
    throughput: float
    """Images per second: ``images / elapsed_s``."""
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    step_ms: dict[str, float]
    """Mean milliseconds per request spent in each step (pipelines: the step's total time
    over all client threads divided by the requests)."""
    step_calls: dict[str, int]
    """Times each step ran (per image for decode/encode, per batch for the model steps)."""
    window_images: list[int]
    """Images answered in each of the equal time windows the elapsed time is split into."""
    window_throughput: list[float]
    cv: float
    """Coefficient of variation (std / mean) of the windows' throughput."""
    noisy: bool
    warning: str | None
    rss_before: int | None
    """Resident bytes before the model was opened (None where unknown)."""
    rss_after: int | None
    peak_rss: int | None
    peak_rss_scope: str
    """'run': peak of this combination; 'process': since the process started (no reset)."""
    gpu_memory_peak: int | None = None
    """GPU runs: peak bytes in use on the device during the run (cudaMemGetInfo, the whole
    device, sampled every 20 ms); None on the CPU or where it cannot be read."""


@dataclass
class Record:
    start: float
    end: float
    times: StepTimes


def drive(
    make_request: Callable[[], Request],
    clients: int,
    warmup: float,
    duration: float,
    on_start: Callable[[], None] | None = None,
) -> tuple[list[Record], float]:
    """Run ``clients`` closed-loop threads: warm-up, a barrier, then measured requests until
    each client's latest answer came ``duration`` seconds or more after the start. Returns
    every measured request and the measurement start. ``on_start`` runs at the barrier, when
    every client has finished its warm-up and none has started measuring."""
    start: list[float] = []

    def begin() -> None:
        if on_start is not None:
            on_start()
        start.append(time.perf_counter())

    barrier = threading.Barrier(clients, action=begin)
    stop = threading.Event()
    errors: list[BaseException] = []
    records: list[list[Record]] = [[] for _ in range(clients)]
    warm_end = time.perf_counter() + warmup

    def client(k: int) -> None:
        try:
            request = make_request()
            while warmup > 0 and not stop.is_set():
                request()
                if time.perf_counter() >= warm_end:
                    break
            barrier.wait()
            end, last = start[0] + duration, start[0]
            # Send until an answer arrives after the end (at least one request per client).
            while not stop.is_set() and (last < end or not records[k]):
                begin = time.perf_counter()
                times = request()
                last = time.perf_counter()
                records[k].append(Record(begin, last, times))
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:  # re-raised in the caller after the join
            errors.append(exc)
            stop.set()
            barrier.abort()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [r for rs in records for r in rs], start[0]


def summarise(
    records: list[Record],
    t0: float,
    batch: int,
    clients: int,
    steps: list[str],
    shared: StepTimes | None = None,
) -> BenchResult:
    """Latency percentiles, throughput, step means and window stability of one run.
    ``shared``: step times pooled over all requests (a pipeline's), added to the requests'."""
    latency_ms = np.array([r.end - r.start for r in records]) * 1e3
    elapsed = max(r.end for r in records) - t0
    images = len(records) * batch
    counts = window_counts([r.end - t0 for r in records], elapsed, batch)
    window_s = elapsed / len(counts)
    rates = [n / window_s for n in counts]
    cv = float(np.std(rates) / np.mean(rates))
    totals = StepTimes()
    for r in records:
        totals.merge(r.times)
    if shared is not None:
        totals.merge(shared)
    steps = steps + [name for name in totals.seconds if name not in steps]  # unforeseen ones
    p50, p90, p99 = (float(v) for v in np.percentile(latency_ms, [50, 90, 99]))
    noisy = cv > NOISY_CV
    return BenchResult(
        batch=batch,
        concurrency=clients,
        requests=len(records),
        images=images,
        elapsed_s=elapsed,
        throughput=images / elapsed,
        mean_ms=float(latency_ms.mean()),
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        max_ms=float(latency_ms.max()),
        step_ms={s: totals.seconds.get(s, 0.0) * 1e3 / len(records) for s in steps},
        step_calls={s: totals.calls.get(s, 0) for s in steps},
        window_images=counts,
        window_throughput=rates,
        cv=cv,
        noisy=noisy,
        warning=noise_warning(batch, clients, cv, len(counts)) if noisy else None,
        rss_before=None,
        rss_after=None,
        peak_rss=None,
        peak_rss_scope="process",
    )


def window_counts(ends: list[float], elapsed: float, batch: int) -> list[int]:
    """Images answered per equal window of ``elapsed`` (5 windows, 3 for short runs)."""
    windows = 5 if len(ends) >= 25 else 3
    counts = [0] * windows
    for end in ends:
        counts[min(windows - 1, int(end / elapsed * windows))] += batch
    return counts


def noise_warning(batch: int, clients: int, cv: float, windows: int) -> str:
    return (
        f"batch {batch} x concurrency {clients}: throughput varied {cv * 100:.1f}% across "
        f"{windows} windows (CV > {NOISY_CV * 100:.0f}%); the numbers are noisy — run longer "
        "(--duration), warm up longer (--warmup) or stop other load on the machine"
    )
