"""The persistent analysis queue: studies whose quiet period passed are analyzed once.

Life of a study: intake marks it ``received`` and stamps ``last_instance_at``. When no
instance has arrived for ``quiet_period_s``, :meth:`JobQueue.enqueue_due` puts one job on
the table (a partial unique index allows one queued or running job per study) and marks
the study ``analyzing``. A worker :meth:`~JobQueue.claim`\\ s the job, analyzes the stored
files and :meth:`~JobQueue.complete`\\ s it: the result, the priority and the job's
``done`` state are committed in one transaction, so an analysis either counts once or not
at all. A study that got new instances while it was analyzed goes back to ``received``.

After a crash, :meth:`JobQueue.recover` puts jobs left ``running`` back to ``queued``;
only one server process may work a database's queue at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from radlens.domain.findings import StudyResult
from radlens.domain.imaging import Study
from radlens.errors import InputError, RadlensError
from radlens.inference.backends import Backend
from radlens.io.scan import scan
from radlens.models.registry import InstalledModel
from radlens.pipeline import process_study
from radlens.report.findings_json import to_json
from radlens.store.db import Database
from radlens.store.exports import index_result
from radlens.store.files import reading_stored
from radlens.store.models import InstanceRow, JobRow, JobState, StudyRow, StudyStatus, utcnow
from radlens.store.results import annotate, save_heatmaps
from radlens.triage.priority import TriageRules
from radlens.warning_scopes import ignoring

log = logging.getLogger(__name__)

Analyze = Callable[[Study], StudyResult]
"""Analyzes one study (``radlens.pipeline.process_study`` with the installed models)."""


@dataclass(frozen=True)
class Claimed:
    """A job a worker now owns."""

    job_id: int
    study_uid: str
    paths: tuple[Path, ...]


def pipeline_analyzer(
    models: list[InstalledModel], backend_for: Callable[[InstalledModel], Backend]
) -> Analyze:
    """The analysis the CLI runs, without overlays: ``process_study(...).result``."""

    def analyze(study: Study) -> StudyResult:
        return process_study(study, models, backend_for, render=False).result

    return analyze


class JobQueue:
    """The job table of ``db``, for studies stored under ``storage_dir``."""

    def __init__(
        self,
        db: Database,
        storage_dir: Path,
        quiet_period_s: float,
        max_attempts: int = 3,
        on_complete: Callable[[Study, StudyResult], None] | None = None,
        rules: TriageRules | None = None,
    ) -> None:
        self.db = db
        self.rules = rules or TriageRules()
        self.storage_dir = storage_dir
        self.quiet_period_s = quiet_period_s
        self.max_attempts = max_attempts
        self.on_complete = on_complete  # after the result is committed (PACS push)

    def recover(self) -> int:
        """Requeue jobs a dead process left ``running``; return how many."""
        with self.db.sessions.begin() as session:
            jobs = session.scalars(select(JobRow).where(JobRow.state == JobState.RUNNING)).all()
            for job in jobs:
                if job.attempts >= self.max_attempts:
                    self._give_up(session, job, "interrupted too often")
                else:
                    job.state, job.started_at = JobState.QUEUED, None
        if jobs:
            log.info("requeued %d interrupted analysis job(s)", len(jobs))
        return len(jobs)

    def enqueue_due(self, now: datetime | None = None) -> list[str]:
        """Queue a job for each received study that has been quiet long enough."""
        cutoff = (now or utcnow()) - timedelta(seconds=self.quiet_period_s)
        try:
            with self.db.sessions.begin() as session:
                studies = session.scalars(
                    select(StudyRow).where(
                        StudyRow.status == StudyStatus.RECEIVED,
                        StudyRow.last_instance_at <= cutoff,
                    )
                ).all()
                for study in studies:
                    study.status = StudyStatus.ANALYZING
                    session.add(JobRow(study_uid=study.study_uid, state=JobState.QUEUED))
                return [s.study_uid for s in studies]
        except IntegrityError:
            return []  # another process queued one of them first; try again next round

    def claim(self) -> Claimed | None:
        """Take the oldest queued job, or None. Only one caller gets a given job."""
        with self.db.sessions.begin() as session:
            job = session.scalars(
                select(JobRow)
                .where(JobRow.state == JobState.QUEUED)
                .order_by(JobRow.created_at, JobRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if job is None:
                return None
            paths = session.scalars(
                select(InstanceRow.path)
                .where(InstanceRow.study_uid == job.study_uid)
                .order_by(InstanceRow.path)
            ).all()
            taken = session.execute(
                update(JobRow)
                .where(JobRow.id == job.id, JobRow.state == JobState.QUEUED)
                .values(
                    state=JobState.RUNNING,
                    attempts=JobRow.attempts + 1,
                    started_at=utcnow(),
                    n_instances=len(paths),
                )
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return Claimed(job.id, job.study_uid, tuple(self.storage_dir / p for p in paths))

    def complete(self, claimed: Claimed, result: StudyResult, modalities: tuple[str, ...]) -> bool:
        """Record a finished analysis: result, priority and job state in one transaction.

        The site's triage rules set the priority (in the stored document too); each
        finding gets its stable id, the FHIR ids are indexed (``store.exports``), and
        heatmaps are written before the commit, so a committed result never points at a
        missing heatmap.

        Returns True when the study is now ``ready`` (False when it was requeued meanwhile
        or gained instances while it was analyzed, so another analysis follows).
        """
        now = utcnow()
        triage = self.rules.triage(result.findings)
        document = annotate(to_json(result, modalities), result)
        document["priority"] = triage.priority.name.lower()
        save_heatmaps(self.storage_dir, result, self.db.keys)
        with self.db.sessions.begin() as session:
            job = session.get(JobRow, claimed.job_id)
            study = session.get(StudyRow, claimed.study_uid)
            if job is None or study is None or job.state != JobState.RUNNING:
                return False  # requeued meanwhile (recover); the other run will record it
            job.state, job.finished_at = JobState.DONE, now
            study.result = document
            index_result(session, result)
            study.priority = int(triage.priority)
            study.ai_score = triage.score
            study.analyzed_at = now
            current = session.scalar(
                select(func.count()).where(InstanceRow.study_uid == study.study_uid)
            )
            # New instances arrived while analyzing: analyze again after the quiet period.
            fresh = current == job.n_instances
            study.status = StudyStatus.READY if fresh else StudyStatus.RECEIVED
            return fresh

    def fail(self, claimed: Claimed, reason: str) -> None:
        """Requeue a job whose analysis raised, or give up after ``max_attempts``."""
        with self.db.sessions.begin() as session:
            job = session.get(JobRow, claimed.job_id)
            if job is None or job.state != JobState.RUNNING:
                return
            if job.attempts >= self.max_attempts:
                self._give_up(session, job, reason)
            else:
                job.state, job.started_at, job.error = JobState.QUEUED, None, reason[:500]

    def run_one(self, analyze: Analyze) -> bool:
        """Queue due studies, then claim and run one job. False when there was none."""
        self.enqueue_due()
        claimed = self.claim()
        if claimed is None:
            return False
        # The stored files are sealed: the scan, the pipeline and the push read them
        # through the store.
        with reading_stored(self.storage_dir, self.db.keys):
            return self._run(claimed, analyze)

    def _run(self, claimed: Claimed, analyze: Analyze) -> bool:
        try:
            study = self._load_study(claimed)
            result = analyze(study)
        except RadlensError as exc:
            log.warning("analysis job %d failed: %s", claimed.job_id, type(exc).__name__)
            self.fail(claimed, str(exc))
            return True
        except Exception as exc:  # the worker boundary: a bug must not wedge the job
            log.exception("analysis job %d failed", claimed.job_id)
            self.fail(claimed, f"internal error: {type(exc).__name__}")
            return True
        ready = self.complete(claimed, result, study.modalities)
        # Results go out (PACS push) only for a study that is complete: one that gained
        # instances meanwhile is analyzed again and pushed then.
        if ready and self.on_complete is not None:
            try:
                self.on_complete(study, result)
            except Exception:  # a failed push must not fail the committed analysis
                log.exception("completion hook of job %d failed", claimed.job_id)
        return True

    def _load_study(self, claimed: Claimed) -> Study:
        if not claimed.paths:
            raise InputError(None, "study has no stored instances")
        with ignoring():  # intake already accepted these files
            found = scan(list(claimed.paths))
        for study in found.studies:
            if study.study_instance_uid == claimed.study_uid:
                return study
        raise InputError(None, "stored files do not hold the study")

    def _give_up(self, session: Session, job: JobRow, reason: str) -> None:
        job.state, job.finished_at, job.error = JobState.FAILED, utcnow(), reason[:500]
        study = session.get(StudyRow, job.study_uid)
        if study is not None:
            study.status = StudyStatus.FAILED


class Workers:
    """Threads that run queued jobs until stopped (the embedded local pool).

    Example:
        >>> workers = Workers(queue, analyze, count=2, poll_interval_s=0.5)  # doctest: +SKIP
        >>> workers.start(); ...; workers.stop()
    """

    def __init__(
        self, queue: JobQueue, analyze: Analyze, count: int, poll_interval_s: float
    ) -> None:
        self.queue = queue
        self.analyze = analyze
        self.count = count
        self.poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.queue.recover()
        for index in range(self.count):
            thread = threading.Thread(target=self._loop, name=f"radlens-worker-{index}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Let each worker finish its current job, then return."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.queue.run_one(self.analyze)
            except Exception:
                log.exception("analysis worker error; retrying")
                busy = False
            if not busy:
                self._stop.wait(self.poll_interval_s)
