"""PNG encoding of RGBA cut-outs: vetrina's writer against OpenCV and Pillow, one core.

    python benchmarks/png_encode.py [--images 12] [--size 683x1024] [--repeats 5] [--json PATH]

The pictures: held-out catalog renders (``vetrina.models.catalog.render``), upscaled like the
supplier photos of ``benchmarks/rembg_compare.py`` and cut out with their true alpha (colour
kept under soft edges, transparent black outside): what ``cutout`` writes. Each encoder runs
on the same BGRA arrays, one thread (the process pins OpenCV to 1 thread; ISA-L and zlib use
one), best of ``--repeats`` per image, summed over the images; every file is decoded back and
compared with the pixels. Rows: vetrina's default (:mod:`vetrina.png`, ISA-L levels 1-2),
OpenCV's own default (what ``encode_image`` used before), OpenCV at zlib 6 (vetrina's
``png_compression: 6``), and Pillow at its default level 6 (what rembg writes).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np


def cutouts(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``count`` BGRA cut-outs of held-out renders at ``size`` (h, w)."""
    from vetrina.models.catalog import render

    h, w = size
    out = []
    for i in range(count):
        product = render(70000 + i, (min(512, h // 2), min(512, w // 2)))
        rgb = cv2.resize(product.image, (w, h), interpolation=cv2.INTER_CUBIC)
        alpha = cv2.resize(product.alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        rgb = np.where(alpha[..., None] > 0, rgb, 0).astype(np.uint8)
        out.append(np.dstack([rgb[:, :, ::-1], alpha]))
    return out


def encoders() -> dict:
    from PIL import Image

    from vetrina.png import encode_png

    def pillow(bgra: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)).save(buf, "PNG")
        return buf.getvalue()

    def opencv(level: int | None):
        params = [] if level is None else [cv2.IMWRITE_PNG_COMPRESSION, level]
        return lambda bgra: cv2.imencode(".png", bgra, params)[1].tobytes()

    return {
        "vetrina default (ISA-L 1)": lambda bgra: encode_png(bgra),
        "vetrina ISA-L 2": lambda bgra: encode_png(bgra, level=2),
        "OpenCV default": opencv(None),
        "OpenCV zlib 6 (png_compression: 6)": opencv(6),
        "Pillow zlib 6 (rembg)": pillow,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--size", default="683x1024", help="HEIGHTxWIDTH")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    if args.images < 1 or args.repeats < 1 or h < 8 or w < 8:
        ap.error("--images and --repeats must be >= 1, --size at least 8x8")
    cv2.setNumThreads(1)
    images = cutouts(args.images, (h, w))
    rows = []
    for name, encode in encoders().items():
        seconds, size = 0.0, 0
        for bgra in images:
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                data = encode(bgra)
                best = min(best, time.perf_counter() - t0)
            back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if not np.array_equal(back, bgra):
                raise SystemExit(f"{name}: the PNG does not decode to the pixels it was given")
            seconds += best
            size += len(data)
        rows.append(
            {"encoder": name, "ms": 1e3 * seconds / len(images), "kb": size / len(images) / 1e3}
        )
    base = next(r for r in rows if r["encoder"] == "OpenCV default")
    print(f"{len(images)} BGRA cut-outs {w}x{h}, one thread, best of {args.repeats} per image")
    print(
        "| encoder | ms / image | kB / image | speed vs OpenCV default | size vs OpenCV default |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['encoder']} | {r['ms']:.1f} | {r['kb']:.0f} | "
            f"{base['ms'] / r['ms']:.2f}x | {r['kb'] / base['kb']:.2f}x |"
        )
    if args.json:
        meta = {"machine": platform.processor() or platform.machine(), "size": [h, w]}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
