"""Dynamic batching benchmark: concurrent edit requests served one at a time vs batched.

    python benchmarks/batching.py [--clients 8] [--duration 10] [--rounds 2] [--json PATH]

The zoo enhancer (``models/zoo/enhancer.pt``, converted with ``vetrina.converters`` into a
temporary folder, or ``--model`` an already converted ONNX file) edits 256x256 RGB images sent
by ``--clients`` closed-loop client threads (each sends its next request when the previous one
is answered), served

* **serial**: ``Editor.edit([image])`` behind a lock, one request at a time (batch 1), the way
  a service without a batcher shares one model;
* **batched**: :class:`vetrina.batching.EditorBatcher` (``--max-batch`` 8, ``--max-wait-ms`` 5,
  ``--workers`` 1), the same model session.

The two run alternately for ``--rounds`` rounds of ``--duration`` seconds each (so a busy
neighbour slows both alike); reported: throughput (requests/s), p50/p99 latency, the mean batch
size, and the throughput ratio. At concurrency 1 the batcher can only add latency (a lone
request waits ``max_wait`` for company): the p50 of one client through the batcher minus the
p50 of direct ``edit`` calls. Then a steady-state memory check: warm-up, RSS, 2,000 requests
through the batcher from all clients, RSS again, and the minor page faults per request (each
4 KiB page of fresh memory from the kernel faults once; memory reused from earlier requests
does not).

Goals (checked and printed): batched throughput >= 1.1x serial at 8 clients; added latency at
concurrency 1 <= max_wait + 1 ms; RSS growth over the 2,000 requests within 5%. Every batched
result is also checked byte-for-byte against the same image edited alone.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from vetrina.batching import EditorBatcher  # noqa: E402
from vetrina.editor import Editor  # noqa: E402
from vetrina.model import Model  # noqa: E402

ZOO_ENHANCER = Path(__file__).resolve().parents[1] / "models" / "zoo" / "enhancer.pt"
GOAL_RATIO = 1.1
GOAL_RSS_GROWTH = 0.05

Call = Callable[[np.ndarray], np.ndarray]


def rss_bytes() -> tuple[int, str]:
    """Current resident set size and how it was read."""
    try:
        import psutil  # type: ignore[import-not-found]

        return psutil.Process().memory_info().rss, "psutil"
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"), "/proc/self/statm"
    except OSError:
        import resource

        # Peak, not current (kilobytes on Linux): an upper bound of the growth at least.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "ru_maxrss (peak)"


def make_images(n: int, size: int) -> list[np.ndarray]:
    """Smooth random product-like images, one per client."""
    rng = np.random.default_rng(0)
    return [
        cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (7, 7), 2.0)
        for _ in range(n)
    ]


def drive(call: Call, images: list[np.ndarray], *, duration: float | None, requests: int = 0):
    """Closed-loop clients, one thread per image, until ``duration`` seconds have passed (or
    ``requests`` in total have been sent). Returns (latencies in s, wall seconds, outputs)."""
    latencies: list[list[float]] = [[] for _ in images]
    outputs: list[np.ndarray | None] = [None] * len(images)
    errors: list[BaseException] = []
    budget = [requests]
    budget_lock = threading.Lock()
    start = time.perf_counter()
    end = start + duration if duration is not None else float("inf")

    def take() -> bool:
        if duration is not None:
            return time.perf_counter() < end
        with budget_lock:
            budget[0] -= 1
            return budget[0] >= 0

    def client(k: int) -> None:
        try:
            while take():
                t0 = time.perf_counter()
                outputs[k] = call(images[k])
                latencies[k].append(time.perf_counter() - t0)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    return [x for lat in latencies for x in lat], wall, outputs


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    lat = np.array(latencies) * 1e3
    return {
        "requests": len(lat),
        "seconds": wall,
        "throughput_rps": len(lat) / wall if wall else 0.0,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def run(args: argparse.Namespace, model_path: Path) -> dict:
    model = Model.open(model_path, threads=args.threads)
    serial_editor = Editor(model, batch_size=1)
    images = make_images(args.clients, args.size)
    alone = [serial_editor.edit([im])[0] for im in images]
    lock = threading.Lock()

    def direct_one(image: np.ndarray) -> np.ndarray:
        return serial_editor.edit([image])[0]

    def serial(image: np.ndarray) -> np.ndarray:
        with lock:
            return serial_editor.edit([image])[0]

    batched_model, solo = model, None
    if args.batched_threads is not None and args.batched_threads != args.threads:
        # The batcher's own session: e.g. 2 workers x 1 intra-op thread each, so two batches
        # run side by side instead of one batch split over both cores; a lone request still
        # runs on the serial side's session (all threads) with --solo.
        batched_model = Model.open(model_path, threads=args.batched_threads)
        solo = Editor(model, batch_size=1) if args.solo else None
    batched_editor = Editor(batched_model, batch_size=args.max_batch)
    service = EditorBatcher(
        batched_editor,
        max_batch_size=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=max(4 * args.clients, args.max_batch),
        workers=args.workers,
        solo_editor=solo,
    )
    warm = min(1.0, args.duration / 4)
    drive(serial, images, duration=warm)
    drive(service.edit, images, duration=warm)

    config = {k: v for k, v in vars(args).items() if k not in ("json", "model")}
    res: dict = {"config": config | {"model": str(model_path)}}
    collected: dict[str, tuple[list[float], float]] = {"serial": ([], 0.0), "batched": ([], 0.0)}
    before = service.stats
    for _ in range(args.rounds):
        for name, call in (("serial", serial), ("batched", service.edit)):
            lat, wall, outs = drive(call, images, duration=args.duration)
            for out, want in zip(outs, alone, strict=True):
                if out is not None and not np.array_equal(out, want):
                    raise AssertionError(f"{name}: a result differs from the image edited alone")
            collected[name] = (collected[name][0] + lat, collected[name][1] + wall)
    after = service.stats
    for name, (lat, wall) in collected.items():
        res[name] = summary(lat, wall)
    res["batched"]["mean_batch_size"] = (after.items - before.items) / max(
        1, after.batches - before.batches
    )
    res["batched"]["batch_sizes"] = {
        str(k): v - before.batch_sizes.get(k, 0)
        for k, v in sorted(after.batch_sizes.items())
        if v > before.batch_sizes.get(k, 0)
    }
    res["throughput_ratio"] = res["batched"]["throughput_rps"] / res["serial"]["throughput_rps"]

    # Concurrency 1: what waiting for company costs a lone client. Direct and batched calls
    # alternate request by request, so drift on a shared machine hits both alike.
    direct_lat, lone_lat = [], []
    end = time.perf_counter() + args.rounds * args.duration
    while time.perf_counter() < end or len(lone_lat) < 5:
        for call, lat in ((direct_one, direct_lat), (service.edit, lone_lat)):
            t0 = time.perf_counter()
            call(images[0])
            lat.append(time.perf_counter() - t0)
    added = (np.array(lone_lat) - np.array(direct_lat)) * 1e3
    res["concurrency_1"] = {
        "pairs": len(added),
        "direct_p50_ms": float(np.median(direct_lat) * 1e3),
        "batched_p50_ms": float(np.median(lone_lat) * 1e3),
        "added_p50_ms": float(np.median(added)),
        "goal_ms": args.max_wait_ms + 1.0,
    }

    # Steady-state memory: warm-up, then --rss-requests through the batcher.
    drive(service.edit, images, duration=None, requests=max(50, args.rss_requests // 10))
    rss0, how = rss_bytes()
    faults0 = minor_faults()
    drive(service.edit, images, duration=None, requests=args.rss_requests)
    faults1 = minor_faults()
    rss1, _ = rss_bytes()
    res["memory"] = {
        "requests": args.rss_requests,
        "rss_before_mib": rss0 / 2**20,
        "rss_after_mib": rss1 / 2**20,
        "growth": (rss1 - rss0) / rss0,
        "measured_with": how,
        "minor_faults_per_request": (faults1 - faults0) / args.rss_requests,
    }
    service.close()
    final = service.stats
    res["batcher_stats"] = {
        "batches": final.batches,
        "items": final.items,
        "mean_batch_size": final.mean_batch_size,
        "queue_high_water": final.queue_high_water,
        "rejected": final.rejected,
        "failed": final.failed,
    }
    return res


def minor_faults() -> int:
    """Minor page faults of the process so far: a request that gets fresh memory from the
    kernel (rather than reusing freed memory) faults once per 4 KiB page it touches."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def goals(res: dict) -> list[tuple[str, bool]]:
    c1 = res["concurrency_1"]
    return [
        (f"batched/serial throughput >= {GOAL_RATIO}x", res["throughput_ratio"] >= GOAL_RATIO),
        (
            f"added p50 latency at concurrency 1 <= {c1['goal_ms']:.1f} ms",
            c1["added_p50_ms"] <= c1["goal_ms"],
        ),
        (
            f"RSS growth over {res['memory']['requests']} requests <= {GOAL_RSS_GROWTH:.0%}",
            res["memory"]["growth"] <= GOAL_RSS_GROWTH,
        ),
    ]


def table(res: dict) -> str:
    cfg = res["config"]
    lines = [
        f"{cfg['clients']} clients, {cfg['size']}x{cfg['size']} RGB, zoo enhancer, "
        f"max batch {cfg['max_batch']}, max wait {cfg['max_wait_ms']} ms, "
        f"{cfg['workers']} worker(s), {cfg['rounds']} x {cfg['duration']} s per mode",
        f"{'mode':<8}  {'requests':>8}  {'req/s':>8}  {'p50 ms':>8}  {'p99 ms':>8}  {'batch':>6}",
    ]
    for name in ("serial", "batched"):
        r = res[name]
        batch = f"{r['mean_batch_size']:.2f}" if "mean_batch_size" in r else "1"
        lines.append(
            f"{name:<8}  {r['requests']:>8}  {r['throughput_rps']:>8.1f}  {r['p50_ms']:>8.1f}  "
            f"{r['p99_ms']:>8.1f}  {batch:>6}"
        )
    c1, mem = res["concurrency_1"], res["memory"]
    lines += [
        f"throughput ratio batched/serial: {res['throughput_ratio']:.2f}x",
        f"concurrency 1: direct p50 {c1['direct_p50_ms']:.2f} ms, batched p50 "
        f"{c1['batched_p50_ms']:.2f} ms, added {c1['added_p50_ms']:.2f} ms (median of "
        f"{c1['pairs']} paired requests)",
        f"memory: RSS {mem['rss_before_mib']:.1f} -> {mem['rss_after_mib']:.1f} MiB over "
        f"{mem['requests']} requests ({mem['growth']:+.2%}, {mem['measured_with']}); "
        f"{mem['minor_faults_per_request']:.1f} minor page faults per request",
    ]
    lines += [f"goal {'met ' if ok else 'MISSED'}: {text}" for text, ok in goals(res)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per mode and round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per mode")
    ap.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=1, help="batcher worker threads")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    ap.add_argument(
        "--batched-threads",
        type=int,
        default=None,
        help="intra-op threads of the batcher's session (default: --threads, one shared session)",
    )
    ap.add_argument(
        "--solo",
        action="store_true",
        help="with --batched-threads: a lone request runs on the --threads session",
    )
    ap.add_argument("--rss-requests", type=int, default=2000)
    ap.add_argument("--model", type=Path, help="a converted enhancer ONNX (default: convert zoo)")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.rounds < 1:
        ap.error("--clients and --rounds must be >= 1 and --duration > 0")
    with tempfile.TemporaryDirectory(prefix="vetrina-bench-") as tmp:
        model_path = args.model
        if model_path is None:
            from vetrina.converters.convert import convert

            model_path = convert(ZOO_ENHANCER, Path(tmp) / "enhancer.onnx").output
        res = run(args, model_path)
    import onnxruntime

    res["goals"] = {text: ok for text, ok in goals(res)}
    res["machine"] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    print(table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
