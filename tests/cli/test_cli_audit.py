"""``radlens audit verify|list``: the audit trail from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from typer.testing import CliRunner, Result

from radlens.cli.main import app
from radlens.privacy.audit import AuditEvent, AuditTrail
from radlens.store.db import open_database
from radlens.store.drafts import patient_key, patient_secret
from radlens.store.models import AuditRecordRow, StudyRow


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("RADLENS_HOME", "RADLENS_DB", "RADLENS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.fixture
def url(home: Path, database_url: str) -> str:
    """A database with four records: alice and bob viewing studies 1.2.0 .. 1.2.3."""
    db = open_database(database_url)
    key = patient_key(patient_secret(_storage(home)), "PID-7")
    with db.sessions.begin() as session:
        session.add(StudyRow(study_uid="1.2.3", patient_key=key))
    trail = AuditTrail(db, "site")
    for i in range(4):
        trail.record(AuditEvent.STUDY_VIEWED, user_id=("alice", "bob")[i % 2], study_uid=f"1.2.{i}")
    db.close()
    return database_url


def _storage(home: Path) -> Path:
    (home / "storage").mkdir(parents=True, exist_ok=True)
    return home / "storage"


def _audit(home: Path, url: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["audit", *args, "--home", str(home), "--db", url])


def test_verify_an_intact_trail(home: Path, url: str) -> None:
    result = _audit(home, url, "verify")
    assert result.exit_code == 0, result.output
    assert "intact: 4 records" in result.output


def test_verify_names_the_altered_record(home: Path, url: str) -> None:
    db = open_database(url)
    with db.sessions.begin() as session:
        session.execute(
            update(AuditRecordRow)
            .where(AuditRecordRow.number == 3)
            .values(record_json=AuditRecordRow.record_json + " ")
        )
    db.close()
    result = _audit(home, url, "verify")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line == "audit trail tampered: record 3 was altered (hash mismatch)"


def test_verify_names_the_deleted_record(home: Path, url: str) -> None:
    db = open_database(url)
    with db.sessions.begin() as session:
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.number == 2))
    db.close()
    result = _audit(home, url, "verify")
    assert result.exit_code == 1
    assert "record 2 is missing" in result.output


def test_list_by_study_user_and_patient(home: Path, url: str) -> None:
    by_user = _audit(home, url, "list", "--user", "bob")
    assert by_user.exit_code == 0, by_user.output
    assert [line.split("\t")[0] for line in by_user.output.splitlines()] == ["2", "4"]
    by_study = _audit(home, url, "list", "--study", "1.2.2", "--json")
    (line,) = by_study.output.splitlines()
    document = json.loads(line)
    assert document["number"] == 3
    assert document["record"]["EventIdentification"]["EventID"]["csd-code"] == "110110"
    by_patient = _audit(home, url, "list", "--patient", "PID-7")
    (row,) = by_patient.output.splitlines()
    assert row.split("\t")[-1] == "1.2.3"
    assert "PID-7" not in _audit(home, url, "list", "--json").output
