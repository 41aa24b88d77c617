"""Encrypted columns (``store.encrypted``) and key rotation (``store.keys``), on SQLite and
PostgreSQL: what the database holds is sealed, old data stays readable, rotation reseals."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from radlens.errors import ConfigError
from radlens.privacy.crypto import DecryptionError, KeyRing, write_key_file
from radlens.store.db import Database, _alembic_config, make_engine, open_database
from radlens.store.drafts import save_notes
from radlens.store.files import read_stored
from radlens.store.intake import Intake
from radlens.store.keys import (
    ENCRYPTED_COLUMNS,
    PLAINTEXT,
    key_usage,
    model_columns,
    retire,
    rewrap,
    rotate,
    seal_plaintext_rows,
)
from radlens.store.models import StudyRow
from serve_helpers import dated_instance

NOTES = "Doe^Jane, born 19710203, ID RLPID-4711"


def _raw(db: Database, column: str) -> str:
    with db.engine.connect() as connection:
        return str(connection.execute(text(f"SELECT {column} FROM studies")).scalar_one())


def _study(intake: Intake, uid: str = "1.2.3") -> str:
    intake.receive(dated_instance(uid, "RLPID-4711", "20240101"), "test")
    return uid


def test_encrypted_columns_are_every_column_of_an_encrypting_type() -> None:
    assert {(c.table, c.column) for c in ENCRYPTED_COLUMNS} == model_columns()


def test_columns_hold_sealed_values_and_read_back_plain(db: Database, intake: Intake) -> None:
    uid = _study(intake)
    save_notes(db, uid, NOTES, "reader")
    with db.sessions.begin() as session:
        row = session.get(StudyRow, uid)
        assert row is not None
        row.result = {"series": [], "note": NOTES}
        row.report_text = NOTES
    for column in ("notes_text", "result", "report_text"):
        raw = _raw(db, column)
        assert raw.startswith(f"rl1:{db.keys.primary}:") and "Doe" not in raw  # type: ignore[union-attr]
    with db.sessions() as session:
        row = session.get(StudyRow, uid)
        assert row is not None
        assert (row.notes_text, row.report_text, row.result) == (
            NOTES,
            NOTES,
            {"series": [], "note": NOTES},
        )


def test_a_value_moved_to_another_column_does_not_open(db: Database, intake: Intake) -> None:
    uid = _study(intake)
    save_notes(db, uid, NOTES, "reader")
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE studies SET report_text = notes_text"))
    with db.sessions() as session, pytest.raises(DecryptionError):
        session.get(StudyRow, uid)


def test_plaintext_rows_are_read_and_sealed_at_start(db: Database, intake: Intake) -> None:
    uid = _study(intake)
    with db.engine.begin() as connection:  # as written before migration 0007
        connection.execute(
            text("UPDATE studies SET notes_text = :n, result = :r"),
            {"n": NOTES, "r": '{"series": []}'},
        )
    with db.sessions() as session:
        row = session.get(StudyRow, uid)
        assert row is not None and row.notes_text == NOTES and row.result == {"series": []}
    assert key_usage(db, intake.storage_dir).rows[PLAINTEXT] == 2
    assert db.keys is not None and seal_plaintext_rows(db, db.keys) == 2
    assert _raw(db, "notes_text").startswith("rl1:")
    assert seal_plaintext_rows(db, db.keys) == 0


def test_rotate_reseals_rows_and_files_and_retire_drops_the_old_key(
    database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys" / "radlens.keys"
    write_key_file(key_file, KeyRing.generate(key_file))
    from radlens.privacy.crypto import read_key_file

    ring = read_key_file(key_file)
    db = open_database(database_url, keys=ring)
    try:
        intake = Intake(db, tmp_path / "storage")
        uid = _study(intake)
        save_notes(db, uid, NOTES, "reader")
        (tmp_path / "storage" / "legacy").mkdir()
        legacy = tmp_path / "storage" / "legacy" / "old.dcm"
        legacy.write_bytes(b"stored before encryption: Doe^Jane")
        usage = key_usage(db, intake.storage_dir)
        assert usage.rows[ring.primary] == 1 and usage.files == {ring.primary: 1, PLAINTEXT: 1}
        with pytest.raises(ConfigError, match="rewrap"):
            retire(db, intake.storage_dir, ring)

        rotated, done = rotate(db, intake.storage_dir, ring)
        assert (done.rows, done.files) == (1, 2)
        assert read_key_file(key_file).primary == rotated.primary != ring.primary
        assert b"Doe" not in legacy.read_bytes()
        assert read_stored(intake.storage_dir, legacy, rotated).endswith(b"Doe^Jane")
        assert rewrap(db, intake.storage_dir, rotated) == type(done)(0, 0)  # idempotent
        usage = key_usage(db, intake.storage_dir)
        assert set(usage.rows) == set(usage.files) == {rotated.primary}

        kept, retired = retire(db, intake.storage_dir, rotated)
        assert retired == [ring.primary] and set(read_key_file(key_file).keys) == {kept.primary}
    finally:
        db.close()
    reopened = open_database(database_url, keys=read_key_file(key_file))
    try:
        with reopened.sessions() as session:
            row = session.get(StudyRow, uid)
            assert row is not None and row.notes_text == NOTES
    finally:
        reopened.close()


def test_rotate_needs_a_key_file(db: Database, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key file"):
        rotate(db, tmp_path, KeyRing.generate())


def test_migration_0007_keeps_existing_rows_readable(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0006")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO studies (study_uid, status, received_at, last_instance_at, "
                    "n_instances, result, report_text, report_updated_by, signed_by, notes_text,"
                    " notes_updated_by) VALUES ('1.2', 'ready', '2024-01-01', '2024-01-01', 1,"
                    " :r, '', '', '', :n, '')"
                ),
                {"r": '{"series": [], "n": 1}', "n": NOTES},
            )
            connection.execute(
                text(
                    "INSERT INTO series (series_uid, study_uid, modality, body_part) "
                    "VALUES ('1.2.1', '1.2', 'CT', '')"
                )
            )
    finally:
        engine.dispose()
    ring = KeyRing.generate()
    db = open_database(database_url, keys=ring)
    try:
        with db.sessions() as session:
            row = session.get(StudyRow, "1.2")
            assert row is not None and row.result == {"series": [], "n": 1}
            assert row.notes_text == NOTES
        assert seal_plaintext_rows(db, ring) == 2
        with db.sessions() as session:
            row = session.get(StudyRow, "1.2")
            assert row is not None and row.result == {"series": [], "n": 1}
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM series")).scalar_one() == 1
    finally:
        db.close()
