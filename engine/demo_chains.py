"""The chain part of ``vetrina demo``: generation and photo cleanup through shipped pipelines.

* ``generate-catalog``: requests ("red sneaker, seed 7") -> GAN -> style -> clean -> enhance
  -> upscale x2, written as PNGs that record seed, labels, stages and model hashes;
* ``catalog-cleanup``: supplier photos (held-out renders with global degradations *and* local
  defects) -> clean -> enhance -> on white, written as JPEGs, scored against the clean renders.

Both run from files through the same code as ``vetrina generate`` / ``vetrina run``; the two
contact sheets are the README's pictures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import collect_inputs, edit_files
from .imageio import read_image, write_image
from .metrics import psnr
from .pipeline import GenerationRequest, Pipeline
from .sheet import contact_sheet
from .timing import StepTimes

REQUESTS = (
    ("sneaker", "red", 7),
    ("mug", "blue", 3),
    ("handbag", "yellow", 11),
    ("lamp", "green", 5),
    ("watch", "black", 2),
    ("bottle", "orange", 9),
)


@dataclass(frozen=True)
class ChainResult:
    generated: list[Path]
    generated_sheet: Path
    cleanup_sheet: Path
    psnr_supplier: float
    psnr_cleaned: float


def run_chains(outdir: Path, *, images: int, size: int, log: Callable[[str], None]) -> ChainResult:
    """Run both chains into ``outdir`` (each prints its own step table); returns the written
    files and the cleanup's PSNR."""
    from vetrina.models import catalog, defects, degrade

    log("[5/6] generation chain (generate-catalog), requests -> catalog images")
    gen_times, clean_times = StepTimes(), StepTimes()
    gen = Pipeline.load("generate-catalog", times=gen_times, log=log)
    log("\n".join(f"  {line}" for line in gen.describe()))
    requests = [GenerationRequest(s, {"category": c, "colour": k}) for c, k, s in REQUESTS]
    generated = []
    for req, image in zip(requests, gen.generate(requests, output_order="BGR"), strict=True):
        name = f"{req.labels['colour']}-{req.labels['category']}-seed{req.seed}.png"
        generated.append(
            write_image(outdir / "generated" / name, image, metadata=gen.provenance(req))
        )
    log(gen_times.table("generate-catalog step"))
    gen_sheet = write_image(
        outdir / "generated.png",
        contact_sheet([[read_image(p).pixels[:, :, :3] for p in generated]], ["generated"]),
    )

    log("[6/6] photo cleanup chain (catalog-cleanup), supplier photos -> catalog photos")
    cleanup = Pipeline.load("catalog-cleanup", times=clean_times, log=log)
    log("\n".join(f"  {line}" for line in cleanup.describe()))
    local = tuple(k for k in defects.KINDS if k != "jpeg")
    clean_rows, supplier_paths = [], []
    for i, seed in enumerate(catalog.split_seeds("test", images, start=2000)):
        rng = np.random.default_rng(int(seed))
        product = catalog.render(int(seed), size)
        worse = degrade.degrade(product.image, rng, degrade.KINDS)[0]
        bad = defects.add_defects(worse, rng, local, p=0.7)[0]
        name = f"{i:02d}-{product.colour}-{product.category}.png"
        supplier_paths.append(write_image(outdir / "supplier" / name, bad[:, :, ::-1]))
        clean_rows.append(product.image[:, :, ::-1])
    results = edit_files(cleanup, collect_inputs(supplier_paths), outdir / "cleaned")
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"demo: {len(failed)} photos failed: {failed[0].error}")
    supplier = [read_image(p).pixels for p in supplier_paths]
    cleaned = [read_image(r.output).pixels for r in results]
    before = float(np.mean([psnr(s, c) for s, c in zip(supplier, clean_rows, strict=True)]))
    after = float(np.mean([psnr(s, c) for s, c in zip(cleaned, clean_rows, strict=True)]))
    log(clean_times.table("catalog-cleanup step"))
    log(f"  mean PSNR vs clean: supplier {before:.2f} dB -> cleaned {after:.2f} dB")
    cleanup_sheet = write_image(
        outdir / "cleanup.png",
        contact_sheet([supplier, cleaned, clean_rows], ["supplier", "cleaned", "clean"]),
    )
    return ChainResult(generated, gen_sheet, cleanup_sheet, before, after)
