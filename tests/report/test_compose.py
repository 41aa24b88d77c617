"""The Markdown draft: probability words, disclaimer, findings, skipped series, impression."""

from __future__ import annotations

from pathlib import Path

import pytest

from radlens.domain.findings import Finding, Priority, SeriesResult, StudyResult
from radlens.domain.imaging import Instance, Patient, Series, Study
from radlens.report.compose import compose_markdown, in_words


@pytest.mark.parametrize(
    ("probability", "words"),
    [
        (0.0, "unlikely"),
        (0.0999, "unlikely"),
        (0.10, "not excluded"),
        (0.34, "not excluded"),
        (0.35, "possible"),
        (0.649, "possible"),
        (0.65, "likely"),
        (0.899, "likely"),
        (0.90, "very likely"),
        (1.0, "very likely"),
    ],
)
def test_in_words_bands(probability: float, words: str) -> None:
    assert in_words(probability) == words


def study() -> Study:
    cr = Series(
        "1.2.3.1",
        "CR",
        (Instance("1.2.3.1.1", "1.2.840.10008.5.1.4.1.1.1", Path("cr.dcm")),),
        body_part="CHEST",
        view_position="PA",
    )
    ct = Series("1.2.3.2", "CT", (Instance("1.2.3.2.1", "1.2.840.10008.5.1.4.1.1.2", Path("ct")),))
    return Study("1.2.3", (cr, ct), patient=Patient(name="Doe^Jane", patient_id="PID-42"))


def result(*findings: Finding, analyzed: bool = True) -> StudyResult:
    cr = (
        SeriesResult("1.2.3.1", "CR", "CHEST", 1, ("tiny_cxr",), findings)
        if analyzed
        else SeriesResult("1.2.3.1", "CR", "CHEST", 1, skipped_reason="CR: no model")
    )
    ct = SeriesResult("1.2.3.2", "CT", "", 1, skipped_reason="modality CT not in CR/DX")
    return StudyResult(
        "1.2.3", (cr, ct), priority=Priority.URGENT if findings else Priority.ROUTINE
    )


def pneumonia(probability: float, **kw: object) -> Finding:
    return Finding("pneumonia", "Pneumonia", probability, 0.5, "tiny_cxr", "0.0.1", **kw)  # type: ignore[arg-type]


def test_draft_always_says_it_requires_physician_review() -> None:
    for r in (result(pneumonia(0.95)), result(pneumonia(0.05)), result(analyzed=False)):
        assert "requires physician review" in compose_markdown(study(), r)


def test_draft_lists_technique_findings_and_impression() -> None:
    text = compose_markdown(study(), result(pneumonia(0.95)))
    assert "- CR, chest, PA view: 1 image(s)" in text
    assert "- CT: 1 image(s)" in text
    assert "- Pneumonia: very likely (calibrated probability 95%; above the operating" in text
    assert "tiny_cxr 0.0.1" in text
    impression = text.split("## Impression")[1]
    assert "- Pneumonia very likely." in impression
    assert "Priority suggested by AI: urgent." in text


def test_draft_lists_skipped_series_with_their_reason() -> None:
    text = compose_markdown(study(), result(pneumonia(0.2)))
    assert "Not analyzed by AI:" in text
    assert "- CT series: modality CT not in CR/DX" in text


def test_negative_study_says_no_finding_above_threshold() -> None:
    text = compose_markdown(study(), result(pneumonia(0.2)))
    assert "below the operating threshold" in text
    assert "No AI finding above its operating threshold." in text


def test_study_without_applicable_model_says_no_assessment() -> None:
    text = compose_markdown(study(), result(analyzed=False))
    assert "No AI model applies to the images of this study." in text
    assert "No AI assessment." in text


def test_low_trust_and_warnings_are_spelled_out() -> None:
    finding = pneumonia(0.8, ood_flag=True, warnings=("patient age 64 y is outside it",))
    text = compose_markdown(study(), result(finding))
    assert "Low trust: input unlike the model's training data." in text
    assert "Caution: patient age 64 y is outside it." in text


def test_draft_has_no_patient_identifiers() -> None:
    text = compose_markdown(study(), result(pneumonia(0.95)))
    assert "Doe^Jane" not in text and "PID-42" not in text


def test_warnings_of_a_skipped_series_reach_the_report() -> None:
    from radlens.domain.findings import SeriesResult, StudyResult
    from radlens.domain.imaging import Study

    tagged = SeriesResult(
        "1.2.3.2",
        "CT",
        "HEAD",
        1,
        skipped_reason="no installed model applies",
        warnings=("image content resembles the training data of cxr_pneumonia",),
    )
    text = compose_markdown(Study("1.2.3", ()), StudyResult("1.2.3", (tagged,)))
    assert "  - Warning: image content resembles the training data of cxr_pneumonia" in text
