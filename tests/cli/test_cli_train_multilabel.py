"""Multi-label (ChestMNIST-style) training: the loss, the thresholds, the inferred recipe, and
``radlens train --dataset`` then ``radlens evaluate`` end to end on a tiny ``(N, 3)`` npz."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

from radlens.models.card import Task
from train_helpers import TINY, minimal_recipe

pytestmark = pytest.mark.train

LABELS = 3


def multilabel_npz(path: Path, side: int = 12, n: int = 24) -> Path:
    """Label k is present when the k-th horizontal band is bright; every combination occurs."""
    rng = np.random.default_rng(0)
    band = side // LABELS
    arrays = {}
    for split in ("train", "val"):
        labels = np.array([[(i >> k) & 1 for k in range(LABELS)] for i in range(n)], np.uint8)
        images = rng.integers(0, 60, (n, side, side))
        for k in range(LABELS):
            images[:, k * band : (k + 1) * band] += 180 * labels[:, k, None, None]
        arrays[f"{split}_images"] = images.astype(np.uint8)
        arrays[f"{split}_labels"] = labels
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_infer_recipe_makes_a_multilabel_task_for_n_by_k_labels(tmp_path: Path) -> None:
    from radlens.training.recipe import infer_recipe, recipe_from_dict

    data = multilabel_npz(tmp_path / "chesty.npz")
    inferred = infer_recipe(data, "chesty")
    assert inferred["task"] == "multilabel"
    assert inferred["labels"] == ["0", "1", "2"]
    assert recipe_from_dict(inferred, "inferred").task is Task.MULTILABEL


def multilabel_recipe(**schedule: object):  # type: ignore[no-untyped-def]
    return minimal_recipe("multilabel", ["A", "B"], **schedule)


def test_balanced_positive_weights_are_negatives_over_positives() -> None:
    pytest.importorskip("torch")
    from radlens.training.loop import positive_weights

    y = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]])
    # 1 of 4, none (weighted as if one), 3 of 4.
    assert positive_weights(y, "balanced").tolist() == pytest.approx([3.0, 4.0, 1 / 3])
    assert positive_weights(y, "none").tolist() == [1.0, 1.0, 1.0]


def test_multilabel_loss_is_binary_cross_entropy_with_pos_weight() -> None:
    torch = pytest.importorskip("torch")
    from radlens.training.loop import loss_fn

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    y = torch.tensor([[1, 0], [0, 1]])
    weights = torch.tensor([2.0, 1.0])
    expected = torch.nn.BCEWithLogitsLoss(pos_weight=weights)(logits, y.float())
    assert float(loss_fn(logits, y, weights, multilabel_recipe())) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="not for multi-label"):
        loss_fn(logits, y, weights, multilabel_recipe(loss="ce+emd"))


def test_multilabel_validation_scores_follow_the_multilabel_metrics() -> None:
    pytest.importorskip("torch")
    from radlens.evaluation import metrics as m
    from radlens.training.loop import validation_scores

    logits = np.array([[2.0, -1.0], [-0.5, 0.3], [1.0, 1.0]])
    y = np.array([[1, 0], [0, 1], [0, 1]])
    p = m.sigmoid(logits)
    assert validation_scores(Task.MULTILABEL, logits, y) == (
        m.nll_multilabel(y, p),
        m.auc_multilabel(y, p),
        m.accuracy_multilabel(y, p),
    )


def test_multilabel_thresholds_are_operating_and_youden_per_label() -> None:
    from radlens.evaluation.calibration import thresholds_for

    y = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])
    probs = np.array([[0.1, 0.9], [0.4, 0.2], [0.35, 0.8], [0.8, 0.3]])
    got = thresholds_for(Task.MULTILABEL, y, probs, 0.95, 1, ("Effusion", "Nodule"))
    assert got == {"operating": 0.5, "youden:Effusion": 0.35, "youden:Nodule": 0.8}


def test_multilabel_calibration_fits_a_sigmoid_temperature() -> None:
    from radlens.evaluation import metrics as m
    from radlens.evaluation.calibration import calibrate

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2.0, (2000, 3))
    y = (rng.random(logits.shape) < m.sigmoid(logits)).astype(int)
    calibration, calibrated = calibrate(Task.MULTILABEL, logits * 3, y)
    assert calibration.temperature == pytest.approx(3.0, rel=0.1)
    np.testing.assert_allclose(calibrated, m.sigmoid(logits * 3, calibration.temperature))
    assert calibration.ece_after is not None and calibration.ece_before is not None
    assert calibration.ece_after < calibration.ece_before


@pytest.mark.slow
def test_train_a_multilabel_dataset_then_evaluate_reproduces_the_card(
    radlens: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    monkeypatch.setenv("RADLENS_DATA", str(tmp_path / "data"))
    data = multilabel_npz(tmp_path / "data" / "medmnist" / "chestymnist.npz")
    out = tmp_path / "model"
    trained = radlens(
        "train", "--dataset", "chestymnist", "--recipes", tmp_path, "-o", out, "--seed", "1", *TINY
    )
    assert trained.exit_code == 0, trained.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["task"] == "multilabel" and card["labels"] == ["0", "1", "2"]
    assert set(card["thresholds"]) == {"operating", "youden:0", "youden:1", "youden:2"}
    assert card["thresholds"]["operating"] == 0.5
    assert all(0.0 <= t <= 1.0 for t in card["thresholds"].values())
    assert set(card["metrics"]["val"]) == {"auc", "acc", "ece", "ece_uncalibrated", "nll", "n"}
    assert card["calibration"]["temperature"] > 0

    evaluated = radlens("evaluate", "--model", out, "--data", data, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    for key in ("auc", "acc", "ece"):
        assert report["metrics"][key] == pytest.approx(card["metrics"]["val"][key], abs=1e-6)
    assert list(report["per_class"]) == ["0", "1", "2"]
    assert all(figures["n"] == 12 for figures in report["per_class"].values())
    assert set(report["per_class"]["1"]) == {"n", "auc", "sensitivity", "specificity"}
    table = radlens("evaluate", "--model", out, "--data", data)
    assert table.exit_code == 0, table.stderr

    from radlens.domain.imaging import Geometry, Image, ImageLayout
    from radlens.inference.backends import OnnxBackend
    from radlens.inference.predict import predict
    from radlens.models.card import read_card

    model_card = read_card(out / "card.json")
    bright_top = np.zeros((12, 12), np.float32)
    bright_top[:4] = 200.0
    findings = predict(
        Image(bright_top, ImageLayout.YX, Geometry((1.0, 1.0))),
        model_card,
        OnnxBackend(out / "model.onnx"),
    )
    assert [f.code for f in findings] == ["0", "1", "2"]
    assert all(f.heatmap is not None and f.threshold == 0.5 for f in findings)
