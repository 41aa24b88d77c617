"""``run_batch``: the driver of ``radlens batch`` (sharded, resumable, any engine).

    source -> list_source (scan / list file / QIDO-RS) -> shard -> skip finished
           -> executor.map_unordered(run_study, ...) -> ResultStore (folders, Parquet, DB)

The driver is the only writer: each study's outcome is written when it arrives, with
files replaced atomically and the database row keyed by (study UID, model set), so a
study is recorded once however often an engine ran it. A rerun skips the studies done
with the same models (``ResultStore.finished``) and retries the failed ones.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radlens.cluster.executors import Executor
from radlens.cluster.jobs import AnalysisSetup, StudyDone, StudyFailed, model_set, run_study
from radlens.cluster.results import ResultStore, write_atomic
from radlens.cluster.sources import list_source, shard
from radlens.domain.findings import RejectedInput
from radlens.models.registry import discover
from radlens.report import require_result_libraries
from radlens.store.batch import BatchRecord
from radlens.store.db import open_database

log = logging.getLogger(__name__)

DB_FILE = "radlens-batch.sqlite"
SUMMARY_FILE = "batch-summary.json"


@dataclass(frozen=True)
class BatchSummary:
    """What one ``run_batch`` did.

    Attributes:
        total: studies in this shard of the source.
        done, skipped, failed: analyzed now, finished by an earlier run, could not be
            analyzed (each in ``failures``, with the reason).
        rejected: files that could not be used (not DICOM, truncated, undecodable).
        elapsed_s: wall time of the whole run, listing included.
    """

    engine: str
    models: str
    total: int
    done: int
    skipped: int
    failed: int
    elapsed_s: float
    rejected: tuple[RejectedInput, ...] = ()
    failures: tuple[BatchRecord, ...] = ()
    warnings: tuple[str, ...] = ()
    outputs: tuple[str, ...] = field(default=())

    @property
    def studies_per_minute(self) -> float:
        """Studies analyzed per minute of wall time (0 when none was)."""
        return 60.0 * self.done / self.elapsed_s if self.done and self.elapsed_s > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0: all analyzed; 2: some input rejected; 1: some study failed (``docs/cli.md``)."""
        return 1 if self.failed else 2 if self.rejected else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "models": self.models,
            "total": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "elapsed_s": round(self.elapsed_s, 3),
            "studies_per_minute": round(self.studies_per_minute, 2),
            "rejected": [r.__dict__ for r in self.rejected],
            "failures": [{"study_uid": f.study_uid, "error": f.error} for f in self.failures],
            "warnings": list(self.warnings),
            "outputs": list(self.outputs),
            "exit_code": self.exit_code,
        }


def default_db_url(dest: Path) -> str:
    """The run's own SQLite database, inside the output folder."""
    return f"sqlite:///{(dest / DB_FILE).expanduser().resolve()}"


def run_batch(
    source: str,
    dest: Path,
    executor: Executor,
    setup: AnalysisSetup,
    *,
    db_url: str = "",
    part: int = 0,
    parts: int = 1,
    username: str = "",
    password: str = "",
    modality: str = "",
    body_part: str = "",
    on_start: Callable[[int, int], None] | None = None,
    on_study: Callable[[BatchRecord], None] | None = None,
) -> BatchSummary:
    """Analyze every study of ``source`` (shard ``part`` of ``parts``) not yet done.

    ``on_start(to_do, skipped)`` is called once the studies are listed, ``on_study`` after
    each study is recorded (progress).

    Raises:
        InputError: the source is missing or holds nothing readable.
        ConfigError: a bad shard, database URL or engine option.
        DicomWebError: the DICOMweb source cannot be listed.

    Example:
        >>> with LocalExecutor(workers=2) as pool:  # doctest: +SKIP
        ...     summary = run_batch("incoming/", Path("out"), pool, AnalysisSetup())
        >>> summary.done, summary.failed  # doctest: +SKIP
        (12, 0)
    """
    require_result_libraries(fhir=setup.fhir, dicom_results=setup.dicom_results)
    clock = time.perf_counter()
    models = model_set(discover(list(setup.model_dirs), store=setup.model_store))
    listing = list_source(source, username, password, modality, body_part)
    jobs = shard(listing.jobs, part, parts)
    engine = executor.describe().split(" ", 1)[0]
    db = open_database(db_url or default_db_url(dest))
    try:
        store = ResultStore(dest, db, models, engine)
        finished = store.finished()
        todo = [job for job in jobs if job.study_uid not in finished]
        if on_start:
            on_start(len(todo), len(jobs) - len(todo))
        rejected = list(listing.rejected)
        warnings = list(listing.warnings)
        failures: list[BatchRecord] = []
        done = 0
        for completed in executor.map_unordered(run_study, todo, setup):
            uid = todo[completed.index].study_uid
            value = completed.value
            if isinstance(value, StudyDone) and value.models_key != models.key:
                outcome = store.write_failed(
                    uid,
                    f"worker {value.worker} has other models than the driver ({models.text}); "
                    "install the same radlens and --models on every worker",
                    value.worker,
                )
            elif isinstance(value, StudyDone):
                outcome = store.write_done(value)
                rejected.extend(value.result.rejected)
                warnings.extend(f"{outcome.output}: {note}" for note in value.notes)
                done += 1
            elif isinstance(value, StudyFailed):
                outcome = store.write_failed(uid, value.reason, value.worker, value.duration_s)
            else:
                outcome = store.write_failed(uid, completed.error or "no result")
            if outcome.status != "done":
                failures.append(outcome)
                log.warning("a study failed: %s", outcome.error)
            if on_study:
                on_study(outcome)
        outputs = store.consolidate()
    finally:
        db.close()
    summary = BatchSummary(
        executor.describe(),
        models.text,
        total=len(jobs),
        done=done,
        skipped=len(jobs) - len(todo),
        failed=len(failures),
        elapsed_s=time.perf_counter() - clock,
        rejected=tuple(rejected),
        failures=tuple(failures),
        warnings=tuple(warnings),
        outputs=tuple(str(p) for p in outputs),
    )
    write_atomic(dest / SUMMARY_FILE, (json.dumps(summary.to_dict(), indent=2) + "\n").encode())
    return summary
