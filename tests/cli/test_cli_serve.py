"""``radlens serve``: flags, settings precedence, and a real server on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from radlens.cli.main import app
from radlens.config import Settings, load_settings
from radlens.errors import ConfigError, DicomWebError
from radlens.net.dicomweb import DicomWebClient
from radlens.privacy.crypto import KeyRing, write_key_file
from radlens.store.accounts import add_user
from radlens.store.db import open_database
from radlens.store.models import JobRow, JobState, StudyRow, StudyStatus
from serve_helpers import free_port, make_instance, stop_server


def test_serve_help_lists_the_settings_flags() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in ("--home", "--db", "--host", "--port", "--dicom-port", "--ae-title", "--no-dicom"):
        assert flag in result.output


def test_serve_in_production_without_an_admin_refuses_to_start_and_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "radlens.keys"  # production also needs its encryption key
    write_key_file(key_file, KeyRing.generate())
    monkeypatch.setenv("RADLENS_KEY_FILE", str(key_file))
    result = CliRunner().invoke(
        app, ["serve", "--home", str(tmp_path), "--production", "--no-dicom", "--port", "0"]
    )
    assert result.exit_code == 1, result.output
    assert "radlens users add NAME --role admin" in result.output
    assert not (tmp_path / "initial-admin-password").exists()


def test_serve_refuses_invalid_settings_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--home", str(tmp_path), "--ae-title", "A" * 17, "--no-dicom"]
    )
    assert result.exit_code == 1
    assert "invalid settings" in result.output and "ae_title" in result.output


def test_settings_precedence_defaults_toml_env_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RADLENS_DICOM_PORT", raising=False)
    monkeypatch.setenv("RADLENS_HOME", str(tmp_path))
    defaults = load_settings()
    assert (defaults.host, defaults.dicom_port, defaults.ae_title) == (
        "127.0.0.1",
        11112,
        "RADLENS",
    )
    assert defaults.database_url == f"sqlite:///{tmp_path / 'radlens.sqlite'}"
    (tmp_path / "radlens.toml").write_text('dicom_port = 4000\nae_title = "TOML"\nport = 9000\n')
    assert (load_settings().dicom_port, load_settings().ae_title) == (4000, "TOML")
    monkeypatch.setenv("RADLENS_DICOM_PORT", "5000")
    assert load_settings().dicom_port == 5000 and load_settings().port == 9000
    assert load_settings(dicom_port=6000, port=None).dicom_port == 6000
    assert Settings(home=tmp_path).storage_dir == tmp_path / "storage"


def test_missing_explicit_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(config_file=tmp_path / "nope.toml")


def _serve(home: Path, database_url: str, http_port: int) -> subprocess.Popen[bytes]:
    """``radlens serve --db URL`` as a subprocess, once ``/readyz`` answers 200."""
    radlens = Path(sys.executable).with_name("radlens")
    with (home / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [str(radlens), "serve", "--home", str(home), "--db", database_url]
            + ["--port", str(http_port), "--no-dicom", "--quiet-period", "0.2"],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    process.wait(10)
    log_tail = (home / "server.log").read_text(errors="replace")[-2000:]
    raise AssertionError(f"radlens serve did not become ready:\n{log_tail}")


@pytest.mark.integration
def test_serve_stores_and_analyzes_into_the_database_named_by_db(
    tmp_path: Path, database_url: str
) -> None:
    home, port, study_uid = tmp_path / "home", free_port(), "1.2.826.0.1.3680043.9.7777.9"
    home.mkdir()
    server = _serve(home, database_url, port)
    try:
        sender = open_database(database_url, migrate=False)
        add_user(sender, "modality", "sender-password-1", "technologist")
        sender.close()
        # a sender authenticates with HTTP Basic (wrong credentials are refused)
        wrong = DicomWebClient(f"http://127.0.0.1:{port}/dicomweb", "modality", "not-a-password")
        with pytest.raises(DicomWebError, match="401"):
            wrong.store_instances([make_instance(study_uid, f"{study_uid}.1")])
        wrong.close()
        stow = DicomWebClient(f"http://127.0.0.1:{port}/dicomweb", "modality", "sender-password-1")
        stow.store_instances([make_instance(study_uid, f"{study_uid}.1")])
        stow.close()
        db = open_database(database_url, migrate=False)
        deadline, status = time.monotonic() + 30, None
        while status != StudyStatus.READY and time.monotonic() < deadline:
            time.sleep(0.1)
            with db.sessions() as session:
                status = session.scalar(
                    select(StudyRow.status).where(StudyRow.study_uid == study_uid)
                )
        with db.sessions() as session:
            jobs = session.scalars(select(JobRow.state).where(JobRow.study_uid == study_uid))
            states = list(jobs)
        db.close()
    finally:
        exit_code = stop_server(server)
        assert exit_code is not None, "radlens serve did not stop within 20 s of SIGTERM"
    assert status == StudyStatus.READY and states == [JobState.DONE]
    # SIGTERM shuts it down cleanly (uvicorn re-raises the signal once it has finished).
    assert exit_code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in (home / "server.log").read_text(errors="replace")
    assert not (home / "radlens.sqlite").exists()  # --db, not the default under --home
