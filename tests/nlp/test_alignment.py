"""Notes versus AI findings: concordance flags and the sentence for the radiologist."""

from __future__ import annotations

import dataclasses

import pytest

from radlens.domain.findings import Finding
from radlens.nlp.alignment import Concordance, align, notes_statement
from radlens.nlp.mentions import Assertion, extract

C = Concordance


def finding(code: str, probability: float, *, ood: bool = False) -> Finding:
    return Finding(
        code=code,
        label=code.replace("_", " ").capitalize(),
        probability=probability,
        threshold=0.5,
        model_name="tiny",
        model_version="1.0",
        ood_flag=ood,
    )


def test_negated_and_uncertain_notes_produce_the_right_flags() -> None:
    notes = extract(
        "Clinical history: rule out pneumonia. No pneumothorax. Possible nodule. "
        "Cannot exclude effusion. History of emphysema."
    )
    findings = [
        finding("pneumonia", 0.08),  # asked about, AI negative
        finding("pneumothorax", 0.91),  # notes negate it, AI positive
        finding("nodule", 0.85),  # notes suspect it, AI positive
        finding("effusion", 0.10),  # notes suspect it, AI negative
        finding("emphysema", 0.77),  # history, AI positive
        finding("cardiomegaly", 0.88),  # notes silent, AI positive
        finding("edema", 0.02),  # notes silent, AI negative
    ]
    got = {a.finding.code: (a.concordance, a.flagged) for a in align(notes.mentions, findings)}
    assert got == {
        "pneumonia": (C.DISCORDANT, True),
        "pneumothorax": (C.DISCORDANT, True),
        "nodule": (C.CONCORDANT, False),
        "effusion": (C.DISCORDANT, True),
        "emphysema": (C.KNOWN, False),
        "cardiomegaly": (C.NEW, False),
        "edema": (C.CONCORDANT, False),
    }


TABLE = [
    ("Pneumonia.", True, C.CONCORDANT),
    ("Pneumonia.", False, C.DISCORDANT),
    ("Possible pneumonia.", True, C.CONCORDANT),
    ("Possible pneumonia.", False, C.DISCORDANT),
    ("Rule out pneumonia.", True, C.CONCORDANT),
    ("Rule out pneumonia.", False, C.DISCORDANT),
    ("No pneumonia.", True, C.DISCORDANT),
    ("No pneumonia.", False, C.CONCORDANT),
    ("History of pneumonia.", True, C.KNOWN),
    ("History of pneumonia.", False, C.CONCORDANT),
    ("Cardiomegaly.", True, C.NEW),
    ("Cardiomegaly.", False, C.CONCORDANT),
]


@pytest.mark.parametrize(("notes", "ai_positive", "expected"), TABLE)
def test_concordance_table(notes: str, ai_positive: bool, expected: Concordance) -> None:
    (a,) = align(extract(notes).mentions, [finding("pneumonia", 0.9 if ai_positive else 0.1)])
    assert a.concordance is expected


@pytest.mark.parametrize(
    ("notes", "probability", "sentence"),
    [
        ("Rule out pneumonia.", 0.08, "notes: rule out pneumonia; AI: no evidence (p=0.08)"),
        ("No pneumonia.", 0.92, "notes: no pneumonia; AI: pneumonia likely (p=0.92)"),
        ("Possible pneumonia.", 0.2, "notes: possible pneumonia; AI: no evidence (p=0.20)"),
        ("", 0.7, "notes: not mentioned; AI: pneumonia likely (p=0.70)"),
    ],
)
def test_sentence_for_the_radiologist(notes: str, probability: float, sentence: str) -> None:
    (a,) = align(extract(notes).mentions, [finding("pneumonia", probability)])
    assert a.sentence == sentence


def test_no_consolidation_speaks_about_pneumonia() -> None:
    (a,) = align(extract("No focal consolidation.").mentions, [finding("pneumonia", 0.9)])
    assert a.concordance is C.DISCORDANT
    assert a.sentence == "notes: no lung opacity; AI: pneumonia likely (p=0.90)"


def test_present_outranks_absent_when_mentions_disagree() -> None:
    mentions = extract("No left effusion. Small right effusion.").mentions
    assert notes_statement(mentions) is Assertion.PRESENT
    (a,) = align(mentions, [finding("effusion", 0.9)])
    assert a.concordance is C.CONCORDANT


def test_a_current_statement_outranks_the_question() -> None:
    mentions = extract("Indication: r/o pneumonia. Findings: No pneumonia.").mentions
    assert notes_statement(mentions) is Assertion.ABSENT


def test_prior_report_mentions_marked_historical_make_ai_positives_known() -> None:
    prior = [dataclasses.replace(m, historical=True) for m in extract("Emphysema.").mentions]
    (a,) = align(prior, [finding("emphysema", 0.8)])
    assert a.concordance is C.KNOWN
    assert a.sentence.startswith("notes: history of emphysema")


def test_out_of_distribution_input_is_said_and_does_not_change_the_flag() -> None:
    (a,) = align(extract("No pneumonia.").mentions, [finding("pneumonia", 0.9, ood=True)])
    assert a.flagged
    assert a.sentence.endswith("; AI input unlike its training data")


def test_findings_are_returned_unchanged_in_order() -> None:
    fs = [finding("pneumonia", 0.9), finding("breast_malignancy", 0.1)]
    out = align([], fs)
    assert [a.finding for a in out] == fs
    assert [a.concordance for a in out] == [C.NEW, C.CONCORDANT]
