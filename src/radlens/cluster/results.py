"""Where a batch writes, idempotently, keyed by study UID and model set.

Layout under the output folder ``DEST``::

    DEST/<study>/                       what `radlens analyze` writes for the study
    DEST/results/<models_key>/findings/<study>.parquet   one row per finding (a part)
    DEST/results/<models_key>/studies/<study>.parquet    one row for the study (a part)
    DEST/findings.parquet, DEST/studies.parquet          all parts of the run, consolidated
    DEST/radlens-batch.sqlite                           the database (or --db URL)

Every file is written to a temporary name in its folder and renamed over the old one, so
a reader never sees half a file, and writing a study twice (its worker was lost after the
task finished, or a rerun) replaces the same files. The database row
(``store.batch``, one per study and model set) is written last: it is what a rerun
trusts, together with the study's part in this ``DEST``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from radlens.cluster.jobs import ModelSet, StudyDone
from radlens.domain.findings import finding_id
from radlens.store.batch import DONE, FAILED, BatchRecord, finished_studies, record
from radlens.store.db import Database

FINDINGS_SCHEMA = pa.schema(
    [
        ("study_uid", pa.string()),
        ("series_uid", pa.string()),
        ("sop_instance_uid", pa.string()),
        ("frame", pa.int32()),
        ("finding_id", pa.string()),
        ("code", pa.string()),
        ("label", pa.string()),
        ("probability", pa.float64()),
        ("threshold", pa.float64()),
        ("positive", pa.bool_()),
        ("grade", pa.int32()),
        ("grade_label", pa.string()),
        ("box_x0", pa.float64()),
        ("box_y0", pa.float64()),
        ("box_x1", pa.float64()),
        ("box_y1", pa.float64()),
        ("ood_score", pa.float64()),
        ("ood_flag", pa.bool_()),
        ("warnings", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("models_key", pa.string()),
    ]
)
STUDIES_SCHEMA = pa.schema(
    [
        ("study_uid", pa.string()),
        ("models_key", pa.string()),
        ("models", pa.string()),
        ("status", pa.string()),
        ("n_series", pa.int32()),
        ("n_findings", pa.int32()),
        ("n_positive", pa.int32()),
        ("priority", pa.string()),
        ("output", pa.string()),
        ("error", pa.string()),
        ("engine", pa.string()),
        ("worker", pa.string()),
        ("duration_s", pa.float64()),
    ]
)
TIMING_COLUMNS = ("worker", "duration_s", "engine")
"""Columns that differ between two runs of the same batch (who ran it, how long)."""


def folder_name(study_uid: str) -> str:
    """The study's output folder name, as ``radlens analyze`` names it."""
    return re.sub(r"[^0-9A-Za-z._-]", "_", study_uid)[-64:] or "study"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(data)
    temp.replace(path)


def _write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, temp)
    temp.replace(path)


def finding_rows(done: StudyDone, models_key: str) -> list[dict[str, Any]]:
    """One row per finding of ``done`` (the Parquet ``findings`` table)."""
    rows = []
    for series in done.result.series:
        for f in series.findings:
            box = f.box
            rows.append(
                {
                    "study_uid": done.result.study_instance_uid,
                    "series_uid": series.series_instance_uid,
                    "sop_instance_uid": f.sop_instance_uid,
                    "frame": f.frame,
                    "finding_id": finding_id(series.series_instance_uid, f),
                    "code": f.code,
                    "label": f.label,
                    "probability": f.probability,
                    "threshold": f.threshold,
                    "positive": f.positive,
                    "grade": f.grade,
                    "grade_label": f.grade_label,
                    "box_x0": box.x0 if box else None,
                    "box_y0": box.y0 if box else None,
                    "box_x1": box.x1 if box else None,
                    "box_y1": box.y1 if box else None,
                    "ood_score": f.ood_score,
                    "ood_flag": f.ood_flag,
                    "warnings": "\n".join(f.warnings),
                    "model_name": f.model_name,
                    "model_version": f.model_version,
                    "models_key": models_key,
                }
            )
    return rows


class ResultStore:
    """The output folder ``dest`` and the database ``db`` of runs with ``models``."""

    def __init__(self, dest: Path, db: Database, models: ModelSet, engine: str) -> None:
        self.dest = dest
        self.db = db
        self.models = models
        self.engine = engine
        self.parts = dest / "results" / models.key
        dest.mkdir(parents=True, exist_ok=True)

    def _part(self, table: str, study_uid: str) -> Path:
        return self.parts / table / f"{folder_name(study_uid)}.parquet"

    def finished(self) -> set[str]:
        """Studies done with these models whose results are in this output folder."""
        done = finished_studies(self.db, self.models.key)
        return {uid for uid in done if self._part("studies", uid).is_file()}

    def write_done(self, done: StudyDone) -> BatchRecord:
        """Write a finished study: its folder, its Parquet parts, then its row."""
        uid = done.result.study_instance_uid
        folder = self.dest / folder_name(uid)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in done.files:
            write_atomic(folder / name, data)
        rows = finding_rows(done, self.models.key)
        _write_table(
            self._part("findings", uid), pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA)
        )
        findings = done.result.findings
        outcome = BatchRecord(
            uid,
            self.models.key,
            self.models.text,
            DONE,
            n_series=len(done.result.series),
            n_findings=len(findings),
            n_positive=sum(f.positive for f in findings),
            priority=done.result.priority.name.lower(),
            output=folder.name,
            engine=self.engine,
            worker=done.worker,
            duration_s=done.duration_s,
        )
        self._finish(outcome)
        return outcome

    def write_failed(
        self, study_uid: str, reason: str, worker: str = "", duration_s: float = 0.0
    ) -> BatchRecord:
        """Record a study that could not be analyzed (a rerun tries it again)."""
        outcome = BatchRecord(
            study_uid,
            self.models.key,
            self.models.text,
            FAILED,
            error=reason,
            engine=self.engine,
            worker=worker,
            duration_s=duration_s,
        )
        self._part("findings", study_uid).unlink(missing_ok=True)
        self._finish(outcome)
        return outcome

    def _finish(self, outcome: BatchRecord) -> None:
        row = {name: getattr(outcome, name) for name in STUDIES_SCHEMA.names}
        _write_table(
            self._part("studies", outcome.study_uid),
            pa.Table.from_pylist([row], schema=STUDIES_SCHEMA),
        )
        record(self.db, outcome)

    def consolidate(self) -> tuple[Path, Path]:
        """Write ``findings.parquet`` and ``studies.parquet``: every part of this model
        set in ``dest``, sorted; return their paths."""
        written = []
        for table, schema, order in (
            ("findings", FINDINGS_SCHEMA, ["study_uid", "series_uid", "finding_id"]),
            ("studies", STUDIES_SCHEMA, ["study_uid"]),
        ):
            parts = sorted((self.parts / table).glob("*.parquet"))
            tables = [pq.read_table(p, schema=schema) for p in parts]
            whole = pa.concat_tables(tables) if tables else schema.empty_table()
            whole = whole.sort_by([(column, "ascending") for column in order])
            path = self.dest / f"{table}.parquet"
            _write_table(path, whole)
            written.append(path)
        return written[0], written[1]
