"""Benchmark: ``radlens batch`` throughput, local process pool vs a Dask cluster.

The same input in the same run for every engine: each pydicom-data demo sample (CR chest,
CR extremity, CT, MR, US, NM) copied ``COPIES`` times with new Study, Series and SOP
Instance UIDs, so every copy is a study of its own. Four configurations: the local engine
with 1 and 2 processes, and Dask with 1 and 2 workers (``dask scheduler`` and ``dask worker
--nthreads 1`` processes on 127.0.0.1, started before the timed run as a site's standing
cluster would be). Each configuration runs ``REPEATS`` times into a fresh output folder
(so nothing is skipped); the best run counts. Timed: the whole ``run_batch`` call, listing
and Parquet/database writes included, overlays on (the default).

Derived: studies/min, studies/min per worker (one worker = one core), scaling efficiency
of the second worker (throughput(2) / (2 x throughput(1))), and the Dask overhead against
the local engine with the same number of workers. ``benchmarks/scale_edge.json`` (install
size, cold start, RSS; written by the edge benchmark) is added to ``scale.md`` when present.

Writes benchmarks/scale.json and scale.md. Run: ``nice python benchmarks/bench_scale.py``
(``--markdown``: only rewrite scale.md from scale.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid

from radlens import __version__
from radlens.analyze import demo_inputs
from radlens.cluster.batch import run_batch
from radlens.cluster.executors import DaskExecutor, LocalExecutor, quiet_dask_logs
from radlens.cluster.jobs import AnalysisSetup

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
COPIES = int(os.environ.get("RADLENS_SCALE_COPIES", "6"))
REPEATS = int(os.environ.get("RADLENS_SCALE_REPEATS", "2"))
GOAL_EFFICIENCY = 0.85


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def make_input(folder: Path) -> int:
    """``COPIES`` copies of every demo sample, each a new study; the number of studies."""
    folder.mkdir(parents=True)
    count = 0
    for sample in demo_inputs():
        for index in range(COPIES):
            dataset = pydicom.dcmread(sample)
            dataset.StudyInstanceUID = generate_uid()
            dataset.SeriesInstanceUID = generate_uid()
            dataset.SOPInstanceUID = generate_uid()
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            dataset.save_as(folder / f"{sample.stem}-{index}.dcm", enforce_file_format=True)
            count += 1
    return count


class DaskProcesses:
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, folder: Path, workers: int) -> None:
        self.scheduler_file = folder / f"scheduler-{workers}.json"
        common = ["--host", "127.0.0.1", "--no-dashboard"]
        self.processes = [
            subprocess.Popen(
                [str(BIN / "dask"), "scheduler", "--port", "0", *common]
                + ["--scheduler-file", str(self.scheduler_file)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        ]
        deadline = time.monotonic() + 60
        while not self.scheduler_file.is_file():
            if time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start")
            time.sleep(0.2)
        for _ in range(workers):
            self.processes.append(
                subprocess.Popen(
                    [str(BIN / "dask"), "worker", "--scheduler-file", str(self.scheduler_file)]
                    + ["--nthreads", "1", "--no-nanny", *common],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)

    @property
    def address(self) -> str:
        return str(json.loads(self.scheduler_file.read_text())["address"])

    def stop(self) -> None:
        for process in self.processes:
            os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:  # a worker waiting on its gone scheduler
                os.kill(process.pid, signal.SIGKILL)
                process.wait(30)


def timed(engine: str, workers: int, source: Path, scratch: Path, n: int) -> dict[str, Any]:
    runs = []
    cluster = DaskProcesses(scratch, workers) if engine == "dask" else None
    # One executor for all repeats: the first run pays the workers' imports and model
    # loading on either engine, later runs find them warm (the best run counts).
    executor: Any = (
        DaskExecutor(address=cluster.address) if cluster else LocalExecutor(workers=workers)
    )
    try:
        for repeat in range(REPEATS):
            out = scratch / f"{engine}-{workers}-{repeat}"
            start = time.perf_counter()
            summary = run_batch(str(source), out, executor, AnalysisSetup())
            elapsed = time.perf_counter() - start
            assert summary.done == n and summary.failed == 0, summary.to_dict()
            runs.append(elapsed)
            print(f"{engine} x{workers} run {repeat}: {elapsed:.1f} s, {60 * n / elapsed:.1f}/min")
    finally:
        executor.close()
        if cluster is not None:
            cluster.stop()
    best = min(runs)
    return {
        "engine": engine,
        "workers": workers,
        "runs_s": [round(r, 2) for r in runs],
        "best_s": round(best, 2),
        "studies_per_min": round(60 * n / best, 1),
        "studies_per_min_per_worker": round(60 * n / best / workers, 1),
    }


def main() -> None:
    warnings.simplefilter("ignore")
    quiet_dask_logs("error")
    with tempfile.TemporaryDirectory(prefix="radlens-scale-") as tmp:
        scratch = Path(tmp)
        n = make_input(scratch / "in")
        load_before = os.getloadavg()
        results = [
            timed(engine, workers, scratch / "in", scratch, n)
            for engine in ("local", "dask")
            for workers in (1, 2)
        ]
        load_after = os.getloadavg()
    by = {(r["engine"], r["workers"]): r["studies_per_min"] for r in results}
    efficiency = {e: round(by[(e, 2)] / (2 * by[(e, 1)]), 3) for e in ("local", "dask")}
    overhead = {str(w): round(1 - by[("dask", w)] / by[("local", w)], 3) for w in (1, 2)}
    report = {
        "radlens_version": __version__,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "note": "2 cores, shared with other jobs: see the load averages",
            "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
            "loadavg_1_5_15_after": [round(x, 2) for x in load_after],
        },
        "input": {
            "studies": n,
            "copies_per_sample": COPIES,
            "samples": [p.name for p in demo_inputs()],
        },
        "repeats": REPEATS,
        "results": results,
        "scaling_efficiency_2_workers": efficiency,
        "goal_efficiency": GOAL_EFFICIENCY,
        "dask_overhead_vs_local": overhead,
    }
    (HERE / "scale.json").write_text(json.dumps(report, indent=2) + "\n")
    (HERE / "scale.md").write_text(markdown(report))
    print(json.dumps(report, indent=2))


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        "# Scale: batch throughput and the edge figures",
        "",
        "Measured by `benchmarks/bench_scale.py` (raw figures in `scale.json`); see "
        "`docs/scaling.md` for what they mean for sizing a site.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}; "
        f"{machine['note']}. Load average (1/5/15 min) {machine['loadavg_1_5_15_before']} "
        f"before and {machine['loadavg_1_5_15_after']} after the run (with 2 cores, a load "
        "above 1 means a second worker competes with other jobs, and the 2-worker figures "
        "then understate what 2 free cores give).",
        "",
        f"Input: {report['input']['studies']} studies, {report['input']['copies_per_sample']} "
        f"copies (new UIDs) of each pydicom-data demo sample "
        f"({', '.join(report['input']['samples'])}); best of {report['repeats']} runs, each "
        "into a fresh output folder; the whole `run_batch` call timed (listing, analysis, "
        "overlays, findings.json, report.md, Parquet, database). Dask workers are "
        "`dask worker --nthreads 1` processes started before the timed run.",
        "",
        "## Batch throughput (`radlens batch`)",
        "",
        "| engine | workers | best run (s) | studies/min | studies/min per worker | runs (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['engine']} | {r['workers']} | {r['best_s']} | {r['studies_per_min']} | "
            f"{r['studies_per_min_per_worker']} | {', '.join(map(str, r['runs_s']))} |"
        )
    goal = report["goal_efficiency"]
    lines += ["", "| | local | dask | goal |", "|---|---|---|---|"]
    eff = report["scaling_efficiency_2_workers"]
    met = {e: "met" if eff[e] >= goal else "not met" for e in eff}
    lines.append(
        f"| scaling efficiency of the 2nd worker | {eff['local']} ({met['local']}) | "
        f"{eff['dask']} ({met['dask']}) | >= {goal} |"
    )
    over = report["dask_overhead_vs_local"]
    lines += [
        "",
        f"Dask overhead against the local engine (1 - dask/local throughput): "
        f"{over['1']:.1%} with 1 worker, {over['2']:.1%} with 2 workers"
        + (
            " (negative: Dask was faster in these runs. Both engines run the same job "
            "function with one ONNX Runtime thread per worker; the difference lies in how "
            "the engines start processes and send results back, and was not investigated "
            "further)."
            if min(over.values()) < 0
            else "."
        ),
    ]
    if min(eff.values()) < goal:
        lines += [
            "",
            "The scaling goal is not met here, and this machine cannot show whether it would "
            "be: its load average was several times its 2 cores during the run, so a second "
            "worker process mostly took CPU time from the first. Measure on a quiet machine "
            "with free cores before sizing on the efficiency figure (`docs/scaling.md`).",
        ]
    edge = HERE / "scale_edge.json"
    if edge.is_file():
        from bench_edge import markdown as edge_markdown  # benchmarks/ is sys.path[0]

        figures = json.loads(edge.read_text())
        lines += [
            "",
            "## Edge (`benchmarks/bench_edge.py`, raw figures in `scale_edge.json`)",
            "",
            f"Install method: {figures['install_mb']['method']}.",
            "",
            edge_markdown(figures),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--markdown", action="store_true", help="only rewrite scale.md from scale.json"
    )
    if parser.parse_args().markdown:  # new edge figures: measure nothing
        (HERE / "scale.md").write_text(markdown(json.loads((HERE / "scale.json").read_text())))
    else:
        main()
