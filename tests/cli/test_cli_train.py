"""``radlens train --dataset`` end to end on tiny real-format data, then ``evaluate``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

from radlens.cli.train import parse_sets
from radlens.errors import ConfigError
from train_helpers import TINY


def learnable_npz(path: Path, shape: tuple[int, ...], n_classes: int, n: int = 24) -> Path:
    """Brightness encodes the class, so two epochs learn something."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val"):
        labels = np.arange(n) % n_classes
        noise = rng.integers(0, 60, (n, *shape))
        images = noise + (labels * (190 // max(1, n_classes - 1))).reshape(-1, *[1] * len(shape))
        arrays[f"{split}_images"] = images.astype(np.uint8)
        arrays[f"{split}_labels"] = labels.reshape(n, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_parse_sets_reads_toml_values_and_bare_words() -> None:
    assert parse_sets(["net.widths=[8, 8, 16, 16]", "seed=3", "net.arch=resnet10"]) == {
        "net.widths": [8, 8, 16, 16],
        "seed": 3,
        "net.arch": "resnet10",
    }
    with pytest.raises(ConfigError):
        parse_sets(["no-equals-sign"])


@pytest.mark.train
@pytest.mark.slow
@pytest.mark.parametrize(
    ("shape", "n_classes", "output_cam_ndim", "extra"),
    [
        ((8, 8, 8), 2, 5, ["--set", "schedule.ensemble=2"]),
        (
            (12, 12, 3),
            3,
            4,
            [
                "--set",
                "schedule.ema=0.9",
                "--set",
                "schedule.tta=true",
                "--set",
                "augment.hflip=true",
            ],
        ),
    ],
    ids=["volume-binary-ensemble", "colour-multiclass-ema-tta"],
)
def test_train_an_unknown_dataset_then_evaluate_reproduces_the_card(
    radlens: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shape: tuple[int, ...],
    n_classes: int,
    output_cam_ndim: int,
    extra: list[str],
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    monkeypatch.setenv("RADLENS_DATA", str(tmp_path / "data"))
    learnable_npz(tmp_path / "data" / "medmnist" / "tinymnist.npz", shape, n_classes)
    out = tmp_path / "model"
    trained = radlens(
        "train",
        "--dataset",
        "tinymnist",
        "--recipes",
        tmp_path,
        "-o",
        out,
        "--seed",
        "1",
        *TINY,
        *extra,
    )
    assert trained.exit_code == 0, trained.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["name"] == "tinymnist" and card["enabled_by_default"] is False
    # Every trained model gets its out-of-distribution score and threshold.
    assert card["ood"]["method"] == "mahalanobis" and (out / "ood.npz").exists()
    assert card["training"]["command"].startswith("radlens train --dataset tinymnist")
    log = (out / "train.log").read_text()
    assert log.count("epoch ") >= 2
    if "schedule.ensemble=2" in extra:
        assert "member 2/2" in log and "seed 2" in log

    evaluated = radlens(
        "evaluate", "--model", out, "--data", tmp_path / "data/medmnist/tinymnist.npz", "--json"
    )
    assert evaluated.exit_code == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    for key in ("auc", "acc", "ece"):
        assert report["metrics"][key] == pytest.approx(card["metrics"]["val"][key], abs=1e-6)

    from radlens.inference.backends import OnnxBackend

    x = np.zeros((1, card["input"]["channels"], *card["input"]["size"]), np.float32)
    assert OnnxBackend(out / "model.onnx").run(x)["cam"].ndim == output_cam_ndim


def test_train_needs_a_recipe_or_a_dataset(radlens: Callable[..., Result], tmp_path: Path) -> None:
    result = radlens("train", "-o", tmp_path / "m")
    assert result.exit_code == 1
    assert "either a recipe file or --dataset" in result.stderr


def test_train_an_absent_dataset_says_where_it_looked(
    radlens: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("RADLENS_DATA", str(tmp_path))
    result = radlens("train", "--dataset", "nosuchmnist", "--recipes", tmp_path, "-o", tmp_path)
    assert result.exit_code == 1
    assert "no dataset 'nosuchmnist'" in result.stderr
