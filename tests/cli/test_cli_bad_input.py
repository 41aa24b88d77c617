"""Bad input through the real ``radlens`` command: typed one-line errors, exit 2, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RADLENS = [sys.executable, "-m", "radlens"]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RADLENS, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def malformed_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "dicom" / "malformed").glob("*.dcm"))


@pytest.mark.shared_data
@pytest.mark.slow
def test_every_malformed_file_is_rejected_with_exit_2_and_no_traceback(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    # Files the manifest notes as decodable (bad sequence, bad meta) are analyzed, and an
    # RT plan without file meta is read with force and a warning (like OT-PAL-8-face): exit 0.
    decodable = {"CT_bad_sequence_UN.dcm", "CT_bad_file_meta.dcm", "explicitLE_no_meta.dcm"}
    for path in malformed_files(shared_data_dir):
        result = run_cli("analyze", path, "-o", tmp_path / path.stem, "-q")
        output = result.stdout + result.stderr
        assert "Traceback" not in output, path.name
        if path.name in decodable:
            assert result.returncode == 0, (path.name, output)
        else:
            assert result.returncode == 2, (path.name, output)
            assert path.name in output.replace("\n", ""), (path.name, output)


def test_too_short_pixel_data_from_pydicom_data_exits_2(
    pydicom_data_dir: Path, tmp_path: Path
) -> None:
    bad = pydicom_data_dir / "emri_small_jpeg_2k_lossless_too_short.dcm"
    result = run_cli("analyze", bad, "-o", tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "pixel_data" in result.stderr and bad.name in result.stderr.replace("\n", "")


def test_folder_with_good_and_junk_file_analyzes_the_good_one_and_exits_2(
    pydicom_data_dir: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(
        pydicom_data_dir / "MR_small_jpeg_2k_lossless.dcm"
        if (pydicom_data_dir / "MR_small_jpeg_2k_lossless.dcm").exists()
        else pydicom_data_dir / "emri_small.dcm",
        inbox / "good.dcm",
    )
    (inbox / "junk.dcm").write_bytes(b"this is not DICOM" * 20)
    result = run_cli("analyze", inbox, "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "junk.dcm" in result.stdout.replace("\n", "")
    assert len(list((tmp_path / "out").glob("*/findings.json"))) == 1


def test_empty_folder_and_unreadable_zip_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("analyze", empty, "-o", tmp_path / "o1")
    assert result.returncode == 2 and "empty_input" in result.stderr
    bad_zip = tmp_path / "study.zip"
    bad_zip.write_bytes(b"PK\x03\x04 truncated")
    result = run_cli("analyze", bad_zip, "-o", tmp_path / "o2")
    assert result.returncode == 2 and "unreadable_archive" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_meta_is_read_with_a_warning(pydicom_data_dir: Path, tmp_path: Path) -> None:
    result = run_cli("analyze", pydicom_data_dir / "OT-PAL-8-face.dcm", "-o", tmp_path)
    assert result.returncode == 0
    assert "no DICOM file meta" in result.stdout.replace("\n", " ")
