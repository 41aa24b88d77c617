"""``radlens deidentify``: exit codes like ``analyze``, one line per held-back input, the key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from typer.testing import Result


def dicom_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.dcm"))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "deid.key"
    path.write_text("a test key that is long enough\n")
    return path


def test_a_clean_ct_is_written_under_a_hashed_name_and_exits_0(
    radlens: Callable[..., Result], pydicom_data_dir: Path, tmp_path: Path, key_file: Path
) -> None:
    result = radlens(
        "deidentify",
        pydicom_data_dir / "693_J2KR.dcm",
        "-o",
        tmp_path / "out",
        "--key-file",
        key_file,
    )
    assert result.exit_code == 0, result.output
    (written,) = dicom_files(tmp_path / "out")
    ds = pydicom.dcmread(written)
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientID.startswith("RL")
    assert "693" not in written.as_posix().removeprefix(str(tmp_path))
    assert "1 files de-identified" in result.stdout and "key: key file" in result.stdout


def test_an_ultrasound_is_quarantined_with_one_line_and_exit_2(
    radlens: Callable[..., Result], pydicom_data_dir: Path, tmp_path: Path, key_file: Path
) -> None:
    us = pydicom_data_dir / "US1_UNCR.dcm"
    result = radlens("deidentify", us, "-o", tmp_path / "out", "--key-file", key_file)
    assert result.exit_code == 2
    assert f"quarantined {us}: burned_in_annotation:" in result.stdout.replace("\n", "")
    assert dicom_files(tmp_path / "out") == []
    assert "Traceback" not in result.output


def test_a_folder_with_good_and_bad_files_writes_the_good_ones_and_exits_2(
    radlens: Callable[..., Result], pydicom_data_dir: Path, tmp_path: Path, key_file: Path
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    for name in ("693_J2KR.dcm", "RG1_UNCR.dcm", "SC_rgb.dcm"):
        shutil.copy(pydicom_data_dir / name, inbox / name)
    (inbox / "junk.dcm").write_bytes(b"not dicom at all")
    result = radlens("deidentify", inbox, "-o", tmp_path / "out", "--key-file", key_file, "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert len(doc["written"]) == 2 and doc["exit_code"] == 2
    assert [q["kind"] for q in doc["quarantined"]] == ["burned_in_annotation"]
    assert [r["path"].endswith("junk.dcm") for r in doc["refused"]] == [True]


def test_the_key_from_the_environment_equals_the_same_key_in_a_file(
    radlens: Callable[..., Result],
    pydicom_data_dir: Path,
    tmp_path: Path,
    key_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = pydicom_data_dir / "693_J2KR.dcm"
    assert (
        radlens("deidentify", source, "-o", tmp_path / "a", "--key-file", key_file).exit_code == 0
    )
    monkeypatch.setenv("RADLENS_DEID_KEY", "a test key that is long enough")
    result = radlens("deidentify", source, "-o", tmp_path / "b")
    assert result.exit_code == 0 and "key: RADLENS_DEID_KEY" in result.stdout
    (a,) = dicom_files(tmp_path / "a")
    (b,) = dicom_files(tmp_path / "b")
    assert a.relative_to(tmp_path / "a") == b.relative_to(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()


def test_without_a_key_a_one_time_key_is_used_and_said_so(
    radlens: Callable[..., Result],
    pydicom_data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RADLENS_DEID_KEY", raising=False)
    result = radlens("deidentify", pydicom_data_dir / "693_J2KR.dcm", "-o", tmp_path / "o")
    assert result.exit_code == 0
    assert "one-time key" in result.stdout.replace("\n", " ")


def test_without_an_option_drops_what_it_would_keep(
    radlens: Callable[..., Result], pydicom_data_dir: Path, tmp_path: Path, key_file: Path
) -> None:
    result = radlens(
        "deidentify",
        pydicom_data_dir / "693_J2KR.dcm",
        "-o",
        tmp_path / "o",
        "--key-file",
        key_file,
        "--without",
        "retain-patient-characteristics",
    )
    assert result.exit_code == 0
    (written,) = dicom_files(tmp_path / "o")
    ds = pydicom.dcmread(written)
    assert not ds.get("PatientSex") and "PatientAge" not in ds
    assert "113108" not in [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]


def test_a_short_key_file_is_refused_with_one_line(
    radlens: Callable[..., Result], pydicom_data_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "short.key").write_text("short")
    result = radlens(
        "deidentify",
        pydicom_data_dir / "693_J2KR.dcm",
        "-o",
        tmp_path / "o",
        "--key-file",
        tmp_path / "short.key",
    )
    assert result.exit_code == 1
    assert "at least 16" in result.stderr and "Traceback" not in result.output


@pytest.mark.shared_data
@pytest.mark.slow
def test_malformed_files_exit_2_without_a_traceback(
    shared_data_dir: Path, tmp_path: Path, key_file: Path
) -> None:
    folder = shared_data_dir / "dicom" / "malformed"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "radlens",
            "deidentify",
            folder,
            "-o",
            tmp_path / "o",
            "--key-file",
            key_file,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert "refused" in output and "quarantined" in output
