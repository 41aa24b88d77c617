from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from radlens.cli.main import app
from radlens.config import Settings, load_settings
from radlens.errors import ConfigError


def test_serve_help_lists_the_settings_flags() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in ("--home", "--db", "--host", "--port", "--dicom-port", "--ae-title", "--no-dicom"):
        assert flag in result.output


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
