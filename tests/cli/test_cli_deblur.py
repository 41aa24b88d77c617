"""``radlens deblur`` on the tiny ONNX model: the card gets its trigger and version, the
weights and calibration stay, train.log says what was done, and a far blurrier image is
read deconvolved."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

from radlens.inference.preprocess import prepare_2d
from radlens.inference.restore import gaussian_blur
from radlens.models.card import read_card
from radlens.models.registry import load_model

Radlens = Callable[..., Result]


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)

    def images(n: int) -> np.ndarray:
        grains = [gaussian_blur(rng.random((64, 64)), 0.7) for _ in range(n)]
        return np.stack([np.rint(20 + 220 * (g - g.min()) / np.ptp(g)) for g in grains]).astype(
            np.uint8
        )

    path = tmp_path / "grainmnist.npz"
    labels = (np.arange(12) % 2)[:, None]
    np.savez(
        path, train_images=images(12), train_labels=labels, val_images=images(12), val_labels=labels
    )
    return path


def test_deblur_writes_the_trigger_and_leaves_the_rest_of_the_card(
    radlens: Radlens, model_dir: Path, npz: Path
) -> None:
    before = read_card(model_dir / "card.json")
    weights = (model_dir / "model.onnx").read_bytes()
    result = radlens("deblur", model_dir, "--data", npz, "--factor", "2", "--version", "9.9.9")
    assert result.exit_code == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert "Wiener deconvolution" in said and "0.0% of 12 val images deblurred" in said

    after = load_model(model_dir).card  # the registry still accepts the folder
    spec = after.input.deblur
    assert spec is not None and spec.fitted and (spec.factor, spec.n_train) == (2.0, 12)
    assert after.version == "9.9.9"
    assert after.calibration == before.calibration and after.sha256 == before.sha256
    assert (model_dir / "model.onnx").read_bytes() == weights
    assert "radlens deblur: factor 2.0" in (model_dir / "train.log").read_text("utf-8")

    clean = np.load(npz)["val_images"][0]
    assert prepare_2d(clean, after.input)[1].deblurred is None
    soft = gaussian_blur(clean.astype(np.float32), 2.0)
    assert prepare_2d(soft, after.input)[1].deblurred is not None


def test_deblur_refuses_a_factor_under_one(radlens: Radlens, model_dir: Path, npz: Path) -> None:
    result = radlens("deblur", model_dir, "--data", npz, "--factor", "0.5")
    assert result.exit_code != 0
    assert "factor must be at least 1" in " ".join((result.stdout + result.stderr).split())
    assert "Traceback" not in result.stdout + result.stderr
    assert read_card(model_dir / "card.json").input.deblur is None
