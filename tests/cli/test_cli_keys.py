"""``radlens keys status|rotate|rewrap|retire`` from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from radlens.cli.main import app
from radlens.privacy.crypto import read_key_file
from radlens.store.db import open_database
from radlens.store.drafts import save_notes
from radlens.store.intake import Intake
from serve_helpers import make_instance


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("RADLENS_HOME", "RADLENS_DB", "RADLENS_CONFIG_FILE", "RADLENS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("RADLENS_ENCRYPTION_KEY", raising=False)
    return tmp_path / "home"


def _keys(home: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["keys", *args, "--home", str(home)])


def test_status_rotate_rewrap_and_retire(home: Path) -> None:
    first = _keys(home, "status")  # the embedded default makes the key ring
    assert first.exit_code == 0, first.output
    key_file = home / "keys" / "radlens.keys"
    old = read_key_file(key_file)
    assert first.output.split("\t")[:2] == [old.primary, "primary"]
    db = open_database(f"sqlite:///{home / 'radlens.sqlite'}", keys=old)
    Intake(db, home / "storage").receive(make_instance("1.2.3", "1.2.3.1"), "test")
    save_notes(db, "1.2.3", "Doe^Jane", "reader")
    db.close()
    status = _keys(home, "status")
    assert f"{old.primary}\tprimary\t1 values\t1 files" in status.output

    rotated = _keys(home, "rotate")
    assert rotated.exit_code == 0, rotated.output
    new = read_key_file(key_file)
    assert new.primary != old.primary and old.primary in new.keys
    assert "1 values and 1 files" in " ".join(rotated.output.split())
    status = _keys(home, "status").output
    assert f"{new.primary}\tprimary\t1 values\t1 files" in status
    assert f"{old.primary}\tin ring\t0 values\t0 files" in status
    assert "0 values and 0 files" in " ".join(_keys(home, "rewrap").output.split())

    retired = _keys(home, "retire")
    assert retired.exit_code == 0, retired.output
    assert set(read_key_file(key_file).keys) == {new.primary}


def test_production_refuses_without_a_configured_key(home: Path) -> None:
    result = CliRunner().invoke(
        app, ["keys", "status", "--home", str(home)], env={"RADLENS_PRODUCTION": "true"}
    )
    assert result.exit_code == 1
    assert "no encryption key configured" in result.output
    assert not (home / "keys").exists()
