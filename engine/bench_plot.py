"""``vetrina bench --plot``: a latency-vs-throughput chart of a :class:`BenchReport`, drawn
with OpenCV (no plotting library needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .atomic import atomic_write_bytes
from .bench import BenchOptionError
from .errors import InputError

if TYPE_CHECKING:
    from .bench import BenchReport, BenchResult

_PALETTE = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148)]
_W, _H = 960, 600
_LEFT, _RIGHT, _TOP, _BOTTOM = 80, 190, 50, 60


def check_plot_path(path: str | os.PathLike[str]) -> Path:
    """The plot is a PNG: refuse other suffixes before an expensive run, not after it."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise BenchOptionError(
            f"plot file {path}: the chart is written as PNG", hint="name it with .png"
        )
    return path


def plot(report: BenchReport, path: str | os.PathLike[str]) -> Path:
    """Write a latency-vs-throughput PNG: one line per batch size through its concurrency
    levels, p50 as filled dots, p99 as rings. Drawn with OpenCV (no matplotlib needed)."""
    path = check_plot_path(path)
    if not report.results:
        raise BenchOptionError("the report has no results to plot")
    canvas = np.full((_H, _W, 3), 255, np.uint8)
    x_max = _nice_ceiling(max(r.throughput for r in report.results))
    y_max = _nice_ceiling(max(r.p99_ms for r in report.results))
    _draw_axes(canvas, x_max, y_max, report.title)
    for i, batch in enumerate(dict.fromkeys(r.batch for r in report.results)):
        colour = _PALETTE[i % len(_PALETTE)]
        rows = sorted((r for r in report.results if r.batch == batch), key=lambda r: r.concurrency)
        _draw_series(canvas, rows, x_max, y_max, colour)
        y = _TOP + 20 + 24 * i
        cv2.line(canvas, (_W - _RIGHT + 20, y), (_W - _RIGHT + 50, y), colour, 2, cv2.LINE_AA)
        _text(canvas, f"batch {batch}", (_W - _RIGHT + 58, y + 5))
    y = _TOP + 20 + 24 * (i + 1) + 10
    _text(canvas, "filled: p50", (_W - _RIGHT + 20, y))
    _text(canvas, "ring: p99", (_W - _RIGHT + 20, y + 20))
    _text(canvas, "cN: concurrency", (_W - _RIGHT + 20, y + 40))
    ok, data = cv2.imencode(".png", canvas)
    if not ok:
        raise InputError("OpenCV could not encode the plot as PNG")
    return atomic_write_bytes(path, data.tobytes())


def _draw_axes(canvas: np.ndarray, x_max: float, y_max: float, title: str) -> None:
    x0, y0, x1, y1 = _LEFT, _H - _BOTTOM, _W - _RIGHT, _TOP
    for k in range(6):
        x = int(x0 + (x1 - x0) * k / 5)
        y = int(y0 + (y1 - y0) * k / 5)
        cv2.line(canvas, (x, y0), (x, y1), (230, 230, 230), 1)
        cv2.line(canvas, (x0, y), (x1, y), (230, 230, 230), 1)
        _text(canvas, f"{x_max * k / 5:g}", (x, y0 + 20), align="centre")
        _text(canvas, f"{y_max * k / 5:g}", (x0 - 8, y + 5), align="right")
    cv2.rectangle(canvas, (x0, y1), (x1, y0), (0, 0, 0), 1)
    _text(canvas, "throughput (images/s)", ((x0 + x1) // 2 - 90, _H - 15))
    _text(canvas, "latency (ms)", (8, _TOP - 15))
    _text(canvas, f"latency vs throughput: {title}", ((x0 + x1) // 2 - 150, 25), scale=0.6)


def _draw_series(
    canvas: np.ndarray, rows: list[BenchResult], x_max: float, y_max: float, colour: tuple
) -> None:
    def at(throughput: float, ms: float) -> tuple[int, int]:
        x = _LEFT + (_W - _RIGHT - _LEFT) * throughput / x_max
        y = (_H - _BOTTOM) - (_H - _BOTTOM - _TOP) * ms / y_max
        return round(x), round(y)

    p50 = [at(r.throughput, r.p50_ms) for r in rows]
    p99 = [at(r.throughput, r.p99_ms) for r in rows]
    if len(rows) > 1:
        cv2.polylines(canvas, [np.array(p50, np.int32)], False, colour, 2, cv2.LINE_AA)
        cv2.polylines(canvas, [np.array(p99, np.int32)], False, colour, 1, cv2.LINE_AA)
    for r, a, b in zip(rows, p50, p99, strict=True):
        cv2.line(canvas, a, b, colour, 1, cv2.LINE_AA)
        cv2.circle(canvas, a, 5, colour, -1, cv2.LINE_AA)
        cv2.circle(canvas, b, 5, colour, 1, cv2.LINE_AA)
        _text(canvas, f"c{r.concurrency}", (a[0] + 7, a[1] + 14), colour=colour)


def _text(
    canvas: np.ndarray,
    text: str,
    origin: tuple[int, int],
    *,
    scale: float = 0.45,
    colour: tuple = (40, 40, 40),
    align: str = "left",
) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    width = cv2.getTextSize(text, font, scale, 1)[0][0]
    shift = {"left": 0, "centre": width // 2, "right": width}[align]
    cv2.putText(canvas, text, (origin[0] - shift, origin[1]), font, scale, colour, 1, cv2.LINE_AA)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k >= value (axis ends on round numbers)."""
    if not value > 0:
        return 1.0
    exponent = 10.0 ** np.floor(np.log10(value))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= m * exponent * (1 + 1e-9):
            return float(m * exponent)
    return float(10 * exponent)
