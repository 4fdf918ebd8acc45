"""Generator quality, and what the `generate-catalog` chain's clean stage does to its pictures.

For each generator checkpoint (default: the zoo GAN; ``--gan FILE.pt`` for others, e.g. a
training run to compare), in one run:

- the generator figures of :func:`vetrina.models.training.generative.evaluate_generator`
  (zoo-classifier accuracies, Fréchet distance in the classifier's features, high-frequency
  energy, diversity), each real-render baseline beside it;
- the share of pixels the shipped `generate-catalog` pipeline's clean stage marks as damage
  on the styled pictures (every category x colour, ``--seeds`` seeds each), and how much the
  clean stage changes them (PSNR of its output against its input): a generated product has no
  defect to clean, so both say how much of it the detector mistakes for damage.

The checkpoint is converted (and verified) to ONNX in a temporary folder and run by the
shipped pipeline with only its generator swapped.

    .venv/bin/python benchmarks/generation.py [--gan FILE.pt ...] [--seeds 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vetrina.metrics import psnr
from vetrina.models import catalog, zoo
from vetrina.models.training.generative import conditions, evaluate_generator
from vetrina.pipeline import Pipeline
from vetrina.pipeline_spec import BUILTIN_PACKAGE, parse_spec
from vetrina.stages import CleanStage, GenerationRequest


def chain_with(generator_onnx: Path) -> Pipeline:
    """The shipped generate-catalog pipeline with its generator replaced."""
    text = resources.files(BUILTIN_PACKAGE).joinpath("generate-catalog.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    raw["stages"][0] = {"generate": str(generator_onnx)}
    return Pipeline(parse_spec(raw, origin="generate-catalog"), batch_size=8)


def requests(seeds: int) -> list[GenerationRequest]:
    colours = tuple(catalog.COLOURS)
    return [
        GenerationRequest(seed, {"category": catalog.CATEGORIES[cat], "colour": colours[col]})
        for cat, col in conditions()
        for seed in range(seeds)
    ]


def clean_stage_effect(pipeline: Pipeline, seeds: int) -> dict[str, float]:
    """Marked share and PSNR(after, before) of the clean stage on styled generated pictures."""
    source, style, clean = pipeline.source, pipeline.stages[0], pipeline.stages[1]
    assert source is not None and isinstance(clean, CleanStage), "generate-catalog changed"
    _, on, _ = clean.mask_values()
    marked, changes = [], []

    def into(i: int, batch: np.ndarray) -> np.ndarray:  # as the pipeline feeds stages[i]
        handoff = pipeline.handoffs[i]
        return batch if handoff is None else handoff.apply(batch)

    todo = requests(seeds)
    for start in range(0, len(todo), 8):
        styled = into(1, style.run(into(0, source.run(todo[start : start + 8]))))
        mask = clean.detect(styled)
        marked.append((mask == np.float32(on)).mean(axis=(1, 2, 3)))
        lo, hi = clean.input.range
        before = np.clip((styled - lo) / (hi - lo), 0.0, 1.0)
        after = np.clip((clean.run(styled) - lo) / (hi - lo), 0.0, 1.0)
        changes += [psnr(a, b, data_range=1.0) for a, b in zip(after, before, strict=True)]
    shares = np.concatenate(marked)
    return {
        "marked_share": float(shares.mean()),
        "marked_share_p90": float(np.quantile(shares, 0.9)),
        "clean_psnr_median": float(np.median(changes)),
        "pictures": len(shares),
    }


def measure(checkpoint: Path, seeds: int, work: Path) -> dict[str, Any]:
    from vetrina.converters.convert import convert

    module = zoo.load_module("gan", checkpoint)
    row: dict[str, Any] = {"checkpoint": str(checkpoint)}
    row.update(evaluate_generator(module, module.z_dim, 704))
    onnx = work / f"{checkpoint.stem}-{len(list(work.iterdir()))}.onnx"
    convert(checkpoint, onnx)
    row.update(clean_stage_effect(chain_with(onnx), seeds))
    return row


TABLE = [
    ("category acc", "category_accuracy", "{:.3f}"),
    ("colour acc", "colour_accuracy", "{:.3f}"),
    ("Fréchet (val renders)", ("frechet_distance", "frechet_distance_real"), "{:.2f} ({:.2f})"),
    ("high freq (real)", ("high_frequency", "high_frequency_real"), "{:.4f} ({:.4f})"),
    ("diversity (real)", ("diversity", "diversity_real"), "{:.3f} ({:.3f})"),
    ("min distance", "min_pairwise_distance", "{:.3f}"),
    ("clean stage marks", "marked_share", "{:.1%}"),
    ("marks, p90", "marked_share_p90", "{:.1%}"),
    ("clean stage PSNR (median dB)", "clean_psnr_median", "{:.1f}"),
]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| generator | " + " | ".join(t for t, _, _ in TABLE) + " |"]
    lines.append("|---" * (len(TABLE) + 1) + "|")
    for row in rows:
        cells = []
        for _, keys, fmt in TABLE:
            keys = keys if isinstance(keys, tuple) else (keys,)
            cells.append(fmt.format(*(row[k] for k in keys)))
        lines.append(f"| {Path(row['checkpoint']).name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gan", type=Path, nargs="*", help="generator checkpoints (default: zoo)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per category x colour")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    checkpoints = args.gan or [zoo.checkpoint_path("gan")]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(Path(c), args.seeds, Path(tmp)) for c in checkpoints]
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=float))


if __name__ == "__main__":
    main()
