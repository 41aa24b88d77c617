"""Measuring extraction against curated report labels."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from radlens.errors import InputError, UnsupportedFormatError
from radlens.nlp.evaluate import (
    GOLD_TERMS,
    LabelScore,
    Report,
    evaluate_reports,
    gold_labels,
    predicted_labels,
    read_reports,
    split_dev_check,
)
from radlens.nlp.lexicon import CHEST_FINDINGS
from radlens.nlp.mentions import extract

COLUMNS = ["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"]


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


ROWS = [
    {
        "uid": "1",
        "MeSH": "normal",
        "indication": "Rule out pneumonia.",
        "findings": "Heart size is normal. No pneumothorax or pleural effusion.",
        "impression": "No acute cardiopulmonary abnormality.",
    },
    {
        "uid": "2",
        "MeSH": "Cardiomegaly/mild;Pleural Effusion/right/small",
        "findings": "Mild cardiomegaly. Small right pleural effusion.",
        "impression": "Cardiomegaly and effusion.",
    },
    {
        "uid": "3",
        "MeSH": "Opacity/lung/base/left;Pulmonary Atelectasis/base/left",
        "findings": "Left basilar opacity, atelectasis versus scarring.",
        "impression": "Possible pneumonia.",
    },
    {"uid": "4", "MeSH": "No Indexing", "findings": "Clear.", "impression": "Normal."},
]


@pytest.mark.parametrize(
    ("mesh", "labels"),
    [
        ("normal", {"normal"}),
        ("Opacity/lung/base/left/mild", {"opacity"}),
        ("Airspace Disease/lung;Infiltrate", {"opacity"}),
        ("Cardiac Shadow/enlarged/mild", {"cardiomegaly"}),
        ("Cardiac Shadow/borderline", set()),
        ("Bullous Emphysema;Pulmonary Emphysema", {"emphysema"}),
        ("Pulmonary Atelectasis;Nodule/lung", {"atelectasis", "nodule"}),
        ("Pleural Effusion;Pneumothorax;Pulmonary Edema", {"effusion", "pneumothorax", "edema"}),
        ("Pneumonia/lower lobe/right", {"pneumonia"}),
        ("Opacity Extra", set()),  # a heading only matches whole or before "/"
        ("Calcified Granuloma;Spine/degenerative", set()),
    ],
)
def test_gold_labels_from_mesh(mesh: str, labels: set[str]) -> None:
    assert gold_labels(mesh) == labels


def test_every_chest_finding_but_normal_has_gold_terms() -> None:
    assert set(GOLD_TERMS) >= set(CHEST_FINDINGS) - {"normal"}


def test_predicted_labels_count_present_and_differentials_not_hedges() -> None:
    report = Report("3", "", findings=ROWS[2]["findings"], impression=ROWS[2]["impression"])
    assert predicted_labels(extract(report.text)) == {"opacity", "atelectasis", "scarring"}


def test_normal_is_predicted_when_nothing_abnormal_is_asserted() -> None:
    report = Report("1", "", indication="Rule out pneumonia.", findings=ROWS[0]["findings"])
    assert predicted_labels(extract(report.text)) == {"normal"}


def test_evaluate_counts_each_label_and_leaves_out_unindexed_rows(tmp_path: Path) -> None:
    result = evaluate_reports(read_reports(write_csv(tmp_path / "r.csv", ROWS)))
    assert (result.n_reports, result.n_excluded) == (3, 1)
    assert result.scores["cardiomegaly"] == LabelScore(tp=1, fp=0, fn=0, tn=2)
    assert result.scores["normal"] == LabelScore(tp=1, fp=0, fn=0, tn=2)
    assert result.scores["pneumonia"] == LabelScore(tp=0, fp=0, fn=0, tn=3)
    assert result.macro_labels == CHEST_FINDINGS
    assert set(result.as_dict()["labels"]) >= set(CHEST_FINDINGS)  # type: ignore[arg-type]


def test_label_score_figures() -> None:
    s = LabelScore(tp=8, fp=2, fn=8, tn=82)
    assert (s.precision, s.recall, s.support) == (0.8, 0.5, 16)
    assert s.f1 == pytest.approx(2 * 0.8 * 0.5 / 1.3)
    assert LabelScore(0, 0, 0, 5).f1 == 0.0


def test_macro_f1_is_the_mean_over_the_nine_findings(tmp_path: Path) -> None:
    result = evaluate_reports(read_reports(write_csv(tmp_path / "r.csv", ROWS)))
    expected = sum(result.scores[k].f1 for k in CHEST_FINDINGS) / 9
    assert result.macro_f1 == pytest.approx(expected)


def test_split_is_seeded_disjoint_and_complete() -> None:
    reports = [Report(str(i), "normal") for i in range(100)]
    dev, check = split_dev_check(reports)
    assert (len(dev), len(check)) == (70, 30)
    assert {r.uid for r in dev} | {r.uid for r in check} == {str(i) for i in range(100)}
    assert split_dev_check(reports) == (dev, check)
    assert split_dev_check(reports, seed=1)[1] != check


def test_read_reports_needs_the_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", [{"uid": "1"}], columns=["uid", "text"])
    with pytest.raises(UnsupportedFormatError, match="MeSH, findings, impression"):
        read_reports(path)


def test_read_reports_of_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_reports(tmp_path / "absent.csv")


def test_read_reports_accepts_a_file_without_indication_and_comparison(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "min.csv", ROWS[:1], columns=["uid", "MeSH", "findings", "impression"]
    )
    (report,) = read_reports(path)
    assert report.indication == "" and report.findings.startswith("Heart")


def test_report_repr_leaves_out_the_text() -> None:
    assert "Heart" not in repr(Report("1", "normal", findings="Heart size is normal."))


@pytest.mark.shared_data
def test_evaluator_on_the_real_iu_reports(shared_data_dir: Path) -> None:
    path = shared_data_dir / "reports" / "iu_xray" / "reports_trainval.csv"
    if not path.is_file():
        pytest.skip("reports/iu_xray not in this shared data")
    reports = read_reports(path)
    result = evaluate_reports(reports)
    assert result.n_reports + result.n_excluded == len(reports) > 3000
    assert result.macro_labels == CHEST_FINDINGS and len(result.macro_labels) == 9
    assert result.macro_f1 == pytest.approx(sum(result.scores[k].f1 for k in CHEST_FINDINGS) / 9)
    for label in CHEST_FINDINGS:
        assert result.scores[label].support > 0, label
    assert 0.0 < result.macro_f1 <= 1.0
