"""Adjudication: several readers' decisions on one finding -> the label used for learning.

Each reader counts once, with their newest decision (feedback records are append-only).
Votes are counted on :attr:`ReaderCall.key` (present or absent, and the grade of a graded
finding); a relabel is an absent vote that also names a class.

Rules (``Settings.adjudication_rule``):

* ``majority``: the call most readers made; a tie at the top is **unresolved** (no label,
  the finding is not used for learning until another reader breaks the tie).
* ``senior``: the call of the senior readers (``Settings.senior_readers``, account names)
  who reviewed the finding, by majority among them; a tie among seniors is unresolved.
  When no senior reviewed it, the majority of all readers decides.

``agreement`` is the share of readers whose vote is the adjudicated call (for an
unresolved finding, the share of the largest camp); ``disagreement`` is true as soon as
two readers' votes differ. Both are shown by the API and the web UI, and written to
``cases.csv``.

Example:
    >>> from datetime import datetime
    >>> shown = ShownFinding("pneumonia", "Pneumonia", 0.8, 0.5, True, "cxr", "1.0.0")
    >>> def rec(i, reader, decision):
    ...     return FeedbackRecord(i, "1.2", "f1", reader, datetime(2025, 1, i), decision, shown)
    >>> votes = [rec(1, "ann", "accepted"), rec(2, "bob", "rejected"), rec(3, "cy", "accepted")]
    >>> adjudicate(votes).call, adjudicate(votes).agreement
    (ReaderCall(present=True, grade=None, label=''), 0.6666666666666666)
    >>> adjudicate(votes, "senior", frozenset({"bob"})).call.present
    False
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from radlens.feedback.records import FeedbackRecord, ReaderCall, ShownFinding, ai_call


class AdjudicationRule(StrEnum):
    """How several readers' votes become one label."""

    MAJORITY = "majority"
    SENIOR = "senior"


@dataclass(frozen=True)
class Vote:
    """One reader's newest decision on a finding."""

    reader: str
    call: ReaderCall
    at: datetime
    confidence: int | None = None
    senior: bool = False
    decision: str = ""


@dataclass(frozen=True)
class Adjudication:
    """The readers' votes on one finding and the label they give.

    Attributes:
        study_uid, finding_id: the finding.
        votes: one per reader, oldest first.
        rule: the rule applied.
        call: the adjudicated call, or None when unresolved.
        decided_by: ``single reader``, ``majority``, ``senior`` or ``unresolved``.
        shown: the finding as last shown to a reader (model version, probability).
    """

    study_uid: str
    finding_id: str
    votes: tuple[Vote, ...]
    rule: AdjudicationRule
    call: ReaderCall | None
    decided_by: str
    shown: ShownFinding

    def __post_init__(self) -> None:
        if not self.votes:
            raise ValueError("an adjudication needs at least one vote")

    @property
    def n_readers(self) -> int:
        return len(self.votes)

    @property
    def resolved(self) -> bool:
        return self.call is not None

    @property
    def agreement(self) -> float:
        """Share of readers who voted the adjudicated call (or the largest camp)."""
        counts = Counter(v.call.key for v in self.votes)
        top = counts[self.call.key] if self.call is not None else max(counts.values())
        return top / len(self.votes)

    @property
    def disagreement(self) -> bool:
        """Whether any two readers voted differently."""
        return len({v.call.key for v in self.votes}) > 1

    @property
    def ai(self) -> ReaderCall:
        """The AI's call on the finding as last shown."""
        return ai_call(self.shown)

    @property
    def ai_agrees(self) -> bool | None:
        """Whether the adjudicated call is the AI's (None when unresolved)."""
        if self.call is None:
            return None
        return self.call.key == self.ai.key

    @property
    def mean_confidence(self) -> float | None:
        given = [v.confidence for v in self.votes if v.confidence is not None]
        return sum(given) / len(given) if given else None

    def summary(self) -> str:
        """One line for people: ``2 readers disagree: ann present, bob absent (unresolved)``."""
        votes = ", ".join(
            f"{v.reader}{' (senior)' if v.senior else ''} {v.call.describe()}" for v in self.votes
        )
        if not self.disagreement:
            n = self.n_readers
            return f"{n} reader{'s' if n > 1 else ''} agree: {self.votes[0].call.describe()}"
        outcome = (
            "unresolved" if self.call is None else f"{self.decided_by}: {self.call.describe()}"
        )
        return f"{self.n_readers} readers disagree: {votes} ({outcome})"


def latest_votes(records: Iterable[FeedbackRecord], senior_readers: frozenset[str]) -> list[Vote]:
    """Each reader's newest decision as a vote, oldest vote first."""
    newest: dict[str, FeedbackRecord] = {}
    for record in sorted(records, key=lambda r: (r.at, r.id)):
        newest[record.reader] = record
    votes = [
        Vote(r.reader, r.call, r.at, r.confidence, r.reader in senior_readers, r.decision)
        for r in newest.values()
    ]
    return sorted(votes, key=lambda v: v.at)


def adjudicate(
    records: Iterable[FeedbackRecord],
    rule: AdjudicationRule | str = AdjudicationRule.MAJORITY,
    senior_readers: frozenset[str] = frozenset(),
) -> Adjudication:
    """Adjudicate the records of one finding (see the module docstring for the rules).

    Raises:
        ValueError: no records, or records of several findings.
    """
    rule = AdjudicationRule(rule)
    records = sorted(records, key=lambda r: (r.at, r.id))
    if not records:
        raise ValueError("no feedback records to adjudicate")
    if len({(r.study_uid, r.finding_id) for r in records}) > 1:
        raise ValueError("records of several findings; adjudicate each finding apart")
    votes = latest_votes(records, senior_readers)
    seniors = [v for v in votes if v.senior]
    call: ReaderCall | None
    if len(votes) == 1:
        call, decided_by = votes[0].call, "single reader"
    elif rule is AdjudicationRule.SENIOR and seniors:
        call, decided_by = _majority(seniors), "senior"
    else:
        call, decided_by = _majority(votes), "majority"
    if call is None:
        decided_by = "unresolved"
    first = records[0]
    return Adjudication(
        first.study_uid, first.finding_id, tuple(votes), rule, call, decided_by, records[-1].shown
    )


def adjudicate_all(
    records: Iterable[FeedbackRecord],
    rule: AdjudicationRule | str = AdjudicationRule.MAJORITY,
    senior_readers: frozenset[str] = frozenset(),
) -> dict[tuple[str, str], Adjudication]:
    """One adjudication per (study UID, finding id) that has records."""
    grouped: dict[tuple[str, str], list[FeedbackRecord]] = {}
    for record in records:
        grouped.setdefault((record.study_uid, record.finding_id), []).append(record)
    return {key: adjudicate(group, rule, senior_readers) for key, group in grouped.items()}


def _majority(votes: list[Vote]) -> ReaderCall | None:
    """The call with the most votes (None on a tie at the top). Its relabel class is the
    one most of its voters named, when they named one and agree."""
    counts = Counter(v.call.key for v in votes)
    (top, n), *rest = counts.most_common()
    if rest and rest[0][1] == n:
        return None
    present, grade = top
    labels = Counter(v.call.label for v in votes if v.call.key == top and v.call.label)
    ranked = labels.most_common()
    label = ranked[0][0] if ranked and (len(ranked) == 1 or ranked[1][1] < ranked[0][1]) else ""
    return ReaderCall(present, grade, label)
