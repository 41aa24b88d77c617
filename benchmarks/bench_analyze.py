"""Benchmark: ``radlens analyze`` on the pydicom-data CR chest JPEG 2000 sample (RG1_J2KR),
one thread, split into decode / preprocess / inference / explain / outputs.

Goal (issue 2): <= 1 s in total. Writes benchmarks/analyze.json and benchmarks/analyze.md.
Run with ``make bench``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import onnxruntime  # noqa: E402

from radlens import __version__  # noqa: E402
from radlens.analyze import demo_inputs  # noqa: E402
from radlens.io.raster import write_png  # noqa: E402
from radlens.io.scan import scan  # noqa: E402
from radlens.models.registry import discover  # noqa: E402
from radlens.pipeline import onnx_backends, process_study  # noqa: E402
from radlens.report.compose import compose_markdown  # noqa: E402
from radlens.report.findings_json import to_json  # noqa: E402

HERE = Path(__file__).parent
REPEATS = 7


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def one_run(sample: Path, out: Path) -> dict[str, float]:
    start = time.perf_counter()
    study = scan([sample]).studies[0]
    scanned = time.perf_counter()
    analysis = process_study(study, models, backends)
    processed = time.perf_counter()
    for overlay in analysis.overlays:
        write_png(out / overlay.name, overlay.rgb)
    (out / "findings.json").write_text(json.dumps(to_json(analysis.result)))
    (out / "report.md").write_text(compose_markdown(study, analysis.result))
    done = time.perf_counter()
    t = dict(analysis.result.timings_s)
    t["scan"] = scanned - start
    t["pipeline_other"] = (processed - scanned) - sum(analysis.result.timings_s.values())
    t["outputs"] = done - processed
    t["total"] = done - start
    return t


if __name__ == "__main__":
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    models = discover()  # module globals: one_run reads them
    backends = onnx_backends(threads=1)
    sample = next(p for p in demo_inputs() if p.name == "RG1_J2KR.dcm")
    with tempfile.TemporaryDirectory() as tmp:
        one_run(sample, Path(tmp))  # warm-up: session load, imports
        runs = [one_run(sample, Path(tmp)) for _ in range(REPEATS)]
    keys = [
        "scan",
        "decode",
        "preprocess",
        "inference",
        "explain",
        "pipeline_other",
        "outputs",
        "total",
    ]
    median = {k: round(statistics.median(r[k] for r in runs), 4) for k in keys}
    result = {
        "benchmark": "radlens analyze RG1_J2KR.dcm (CR chest, 1955x1841, JPEG 2000 lossless)",
        "radlens_version": __version__,
        "models": [m.card.name + " " + m.card.version for m in models],
        "threads": 1,
        "repeats": REPEATS,
        "median_s": median,
        "goal_total_s": 1.0,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    (HERE / "analyze.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {median[k] * 1000:.1f} |" for k in keys)
    (HERE / "analyze.md").write_text(
        f"# Benchmark: analyze one CR chest radiograph\n\n{result['benchmark']}, "
        f"warm process, one thread, median of {REPEATS} runs, measured {result['date']} on "
        f"{result['machine']['cpu']} ({result['machine']['cores']} cores), "
        f"onnxruntime {result['machine']['onnxruntime']}, models: {', '.join(result['models'])}."
        f"\n\n| stage | ms |\n|---|---|\n{rows}\n\nGoal: total <= 1000 ms "
        f"({'met' if median['total'] <= 1.0 else 'NOT met'}).\n"
        "Made by `make bench` (`benchmarks/bench_analyze.py`).\n"
    )
    print(json.dumps(result, indent=2))
