"""The draft report counts a detector's boxes per class instead of listing each box."""

from __future__ import annotations

from dataclasses import replace
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


def smear_study(findings: tuple[Finding, ...]) -> tuple[Study, StudyResult]:
    series = Series("1.2.1", "SM", (Instance("1.2.1.1", "", Path("smear.jpg")),), body_part="BLOOD")
    result = StudyResult(
        "1.2", (SeriesResult("1.2.1", "SM", "BLOOD", 1, ("bccd_cells",), findings),)
    )
    return Study("1.2", (series,)), result


def test_low_trust_boxes_say_so_once_per_class_not_once_per_box() -> None:
    flagged = tuple(replace(box("RBC", 0.5 + i / 100), ood_flag=True) for i in range(6))
    text = compose_markdown(*smear_study((*flagged, box("WBC", 0.9))))
    impression = text.split("## Impression\n", 1)[1]
    rbc = [line for line in impression.splitlines() if line.startswith("- RBC")]
    assert len(rbc) == 1 and "6 boxes" in rbc[0] and "Input unlike training data" in rbc[0]
    wbc = next(line for line in impression.splitlines() if line.startswith("- WBC"))
    assert "low trust" not in wbc.lower()


def test_a_low_trust_image_without_boxes_says_no_box_and_never_a_probability() -> None:
    nothing = Finding(
        "blood_cells",
        "Blood cells",
        0.12,
        0.3,
        "bccd_cells",
        "1.0.0",
        ood_flag=True,
        detected=True,
        counted=True,
        warnings=("no box reached the operating score",),
    )
    text = compose_markdown(*smear_study((nothing,)))
    findings = text.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
    assert "best detector score 0.12, below the operating score 0.30" in findings
    assert "calibrated probability" not in findings
    impression = text.split("## Impression\n", 1)[1]
    assert "- Blood cells: no box reached the operating score, but low trust" in impression
