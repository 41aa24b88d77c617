"""benchmarks/probe.py: the CPU probe that bench_models and bench_intake keep with a run."""

from __future__ import annotations

import pytest

from bench_helpers import load_benchmark

probe = load_benchmark("probe")


def test_the_probe_times_its_loop_in_milliseconds_as_a_median_of_runs() -> None:
    ms = probe.cpu_probe_ms(repeats=3)
    # The loop takes milliseconds on any machine that runs this suite, never minutes.
    assert 0.1 < ms < 60_000
    assert ms == round(ms, 2)


def test_run_as_a_script_it_prints_the_probe(capsys: pytest.CaptureFixture[str]) -> None:
    assert probe.main(["--repeats", "1"]) == 0
    name, ms = capsys.readouterr().out.split()
    assert name == "cpu_probe_ms" and float(ms) > 0
