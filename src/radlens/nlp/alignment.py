"""Notes versus image: does what the clinician wrote agree with what the AI found?

For each AI finding, the mentions of its label (and of ``RELATED_LABELS``) are reduced to one
statement of the notes, by precedence: present > possible > absent > reason > historical
(a finding seen on one side and absent on the other is present; a current statement outranks
a question, a question outranks history). Then:

=============== ================================ ==========================================
notes say       AI positive                      AI negative
=============== ================================ ==========================================
present         concordant                       **discordant**
possible        concordant                       **discordant** (suspicion not supported)
reason (r/o)    concordant                       **discordant** (question open: AI negative
                                                 is no proof of absence; radiologist decides)
absent          **discordant**                   concordant
historical      known                            concordant
nothing         new                              concordant
=============== ================================ ==========================================

Uncertain mentions ("possible nodule", "cannot exclude pneumonia") are read as a suspicion,
exactly like a reason for the exam: the AI supporting it agrees, the AI not supporting it is a
disagreement the radiologist should settle. Every discordance carries one human sentence,
e.g. "notes: rule out pneumonia; AI: no evidence (p=0.08)". A finding whose input was unlike
the model's training data says so in the sentence; its concordance is not changed, because
the radiologist must read such a study anyway.

Example:
    >>> from radlens.domain.findings import Finding
    >>> from radlens.nlp.mentions import extract
    >>> f = Finding("pneumonia", "Pneumonia", 0.92, 0.5, "cxr_pneumonia", "1.0")
    >>> a = align(extract("No pneumonia.").mentions, [f])[0]
    >>> a.concordance.value, a.sentence
    ('discordant', 'notes: no pneumonia; AI: pneumonia likely (p=0.92)')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from radlens.domain.findings import Finding
from radlens.nlp.lexicon import LABELS
from radlens.nlp.mentions import Assertion, Mention


class Concordance(StrEnum):
    """How the notes and an AI finding relate."""

    CONCORDANT = "concordant"
    DISCORDANT = "discordant"
    NEW = "new"
    """The AI found it; the notes do not mention it."""
    KNOWN = "known"
    """The AI found it; the notes know it from history or a prior study."""


RELATED_LABELS: dict[str, tuple[str, ...]] = {
    # Radiologists rule pneumonia in or out through its sign: "no focal consolidation".
    "pneumonia": ("pneumonia", "opacity", "infection"),
}
"""Finding code -> the mention labels that speak about it (default: the code itself)."""

PRECEDENCE = (
    Assertion.PRESENT,
    Assertion.POSSIBLE,
    Assertion.ABSENT,
    Assertion.REASON,
    Assertion.HISTORICAL,
)
"""Which statement of the notes counts when mentions disagree, strongest first."""

_NOTES_WORDS = {
    Assertion.PRESENT: "{}",
    Assertion.POSSIBLE: "possible {}",
    Assertion.ABSENT: "no {}",
    Assertion.REASON: "rule out {}",
    Assertion.HISTORICAL: "history of {}",
}

_TABLE: dict[tuple[Assertion | None, bool], Concordance] = {
    (Assertion.PRESENT, True): Concordance.CONCORDANT,
    (Assertion.PRESENT, False): Concordance.DISCORDANT,
    (Assertion.POSSIBLE, True): Concordance.CONCORDANT,
    (Assertion.POSSIBLE, False): Concordance.DISCORDANT,
    (Assertion.REASON, True): Concordance.CONCORDANT,
    (Assertion.REASON, False): Concordance.DISCORDANT,
    (Assertion.ABSENT, True): Concordance.DISCORDANT,
    (Assertion.ABSENT, False): Concordance.CONCORDANT,
    (Assertion.HISTORICAL, True): Concordance.KNOWN,
    (Assertion.HISTORICAL, False): Concordance.CONCORDANT,
    (None, True): Concordance.NEW,
    (None, False): Concordance.CONCORDANT,
}


@dataclass(frozen=True, eq=False)
class Alignment:
    """One AI finding beside what the notes say about it.

    Attributes:
        finding: the AI finding, unchanged.
        concordance: how they relate.
        notes: the notes' statement (``PRECEDENCE``), or None when they do not mention it.
        sentence: one line for the radiologist, e.g. "notes: no pneumonia; AI: pneumonia
            likely (p=0.92)".
        mentions: the mentions it was decided from.
    """

    finding: Finding
    concordance: Concordance
    notes: Assertion | None
    sentence: str
    mentions: tuple[Mention, ...] = field(default=(), repr=False)

    @property
    def flagged(self) -> bool:
        """Whether the radiologist should look: the notes and the AI disagree."""
        return self.concordance is Concordance.DISCORDANT


def notes_statement(mentions: Iterable[Mention]) -> Assertion | None:
    """The strongest statement among mentions (``PRECEDENCE``), or None for none."""
    found = {m.assertion for m in mentions}
    return next((a for a in PRECEDENCE if a in found), None)


def _sentence(finding: Finding, notes: Assertion | None, mentions: Sequence[Mention]) -> str:
    if notes is None:
        said = "not mentioned"
    else:
        chosen = sorted(
            (m for m in mentions if m.assertion is notes), key=lambda m: m.label != finding.code
        )
        words = LABELS.get(chosen[0].label, chosen[0].label) if chosen else finding.label
        said = _NOTES_WORDS[notes].format(words)
    ai = (
        f"{finding.label.lower()} likely (p={finding.probability:.2f})"
        if finding.positive
        else f"no evidence (p={finding.probability:.2f})"
    )
    ood = "; AI input unlike its training data" if finding.ood_flag else ""
    return f"notes: {said}; AI: {ai}{ood}"


def align(mentions: Iterable[Mention], findings: Iterable[Finding]) -> tuple[Alignment, ...]:
    """Per AI finding, its concordance with the notes' mentions (see the module table).

    Mentions from a prior report can be marked historical first
    (``dataclasses.replace(m, historical=True)``), so an AI positive they contain is
    "known".
    """
    pool = tuple(mentions)
    out = []
    for finding in findings:
        labels = RELATED_LABELS.get(finding.code, (finding.code,))
        relevant = tuple(m for m in pool if m.label in labels)
        notes = notes_statement(relevant)
        out.append(
            Alignment(
                finding=finding,
                concordance=_TABLE[(notes, finding.positive)],
                notes=notes,
                sentence=_sentence(finding, notes, relevant),
                mentions=relevant,
            )
        )
    return tuple(out)
