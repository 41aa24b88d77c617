"""benchmarks/bench_intake.py: its statistics, and one quick run against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench_helpers import load_benchmark

bench = load_benchmark("bench_intake")


def test_summary_gives_ordered_percentiles_in_seconds() -> None:
    stats = bench.summary([0.1, 0.2, 0.3, 0.4, 2.0])
    assert stats["p50"] == 0.3 and stats["max"] == 2.0
    assert stats["p50"] <= stats["p95"] <= stats["max"]


def test_median_round_keeps_the_median_rate_and_sums_the_counts() -> None:
    rounds = [
        {"instances_per_s": rate, "instances": 10, "stored": 10}
        | {"analysis_jobs_started_during_send": jobs}
        for rate, jobs in ((90.0, 0), (120.0, 1), (100.0, 0))
    ]
    median = bench.median_round(rounds)
    assert median["instances_per_s"] == 100.0
    assert median["instances_per_s_rounds"] == [90.0, 120.0, 100.0]
    assert (median["sent"], median["stored"]) == (30, 30)
    assert median["analysis_jobs_started_during_send"] == 1


@pytest.mark.integration
@pytest.mark.slow
def test_quick_run_against_a_real_server_writes_sane_json_and_markdown(
    tmp_path: Path, pydicom_data_dir: Path
) -> None:
    argv = ["--quick", "--repeats", "2", "--instances", "8", "--out", str(tmp_path)]
    assert bench.main(argv) == 0

    result = json.loads((tmp_path / "intake.json").read_text())
    assert {"machine", "settings", "latency", "throughput", "rss", "load_avg"} <= set(result)
    assert {"cpu", "cores", "ram_gib", "python"} <= set(result["machine"])
    # How fast the machine ran one thread, so runs of different days can be compared.
    start, end = result["cpu_probe_ms"]
    assert start > 0 and end > 0
    assert result["settings"]["quiet_period_s"] == 0.5 and result["settings"]["quick"]
    latency = result["latency"]
    assert latency["repeats"] == 2 and set(latency["priorities"]) <= {
        "routine", "priority", "urgent", "critical"
    }  # fmt: skip
    for key in ("to_success_s", "success_to_visible_s", "total_s"):
        stats = latency[key]
        assert 0 < stats["p50"] <= stats["p95"] <= stats["max"] < 60
    # The quiet period is part of the latency; the split adds up to about the whole.
    assert latency["server_split"]["stored_to_queued_s"]["p50"] >= 0.5
    assert latency["total_s"]["p50"] > 0.5
    assert latency["goal"] in ("met", "NOT met")
    runs = {(t["associations"], t["tcp_nodelay"]): t for t in result["throughput"]}
    assert set(runs) == {(1, True), (4, True), (1, False)}
    for run in runs.values():
        assert run["instances"] == 8 and run["stored"] == run["sent"] == 8
        assert run["instances_per_s"] > 0 and run["seconds"] > 0
        assert run["store_s"]["p50"] <= run["store_s"]["p95"]
    rss = result["rss"]
    assert 50 < rss["peak_sampled_mib"] <= rss["vm_hwm_mib"] + 1 and rss["processes"] >= 1
    assert rss["goal"] in ("met", "NOT met")

    markdown = (tmp_path / "intake.md").read_text()
    assert "Quick smoke run" in markdown and "--quiet-period 0.5" in markdown
    assert f"a fixed pure-Python loop, median of 7) {start:.1f} ms at start" in markdown
    assert "| 4 | on | 8 |" in markdown
