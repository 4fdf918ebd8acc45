"""Folder runs: one file worker with all threads against N workers of 1-thread sessions.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/workers.py [--pipelines catalog-cleanup,cutout]
        [--images 12] [--workers 1,2] [--rounds 2]

What ``vetrina run PIPELINE FOLDER --workers N`` does, timed from the first decode to the last
write (models converted and loaded beforehand): ``--images`` supplier-style 1024x683 JPEGs
(the ones of benchmarks/rembg_compare.py), each worker count in its own fresh pipeline with
``cores / N`` threads per session, rounds interleaved, the best round counted. The default of
``vetrina run --workers`` (auto: one per core, at most 4 and at most one per file) rests on it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    from rembg_compare import supplier_photos

    from vetrina.files import available_cores, edit_files
    from vetrina.pipeline import Pipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", default="catalog-cleanup,cutout")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cores = available_cores()
    counts = [int(v) for v in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="vetrina-workers-") as tmp:
        photos = supplier_photos(Path(tmp) / "photos", args.images, (683, 1024))
        print(f"{args.images} photos 1024x683, {cores} cores; seconds for the folder (best round)")
        for name in args.pipelines.split(","):
            pipelines = {n: Pipeline.load(name, threads=max(1, cores // n)) for n in counts}
            best = {n: float("inf") for n in counts}
            for r in range(args.rounds):
                for n in counts:
                    out = Path(tmp) / f"{name}-{n}-{r}"
                    start = time.perf_counter()
                    results = edit_files(pipelines[n], photos, out, workers=n)
                    best[n] = min(best[n], time.perf_counter() - start)
                    if not all(x.ok for x in results):
                        raise RuntimeError(next(x.error for x in results if not x.ok))
            base = best[counts[0]]
            row = ", ".join(
                f"{n} worker{'s' * (n > 1)} {best[n]:.1f} s ({base / best[n]:.2f}x)" for n in counts
            )
            print(f"{name:<16} {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
