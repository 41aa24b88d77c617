"""The completion hook (the PACS push) runs only for a study that ends READY."""

from __future__ import annotations

from pathlib import Path

from radlens.domain.findings import StudyResult
from radlens.domain.imaging import Study
from radlens.store.db import Database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.models import StudyRow, StudyStatus
from serve_helpers import make_instance, result_with_finding

STUDY = "1.2.826.0.1.3680043.9.7777.42"


class ArrivingDuringFirstAnalysis:
    """Analyzes with a stand-in result; while analyzing the first time, the modality sends
    one more instance of the same study (through the real intake)."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.seen: list[int] = []

    def __call__(self, study: Study) -> StudyResult:
        self.seen.append(study.n_instances)
        if len(self.seen) == 1:
            self.intake.receive(make_instance(STUDY, f"{STUDY}.2"), "modality")
        return result_with_finding(study)


def _status(db: Database) -> str:
    with db.sessions() as session:
        study = session.get(StudyRow, STUDY)
    assert study is not None
    return study.status


def test_hook_waits_for_the_reanalysis_when_instances_arrive_during_analysis(
    intake: Intake, db: Database, tmp_path: Path
) -> None:
    pushed: list[tuple[str, int]] = []

    def hook(study: Study, result: StudyResult) -> None:
        pushed.append((result.study_instance_uid, study.n_instances))

    queue = JobQueue(db, intake.storage_dir, quiet_period_s=0.0, on_complete=hook)
    intake.receive(make_instance(STUDY, f"{STUDY}.1"), "modality")
    analyze = ArrivingDuringFirstAnalysis(intake)

    assert queue.run_one(analyze)
    assert analyze.seen == [1]
    assert pushed == []  # the result is stored, but the study is not complete
    assert _status(db) == StudyStatus.RECEIVED

    assert queue.run_one(analyze)
    assert analyze.seen == [1, 2]
    assert pushed == [(STUDY, 2)]
    assert _status(db) == StudyStatus.READY

    assert not queue.run_one(analyze)  # nothing left to analyze, nothing pushed again
    assert pushed == [(STUDY, 2)]


def test_hook_runs_once_for_a_study_that_ends_ready(intake: Intake, db: Database) -> None:
    pushed: list[int] = []
    queue = JobQueue(
        db,
        intake.storage_dir,
        quiet_period_s=0.0,
        on_complete=lambda study, result: pushed.append(study.n_instances),
    )
    intake.receive(make_instance(STUDY, f"{STUDY}.1"), "modality")
    assert queue.run_one(result_with_finding)
    assert not queue.run_one(result_with_finding)
    assert pushed == [1] and _status(db) == StudyStatus.READY
