"""``store.exports``: FHIR of stored studies, the id index, and the signed report."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from radlens.errors import NotFoundError
from radlens.report.fhir import report_id, resource_ids
from radlens.report.findings_json import from_json
from radlens.store import exports, review
from radlens.store.db import Database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.models import FhirResourceRow, StudyRow
from serve_helpers import make_instance, result_with_finding

UID = "1.2.7"


@pytest.fixture
def storage(db: Database, intake: Intake) -> Path:
    """A stored, analyzed study ``UID`` (one CT instance, one positive finding)."""
    intake.receive(make_instance(UID, f"{UID}.1"), "t")
    queue = JobQueue(db, intake.storage_dir, quiet_period_s=0.0)
    assert queue.run_one(lambda study: result_with_finding(study, "pneumonia", 0.9))
    return intake.storage_dir


def _indexed(db: Database) -> set[tuple[str, str]]:
    with db.sessions() as session:
        rows = session.execute(
            select(FhirResourceRow.resource_type, FhirResourceRow.resource_id)
        ).all()
    return {(kind, rid) for kind, rid in rows}


def test_a_completed_analysis_indexes_every_resource_id(db: Database, storage: Path) -> None:
    with db.sessions() as session:
        row = session.get(StudyRow, UID)
        assert row is not None and row.result is not None
        result = from_json(row.result)
    assert _indexed(db) == set(resource_ids(result))
    for kind, rid in resource_ids(result):
        resource = exports.read_resource(db, storage, kind, rid)
        assert (resource["resourceType"], resource["id"]) == (kind, rid)


def test_index_missing_fills_in_studies_analyzed_before_the_index(
    db: Database, storage: Path
) -> None:
    before = _indexed(db)
    with db.sessions.begin() as session:
        session.execute(delete(FhirResourceRow))
    assert exports.index_missing(db) == 1
    assert _indexed(db) == before
    assert exports.index_missing(db) == 0  # nothing left to do


def test_the_stored_dicom_context_names_the_patient(db: Database, storage: Path) -> None:
    bundle = exports.study_bundle(db, storage, UID)
    imaging = bundle["entry"][0]["resource"]
    assert imaging["subject"]["identifier"]["value"]  # from the stored file's header
    assert imaging["series"][0]["instance"][0]["uid"] == f"{UID}.1"


def test_signing_makes_the_report_final(db: Database, storage: Path) -> None:
    [draft] = exports.study_reports(db, storage, UID)
    assert draft["status"] == "preliminary"
    review.save_report(db, UID, "Pneumonia.", "reader")
    review.sign(db, UID, "reader")
    final = exports.read_resource(db, storage, "DiagnosticReport", report_id(UID))
    assert final["status"] == "final"
    assert base64.b64decode(final["presentedForm"][0]["data"]) == b"Pneumonia."


def test_unknown_and_unanalyzed_studies(db: Database, intake: Intake) -> None:
    assert exports.study_reports(db, intake.storage_dir, "9.9") == []
    with pytest.raises(NotFoundError):
        exports.study_bundle(db, intake.storage_dir, "9.9")
    intake.receive(make_instance("1.2.8", "1.2.8.1"), "t")  # received, not analyzed
    assert exports.study_reports(db, intake.storage_dir, "1.2.8") == []
    with pytest.raises(NotFoundError, match="no result yet"):
        exports.study_bundle(db, intake.storage_dir, "1.2.8")
    with pytest.raises(NotFoundError, match="reads DiagnosticReport"):
        exports.read_resource(db, intake.storage_dir, "Patient", "x")
