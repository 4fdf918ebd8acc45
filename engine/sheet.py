"""Contact sheets: a grid of equally sized images with a label per row, for demos and docs."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def contact_sheet(
    rows: Sequence[Sequence[np.ndarray]],
    labels: Sequence[str] = (),
    *,
    pad: int = 4,
    label_width: int = 110,
    background: int = 255,
) -> np.ndarray:
    """Lay out rows of HxWx3 uint8 images (same size) in a grid; returns one uint8 image.

    Channel order is whatever the inputs use; labels are drawn in black at each row's start.
    """
    if not rows or not rows[0]:
        raise ValueError("contact_sheet: no images")
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    left = label_width if labels else 0
    sheet = np.full(
        (pad + len(rows) * (h + pad), left + pad + cols * (w + pad), 3), background, np.uint8
    )
    for r, row in enumerate(rows):
        y = pad + r * (h + pad)
        for c, img in enumerate(row):
            if img.shape[:2] != (h, w):
                raise ValueError(
                    f"contact_sheet: image at row {r} col {c} is {img.shape}, not {h}x{w}"
                )
            x = left + pad + c * (w + pad)
            sheet[y : y + h, x : x + w] = img if img.ndim == 3 else img[:, :, None]
        if r < len(labels):
            cv2.putText(
                sheet,
                labels[r],
                (6, y + h // 2 + 5),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                (0, 0, 0),
                1,
                cv2.LINE_AA,
            )
    return sheet
