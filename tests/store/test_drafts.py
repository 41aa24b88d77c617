"""The draft of a stored study: prior studies of the same patient, notes, concordance ids."""

from __future__ import annotations

import stat

import pytest
from sqlalchemy import select

from radlens.domain.findings import StudyResult
from radlens.domain.imaging import Study
from radlens.errors import ConflictError, NotFoundError
from radlens.nlp import Concordance
from radlens.store.db import Database
from radlens.store.drafts import (
    MAX_NOTES_CHARS,
    PATIENT_KEY_FILE,
    latest_prior,
    save_notes,
    study_draft,
)
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.models import StudyRow
from serve_helpers import dated_instance, result_with_finding

# Study UID -> the stand-in pneumonia probability its analysis finds.
PROBABILITY = {"1.5.1": 0.08, "1.5.2": 0.30, "1.5.3": 0.92, "1.5.4": 0.95, "1.5.9": 0.99}


def stand_in(study: Study) -> StudyResult:
    return result_with_finding(study, "pneumonia", PROBABILITY[study.study_instance_uid])


def analyze_all(db: Database, intake: Intake) -> None:
    queue = JobQueue(db, intake.storage_dir, quiet_period_s=0.0)
    while queue.run_one(stand_in):
        pass


@pytest.fixture
def patient(db: Database, intake: Intake) -> Intake:
    """Patient A: 1.5.1 (Jan), 1.5.2 (Feb), 1.5.3 (Mar), 1.5.4 (Apr, received first);
    patient B: 1.5.9 (between Feb and Mar). All analyzed."""
    intake.receive(dated_instance("1.5.4", "PID-A", "20240401"), "t")
    intake.receive(dated_instance("1.5.3", "PID-A", "20240301"), "t")
    intake.receive(dated_instance("1.5.1", "PID-A", "20240110", "XR CHEST"), "t")
    intake.receive(dated_instance("1.5.2", "PID-A", "20240201"), "t")
    intake.receive(dated_instance("1.5.9", "PID-B", "20240215"), "t")
    analyze_all(db, intake)
    return intake


def test_latest_prior_is_the_latest_earlier_study_of_the_same_patient(
    db: Database, patient: Intake
) -> None:
    prior = latest_prior(db, patient.storage_dir, "1.5.3")
    assert prior is not None
    assert prior.study_instance_uid == "1.5.2"  # not B's 1.5.9, not the later 1.5.4
    assert (prior.study_date, prior.description) == ("2024-02-01", "CT CHEST")
    [finding] = prior.findings
    assert finding.code == "pneumonia" and finding.probability == pytest.approx(0.30)
    later = latest_prior(db, patient.storage_dir, "1.5.4")
    assert later is not None and later.study_instance_uid == "1.5.3"


def test_the_first_study_of_a_patient_has_no_prior(db: Database, patient: Intake) -> None:
    assert latest_prior(db, patient.storage_dir, "1.5.1") is None
    assert latest_prior(db, patient.storage_dir, "1.5.9") is None  # B has one study
    draft = study_draft(db, patient.storage_dir, "1.5.1").draft
    assert draft is not None and draft.prior is None
    assert "## Comparison\n\nNone available." in draft.text


def test_draft_compares_with_the_prior_per_finding_with_dates(
    db: Database, patient: Intake
) -> None:
    drafted = study_draft(db, patient.storage_dir, "1.5.3")
    assert drafted.draft is not None
    text = drafted.draft.text
    comparison = text.split("## Comparison\n", 1)[1].split("\n## ", 1)[0]
    assert "Prior study: 2024-02-01, CT CHEST." in comparison
    assert (
        "- Pneumonia: new since 2024-02-01 (then not excluded, p=0.30; now very likely, "
        "p=0.92)." in comparison
    )
    assert "Procedure: CT CHEST." in text  # the DICOM context comes from the stored file
    assert "requires physician review" in text


def test_undated_studies_compare_by_time_received(db: Database, intake: Intake) -> None:
    intake.receive(dated_instance("1.5.1", "PID-C", ""), "t")
    intake.receive(dated_instance("1.5.3", "PID-C", ""), "t")
    analyze_all(db, intake)
    prior = latest_prior(db, intake.storage_dir, "1.5.3")
    assert prior is not None and prior.study_instance_uid == "1.5.1"
    assert latest_prior(db, intake.storage_dir, "1.5.1") is None


def test_a_study_without_patient_id_has_no_prior(db: Database, intake: Intake) -> None:
    intake.receive(dated_instance("1.5.1", "", "20240110"), "t")
    intake.receive(dated_instance("1.5.3", "", "20240301"), "t")
    analyze_all(db, intake)
    assert latest_prior(db, intake.storage_dir, "1.5.3") is None


def test_the_database_holds_a_keyed_hash_not_the_patient_id(db: Database, patient: Intake) -> None:
    with db.sessions() as session:
        keys = dict(session.execute(select(StudyRow.study_uid, StudyRow.patient_key)).all())
    assert keys["1.5.1"] == keys["1.5.3"] != keys["1.5.9"]
    assert all(k and "PID" not in k for k in keys.values())
    secret = patient.storage_dir / PATIENT_KEY_FILE
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_notes_drive_the_concordance_of_each_finding_id(db: Database, patient: Intake) -> None:
    before = study_draft(db, patient.storage_dir, "1.5.1")
    assert before.notes.text == "" and before.draft is not None
    assert "Clinical correlation" not in before.draft.text
    save_notes(db, "1.5.1", "Indication: rule out pneumonia.", "reader")
    after = study_draft(db, patient.storage_dir, "1.5.1")
    assert after.notes.text == "Indication: rule out pneumonia."
    assert after.notes.updated_by == "reader" and after.notes.updated_at is not None
    with db.sessions() as session:
        document = session.scalar(select(StudyRow.result).where(StudyRow.study_uid == "1.5.1"))
    assert document is not None
    fid = document["series"][0]["findings"][0]["id"]
    assert after.concordance[fid].concordance is Concordance.DISCORDANT
    assert after.draft is not None and "- rule out pneumonia" in after.draft.text


def test_notes_of_an_unknown_study_or_too_long_are_refused(db: Database, patient: Intake) -> None:
    with pytest.raises(NotFoundError):
        save_notes(db, "9.9.9", "text", "reader")
    with pytest.raises(ConflictError):
        save_notes(db, "1.5.1", "x" * (MAX_NOTES_CHARS + 1), "reader")
    with pytest.raises(NotFoundError):
        study_draft(db, patient.storage_dir, "9.9.9")


def test_a_study_not_yet_analyzed_has_notes_but_no_draft(db: Database, intake: Intake) -> None:
    intake.receive(dated_instance("1.5.1", "PID-A", "20240110"), "t")
    save_notes(db, "1.5.1", "Cough.", "reader")
    drafted = study_draft(db, intake.storage_dir, "1.5.1")
    assert drafted.draft is None and drafted.concordance == {}
    assert drafted.notes.text == "Cough."
