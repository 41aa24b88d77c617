"""dciodvfy (David Clunie's dicom3tools) as an independent check of radlens's DICOM objects.

Debian package ``dicom3tools`` (``.ci/run`` installs it). Where it is missing, a test
that asks for it is skipped with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from radlens.report.equipment import to_bytes


def dciodvfy(dataset: Dataset | bytes, folder: Path, name: str = "object.dcm") -> list[str]:
    """Validate one object against its IOD: fail on any ``Error`` line, return the warnings.

    Warnings are allowed: dciodvfy warns on the private coding scheme ``99RADLENS`` and on
    values the source images carry (see ``docs/dicom-results.md``).
    """
    binary = shutil.which("dciodvfy")
    if binary is None:
        pytest.skip("needs dciodvfy from dicom3tools (apt-get install dicom3tools)")
    path = folder / name
    path.write_bytes(dataset if isinstance(dataset, bytes) else to_bytes(dataset))
    done = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=120)
    lines = (done.stdout + done.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert errors == [], "\n".join(lines)
    return [line for line in lines if line.startswith("Warning")]
