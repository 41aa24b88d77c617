"""The shipped blood-cell detector: card, routing, boxes on a real smear, reproducible AP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radlens.analyze import analyze
from radlens.evaluation.detection import evaluate_detector
from radlens.inference.backends import OnnxBackend
from radlens.inference.detection import box_iou, detect
from radlens.io.box_sets import read_boxes
from radlens.models.card import Task
from radlens.models.registry import discover, get_model, zoo_folder

BCCD = Path("det") / "bccd_blood_cells"


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return get_model("bccd_cells", discover())


def test_shipped_detector_card_is_complete_and_its_weights_small(model) -> None:  # type: ignore[no-untyped-def]
    card = model.card
    assert card.task is Task.DETECTION and card.labels == ("Platelets", "RBC", "WBC")
    assert card.outputs == ("heatmap", "ltrb") and card.detection is not None
    assert card.detection.triage_classes == ()  # no cell type raises a study's priority
    assert card.applies_to.modalities == ("SM", "OT", "XC") and card.applies_to.color
    assert card.applies_to.body_parts == ("BLOOD",)
    assert "radlens train recipes/bccd_cells.toml" in card.training.command
    assert (zoo_folder() / "bccd_cells" / "train.log").exists()
    assert {"map50", "map50_95", "ap50:WBC", "ap50:RBC", "ap50:Platelets"} <= set(
        card.metrics["val"]
    )
    assert model.weights.stat().st_size < 1_000_000


@pytest.mark.shared_data
def test_a_val_smear_gets_a_wbc_box_on_the_labelled_white_cell(
    model, shared_data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    val = read_boxes(shared_data_dir / BCCD, "val", model.card.labels)
    wbc = model.card.labels.index("WBC")
    k = next(i for i, c in enumerate(val.classes) if (c == wbc).sum() == 1)
    found = detect(val.images[k], model.card, OnnxBackend(model.weights))
    kept = found.scores >= model.card.threshold
    boxes, classes = found.boxes[kept], found.classes[kept]
    truth = val.boxes[k][val.classes[k] == wbc]
    assert (classes == wbc).any()
    assert box_iou(boxes[classes == wbc], truth).max() >= 0.5
    assert (classes == model.card.labels.index("RBC")).sum() >= 3  # a smear has red cells


@pytest.mark.shared_data
@pytest.mark.slow
def test_evaluate_reproduces_the_card_ap(model, shared_data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    val = read_boxes(shared_data_dir / BCCD, "val", model.card.labels)
    scores = evaluate_detector(model.card, OnnxBackend(model.weights, threads=2), val)
    for key, value in scores.as_metrics().items():
        assert value == pytest.approx(model.card.metrics["val"][key], abs=0.002), key


@pytest.mark.shared_data
def test_analyze_a_smear_jpeg_tagged_as_microscopy_writes_boxes(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    jpeg = shared_data_dir / BCCD / "JPEGImages" / "BloodImage_00001.jpg"
    run = analyze([jpeg], tmp_path, discover(), modality="SM", body_part="BLOOD")
    assert run.exit_code == 0
    [output] = run.outputs
    doc = json.loads((output.folder / "findings.json").read_text())
    [series] = doc["series"]
    assert series["models"] == ["bccd_cells"]
    labels = {f["label"] for f in series["findings"]}
    assert {"RBC", "WBC"} <= labels
    for f in series["findings"]:
        x0, y0, x1, y1 = f["box_px"]
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480 and f["positive"]
    assert list(output.folder.glob("overlay_*.png"))
    # The cells of a smear are counted, not abnormalities: the study is not pushed up.
    assert all(f["counted"] for f in series["findings"]) and doc["priority"] == "routine"
    untagged = analyze([jpeg], tmp_path / "b", discover())
    assert not untagged.outputs[0].result.findings  # a colour JPEG alone is not a smear
