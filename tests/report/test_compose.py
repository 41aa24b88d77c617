"""The Markdown draft: sections, probability words, disclaimer, indeterminate and low-trust
findings, comparison with a prior study, and the clinical correlation of the notes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from radlens.domain.findings import Finding, Priority, SeriesResult, StudyResult
from radlens.domain.imaging import Instance, Patient, Series, Study
from radlens.domain.reports import PriorStudy
from radlens.inference.ood import LOW_TRUST as OOD_LOW_TRUST
from radlens.inference.predict import INDETERMINATE as ABSTAIN_WARNING
from radlens.nlp import Concordance
from radlens.report.compose import (
    INDETERMINATE,
    LOW_TRUST,
    Change,
    compare,
    compose,
    compose_markdown,
    in_words,
    patient_words,
)
from radlens.report.findings_json import DISCLAIMER

SECTIONS = ("## Indication", "## Technique", "## Comparison", "## Findings", "## Impression")


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


def study(**context: str) -> Study:
    cr = Series(
        "1.2.3.1",
        "CR",
        (Instance("1.2.3.1.1", "1.2.840.10008.5.1.4.1.1.1", Path("cr.dcm")),),
        body_part="CHEST",
        view_position="PA",
    )
    ct = Series("1.2.3.2", "CT", (Instance("1.2.3.2.1", "1.2.840.10008.5.1.4.1.1.2", Path("ct")),))
    patient = Patient(name="Doe^Jane", patient_id="PID-42", sex="F", age_years=3.0)
    return Study("1.2.3", (cr, ct), patient=patient, **context)  # type: ignore[arg-type]


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


def finding(probability: float, code: str = "pneumonia", **kw: object) -> Finding:
    return Finding(code, code.title(), probability, 0.5, "tiny_cxr", "0.0.1", **kw)  # type: ignore[arg-type]


def section(text: str, title: str) -> str:
    """The body of one ``## title`` section."""
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


# --- sections, words, disclaimer --------------------------------------------------------


def test_draft_has_the_five_sections_in_order() -> None:
    text = compose_markdown(study(), result(finding(0.95)))
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)


def test_draft_always_says_it_is_an_ai_draft_requiring_physician_review() -> None:
    assert "AI-generated draft" in DISCLAIMER and "requires physician review" in DISCLAIMER
    for r in (result(finding(0.95)), result(finding(0.05)), result(analyzed=False)):
        assert f"> {DISCLAIMER}" in compose_markdown(study(), r)


@pytest.mark.parametrize("probability", [0.03, 0.2, 0.5, 0.7, 0.97])
def test_probabilities_are_said_in_words_not_numbers_only(probability: float) -> None:
    text = compose_markdown(study(), result(finding(probability)))
    [line] = [ln for ln in section(text, "Findings").splitlines() if ln.startswith("- Pneumonia")]
    assert line.startswith(f"- Pneumonia: {in_words(probability)} (calibrated probability")
    assert re.search(r"\d+%", line)  # the number is beside the words, never alone


def test_technique_names_procedure_series_and_views() -> None:
    text = compose_markdown(
        study(description="XR CHEST PA", requested_procedure="Chest, one view"),
        result(finding(0.95)),
    )
    technique = section(text, "Technique")
    assert "Procedure: XR CHEST PA; Chest, one view." in technique
    assert "- CR, chest, PA view: 1 image(s)" in technique
    assert "- CT: 1 image(s)" in technique


def test_findings_and_impression_list_positives_in_words_with_their_model() -> None:
    text = compose_markdown(study(), result(finding(0.95)))
    assert "- Pneumonia: very likely (calibrated probability 95%; above the operating" in text
    assert "tiny_cxr 0.0.1" in text
    assert "- Pneumonia very likely." in section(text, "Impression")
    assert "Priority suggested by AI: urgent." in text


def test_negative_study_says_no_finding_above_threshold() -> None:
    text = compose_markdown(study(), result(finding(0.2)))
    assert "below the operating threshold" in text
    assert "No AI finding above its operating threshold." in section(text, "Impression")


def test_study_without_applicable_model_says_no_assessment() -> None:
    text = compose_markdown(study(), result(analyzed=False))
    assert "No AI model applies to the images of this study." in text
    assert "No AI assessment." in text


def test_draft_lists_skipped_series_with_their_reason() -> None:
    text = compose_markdown(study(), result(finding(0.2)))
    assert "Not analyzed by AI:" in text
    assert "- CT series: modality CT not in CR/DX" in text


def test_warnings_of_a_skipped_series_reach_the_report() -> None:
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
    assert "- CT, head: 1 image(s)" in text  # technique from the result without DICOM context


# --- trust: indeterminate and low trust ---------------------------------------------------


def test_a_finding_in_the_abstain_band_is_indeterminate_not_a_band_word() -> None:
    assert ABSTAIN_WARNING.startswith(INDETERMINATE)  # the warning inference.predict adds
    text = compose_markdown(study(), result(finding(0.55, warnings=(ABSTAIN_WARNING,))))
    [line] = [ln for ln in section(text, "Findings").splitlines() if ln.startswith("- Pneumonia")]
    assert line.startswith("- Pneumonia: indeterminate (calibrated probability 55%, too close")
    assert "possible" not in line and "Caution" not in line  # said once, in words
    assert "- Pneumonia indeterminate." in section(text, "Impression")


def test_indeterminate_below_threshold_still_reaches_the_impression() -> None:
    text = compose_markdown(study(), result(finding(0.45, warnings=(ABSTAIN_WARNING,))))
    impression = section(text, "Impression")
    assert "- Pneumonia indeterminate." in impression
    assert "No AI finding above" not in impression


def test_low_trust_and_warnings_are_spelled_out() -> None:
    assert OOD_LOW_TRUST == LOW_TRUST
    flagged = finding(0.8, ood_flag=True, warnings=("patient age 64 y is outside it", LOW_TRUST))
    text = compose_markdown(study(), result(flagged))
    findings = section(text, "Findings")
    assert "**Input unlike training data — low trust.**" in findings
    assert findings.count("low trust") == 1  # the OOD warning is not repeated as a caution
    assert "Caution: patient age 64 y is outside it." in findings
    assert "Low trust: input unlike training data." in section(text, "Impression")


def test_a_negative_on_low_trust_input_does_not_reassure() -> None:
    text = compose_markdown(study(), result(finding(0.2, ood_flag=True)))
    impression = section(text, "Impression")
    assert "- Pneumonia not excluded, but low trust: input unlike training data; this does not" in (
        impression
    )


# --- indication and patient ------------------------------------------------------------


def test_indication_has_age_sex_and_dicom_reason_for_study() -> None:
    text = compose_markdown(
        study(reason_for_study="r/o pneumonia", patient_history="Fever\\Cough"),
        result(finding(0.9)),
    )
    indication = section(text, "Indication")
    assert "Patient: 3-year-old female." in indication
    assert "- r/o pneumonia" in indication
    assert "- Fever" in indication and "- Cough" in indication


def test_indication_says_when_no_reason_was_given() -> None:
    indication = section(compose_markdown(study(), result(finding(0.9))), "Indication")
    assert "Reason for exam: not provided." in indication


def test_indication_uses_the_reason_extracted_from_hl7_order_text() -> None:
    order = (
        "MSH|^~\\&|RIS|H|RL|H|202401011200||ORM^O01|1|P|2.5.1\r"
        "OBR|1|||71046^XR CHEST 2V|||||||||Cough||||||||||||||||||^r/o PNA"
    )
    draft = compose(study(), result(finding(0.08)), notes=order)
    assert "- r/o PNA" in section(draft.text, "Indication")
    [alignment] = draft.alignments
    assert alignment.concordance is Concordance.DISCORDANT


@pytest.mark.parametrize(
    ("sex", "age", "words"),
    [
        ("M", 3.0, "3-year-old male"),
        ("F", 0.5, "6-month-old female"),
        ("", 45.9, "45-year-old patient"),
        ("O", None, "other sex patient"),
        ("F", 93.0, "female aged 90 years or older"),  # HIPAA: no age over 89
        ("", None, ""),
    ],
)
def test_patient_words(sex: str, age: float | None, words: str) -> None:
    assert patient_words(Patient(sex=sex, age_years=age)) == words


def test_draft_has_no_patient_identifiers() -> None:
    text = compose_markdown(study(), result(finding(0.95)))
    assert "Doe^Jane" not in text and "PID-42" not in text


# --- comparison with a prior study ------------------------------------------------------


def test_comparison_without_prior_says_none_available() -> None:
    assert section(compose_markdown(study(), result(finding(0.9))), "Comparison").strip() == (
        "None available."
    )


@pytest.mark.parametrize(
    ("then", "now", "change", "words"),
    [
        (0.08, 0.82, Change.NEW, "new since 2024-01-10 (then unlikely, p=0.08; now likely"),
        (0.82, 0.08, Change.RESOLVED, "resolved since 2024-01-10 (then likely"),
        (0.70, 0.80, Change.PERSISTENT, "persistent since 2024-01-10 (then likely"),
        (0.55, 0.95, Change.INCREASED, "increased probability since 2024-01-10"),
        (0.95, 0.55, Change.DECREASED, "decreased probability since 2024-01-10"),
        (0.05, 0.20, Change.INCREASED, "still below the operating threshold"),
        (0.05, 0.07, Change.UNCHANGED, "not seen, unchanged since 2024-01-10"),
    ],
)
def test_change_since_the_prior_per_finding_code(
    then: float, now: float, change: Change, words: str
) -> None:
    prior = PriorStudy("1.2.2", "2024-01-10", "XR CHEST", (finding(then),))
    [comparison] = compare([finding(now)], prior)
    assert comparison.change is change
    assert words in comparison.sentence


def test_codes_assessed_on_one_study_only_are_not_compared() -> None:
    prior = PriorStudy("1.2.2", "2024-01-10", "", (finding(0.9, "nodule"),))
    changes = {c.code: c for c in compare([finding(0.9)], prior)}
    assert changes["pneumonia"].change is Change.NOT_COMPARED
    assert "not assessed on the prior study" in changes["pneumonia"].sentence
    assert "not assessed on this study" in changes["nodule"].sentence


def test_comparison_section_states_the_prior_and_the_change() -> None:
    prior = PriorStudy("1.2.2", "2024-01-10", "XR CHEST", (finding(0.08),))
    text = compose_markdown(study(), result(finding(0.82)), prior=prior)
    comparison = section(text, "Comparison")
    assert "Prior study: 2024-01-10, XR CHEST." in comparison
    assert "- Pneumonia: new since 2024-01-10 (then unlikely, p=0.08; now likely, p=0.82)." in (
        comparison
    )
    assert "- Pneumonia likely. New compared with the prior study." in section(text, "Impression")


def test_a_resolved_finding_reaches_the_impression() -> None:
    prior = PriorStudy("1.2.2", "2024-01-10", "", (finding(0.9),))
    text = compose_markdown(study(), result(finding(0.05)), prior=prior)
    assert "- Pneumonia: resolved compared with the prior study." in section(text, "Impression")


# --- clinical correlation -----------------------------------------------------------------


def test_without_notes_there_is_no_clinical_correlation() -> None:
    text = compose_markdown(study(), result(finding(0.9)))
    assert "Clinical correlation" not in text and "Discordant" not in text


def test_negated_note_against_an_ai_positive_is_flagged_discordant() -> None:
    draft = compose(study(), result(finding(0.92)), notes="Findings: No pneumonia.")
    [alignment] = draft.alignments
    assert alignment.concordance is Concordance.DISCORDANT
    assert "> **Discordant with the clinical notes: Pneumonia**" in draft.text
    correlation = draft.text.split("### Clinical correlation", 1)[1]
    assert "- **Discordant (Pneumonia):** notes: no pneumonia; AI: pneumonia likely (p=0.92)" in (
        correlation
    )
    assert "**Discordant with the clinical notes (Pneumonia):**" in section(
        draft.text, "Impression"
    )


def test_uncertain_note_without_ai_support_is_discordant_and_absent_is_concordant() -> None:
    findings = (finding(0.1, "nodule"), finding(0.04, "pneumothorax"))
    draft = compose(study(), result(*findings), notes="Possible nodule. No pneumothorax.")
    by_code = {a.finding.code: a for a in draft.alignments}
    assert by_code["nodule"].concordance is Concordance.DISCORDANT
    assert by_code["pneumothorax"].concordance is Concordance.CONCORDANT
    assert "- **Discordant (Nodule):** notes: possible nodule; AI: no evidence (p=0.10)" in (
        draft.text
    )
    assert "- Concordant (Pneumothorax): notes: no pneumothorax" in draft.text


def test_dicom_reason_for_study_alone_drives_the_correlation() -> None:
    draft = compose(study(reason_for_study="Rule out pneumonia"), result(finding(0.08)))
    assert [a.concordance for a in draft.alignments] == [Concordance.DISCORDANT]
    assert "notes: rule out pneumonia; AI: no evidence (p=0.08)" in draft.text


def test_an_ai_positive_the_notes_do_not_mention_is_new() -> None:
    draft = compose(study(), result(finding(0.9)), notes="Cough for three days.")
    assert "- New (not in the notes) (Pneumonia): notes: not mentioned" in draft.text
    assert not draft.discordant


def test_hc_and_ga_are_listed_under_their_finding_and_in_the_impression() -> None:
    from radlens.domain.findings import Measurement

    hc = Measurement("head_circumference", "Head circumference", 176.54, "mm", method="ellipse")
    ga = Measurement("gestational_age", "Gestational age", 20.2, "wk", 18.3, 22.1, "Hadlock 1984")
    text = compose_markdown(study(), result(finding(0.98, "fetal_head", measurements=(hc, ga))))
    findings = section(text, "Findings")
    assert "  - Head circumference 176.5 mm; ellipse." in findings
    assert "  - Gestational age 20.2 weeks (range 18.3-22.1 weeks); Hadlock 1984." in findings
    assert (
        "Head circumference 176.5 mm; Gestational age 20.2 weeks (range 18.3-22.1 weeks)."
        in section(text, "Impression")
    )


def test_a_measurement_without_a_value_says_why() -> None:
    from radlens.domain.findings import Measurement

    ga = Measurement("gestational_age", "Gestational age", None, "wk", note="HC 60.0 mm gives 12")
    text = compose_markdown(study(), result(finding(0.98, "fetal_head", measurements=(ga,))))
    assert "Gestational age not given: HC 60.0 mm gives 12" in section(text, "Findings")
