"""Every benchmark script answers ``--help`` with its usage and measures or writes nothing.

A script that ignored its arguments would run in full on ``--help`` and overwrite its
committed results with a run made on whatever machine asked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench_helpers import BENCHMARKS

# Runs in its own environment with medspaCy (docs/nlp.md), which radlens does not install.
OTHER_ENVIRONMENT = {"compare_nlp_medspacy.py"}
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name not in OTHER_ENVIRONMENT)


def _outputs() -> dict[Path, int]:
    """Every result file under benchmarks/ and when it last changed (bytecode aside)."""
    return {
        p: p.stat().st_mtime_ns
        for p in BENCHMARKS.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_usage_and_writes_nothing(script: str) -> None:
    before = _outputs()
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")
    assert _outputs() == before


def test_the_scripts_are_found() -> None:
    assert {"bench_models.py", "bench_calibration.py", "bench_scale.py"} <= set(SCRIPTS)
