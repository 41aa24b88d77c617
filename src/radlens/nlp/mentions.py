"""Finding mentions in free text: which finding, and whether it is there, absent, possible,
past, or the question the exam should answer.

``extract(text)`` reads a clinical note, a prior report, or HL7 v2 message text (ORM / ORU,
recognized by its ``MSH`` segment; see ``hl7.py``), cuts it into sections and sentences
(``sections.py``), finds the terms of ``lexicon.TERMS`` and asks ConText (``context.py``)
about each. Every mention keeps where it was written (offsets) and why it got its
assertion (the trigger phrases), so a reader can check it.

Example:
    >>> [(m.label, m.assertion.value) for m in extract("No pneumothorax. Possible nodule.").mentions]
    [('pneumothorax', 'absent'), ('nodule', 'possible')]
"""  # noqa: E501

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache

from radlens.nlp.context import Category, Span, assert_targets
from radlens.nlp.hl7 import looks_like_hl7, note_text, parse_hl7
from radlens.nlp.lexicon import NEGATIVE_TERMS, TERMS
from radlens.nlp.sections import Section, Sentence, split_sentences


class Assertion(StrEnum):
    """What the text says about a finding, one word.

    Precedence when several flags hold: absent > historical > reason > possible > present
    ("no history of pneumothorax" is absent; "history of emphysema" under an indication
    header is history, not the question; "rule out pneumonia" is a reason, though a question
    is also uncertain).
    """

    PRESENT = "present"
    ABSENT = "absent"
    POSSIBLE = "possible"
    HISTORICAL = "historical"
    REASON = "reason"
    """The reason for the exam: asked about, not answered."""


@dataclass(frozen=True)
class Mention:
    """One finding mentioned in a text.

    Attributes:
        label: radlens label code (``lexicon.LABELS``), e.g. ``"effusion"``.
        text: the words as written, e.g. ``"small left pleural effusion"``.
        start, end: offsets of ``text`` in the analyzed text (for HL7, in ``note_text``).
        section: the part of the text it is in.
        negated, uncertain, historical, reason: the ConText flags.
        triggers: the trigger phrases that set the flags, e.g. ``("cannot exclude",)``.
        sentence: the whole sentence (clinical text: kept out of ``repr``).
    """

    label: str
    text: str
    start: int
    end: int
    section: Section = Section.BODY
    negated: bool = False
    uncertain: bool = False
    historical: bool = False
    reason: bool = False
    triggers: tuple[str, ...] = ()
    sentence: str = field(default="", repr=False)

    @property
    def assertion(self) -> Assertion:
        if self.negated:
            return Assertion.ABSENT
        if self.historical:
            return Assertion.HISTORICAL
        if self.reason:
            return Assertion.REASON
        if self.uncertain:
            return Assertion.POSSIBLE
        return Assertion.PRESENT


@dataclass(frozen=True)
class Extraction:
    """What ``extract`` found: the mentions, and the reasons for the exam as written."""

    mentions: tuple[Mention, ...]
    reasons: tuple[str, ...] = field(default=(), repr=False)

    def labels(self, *assertions: Assertion) -> set[str]:
        """Labels with at least one mention of one of these assertions (default: present)."""
        wanted = set(assertions) or {Assertion.PRESENT}
        return {m.label for m in self.mentions if m.assertion in wanted}


@dataclass(frozen=True)
class Target:
    """A lexicon term found in a sentence (offsets within the sentence)."""

    label: str
    start: int
    end: int
    negated: bool


@cache
def _term_res() -> tuple[tuple[re.Pattern[str], str, bool], ...]:
    def compile_one(pattern: str) -> re.Pattern[str]:
        # "atelectasis/scarring" names two findings; "non-calcified" is not "calcified".
        return re.compile(rf"(?<![\w-])(?:{pattern})(?![\w-])")

    found = [(compile_one(p), label, False) for label, ps in TERMS.items() for p in ps]
    found += [(compile_one(p), label, True) for label, ps in NEGATIVE_TERMS.items() for p in ps]
    return tuple(found)


def find_targets(sentence: str) -> list[Target]:
    """Term matches in a sentence: longest first, ``lexicon`` order on ties, no overlaps
    except one phrase listed under two labels (a mention of each)."""
    lowered = sentence.lower()
    found = [
        (m.start(), m.end(), order, label, negated)
        for order, (regex, label, negated) in enumerate(_term_res())
        for m in regex.finditer(lowered)
        if m.end() > m.start()
    ]
    kept: list[Target] = []
    for start, end, _, label, negated in sorted(found, key=lambda f: (f[0] - f[1], f[2], f[0])):
        if all(
            end <= k.start or start >= k.end or (start, end) == (k.start, k.end) for k in kept
        ) and not any(k.label == label and (k.start, k.end) == (start, end) for k in kept):
            kept.append(Target(label, start, end, negated))
    return sorted(kept, key=lambda t: t.start)


def _mentions_in(sentence: Sentence) -> list[Mention]:
    targets = find_targets(sentence.text)
    verdicts = assert_targets(sentence.text, [Span(t.start, t.end) for t in targets])
    mentions = []
    for t, (categories, phrases) in zip(targets, verdicts, strict=True):
        mentions.append(
            Mention(
                label=t.label,
                text=sentence.text[t.start : t.end],
                start=sentence.start + t.start,
                end=sentence.start + t.end,
                section=sentence.section,
                negated=t.negated or bool(categories & {Category.NEGATED, Category.RESOLVED}),
                uncertain=Category.POSSIBLE in categories,
                historical=bool(categories & {Category.HISTORICAL, Category.RESOLVED})
                or sentence.section is Section.COMPARISON,
                reason=Category.REASON in categories or sentence.section is Section.REASON,
                triggers=tuple(phrases),
                sentence=sentence.text,
            )
        )
    return mentions


_REASON_TRIGGER = re.compile(
    r"(?<![\w/])(?:rule out|rule-out|r/o|to exclude|eval(?:uate|uation)? (?:for|of)|"
    r"assess(?:ment)? (?:for|of))(?![\w/])",
    re.IGNORECASE,
)


def _reasons(sentences: list[Sentence]) -> tuple[str, ...]:
    """The reason-for-exam sentences, and inline "rule out ..." phrases anywhere else."""
    found = []
    for s in sentences:
        if s.section is Section.REASON:
            found.append(s.text.rstrip(" .;"))
        elif m := _REASON_TRIGGER.search(s.text):
            found.append(s.text[m.start() :].rstrip(" .;"))
    return tuple(r for r in found if r)


def extract(text: str) -> Extraction:
    """Finding mentions in a clinical note, a report, or HL7 v2 ORM/ORU message text.

    Example:
        >>> e = extract("Indication: r/o PNA. Findings: No effusion or pneumothorax.")
        >>> [(m.label, m.assertion.value) for m in e.mentions]
        [('pneumonia', 'reason'), ('effusion', 'absent'), ('pneumothorax', 'absent')]
        >>> e.reasons
        ('r/o PNA',)
    """
    if looks_like_hl7(text):
        text = note_text(parse_hl7(text))
    sentences = split_sentences(text)
    mentions = tuple(m for s in sentences for m in _mentions_in(s))
    return Extraction(mentions, _reasons(sentences))
