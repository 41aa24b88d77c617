from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from radlens.cluster.jobs import ModelSet, StudyDone
from radlens.cluster.results import ResultStore, folder_name
from radlens.domain.findings import Box, Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Study
from radlens.store.batch import batch_records
from radlens.store.db import open_database

MODELS = ModelSet(("cxr@1.0",))


def _done(uid: str, probability: float = 0.8) -> StudyDone:
    box = Box(1, 2, 3, 4)
    finding = Finding("pneumonia", "Pneumonia", probability, 0.5, "cxr", "1.0", "1.2.9", box=box)
    result = StudyResult(uid, (SeriesResult("1.2.8", "CR", "CHEST", 1, ("cxr",), (finding,)),))
    files = (("findings.json", b"{}\n"), ("report.md", b"# report\n"))
    return StudyDone(Study(uid, ()), result, files, (), MODELS.key, "host:1", 0.5)


def test_folder_names_follow_analyze() -> None:
    assert folder_name("1.2.3") == "1.2.3" and folder_name("a/b") == "a_b"


def test_writing_a_study_twice_leaves_one_row_one_part_and_the_same_files(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'r.sqlite'}")
    try:
        store = ResultStore(tmp_path / "out", db, MODELS, "dask")
        store.write_done(_done("1.2.3"))
        store.write_done(_done("1.2.3"))  # a lost worker's task, run again
        findings, studies = store.consolidate()
        assert pq.read_table(findings).column("study_uid").to_pylist() == ["1.2.3"]
        row = pq.read_table(findings).to_pylist()[0]
        assert (row["box_x0"], row["box_y1"], row["positive"]) == (1.0, 4.0, True)
        assert pq.read_table(studies).column("status").to_pylist() == ["done"]
        records = batch_records(db)
        assert [(r.study_uid, r.status, r.attempts, r.n_positive) for r in records] == [
            ("1.2.3", "done", 2, 1)
        ]
        assert (tmp_path / "out" / "1.2.3" / "report.md").read_bytes() == b"# report\n"
        assert store.finished() == {"1.2.3"}
        assert not list((tmp_path / "out").rglob("*.tmp"))
    finally:
        db.close()


def test_a_failure_then_a_success_is_one_done_study(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'r.sqlite'}")
    try:
        store = ResultStore(tmp_path / "out", db, MODELS, "local")
        store.write_failed("1.2.4", "KilledWorker: lost")
        assert store.finished() == set()
        store.write_done(_done("1.2.4"))
        _, studies = store.consolidate()
        assert pq.read_table(studies).column("status").to_pylist() == ["done"]
        assert [(r.status, r.error, r.attempts) for r in batch_records(db)] == [("done", "", 2)]
    finally:
        db.close()


def test_finished_needs_the_study_in_this_output_folder(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'r.sqlite'}")
    try:
        ResultStore(tmp_path / "a", db, MODELS, "local").write_done(_done("1.2.5"))
        assert ResultStore(tmp_path / "b", db, MODELS, "local").finished() == set()
        other_models = ModelSet(("cxr@2.0",))
        assert ResultStore(tmp_path / "a", db, other_models, "local").finished() == set()
    finally:
        db.close()


def test_consolidating_nothing_writes_empty_tables(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'r.sqlite'}")
    try:
        findings, studies = ResultStore(tmp_path / "out", db, MODELS, "local").consolidate()
        assert pq.read_table(findings).num_rows == 0 and pq.read_table(studies).num_rows == 0
    finally:
        db.close()
