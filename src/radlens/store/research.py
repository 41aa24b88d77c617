"""De-identified views of the stored studies, for the researcher role (``/api/research``).

A researcher sees no patient data: each study, series and instance is named by its
pseudonymous UID (``privacy.deid``: ``2.25.`` + a keyed hash, the same for the same UID),
with its modality, body part, state and AI findings, and no dates, notes, report text or
patient facts. An instance is served de-identified by the PS3.15 Annex E Basic Profile
with radlens's four options (``privacy.deid.deidentify_dataset``); one whose pixels may
show patient data (``burned_in_reason``) or that cannot be de-identified safely is withheld.

The key is the storage folder's ``research-key`` (32 random bytes, mode 0600, made on first
use), kept apart from ``patient-key``: pseudonyms mean nothing without it, and the same
study keeps its pseudonym for as long as the key is kept. An instance is found by its
pseudonym by hashing the stored UIDs (one HMAC each, milliseconds per thousand instances).
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from radlens.errors import ConflictError, DeidentificationError, InputError, NotFoundError
from radlens.privacy.deid import DeidKey, DeidState, burned_in_reason, deidentify_dataset
from radlens.store.db import Database
from radlens.store.files import read_stored, write_durably
from radlens.store.models import InstanceRow, SeriesRow, StudyRow, StudyStatus

RESEARCH_KEY_FILE = "research-key"
_SECRET_BYTES = 32


@dataclass(frozen=True)
class DeidFinding:
    instance_id: str
    code: str
    label: str
    probability: float
    positive: bool
    model_name: str
    model_version: str
    ood_flag: bool


@dataclass(frozen=True)
class DeidSeries:
    series_id: str
    modality: str
    body_part: str
    instance_ids: list[str]


@dataclass(frozen=True)
class DeidStudy:
    study_id: str
    status: str
    signed: bool
    series: list[DeidSeries]
    findings: list[DeidFinding]


def research_key(storage_dir: Path) -> DeidKey:
    """The storage folder's key of the research pseudonyms, made once (mode 0600)."""
    path = storage_dir / RESEARCH_KEY_FILE
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        storage_dir.mkdir(parents=True, exist_ok=True)
        temp = storage_dir / f".{RESEARCH_KEY_FILE}-{uuid.uuid4().hex}.tmp"
        write_durably(temp, os.urandom(_SECRET_BYTES))
        try:
            os.link(temp, path)  # atomic; the first writer wins
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
        secret = path.read_bytes()
    if len(secret) != _SECRET_BYTES:
        raise InputError(path, "research key file is damaged; restore it from backup")
    return DeidKey(secret, "research key")


def deidentified_studies(db: Database, storage_dir: Path) -> list[DeidStudy]:
    """Every stored study, de-identified, in the order received."""
    state = DeidState(research_key(storage_dir))
    with db.sessions() as session:
        studies = list(session.scalars(select(StudyRow).order_by(StudyRow.received_at)))
        series_rows = list(session.scalars(select(SeriesRow).order_by(SeriesRow.series_uid)))
        instances = session.execute(
            select(InstanceRow.series_uid, InstanceRow.sop_uid).order_by(
                InstanceRow.instance_number.is_(None),
                InstanceRow.instance_number,
                InstanceRow.sop_uid,
            )
        ).all()
    by_series: dict[str, list[str]] = {}
    for series_uid, sop_uid in instances:
        by_series.setdefault(series_uid, []).append(state.new_uid(sop_uid))
    found = []
    for study in studies:
        series = [
            DeidSeries(
                state.new_uid(s.series_uid),
                s.modality,
                s.body_part,
                by_series.get(s.series_uid, []),
            )
            for s in series_rows
            if s.study_uid == study.study_uid
        ]
        found.append(
            DeidStudy(
                state.new_uid(study.study_uid),
                study.status,
                study.status == StudyStatus.SIGNED,
                series,
                _findings(study.result, state),
            )
        )
    return found


def deidentified_instance(db: Database, storage_dir: Path, instance_id: str) -> bytes:
    """The stored instance whose pseudonymous SOP Instance UID is ``instance_id``,
    de-identified (PS3.10 bytes).

    Raises:
        NotFoundError: no instance has that pseudonym.
        ConflictError: the instance is withheld (pixels that may show patient data, or an
            object that cannot be de-identified safely).
    """
    state = DeidState(research_key(storage_dir))
    with db.sessions() as session:
        rows = session.execute(select(InstanceRow.sop_uid, InstanceRow.path)).all()
    path = next((p for uid, p in rows if state.new_uid(uid) == instance_id), None)
    if path is None:
        raise NotFoundError("no such de-identified instance")
    try:
        ds = dcmread(io.BytesIO(read_stored(storage_dir, storage_dir / path, db.keys)))
    except (OSError, InvalidDicomError) as exc:
        raise NotFoundError("the instance's file cannot be read") from exc
    if (reason := burned_in_reason(ds)) is not None:
        raise ConflictError(f"withheld from de-identified access: {reason}")
    try:
        deidentify_dataset(ds, state, "instance")
    except DeidentificationError as exc:
        raise ConflictError(f"withheld from de-identified access: {exc.reason}") from exc
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _findings(result: dict[str, object] | None, state: DeidState) -> list[DeidFinding]:
    if not result:
        return []
    found = []
    for series in result.get("series", []) or []:  # type: ignore[attr-defined]
        for f in series.get("findings", []):
            sop = str(f.get("sop_instance_uid", ""))
            found.append(
                DeidFinding(
                    state.new_uid(sop) if sop else "",
                    str(f["code"]),
                    str(f["label"]),
                    float(f["probability"]),
                    bool(f["positive"]),
                    str(f["model_name"]),
                    str(f["model_version"]),
                    bool(f.get("ood_flag", False)),
                )
            )
    return found
