"""The README's background-removal picture: supplier-style photos -> cutout -> catalog-white.

    .venv/bin/python benchmarks/cutout_pictures.py -o docs/catalog-white.jpg

Each row: a held-out catalog render placed on a textured, shadowed or tinted background at
1024 x 683 and saved as JPEG quality 90 (as in benchmarks/rembg_compare.py), then the shipped
``cutout`` pipeline's RGBA result on a checkerboard, then the shipped ``catalog-white``
pipeline's 1000 px square (shown smaller). Nothing is picked by hand: the seeds are fixed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from rembg_compare import supplier_photos

ROW = 240  # px height of each tile in the sheet


def _checker(h: int, w: int, cell: int = 12) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    light = ((yy // cell + xx // cell) % 2 == 0)[..., None]
    return np.where(light, 235, 200).astype(np.uint8).repeat(3, axis=2)


def _on_checker(rgba: np.ndarray) -> np.ndarray:
    a = rgba[:, :, 3:4].astype(np.float32) / 255.0
    bg = _checker(*rgba.shape[:2]).astype(np.float32)
    return (rgba[:, :, :3] * a + bg * (1 - a) + 0.5).astype(np.uint8)


def _tile(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(img, (round(w * ROW / h), ROW), interpolation=cv2.INTER_AREA)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/catalog-white.jpg"))
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    from vetrina.imageio import read_image
    from vetrina.pipeline import Pipeline

    cutout, white = Pipeline.load("cutout"), Pipeline.load("catalog-white")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for path in supplier_photos(Path(work), args.images, (683, 1024)):
            photo = read_image(path).pixels[:, :, ::-1].copy()  # BGR -> RGB
            cut = cutout.run([photo])[0]
            framed = white.run([photo])[0]
            tiles = [_tile(photo), _tile(_on_checker(cut)), _tile(framed)]
            rows.append(
                np.hstack([np.pad(t, ((4, 4), (4, 4), (0, 0)), constant_values=255) for t in tiles])
            )
    sheet = np.vstack(rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.output} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
