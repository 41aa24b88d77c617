"""The database schema (SQLAlchemy 2 typed ORM). Alembic migrations follow it.

Times are UTC, stored naive (SQLite has no time zones). No patient identifiers are stored
here: the instance files hold them; rows hold UIDs, facts for the worklist and results.
Columns that may hold them all the same (free text, the findings document) are encrypted
(``store.encrypted``: ``EncryptedText``, ``EncryptedJSON``; migration 0007).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from radlens.store.encrypted import EncryptedJSON, EncryptedText

UID_LENGTH = 64  # PS3.5 9.1: a UID has at most 64 characters


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


USERNAME_LENGTH = 64


class StudyStatus(StrEnum):
    """Worklist status flow: received -> analyzing -> ready -> in_review -> signed."""

    RECEIVED = "received"
    ANALYZING = "analyzing"
    READY = "ready"
    IN_REVIEW = "in_review"
    SIGNED = "signed"
    FAILED = "failed"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Base(DeclarativeBase):
    pass


class StudyRow(Base):
    __tablename__ = "studies"

    study_uid: Mapped[str] = mapped_column(String(UID_LENGTH), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=StudyStatus.RECEIVED, index=True)
    # The AI's priority (site triage rules on the findings) and the within-level score it
    # came with; a radiologist's priority is kept apart and never lowered by the AI.
    priority: Mapped[int | None] = mapped_column(Integer, default=None)
    ai_score: Mapped[float | None] = mapped_column(Float, default=None)
    radiologist_priority: Mapped[int | None] = mapped_column(Integer, default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_instance_at: Mapped[datetime] = mapped_column(default=utcnow)
    analyzed_at: Mapped[datetime | None] = mapped_column(default=None)
    first_viewed_at: Mapped[datetime | None] = mapped_column(default=None)
    n_instances: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(
        EncryptedJSON("studies.result"), default=None
    )
    report_text: Mapped[str] = mapped_column(EncryptedText("studies.report_text"), default="")
    report_updated_at: Mapped[datetime | None] = mapped_column(default=None)
    report_updated_by: Mapped[str] = mapped_column(String(USERNAME_LENGTH), default="")
    signed_at: Mapped[datetime | None] = mapped_column(default=None)
    signed_by: Mapped[str] = mapped_column(String(USERNAME_LENGTH), default="")
    # Clinical notes or a prior report (free text or HL7 v2) for the AI draft.
    notes_text: Mapped[str] = mapped_column(EncryptedText("studies.notes_text"), default="")
    notes_updated_at: Mapped[datetime | None] = mapped_column(default=None)
    notes_updated_by: Mapped[str] = mapped_column(String(USERNAME_LENGTH), default="")
    # HMAC of the Patient ID (store.drafts.patient_key), never the ID: finds prior studies.
    patient_key: Mapped[str | None] = mapped_column(String(64), default=None, index=True)


class SeriesRow(Base):
    __tablename__ = "series"

    series_uid: Mapped[str] = mapped_column(String(UID_LENGTH), primary_key=True)
    study_uid: Mapped[str] = mapped_column(ForeignKey("studies.study_uid"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    body_part: Mapped[str] = mapped_column(String(64), default="")
    # Equipment (migration 0008; None = not read yet): Manufacturer, ManufacturerModelName,
    # StationName, kept by radlens.feedback at first need for monitoring per site/scanner.
    manufacturer: Mapped[str | None] = mapped_column(String(64), default=None)
    manufacturer_model: Mapped[str | None] = mapped_column(String(64), default=None)
    station_name: Mapped[str | None] = mapped_column(String(64), default=None)


class InstanceRow(Base):
    __tablename__ = "instances"

    sop_uid: Mapped[str] = mapped_column(String(UID_LENGTH), primary_key=True)
    study_uid: Mapped[str] = mapped_column(ForeignKey("studies.study_uid"), index=True)
    series_uid: Mapped[str] = mapped_column(ForeignKey("series.series_uid"))
    path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(64), default="")
    instance_number: Mapped[int | None] = mapped_column(Integer, default=None)
    frames: Mapped[int] = mapped_column(Integer, default=1)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # At most one queued or running job per study (partial unique index).
        Index(
            "ix_jobs_one_active_per_study",
            "study_uid",
            unique=True,
            sqlite_where=text("state IN ('queued', 'running')"),
            postgresql_where=text("state IN ('queued', 'running')"),
        ),
        Index("ix_jobs_state_created", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_uid: Mapped[str] = mapped_column(ForeignKey("studies.study_uid"))
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    n_instances: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str] = mapped_column(String(500), default="")


class UserRow(Base):
    """An account. Only an argon2id hash of the password is stored (scrypt hashes of
    accounts made before migration 0006 until their next login); an account made by an
    OIDC login has no password (``""``) and its identity provider's ``iss|sub``."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("oidc_subject", name="uq_users_oidc_subject"),)

    username: Mapped[str] = mapped_column(String(USERNAME_LENGTH), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    role: Mapped[str] = mapped_column(String(16), default="radiologist")  # privacy.roles.Role
    oidc_subject: Mapped[str | None] = mapped_column(String(512), default=None)


class SessionRow(Base):
    """A login. Only the sha256 of the session token is stored."""

    __tablename__ = "sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    # Automatic logoff: a session unused for Settings.session_idle_minutes ends.
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginFailureRow(Base):
    """Failed logins of one account name or one client address (``store.logins``), keyed by
    a sha256 of ``kind:value`` so the table holds no address or tried name in clear."""

    __tablename__ = "login_failures"

    key_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)


class OidcStateRow(Base):
    """An OIDC login under way (``server/oidc.py``): the state's sha256, the nonce and the
    PKCE code verifier, kept server-side until the provider redirects back (at most
    10 minutes), then deleted on first use."""

    __tablename__ = "oidc_states"

    state_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FindingReviewRow(Base):
    """A radiologist's decision on one AI finding; append-only, the newest one counts.

    ``finding`` keeps the finding as it was shown (model, version, code, probability), so
    the feedback loop can use the decision even after the study is analyzed again.
    """

    __tablename__ = "finding_reviews"
    __table_args__ = (
        Index("ix_finding_reviews_study", "study_uid", "finding_id"),
        Index("ix_finding_reviews_model", "model_name", "model_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_uid: Mapped[str] = mapped_column(ForeignKey("studies.study_uid"))
    finding_id: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(128), default="")
    grade: Mapped[int | None] = mapped_column(Integer, default=None)
    note: Mapped[str] = mapped_column(EncryptedText("finding_reviews.note"), default="")
    username: Mapped[str] = mapped_column(String(USERNAME_LENGTH))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    finding: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Feedback (migration 0008): the reader's confidence 1-5 (None: not given), the box a
    # box edit drew ([x0, y0, x1, y1] source pixels), and the finding's model, indexed.
    confidence: Mapped[int | None] = mapped_column(Integer, default=None)
    box_px: Mapped[list[float] | None] = mapped_column(JSON, default=None)
    model_name: Mapped[str] = mapped_column(String(128), default="", server_default="")
    model_version: Mapped[str] = mapped_column(String(64), default="", server_default="")


class FhirResourceRow(Base):
    """Which study a FHIR resource id belongs to (ids of ``report.fhir``), so a read by id
    finds the study; a ``Device`` (one model version) belongs to every study it read."""

    __tablename__ = "fhir_resources"

    resource_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_uid: Mapped[str] = mapped_column(
        ForeignKey("studies.study_uid"), primary_key=True, index=True
    )


class AuditRecordRow(Base):
    """One audit record (``privacy.audit``): an ATNA audit message as canonical JSON, chained
    by hash to the record before it. Append-only: nothing in radlens updates or deletes one.

    ``patient_key`` is the keyed hash of the Patient ID (as ``StudyRow.patient_key``), never
    the ID; the record's JSON carries the same key.
    """

    __tablename__ = "audit_records"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    event: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(USERNAME_LENGTH), default="", index=True)
    study_uid: Mapped[str | None] = mapped_column(String(UID_LENGTH), default=None, index=True)
    patient_key: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    outcome: Mapped[int] = mapped_column(Integer, default=0)
    record_json: Mapped[str] = mapped_column(Text)
    prev_sha256: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))


class AuditChainRow(Base):
    """The head of the audit hash chain: one row, locked by every append so that
    concurrent writers take turns and never fork the chain."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, default=0)
    last_sha256: Mapped[str] = mapped_column(String(64))


class BatchResultRow(Base):
    """One study of a ``radlens batch`` run (``radlens.cluster``), keyed by the study and
    the set of models that analyzed it (migration 0009): a rerun with the same models
    skips a ``done`` row; new model versions make a new row. No patient data: the
    findings are in the run's output folder and Parquet tables.
    """

    __tablename__ = "batch_results"

    study_uid: Mapped[str] = mapped_column(String(UID_LENGTH), primary_key=True)
    models_key: Mapped[str] = mapped_column(String(16), primary_key=True)
    models: Mapped[str] = mapped_column(Text, default="")  # "name@version" joined by ","
    status: Mapped[str] = mapped_column(String(16), default="done", index=True)
    n_series: Mapped[int] = mapped_column(Integer, default=0)
    n_findings: Mapped[int] = mapped_column(Integer, default=0)
    n_positive: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[str] = mapped_column(String(16), default="")
    output: Mapped[str] = mapped_column(String(1024), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    engine: Mapped[str] = mapped_column(String(16), default="")
    worker: Mapped[str] = mapped_column(String(128), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)
