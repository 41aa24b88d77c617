"""Curation into cases: the adjudicated feedback of one model as de-identified DICOM copies
and ``cases.csv`` (exact columns, label indices from the card, keyed pseudonyms), with what
is left out and why."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from feedback_helpers import PATIENT_ID, PATIENT_NAME, Spec

from radlens.errors import ConfigError, InputError
from radlens.feedback.cards import known_cards
from radlens.feedback.cases import (
    CASES_COLUMNS,
    Case,
    export_cases,
    read_cases,
    write_cases,
)
from radlens.models.card import ModelCard, Task, read_card
from radlens.models.registry import zoo_folder
from radlens.privacy.audit import AuditTrail, list_records
from radlens.store.review import Decision, review_finding

CXR = read_card(zoo_folder() / "cxr_pneumonia" / "card.json")  # NORMAL, PNEUMONIA; index 1


@pytest.fixture
def card() -> ModelCard:
    return replace(CXR, name="cxr_pneumonia")


def test_the_csv_columns_are_exactly_the_agreed_format() -> None:
    assert ",".join(CASES_COLUMNS) == (
        "file,label,site,scanner,patient_key,n_readers,agreement,study_key,finding_id"
    )


def test_export_writes_deidentified_images_and_cases_by_adjudicated_label(  # noqa: PLR0915
    db,  # type: ignore[no-untyped-def]
    site,
    add_study,
    card: ModelCard,
    tmp_path: Path,
) -> None:
    (present,) = add_study("1.2.60", [Spec(probability=0.9)])
    (absent,) = add_study("1.2.61", [Spec(probability=0.8)])
    (relabelled,) = add_study("1.2.62", [Spec(probability=0.7)], patient_id="MRN-OTHER-1")
    (tied,) = add_study("1.2.63", [Spec(probability=0.6)])
    (burned,) = add_study("1.2.64", [Spec(probability=0.6)], burned_in=True)
    review_finding(db, "1.2.60", present, Decision.ACCEPTED, "ann", confidence=4)
    review_finding(db, "1.2.60", present, Decision.ACCEPTED, "bob")
    review_finding(db, "1.2.60", present, Decision.REJECTED, "cy")
    review_finding(db, "1.2.61", absent, Decision.REJECTED, "ann")
    review_finding(db, "1.2.62", relabelled, Decision.EDITED, "ann", label="NORMAL")
    review_finding(db, "1.2.63", tied, Decision.ACCEPTED, "ann")
    review_finding(db, "1.2.63", tied, Decision.REJECTED, "bob")
    review_finding(db, "1.2.64", burned, Decision.ACCEPTED, "ann")
    out = tmp_path / "cases"
    trail = AuditTrail(db)
    result = export_cases(db, site.storage, card, out, audit=trail, user="exporter")

    by_finding = {c.finding_id: c for c in result.cases}
    assert set(by_finding) == {present, absent, relabelled}
    assert by_finding[present].label == 1  # PNEUMONIA: the finding present
    assert by_finding[absent].label == 0 and by_finding[relabelled].label == 0
    assert by_finding[present].n_readers == 3 and by_finding[present].agreement == 0.667
    assert result.skipped[tied].startswith("unresolved")
    assert "Burned In Annotation" in result.skipped[burned]
    assert result.n_images == 3

    with (out / "cases.csv").open() as fp:
        rows = list(csv.reader(fp))
    assert tuple(rows[0]) == CASES_COLUMNS and len(rows) == 4
    assert read_cases(out / "cases.csv") == list(result.cases)
    originals = {"1.2.60", "1.2.61", "1.2.62"}
    for case in result.cases:
        path = out / case.file
        assert path.is_file() and not Path(case.file).is_absolute()
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        assert str(ds.PatientName) == ds.PatientID == case.patient_key
        assert case.patient_key not in (PATIENT_ID, "MRN-OTHER-1")
        assert ds.StudyInstanceUID == case.study_key and case.study_key not in originals
        assert case.scanner == "ACME Scan 1" and case.site and case.site != "CT01"
        raw = path.read_bytes()
        for secret in (PATIENT_ID.encode(), b"Doe^Jane", b"1.2.60.1.1"):
            assert secret not in raw
    text = (out / "cases.csv").read_text()
    for secret in (PATIENT_ID, "MRN-OTHER-1", PATIENT_NAME, "CT01", "1.2.60", "1.2.61"):
        assert secret not in text
    # one patient, one key; another patient, another key
    keys = {c.finding_id: c.patient_key for c in result.cases}
    assert keys[present] == keys[absent] != keys[relabelled]
    # the same pseudonyms on a second export (the storage folder's research key)
    again = export_cases(db, site.storage, card, tmp_path / "again")
    assert [c.patient_key for c in again.cases] == [c.patient_key for c in result.cases]
    assert [c.study_key for c in again.cases] == [c.study_key for c in result.cases]
    # one de-identified-export audit record per study exported
    audited = [r.study_uid for r in list_records(db) if r.event == "deidentified-exported"]
    assert sorted(audited) == sorted(originals)


def test_a_card_whose_finding_is_class_0_gets_0_for_present(
    db,  # type: ignore[no-untyped-def]
    site,
    add_study,
    tmp_path: Path,
) -> None:
    """BreastMNIST codes malignant (the finding) as 0: labels ["malignant", "normal or benign"]."""
    breast = read_card(zoo_folder() / "breast_us_malignancy" / "card.json")
    assert breast.positive_index == 0 and breast.labels[0] == "malignant"
    as_tested = replace(breast, name="cxr_pneumonia", applies_to=CXR.applies_to)
    (yes,) = add_study("1.2.70", [Spec(probability=0.9)])
    (no,) = add_study("1.2.71", [Spec(probability=0.9)])
    review_finding(db, "1.2.70", yes, Decision.ACCEPTED, "ann")
    review_finding(db, "1.2.71", no, Decision.EDITED, "ann", label="normal or benign")
    result = export_cases(db, site.storage, as_tested, tmp_path / "out")
    assert {c.finding_id: c.label for c in result.cases} == {yes: 0, no: 1}


def test_graded_findings_export_their_adjudicated_grade(
    db,  # type: ignore[no-untyped-def]
    site,
    add_study,
    tmp_path: Path,
) -> None:
    retina = read_card(zoo_folder() / "retina_dr_grade" / "card.json")
    assert retina.task is Task.ORDINAL
    ordinal = replace(retina, name="cxr_pneumonia", applies_to=CXR.applies_to)
    (graded,) = add_study("1.2.80", [Spec(probability=0.6, grade=2)])
    (cleared,) = add_study("1.2.81", [Spec(probability=0.6, grade=1)])
    review_finding(db, "1.2.80", graded, Decision.EDITED, "ann", grade=3)
    review_finding(db, "1.2.81", cleared, Decision.REJECTED, "ann")
    result = export_cases(db, site.storage, ordinal, tmp_path / "out")
    assert {c.finding_id: c.label for c in result.cases} == {graded: 3, cleared: 0}


def test_multi_frame_images_and_unknown_models_are_left_out(
    db,  # type: ignore[no-untyped-def]
    site,
    add_study,
    card: ModelCard,
    tmp_path: Path,
) -> None:
    (cine,) = add_study("1.2.90", [Spec()], frames=2)
    review_finding(db, "1.2.90", cine, Decision.ACCEPTED, "ann")
    result = export_cases(db, site.storage, card, tmp_path / "out")
    assert result.cases == () and "multi-frame" in result.skipped[cine]
    assert read_cases(tmp_path / "out" / "cases.csv") == []
    other = replace(card, name="someone_else")
    assert export_cases(db, site.storage, other, tmp_path / "none").cases == ()


def test_only_2d_classifiers_are_exported(db, site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    volume = replace(
        CXR,
        applies_to=replace(CXR.applies_to, dims=3),
        input=replace(CXR.input, size=(28, 28, 28)),
    )
    with pytest.raises(ConfigError, match="3D binary"):
        export_cases(db, site.storage, volume, tmp_path / "out")
    detectors = [
        c for c in known_cards().values() if c.task is Task.DETECTION and c.applies_to.dims == 2
    ]
    for cells in detectors[:1]:  # a shipped detector, while the zoo has one
        with pytest.raises(ConfigError, match="detection"):
            export_cases(db, site.storage, cells, tmp_path / "out")


def test_cases_csv_round_trips_and_refuses_another_format(tmp_path: Path) -> None:
    cases = [Case("images/a.dcm", 1, "RLX", "ACME Scan 1", "RLY", 2, 0.5, "2.25.1", "f1")]
    write_cases(tmp_path / "cases.csv", cases)
    assert read_cases(tmp_path / "cases.csv") == cases
    (tmp_path / "other.csv").write_text("file,label\nimages/a.dcm,1\n")
    with pytest.raises(InputError, match="columns must be"):
        read_cases(tmp_path / "other.csv")
    with pytest.raises(ValueError, match="relative"):
        Case("/etc/passwd", 1, "", "", "k", 1, 1.0, "s", "f")
