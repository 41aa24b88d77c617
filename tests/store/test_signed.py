"""``store.signed``: the signed report SR is made once, kept, served and pushed."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pydicom
import pytest

from radlens.errors import ConflictError, NotFoundError
from radlens.report.signed_sr import read_signed_sr
from radlens.store import review, signed
from radlens.store.db import Database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.models import StudyRow, StudyStatus
from serve_helpers import make_instance, result_with_finding

UID = "1.2.8"
SITE = "St. Elsewhere Radiology"


@pytest.fixture
def storage(db: Database, intake: Intake) -> Path:
    """A stored, analyzed study ``UID`` (two CT instances)."""
    intake.receive(make_instance(UID, f"{UID}.1"), "t")
    intake.receive(make_instance(UID, f"{UID}.2"), "t")
    queue = JobQueue(db, intake.storage_dir, quiet_period_s=0.0)
    assert queue.run_one(result_with_finding)
    return intake.storage_dir


def _sign(db: Database, text: str = "IMPRESSION: Right lower lobe pneumonia.") -> None:
    review.save_report(db, UID, text, "reader")
    review.sign(db, UID, "reader")


def test_export_keeps_the_sr_and_pushes_the_same_bytes_that_are_served(
    db: Database, storage: Path
) -> None:
    with pytest.raises(ConflictError, match="not signed"):
        signed.signed_report_dicom(db, storage, UID, SITE)
    with pytest.raises(NotFoundError):
        signed.signed_report_dicom(db, storage, "9.9.9", SITE)
    _sign(db)
    pushed: list[tuple[str, bytes]] = []
    assert signed.export_signed_report(db, storage, UID, SITE, lambda u, b: pushed.append((u, b)))
    [(study_uid, data)] = pushed
    assert study_uid == UID
    assert signed.signed_report_dicom(db, storage, UID, SITE) == data
    assert list((storage / "results").rglob("signed_*.dcm"))
    record = read_signed_sr(pydicom.dcmread(io.BytesIO(data)))
    assert record.sections[0].text == "Right lower lobe pneumonia."
    assert record.verifying_organization == SITE
    assert set(record.evidence) == {f"{UID}.1", f"{UID}.2"}


def test_a_study_reopened_by_new_images_serves_the_sr_of_its_last_signature(
    db: Database, storage: Path, intake: Intake
) -> None:
    _sign(db)
    kept = signed.signed_report_dicom(db, storage, UID, SITE)
    intake.receive(make_instance(UID, f"{UID}.3"), "t")  # reopens the study
    with db.sessions() as session:
        study = session.get(StudyRow, UID)
        assert study is not None and study.status == StudyStatus.RECEIVED
    assert signed.signed_report_dicom(db, storage, UID, SITE) == kept
    for path in (storage / "results").rglob("signed_*.dcm"):
        path.unlink()
    # Not kept, and the text may change before the next signature: nothing to make it from.
    with pytest.raises(ConflictError, match="not signed"):
        signed.signed_report_dicom(db, storage, UID, SITE)


def test_an_sr_that_cannot_be_made_is_logged_and_the_signature_stands(
    db: Database, storage: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _sign(db)
    for path in storage.rglob("*.dcm"):
        path.write_bytes(b"not dicom")
    pushed: list[tuple[str, bytes]] = []
    with caplog.at_level(logging.ERROR):
        made = signed.export_signed_report(
            db, storage, UID, SITE, lambda u, b: pushed.append((u, b))
        )
    assert not made and pushed == [] and "no DICOM SR of a signed report" in caplog.text
    assert UID not in caplog.text
    with db.sessions() as session:
        study = session.get(StudyRow, UID)
        assert study is not None and study.status == StudyStatus.SIGNED
