"""benchmarks/bench_ece.py: the simulated models and the table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench_helpers import load_benchmark
from radlens.evaluation.metrics import ece

bench = load_benchmark("bench_ece")


@pytest.mark.parametrize("gap", [0.0, 0.05])
def test_the_simulated_model_has_the_true_ece_it_is_built_with(gap: float) -> None:
    y, p = bench.draws(np.random.default_rng(0), 40000, gap)
    assert ece(y, p) == pytest.approx(gap, abs=0.006)


def test_a_run_writes_every_size_and_true_ece(tmp_path: Path) -> None:
    assert bench.main(["--trials", "2", "--bootstrap", "4", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "ece.json").read_text())
    cells = {(r["n"], r["true_ece"]) for r in result["rows"]}
    assert cells == {(n, g) for n in bench.SIZES for g in bench.GAPS}
    for r in result["rows"]:
        assert 0.0 <= r["shown"] <= 1.0 and 0.0 <= r["debiased_met"] <= 1.0
    table = (tmp_path / "ece.md").read_text()
    assert table.count("\n| 681 |") == len(bench.GAPS)
