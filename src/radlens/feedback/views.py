"""What the server and the CLI show of feedback: one call each, settings passed in.

* :func:`monitoring`: ``radlens monitor`` and ``GET /api/monitoring``;
* :func:`queue`: ``GET /api/learning/queue``;
* :func:`study_adjudications`: the ``adjudications`` of ``GET /api/studies/{uid}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from radlens.feedback.adjudication import Adjudication, AdjudicationRule
from radlens.feedback.cards import known_cards
from radlens.feedback.drift import MIN_IMAGES, PSI_ALERT
from radlens.feedback.monitor import MonitoringReport, monitor
from radlens.feedback.queue import QueueItem, learning_queue
from radlens.feedback.stored import observed_findings, queue_candidates, stored_adjudications
from radlens.store.db import Database


@dataclass(frozen=True)
class FeedbackPolicy:
    """The site's feedback settings (``Settings.adjudication_rule``, ``senior_readers``,
    ``drift_psi_alert``, ``drift_min_images``)."""

    rule: AdjudicationRule = AdjudicationRule.MAJORITY
    senior_readers: frozenset[str] = field(default_factory=frozenset)
    psi_alert: float = PSI_ALERT
    min_images: int = MIN_IMAGES

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", AdjudicationRule(self.rule))
        object.__setattr__(self, "senior_readers", frozenset(self.senior_readers))


def monitoring(
    db: Database,
    storage_dir: Path,
    model_folders: Sequence[Path] = (),
    policy: FeedbackPolicy | None = None,
    model_name: str = "",
    since: datetime | None = None,
) -> MonitoringReport:
    """Monitoring of every model version (or of ``model_name``), over the studies analyzed
    since ``since`` (all when None)."""
    policy = policy or FeedbackPolicy()
    observed = observed_findings(db, storage_dir, model_name, since)
    judged = stored_adjudications(db, policy.rule, policy.senior_readers, model_name)
    return monitor(
        observed,
        judged,
        known_cards(model_folders),
        since,
        psi_alert=policy.psi_alert,
        min_images=policy.min_images,
    )


def queue(
    db: Database,
    storage_dir: Path,
    reader: str = "",
    policy: FeedbackPolicy | None = None,
    model_name: str = "",
    limit: int = 50,
) -> list[QueueItem]:
    """The active-learning queue for ``reader`` (:mod:`radlens.feedback.queue`)."""
    policy = policy or FeedbackPolicy()
    candidates = queue_candidates(db, storage_dir, policy.rule, policy.senior_readers, model_name)
    return learning_queue(candidates, reader, limit)


def study_adjudications(
    db: Database, study_uid: str, policy: FeedbackPolicy | None = None
) -> dict[str, Adjudication]:
    """The adjudication of each reviewed finding of one study, by finding id."""
    policy = policy or FeedbackPolicy()
    judged = stored_adjudications(db, policy.rule, policy.senior_readers, study_uid=study_uid)
    return {finding_id: a for (_, finding_id), a in judged.items()}


def policy_of(
    rule: str, senior_readers: Iterable[str], psi_alert: float, min_images: int
) -> FeedbackPolicy:
    """The policy from the settings' values."""
    return FeedbackPolicy(AdjudicationRule(rule), frozenset(senior_readers), psi_alert, min_images)
