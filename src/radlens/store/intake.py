"""``Intake.receive``: one DICOM instance in, durably stored and recorded, or refused.

The order is what makes intake lose nothing: parse the header (a malformed object is
refused with a typed :class:`~radlens.errors.InputError`), write the file durably and
sealed under ``db.keys`` (:func:`radlens.store.files.write_stored`), commit the instance
row, and only then return. The caller (C-STORE SCP, STOW-RS) acknowledges after
``receive`` returns, so an acknowledged instance is on disk and in the database.

An instance whose SOP Instance UID is already stored is a duplicate and is not stored
again. Same bytes: a resend, acknowledged as such. Different bytes: the first copy is
kept (as Orthanc does by default) and ``Received.conflict`` says so; analysis results
never change under a reader's eyes because of a resend.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from radlens.errors import InputError, TooLargeError
from radlens.io.dicom import DicomHeader, read_instance
from radlens.io.limits import DEFAULT_LIMITS, ReadLimits
from radlens.store.db import Database
from radlens.store.drafts import patient_key, patient_secret
from radlens.store.files import instance_path, validate_uid, write_stored
from radlens.store.models import InstanceRow, SeriesRow, StudyRow, StudyStatus, utcnow
from radlens.warning_scopes import ignoring

log = logging.getLogger(__name__)
_LOCK_STRIPES = 64
DEFAULT_MAX_INSTANCE_BYTES = 1024**3
# A resend of a study that was already read reopens it for analysis.
_REOPEN = frozenset(
    {StudyStatus.READY, StudyStatus.IN_REVIEW, StudyStatus.SIGNED, StudyStatus.FAILED}
)


@dataclass(frozen=True)
class Received:
    """What happened to one received instance.

    Attributes:
        duplicate: the SOP Instance UID was already stored; nothing was written.
        conflict: a duplicate whose bytes differ from the stored copy (which was kept).
    """

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    sha256: str
    path: Path
    duplicate: bool = False
    conflict: bool = False


class Intake:
    """Receives instances into ``storage_dir`` and ``db``; safe to call from many threads.

    One process writes a given storage folder: duplicates are serialized by an in-process
    lock per UID, and across processes by the instance table's primary key.

    Example:
        >>> intake = Intake(db, Path("~/.radlens/storage"))  # doctest: +SKIP
        >>> intake.receive(Path("CT_small.dcm").read_bytes(), "test").duplicate
        False
    """

    def __init__(
        self,
        db: Database,
        storage_dir: Path,
        *,
        limits: ReadLimits = DEFAULT_LIMITS,
        max_instance_bytes: int = DEFAULT_MAX_INSTANCE_BYTES,
    ) -> None:
        self.db = db
        self.storage_dir = storage_dir
        self.limits = limits
        self.max_instance_bytes = max_instance_bytes
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._secret: bytes | None = None  # of the patient keys, read on first use

    def receive(self, raw: bytes, source: str) -> Received:
        """Store one DICOM object (PS3.10 file bytes) received from ``source``.

        Raises:
            TooLargeError: more than ``max_instance_bytes``; nothing is parsed or stored.
            InputError: the bytes are not a usable DICOM object (typed subclass, with a
                one-line reason that holds no patient data), or over ``limits``.
        """
        if len(raw) > self.max_instance_bytes:
            raise TooLargeError(
                Path(f"<{source}>"),
                f"{len(raw)} bytes, over the cap of {self.max_instance_bytes} for one instance",
            )
        header = parse_header(raw, source, self.limits)
        sop_uid = header.instance.sop_instance_uid
        digest = hashlib.sha256(raw).hexdigest()
        path = instance_path(self.storage_dir, sop_uid)
        with self._locks[hash(sop_uid) % _LOCK_STRIPES]:
            existing = self._existing(sop_uid, digest, header, path)
            if existing is not None:
                return existing
            write_stored(self.storage_dir, path, raw, self.db.keys)
            try:
                self._record(header, digest, len(raw), path, source)
            except IntegrityError:
                # Another process stored it between our check and our insert.
                existing = self._existing(sop_uid, digest, header, path)
                if existing is None:
                    raise
                return existing
        return _received(header, digest, path)

    def _existing(
        self, sop_uid: str, digest: str, header: DicomHeader, path: Path
    ) -> Received | None:
        with self.db.sessions() as session:
            row = session.get(InstanceRow, sop_uid)
            if row is None:
                return None
            conflict = row.sha256 != digest
        if conflict:
            log.warning("duplicate SOP Instance UID with different content; kept the first copy")
        return _received(header, digest, path, duplicate=True, conflict=conflict)

    def _record(self, header: DicomHeader, digest: str, size: int, path: Path, source: str) -> None:
        now = utcnow()
        study_uid = header.study.study_instance_uid
        series_uid = header.series.series_instance_uid
        key = self._patient_key(header.study.patient.patient_id)
        with self.db.sessions.begin() as session:
            study = session.get(StudyRow, study_uid)
            if study is None:
                study = StudyRow(
                    study_uid=study_uid,
                    status=StudyStatus.RECEIVED,
                    received_at=now,
                    last_instance_at=now,
                    n_instances=0,
                )
                session.add(study)
            elif study.status in _REOPEN:
                study.status = StudyStatus.RECEIVED
            if study.patient_key is None:
                study.patient_key = key
            study.last_instance_at = now
            study.n_instances += 1
            if session.get(SeriesRow, series_uid) is None:
                session.add(
                    SeriesRow(
                        series_uid=series_uid,
                        study_uid=study_uid,
                        modality=header.series.modality[:16],
                        body_part=header.series.body_part[:64],
                    )
                )
            session.flush()
            session.add(
                InstanceRow(
                    sop_uid=header.instance.sop_instance_uid,
                    study_uid=study_uid,
                    series_uid=series_uid,
                    path=path.relative_to(self.storage_dir).as_posix(),
                    sha256=digest,
                    size_bytes=size,
                    received_at=now,
                    source=source[:64],
                    instance_number=header.instance.instance_number,
                    frames=header.instance.frames,
                )
            )

    def _patient_key(self, patient_id: str) -> str | None:
        """The HMAC of the Patient ID that finds the patient's prior studies."""
        if not patient_id.strip():
            return None
        if self._secret is None:
            try:
                self._secret = patient_secret(self.storage_dir)
            except (InputError, OSError):
                # Priors are a convenience; an instance is never refused for want of them.
                log.warning("patient key file unusable; prior studies will not be matched")
                return None
        return patient_key(self._secret, patient_id)


def parse_header(raw: bytes, source: str, limits: ReadLimits = DEFAULT_LIMITS) -> DicomHeader:
    """Read and check the header of a received object.

    Raises:
        InputError: not DICOM, cut short, unusable pixel data attributes, over ``limits``
            (pixels too large once decoded, sequences nested too deep), or UIDs that are
            not DICOM UIDs.
    """
    location = Path(f"<{source}>")
    if not raw:
        raise InputError(location, "empty data set")
    # Read warnings (e.g. no file meta) do not refuse an instance; the file is kept as sent.
    with ignoring():
        header = read_instance(location, raw, limits=limits)
    try:
        validate_uid(header.instance.sop_instance_uid)
        validate_uid(header.series.series_instance_uid, "Series Instance UID")
        validate_uid(header.study.study_instance_uid, "Study Instance UID")
    except InputError as exc:
        raise InputError(location, exc.reason) from exc
    return header


def _received(
    header: DicomHeader, digest: str, path: Path, duplicate: bool = False, conflict: bool = False
) -> Received:
    return Received(
        header.instance.sop_instance_uid,
        header.instance.sop_class_uid,
        header.series.series_instance_uid,
        header.study.study_instance_uid,
        digest,
        path,
        duplicate=duplicate,
        conflict=conflict,
    )
