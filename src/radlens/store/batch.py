"""The ``batch_results`` table: what ``radlens batch`` finished, keyed by study and models.

:func:`record` writes one study's outcome idempotently: the row of (study UID, models
key) is inserted or updated, never duplicated, so a study the Dask scheduler ran twice
(its first worker was lost) or a rerun leaves one row. :func:`finished_studies` is what a
rerun skips. See ``radlens.cluster.batch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from radlens.store.db import Database
from radlens.store.models import BatchResultRow, utcnow

DONE, FAILED = "done", "failed"


@dataclass(frozen=True)
class BatchRecord:
    """One study's outcome in a batch run (no patient data).

    Attributes:
        study_uid: Study Instance UID.
        models_key: short hash of ``models`` (:func:`radlens.cluster.jobs.model_set`).
        models: the model set, ``name@version`` joined by ``,``.
        status: ``done`` or ``failed``.
        output: the study's output folder, relative to the run's output folder.
        error: why it failed ("" when done).
        attempts: how many times a result was recorded for this key (reruns of failures).
    """

    study_uid: str
    models_key: str
    models: str
    status: str = DONE
    n_series: int = 0
    n_findings: int = 0
    n_positive: int = 0
    priority: str = ""
    output: str = ""
    error: str = ""
    engine: str = ""
    worker: str = ""
    duration_s: float = 0.0
    attempts: int = 1
    finished_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.status not in (DONE, FAILED):
            raise ValueError(f"status must be {DONE!r} or {FAILED!r}, got {self.status!r}")


_FIELDS = (
    "models",
    "status",
    "n_series",
    "n_findings",
    "n_positive",
    "priority",
    "output",
    "error",
    "engine",
    "worker",
    "duration_s",
)


def record(db: Database, outcome: BatchRecord) -> None:
    """Insert or update the row of ``(outcome.study_uid, outcome.models_key)``.

    Example:
        >>> record(db, BatchRecord("1.2.3", "ab12cd34ef56ab78", "cxr@1.0"))  # doctest: +SKIP
    """
    for _ in range(2):  # a concurrent insert of the same key: update it on the second go
        try:
            with db.sessions.begin() as session:
                row = session.get(BatchResultRow, (outcome.study_uid, outcome.models_key))
                if row is None:
                    row = BatchResultRow(
                        study_uid=outcome.study_uid, models_key=outcome.models_key, attempts=0
                    )
                    session.add(row)
                for name in _FIELDS:
                    setattr(row, name, getattr(outcome, name))
                row.error = outcome.error[:2000]
                row.attempts = (row.attempts or 0) + 1
                row.finished_at = utcnow()
            return
        except IntegrityError:
            continue


def finished_studies(db: Database, models_key: str) -> set[str]:
    """UIDs of the studies done with the model set ``models_key`` (what a rerun skips)."""
    with db.sessions() as session:
        return set(
            session.scalars(
                select(BatchResultRow.study_uid).where(
                    BatchResultRow.models_key == models_key, BatchResultRow.status == DONE
                )
            )
        )


def batch_records(db: Database, models_key: str | None = None) -> list[BatchRecord]:
    """Every recorded study (of one model set when ``models_key`` is given), by UID."""
    query = select(BatchResultRow).order_by(BatchResultRow.study_uid, BatchResultRow.models_key)
    if models_key is not None:
        query = query.where(BatchResultRow.models_key == models_key)
    with db.sessions() as session:
        return [
            BatchRecord(
                row.study_uid,
                row.models_key,
                **{name: getattr(row, name) for name in _FIELDS},
                attempts=row.attempts,
                finished_at=row.finished_at,
            )
            for row in session.scalars(query)
        ]
