"""De-identified views for researchers (``store/research.py``): pseudonymous UIDs only, and
instances de-identified on request; pixels that may show patient data are withheld."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pydicom
import pytest

from radlens.errors import ConflictError, NotFoundError
from radlens.privacy.deid import DeidState
from radlens.store.db import Database
from radlens.store.intake import Intake
from radlens.store.research import (
    RESEARCH_KEY_FILE,
    deidentified_instance,
    deidentified_studies,
    research_key,
)
from serve_helpers import dated_instance, make_instance

UID = "1.2.826.0.1.3680043.9.7777.51"


def _storage(intake: Intake) -> Path:
    return intake.storage_dir


def test_the_listing_names_no_stored_uid(db: Database, intake: Intake) -> None:
    raw = dated_instance(UID, "PATIENT-123", "20240102")
    intake.receive(raw, "test")
    storage = _storage(intake)
    (study,) = deidentified_studies(db, storage)
    text = repr(study)
    assert UID not in text and "PATIENT-123" not in text and "20240102" not in text
    state = DeidState(research_key(storage))
    assert study.study_id == state.new_uid(UID)
    assert study.series[0].instance_ids == [state.new_uid(f"{UID}.1")]
    assert stat.S_IMODE((storage / RESEARCH_KEY_FILE).stat().st_mode) & 0o077 == 0
    # the same key gives the same pseudonyms next time
    assert deidentified_studies(db, storage)[0].study_id == study.study_id


def test_an_instance_is_served_de_identified(db: Database, intake: Intake) -> None:
    intake.receive(dated_instance(UID, "PATIENT-123", "20240102"), "test")
    storage = _storage(intake)
    (study,) = deidentified_studies(db, storage)
    data = deidentified_instance(db, storage, study.series[0].instance_ids[0])
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.PatientID != "PATIENT-123" and str(ds.PatientName) == ds.PatientID
    assert ds.StudyInstanceUID == study.study_id and ds.StudyDate != "20240102"
    assert b"PATIENT-123" not in data and UID.encode() not in data


def test_an_unknown_pseudonym_is_not_found(db: Database, intake: Intake) -> None:
    intake.receive(make_instance(UID, f"{UID}.1"), "test")
    with pytest.raises(NotFoundError):
        deidentified_instance(db, _storage(intake), f"{UID}.1")  # the real UID is no pseudonym


def test_an_ultrasound_is_withheld(db: Database, intake: Intake) -> None:
    ds = pydicom.dcmread(io.BytesIO(make_instance(UID, f"{UID}.1")))
    ds.Modality = "US"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    intake.receive(buffer.getvalue(), "test")
    storage = _storage(intake)
    (study,) = deidentified_studies(db, storage)
    with pytest.raises(ConflictError, match="ultrasound"):
        deidentified_instance(db, storage, study.series[0].instance_ids[0])
