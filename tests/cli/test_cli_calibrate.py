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


@pytest.fixture
def cross_fitted(model_dir: Path, tmp_path: Path) -> Path:
    """The tiny model's logits on 400 more images drawn as the fixture's, as a recipe's
    cross-fitted train logits would be (the same model here: the file format is the point)."""
    rng = np.random.default_rng(1)
    bright = rng.uniform(0.1, 0.9, 400)
    labels = (rng.random(400) < bright).astype(np.int64)
    images = ((rng.random((400, 28, 28)) < bright[:, None, None]) * 200 + 20).astype(np.uint8)
    items = tmp_path / "more.npz"
    np.savez(items, val_images=images, val_labels=labels[:, None])
    card = read_card(model_dir / "card.json")
    logits = predict_logits(
        card, OnnxBackend(model_dir / "model.onnx"), read_labelled(items, "val", card.labels)
    )
    path = tmp_path / "tiny_cxr-cross-fitted.npz"
    np.savez(path, logits=logits.astype(np.float32), labels=labels)
    return path


def test_calibrate_pools_cross_fitted_items_with_val_and_keeps_them_beside_the_card(
    radlens: Radlens, model_dir: Path, npz: Path, cross_fitted: Path
) -> None:
    hs = ("--high-sensitivity", "0.9")
    (model_dir / "train.log").write_text("trained\n")  # a calibration is logged beside it
    assert radlens("calibrate", model_dir, "--data", npz, *hs).exit_code == 0
    val_only = read_card(model_dir / "card.json")

    result = radlens(
        "calibrate", model_dir, "--data", npz, *hs, "--cross-fitted", cross_fitted, "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["after"]["cross_fitted"]["n"] == 400
    pooled = load_model(model_dir).card
    record = pooled.calibration.cross_fitted
    assert record is not None and record.n == 400 and record.file == "cross_fitted.npz"
    kept = model_dir / "cross_fitted.npz"
    assert kept.read_bytes() == cross_fitted.read_bytes() and sha256_of(kept) == record.sha256
    assert pooled.calibration.temperature != val_only.calibration.temperature
    # Thresholds and metrics stay val's: the val items under the pooled calibration.
    val = read_labelled(npz, "val", pooled.labels)
    logits = predict_logits(pooled, OnnxBackend(model_dir / "model.onnx"), val)
    probs = pooled.calibration.probabilities(logits, pooled.task)
    assert pooled.thresholds == thresholds_for(
        pooled.task, val.labels, probs, 0.9, 1, pooled.labels
    )
    assert pooled.metrics["val"]["n"] == 80
    assert "+ 400 cross-fitted train items" in (model_dir / "train.log").read_text()

    # A plain refit uses the file the card names, and gives the same card.
    first = (model_dir / "card.json").read_text()
    assert radlens("calibrate", model_dir, "--data", npz, *hs).exit_code == 0
    assert (model_dir / "card.json").read_text() == first

    # --val-only drops the pool and its file, back to the val-only card.
    assert radlens("calibrate", model_dir, "--data", npz, *hs, "--val-only").exit_code == 0
    assert read_card(model_dir / "card.json") == val_only
    assert not kept.exists()


def test_calibrate_refuses_a_changed_cross_fitted_file_beside_the_card(
    radlens: Radlens, model_dir: Path, npz: Path, cross_fitted: Path
) -> None:
    assert (
        radlens("calibrate", model_dir, "--data", npz, "--cross-fitted", cross_fitted).exit_code
        == 0
    )
    with np.load(model_dir / "cross_fitted.npz") as saved:
        logits, labels = saved["logits"], saved["labels"]
    np.savez(model_dir / "cross_fitted.npz", logits=logits, labels=1 - labels)
    before = (model_dir / "card.json").read_text()
    result = radlens("calibrate", model_dir, "--data", npz)
    assert result.exit_code != 0
    assert "cross_fitted.npz" in result.stderr and "sha256" in result.stderr
    assert "Traceback" not in result.stderr
    assert (model_dir / "card.json").read_text() == before


@pytest.mark.parametrize(
    ("arrays", "reason"),
    [
        ({"logits": np.zeros((5, 3)), "labels": np.zeros(5, np.int64)}, "(N, 2)"),
        ({"logits": np.zeros((5, 2)), "labels": np.full(5, 2)}, "labels must lie in 0-1"),
        ({"logits": np.zeros((5, 2)), "labels": np.zeros(4, np.int64)}, "labels must be 5"),
        ({"logits": np.full((5, 2), np.nan), "labels": np.zeros(5, np.int64)}, "finite"),
        ({"scores": np.zeros((5, 2))}, "'logits' and 'labels'"),
        (None, "'logits' and 'labels'"),
    ],
)
def test_calibrate_refuses_cross_fitted_logits_that_do_not_fit_the_model(
    radlens: Radlens,
    model_dir: Path,
    npz: Path,
    tmp_path: Path,
    arrays: dict[str, np.ndarray] | None,
    reason: str,
) -> None:
    bad = tmp_path / "bad.npz"
    if arrays is None:
        bad.write_bytes(b"not a zip")
    else:
        np.savez(bad, **arrays)
    before = (model_dir / "card.json").read_text()
    result = radlens("calibrate", model_dir, "--data", npz, "--cross-fitted", bad)
    assert result.exit_code == 2, result.stderr
    assert "bad.npz" in result.stderr and reason in result.stderr
    assert "Traceback" not in result.stderr
    assert (model_dir / "card.json").read_text() == before
    assert not (model_dir / "cross_fitted.npz").exists()


def test_calibrate_refuses_a_missing_cross_fitted_file_and_both_options(
    radlens: Radlens, model_dir: Path, npz: Path, cross_fitted: Path, tmp_path: Path
) -> None:
    missing = radlens("calibrate", model_dir, "--data", npz, "--cross-fitted", tmp_path / "no.npz")
    assert missing.exit_code == 1 and "no.npz not found" in missing.stderr
    both = radlens(
        "calibrate", model_dir, "--data", npz, "--cross-fitted", cross_fitted, "--val-only"
    )
    assert both.exit_code == 1 and "val only uses no cross-fitted items" in both.stderr
    choose = radlens("calibrate", model_dir, "--data", npz, "--choose-only", "--val-only")
    assert choose.exit_code == 1 and "val only uses no cross-fitted items" in choose.stderr
    nothing = radlens("calibrate", model_dir, "--data", npz, "--choose-only")
    assert nothing.exit_code == 1 and "pass --cross-fitted" in nothing.stderr
    assert "Traceback" not in nothing.stderr


def test_calibrate_can_choose_the_method_on_the_pool_and_fit_it_on_val(
    radlens: Radlens, model_dir: Path, npz: Path, cross_fitted: Path
) -> None:
    hs = ("--high-sensitivity", "0.9")
    (model_dir / "train.log").write_text("trained\n")
    assert radlens("calibrate", model_dir, "--data", npz, *hs).exit_code == 0
    val_only = read_card(model_dir / "card.json").calibration
    args = ("calibrate", model_dir, "--data", npz, *hs, "--cross-fitted", cross_fitted)
    assert radlens(*args).exit_code == 0
    pooled = read_card(model_dir / "card.json").calibration

    assert radlens(*args, "--choose-only").exit_code == 0
    chosen = read_card(model_dir / "card.json").calibration
    record = chosen.cross_fitted
    assert record is not None and record.use == "choose" and record.n == 400
    # The pool's choice and its out-of-fold NLLs; the parameters and ECE figures val's.
    assert chosen.method is pooled.method and chosen.cv_nll == pooled.cv_nll
    assert chosen.method is val_only.method  # this tiny model: the same method either way
    assert chosen.temperature == val_only.temperature != pooled.temperature
    assert chosen.ece_after == val_only.ece_after and chosen.ece_cv == val_only.ece_cv
    assert (
        json.loads((model_dir / "card.json").read_text())["calibration"]["cross_fitted"]["use"]
        == "choose"
    )
    assert "(method chosen on val + 400 cross-fitted train items)" in (
        (model_dir / "train.log").read_text()
    )
    # A plain refit keeps the card's use of the pool; --choose-only alone switches a card's.
    first = (model_dir / "card.json").read_text()
    assert radlens("calibrate", model_dir, "--data", npz, *hs).exit_code == 0
    assert (model_dir / "card.json").read_text() == first
    assert radlens(*args).exit_code == 0
    assert read_card(model_dir / "card.json").calibration == pooled
    assert radlens("calibrate", model_dir, "--data", npz, *hs, "--choose-only").exit_code == 0
    assert (model_dir / "card.json").read_text() == first


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
