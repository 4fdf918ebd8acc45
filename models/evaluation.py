"""The quality table of the zoo: each model measured beside the classical tool a user has.

Recipes turn their metrics into :class:`Check` rows; ``vetrina zoo eval`` prints them with
:func:`format_table`. A row with a ``goal`` also says whether the goal is met.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One measured figure, the baseline it is compared with, and the goal (if any)."""

    model: str
    metric: str
    value: float
    baseline: str = ""
    baseline_value: float | None = None
    goal: str = ""
    passed: bool | None = None

    def cells(self) -> tuple[str, ...]:
        base = "" if self.baseline_value is None else f"{self.baseline_value:.3f}"
        verdict = {True: "yes", False: "NO", None: ""}[self.passed]
        return (
            self.model,
            self.metric,
            f"{self.value:.3f}",
            self.baseline,
            base,
            self.goal,
            verdict,
        )


HEADER = ("model", "metric", "value", "baseline", "baseline value", "goal", "met")


def format_table(checks: Iterable[Check], *, markdown: bool = False) -> str:
    """A plain-text (or Markdown) table of ``checks``."""
    rows = [HEADER, *(c.cells() for c in checks)]
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in rows]
        lines.insert(1, "|" + "|".join("---" for _ in HEADER) + "|")
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def all_met(checks: Iterable[Check]) -> bool:
    """True when no row with a goal misses it."""
    return all(c.passed is not False for c in checks)
