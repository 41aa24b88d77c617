"""``radlens.report``: DICOM and FHIR results need ``radlens[reports]``; asked for without
it, analyze and batch stop before reading a study, with the command that installs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from radlens.errors import ConfigError
from radlens.report import REPORTS_EXTRA, require_result_libraries

# Runs radlens in a child whose import system cannot find the named packages, as on a base
# install (this environment has them, as the serve and cluster extras bring them).
WITHOUT = """
import importlib.abc, sys
blocked = set(sys.argv[1].split(","))
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Missing())
from radlens.cli.main import app
sys.argv = ["radlens", *sys.argv[2:]]
app()
"""


def run_without(blocked: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", WITHOUT, blocked, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_nothing_is_required_for_the_text_draft_and_findings() -> None:
    require_result_libraries()
    require_result_libraries(fhir=True, dicom_results=True)  # installed here


def test_analyze_with_fhir_on_a_base_install_says_what_to_install(tmp_path: Path) -> None:
    done = run_without("fhir", "analyze", tmp_path, "-o", tmp_path / "out", "--fhir")
    assert done.returncode != 0
    assert "--fhir needs fhir.resources" in done.stderr and REPORTS_EXTRA in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_dicom_results_and_fhir_name_both_missing_libraries(tmp_path: Path) -> None:
    done = run_without(
        "fhir,highdicom", "analyze", tmp_path, "-o", tmp_path / "out", "--fhir", "--dicom-results"
    )
    assert done.returncode != 0
    assert "--fhir and --dicom-results needs fhir.resources, highdicom" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_base_install_still_analyzes_without_result_options(tmp_path: Path) -> None:
    from radlens.analyze import demo_inputs  # pydicom-data: a dev dependency

    sample = next(p for p in demo_inputs() if p.name == "RG1_J2KR.dcm")  # CR chest
    done = run_without("fhir,highdicom", "analyze", sample, "-o", tmp_path / "out", "-q")
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "out").rglob("findings.json"))
    assert not list((tmp_path / "out").rglob("*.dcm"))


def test_the_error_is_a_config_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import radlens.report as report

    monkeypatch.setattr(report, "_installed", lambda module: module != "highdicom")
    with pytest.raises(ConfigError, match=r"--dicom-results needs highdicom.*radlens\[reports\]"):
        require_result_libraries(fhir=True, dicom_results=True)
