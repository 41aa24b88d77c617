"""The active-learning queue: open studies whose review would teach the model most,
sampled fairly across sites and scanners.

A finding earns a place for each reason it has; its score is the sum of their values:

* ``uncertain``: in the card's abstain band (the finding's "indeterminate" warning) or
  within ``UNCERTAIN_MARGIN`` of its threshold: ``1 - abs(p - t) / max(t, 1 - t)``, which
  is 1 at the threshold;
* ``out of distribution``: the OOD flag: ``min(ood_score, 2) / 2``, 0.5 at the flag and 1 at
  twice it;
* ``reader-AI disagreement``: the adjudicated call differs from the AI's: 1;
* ``readers disagree``: two readers voted differently: 1;
* ``low reader confidence``: the readers' mean confidence is 2 or less: 0.5.

A study is one case, scored by its most informative finding; findings the asking reader
already reviewed are left out (a second reader is what a disagreement needs), and so are
signed studies (their findings can no longer be reviewed).

Fairness: cases are grouped by stratum (:class:`~radlens.feedback.equipment.Equipment`:
scanner make and model at a station) and taken round-robin: each round takes the best case
left of every stratum, best first. A busy scanner cannot crowd a rare one out of the top of
the queue, which is where the model learns least about the rare one.

Example:
    >>> from radlens.feedback.records import ShownFinding
    >>> shown = ShownFinding("pneumonia", "Pneumonia", 0.52, 0.5, True, "cxr", "1.0.0")
    >>> round(informativeness(shown).score, 2), informativeness(shown).reasons
    (0.96, ('uncertain',))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from radlens.feedback.adjudication import Adjudication
from radlens.feedback.equipment import Equipment
from radlens.feedback.records import ShownFinding

UNCERTAIN_MARGIN = 0.1
LOW_CONFIDENCE = 2.0
INDETERMINATE_PREFIX = "indeterminate"  # radlens.inference.predict.INDETERMINATE


class Reason(StrEnum):
    """Why a finding is worth a (further) review."""

    UNCERTAIN = "uncertain"
    OOD = "out of distribution"
    AI_DISAGREEMENT = "reader-AI disagreement"
    READER_DISAGREEMENT = "readers disagree"
    LOW_CONFIDENCE = "low reader confidence"


WEIGHTS: dict[Reason, float] = {
    Reason.UNCERTAIN: 1.0,
    Reason.OOD: 1.0,
    Reason.AI_DISAGREEMENT: 1.0,
    Reason.READER_DISAGREEMENT: 1.0,
    Reason.LOW_CONFIDENCE: 0.5,
}


@dataclass(frozen=True)
class Informativeness:
    """A finding's score and the reasons behind it (empty: not worth queueing)."""

    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    """An AI finding of an open study, with what readers said about it so far.

    Attributes:
        study_uid, finding_id: the finding.
        shown: the finding in the study's current result.
        equipment: the series' site and scanner.
        received_at: when the study arrived.
        adjudication: the readers' votes, or None when nobody reviewed it yet.
    """

    study_uid: str
    finding_id: str
    shown: ShownFinding
    equipment: Equipment
    received_at: datetime
    adjudication: Adjudication | None = None

    @property
    def readers(self) -> frozenset[str]:
        if self.adjudication is None:
            return frozenset()
        return frozenset(v.reader for v in self.adjudication.votes)


@dataclass(frozen=True)
class QueueItem:
    """One case of the queue: a study, by its most informative finding.

    Attributes:
        rank: 1-based place in the fair order.
        score: the finding's informativeness; reasons: of every queued finding of the study.
        stratum: the scanner and station the round-robin took it for.
    """

    rank: int
    study_uid: str
    finding_id: str
    score: float
    reasons: tuple[str, ...]
    shown: ShownFinding
    equipment: Equipment
    received_at: datetime
    n_findings: int
    adjudication: Adjudication | None = None

    @property
    def stratum(self) -> str:
        return self.equipment.stratum


def informativeness(
    shown: ShownFinding, adjudication: Adjudication | None = None
) -> Informativeness:
    """How much a (further) review of the finding would teach (the module docstring)."""
    parts: dict[Reason, float] = {}
    p, t = shown.probability, shown.threshold
    indeterminate = any(w.startswith(INDETERMINATE_PREFIX) for w in shown.warnings)
    if indeterminate or abs(p - t) <= UNCERTAIN_MARGIN:
        parts[Reason.UNCERTAIN] = max(1.0 - abs(p - t) / max(t, 1.0 - t), 0.0)
    if shown.ood_flag:
        parts[Reason.OOD] = min(shown.ood_score if shown.ood_score is not None else 1.0, 2.0) / 2
    if adjudication is not None:
        if adjudication.ai_agrees is False:
            parts[Reason.AI_DISAGREEMENT] = 1.0
        if adjudication.disagreement:
            parts[Reason.READER_DISAGREEMENT] = 1.0
        confidence = adjudication.mean_confidence
        if confidence is not None and confidence <= LOW_CONFIDENCE:
            parts[Reason.LOW_CONFIDENCE] = 1.0
    score = sum(WEIGHTS[reason] * value for reason, value in parts.items())
    return Informativeness(round(score, 6), tuple(str(r) for r in Reason if r in parts))


def learning_queue(
    candidates: Iterable[Candidate], reader: str = "", limit: int = 50
) -> list[QueueItem]:
    """The queue for ``reader`` ("" = anyone): one item per study, fair across strata.

    Example:
        >>> learning_queue([])
        []
    """
    per_study: dict[str, list[tuple[Informativeness, Candidate]]] = {}
    for candidate in candidates:
        if reader and reader in candidate.readers:
            continue
        found = informativeness(candidate.shown, candidate.adjudication)
        if found.reasons:
            per_study.setdefault(candidate.study_uid, []).append((found, candidate))
    cases = []
    for study_uid, scored in per_study.items():
        scored.sort(key=lambda pair: (-pair[0].score, pair[1].finding_id))
        best, candidate = scored[0]
        reasons = tuple(str(r) for r in Reason if any(r in s.reasons for s, _ in scored))
        cases.append(
            QueueItem(
                0,
                study_uid,
                candidate.finding_id,
                best.score,
                reasons,
                candidate.shown,
                candidate.equipment,
                candidate.received_at,
                len(scored),
                candidate.adjudication,
            )
        )
    ordered = fair_order(cases)[:limit]
    return [replace(item, rank=rank) for rank, item in enumerate(ordered, start=1)]


def fair_order(items: Sequence[QueueItem]) -> list[QueueItem]:
    """Round-robin over strata: each round takes every stratum's best remaining item,
    ordered among themselves by score (ties: older study first, then UID).

    Example:
        >>> fair_order([])
        []
    """
    strata: dict[str, list[QueueItem]] = {}
    for item in items:
        strata.setdefault(item.stratum, []).append(item)
    for group in strata.values():
        group.sort(key=_best_first)
    ordered: list[QueueItem] = []
    depth = 0
    while len(ordered) < len(items):
        round_items = [group[depth] for group in strata.values() if depth < len(group)]
        ordered.extend(sorted(round_items, key=_best_first))
        depth += 1
    return ordered


def _best_first(item: QueueItem) -> tuple[float, datetime, str]:
    return (-item.score, item.received_at, item.study_uid)
