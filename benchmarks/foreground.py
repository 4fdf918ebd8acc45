"""Edge colours of cut-outs: how far ``decontaminate`` (blur-fusion foreground estimation)
brings soft-edge colours back to the product's own, and what it costs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/foreground.py [--images 12] [--json F]

The photos have a *known* foreground: held-out catalog renders at 1024x683 whose colours are
extended outwards from the opaque product (each soft or clear pixel takes the colour of the
nearest opaque one), composited with the true alpha over textured, shadowed and tinted
backgrounds (``photo = a F + (1 - a) B``, the matting training's backgrounds). Reported:

* with the true alpha: the mean |colour - F| over the edge (0.1 < a < 0.9) of the photo's own
  colour, of rembg's default (colour x alpha), of :func:`estimate_foreground` and of the
  paper's algorithm at full resolution; and the milliseconds per photo (one core);
* end to end, the shipped ``cutout`` pipeline (zoo matting model) with and without
  ``decontaminate``: each cut-out composited on white against the true composite on white,
  mean |difference| over the edge band (the soft edge dilated by 4 px).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engine"))


def known_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The render's colours, extended from the opaque pixels (a >= 250) to all others."""
    outside = (alpha < 250).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(
        outside, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(outside == 0)  # labelled 1.. in row-major order
    table = np.zeros((labels.max() + 1, 3), np.uint8)
    table[1 : len(ys) + 1] = image[ys, xs]
    return table[labels]


def photos(count: int, size: tuple[int, int]):
    """(photo, true alpha, true foreground) triples, seeds fixed."""
    from vetrina.models.catalog import render
    from vetrina.models.training.matting import LEVELS, composite

    h, w = size
    rng = np.random.default_rng(2026)
    for i in range(count):
        product = render(70000 + i, (min(512, h // 2), min(512, w // 2)))
        image = cv2.resize(product.image, (w, h), interpolation=cv2.INTER_CUBIC)
        alpha = cv2.resize(product.alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        fg = known_foreground(image, alpha)
        level = LEVELS[1 + i % (len(LEVELS) - 1)]  # texture, shadow, tinted
        yield composite(fg, alpha, level, rng), alpha, fg


def main() -> int:
    from test_foreground import _paper  # the paper's algorithm, as the tests check it

    from vetrina.foreground import estimate_foreground
    from vetrina.pipeline import Pipeline
    from vetrina.pipeline_spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    spec = load_spec("cutout")
    pipelines = {}
    for flag in (False, True):
        stage = dataclasses.replace(
            spec.stages[0], params={**spec.stages[0].params, "decontaminate": flag}
        )
        pipelines[flag] = Pipeline(dataclasses.replace(spec, stages=[stage]))
    errors: dict[str, list[float]] = {
        k: [] for k in ("photo", "rembg", "vetrina", "paper", "white plain", "white decontam")
    }
    ms: dict[str, list[float]] = {"vetrina": [], "paper": []}
    for photo, alpha, fg in photos(args.images, (683, 1024)):
        edge = (alpha > 25) & (alpha < 230)
        a = alpha[..., None].astype(np.float32) / 255
        t = time.perf_counter()
        ours = estimate_foreground(photo, alpha)
        ms["vetrina"].append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        paper = _paper(photo, alpha)
        ms["paper"].append((time.perf_counter() - t) * 1e3)
        for key, colour in (
            ("photo", photo),
            ("rembg", photo * a),
            ("vetrina", ours),
            ("paper", paper),
        ):
            errors[key].append(float(np.abs(colour[edge] - fg[edge].astype(np.float32)).mean()))
        truth_white = a * fg + (1 - a) * 255
        band = cv2.dilate(((alpha > 0) & (alpha < 255)).astype(np.uint8), np.ones((9, 9))) > 0
        for flag, pipeline in pipelines.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty matte counts as it is
                out = pipeline.run([photo])[0]
            ah = out[:, :, 3:4].astype(np.float32) / 255
            white = ah * out[:, :, :3] + (1 - ah) * 255
            key = "white decontam" if flag else "white plain"
            errors[key].append(float(np.abs(white[band] - truth_white[band]).mean()))
    summary = {k: float(np.mean(v)) for k, v in errors.items()}
    speed = {k: float(np.median(v)) for k, v in ms.items()}
    print(f"{args.images} photos 1024x683, known foreground; mean |colour - F| over the edge:")
    for key in ("photo", "rembg", "vetrina", "paper"):
        print(f"  {key:<24} {summary[key]:6.1f} levels")
    print(f"ms per photo (one core): vetrina {speed['vetrina']:.1f}, paper {speed['paper']:.1f}")
    print("cutout pipeline (zoo matte) on white vs the true composite, edge band:")
    print(f"  decontaminate off {summary['white plain']:.1f}, on {summary['white decontam']:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"errors": summary, "ms": speed}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
