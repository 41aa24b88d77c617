"""benchmarks/bench_nlp.py: its figures and its Markdown, on a tiny reports file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bench_helpers import load_benchmark

bench = load_benchmark("bench_nlp")


def _csv(path: Path) -> Path:
    rows = [
        (str(i), mesh, findings)
        for i, (mesh, findings) in enumerate(
            [
                ("normal", "Heart size is normal. Lungs are clear."),
                ("Cardiomegaly", "Mild cardiomegaly."),
                ("Pleural Effusion", "Small left pleural effusion."),
                ("Pneumothorax", "Small right pneumothorax."),
            ]
            * 5
        )
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["uid", "MeSH", "findings", "impression"])
        w.writerows((uid, mesh, findings, "") for uid, mesh, findings in rows)
    return path


def test_main_writes_json_and_markdown_for_each_part(tmp_path: Path) -> None:
    assert bench.main(["--csv", str(_csv(tmp_path / "r.csv")), "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "nlp.json").read_text())
    assert set(result["parts"]) == {"whole", "dev", "check"}
    assert result["split"]["dev"] + result["split"]["check"] == 20
    whole = result["parts"]["whole"]
    assert whole["labels"]["cardiomegaly"]["f1"] == 1.0
    assert whole["goal_met"] is False and "nodule" in whole["below_goal"]  # no support: F1 0
    md = (tmp_path / "nlp.md").read_text()
    assert "## Check part" in md and "macro-F1 (9 findings)" in md
    assert "medspaCy" not in md


def test_markdown_adds_the_medspacy_comparison_when_present(tmp_path: Path) -> None:
    result = bench.measure(_csv(tmp_path / "r.csv"))
    engine = {
        part: {"macro_f1": 0.5, "seconds": 1.0, "f1": {"effusion": 0.5}}
        for part in ("whole", "check")
    }
    medspacy = {
        "date": "2026-01-01",
        "medspacy_version": "1.3.1",
        "spacy_version": "3.7.5",
        "radlens": {**engine, "examples": {"No PTX.": [["pneumothorax", "absent"]]}},
        "medspacy": {**engine, "examples": {"No PTX.": [["pneumothorax", "present"]]}},
    }
    md = bench.render_markdown(result, medspacy)
    assert "| No PTX. | absent | present |" in md
