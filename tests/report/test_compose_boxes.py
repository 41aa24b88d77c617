"""The draft report counts a detector's boxes per class instead of listing each box."""

from __future__ import annotations

from pathlib import Path

from radlens.domain.findings import Box, Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Instance, Series, Study
from radlens.report.compose import compose_markdown


def box(label: str, score: float) -> Finding:
    return Finding(
        label.lower(), label, score, 0.3, "bccd_cells", "1.0.0", box=Box(0, 0, 9, 9), detected=True
    )


def test_boxes_are_counted_per_class_in_findings_and_impression() -> None:
    series = Series("1.2.1", "SM", (Instance("1.2.1.1", "", Path("smear.jpg")),), body_part="BLOOD")
    boxes = (box("RBC", 0.9), box("RBC", 0.4), box("WBC", 0.95))
    result = StudyResult("1.2", (SeriesResult("1.2.1", "SM", "BLOOD", 1, ("bccd_cells",), boxes),))
    text = compose_markdown(Study("1.2", (series,)), result)
    findings = text.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
    assert "- RBC: 2 boxes (detector scores 0.40-0.90, each at least 0.30; bccd_cells 1.0.0)" in (
        findings
    )
    assert "- WBC: 1 box (" in findings
    assert "calibrated probability" not in findings  # a score is not a probability
    impression = text.split("## Impression\n", 1)[1]
    assert "- RBC: 2 boxes" in impression and "No AI finding" not in impression
