"""Sections and sentences: the scope negation and uncertainty obey."""

from __future__ import annotations

import pytest

from radlens.nlp.sections import Section, split_sections, split_sentences


def _sentences(text: str) -> list[tuple[str, str]]:
    return [(s.section.value, s.text) for s in split_sentences(text)]


def test_headers_set_the_section_of_what_follows() -> None:
    text = "INDICATION: cough. COMPARISON: 2019. FINDINGS: Clear. IMPRESSION: Normal."
    assert _sentences(text) == [
        ("reason", "cough."),
        ("comparison", "2019."),
        ("findings", "Clear."),
        ("impression", "Normal."),
    ]


@pytest.mark.parametrize(
    ("header", "section"),
    [
        ("Reason for exam", Section.REASON),
        ("Clinical history", Section.REASON),
        ("HISTORY", Section.REASON),
        ("Prior studies", Section.COMPARISON),
        ("Technique", Section.TECHNIQUE),
        ("Conclusion", Section.IMPRESSION),
        ("Note", Section.BODY),
    ],
)
def test_header_names(header: str, section: Section) -> None:
    assert split_sentences(f"{header}: something")[0].section is section


def test_text_without_headers_is_body() -> None:
    assert _sentences("No effusion. Cardiomegaly!") == [
        ("body", "No effusion."),
        ("body", "Cardiomegaly!"),
    ]


def test_sentences_do_not_break_inside_numbers_or_after_vs() -> None:
    assert _sentences("A 1.5 cm nodule, atelectasis vs. scar. Next") == [
        ("body", "A 1.5 cm nodule, atelectasis vs. scar."),
        ("body", "Next"),
    ]


def test_semicolons_and_line_breaks_end_sentences() -> None:
    assert [t for _, t in _sentences("No PTX; effusion\nedema")] == ["No PTX;", "effusion", "edema"]


def test_a_blank_line_ends_a_section() -> None:
    text = "Indication: fever\n\nNo effusion."
    assert _sentences(text) == [("reason", "fever"), ("body", "No effusion.")]


def test_offsets_point_into_the_text() -> None:
    text = "Findings:  Small effusion.  "
    (s,) = split_sentences(text)
    assert text[s.start : s.end] == s.text == "Small effusion."
    assert split_sections(text) == [(Section.FINDINGS, 9, len(text))]


def test_a_colon_inside_a_sentence_is_not_a_header() -> None:
    assert _sentences("Ratio was 1:2 in the findings: stable.")[0][0] == "body"
