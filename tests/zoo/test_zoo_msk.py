"""The shipped musculoskeletal models: knee osteoarthritis grade (and fracture, when shipped):
cards, routing, a real val radiograph end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from radlens.analyze import analyze
from radlens.domain.findings import Priority
from radlens.domain.imaging import Instance, Series
from radlens.io.datasets import read_labelled
from radlens.models.card import Task
from radlens.models.registry import discover, get_model, route

KNEE = "knee_oa_kl"
KNEE_DATA = "cls/knee_oa_kl_grade"


def _series(modality: str, body_part: str) -> Series:
    instance = Instance("1.2.3.1", "", Path("in.png"), rows=224, columns=224, frames=1)
    return Series("1.2.3.2", modality, (instance,), body_part=body_part)


def test_the_knee_card_is_an_ordinal_kl_grader_that_never_alerts() -> None:
    card = get_model(KNEE, discover()).card
    assert card.task is Task.ORDINAL
    assert card.labels == ("KL 0", "KL 1", "KL 2", "KL 3", "KL 4")
    assert card.triage_min_grade is None  # osteoarthritis is never urgent
    assert {"qwk", "mae", "acc"} <= set(card.metrics["val"])
    assert card.ood is not None and card.outputs == ("logits", "cam")


@pytest.mark.parametrize(
    ("modality", "body_part", "expected"),
    [("DX", "KNEE", True), ("CR", "KNEE", True), ("CR", "CHEST", False), ("DX", "", False)],
)
def test_knee_radiographs_and_only_they_route_to_the_knee_model(
    modality: str, body_part: str, expected: bool
) -> None:
    chosen = {m.card.name for m in route(_series(modality, body_part), discover()).models}
    assert (KNEE in chosen) is expected, chosen


@pytest.mark.shared_data
def test_a_val_knee_radiograph_gets_a_grade_with_its_distribution_and_a_heatmap(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    from PIL import Image as PILImage

    val = read_labelled(shared_data_dir / KNEE_DATA, "val")
    severe = val.ids.index(next(i for i in val.ids if i.startswith("val/4/")))
    PILImage.fromarray(val.images[severe]).save(tmp_path / "knee.png")
    run = analyze(
        [tmp_path / "knee.png"], tmp_path / "out", discover(), modality="DX", body_part="KNEE"
    )
    [output] = run.outputs
    [finding] = [f for f in output.result.findings if f.model_name == KNEE]
    assert finding.grade is not None and finding.grade_label == f"KL {finding.grade}"
    assert finding.heatmap is not None and finding.heatmap.shape == (224, 224)
    probabilities = [p for _, p in finding.grade_probabilities]
    assert len(probabilities) == 5 and sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert finding.probability == pytest.approx(max(probabilities), abs=1e-6)
    assert finding.counted and output.result.priority is Priority.ROUTINE
    doc = json.loads((output.folder / "findings.json").read_text())
    written = next(f for s in doc["series"] for f in s["findings"] if f["model_name"] == KNEE)
    assert [g["label"] for g in written["grade_probabilities"]] == list(
        get_model(KNEE, discover()).card.labels
    )
    assert "KL" in (output.folder / "report.md").read_text()


@pytest.mark.shared_data
def test_severe_knees_grade_higher_than_healthy_ones(shared_data_dir: Path) -> None:
    from radlens.evaluation.evaluate import evaluate
    from radlens.inference.backends import OnnxBackend

    model = get_model(KNEE, discover())
    val = read_labelled(shared_data_dir / KNEE_DATA, "val", model.card.labels)
    result = evaluate(model.card, OnnxBackend(model.weights, threads=1), val)
    expected = result.probs @ np.arange(5)
    assert expected[val.labels == 4].mean() > expected[val.labels == 0].mean() + 1.5
