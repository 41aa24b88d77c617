"""Worklist order and filters, and the series listing the viewer reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from radlens.domain.findings import Priority
from radlens.domain.imaging import Study
from radlens.errors import NotFoundError
from radlens.store.db import Database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.models import StudyRow, utcnow
from radlens.store.review import save_report, set_priority, sign
from radlens.store.worklist import list_series, list_worklist, series_instances
from radlens.triage.priority import TriageRules
from serve_helpers import make_instance, result_with_finding

# study UID -> (finding code, probability, out of distribution)
CASES = {
    "1.5.1": ("nodule", 0.2, False),  # routine
    "1.5.2": ("pneumonia", 0.7, False),  # urgent
    "1.5.3": ("pneumonia", 0.95, False),  # urgent, more probable
    "1.5.4": ("pneumonia", 0.95, True),  # urgent, low trust
    "1.5.5": ("nodule", 0.8, False),  # priority
}


def _analyze(study: Study) -> object:
    code, probability, ood = CASES[study.study_instance_uid]
    return result_with_finding(study, code, probability, ood)


@pytest.fixture
def analyzed(intake: Intake, db: Database) -> Database:
    for uid in CASES:
        intake.receive(make_instance(uid, f"{uid}.1"), "t")
    queue = JobQueue(db, intake.storage_dir, quiet_period_s=0.0)
    while queue.run_one(_analyze):  # type: ignore[arg-type]
        pass
    return db


def _order(db: Database, **filters: str) -> list[str]:
    return [e.study_uid for e in list_worklist(db, **filters)]  # type: ignore[arg-type]


def test_order_is_level_then_trusted_probability(analyzed: Database) -> None:
    assert _order(analyzed) == ["1.5.3", "1.5.2", "1.5.4", "1.5.5", "1.5.1"]
    entries = {e.study_uid: e for e in list_worklist(analyzed)}
    assert entries["1.5.4"].priority is Priority.URGENT  # low trust never lowers the level
    assert entries["1.5.4"].low_trust and not entries["1.5.3"].low_trust
    assert entries["1.5.3"].n_positive == 1 and entries["1.5.1"].n_positive == 0
    top = entries["1.5.3"].top_finding
    assert top is not None and top.label == "Pneumonia" and top.probability == pytest.approx(0.95)
    assert entries["1.5.1"].top_finding is None


def test_site_rules_decide_what_is_urgent(intake: Intake, db: Database) -> None:
    # A site where nodules are critical and pneumonia is not.
    for uid in CASES:
        intake.receive(make_instance(uid, f"{uid}.1"), "t")
    rules = TriageRules(critical=frozenset({"nodule"}))
    queue = JobQueue(db, intake.storage_dir, quiet_period_s=0.0, rules=rules)
    while queue.run_one(_analyze):  # type: ignore[arg-type]
        pass
    entries = list_worklist(db, rules)
    assert [e.study_uid for e in entries] == ["1.5.5", "1.5.3", "1.5.2", "1.5.4", "1.5.1"]
    assert entries[0].priority is Priority.URGENT and entries[1].priority is Priority.PRIORITY


def test_long_waiting_routine_study_rises_above_fresh_urgent_ones(analyzed: Database) -> None:
    with analyzed.sessions.begin() as session:
        session.execute(
            update(StudyRow)
            .where(StudyRow.study_uid == "1.5.1")
            .values(received_at=utcnow() - timedelta(hours=3))
        )
    assert _order(analyzed) == ["1.5.1", "1.5.3", "1.5.2", "1.5.4", "1.5.5"]


def test_radiologist_priority_lifts_a_study(analyzed: Database) -> None:
    set_priority(analyzed, "1.5.1", Priority.CRITICAL)
    assert _order(analyzed)[0] == "1.5.1"


def test_signed_studies_go_last(analyzed: Database) -> None:
    save_report(analyzed, "1.5.3", "Pneumonia.", "ann")
    sign(analyzed, "1.5.3", "ann")
    assert _order(analyzed)[-1] == "1.5.3"


def test_filters(analyzed: Database) -> None:
    assert _order(analyzed, priority="urgent") == ["1.5.3", "1.5.2", "1.5.4"]
    assert _order(analyzed, priority="routine") == ["1.5.1"]
    assert _order(analyzed, status="ready") == _order(analyzed)
    assert _order(analyzed, status="signed") == []
    assert len(_order(analyzed, modality="ct")) == 5
    assert _order(analyzed, modality="MR") == []


def test_series_listing_is_in_instance_number_order(intake: Intake, db: Database) -> None:
    import io

    import pydicom

    for sop, number in (("1.6.1.3", 3), ("1.6.1.1", 1), ("1.6.1.2", 2)):
        ds = pydicom.dcmread(io.BytesIO(make_instance("1.6", sop, "1.6.1")))
        ds.InstanceNumber = number
        buffer = io.BytesIO()
        ds.save_as(buffer)
        intake.receive(buffer.getvalue(), "t")
    (series,) = list_series(db, "1.6")
    assert series.series_uid == "1.6.1" and series.modality == "CT"
    assert [uid for uid, _ in series.instances] == ["1.6.1.1", "1.6.1.2", "1.6.1.3"]
    assert all(frames == 1 for _, frames in series.instances)
    stored = series_instances(db, intake.storage_dir, "1.6", "1.6.1")
    assert [s.instance_number for s in stored] == [1, 2, 3]
    assert all(s.path.is_file() for s in stored)
    (one,) = series_instances(db, intake.storage_dir, "1.6", "1.6.1", "1.6.1.2")
    assert one.sop_uid == "1.6.1.2"
    with pytest.raises(NotFoundError):
        series_instances(db, intake.storage_dir, "1.6", "9.9")
    with pytest.raises(NotFoundError):
        series_instances(db, intake.storage_dir, "9.9", "1.6.1")  # series of another study
    with pytest.raises(NotFoundError):
        series_instances(db, intake.storage_dir, "1.6", "1.6.1", "1.6.1.9")
