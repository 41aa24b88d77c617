from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from radlens.domain.findings import Priority, StudyResult
from radlens.domain.imaging import Study
from radlens.errors import InferenceError
from radlens.store.db import Database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.models import JobRow, JobState, StudyRow, StudyStatus, utcnow
from serve_helpers import make_instance, result_with_finding


class CountingAnalyzer:
    """A fake analysis: records each study it saw and returns a fixed priority."""

    def __init__(self, code: str = "pneumonia", fail: bool = False) -> None:
        self.seen: list[tuple[str, int]] = []
        self.code = code
        self.fail = fail

    def __call__(self, study: Study) -> StudyResult:
        self.seen.append((study.study_instance_uid, study.n_instances))
        if self.fail:
            raise InferenceError("backend broke")
        return result_with_finding(study, self.code)


@pytest.fixture
def queue(db: Database, tmp_path: Path) -> JobQueue:
    return JobQueue(db, tmp_path / "storage", quiet_period_s=0.0, max_attempts=2)


def _jobs(db: Database) -> list[JobRow]:
    with db.sessions() as session:
        return list(session.scalars(select(JobRow).order_by(JobRow.id)).all())


def _study(db: Database, uid: str) -> StudyRow:
    with db.sessions() as session:
        study = session.get(StudyRow, uid)
    assert study is not None
    return study


def test_study_is_queued_only_after_its_quiet_period(intake: Intake, db: Database) -> None:
    intake.receive(make_instance("1.2.1", "1.2.1.1"), "t")
    queue = JobQueue(db, intake.storage_dir, quiet_period_s=60.0)
    assert queue.enqueue_due() == []
    assert queue.enqueue_due(now=utcnow() + timedelta(seconds=61)) == ["1.2.1"]
    assert _study(db, "1.2.1").status == StudyStatus.ANALYZING
    assert queue.enqueue_due(now=utcnow() + timedelta(seconds=120)) == []  # one active job


def test_run_one_analyzes_and_records_result_and_priority(
    intake: Intake, db: Database, queue: JobQueue
) -> None:
    for i in range(3):
        intake.receive(make_instance("1.2.1", f"1.2.1.{i}"), "t")
    analyze = CountingAnalyzer()
    assert queue.run_one(analyze)
    assert analyze.seen == [("1.2.1", 3)]
    study = _study(db, "1.2.1")
    assert study.status == StudyStatus.READY and study.priority == Priority.URGENT
    assert study.result is not None and study.result["priority"] == "urgent"
    assert study.analyzed_at is not None and study.analyzed_at >= study.received_at
    assert [j.state for j in _jobs(db)] == [JobState.DONE]


def test_done_study_is_never_analyzed_again_unless_new_instances_arrive(
    intake: Intake, queue: JobQueue
) -> None:
    intake.receive(make_instance("1.2.1", "1.2.1.1"), "t")
    analyze = CountingAnalyzer()
    assert queue.run_one(analyze)
    assert not queue.run_one(analyze)
    intake.receive(make_instance("1.2.1", "1.2.1.1"), "t")  # a resend changes nothing
    assert not queue.run_one(analyze)
    intake.receive(make_instance("1.2.1", "1.2.1.2"), "t")
    assert queue.run_one(analyze)
    assert analyze.seen == [("1.2.1", 1), ("1.2.1", 2)]


def test_instance_arriving_during_analysis_triggers_another_analysis(
    intake: Intake, db: Database, queue: JobQueue
) -> None:
    intake.receive(make_instance("1.2.1", "1.2.1.1"), "t")
    queue.enqueue_due()
    claimed = queue.claim()
    assert claimed is not None and len(claimed.paths) == 1
    intake.receive(make_instance("1.2.1", "1.2.1.2"), "t")
    queue.complete(claimed, StudyResult("1.2.1", ()), ("CT",))
    assert _study(db, "1.2.1").status == StudyStatus.RECEIVED
    analyze = CountingAnalyzer()
    assert queue.run_one(analyze)
    assert analyze.seen == [("1.2.1", 2)]


def test_job_left_running_by_a_crash_is_resumed_once(
    intake: Intake, db: Database, queue: JobQueue
) -> None:
    intake.receive(make_instance("1.2.1", "1.2.1.1"), "t")
    queue.enqueue_due()
    assert queue.claim() is not None  # the process dies here: the job stays running
    assert queue.claim() is None
    assert queue.recover() == 1
    analyze = CountingAnalyzer()
    assert queue.run_one(analyze)
    assert not queue.run_one(analyze)
    assert analyze.seen == [("1.2.1", 1)]
    assert [(j.state, j.attempts) for j in _jobs(db)] == [(JobState.DONE, 2)]


def test_claim_gives_a_job_to_one_caller_only(intake: Intake, queue: JobQueue) -> None:
    intake.receive(make_instance("1.2.1", "1.2.1.1"), "t")
    queue.enqueue_due()
    assert queue.claim() is not None
    assert queue.claim() is None


def test_failing_analysis_is_retried_then_marked_failed(
    intake: Intake, db: Database, queue: JobQueue
) -> None:
    intake.receive(make_instance("1.2.1", "1.2.1.1"), "t")
    analyze = CountingAnalyzer(fail=True)
    assert queue.run_one(analyze)
    assert [j.state for j in _jobs(db)] == [JobState.QUEUED]
    assert queue.run_one(analyze)
    job = _jobs(db)[0]
    assert job.state == JobState.FAILED and "backend broke" in job.error
    assert _study(db, "1.2.1").status == StudyStatus.FAILED
    assert not queue.run_one(analyze)
