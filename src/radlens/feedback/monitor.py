"""Monitoring: how each model version behaves in use, per site and scanner.

For each model version, over all its findings in the stored results and per stratum
(:class:`~radlens.feedback.equipment.Equipment`: scanner make and model at a station):

* **volume**: studies, images and findings analyzed (counted boxes of classes the model does
  not triage are left out of the findings);
* **positive rate**: positive findings / findings;
* **reader agreement**: of the reviewed findings with an adjudicated label, the share where
  it is the AI's call (``ai_agreement``); of the findings two or more readers reviewed, the
  share where all agreed (``reader_agreement``);
* **calibration on reviewed cases**: the ECE (15 bins, ``evaluation.metrics.ece_binary``) of
  the AI's probability against the adjudicated present/absent, over reviewed findings
  that are not graded. Few reviewed cases make it noisy: ``n_calibration`` says how many;
* **OOD scores**: per image, the share flagged, a histogram of the decision score, and the
  drift test against the card's training-set quantiles (:mod:`radlens.feedback.drift`).

Example:
    >>> report = monitor([], {}, {})
    >>> report.models, report.alerts
    ((), ())
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from radlens.evaluation.metrics import ece_binary
from radlens.feedback.adjudication import Adjudication
from radlens.feedback.drift import ALPHA, MIN_IMAGES, PSI_ALERT, DriftResult, OodSample, drift
from radlens.feedback.equipment import Equipment
from radlens.feedback.records import ShownFinding
from radlens.models.card import InputOodSpec, ModelCard, OodSpec

HISTOGRAM_EDGES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
"""Inner edges of the OOD decision-score histogram (1 = the flag)."""


@dataclass(frozen=True)
class Observed:
    """One AI finding of an analyzed study."""

    study_uid: str
    finding_id: str
    shown: ShownFinding
    equipment: Equipment
    analyzed_at: datetime

    @property
    def image(self) -> tuple[str, str, int]:
        return (self.study_uid, self.shown.sop_instance_uid, self.shown.frame)


@dataclass(frozen=True)
class OodSummary:
    """The OOD scores of the images of a group.

    Attributes:
        n: images with a decision score; flag_rate: the share flagged (None when n is 0).
        histogram: counts per bin of ``HISTOGRAM_EDGES``; expected_flag_rate: the card's.
        drift: the test against the card's training-set quantiles.
    """

    n: int
    flag_rate: float | None
    histogram: tuple[int, ...]
    expected_flag_rate: float | None
    drift: DriftResult


@dataclass(frozen=True)
class GroupStats:
    """Volume, positive rate, agreement, calibration and OOD scores of a group of findings."""

    n_studies: int
    n_images: int
    n_findings: int
    n_positive: int
    positive_rate: float | None
    n_reviewed: int
    n_resolved: int
    ai_agreement: float | None
    n_multi_read: int
    reader_agreement: float | None
    n_calibration: int
    ece: float | None
    ood: OodSummary


@dataclass(frozen=True)
class StratumStats:
    equipment: Equipment
    stats: GroupStats


@dataclass(frozen=True)
class DayStats:
    """One day (UTC, by analysis time) of a model version."""

    day: date
    n_images: int
    n_positive: int
    n_flagged: int


@dataclass(frozen=True)
class ModelVersionStats:
    """Everything monitored about one model version; ``card_found`` is false when its card
    is not installed (no drift test then)."""

    model_name: str
    model_version: str
    card_found: bool
    stats: GroupStats
    strata: tuple[StratumStats, ...]
    days: tuple[DayStats, ...]


@dataclass(frozen=True)
class MonitoringReport:
    """Per model version, with the alerts raised (one line each)."""

    models: tuple[ModelVersionStats, ...]
    alerts: tuple[str, ...]
    since: datetime | None = None


def monitor(
    observed: Iterable[Observed],
    adjudications: Mapping[tuple[str, str], Adjudication],
    cards: Mapping[tuple[str, str], ModelCard],
    since: datetime | None = None,
    psi_alert: float = PSI_ALERT,
    alpha: float = ALPHA,
    min_images: int = MIN_IMAGES,
) -> MonitoringReport:
    """Summarize findings per model version and stratum (see the module docstring).

    Args:
        observed: the findings (already limited to a model or time, when wanted).
        adjudications: by (study UID, finding id), for the reviewed ones.
        cards: installed cards by (name, version), for the OOD reference.
        since: recorded in the report (the caller selected the findings).
    """
    groups: dict[tuple[str, str], list[Observed]] = {}
    for item in observed:
        groups.setdefault((item.shown.model_name, item.shown.model_version), []).append(item)
    models = []
    alerts = []
    for (name, version), items in sorted(groups.items()):
        card = cards.get((name, version))
        limits = (psi_alert, alpha, min_images)
        total = group_stats(items, adjudications, card, *limits)
        per_stratum: dict[Equipment, list[Observed]] = {}
        for item in items:
            per_stratum.setdefault(item.equipment, []).append(item)
        strata = tuple(
            StratumStats(e, group_stats(g, adjudications, card, *limits))
            for e, g in sorted(per_stratum.items())
        )
        if total.ood.drift.alert:
            alerts.append(f"{name} {version}: {total.ood.drift.reason}")
        alerts.extend(
            f"{name} {version} at {s.equipment.stratum}: {s.stats.ood.drift.reason}"
            for s in strata
            if s.stats.ood.drift.alert
        )
        models.append(
            ModelVersionStats(name, version, card is not None, total, strata, _days(items))
        )
    return MonitoringReport(tuple(models), tuple(alerts), since)


def group_stats(
    items: list[Observed],
    adjudications: Mapping[tuple[str, str], Adjudication],
    card: ModelCard | None,
    psi_alert: float = PSI_ALERT,
    alpha: float = ALPHA,
    min_images: int = MIN_IMAGES,
) -> GroupStats:
    """The statistics of one group of findings (one model version, maybe one stratum)."""
    findings = [i for i in items if not i.shown.counted]
    positives = sum(i.shown.positive for i in findings)
    judged = [
        a for i in findings if (a := adjudications.get((i.study_uid, i.finding_id))) is not None
    ]
    resolved = [a for a in judged if a.call is not None]
    multi = [a for a in judged if a.n_readers > 1]
    calibration = [a for a in resolved if not a.shown.graded]
    ece = None
    if calibration:
        y = np.array([int(a.call.present) for a in calibration if a.call is not None])
        p = np.array([a.shown.probability for a in calibration])
        ece = round(float(ece_binary(y, p)), 6)
    return GroupStats(
        n_studies=len({i.study_uid for i in items}),
        n_images=len({i.image for i in items}),
        n_findings=len(findings),
        n_positive=positives,
        positive_rate=_share(positives, len(findings)),
        n_reviewed=len(judged),
        n_resolved=len(resolved),
        ai_agreement=_share(sum(bool(a.ai_agrees) for a in resolved), len(resolved)),
        n_multi_read=len(multi),
        reader_agreement=_share(sum(not a.disagreement for a in multi), len(multi)),
        n_calibration=len(calibration),
        ece=ece,
        ood=_ood(items, card, psi_alert, alpha, min_images),
    )


def _ood(
    items: list[Observed],
    card: ModelCard | None,
    psi_alert: float,
    alpha: float,
    min_images: int,
) -> OodSummary:
    per_image: dict[tuple[str, str, int], OodSample] = {}
    flagged: dict[tuple[str, str, int], bool] = {}
    for item in items:
        s = item.shown
        if s.ood_score is not None and item.image not in per_image:
            per_image[item.image] = OodSample(s.ood_score, s.ood_feature_score, s.ood_input_score)
            flagged[item.image] = s.ood_flag
    samples = list(per_image.values())
    scores = np.array([s.decision for s in samples if s.decision is not None], np.float64)
    index = np.searchsorted(np.asarray(HISTOGRAM_EDGES), scores, side="right")
    histogram = np.bincount(index, minlength=len(HISTOGRAM_EDGES) + 1)
    spec: OodSpec | InputOodSpec | None = None
    if card is not None:
        spec = card.ood if card.ood is not None else card.input_ood
    expected = None
    if isinstance(spec, InputOodSpec):
        expected = spec.val_flag_rate
    elif spec is not None:
        expected = spec.inputs.val_flag_rate if spec.inputs is not None else spec.val_flag_rate
    result = (
        drift(samples, spec, psi_alert, alpha, min_images)
        if card is not None
        else DriftResult(len(samples), (), False, "the card of this model version is not installed")
    )
    return OodSummary(
        len(samples),
        _share(sum(flagged.values()), len(samples)),
        tuple(int(c) for c in histogram),
        expected,
        result,
    )


def _days(items: list[Observed]) -> tuple[DayStats, ...]:
    days: dict[date, dict[tuple[str, str, int], tuple[bool, bool]]] = {}
    for item in items:
        if item.shown.counted:
            continue
        images = days.setdefault(item.analyzed_at.date(), {})
        positive, flagged = images.get(item.image, (False, False))
        images[item.image] = (positive or item.shown.positive, flagged or item.shown.ood_flag)
    return tuple(
        DayStats(
            day,
            len(images),
            sum(p for p, _ in images.values()),
            sum(f for _, f in images.values()),
        )
        for day, images in sorted(days.items())
    )


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None
