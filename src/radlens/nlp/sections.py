"""Sections and sentences of a clinical text: the scope that negation and uncertainty obey.

A report or a note is cut into sections at the headers radiology text uses ("INDICATION:",
"Reason for exam:", "FINDINGS:", "IMPRESSION:"), then into sentences. A section says what a
mention in it means: anything under an indication or clinical history header is the reason
for the exam (a question, not an answer), anything under "COMPARISON:" is about earlier
studies.

A section ends at the next header or at a blank line. Sentences end at ``.``, ``!``, ``?``, ``;`` followed by white space, and at line breaks;
not after "vs." or "e.g.", and not inside numbers ("1.5 cm"). Offsets always refer to the
text given, so a mention can be shown where it was written.

Example:
    >>> [(s.section.value, s.text) for s in split_sentences("Indication: cough. Findings: No effusion.")]
    [('reason', 'cough.'), ('findings', 'No effusion.')]
"""  # noqa: E501

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache


class Section(StrEnum):
    """What a part of a clinical text is for."""

    REASON = "reason"
    """Indication, reason for exam, clinical history: the question asked."""
    COMPARISON = "comparison"
    """Earlier studies compared with."""
    TECHNIQUE = "technique"
    FINDINGS = "findings"
    IMPRESSION = "impression"
    BODY = "body"
    """Text under no known header (a free clinical note, a report without headers)."""


HEADERS: dict[str, Section] = {
    r"indications?": Section.REASON,
    r"reasons? for (?:the )?(?:exam(?:ination)?|study|request|referral)": Section.REASON,
    r"reason": Section.REASON,
    r"clinical (?:history|information|indications?|details|notes?)": Section.REASON,
    r"(?:brief |relevant )?(?:history|hx)": Section.REASON,
    r"comparisons?": Section.COMPARISON,
    r"(?:comparison|prior) (?:studies|study|exams?)": Section.COMPARISON,
    r"technique|procedure|exam(?:ination)?|views?": Section.TECHNIQUE,
    r"findings?|report|results?": Section.FINDINGS,
    r"impressions?|conclusions?|summary|assessment|opinion": Section.IMPRESSION,
    r"notes?|comments?|remarks?": Section.BODY,
}
"""Header words (regular expressions, lower case) -> section. A header ends with ``:``."""

NO_BREAK_AFTER = ("vs", "e.g", "i.e", "approx", "dr", "cf", "fig", "etc", "st", "mr", "mrs", "ms")
"""Abbreviations whose full stop does not end a sentence."""


@dataclass(frozen=True)
class Sentence:
    """One sentence: ``text[start:end]`` of the text it came from, and its section."""

    start: int
    end: int
    section: Section
    text: str = field(repr=False)


@cache
def _header_re() -> re.Pattern[str]:
    names = "|".join(f"(?:{p})" for p in HEADERS)
    # At the start of the text or a line, or after a sentence end; then the name and a colon.
    return re.compile(rf"(?:^|(?<=[\n.;!?]))[ \t]*(?P<name>{names})[ \t]*:", re.IGNORECASE)


def _section_of(name: str) -> Section:
    lowered = " ".join(name.lower().split())
    for pattern, section in HEADERS.items():
        if re.fullmatch(pattern, lowered):
            return section
    return Section.BODY  # pragma: no cover - every header name matches one pattern


_BREAK_RE = re.compile(r"[.!?;]+(?=\s|$)|\n+")


def _sentence_ends(text: str, start: int, end: int) -> list[int]:
    """End offsets (exclusive) of the sentences in ``text[start:end]``."""
    ends = []
    for m in _BREAK_RE.finditer(text, start, end):
        if m.group().startswith(".") and len(m.group()) == 1:
            word = re.search(r"([A-Za-z.]+)$", text[start : m.start()])
            if word and word.group(1).lower().lstrip(".") in NO_BREAK_AFTER:
                continue
        ends.append(m.end())
    if not ends or ends[-1] < end:
        ends.append(end)
    return ends


_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def split_sections(text: str) -> list[tuple[Section, int, int]]:
    """``(section, start, end)`` of each section's body.

    A section runs from its header to the next header or blank line; text before any
    header, or after a blank line, is BODY.
    """
    parts: list[tuple[Section, int, int]] = []
    position, section = 0, Section.BODY
    for m in _header_re().finditer(text):
        parts.append((section, position, m.start()))
        position, section = m.end(), _section_of(m.group("name"))
    parts.append((section, position, len(text)))
    split: list[tuple[Section, int, int]] = []
    for section, start, end in parts:
        for gap in _BLANK_LINE.finditer(text, start, end):
            split.append((section, start, gap.start()))
            section, start = Section.BODY, gap.end()
        split.append((section, start, end))
    return [(s, a, b) for s, a, b in split if text[a:b].strip()]


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of ``text``, each with its section; blank ones are left out."""
    sentences = []
    for section, start, end in split_sections(text):
        position = start
        for stop in _sentence_ends(text, start, end):
            chunk = text[position:stop]
            if chunk.strip():
                lead = len(chunk) - len(chunk.lstrip())
                trail = len(chunk.rstrip())
                a, b = position + lead, position + trail
                sentences.append(Sentence(a, b, section, text[a:b]))
            position = stop
    return sentences
