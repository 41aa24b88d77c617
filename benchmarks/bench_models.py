"""Benchmark: every model in the zoo against the best published figures at its resolution.

For each model (``discover(include_disabled=True)``): val AUC / ACC / ECE (and QWK / MAE for
ordinal grades) from ``evaluate`` on the val split, checked against the card; the published
test-split figures from ``benchmarks/reference.json``; training minutes from the card; ms per
image (batch of 1, ONNX Runtime on one thread, median of ``RUNS`` after ``WARMUPS``, also for
the int8 file when the card has one); and the size of the ONNX file(s). The experiments
recorded by ``benchmarks/sweep.py`` in ``benchmarks/experiments.jsonl`` are rendered too.

Writes benchmarks/models.json and benchmarks/models.md. Run with ``make bench-models``;
``--data-root`` (default ``$RADLENS_DATA`` or ``../shared/data`` beside the repository).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from radlens import __version__
from radlens.evaluation.evaluate import evaluate
from radlens.inference.backends import OnnxBackend
from radlens.inference.preprocess import prepare
from radlens.io.datasets import LabelledImages, read_labelled
from radlens.models.card import InputSpec, ModelCard, Task
from radlens.models.registry import InstalledModel, discover

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe import cpu_probe_ms  # noqa: E402
from probe import describe as describe_probe  # noqa: E402

HERE = Path(__file__).parent
REPO = HERE.parent
RUNS = 50
WARMUPS = 5
# Rerunning evaluate() on the card's split must reproduce the card to this precision.
TOLERANCE = 0.002
WEIGHTS_BUDGET_MB = 40.0
METRICS = ("auc", "acc", "ece", "qwk", "mae")
MISSING = "—"


# --- facts ------------------------------------------------------------------------------


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def default_data_root() -> Path:
    """``$RADLENS_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("RADLENS_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def read_references(path: Path) -> dict[str, Any]:
    """``reference.json``: ``{"sources": [...], "rows": [...]}``."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def reference_for(model: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reference rows that ``model`` serves, in file order."""
    return [row for row in rows if row.get("model") == model]


def resolution_of(spec: InputSpec) -> str:
    """``"224"`` for a square image, ``"28^3"`` for a cubic volume, else ``"HxW"``."""
    sides = spec.size
    if len(set(sides)) == 1:
        return str(sides[0]) if spec.dims == 2 else f"{sides[0]}^{spec.dims}"
    return "x".join(str(s) for s in sides)


def inference_budget_ms(spec: InputSpec) -> float | None:
    """The issue's time budget for one input: 28-64 px 2D 5 ms, up to 224 px 30 ms, 28^3 20 ms.

    None where the issue sets no budget (volumes larger than 28^3, images above 224 px).
    """
    side = max(spec.size)
    if spec.dims == 2:
        if side <= 64:
            return 5.0
        return 30.0 if side <= 224 else None
    return 20.0 if side <= 28 else None


def budget_verdict(ms: float | None, budget_ms: float | None) -> str:
    if ms is None:
        return "not measured"
    if budget_ms is None:
        return "no budget set"
    return "met" if ms <= budget_ms else "NOT met"


def int8_of(card: ModelCard) -> Any:
    """The card's int8 entry (file, sha256, auc, ...) or None; older cards have no field."""
    return getattr(card, "int8", None)


def _part(entry: Any, name: str) -> Any:
    return entry.get(name) if isinstance(entry, dict) else getattr(entry, name, None)


def median_ms(backend: OnnxBackend, batch: np.ndarray, runs: int, warmups: int) -> float:
    """Median wall time of ``backend.run(batch)`` in ms, after ``warmups`` untimed runs."""
    for _ in range(warmups):
        backend.run(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        backend.run(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def _num(value: Any, digits: int = 4) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def card_check(card: ModelCard, measured: dict[str, float]) -> list[str]:
    """Each metric of ``metrics["val"]`` that rerunning the evaluation does not reproduce."""
    stated = card.metrics.get("val", {})
    return [
        f"{card.name}: val {key} measured {measured[key]:.4f}, card says {stated[key]:.4f}"
        for key in METRICS
        if key in stated and key in measured and abs(measured[key] - stated[key]) > TOLERANCE
    ]


# --- one model --------------------------------------------------------------------------


def bench_model(
    model: InstalledModel,
    references: list[dict[str, Any]],
    data_root: Path,
    runs: int = RUNS,
    warmups: int = WARMUPS,
) -> list[dict[str, Any]]:
    """Rows for one model: one per reference row it serves (one without reference if none)."""
    card = model.card
    data_file = references[0]["data_file"] if references else None
    path = data_root / data_file if data_file else None
    if path is not None and references[0].get("view") and path.exists():
        # A view of the dataset (FracAtlas's split), prepared in the repository as training does.
        from bench_calibration import data_source  # benchmarks/ is sys.path[0]

        path = data_source(card, data_root)
    row: dict[str, Any] = {
        "model": card.name,
        "version": card.version,
        "task": card.task.value,
        "installed": True,
        "resolution": resolution_of(card.input),
        "data_file": data_file,
        "data_found": bool(path and path.exists()),
        "val": None,
        "card_val": {k: v for k, v in card.metrics.get("val", {}).items() if k in METRICS},
        "card_mismatch": [],
        "train_min": card.training.duration_min,
        "mb_fp32": round(_mb(model.weights), 2),
        "mb_int8": None,
        "ms_fp32": None,
        "ms_int8": None,
        "int8_val": None,
        "int8_card_auc": None,
        "int8_card_ms": None,
        "budget_ms": inference_budget_ms(card.input),
        "budget_fp32": None,
        "budget_int8": None,
        "timing_input": "",
    }
    backend = OnnxBackend(model.weights, threads=1)
    batch = np.zeros((1, card.input.channels, *card.input.size), np.float32)
    row["timing_input"] = "zeros (no val data)"
    val = None
    if path is None:
        print(f"skip val for {card.name}: no row for it in benchmarks/reference.json")
    elif not path.exists():
        print(f"skip val for {card.name}: {path} not found (set RADLENS_DATA or --data-root)")
    else:
        val = read_labelled(path, "val", card.labels)
        ev = evaluate(card, backend, val)
        row["val"] = {"n": ev.n} | {k: _num(ev.metrics[k]) for k in METRICS if k in ev.metrics}
        row["card_mismatch"] = card_check(card, ev.metrics)
        for line in row["card_mismatch"]:
            print(f"WARNING {line} (|diff| > {TOLERANCE})")
        batch = prepare(val.images[0], card.input)[None].astype(np.float32)
        row["timing_input"] = "first val item, prepared once"
    row["ms_fp32"] = round(median_ms(backend, batch, runs, warmups), 3)

    int8 = int8_of(card)
    if int8 is not None:
        row |= bench_int8(model, int8, batch, val, runs, warmups)
    row["budget_fp32"] = budget_verdict(row["ms_fp32"], row["budget_ms"])
    row["budget_int8"] = (
        budget_verdict(row["ms_int8"], row["budget_ms"]) if int8 is not None else None
    )
    print(
        f"{card.name} {card.version}: val "
        + (", ".join(f"{k} {v}" for k, v in row["val"].items()) if row["val"] else "missing")
        + f"; {row['ms_fp32']} ms/image fp32"
        + (f", {row['ms_int8']} ms int8" if row["ms_int8"] is not None else "")
        + f"; {row['mb_fp32']} MB"
    )
    if not references:
        return [row | {"dataset": card.name, "reference": None, "gap_val_minus_test": None}]
    return [row | with_reference(row, ref) for ref in references]


def bench_int8(
    model: InstalledModel,
    int8: Any,
    batch: np.ndarray,
    val: LabelledImages | None,
    runs: int,
    warmups: int,
) -> dict[str, Any]:
    """Size, ms/image and val AUC / ACC of the card's int8 file, checked against the card."""
    card = model.card
    weights = model.folder / str(_part(int8, "file"))
    found: dict[str, Any] = {"int8_card_auc": _part(int8, "auc"), "int8_card_ms": _part(int8, "ms")}
    if not weights.exists():
        print(f"WARNING {card.name}: int8 file {weights.name} missing; not timed")
        return found
    quant = OnnxBackend(weights, threads=1)
    found["mb_int8"] = round(_mb(weights), 2)
    found["ms_int8"] = round(median_ms(quant, batch, runs, warmups), 3)
    if val is not None:
        measured = evaluate(card, quant, val).metrics
        found["int8_val"] = {k: _num(measured[k]) for k in ("auc", "acc")}
        stated = found["int8_card_auc"]
        # The card's int8 AUC is on its gate split; only a val figure can be checked here.
        gate = _part(int8, "gate_split") or "val"
        if stated is not None and gate == "val" and abs(measured["auc"] - stated) > TOLERANCE:
            print(
                f"WARNING {card.name}: int8 val auc measured {measured['auc']:.4f}, "
                f"card says {stated:.4f} (|diff| > {TOLERANCE})"
            )
    return found


def with_reference(row: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """The reference part of a row: the published figures and ours (val) minus them (test)."""
    reference = {k: ref.get(k) for k in ("auc", "acc", "auc_source", "acc_source", "split")}
    val = row.get("val") or {}
    gap = {
        k: round(val[k] - ref[k], 4)
        for k in ("auc", "acc")
        if val.get(k) is not None and ref.get(k) is not None
    }
    return {
        "dataset": ref["dataset"],
        "resolution": ref["resolution"],
        "data_file": ref["data_file"],
        "reference": reference | {"note": ref.get("note", "")},
        "gap_val_minus_test": gap or None,
    }


def reference_only_row(ref: dict[str, Any], installed: bool) -> dict[str, Any]:
    """A row for a reference no installed model serves (no model yet, or not trained yet)."""
    return {
        "dataset": ref["dataset"],
        "resolution": ref["resolution"],
        "model": ref.get("model"),
        "installed": installed,
        "data_file": ref["data_file"],
        "val": None,
        "reference": {
            k: ref.get(k) for k in ("auc", "acc", "auc_source", "acc_source", "split", "note")
        },
        "gap_val_minus_test": None,
    }


# --- rendering --------------------------------------------------------------------------


def fmt(value: Any, digits: int = 3, signed: bool = False) -> str:
    """A number for a table cell; ``—`` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table; pipes in cells are escaped."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _grouped(rows: Iterable[dict[str, Any]], key: Any) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups


def _budget_cell(row: dict[str, Any]) -> str:
    if not row.get("installed") or row.get("model") is None:
        return MISSING
    budget = row.get("budget_ms")
    limit = f"≤ {budget:g} ms: " if budget is not None else ""
    text = limit + str(row.get("budget_fp32"))
    if row.get("budget_int8"):
        text += f" (int8 {row['budget_int8']})"
    return text


def _model_cell(row: dict[str, Any]) -> str:
    if row.get("model") is None:
        return "no model yet"
    if not row.get("installed"):
        return f"{row['model']} (not installed)"
    return f"{row['model']} {row.get('version', '')}".strip()


def results_table(rows: list[dict[str, Any]]) -> str:
    """One dataset+resolution: ours (val) beside the reference (test)."""
    ordinal = any(r.get("task") == Task.ORDINAL.value for r in rows)
    headers = ["model", "val n", "val AUC", "val ACC", "val ECE"]
    headers += ["val QWK", "val MAE"] if ordinal else []
    headers += [
        "ref test AUC",
        "ref test ACC",
        "gap AUC (val − test)",
        "gap ACC (val − test)",
        "train min",
        "ms/image fp32",
        "ms/image int8",
        "MB",
        "time budget",
    ]
    body = []
    for r in rows:
        val = r.get("val") or {}
        ref = r.get("reference") or {}
        gap = r.get("gap_val_minus_test") or {}
        mb = fmt(r.get("mb_fp32"), 1)
        if r.get("mb_int8") is not None:
            mb += f" + {r['mb_int8']:.1f} int8"
        line = [_model_cell(r), val.get("n", MISSING)]
        line += [fmt(val.get(k)) for k in ("auc", "acc", "ece")]
        line += [fmt(val.get(k)) for k in ("qwk", "mae")] if ordinal else []
        line += [fmt(ref.get("auc")), fmt(ref.get("acc"))]
        line += [fmt(gap.get("auc"), signed=True), fmt(gap.get("acc"), signed=True)]
        line += [fmt(r.get("train_min"), 1), fmt(r.get("ms_fp32"), 2), fmt(r.get("ms_int8"), 2)]
        line += [mb, _budget_cell(r)]
        body.append(line)
    return markdown_table(headers, body)


def _group_notes(rows: list[dict[str, Any]]) -> list[str]:
    notes = []
    ref = next((r["reference"] for r in rows if r.get("reference")), None)
    if ref:
        figures = "; ".join(
            f"{name} {fmt(ref.get(key))} from {ref.get(f'{key}_source')}"
            if ref.get(key) is not None
            else f"{name}: no published figure"
            for key, name in (("auc", "AUC"), ("acc", "ACC"))
        )
        notes.append(
            f"Reference ({ref.get('split', 'test')} split): {figures}. " + (ref.get("note") or "")
        )
    for r in rows:
        if r.get("model") and not r.get("installed"):
            notes.append(f"{r['model']} is not in the zoo yet.")
        elif r.get("installed") and r.get("val") is None:
            notes.append(f"{r['model']}: val figures missing ({r.get('data_file')} not found).")
        if r.get("int8_val"):
            notes.append(
                f"{r['model']} int8: val AUC {fmt(r['int8_val'].get('auc'))}, "
                f"ACC {fmt(r['int8_val'].get('acc'))} (card: {fmt(r.get('int8_card_auc'))})."
            )
        notes += [f"Warning: {m} (tolerance {TOLERANCE})." for m in r.get("card_mismatch", [])]
    return [n.strip() for n in notes]


def budgets_section(rows: list[dict[str, Any]], total_mb: float) -> str:
    verdict = "met" if total_mb <= WEIGHTS_BUDGET_MB else "NOT met"
    models = {r["model"]: r for r in rows if r.get("installed") and r.get("model")}
    table = markdown_table(
        ["model", "input", "budget", "ms fp32", "verdict fp32", "ms int8", "verdict int8"],
        [
            [
                name,
                r["resolution"],
                f"≤ {r['budget_ms']:g} ms" if r.get("budget_ms") is not None else "none set",
                fmt(r.get("ms_fp32"), 2),
                r.get("budget_fp32"),
                fmt(r.get("ms_int8"), 2),
                r.get("budget_int8") or MISSING,
            ]
            for name, r in models.items()
        ],
    )
    return (
        "## Budgets\n\n"
        "Total weights (all ONNX files of the installed models, the segmentation models and "
        f"detectors included): {total_mb:.1f} MB of the "
        f"{WEIGHTS_BUDGET_MB:g} MB budget ({verdict}).\n\n"
        "Inference time per input (batch of 1, one thread): ≤ 5 ms for a 28–64 px image, "
        "≤ 30 ms for a 224 px image, ≤ 20 ms for a 28³ volume.\n\n" + table + "\n"
    )


def read_experiments(path: Path) -> list[dict[str, Any]]:
    """The lines of ``experiments.jsonl`` (none when the file does not exist)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def what_changed(record: dict[str, Any]) -> str:
    sets = record.get("sets") or {}
    parts = [f"{k}={json.dumps(v)}" for k, v in sets.items()]
    return ", ".join(parts) if parts else "recipe as is"


def render_experiments(records: list[dict[str, Any]]) -> str:
    """The Experiments section: one table per dataset, in the order first recorded."""
    out = ["## Experiments\n\n"]
    if not records:
        out.append("No experiments recorded yet; `benchmarks/sweep.py` appends them to ")
        out.append("`benchmarks/experiments.jsonl`.\n")
        return "".join(out)
    out.append(
        "Each row is one `benchmarks/sweep.py` run (`radlens train RECIPE --set ...`), "
        "val split, from `benchmarks/experiments.jsonl`.\n"
    )
    for dataset, group in _grouped(records, lambda r: r.get("dataset", "?")).items():
        ordinal = any((r.get("val") or {}).get("qwk") is not None for r in group)
        boxes = all((r.get("val") or {}).get("map50") is not None for r in group)
        headers = ["variant", "what changed", "seed"]
        headers += ["val AP@0.5", "val AP@0.5:0.95"] if boxes else ["val AUC", "val ACC", "val ECE"]
        headers += ["val QWK", "val MAE"] if ordinal else []
        headers += ["min", "shipped", "note"]
        body = []
        for r in group:
            val = r.get("val") or {}
            line = [r.get("variant", "?"), what_changed(r), r.get("seed", MISSING)]
            keys = ("map50", "map50_95") if boxes else ("auc", "acc", "ece")
            line += [fmt(val.get(k)) for k in keys]
            line += [fmt(val.get(k)) for k in ("qwk", "mae")] if ordinal else []
            line += [fmt(r.get("minutes"), 1), "yes" if r.get("shipped") else "no"]
            line += [r.get("note", "")]
            body.append(line)
        out.append(f"\n### {dataset}\n\n{markdown_table(headers, body)}\n")
    return "".join(out)


def source_line(source: dict[str, Any]) -> str:
    where = f" doi:{source['doi']}" if source.get("doi") else ""
    where += f" {source['url']}" if source.get("url") else ""
    return source["citation"] + where


def _machine_state(machine: dict[str, Any]) -> str:
    """How busy and how fast the machine was, at start and end (runs measured before these
    were kept have neither)."""
    if "cpu_probe_ms" not in machine:
        return ""
    load, probe = machine["load_avg_1min"], machine["cpu_probe_ms"]
    return (
        f" Load average (1 min) {load[0]:.2f} at start, {load[1]:.2f} at the end; "
        f"{describe_probe(*probe)}. ms/image of runs on different days compare only as far "
        "as their probes agree."
    )


def render_markdown(
    result: dict[str, Any], experiments: list[dict[str, Any]], findings: str = ""
) -> str:
    machine = result["machine"]
    parts = [
        "# Benchmark: the model zoo against published references\n\n"
        f"Measured {result['date']} on {machine['cpu']} ({machine['cores']} cores), "
        f"onnxruntime {machine['onnxruntime']}, numpy {machine['numpy']}, "
        f"radlens {result['radlens_version']}.{_machine_state(machine)}\n\n"
        "**Val versus test.** Our figures (val AUC / ACC / ECE, and QWK / MAE for ordinal "
        "grades) are measured on the validation split: the official MedMNIST val split, and "
        "for the Kermany chest X-rays a patient-disjoint split of the official train folder. "
        "The reference figures are published results on the held-out official test split, "
        "which we do not have. So the gap (ours val − reference test) is not a like-for-like "
        "comparison: val is usually easier than test.\n\n"
        f"ms/image: batch of 1, ONNX Runtime on one thread, input prepared once, median of "
        f"{result['runs']} runs after {result['warmups']} warm-ups. MB: size of the ONNX "
        "file(s). Train min: the card's `training.duration_min`.\n"
    ]
    groups = _grouped(result["rows"], lambda r: (r["dataset"], r["resolution"]))
    for (dataset, resolution), rows in groups.items():
        notes = "".join(f"\n{n}\n" for n in _group_notes(rows))
        parts.append(f"\n## {dataset}, {resolution}\n\n{results_table(rows)}\n{notes}")
    parts.append("\n" + budgets_section(result["rows"], result["weights_mb_total"]))
    parts.append("\n" + render_experiments(experiments))
    if findings.strip():
        parts.append("\n" + findings.strip() + "\n")
    sources = "".join(f"- {source_line(s)}\n" for s in result.get("sources", []))
    parts.append(f"\n## Sources\n\n{sources}" if sources else "")
    parts.append(
        "\nMade by `make bench-models` (`benchmarks/bench_models.py`); references in "
        "`benchmarks/reference.json`; experiments from `benchmarks/sweep.py`.\n"
    )
    return "".join(parts)


# --- the whole bench --------------------------------------------------------------------


def run(
    models: list[InstalledModel],
    references: dict[str, Any],
    data_root: Path,
    out_dir: Path,
    experiments_path: Path,
    runs: int = RUNS,
    warmups: int = WARMUPS,
    others: Sequence[InstalledModel] = (),
) -> dict[str, Any]:
    """Benchmark ``models``; write ``models.json`` and ``models.md`` into ``out_dir``.

    ``others`` (the segmentation models and detectors, measured elsewhere) count in the
    weights total only.
    """
    ref_rows: list[dict[str, Any]] = references["rows"]
    rows: list[dict[str, Any]] = []
    load_start, probe_start = os.getloadavg(), cpu_probe_ms()
    for model in models:
        rows += bench_model(
            model, reference_for(model.card.name, ref_rows), data_root, runs, warmups
        )
    installed = {m.card.name for m in models}
    for ref in ref_rows:
        if ref.get("model") not in installed:
            why = "no model yet" if ref.get("model") is None else f"{ref['model']} not installed"
            print(f"skip {ref['dataset']} {ref['resolution']}: {why}")
            rows.append(reference_only_row(ref, installed=False))
    order = {(r["dataset"], r["resolution"]): i for i, r in enumerate(ref_rows)}
    rows.sort(key=lambda r: order.get((r["dataset"], r["resolution"]), len(order)))
    total_mb = sum((r.get("mb_fp32") or 0) + (r.get("mb_int8") or 0) for r in _unique(rows))
    total_mb += sum(_mb(m.weights) for m in others)
    result = {
        "benchmark": "model zoo: val metrics vs published test references, ms/image, MB",
        "radlens_version": __version__,
        "threads": 1,
        "runs": runs,
        "warmups": warmups,
        "tolerance": TOLERANCE,
        "weights_mb_total": round(total_mb, 2),
        "weights_budget_mb": WEIGHTS_BUDGET_MB,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__,
            "load_avg_1min": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
            "cpu_probe_ms": [probe_start, cpu_probe_ms()],
        },
        "date": time.strftime("%Y-%m-%d"),
        "data_root": str(data_root),
        "rows": rows,
        "sources": references.get("sources", []),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "models.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    write_markdown(result, out_dir, experiments_path)
    return result


def write_markdown(result: dict[str, Any], out_dir: Path, experiments_path: Path) -> None:
    """``models.md`` from measured ``result``, the experiments log and its findings."""
    # What the experiments showed, in words: kept beside the log it interprets.
    findings_path = experiments_path.with_name("experiments-findings.md")
    findings = findings_path.read_text(encoding="utf-8") if findings_path.exists() else ""
    markdown = render_markdown(result, read_experiments(experiments_path), findings)
    (out_dir / "models.md").write_text(markdown, "utf-8")


def rerender(out_dir: Path, experiments_path: Path) -> None:
    """Rewrite ``models.md`` from the committed ``models.json``, measuring nothing.

    For a new experiment record or finding: the model figures and timings stay those of the
    last measured run (its date and machine head the page).

    Raises:
        FileNotFoundError: there is no ``models.json`` in ``out_dir`` to render.
    """
    result = json.loads((out_dir / "models.json").read_text(encoding="utf-8"))
    write_markdown(result, out_dir, experiments_path)


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per installed model (a model serving two references has two rows)."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("installed") and row.get("model"):
            seen.setdefault(row["model"], row)
    return list(seen.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None, help="default $RADLENS_DATA")
    parser.add_argument("--out-dir", type=Path, default=HERE)
    parser.add_argument("--references", type=Path, default=HERE / "reference.json")
    parser.add_argument("--experiments", type=Path, default=HERE / "experiments.jsonl")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--warmups", type=int, default=WARMUPS)
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite models.md from models.json and the experiments log; measure nothing",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        try:
            rerender(args.out_dir, args.experiments)
        except FileNotFoundError as exc:
            print(f"bench_models: {exc.filename}: no measured run to render", file=sys.stderr)
            return 2
        print(f"rewrote {args.out_dir / 'models.md'} from models.json (nothing measured)")
        return 0
    # Segmentation models and detectors have no AUC to compare: benchmarks/bench_seg_det.py
    # and benchmarks/bench_det.py measure them.
    classifiers = [
        m
        for m in discover(include_disabled=True)
        if m.card.task not in (Task.SEGMENTATION, Task.DETECTION)
    ]
    result = run(
        classifiers,
        read_references(args.references),
        args.data_root or default_data_root(),
        args.out_dir,
        args.experiments,
        args.runs,
        args.warmups,
        others=[m for m in discover(include_disabled=True) if m not in classifiers],
    )
    print(f"wrote {args.out_dir / 'models.md'} and models.json ({len(result['rows'])} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
