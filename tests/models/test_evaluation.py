"""The quality table: rows, verdicts and both renderings."""

from __future__ import annotations

from vetrina.models.evaluation import Check, all_met, format_table


def test_table_lists_value_baseline_goal_and_verdict():
    rows = [
        Check("upscaler", "PSNR (dB)", 31.25, "bicubic", 29.5, ">= bicubic + 1 dB", True),
        Check("detector", "mask IoU", 0.61, goal=">= 0.7", passed=False),
        Check("classifier", "colour accuracy", 0.99),
    ]
    text = format_table(rows).splitlines()
    assert text[0].split() == [
        "model",
        "metric",
        "value",
        "baseline",
        "baseline",
        "value",
        "goal",
        "met",
    ]
    assert "31.250" in text[1] and "29.500" in text[1] and text[1].endswith("yes")
    assert text[2].endswith("NO") and "0.610" in text[2]
    assert text[3].endswith("0.990")  # no goal: no verdict
    md = format_table(rows, markdown=True).splitlines()
    assert md[0].startswith("| model |") and md[1].startswith("|---|")
    assert md[2] == "| upscaler | PSNR (dB) | 31.250 | bicubic | 29.500 | >= bicubic + 1 dB | yes |"
    assert not all_met(rows) and all_met([rows[0], rows[2]])
