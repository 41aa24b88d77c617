"""API schemas (the public shape of requests and responses); pydantic stays at this edge."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from radlens.feedback.adjudication import Adjudication
from radlens.feedback.monitor import MonitoringReport
from radlens.feedback.queue import QueueItem
from radlens.models.card import ModelCard
from radlens.nlp import Alignment
from radlens.privacy.roles import Role
from radlens.store.drafts import MAX_NOTES_CHARS, Notes, StudyDraft
from radlens.store.models import FindingReviewRow
from radlens.store.review import Decision
from radlens.store.worklist import SeriesListing, WorklistEntry

PriorityName = Literal["routine", "priority", "urgent", "critical"]


def _name(priority: Any) -> str | None:
    return None if priority is None else str(priority.name.lower())


class TopFindingPublic(BaseModel):
    label: str
    probability: float
    ood_flag: bool


class WorklistItemPublic(BaseModel):
    study_uid: str
    status: str
    priority: str | None = Field(description="effective: the higher of AI and radiologist")
    ai_priority: str | None
    radiologist_priority: str | None
    score: float = Field(description="triage sort key: level + AI fraction + waiting time")
    modalities: list[str]
    body_parts: list[str]
    n_instances: int
    received_at: datetime
    analyzed_at: datetime | None
    first_viewed_at: datetime | None
    signed_at: datetime | None
    turnaround_s: float | None = Field(description="receipt to result")
    time_to_view_s: float | None = Field(description="result to first view")
    waiting_s: float
    analyses: int
    n_positive: int
    low_trust: bool = Field(description="a positive finding on input unlike training data")
    top_finding: TopFindingPublic | None

    @classmethod
    def of(cls, entry: WorklistEntry) -> WorklistItemPublic:
        top = entry.top_finding
        return cls(
            study_uid=entry.study_uid,
            status=entry.status.value,
            priority=_name(entry.priority),
            ai_priority=_name(entry.ai_priority),
            radiologist_priority=_name(entry.radiologist_priority),
            score=round(entry.score, 4),
            modalities=list(entry.modalities),
            body_parts=list(entry.body_parts),
            n_instances=entry.n_instances,
            received_at=entry.received_at,
            analyzed_at=entry.analyzed_at,
            first_viewed_at=entry.first_viewed_at,
            signed_at=entry.signed_at,
            turnaround_s=entry.turnaround_s,
            time_to_view_s=entry.time_to_view_s,
            waiting_s=entry.waiting_s,
            analyses=entry.analyses,
            n_positive=entry.n_positive,
            low_trust=entry.low_trust,
            top_finding=None
            if top is None
            else TopFindingPublic(
                label=top.label, probability=top.probability, ood_flag=top.ood_flag
            ),
        )


class ReviewIn(BaseModel):
    decision: Decision
    label: str = Field(default="", max_length=128)
    grade: int | None = Field(default=None, ge=0, le=20)
    note: str = Field(default="", max_length=10_000)
    confidence: int | None = Field(
        default=None, ge=1, le=5, description="the reader's confidence: 1 (guess) .. 5 (certain)"
    )
    box_px: tuple[float, float, float, float] | None = Field(
        default=None, description="an edited box [x0, y0, x1, y1] in source pixels"
    )


class ReviewPublic(BaseModel):
    decision: str
    label: str
    grade: int | None
    note: str
    username: str
    at: datetime
    confidence: int | None = None
    box_px: list[float] | None = None

    @classmethod
    def of(cls, row: FindingReviewRow) -> ReviewPublic:
        return cls(
            decision=row.decision,
            label=row.label,
            grade=row.grade,
            note=row.note,
            username=row.username,
            at=row.at,
            confidence=row.confidence,
            box_px=row.box_px,
        )


class VotePublic(BaseModel):
    """One reader's newest decision on a finding, as a vote."""

    reader: str
    call: str = Field(description="present, absent, grade N, or absent (another class)")
    present: bool
    grade: int | None
    label: str
    confidence: int | None
    senior: bool
    decision: str
    at: datetime


class AdjudicationPublic(BaseModel):
    """The readers' votes on one finding and the label they give (``radlens.feedback``)."""

    n_readers: int
    rule: str
    call: str | None = Field(description="the adjudicated label; null when unresolved")
    present: bool | None
    grade: int | None
    decided_by: str = Field(description="single reader, majority, senior or unresolved")
    agreement: float = Field(description="share of readers who voted the adjudicated label")
    disagreement: bool = Field(description="two readers voted differently")
    ai_agrees: bool | None = Field(description="the label is the AI's call (null: unresolved)")
    summary: str = Field(description="one line for people, e.g. '2 readers disagree: ...'")
    votes: list[VotePublic]

    @classmethod
    def of(cls, a: Adjudication) -> AdjudicationPublic:
        return cls(
            n_readers=a.n_readers,
            rule=a.rule.value,
            call=None if a.call is None else a.call.describe(),
            present=None if a.call is None else a.call.present,
            grade=None if a.call is None else a.call.grade,
            decided_by=a.decided_by,
            agreement=round(a.agreement, 3),
            disagreement=a.disagreement,
            ai_agrees=a.ai_agrees,
            summary=a.summary(),
            votes=[
                VotePublic(
                    reader=v.reader,
                    call=v.call.describe(),
                    present=v.call.present,
                    grade=v.call.grade,
                    label=v.call.label,
                    confidence=v.confidence,
                    senior=v.senior,
                    decision=v.decision,
                    at=v.at,
                )
                for v in a.votes
            ],
        )


class ReportIn(BaseModel):
    text: str = Field(max_length=100_000)


class ReportPublic(BaseModel):
    text: str
    updated_at: datetime | None
    updated_by: str
    signed_at: datetime | None
    signed_by: str


class PriorityIn(BaseModel):
    priority: PriorityName | None


class InstancePublic(BaseModel):
    sop_uid: str
    frames: int


class SeriesPublic(BaseModel):
    series_uid: str
    modality: str
    body_part: str
    instances: list[InstancePublic]

    @classmethod
    def of(cls, listing: SeriesListing) -> SeriesPublic:
        return cls(
            series_uid=listing.series_uid,
            modality=listing.modality,
            body_part=listing.body_part,
            instances=[InstancePublic(sop_uid=u, frames=max(f, 1)) for u, f in listing.instances],
        )


class NotesIn(BaseModel):
    text: str = Field(max_length=MAX_NOTES_CHARS)


class NotesPublic(BaseModel):
    text: str = Field(description="clinical notes or a prior report (free text or HL7 v2)")
    updated_at: datetime | None
    updated_by: str

    @classmethod
    def of(cls, notes: Notes) -> NotesPublic:
        return cls(text=notes.text, updated_at=notes.updated_at, updated_by=notes.updated_by)


class ConcordancePublic(BaseModel):
    concordance: Literal["concordant", "discordant", "new", "known"]
    flagged: bool = Field(description="the notes and the AI disagree: the radiologist decides")
    notes: Literal["present", "absent", "possible", "historical", "reason"] | None = Field(
        description="what the notes say about the finding; null when they do not mention it"
    )
    sentence: str

    @classmethod
    def of(cls, alignment: Alignment) -> ConcordancePublic:
        return cls(
            concordance=alignment.concordance.value,
            flagged=alignment.flagged,
            notes=None if alignment.notes is None else alignment.notes.value,
            sentence=alignment.sentence,
        )


class PriorPublic(BaseModel):
    study_uid: str
    study_date: str = Field(description="YYYY-MM-DD (the day received when it has no date)")
    description: str


class StudyPublic(WorklistItemPublic):
    findings: dict[str, Any] | None = Field(description="radlens.findings/2; null until analyzed")
    reviews: dict[str, ReviewPublic]
    report: ReportPublic
    series: list[SeriesPublic]
    notes: NotesPublic
    draft: str | None = Field(
        description="the AI draft report (Markdown) from the findings, DICOM context, notes "
        "and prior study; null until analyzed. The report editor starts from it."
    )
    concordance: dict[str, ConcordancePublic] = Field(
        description="finding id -> the clinical notes versus that AI finding"
    )
    prior: PriorPublic | None = Field(description="the prior study the draft compares with")
    adjudications: dict[str, AdjudicationPublic] = Field(
        default_factory=dict,
        description="finding id -> the readers' votes and the adjudicated label "
        "(Settings.adjudication_rule); disagreements are flagged",
    )

    @staticmethod
    def drafted(draft: StudyDraft) -> dict[str, Any]:
        """The fields of ``draft`` (notes, draft, concordance, prior)."""
        prior = None if draft.draft is None else draft.draft.prior
        return {
            "notes": NotesPublic.of(draft.notes),
            "draft": None if draft.draft is None else draft.draft.text,
            "concordance": {k: ConcordancePublic.of(a) for k, a in draft.concordance.items()},
            "prior": None
            if prior is None
            else PriorPublic(
                study_uid=prior.study_instance_uid,
                study_date=prior.study_date,
                description=prior.description,
            ),
        }


class LoginIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class Me(BaseModel):
    username: str
    role: Role


class PasswordChangeIn(BaseModel):
    """An account holder's own new password, with the current one as proof."""

    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class SessionPublic(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool


class Providers(BaseModel):
    """How one may log in: always a password; OIDC when configured."""

    password: bool = True
    oidc: bool = False
    oidc_login_url: str | None = None


class AccountPublic(BaseModel):
    username: str
    role: Role
    active: bool
    sso: bool


class AccountCreate(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    role: Role = Role.RADIOLOGIST


class RoleIn(BaseModel):
    role: Role


class ActiveIn(BaseModel):
    active: bool


class PasswordResetIn(BaseModel):
    password: str = Field(max_length=1024)


class ResearchFinding(BaseModel):
    """An AI finding of a de-identified study: no UID but the pseudonymous instance's."""

    instance_id: str
    code: str
    label: str
    probability: float
    positive: bool
    model_name: str
    model_version: str
    ood_flag: bool


class ResearchSeries(BaseModel):
    series_id: str
    modality: str
    body_part: str
    instance_ids: list[str]


class ResearchStudy(BaseModel):
    """A study as researchers see it: pseudonymous UIDs (``privacy.deid``, a key of the
    site's own), no dates, notes, reports or patient facts."""

    study_id: str
    status: str
    signed: bool
    series: list[ResearchSeries]
    findings: list[ResearchFinding]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    database: bool
    migrations_at_head: bool
    models_loaded: int
    dicom_port: int | None


class QueueItemPublic(BaseModel):
    """One case of the active-learning queue: a study, by its most informative finding."""

    rank: int
    study_uid: str
    finding_id: str
    score: float = Field(description="informativeness (radlens.feedback.queue)")
    reasons: list[str] = Field(description="why: uncertain, out of distribution, disagreement")
    code: str
    label: str
    probability: float
    threshold: float
    positive: bool
    ood_score: float | None
    ood_flag: bool
    model_name: str
    model_version: str
    scanner: str
    site: str
    stratum: str = Field(description="scanner @ station: the unit sampled round-robin")
    received_at: datetime
    n_findings: int = Field(description="findings of the study in the queue")
    adjudication: AdjudicationPublic | None

    @classmethod
    def of(cls, item: QueueItem) -> QueueItemPublic:
        s = item.shown
        return cls(
            rank=item.rank,
            study_uid=item.study_uid,
            finding_id=item.finding_id,
            score=round(item.score, 4),
            reasons=list(item.reasons),
            code=s.code,
            label=s.label,
            probability=s.probability,
            threshold=s.threshold,
            positive=s.positive,
            ood_score=s.ood_score,
            ood_flag=s.ood_flag,
            model_name=s.model_name,
            model_version=s.model_version,
            scanner=item.equipment.scanner,
            site=item.equipment.site,
            stratum=item.stratum,
            received_at=item.received_at,
            n_findings=item.n_findings,
            adjudication=None
            if item.adjudication is None
            else AdjudicationPublic.of(item.adjudication),
        )


class ModelCardPublic(BaseModel):
    """What a reader needs to weigh a model's findings: what it is for, how it did on
    validation, where it stops being reliable, and what it was trained on."""

    name: str
    version: str
    task: str
    finding_label: str
    intended_use: str
    limitations: list[str]
    modalities: list[str]
    body_parts: list[str] = Field(description="empty: any body part")
    population: str = Field(description="who the training images came from")
    val: dict[str, float] = Field(description="validation figures (radlens evaluate)")
    operating_threshold: float | None = Field(
        description="calibrated probability at or above which a finding is positive"
    )
    abstain_band: list[float] | None = Field(
        description="probabilities too close to the threshold to call (low, high); null: "
        "none, the model always calls"
    )
    calibration: str = Field(description="how probabilities were calibrated on val")
    ood: bool = Field(description="whether findings carry an out-of-distribution score")
    training_data: str
    licence: str
    citation: str

    @classmethod
    def of(cls, card: ModelCard) -> ModelCardPublic:
        t = card.thresholds
        # Equal edges: the band is empty, the model always calls (evaluation.calibration).
        has_band = t.get("abstain_high", 0.0) > t.get("abstain_low", 1.0)
        return cls(
            name=card.name,
            version=card.version,
            task=card.task.value,
            finding_label=card.finding_label,
            intended_use=card.intended_use,
            limitations=list(card.limitations),
            modalities=list(card.applies_to.modalities),
            body_parts=list(card.applies_to.body_parts),
            population=card.applies_to.population.description,
            val=dict(card.metrics.get("val", {})),
            operating_threshold=t.get("operating"),
            abstain_band=[t["abstain_low"], t["abstain_high"]] if has_band else None,
            calibration=card.calibration.method.value,
            ood=card.ood is not None,
            training_data=card.training.data,
            licence=card.training.licence,
            citation=card.training.citation,
        )


class _Attributes(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class EquipmentPublic(_Attributes):
    manufacturer: str
    manufacturer_model: str
    station_name: str
    scanner: str
    site: str
    stratum: str


class BinTestPublic(_Attributes):
    statistic: str = Field(description="feature, input or decision (OOD score)")
    edges: list[float] = Field(description="inner bin edges from the card's quantiles")
    expected: list[float] = Field(description="training-set share of each bin")
    observed: list[int] = Field(description="images of the stream in each bin")
    psi: float
    p_value: float = Field(description="G-test against the expected shares")


class DriftPublic(_Attributes):
    n: int
    alert: bool
    reason: str
    psi: float | None
    tests: list[BinTestPublic]


class OodPublic(_Attributes):
    n: int = Field(description="images with an OOD score")
    flag_rate: float | None
    expected_flag_rate: float | None = Field(description="the card's share flagged")
    histogram: list[int] = Field(description="images per bin of histogram_edges")
    drift: DriftPublic


class GroupStatsPublic(_Attributes):
    n_studies: int
    n_images: int
    n_findings: int
    n_positive: int
    positive_rate: float | None
    n_reviewed: int
    n_resolved: int
    ai_agreement: float | None = Field(description="adjudicated label = the AI's call")
    n_multi_read: int
    reader_agreement: float | None = Field(description="all readers agreed (2+ readers)")
    n_calibration: int
    ece: float | None = Field(description="ECE of the AI probability vs reader labels")
    ood: OodPublic


class StratumPublic(_Attributes):
    equipment: EquipmentPublic
    stats: GroupStatsPublic


class DayPublic(_Attributes):
    day: date
    n_images: int
    n_positive: int
    n_flagged: int


class ModelMonitorPublic(_Attributes):
    model_name: str
    model_version: str
    card_found: bool
    stats: GroupStatsPublic
    strata: list[StratumPublic]
    days: list[DayPublic]


class MonitoringPublic(_Attributes):
    """``radlens.feedback.monitor``: per model version and site/scanner."""

    since: datetime | None
    histogram_edges: list[float] = Field(description="inner edges of the OOD histograms")
    alerts: list[str]
    models: list[ModelMonitorPublic]

    @classmethod
    def of(cls, report: MonitoringReport, edges: tuple[float, ...]) -> MonitoringPublic:
        return cls(
            since=report.since,
            histogram_edges=list(edges),
            alerts=list(report.alerts),
            models=[ModelMonitorPublic.model_validate(m) for m in report.models],
        )
