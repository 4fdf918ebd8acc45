"""``vetrina demo``: the whole path on the embedded default (CPU, ONNX Runtime).

Convert the zoo enhancer with verification, render held-out product photos, degrade them,
run them through the engine from files (decode -> fused preprocess -> ONNX Runtime -> fused
postprocess -> encode), and measure PSNR against the clean originals.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .demo_chains import ChainResult, run_chains
from .editor import Editor
from .files import collect_inputs, edit_files
from .imageio import read_image, write_image
from .metrics import psnr
from .model import Model
from .sheet import contact_sheet
from .timing import StepTimes


@dataclass(frozen=True)
class DemoResult:
    model: Path
    sheet: Path
    psnr_degraded: float
    psnr_enhanced: float
    times: StepTimes
    chains: ChainResult | None = None


def run_demo(
    outdir: str | os.PathLike[str],
    *,
    images: int = 8,
    size: int = 256,
    chains: bool = True,
    log=print,
) -> DemoResult:
    """Run the demo into ``outdir``; returns the measured figures. ``chains`` adds the
    generation and photo-cleanup pipelines (:mod:`.demo_chains`)."""
    from vetrina.converters.convert import convert
    from vetrina.models import catalog, degrade, zoo

    outdir = Path(outdir)
    times = StepTimes()
    total = 6 if chains else 4
    checkpoint = zoo.checkpoint_path("enhancer")
    log(f"[1/{total}] convert {checkpoint.name} -> ONNX, verified against PyTorch")
    started = time.perf_counter()
    result = convert(checkpoint, outdir / "enhancer.onnx")
    times.add("convert (export+verify)", time.perf_counter() - started)
    log(result.report.table())

    log(
        f"[2/{total}] render {images} held-out product photos ({size}px, test split) and "
        "degrade them"
    )
    with times.step("render + degrade"):
        rng = np.random.default_rng(2024)
        seeds = catalog.split_seeds("test", images, start=1000)
        clean_paths, degraded_paths = [], []
        for i, seed in enumerate(seeds):
            product = catalog.render(int(seed), size)
            bad = degrade.degrade(product.image, rng, degrade.KINDS)[0]
            name = f"{i:02d}-{product.colour}-{product.category}"
            clean_paths.append(
                write_image(outdir / "clean" / f"{name}.png", product.image[:, :, ::-1])
            )
            degraded_paths.append(write_image(outdir / "degraded" / f"{name}.png", bad[:, :, ::-1]))

    log(f"[3/{total}] enhance the degraded photos through the engine (files in, files out)")
    with times.step("load model"):
        model = Model.open(result.output)
    editor = Editor(model, times=times)
    outcome = edit_files(editor, collect_inputs([outdir / "degraded"]), outdir / "enhanced")
    failed = [r for r in outcome if not r.ok]
    if failed:
        raise RuntimeError(f"demo: {len(failed)} images failed: {failed[0].error}")

    log(f"[4/{total}] quality against the clean originals")
    rows: list[list[np.ndarray]] = [[], [], []]
    before, after = [], []
    for clean_path, bad_path, res in zip(clean_paths, degraded_paths, outcome, strict=True):
        clean = read_image(clean_path).pixels
        bad = read_image(bad_path).pixels
        fixed = read_image(res.output).pixels
        before.append(psnr(bad, clean))
        after.append(psnr(fixed, clean))
        log(f"  {clean_path.stem:<28} degraded {before[-1]:6.2f} dB   enhanced {after[-1]:6.2f} dB")
        for row, img in zip(rows, (bad, fixed, clean), strict=True):
            row.append(img)
    sheet = write_image(
        outdir / "before-after.png",
        contact_sheet(rows, ["degraded", "enhanced", "clean"]),
    )
    mean_before, mean_after = float(np.mean(before)), float(np.mean(after))
    log(
        f"mean PSNR vs clean: degraded {mean_before:.2f} dB -> enhanced {mean_after:.2f} dB "
        f"({mean_after - mean_before:+.2f} dB)"
    )
    chained = run_chains(outdir, images=images, size=size, log=log) if chains else None
    log("per-step timings:")
    log(times.table())
    log(f"outputs in {outdir}/ (before/after sheet: {sheet})")
    return DemoResult(result.output, sheet, mean_before, mean_after, times, chained)
