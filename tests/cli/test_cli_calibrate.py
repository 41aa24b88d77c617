"""``radlens calibrate`` on the tiny ONNX model: calibration and thresholds refitted from val,
weights and their hash untouched, the folder still loads and ``evaluate`` agrees."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

from radlens.evaluation.calibration import thresholds_for
from radlens.evaluation.evaluate import predict_logits
from radlens.inference.backends import OnnxBackend
from radlens.io.datasets import read_labelled
from radlens.models.card import CalibrationMethod, read_card, write_card
from radlens.models.registry import load_model, sha256_of

Radlens = Callable[..., Result]


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    """Brightness ``f`` uniform in [0.1, 0.9], label 1 with probability ``f``: the tiny
    model's logit difference rises with ``f`` but is not a calibrated probability."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 10), ("val", 80)):
        bright = rng.uniform(0.1, 0.9, n)
        labels = (rng.random(n) < bright).astype(np.int64)
        images = (rng.random((n, 28, 28)) < bright[:, None, None]) * 200 + 20
        arrays[f"{split}_images"] = images.astype(np.uint8)
        arrays[f"{split}_labels"] = labels[:, None]
    path = tmp_path / "greymnist.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture
def model_dir(tiny_onnx_model_dir: Path, tmp_path: Path) -> Path:
    """The shared tiny model, copied so the test may rewrite its card."""
    return Path(shutil.copytree(tiny_onnx_model_dir, tmp_path / "zoo" / "tiny_cxr"))


def test_calibrate_refits_calibration_and_thresholds_but_not_the_weights(
    radlens: Radlens, model_dir: Path, npz: Path
) -> None:
    weights = (model_dir / "model.onnx").read_bytes()
    before = read_card(model_dir / "card.json")
    result = radlens("calibrate", model_dir, "--data", npz, "--high-sensitivity", "0.9")
    assert result.exit_code == 0, result.stderr
    assert "weights unchanged" in result.stdout

    after = load_model(model_dir).card  # the registry still accepts the folder
    assert (model_dir / "model.onnx").read_bytes() == weights
    assert after.sha256 == before.sha256 == sha256_of(model_dir / "model.onnx")
    assert after.calibration != before.calibration
    assert after.calibration.method in (CalibrationMethod.TEMPERATURE, CalibrationMethod.PLATT)
    assert set(after.calibration.cv_nll) == {"temperature", "platt"}
    assert after.calibration.ece_cv is not None and after.calibration.ece_noise_p95 is not None
    assert after.metrics["val"]["n"] == 80
    # Only calibration, thresholds and the val metrics they decide change.
    assert (
        replace(
            after,
            calibration=before.calibration,
            thresholds=before.thresholds,
            metrics=before.metrics,
        )
        == before
    )

    val = read_labelled(npz, "val", after.labels)
    logits = predict_logits(after, OnnxBackend(model_dir / "model.onnx"), val)
    probs = after.calibration.probabilities(logits, after.task)
    assert after.thresholds == thresholds_for(after.task, val.labels, probs, 0.9, 1, after.labels)

    evaluated = radlens("evaluate", "--model", model_dir, "--data", npz, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    for key in ("auc", "acc", "ece", "nll", "sensitivity_at_operating"):
        assert report["metrics"][key] == pytest.approx(report["card_metrics"][key], abs=1e-6)


def test_calibrate_twice_gives_the_same_card(radlens: Radlens, model_dir: Path, npz: Path) -> None:
    assert radlens("calibrate", model_dir, "--data", npz).exit_code == 0
    first = (model_dir / "card.json").read_text()
    assert radlens("calibrate", model_dir, "--data", npz).exit_code == 0
    assert (model_dir / "card.json").read_text() == first


def test_calibrate_defaults_to_the_card_training_data(
    radlens: Radlens, model_dir: Path, npz: Path
) -> None:
    card = read_card(model_dir / "card.json")
    named = replace(card.training, data=f"{npz} (train split 10, val split 80)")
    write_card(replace(card, training=named), model_dir / "card.json")
    result = radlens("calibrate", model_dir, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["data"] == str(npz) and report["n_val"] == 80
    # No recipe file: the high-sensitivity threshold keeps the sensitivity it had on val.
    assert report["high_sensitivity_from"] == "the current threshold on val"
    assert report["after"]["method"] in ("temperature", "platt")


def test_calibrate_without_data_says_to_pass_it(radlens: Radlens, model_dir: Path) -> None:
    before = (model_dir / "card.json").read_text()
    result = radlens("calibrate", model_dir)  # the tiny card's data is "synthetic"
    assert result.exit_code == 1
    assert "pass --data" in result.stderr
    assert (model_dir / "card.json").read_text() == before


def test_calibrate_refuses_data_labelled_for_another_model(
    radlens: Radlens, model_dir: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    three = tmp_path / "three.npz"
    np.savez(
        three,
        val_images=rng.integers(0, 255, (12, 28, 28), dtype=np.uint8),
        val_labels=(np.arange(12) % 3)[:, None],
    )
    before = (model_dir / "card.json").read_text()
    result = radlens("calibrate", model_dir, "--data", three)
    assert result.exit_code == 2
    assert "three.npz" in result.stderr and "labels go up to 2" in result.stderr
    assert (model_dir / "card.json").read_text() == before


@pytest.mark.shared_data
def test_calibrate_fits_a_detectors_operating_score_on_val_and_nothing_else(
    radlens: Radlens, tmp_path: Path, shared_data_dir: Path
) -> None:
    """A detector has no probabilities to calibrate: its ``operating`` score becomes the
    best val F1 of boxes at IoU 0.5, which evaluate's figures confirm; the version is the
    one asked for and train.log records the step."""
    from radlens.evaluation.detection import measure_detector
    from radlens.io.box_sets import read_boxes
    from radlens.models.registry import zoo_folder

    folder = Path(shutil.copytree(zoo_folder() / "bccd_cells", tmp_path / "bccd_cells"))
    before = read_card(folder / "card.json")
    weights = (folder / "model.onnx").read_bytes()
    data = shared_data_dir / "det" / "bccd_blood_cells"
    result = radlens("calibrate", folder, "--data", data, "--version", "9.9.9", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    after = load_model(folder).card
    assert (folder / "model.onnx").read_bytes() == weights
    assert after.version == "9.9.9"
    assert report["before"] == before.threshold and report["n_val"] == 87
    assert after.threshold == pytest.approx(report["point"]["score"], abs=1e-6)
    val = read_boxes(data, "val", after.labels)
    scores, point = measure_detector(after, OnnxBackend(folder / "model.onnx"), val, 0.3)
    assert point.score == pytest.approx(after.threshold, abs=1e-6)
    for key, value in point.as_metrics().items():
        assert after.metrics["val"][key] == value
    assert after.metrics["val"]["map50"] == round(scores.map_50, 4)
    # No other card field moves; the log says what changed.
    assert (
        replace(after, version=before.version, thresholds=before.thresholds, metrics=before.metrics)
        == before
    )
    assert "radlens calibrate: operating score 0.3 -> " in (folder / "train.log").read_text()
