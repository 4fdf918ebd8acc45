"""Chain overhead: a 4-stage editor pipeline against its own parts and against the naive chain.

    python benchmarks/chain.py [--size 256] [--repeats 20] [--images 4] [--json PATH]

The chain (uint8 in -> uint8 out, batch 1, zoo models converted by ``zoo:`` references):

    clean (detector + inpainter) -> enhance -> style-vintage -> upscale x2

Measured in one process, round by round (a busy neighbour slows all alike):

* **chain**: ``Pipeline.run([photo])``, the whole request;
* **parts alone**: the raw ``InferenceSession.run`` of each of its 5 models on the very tensors
  the chain feeds them, and its kernels (preprocess, the hand-offs, postprocess) on their
  tensors. ``orchestration = chain - sum(parts)``: what the pipeline adds (Python, the clean
  stage's threshold and mask, buffer traffic, thread hand-over between ONNX Runtime and the
  kernels). Goal: at most 5 % of the chain time;
* **naive chain**: what people write today: one ``InferenceSession`` per model with default
  options and, around every model, OpenCV/numpy pre/post from and back to uint8 (astype, scale,
  transpose, clip, round). Reported: its time over the chain's, and its quality loss, the PSNR
  of its output against the float chain's output (the rounding between stages is what it
  loses).

Timings are best and median over ``--repeats`` rounds after two warm-up rounds, each on the
same ``--images`` held-out catalog photos with defects (one request each).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

GOAL_OVERHEAD = 0.05
CHAIN = {
    "name": "bench-chain",
    "input": "image",
    "stages": [
        {"clean": {"detector": "zoo:detector", "inpainter": "zoo:inpainter"}},
        {"edit": "zoo:enhancer"},
        {"edit": "zoo:style-vintage"},
        {"edit": "zoo:upscaler"},
    ],
}


def photos(count: int, size: int) -> list[np.ndarray]:
    """Held-out catalog renders with local defects (RGB uint8)."""
    from vetrina.models import catalog, defects

    local = tuple(k for k in defects.KINDS if k != "jpeg")
    out = []
    for seed in range(950, 950 + count):
        clean = catalog.render(seed, size).image
        out.append(defects.add_defects(clean, np.random.default_rng(seed), local, p=1.0)[0])
    return out


def traced_parts(pipeline: Any, image: np.ndarray) -> list[tuple[str, Callable[[], object]]]:
    """Each model run and kernel call of ``pipeline.run([image])``, as zero-argument calls on
    the exact tensors the chain produces (computed once, here)."""
    from vetrina import kernels
    from vetrina.stages import CleanStage

    parts: list[tuple[str, Callable[[], object]]] = []
    size = pipeline.working_size(*image.shape[:2])
    first = pipeline.stages[0].input
    scale, offset = first.from_uint8_affine()

    def pre() -> np.ndarray:
        return kernels.preprocess(
            [image],
            size,
            scale=scale,
            offset=offset,
            src_order="RGB",
            dst_order=first.channels,
            num_threads=pipeline.kernel_threads,
        )

    parts.append(("preprocess", pre))
    batch = pre()
    for stage, handoff in zip(pipeline.stages, pipeline.handoffs, strict=True):
        if handoff is not None:
            source = batch.copy()
            parts.append(
                (
                    f"hand-off -> {stage.label}",
                    lambda h=handoff, s=source: h.apply(s, pipeline.kernel_threads),
                )
            )
            batch = handoff.apply(batch, pipeline.kernel_threads)
        if isinstance(stage, CleanStage):
            det = stage.models[0].session._session  # raw ONNX Runtime session
            feed = {stage.to_detector.dst.name: batch}
            parts.append((f"{stage.label}: detector", lambda d=det, f=feed: d.run(None, f)))
            mask = stage.detect(batch)
            inp = stage.models[1].session._session
            feeds = {stage.input.name: batch, stage.mask_input.name: mask}
            parts.append((f"{stage.label}: inpainter", lambda d=inp, f=feeds: d.run(None, f)))
        else:
            raw = stage.models[0].session._session
            feeds = {stage.input.name: batch}
            parts.append((stage.label, lambda d=raw, f=feeds: d.run(None, f)))
        batch = stage.run(batch)
    last = pipeline.stages[-1].output
    out_scale, out_offset = last.to_uint8_affine()
    final = batch
    sizes = [(image.shape[0] * pipeline.scale, image.shape[1] * pipeline.scale)]

    def post() -> object:
        return kernels.postprocess(
            final,
            sizes,
            scale=out_scale,
            offset=out_offset,
            src_order=last.channels,
            dst_order="RGB",
            num_threads=pipeline.kernel_threads,
        )

    parts.append(("postprocess", post))
    return parts


class NaiveChain:
    """Separate default sessions; uint8 <-> float with numpy/OpenCV around every model."""

    def __init__(self, pipeline: Any) -> None:
        import onnxruntime as ort

        from vetrina.stages import CleanStage

        self.steps: list[tuple[str, Any, Any]] = []
        for stage in pipeline.stages:
            for model in stage.models:
                session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
                self.steps.append((model.contract.role, session, model.contract))
            if isinstance(stage, CleanStage):
                self.threshold = stage.threshold

    @staticmethod
    def _to_tensor(image: np.ndarray, spec: Any) -> np.ndarray:
        lo, hi = spec.range
        x = image.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    @staticmethod
    def _to_uint8(tensor: np.ndarray, spec: Any) -> np.ndarray:
        lo, hi = spec.range
        x = (tensor[0].transpose(1, 2, 0) - lo) * (255.0 / (hi - lo))
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)

    def run(self, image: np.ndarray) -> np.ndarray:
        mask = None
        for role, session, contract in self.steps:
            spec_in, spec_out = (
                contract.input("image"),
                contract.output("mask" if role == "detector" else "image"),
            )
            feeds = {spec_in.name: self._to_tensor(image, spec_in)}
            if role == "detector":
                prob = session.run(None, feeds)[0]
                mask = (prob >= self.threshold).astype(np.float32)
                continue
            if role == "inpainter":
                feeds[contract.input("mask").name] = mask
            image = self._to_uint8(session.run(None, feeds)[0], spec_out)
        return image


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Each contender once per round, ``repeats`` rounds (warm up before calling this)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--kernel-threads", type=int, help="kernel threads (default OpenMP's)")
    parser.add_argument(
        "--spinning", action="store_true", help="let ONNX Runtime's idle threads spin"
    )
    args = parser.parse_args(argv)

    from vetrina.metrics import psnr
    from vetrina.pipeline import Pipeline
    from vetrina.pipeline_spec import parse_spec

    os.environ.setdefault("VETRINA_CACHE", str(Path(tempfile.gettempdir()) / "vetrina-bench"))
    pipeline = Pipeline(
        parse_spec(CHAIN),
        kernel_threads=args.kernel_threads,
        spinning=args.spinning,
        log=lambda m: print(m, file=sys.stderr),
    )
    naive = NaiveChain(pipeline)
    images = photos(args.images, args.size)
    print("\n".join(pipeline.describe()))
    rows = []
    for index, image in enumerate(images):
        parts = traced_parts(pipeline, image)
        fns: dict[str, Callable[[], object]] = {
            "chain": lambda im=image: pipeline.run([im]),
            "naive": lambda im=image: naive.run(im),
        }
        fns.update({f"part: {name}": fn for name, fn in parts})
        from vetrina.timing import StepTimes

        for fn in fns.values():  # warm-up: two calls each
            fn()
            fn()
        pipeline.times = StepTimes()  # the chain's own step timers, from here on
        times = interleaved(fns, args.repeats)
        chain_total = sum(times["chain"])
        in_steps = sum(pipeline.times.seconds.values())
        best = {k: min(v) * 1e3 for k, v in times.items()}
        median = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        parts_best = sum(v for k, v in best.items() if k.startswith("part: "))
        parts_median = sum(v for k, v in median.items() if k.startswith("part: "))
        quality = psnr(naive.run(image), pipeline.run([image])[0])
        rows.append(
            {
                "image": index,
                "best_ms": best,
                "median_ms": median,
                "overhead_best": (best["chain"] - parts_best) / best["chain"],
                "overhead_median": (median["chain"] - parts_median) / median["chain"],
                "naive_ratio_median": median["naive"] / median["chain"],
                "naive_psnr_vs_chain_db": quality,
                "outside_steps": 1.0 - in_steps / chain_total,
            }
        )
    first = rows[0]
    print(f"\nper part, image 0 (best / median ms over {args.repeats} rounds):")
    for key in first["best_ms"]:
        print(f"  {key:45s} {first['best_ms'][key]:8.2f} {first['median_ms'][key]:8.2f}")
    print(
        f"\n{'image':>5} {'chain ms':>9} {'parts ms':>9} {'overhead':>9} {'naive ms':>9} "
        f"{'naive/chain':>11} {'naive PSNR':>10}"
    )
    for r in rows:
        parts_ms = r["median_ms"]["chain"] * (1 - r["overhead_median"])
        print(
            f"{r['image']:>5} {r['median_ms']['chain']:9.1f} {parts_ms:9.1f} "
            f"{r['overhead_median'] * 100:8.2f}% {r['median_ms']['naive']:9.1f} "
            f"{r['naive_ratio_median']:10.2f}x {r['naive_psnr_vs_chain_db']:8.1f} dB"
        )
    glue = max(r["outside_steps"] for r in rows)
    print(
        f"time of Pipeline.run outside its own timed steps (Python between preprocess, hand-offs, "
        f"stages and postprocess): at most {glue:.2%} of the chain"
    )
    worst = max(r["overhead_median"] for r in rows)
    print(
        f"(medians; overhead = chain - sum of its parts measured alone; naive PSNR: its "
        f"output against the chain's)\ngoal {'met ' if worst <= GOAL_OVERHEAD else 'MISSED'}: "
        f"orchestration <= {GOAL_OVERHEAD:.0%} of the chain (worst image {worst:.2%})"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(),
                    "size": args.size,
                    "repeats": args.repeats,
                    "chain": CHAIN,
                    "rows": rows,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
