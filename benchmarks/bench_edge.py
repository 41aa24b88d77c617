"""Benchmark: the edge appliance (issue 10). Writes benchmarks/scale_edge.json and prints a
Markdown table (``benchmarks/scale.md`` includes the JSON).

1. Run-time install size without torch (goal <= 300 MB): fresh virtual environments install
   from an offline bundle (``radlens bundle``) with ``--no-index``; the size is that of their
   site-packages less an empty venv's (pip, setuptools), split per distribution from each
   one's RECORD. Three installs:

   * **appliance** (the goal's figure): ``pip install --no-compile ... radlens``, the command
     the bundle's README gives for an edge box, measured *after* the cold-start runs below,
     so it includes the ``.pyc`` files Python wrote for every module radlens imported
     (an unmeasured first run analyzes all seven pydicom-data demo studies: CR, CT, MR, US,
     NM; JPEG 2000, JPEG lossless, uncompressed);
   * **base, pip default**: ``pip install ... radlens``, which also compiles a ``.pyc`` for
     every module of every dependency, used or not (numpy's tests, ONNX Runtime's
     transformer tools);
   * **serve + demo**: ``radlens[serve,demo]``, pip default (the server, the DICOM and FHIR
     results, NIfTI, and the pydicom-data samples).
2. Cold start (goal <= 2 s): wall time of a new ``radlens analyze`` process on the
   pydicom-data CR chest sample (RG1_J2KR.dcm, 1955 x 1841 JPEG 2000) run from the
   appliance environment, median of 5 after one unmeasured run (page cache warm and .pyc
   files written, as on a box that has run before); with the CPU time (user + sys) of the
   same runs, which the load of a shared machine inflates less than the wall time.
3. Peak RSS of that process (goal <= 500 MB), from ``wait4``'s rusage of each run.

    .venv/bin/python benchmarks/bench_edge.py [--bundle DIR] [--repeats 5]

``--bundle`` reuses a bundle folder (built with ``--extra serve --extra demo``, the
default); otherwise one is built in a temporary folder (needs the package index, or pip's
cache).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from radlens import __version__
from radlens.analyze import demo_inputs
from radlens.edge.bundle import build_bundle, verify_bundle

HERE = Path(__file__).parent
SAMPLE = "RG1_J2KR.dcm"
GOALS = {"install_mb": 300.0, "cold_start_s": 2.0, "peak_rss_mb": 500.0}
# Where each big distribution comes from, for the "what could be cut" column.
NOTES = {
    "onnxruntime": "the inference engine (needed)",
    "numpy": "needed",
    "pydicom-data": "demo extra only: the sample studies of `radlens demo`",
    "radlens": "about 43 MB of it are the shipped models (zoo/)",
    "python-gdcm": "JPEG baseline/extended/lossless decoding",
    "highdicom": "reports extra: --dicom-results (SR, SEG, Parametric Map, SC)",
    "fhir-resources": "reports extra: --fhir and /fhir",
    "sqlalchemy": "serve extra (database)",
    "cryptography": "serve extra (encryption at rest)",
    "pynetdicom": "serve extra (C-STORE SCP)",
    "pillow": "PNG overlays, PNG/JPEG input",
    "pydicom": "needed",
    "nibabel": "nifti extra: NIfTI input",
    "pygments": "via rich (terminal output)",
    "pydantic-core": "via pydantic (typer; fhir.resources, FastAPI, settings)",
    "pyjpegls": "JPEG-LS decoding (CharLS)",
}
SIZES = """
import json, os, re, sys, importlib.metadata as md
out = {}
for dist in md.distributions():
    total = 0
    for f in dist.files or []:
        p = dist.locate_file(f)
        if os.path.isfile(p):
            total += os.path.getsize(p)
    out[re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()] = total
print(json.dumps(out))
"""


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def du_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def isolated_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def make_venv(
    folder: Path, bundle: Path | None, spec: str | None, compile_all: bool = True
) -> Path:
    env = isolated_env()
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, env=env)
    if spec is not None and bundle is not None:
        subprocess.run(
            [str(folder / "bin" / "pip"), "install", "--quiet", "--no-index"]
            + ([] if compile_all else ["--no-compile"])
            + ["--find-links", str(bundle), spec],
            check=True,
            env=env,
        )
    return folder


def sizes_by_distribution(venv: Path) -> dict[str, int]:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SIZES],
        capture_output=True,
        text=True,
        check=True,
        env=isolated_env(),
    )
    return dict(json.loads(done.stdout))


def timed_run(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """Wall s, CPU s (user + sys) and peak RSS MB of one child process."""
    with log.open("wb") as err:
        start = time.perf_counter()
        # A box's own environment: no PYTHONDONTWRITEBYTECODE (set on this dev machine),
        # so Python writes the .pyc of what it imports, as it does on an appliance.
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=isolated_env())
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {process.returncode}: {log.read_text()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="an existing bundle folder")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sample = next(p for p in demo_inputs() if p.name == SAMPLE)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="radlens-bench-edge-") as tmp:
        work = Path(tmp)
        if args.bundle:
            bundle = verify_bundle(args.bundle)
        else:
            bundle = build_bundle(work / "bundle", progress=print)
        empty = du_bytes(site_packages(make_venv(work / "empty", None, None)))
        appliance = make_venv(work / "appliance", bundle.folder, "radlens", compile_all=False)
        base = make_venv(work / "base", bundle.folder, "radlens")
        full = make_venv(work / "full", bundle.folder, "radlens[serve,demo]")
        installed_mb = (du_bytes(site_packages(appliance)) - empty) / 1e6
        base_mb = (du_bytes(site_packages(base)) - empty) / 1e6
        full_mb = (du_bytes(site_packages(full)) - empty) / 1e6
        per_dist = sizes_by_distribution(full)
        radlens = str(appliance / "bin" / "radlens")
        command = [radlens, "analyze", str(sample), "-o", str(work / "out"), "-q"]
        # Unmeasured: every demo study (JPEG 2000, JPEG lossless by GDCM, CT, MR, US, NM),
        # so the appliance's size includes the .pyc of every reading path; page cache warm.
        everything = [str(p) for p in demo_inputs()]
        timed_run([radlens, "analyze", *everything, "-o", str(work / "all"), "-q"], work / "a.log")
        timed_run(command, work / "warm.log")
        runs = [timed_run(command, work / "run.log") for _ in range(args.repeats)]
        appliance_mb = (du_bytes(site_packages(appliance)) - empty) / 1e6
    load_after = os.getloadavg()
    skipped = {"pip", "setuptools", "wheel"}
    top = sorted(
        ((name, size) for name, size in per_dist.items() if name not in skipped),
        key=lambda item: -item[1],
    )[:15]
    result = {
        "benchmark": "edge appliance: install size, cold start and peak RSS of radlens analyze",
        "radlens_version": __version__,
        "bundle": {
            "wheels": len(bundle.wheels),
            "size_mb": round(bundle.size_bytes / 1e6, 1),
            "python": bundle.python,
            "platform": bundle.platform,
        },
        "install_mb": {
            "appliance": round(appliance_mb, 1),
            "appliance_before_first_run": round(installed_mb, 1),
            "base_pip_default": round(base_mb, 1),
            "serve_demo": round(full_mb, 1),
            "method": "site-packages of a fresh venv installed from the bundle with "
            "--no-index, less an empty venv's (pip, setuptools). appliance: radlens with "
            "--no-compile, measured after the cold-start runs (with the .pyc files Python "
            "wrote for the modules radlens imported); base_pip_default: radlens, every "
            ".pyc compiled at install; serve_demo: radlens[serve,demo], pip default",
        },
        "largest_distributions_mb": [
            {"name": name, "mb": round(size / 1e6, 1), "note": NOTES.get(name, "")}
            for name, size in top
        ],
        "cold_start": {
            "command": f"radlens analyze {SAMPLE} -o OUT -q (CR chest, 1955x1841, JPEG 2000)",
            "repeats": args.repeats,
            "median_wall_s": round(statistics.median(r[0] for r in runs), 3),
            "min_wall_s": round(min(r[0] for r in runs), 3),
            "median_cpu_s": round(statistics.median(r[1] for r in runs), 3),
            "runs_wall_s": [round(r[0], 3) for r in runs],
        },
        "peak_rss_mb": round(max(r[2] for r in runs), 1),
        "goals": GOALS,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "note": "a shared development machine (other jobs running): wall times include "
            "waiting for a core; see median_cpu_s",
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    met = {
        "install_mb": result["install_mb"]["appliance"] <= GOALS["install_mb"],
        "cold_start_s": result["cold_start"]["median_wall_s"] <= GOALS["cold_start_s"],
        "peak_rss_mb": result["peak_rss_mb"] <= GOALS["peak_rss_mb"],
    }
    result["met"] = met
    (HERE / "scale_edge.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    def verdict(key: str) -> str:
        return "met" if result["met"][key] else "**not met**"

    cold, install = result["cold_start"], result["install_mb"]
    rows = [
        "| figure | measured | goal | |",
        "|---|---|---|---|",
        f"| install size, edge appliance: radlens, `--no-compile`, after its first runs | "
        f"{install['appliance']} MB | <= 300 MB | {verdict('install_mb')} |",
        f"| the same, just installed (before any run) | "
        f"{install['appliance_before_first_run']} MB | | |",
        f"| install size, radlens, pip default (every .pyc compiled) | "
        f"{install['base_pip_default']} MB | | |",
        f"| install size, radlens[serve,demo], pip default | {install['serve_demo']} MB | | |",
        f"| cold start, appliance, radlens analyze CR chest (median of {cold['repeats']}) | "
        f"{cold['median_wall_s']} s wall ({cold['median_cpu_s']} s CPU) | <= 2 s | "
        f"{verdict('cold_start_s')} |",
        f"| peak RSS analyzing it | {result['peak_rss_mb']} MB | <= 500 MB | "
        f"{verdict('peak_rss_mb')} |",
        "",
        "| largest distributions of radlens[serve,demo] | MB | note |",
        "|---|---|---|",
        *(f"| {d['name']} | {d['mb']} | {d['note']} |" for d in result["largest_distributions_mb"]),
    ]
    machine = result["machine"]
    return "\n".join(rows) + (
        f"\n\nMeasured {result['date']} on {machine['cpu']} ({machine['cores']} cores), "
        f"Python {machine['python']}, load average {machine['loadavg_1m_before_after']} "
        "(before, after); `benchmarks/bench_edge.py`."
    )


if __name__ == "__main__":
    main()
