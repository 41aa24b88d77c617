"""``radlens denoise`` on the tiny ONNX model: the card gets its thresholds and version, the
weights and calibration stay, train.log says what was done, and a noisy image is read
filtered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

from radlens.inference.preprocess import prepare_2d
from radlens.models.card import read_card
from radlens.models.registry import load_model

Radlens = Callable[..., Result]


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:28, 0:28].astype(np.float32)

    def images(n: int) -> np.ndarray:
        ramps = [60 + 120 * x / 28 * rng.uniform(0.5, 1.2) + 10 * np.sin(y / 4) for _ in range(n)]
        return np.rint(np.stack(ramps)).astype(np.uint8)

    path = tmp_path / "rampmnist.npz"
    labels = (np.arange(12) % 2)[:, None]
    np.savez(
        path, train_images=images(12), train_labels=labels, val_images=images(12), val_labels=labels
    )
    return path


def test_denoise_writes_the_thresholds_and_leaves_the_rest_of_the_card(
    radlens: Radlens, model_dir: Path, npz: Path
) -> None:
    before = read_card(model_dir / "card.json")
    weights = (model_dir / "model.onnx").read_bytes()
    result = radlens("denoise", model_dir, "--data", npz, "--median", "3", "--version", "9.9.9")
    assert result.exit_code == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert "3 x 3 median filter" in said and "0.0% of 12 val images filtered" in said

    after = load_model(model_dir).card  # the registry still accepts the folder
    spec = after.input.denoise
    assert spec is not None and spec.fitted and (spec.median, spec.n_train) == (3, 12)
    assert after.version == "9.9.9"
    assert after.calibration == before.calibration and after.sha256 == before.sha256
    assert (model_dir / "model.onnx").read_bytes() == weights
    assert "radlens denoise: median 3" in (model_dir / "train.log").read_text("utf-8")

    clean = np.load(npz)["val_images"][0]
    assert prepare_2d(clean, after.input)[1].denoised is None
    grainy = np.kron(clean, np.ones((8, 8))).astype(np.float32)  # the model reads 224 px
    grainy += np.random.default_rng(1).normal(0, 25, grainy.shape).astype(np.float32)
    assert prepare_2d(grainy, after.input)[1].denoised is not None


def test_denoise_refuses_a_filter_size_it_does_not_have(
    radlens: Radlens, model_dir: Path, npz: Path
) -> None:
    result = radlens("denoise", model_dir, "--data", npz, "--median", "4")
    assert result.exit_code != 0
    assert "median must be 3 or 5" in " ".join((result.stdout + result.stderr).split())
    assert "Traceback" not in result.stdout + result.stderr
    assert read_card(model_dir / "card.json").input.denoise is None
