"""Benchmark: finding extraction from radiology reports (issue 6, parts 4 and 5).

Runs ``radlens.nlp`` over the curated IU chest X-ray reports (``../shared/data/reports/
iu_xray/reports_trainval.csv``; see ``docs/nlp.md`` for how the MeSH labels map to radlens
labels) and scores per-finding precision, recall and F1 and the macro-F1 over the nine chest
findings. Goal: macro-F1 >= 0.90.

The rules were written while looking only at the development part of a seeded split
(``split_dev_check``: 70% dev, 30% check, seed 20240607); the check part was left untouched
by rule-writing, so its figures are the honest ones. Figures are reported for the whole
file, the dev part and the check part.

If ``benchmarks/nlp_medspacy.json`` exists (written by ``benchmarks/compare_nlp_medspacy.py``
in a separate environment with medspaCy), its figures are added to the Markdown.

Writes benchmarks/nlp.json and benchmarks/nlp.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from radlens.nlp.evaluate import (
    DIFFERENTIAL_TRIGGERS,
    GOLD_TERMS,
    NlpEvaluation,
    evaluate_reports,
    read_reports,
    split_dev_check,
)
from radlens.nlp.lexicon import CHEST_FINDINGS

HERE = Path(__file__).parent
DEFAULT_CSV = HERE.parents[1] / "shared" / "data" / "reports" / "iu_xray" / "reports_trainval.csv"
GOAL_MACRO_F1 = 0.90
PARTS = ("whole", "dev", "check")


def measure(csv_path: Path) -> dict[str, Any]:
    reports = read_reports(csv_path)
    dev, check = split_dev_check(reports)
    parts: dict[str, Any] = {}
    for name, rows in zip(PARTS, (reports, dev, check), strict=True):
        start = time.perf_counter()
        result = evaluate_reports(rows)
        elapsed_s = time.perf_counter() - start
        parts[name] = {
            **result.as_dict(),
            "seconds": round(elapsed_s, 2),
            "reports_per_s": round(len(rows) / elapsed_s, 1),
            "goal_met": result.macro_f1 >= GOAL_MACRO_F1,
            "below_goal": below_goal(result),
        }
    return {
        "benchmark": "nlp",
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "data": "reports/iu_xray/reports_trainval.csv",
        "n_rows": len(reports),
        "split": {"check_fraction": 0.3, "seed": 20240607, "dev": len(dev), "check": len(check)},
        "goal_macro_f1": GOAL_MACRO_F1,
        "gold_terms": {k: list(v) for k, v in GOLD_TERMS.items()},
        "differential_triggers": sorted(DIFFERENTIAL_TRIGGERS),
        "parts": parts,
    }


def below_goal(result: NlpEvaluation) -> list[str]:
    """The nine findings whose own F1 is under the macro goal."""
    return [k for k in CHEST_FINDINGS if result.scores[k].f1 < GOAL_MACRO_F1]


def _table(part: dict[str, Any]) -> list[str]:
    lines = [
        "| finding | precision | recall | F1 | support | FP | FN |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, s in part["labels"].items():
        name = label if label in part["macro_labels"] else f"{label} (not in macro)"
        lines.append(
            f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | "
            f"{s['support']} | {s['fp']} | {s['fn']} |"
        )
    lines.append(f"| **macro-F1 (9 findings)** | | | **{part['macro_f1']:.4f}** | | | |")
    return lines


def render_markdown(result: dict[str, Any], medspacy: dict[str, Any] | None = None) -> str:
    parts = result["parts"]
    lines = [
        "# Benchmark: finding extraction from radiology reports (issue 6)",
        "",
        f"Measured {result['date']} on {result['machine']} (Python {result['python']}) by "
        f"`benchmarks/bench_nlp.py` over `{result['data']}` ({result['n_rows']} reports). "
        f"Goal: macro-F1 ≥ {result['goal_macro_f1']:.2f} over the nine chest findings. "
        "Rules were written looking only at the dev part of a seeded split "
        f"({result['split']['dev']} dev / {result['split']['check']} check, seed "
        f"{result['split']['seed']}); the check part was not looked at while writing them.",
        "",
        "## Summary",
        "",
        "| part | reports scored | left out (No Indexing) | macro-F1 | goal met | "
        "findings under 0.90 | reports/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in PARTS:
        p = parts[name]
        lines.append(
            f"| {name} | {p['n_reports']} | {p['n_excluded']} | {p['macro_f1']:.4f} | "
            f"{'yes' if p['goal_met'] else 'no'} | {', '.join(p['below_goal']) or '-'} | "
            f"{p['reports_per_s']} |"
        )
    for name in ("whole", "check"):
        lines += ["", f"## {name.capitalize()} {'file' if name == 'whole' else 'part'}", ""]
        lines += _table(parts[name])
    lines += [
        "",
        "## How the curated labels are counted",
        "",
        "- A label is in a report's gold when a `MeSH` term equals one of its headings or "
        "continues it after `/` (`Opacity/lung/base/left/mild` → opacity):",
    ]
    for label, heads in result["gold_terms"].items():
        lines.append(f"  - {label}: {', '.join(heads)}")
    lines += [
        "- normal: `MeSH` is exactly `normal`. Predicted normal when the report asserts no "
        "abnormality of any lexicon label (a limited study alone does not count).",
        "- Rows indexed `No Indexing` have no labels and are left out of every score.",
        "- Predicted present: a mention in the findings or impression that is present or "
        "historical; a possible mention only when its uncertainty comes from a differential "
        f"({', '.join(result['differential_triggers'])}: the curators index each alternative, "
        "not a hedge such as “possible pneumonia”). Negated mentions count as absent; mentions "
        "in the indication (the question) or the comparison do not count.",
        "- Pneumonia is scored but not in the macro-F1 (its own label; opacity is the "
        "radiographic sign).",
    ]
    if medspacy:
        lines += [
            "",
            "## The same targets with medspaCy's ConText (default rules)",
            "",
            f"From `benchmarks/nlp_medspacy.json` ({medspacy['date']}, "
            f"medspacy {medspacy['medspacy_version']}, spaCy {medspacy['spacy_version']}, "
            "in a separate "
            "environment): the same sentences, target terms and evaluator, with the "
            "assertions made by medspaCy's `ConText` component instead of `radlens.nlp`.",
            "",
            "| part | radlens macro-F1 | medspaCy macro-F1 | radlens s | medspaCy s |",
            "|---|---|---|---|---|",
        ]
        for name in ("whole", "check"):
            r, m = medspacy["radlens"][name], medspacy["medspacy"][name]
            lines.append(
                f"| {name} | {r['macro_f1']:.4f} | {m['macro_f1']:.4f} | "
                f"{r['seconds']} | {m['seconds']} |"
            )
        lines += ["", "| finding (whole file F1) | radlens | medspaCy |", "|---|---|---|"]
        for label, f1 in medspacy["radlens"]["whole"]["f1"].items():
            lines.append(
                f"| {label} | {f1:.3f} | {medspacy['medspacy']['whole']['f1'][label]:.3f} |"
            )
        lines += ["", "| example | radlens | medspaCy |", "|---|---|---|"]
        for text, found in medspacy["radlens"]["examples"].items():
            theirs = medspacy["medspacy"]["examples"][text]
            lines.append(
                f"| {text} | {', '.join(a for _, a in found)} | {', '.join(a for _, a in theirs)} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    result = measure(args.csv)
    medspacy_file = args.out / "nlp_medspacy.json"
    medspacy = json.loads(medspacy_file.read_text()) if medspacy_file.exists() else None
    (args.out / "nlp.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "nlp.md").write_text(render_markdown(result, medspacy))
    for name in PARTS:
        p = result["parts"][name]
        print(
            f"{name:6s} macro-F1 {p['macro_f1']:.4f} goal {'met' if p['goal_met'] else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
