"""``radlens evaluate`` on a tiny npz with the tiny ONNX model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

Radlens = Callable[..., Result]


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    """Label 1 images are mostly bright, label 0 mostly dark: the tiny model separates them."""
    rng = np.random.default_rng(0)
    bright = np.array([0.2] * 5 + [0.8] * 5)
    images = ((rng.random((10, 28, 28)) < bright[:, None, None]) * 200 + 20).astype(np.uint8)
    labels = np.array([[0]] * 5 + [[1]] * 5)
    path = tmp_path / "toymnist.npz"
    np.savez(path, val_images=images, val_labels=labels)
    return path


def test_evaluate_prints_auc(radlens: Radlens, tiny_onnx_model_dir: Path, npz: Path) -> None:
    result = radlens("evaluate", "--model", tiny_onnx_model_dir, "--data", npz)
    assert result.exit_code == 0, result.output
    assert "auc" in result.stdout
    assert "1.0000" in result.stdout
    assert "n=10" in result.stdout.replace("\n", "")


def test_evaluate_json_by_model_name(
    radlens: Radlens, tiny_onnx_model_dir: Path, npz: Path
) -> None:
    result = radlens(
        "evaluate",
        "--model",
        "tiny_cxr",
        "--models",
        tiny_onnx_model_dir.parent,
        "--data",
        npz,
        "--split",
        "val",
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["model"], doc["split"], doc["n"]) == ("tiny_cxr", "val", 10)
    assert doc["metrics"]["auc"] == 1.0
    assert doc["card_metrics"]["auc"] == 0.9
    assert doc["per_class"]["PNEUMONIA"]["n"] == 5


def test_evaluate_missing_split_exits_2(
    radlens: Radlens, tiny_onnx_model_dir: Path, npz: Path
) -> None:
    result = radlens("evaluate", "--model", tiny_onnx_model_dir, "--data", npz, "--split", "test")
    assert result.exit_code == 2
    assert "no split 'test'" in result.stderr


def test_evaluate_unknown_model_exits_1(radlens: Radlens, npz: Path) -> None:
    result = radlens("evaluate", "--model", "no_such_model", "--data", npz)
    assert result.exit_code == 1
    assert "no model named 'no_such_model'" in result.stderr
