"""``radlens bundle``: flags, errors as one line, ``--verify`` of a bundle folder."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from radlens.cli.main import app
from radlens.edge.bundle import write_manifest

WHEEL = "radlens-0.1.0-py3-none-any.whl"


def _bundle(folder: Path) -> Path:
    folder.mkdir()
    (folder / WHEEL).write_bytes(b"stand-in radlens wheel")
    (folder / "numpy-2.3.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"numpy")
    write_manifest(folder, WHEEL, ("serve", "demo"), ("tiny_cxr 0.0.1",), True, True)
    return folder


def test_bundle_help_names_the_output_and_the_offline_install() -> None:
    result = CliRunner().invoke(app, ["bundle", "--help"])
    assert result.exit_code == 0
    for flag in ("--output", "--extra", "--source", "--no-web", "--verify", "--latest"):
        assert flag in result.output


def test_bundle_into_a_used_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "old.whl").write_bytes(b"")
    result = CliRunner().invoke(app, ["bundle", "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert "not empty" in result.output and "Traceback" not in result.output


def test_bundle_verify_checks_every_file_against_the_manifest(tmp_path: Path) -> None:
    folder = _bundle(tmp_path / "b")
    result = CliRunner().invoke(app, ["bundle", "--verify", "-o", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert (doc["wheels"], doc["models"], doc["extras"]) == (
        2,
        ["tiny_cxr 0.0.1"],
        ["serve", "demo"],
    )
    assert "--no-compile --no-index --find-links" in doc["install"]
    (folder / WHEEL).write_bytes(b"changed")
    result = CliRunner().invoke(app, ["bundle", "--verify", "-o", str(folder)])
    assert result.exit_code == 1
    assert "differs from the manifest" in result.output
