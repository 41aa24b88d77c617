"""``radlens nlp extract`` and ``radlens nlp evaluate``."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from radlens.cli.main import EXIT_INPUT

Radlens = Callable[..., Result]


def test_extract_prints_mentions_with_assertions(radlens: Radlens) -> None:
    result = radlens("nlp", "extract", "Indication: r/o PNA. No pneumothorax. Possible nodule.")
    assert result.exit_code == 0, result.output
    assert "pneumothorax" in result.stdout and "absent" in result.stdout
    assert "possible" in result.stdout
    assert "reason for exam: r/o PNA" in result.stdout


def test_extract_json_from_a_file(radlens: Radlens, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Cannot exclude pneumonia.", encoding="utf-8")
    result = radlens("nlp", "extract", "--file", note, "--json")
    assert result.exit_code == 0, result.output
    (mention,) = json.loads(result.stdout)["mentions"]
    assert (mention["label"], mention["assertion"], mention["triggers"]) == (
        "pneumonia",
        "possible",
        ["cannot exclude"],
    )


def test_extract_reads_an_hl7_file(radlens: Radlens, tmp_path: Path) -> None:
    msg = tmp_path / "orm.hl7"
    msg.write_bytes(b"MSH|^~\\&|RIS|H\rNTE|1||No effusion.\r")
    result = radlens("nlp", "extract", "--file", msg, "--json")
    assert json.loads(result.stdout)["mentions"][0]["assertion"] == "absent"


def test_extract_needs_text_or_file(radlens: Radlens, tmp_path: Path) -> None:
    assert radlens("nlp", "extract").exit_code == EXIT_INPUT
    both = radlens("nlp", "extract", "text", "--file", tmp_path / "x.txt")
    assert both.exit_code == EXIT_INPUT
    missing = radlens("nlp", "extract", "--file", tmp_path / "absent.txt")
    assert missing.exit_code == EXIT_INPUT and "no such file" in missing.stderr


def _reports_csv(path: Path) -> Path:
    rows = [
        ("1", "normal", "Heart size is normal. Lungs are clear.", "Normal chest."),
        ("2", "Cardiomegaly", "Mild cardiomegaly.", "No effusion."),
        ("3", "Pleural Effusion/left", "Small left pleural effusion.", ""),
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings",
                    "impression", "label_normal"])  # fmt: skip
        for uid, mesh, findings, impression in rows:
            w.writerow([uid, mesh, "", "", "", "", findings, impression, ""])
    return path


def test_evaluate_prints_per_finding_table_and_macro_f1(radlens: Radlens, tmp_path: Path) -> None:
    result = radlens("nlp", "evaluate", _reports_csv(tmp_path / "r.csv"))
    assert result.exit_code == 0, result.output
    assert "cardiomegaly" in result.stdout and "macro-F1 over 9 findings" in result.stdout


def test_evaluate_json(radlens: Radlens, tmp_path: Path) -> None:
    result = radlens("nlp", "evaluate", _reports_csv(tmp_path / "r.csv"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n_reports"] == 3 and data["part"] == "all"
    assert data["labels"]["cardiomegaly"]["f1"] == 1.0
    assert len(data["macro_labels"]) == 9 and 0 <= data["macro_f1"] <= 1


def test_evaluate_check_part(radlens: Radlens, tmp_path: Path) -> None:
    result = radlens("nlp", "evaluate", _reports_csv(tmp_path / "r.csv"), "--part", "check")
    assert result.exit_code == 0, result.output
    assert "[check]" in result.stdout


def test_evaluate_rejects_other_files_and_parts(radlens: Radlens, tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    bad = radlens("nlp", "evaluate", other)
    assert bad.exit_code == EXIT_INPUT and "missing column" in bad.stderr
    part = radlens("nlp", "evaluate", _reports_csv(tmp_path / "r.csv"), "--part", "x")
    assert part.exit_code == EXIT_INPUT
