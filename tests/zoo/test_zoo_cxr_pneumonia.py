"""The shipped chest X-ray pneumonia model: integrity, reproducible card metrics, demo output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radlens.analyze import analyze, demo_inputs
from radlens.evaluation.evaluate import evaluate
from radlens.inference.backends import OnnxBackend
from radlens.io.datasets import read_labelled
from radlens.models.registry import discover, get_model, zoo_folder


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return get_model("cxr_pneumonia", discover())


def test_shipped_model_is_verified_and_routes_chest_radiographs_only(model) -> None:  # type: ignore[no-untyped-def]
    card = model.card
    assert (zoo_folder() / "cxr_pneumonia" / "train.log").exists()
    assert card.applies_to.modalities == ("CR", "DX")
    assert card.applies_to.body_parts == ("CHEST",)
    assert card.applies_to.population.age_years_max == 5
    assert card.calibration.ece_after is not None
    assert card.metrics["val"]["n"] == 522
    assert "radlens train recipes/cxr_pneumonia.toml" in card.training.command


@pytest.mark.shared_data
@pytest.mark.slow
def test_evaluate_reproduces_card_val_metrics(model, shared_data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    card = model.card
    val = read_labelled(shared_data_dir / "cxr_pneumonia", "val", card.labels)
    result = evaluate(card, OnnxBackend(model.weights, threads=2), val)
    for key in ("auc", "acc", "ece"):
        assert result.metrics[key] == pytest.approx(card.metrics["val"][key], abs=0.002), key
    assert result.n == card.metrics["val"]["n"]


def test_demo_gives_a_finding_and_overlay_for_cr_chest_and_reasons_elsewhere(
    tmp_path: Path,
) -> None:
    run = analyze(demo_inputs(), tmp_path, discover())
    assert run.exit_code == 0
    chest = [
        s
        for o in run.outputs
        for s in o.result.series
        if s.modality == "CR" and s.body_part == "CHEST"
    ]
    assert len(chest) == 1 and chest[0].models == ("cxr_pneumonia",)
    finding = chest[0].findings[0]
    assert finding.heatmap is not None
    # RG1 is an adult (64 y): outside the pediatric training population, and flagged.
    assert finding.ood_flag and any(
        "outside the training population" in w for w in finding.warnings
    )
    chest_out = next(o for o in run.outputs if chest[0] in o.result.series)
    assert list(chest_out.folder.glob("overlay_*.png"))
    doc = json.loads((chest_out.folder / "findings.json").read_text())
    assert doc["schema"] == "radlens.findings/2"
    # The CR extremity (an adult hand) goes to the fracture model, which says the film is
    # unlike its training data.
    [limb] = [s for o in run.outputs for s in o.result.series if s.body_part == "EXTREMITY"]
    assert limb.models == ("fracture_xray",) and all(f.ood_flag for f in limb.findings)
    others = [s for o in run.outputs for s in o.result.series if s not in (chest[0], limb)]
    assert len(others) >= 5
    assert all(s.skipped_reason and not s.findings for s in others)
    assert {s.modality for s in others} >= {"CT", "MR", "US", "NM"}
