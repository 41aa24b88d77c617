from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from radlens.errors import InputError, NotDicomError
from radlens.store.db import Database
from radlens.store.files import read_stored
from radlens.store.intake import Intake
from radlens.store.models import InstanceRow, SeriesRow, StudyRow, StudyStatus
from serve_helpers import make_instance


def _count(db: Database, model: type) -> int:
    with db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_receive_stores_file_and_rows_before_returning(intake: Intake, db: Database) -> None:
    raw = make_instance("1.2.3.4", "1.2.3.4.1.1")
    received = intake.receive(raw, "test")
    assert not received.duplicate
    stored = received.path.read_bytes()
    assert stored.startswith(b"RLENC01\n") and raw[132:] not in stored  # sealed on disk
    assert read_stored(intake.storage_dir, received.path, db.keys) == raw
    assert received.path.name.startswith(received.path.parent.parent.name)
    with db.sessions() as session:
        row = session.get(InstanceRow, "1.2.3.4.1.1")
        study = session.get(StudyRow, "1.2.3.4")
        series = session.get(SeriesRow, "1.2.3.4.1")
    assert row is not None and row.sha256 == received.sha256 and row.source == "test"
    assert study is not None and study.status == StudyStatus.RECEIVED and study.n_instances == 1
    assert series is not None and series.modality == "CT"


def test_receive_recognizes_duplicates_and_stores_once(intake: Intake, db: Database) -> None:
    raw = make_instance("1.2.3.4", "1.2.3.4.1.1")
    intake.receive(raw, "a")
    again = intake.receive(raw, "b")
    assert again.duplicate and not again.conflict
    changed = intake.receive(make_instance("1.2.3.4", "1.2.3.4.1.1", "1.2.3.4.9"), "c")
    assert changed.duplicate and changed.conflict
    assert _count(db, InstanceRow) == 1
    kept = intake.receive(raw, "d").path
    assert read_stored(intake.storage_dir, kept, db.keys) == raw  # the first copy is kept


def test_receive_from_many_threads_stores_each_instance_once(intake: Intake, db: Database) -> None:
    raws = [make_instance("1.2.5", f"1.2.5.1.{i}") for i in range(12)]
    errors: list[BaseException] = []

    def send(items: list[bytes]) -> None:
        try:
            for raw in items:
                intake.receive(raw, "t")
        except BaseException as exc:  # pragma: no cover - shown by the assert
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(raws,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _count(db, InstanceRow) == 12
    with db.sessions() as session:
        study = session.get(StudyRow, "1.2.5")
    assert study is not None and study.n_instances == 12


@pytest.mark.parametrize(
    "raw",
    [b"", b"garbage" * 50, b"\x00" * 128 + b"DICM" + b"\xff" * 64],
    ids=["empty", "junk", "dicm"],
)
def test_receive_refuses_malformed_bytes_with_a_typed_error(
    intake: Intake, db: Database, raw: bytes
) -> None:
    with pytest.raises(InputError):
        intake.receive(raw, "t")
    assert _count(db, InstanceRow) == 0


def test_receive_refuses_invalid_uids_without_touching_the_disk(
    intake: Intake, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="not a valid DICOM UID"):
        intake.receive(make_instance("1.2.3", "../../evil"), "t")
    assert not (tmp_path / "storage").exists() or not any((tmp_path / "storage").rglob("*"))


def test_receive_refuses_a_cut_file(intake: Intake) -> None:
    raw = make_instance("1.2.3", "1.2.3.1")
    with pytest.raises(InputError) as caught:
        intake.receive(raw[: len(raw) // 2], "t")
    assert not isinstance(caught.value, NotDicomError) or caught.value.reason


def test_new_instance_reopens_an_analyzed_study(intake: Intake, db: Database) -> None:
    intake.receive(make_instance("1.2.7", "1.2.7.1"), "t")
    with db.sessions.begin() as session:
        study = session.get(StudyRow, "1.2.7")
        assert study is not None
        study.status = StudyStatus.READY
    intake.receive(make_instance("1.2.7", "1.2.7.2"), "t")
    with db.sessions() as session:
        study = session.get(StudyRow, "1.2.7")
    assert study is not None and study.status == StudyStatus.RECEIVED and study.n_instances == 2
