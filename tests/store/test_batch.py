from __future__ import annotations

import pytest

from radlens.store.batch import BatchRecord, batch_records, finished_studies, record
from radlens.store.db import Database


def test_recording_a_study_twice_updates_its_row(db: Database) -> None:
    record(db, BatchRecord("1.2.3", "k1", "cxr@1", "failed", error="KilledWorker"))
    record(db, BatchRecord("1.2.3", "k1", "cxr@1", n_findings=2, worker="h:7"))
    record(db, BatchRecord("1.2.3", "k2", "cxr@2"))
    rows = batch_records(db)
    assert [(r.models_key, r.status, r.attempts, r.error) for r in rows] == [
        ("k1", "done", 2, ""),
        ("k2", "done", 1, ""),
    ]
    assert rows[0].n_findings == 2 and rows[0].finished_at is not None
    assert [r.models_key for r in batch_records(db, "k2")] == ["k2"]


def test_only_done_studies_of_the_same_models_are_finished(db: Database) -> None:
    record(db, BatchRecord("1.2.3", "k1", "cxr@1"))
    record(db, BatchRecord("1.2.4", "k1", "cxr@1", "failed", error="bad"))
    record(db, BatchRecord("1.2.5", "k2", "cxr@2"))
    assert finished_studies(db, "k1") == {"1.2.3"}


def test_a_record_has_a_known_status() -> None:
    with pytest.raises(ValueError, match="status"):
        BatchRecord("1.2.3", "k", "m", "running")
