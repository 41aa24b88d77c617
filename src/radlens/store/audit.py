"""The audit trail's storage: a hash chain of audit messages in ``audit_records``.

Each record keeps its canonical JSON (sorted keys, no spaces, UTF-8), the hash of the record
before it and its own hash, ``sha256(prev_sha256 + canonical JSON)``; record 1 follows
:data:`GENESIS_SHA256`. The one ``audit_chain`` row holds the newest number and hash; every
append locks it (``SELECT ... FOR UPDATE`` on PostgreSQL; every SQLite transaction is
``BEGIN IMMEDIATE``), so concurrent writers take turns and never fork the chain.
:func:`verify` recomputes the chain and names the first broken record. The records are
built by ``privacy.audit``; the indexed columns (user, study, patient key, outcome) are
copies of fields of the JSON, checked by :func:`verify` too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from radlens.errors import ConfigError
from radlens.store.db import Database
from radlens.store.models import AuditChainRow, AuditRecordRow, StudyRow, utcnow

GENESIS_SHA256 = "0" * 64
"""The previous hash of record 1."""
_CHAIN_HEAD = 1


def canonical_json(record: dict[str, Any]) -> str:
    """The one text a record is hashed and stored as (sorted keys, no spaces, UTF-8)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_sha256(prev_sha256: str, canonical: str) -> str:
    """``sha256(prev_sha256 + canonical JSON)``, hex."""
    return hashlib.sha256((prev_sha256 + canonical).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredRecord:
    """An audit record as stored: its number in the chain and its hashes."""

    number: int
    recorded_at: datetime
    event: str
    user_id: str
    study_uid: str | None
    outcome: int
    sha256: str
    record: dict[str, Any] = field(repr=False)


def append(db: Database, event: str, record: dict[str, Any]) -> StoredRecord:
    """Add ``record`` (an audit message from ``privacy.audit.build_record``) to the end of
    the chain, in one transaction with the head row locked."""
    canonical = canonical_json(record)
    with db.sessions.begin() as session:
        head = session.execute(
            select(AuditChainRow).where(AuditChainRow.id == _CHAIN_HEAD).with_for_update()
        ).scalar_one_or_none()
        if head is None:
            raise ConfigError("the audit chain has no head row; run the database migrations")
        digest = chain_sha256(head.last_sha256, canonical)
        row = AuditRecordRow(
            number=head.last_number + 1,
            recorded_at=utcnow(),
            event=event,
            user_id=_user_of(record),
            study_uid=_study_of(record),
            patient_key=_patient_of(record),
            outcome=record["EventIdentification"]["EventOutcomeIndicator"],
            record_json=canonical,
            prev_sha256=head.last_sha256,
            sha256=digest,
        )
        session.add(row)
        head.last_number, head.last_sha256 = row.number, digest
    return _stored(row, record)


def patient_key_of(db: Database, study_uid: str) -> str | None:
    """The keyed hash of the study's Patient ID (None: unknown study, or no key)."""
    with db.sessions() as session:
        return session.scalar(select(StudyRow.patient_key).where(StudyRow.study_uid == study_uid))


@dataclass(frozen=True)
class Verification:
    """The result of :func:`verify`: ``broken_at`` is None for an intact chain."""

    n_records: int
    broken_at: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(db: Database) -> Verification:
    """Recompute the hash chain from record 1; the first record that breaks it, and why.

    Detects an altered record (its hash no longer matches its JSON), an altered index column,
    a deleted record (a gap in the numbers or a broken link) and deleted newest records
    (the head row remembers the last number and hash).
    """
    expected_number, prev = 1, GENESIS_SHA256
    with db.sessions() as session:
        head = session.get(AuditChainRow, _CHAIN_HEAD)
        for row in _rows(session):
            if row.number != expected_number:
                return Verification(
                    expected_number - 1,
                    expected_number,
                    f"record {expected_number} is missing (the next is {row.number})",
                )
            if row.prev_sha256 != prev:
                return Verification(
                    row.number - 1,
                    row.number,
                    f"record {row.number} does not link to the one before",
                )
            if chain_sha256(prev, row.record_json) != row.sha256:
                return Verification(
                    row.number - 1, row.number, f"record {row.number} was altered (hash mismatch)"
                )
            if reason := _columns_disagree(row):
                return Verification(row.number - 1, row.number, f"record {row.number}: {reason}")
            expected_number, prev = row.number + 1, row.sha256
        n_records = expected_number - 1
        if head is None or (head.last_number, head.last_sha256) != (n_records, prev):
            last = head.last_number if head else "?"
            return Verification(
                n_records,
                n_records + 1,
                f"record {n_records + 1} is missing (the chain's head says {last} records)",
            )
    return Verification(n_records)


def list_records(
    db: Database,
    study_uid: str | None = None,
    user_id: str | None = None,
    patient_key: str | None = None,
    limit: int | None = None,
) -> list[StoredRecord]:
    """Stored records, oldest first, filtered by study, user and/or patient key."""
    query = select(AuditRecordRow).order_by(AuditRecordRow.number)
    if study_uid:
        query = query.where(AuditRecordRow.study_uid == study_uid)
    if user_id:
        query = query.where(AuditRecordRow.user_id == user_id)
    if patient_key:
        query = query.where(AuditRecordRow.patient_key == patient_key)
    if limit:
        query = query.limit(limit)
    with db.sessions() as session:
        return [_stored(row, json.loads(row.record_json)) for row in session.scalars(query)]


def _rows(session: Session, batch: int = 1000) -> Iterator[AuditRecordRow]:
    """Every record in order, a batch at a time (no server-side cursor left open)."""
    after = -1
    while True:
        query = select(AuditRecordRow).where(AuditRecordRow.number > after)
        rows = list(session.scalars(query.order_by(AuditRecordRow.number).limit(batch)))
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].number
        session.expunge_all()


def _objects(record: dict[str, Any], id_type: str) -> list[str]:
    return [
        o["ParticipantObjectID"]
        for o in record.get("ParticipantObjectIdentification", [])
        if o["ParticipantObjectIDTypeCode"]["csd-code"] == id_type
    ]


def _study_of(record: dict[str, Any]) -> str | None:
    return next(iter(_objects(record, "110180")), None)


def _patient_of(record: dict[str, Any]) -> str | None:
    return next(iter(_objects(record, "2")), None)


def _user_of(record: dict[str, Any]) -> str:
    user: str = record["ActiveParticipant"][0]["UserID"]
    return user[:64]


def _event_of(record: dict[str, Any]) -> str:
    codes = record["EventIdentification"]["EventTypeCode"]
    return next((c["csd-code"] for c in codes if c["codeSystemName"] == "radlens"), "")


def _columns_disagree(row: AuditRecordRow) -> str:
    """Why the indexed columns do not match the record's JSON ('' when they do)."""
    try:
        record = json.loads(row.record_json)
        user = _user_of(record)
        outcome = record["EventIdentification"]["EventOutcomeIndicator"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "its JSON cannot be read"
    if (row.event, row.user_id, row.study_uid, row.patient_key, row.outcome) != (
        _event_of(record),
        user,
        _study_of(record),
        _patient_of(record),
        outcome,
    ):
        return "its columns do not match its JSON (altered)"
    return ""


def _stored(row: AuditRecordRow, record: dict[str, Any]) -> StoredRecord:
    return StoredRecord(
        row.number,
        row.recorded_at,
        row.event,
        row.user_id,
        row.study_uid,
        row.outcome,
        row.sha256,
        record,
    )
