"""benchmarks/bench_trust.py: dataset families, merging a ``--only`` run into earlier results,
input-only models in the tables and the goal counts, and the committed results."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from bench_helpers import BENCHMARKS, load_benchmark

bench = load_benchmark("bench_trust")


def _row(model: str, source: str, auroc: float, feature: float | None) -> dict[str, Any]:
    return {
        "model": model,
        "ood_source": source,
        "n_in": 10,
        "n_out": 20,
        "auroc_feature": feature,
        "auroc_input": auroc,
        "auroc_combined": auroc,
        "flagged_out": 0.9,
        "flagged_out_feature_only": None if feature is None else 0.5,
    }


def _own(model: str, scores: str) -> dict[str, Any]:
    alone = None if scores == "inputs only" else 0.05
    return {
        "model": model,
        "n_val": 10,
        "input_statistics": "image2d/1",
        "scores": scores,
        "val_flag_rate": 0.05,
        "val_flag_rate_feature_only": alone,
        "card_val_flag_rate": 0.05,
    }


def _result(models: dict[str, str], date: str) -> dict[str, Any]:
    return {
        "per_source": 200,
        "max_val_corrupted": 300,
        "own_val": [_own(m, s) for m, s in models.items()],
        "rows": [
            _row(m, "BCCD", 0.95, None if s == "inputs only" else 0.9) for m, s in models.items()
        ],
        "corruptions": [],
        "real_dicom": [],
        "runs": [{"date": date, "machine": "test, 2 cores", "models": list(models)}],
    }


@pytest.mark.parametrize(
    ("where", "family"),
    [
        ("medmnist/adrenalmnist3d_64.npz", "adrenalmnist3d"),
        ("cxr_pneumonia", "cxr"),
        ("det/fracatlas_fracture/images", "fracatlas"),
        ("build/data/fracatlas", "fracatlas"),
        ("seg/hc18_fetal_head_us/images", "hc18"),
        ("seg/hc18_fetal_head_us", "hc18"),
        ("det/bccd_blood_cells/JPEGImages", "bccd"),
        ("cls/knee_oa_kl_grade", "knee"),
    ],
)
def test_a_dataset_and_its_views_share_a_family(where: str, family: str) -> None:
    assert bench._family(where) == family


def test_an_only_run_replaces_its_models_rows_and_keeps_the_others_with_their_dates() -> None:
    old = _result({"cxr": "features + inputs", "bccd_cells": "inputs only"}, "2026-01-01")
    del old["runs"]  # results written before runs were recorded
    old |= {"date": "2026-01-01", "machine": "old, 2 cores", "notes": ["kept"]}
    new = _result({"bccd_cells": "inputs only", "knee": "features + inputs"}, "2026-02-02")
    new["rows"][0]["auroc_combined"] = 0.99
    merged = bench.merge(old, new)
    assert [r["model"] for r in merged["own_val"]] == ["cxr", "bccd_cells", "knee"]
    assert [r["auroc_combined"] for r in merged["rows"]] == [0.95, 0.99, 0.95]
    assert merged["runs"] == [
        {"date": "2026-01-01", "machine": "old, 2 cores", "models": ["cxr"]},
        new["runs"][0],
    ]
    assert merged["notes"] == ["kept"] and "date" not in merged


def test_input_only_models_render_with_empty_feature_columns_and_are_counted_apart() -> None:
    result = _result({"cxr": "features + inputs", "bccd_cells": "inputs only"}, "2026-03-03")
    text = bench.render(result)
    assert "| bccd_cells | BCCD | 10 | 20 | — | 0.9500 | **0.9500** | 90.0% | — |" in text
    assert "| bccd_cells | inputs only | image2d/1 | 10 | 5.0% | — |" in text
    assert (
        "- other datasets (AUROC ≥ 0.99): 0 of 2 met (feature score alone: 0 of 1 rows of "
        "models with features; input score alone, models without features: 0 of 1)"
    ) in text
    assert "Measured 2026-03-03 on test, 2 cores" in text


def test_a_real_dicom_row_says_why_it_is_flagged_in_the_warning_s_words() -> None:
    result = _result({"cxr": "features + inputs"}, "2026-03-03")
    base = {"modality": "CR", "model": "cxr", "feature": 9.0, "input": 30.0}
    result["real_dicom"] = [
        base
        | {"file": "a.dcm", "combined": 2.5, "flag": True, "feature_only_flag": False}
        | {"reasons": [{"statistic": "share_white", "z": 41.6}, {"statistic": "mean", "z": -5.2}]},
        base
        | {"file": "b.dcm", "combined": 0.5, "flag": False, "feature_only_flag": False}
        | {"reasons": []},
        base | {"file": "old.dcm", "combined": 0.5, "flag": False, "feature_only_flag": False},
    ]
    text = bench.render(result)
    assert (
        "| a.dcm | CR | cxr | 9.0 | 30.0 | 2.5 | yes | no | more clipped white (+42); darker (-5) |"
        in text
    )
    assert "| b.dcm | CR | cxr | 9.0 | 30.0 | 0.5 | no | no | — |" in text
    assert "| old.dcm | CR | cxr | 9.0 | 30.0 | 0.5 | no | no | — |" in text  # rows from before


def test_medmnistc_rows_get_their_own_section_and_goal_line() -> None:
    result = _result({"knee": "features + inputs"}, "2026-03-03")
    plain = bench.render(result)
    assert "MedMNIST-C" not in plain
    row = {
        "model": "knee",
        "table": "chestmnist",
        "corruption": "shot_noise",
        "severity": 5,
        "n_out": 30,
        "auroc_feature": 0.99,
        "auroc_input": 1.0,
        "auroc_combined": 1.0,
        "flagged_out": 0.9,
        "input_change": 0.4,
    }
    faint = row | {
        "corruption": "contrast_down",
        "auroc_combined": 0.52,
        "input_change": 0.01,
        "auc_clean": 0.8,
        "auc_corrupted": 0.795,
        "auc_change_ci": [-0.021, 0.012],
    }
    result |= {"corruptions_medmnistc": [row, faint], "medmnistc_date": "2026-03-04"}
    text = bench.render(result)
    assert "## Severity-5 corruptions of MedMNIST-C (measured 2026-03-04)" in text
    # A row measured before the model's AUC was: a dash, not a made-up figure.
    assert (
        "| knee | chestmnist | shot_noise | 30 | 0.9900 | 1.0000 | **1.0000** | 90.0% | 40.0% "
        "| — |" in text
    )
    assert "**0.5200** | 90.0% | 1.0% | 0.800 / 0.795 (-0.005; 95% -0.021 to +0.012) |" in text
    assert "- MedMNIST-C severity-5 corruptions (AUROC ≥ 0.9): 1 of 2 met" in text
    assert (
        "not met: knee vs contrast_down (chestmnist) 0.520 "
        "(model AUC 0.800 / 0.795 (-0.005; 95% -0.021 to +0.012))" in text
    )


def test_a_corruption_row_has_the_model_auc_on_clean_and_corrupted_images() -> None:
    from radlens.models.card import Calibration, InputSpec

    class Card:
        name, task = "toy", bench.Task.BINARY
        input = InputSpec(size=(8, 8))
        calibration = Calibration()

    labels = np.array([0, 1, 0, 1])
    good = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.2], [0.3, 0.7]])

    def read(images: list[np.ndarray]) -> dict[str, np.ndarray]:
        # The clean images are read right; any corruption swaps the last two items' logits.
        clean = all(np.array_equal(im, np.full((8, 8), 100.0)) for im in images)
        logits = good if clean else good[[0, 1, 3, 2]]
        flags = np.zeros(len(images), bool)
        scores = np.where(clean, 0.5, 2.0) * np.ones(len(images))
        return {
            "feature": scores,
            "input": scores,
            "combined": scores,
            "flag": flags,
            "flag_feature": flags,
            "logits": logits,
        }

    sample = [np.full((8, 8), 100.0)] * 4
    rows = bench._corrupted(Card(), read, sample, read(sample), "breastmnist", labels)
    assert rows and all(r["auc_clean"] == 1.0 for r in rows)
    changed = [r for r in rows if r["auc_corrupted"] < 1.0]
    assert changed and all(r["auc_corrupted"] == 0.75 for r in changed)
    # Swapping one positive below one negative can only lower the AUC of a resample.
    assert all(r["auc_change_ci"][1] <= 0 and r["auc_change_ci"][0] < 0 for r in changed)


def test_flag_shares_are_none_for_a_score_the_model_has_not() -> None:
    assert bench._share(np.array([True, False])) == 0.5
    assert bench._share(np.full(3, np.nan)) is None


def test_the_committed_results_have_rows_for_every_shipped_model_with_an_ood_score() -> None:
    from radlens.models.registry import discover

    result = json.loads((BENCHMARKS / "trust.json").read_text(encoding="utf-8"))
    shipped = {
        m.card.name
        for m in discover(include_disabled=True)
        if m.card.ood is not None or m.card.input_ood is not None
    }
    assert shipped <= {r["model"] for r in result["own_val"]}
    assert shipped <= {r["model"] for r in result["rows"]}
    measured = {m for run in result["runs"] for m in run["models"]}
    assert measured == {r["model"] for r in result["own_val"]}
