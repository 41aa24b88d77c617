"""Finding mentions: negation, uncertainty, history, reason for exam, scope (table-driven)."""

from __future__ import annotations

import pytest

from radlens.nlp.mentions import Assertion, Extraction, extract
from radlens.nlp.sections import Section

A = Assertion

CASES: list[tuple[str, str, Assertion]] = [
    # The acceptance examples.
    ("No pneumothorax.", "pneumothorax", A.ABSENT),
    ("Cannot exclude pneumonia.", "pneumonia", A.POSSIBLE),
    ("Possible nodule.", "nodule", A.POSSIBLE),
    # Negation, forward and backward.
    ("There is no pleural effusion.", "effusion", A.ABSENT),
    ("Lungs are clear without effusion.", "effusion", A.ABSENT),
    ("Negative for pneumothorax.", "pneumothorax", A.ABSENT),
    ("No evidence of focal consolidation.", "opacity", A.ABSENT),
    ("Lungs are free of focal airspace disease.", "opacity", A.ABSENT),
    ("Pneumothorax is not seen.", "pneumothorax", A.ABSENT),
    ("Effusion is not well-seen on today's study.", "effusion", A.ABSENT),
    ("Pneumonia is unlikely.", "pneumonia", A.ABSENT),
    ("Pneumonia ruled out.", "pneumonia", A.ABSENT),
    ("Heart size is normal.", "cardiomegaly", A.ABSENT),
    ("The heart is normal in size.", "cardiomegaly", A.ABSENT),
    ("Lungs are clear.", "opacity", A.ABSENT),
    ("No focal consolidation to suggest pneumonia.", "pneumonia", A.ABSENT),
    # Resolved: absent now, and historical.
    ("Effusion has resolved.", "effusion", A.ABSENT),
    ("Interval resolution of the right lower lobe pneumonia.", "pneumonia", A.ABSENT),
    # Uncertainty.
    ("Pneumonia cannot be excluded.", "pneumonia", A.POSSIBLE),
    ("Findings may represent atelectasis.", "atelectasis", A.POSSIBLE),
    ("Opacity suspicious for pneumonia.", "pneumonia", A.POSSIBLE),
    ("Questionable small right effusion.", "effusion", A.POSSIBLE),
    ("Atelectasis versus pneumonia.", "atelectasis", A.POSSIBLE),
    ("Atelectasis versus pneumonia.", "pneumonia", A.POSSIBLE),
    ("Atelectasis vs. pneumonia.", "pneumonia", A.POSSIBLE),
    ("Edema is difficult to entirely exclude.", "edema", A.POSSIBLE),
    ("Pneumonia is in the differential.", "pneumonia", A.POSSIBLE),
    # History.
    ("History of pneumothorax.", "pneumothorax", A.HISTORICAL),
    ("Known emphysema.", "emphysema", A.HISTORICAL),
    ("Hx of CHF.", "heart_failure", A.HISTORICAL),
    ("No history of pneumothorax.", "pneumothorax", A.ABSENT),
    # Reason for the exam.
    ("Rule out pneumonia.", "pneumonia", A.REASON),
    ("r/o PNA", "pneumonia", A.REASON),
    ("Evaluate for pneumothorax.", "pneumothorax", A.REASON),
    ("Indication: cough, fever, pneumonia?", "pneumonia", A.REASON),
    ("INDICATION: effusion. FINDINGS: Small left pleural effusion.", "effusion", A.REASON),
    # Pseudo-negations: the finding is there.
    ("No change in the left pleural effusion.", "effusion", A.PRESENT),
    ("No significant interval change in cardiomegaly.", "cardiomegaly", A.PRESENT),
    ("Not only cardiomegaly but also edema.", "cardiomegaly", A.PRESENT),
    ("Cardiomegaly, not significantly changed.", "cardiomegaly", A.PRESENT),
    # Plain presence and abbreviations.
    ("Small right pneumothorax.", "pneumothorax", A.PRESENT),
    ("Large right PTX.", "pneumothorax", A.PRESENT),
    ("Mild cardiomegaly.", "cardiomegaly", A.PRESENT),
    ("The heart is enlarged.", "cardiomegaly", A.PRESENT),
    ("Right lower lobe consolidation.", "opacity", A.PRESENT),
    ("Left basilar atelectasis/scarring.", "atelectasis", A.PRESENT),
    ("Mild interstitial edema.", "edema", A.PRESENT),
    ("Hyperinflated lungs with emphysematous changes.", "emphysema", A.PRESENT),
    ("Normal chest.", "normal", A.PRESENT),
    ("No acute cardiopulmonary abnormality.", "normal", A.PRESENT),
    ("Left breast IDC, BI-RADS 5.", "breast_malignancy", A.PRESENT),
    ("Moderate NPDR in both eyes.", "diabetic_retinopathy", A.PRESENT),
    ("Known ACOM aneurysm.", "intracranial_aneurysm", A.HISTORICAL),
    ("Congenital adrenal hyperplasia.", "adrenal_hyperplasia", A.PRESENT),
]


def _assertions(text: str, label: str) -> list[Assertion]:
    return [m.assertion for m in extract(text).mentions if m.label == label]


@pytest.mark.parametrize(("text", "label", "expected"), CASES)
def test_extract_asserts_each_case(text: str, label: str, expected: Assertion) -> None:
    assert expected in _assertions(text, label), extract(text).mentions


LISTS: list[tuple[str, dict[str, Assertion]]] = [
    (
        "No effusion or pneumothorax.",
        {"effusion": A.ABSENT, "pneumothorax": A.ABSENT},
    ),
    (
        "No focal consolidation, pneumothorax, or large pleural effusion.",
        {"opacity": A.ABSENT, "pneumothorax": A.ABSENT, "effusion": A.ABSENT},
    ),
    (
        "No acute cardiopulmonary disease or effusion.",
        {"normal": A.PRESENT, "effusion": A.ABSENT},
    ),
    # Termination terms end the scope of a trigger.
    ("No effusion but there is a small pneumothorax.", {"pneumothorax": A.PRESENT}),
    ("No effusion, however mild cardiomegaly.", {"cardiomegaly": A.PRESENT}),
    ("Lungs are clear aside from left basilar atelectasis.", {"atelectasis": A.PRESENT}),
    # A trigger of another kind ends an uncertainty scope.
    ("Possible nodule, no effusion.", {"nodule": A.POSSIBLE, "effusion": A.ABSENT}),
    # A sentence ends a scope.
    ("No pneumothorax. Cardiomegaly.", {"pneumothorax": A.ABSENT, "cardiomegaly": A.PRESENT}),
    ("No pneumothorax; cardiomegaly.", {"cardiomegaly": A.PRESENT}),
    # Words before a forward trigger are outside its scope.
    ("Cardiomegaly without edema.", {"cardiomegaly": A.PRESENT, "edema": A.ABSENT}),
]


@pytest.mark.parametrize(("text", "expected"), LISTS)
def test_extract_scopes_lists_and_terminations(text: str, expected: dict[str, Assertion]) -> None:
    got = {m.label: m.assertion for m in extract(text).mentions}
    for label, assertion in expected.items():
        assert got.get(label) is assertion, (label, got)


def test_mention_keeps_offsets_triggers_and_section() -> None:
    text = "FINDINGS: Heart normal. Cannot exclude pneumonia."
    (m,) = [m for m in extract(text).mentions if m.label == "pneumonia"]
    assert text[m.start : m.end] == "pneumonia" == m.text
    assert m.triggers == ("cannot exclude",)
    assert m.section is Section.FINDINGS
    assert m.uncertain and not m.negated


def test_mention_repr_leaves_out_the_sentence() -> None:
    (m,) = extract("Secret words and a small effusion.").mentions
    assert "Secret" not in repr(m)
    assert m.sentence.startswith("Secret")


def test_overlapping_terms_keep_the_longer_one() -> None:
    labels = {m.label for m in extract("Small pericardial effusion.").mentions}
    assert labels == {"pericardial_effusion"}


def test_reasons_come_from_indication_and_inline_rule_out() -> None:
    e = extract("Indication: cough and fever.\n\nPatient seen in ED, r/o PNA.")
    assert e.reasons == ("cough and fever", "r/o PNA")


def test_extraction_labels_filters_by_assertion() -> None:
    e = extract("Possible nodule. No effusion. Cardiomegaly.")
    assert e.labels() == {"cardiomegaly"}
    assert e.labels(A.POSSIBLE, A.ABSENT) == {"nodule", "effusion"}


def test_extract_of_empty_text_finds_nothing() -> None:
    assert extract("") == Extraction(())
    assert extract("   \n ").mentions == ()


def test_extract_reads_hl7_message_text() -> None:
    message = (
        "MSH|^~\\&|RIS|HOSP|RADLENS|HOSP|202401011200||ORM^O01|42|P|2.5.1\r"
        "OBR|1|||71046^XR CHEST 2 VIEWS|||||||||Fever, cough" + "|" * 18 + "^r/o pneumonia\r"
        "NTE|1||History of left pneumothorax."
    )
    e = extract(message)
    got = {(m.label, m.assertion) for m in e.mentions}
    assert ("pneumonia", A.REASON) in got
    assert ("pneumothorax", A.HISTORICAL) in got
    assert e.reasons[0] == "r/o pneumonia"
