"""Matte quality of the shipped ``cutout`` pipeline on supplier-style photos, per checkpoint.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/matte_quality.py [--checkpoint A.pt ...]
        [--images 24] [--variants]

The photos are benchmarks/rembg_compare.py's (held-out renders at 1024x683 over studio,
textured, shadowed and tinted backgrounds, JPEG q90, with their true alpha). Each checkpoint
(default: the zoo's ``matting.pt``) is converted and run through ``cutout`` with only its
model swapped. Reported: IoU of alpha >= 128 with the true alpha (mean over photos), mean
absolute alpha error, how many product photos the empty-matte check emptied, and on four
blank photos (white, black, grey, noise) the share of the frame the net alone marks
(``empty_check`` off; the check is what empties those).

``--variants``: for the first checkpoint, the same measure for variations of the matte stage
(no refinement, refinement without the threshold ramp, Lanczos resizing, a larger matte size),
to show what each shipped setting buys.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    from rembg_compare import supplier_photos

    from vetrina.converters.convert import convert
    from vetrina.models.zoo import checkpoint_path
    from vetrina.pipeline import EmptyMatteWarning, Pipeline
    from vetrina.pipeline_spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, action="append")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--variants", action="store_true", help="matte-stage variations")
    args = parser.parse_args()
    checkpoints = args.checkpoint or [checkpoint_path("matting")]
    rng = np.random.default_rng(1)
    blanks = [np.full((683, 1024, 3), v, np.uint8) for v in (255, 0, 128)]
    blanks.append(rng.integers(0, 256, (683, 1024, 3), dtype=np.uint8))
    with tempfile.TemporaryDirectory(prefix="vetrina-matte-") as tmp:
        photos = supplier_photos(Path(tmp) / "photos", args.images, (683, 1024))
        print(f"{len(photos)} photos 1024x683, the shipped cutout settings")
        for n, ckpt in enumerate(checkpoints):
            model = convert(ckpt, Path(tmp) / f"m{n}.onnx").output
            spec = load_spec("cutout")
            stage = dataclasses.replace(spec.stages[0], models={"model": str(model)})
            pipeline = Pipeline(dataclasses.replace(spec, stages=[stage]))
            iou, mae, emptied = _measure(pipeline, photos, EmptyMatteWarning)
            raw_stage = dataclasses.replace(stage, params={**stage.params, "empty_check": False})
            raw = Pipeline(dataclasses.replace(spec, stages=[raw_stage]))
            shares = [float((raw.run([b])[0][:, :, 3] >= 128).mean()) for b in blanks]
            print(
                f"{ckpt.name}: IoU {iou:.3f}, alpha MAE {mae:.4f}, "
                f"emptied {emptied}/{len(photos)}; blank white/black/grey/noise marked "
                + "/".join(f"{v * 100:.0f}%" for v in shares)
            )
            if args.variants and n == 0:
                print("| matte stage | IoU | mean abs alpha | emptied |")
                print("|---|---|---|---|")
                for label, change in VARIANTS:
                    varied = dataclasses.replace(stage, params={**stage.params, **change})
                    p = Pipeline(dataclasses.replace(spec, stages=[varied]))
                    iou, mae, emptied = _measure(p, photos, EmptyMatteWarning)
                    print(f"| {label} | {iou:.3f} | {mae:.4f} | {emptied}/{len(photos)} |")
    return 0


VARIANTS = [
    ("plain bilinear upsampling", {"refine": 0, "threshold": None}),
    ("`refine: 2` (guided filter)", {"threshold": None}),
    ("`refine: 2, threshold: [0.3, 0.7]` (shipped)", {}),
    ("the same with `resize: lanczos`", {"resize": "lanczos"}),
    ("the same at 160 px", {"size": (160, 160)}),
    ("the same at 192 px", {"size": (192, 192)}),
]
"""(label, matte-stage parameters changed from the shipped cutout's)."""


def _measure(pipeline, photos: list[Path], empty_warning: type) -> tuple[float, float, int]:
    """Mean IoU (alpha >= 128) and mean absolute alpha error against the true alpha, and how
    many photos the empty-matte check emptied."""
    ious, errors, emptied = [], [], 0
    for path in photos:
        photo = cv2.imread(str(path))[:, :, ::-1].copy()
        truth = cv2.imread(str(path.parent / "truth" / f"{path.stem}.png"), 0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", empty_warning)
            alpha = pipeline.run([photo])[0][:, :, 3]
        emptied += any(issubclass(w.category, empty_warning) for w in caught)
        got, want = alpha >= 128, truth >= 128
        ious.append((got & want).sum() / max((got | want).sum(), 1))
        errors.append(np.abs(alpha.astype(np.float64) - truth).mean() / 255)
    return float(np.mean(ious)), float(np.mean(errors)), emptied


if __name__ == "__main__":
    raise SystemExit(main())
