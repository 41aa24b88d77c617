"""``radlens half``: a float16 version of a trained classifier, checked against the float32
outputs, recalibrated and re-measured on val, its OOD score refitted; refusals for what it
cannot do."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

from radlens.models.registry import load_model

pytestmark = [pytest.mark.train, pytest.mark.slow]


def learnable_npz(path: Path) -> Path:
    """28 px grey images, brighter ones labelled 1 (with some noise in the labels)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 64), ("val", 48)):
        bright = rng.uniform(0.1, 0.9, n)
        labels = (rng.random(n) < bright).astype(np.int64)
        images = (rng.random((n, 28, 28)) < bright[:, None, None]) * 200 + 20
        arrays[f"{split}_images"] = images.astype(np.uint8)
        arrays[f"{split}_labels"] = labels[:, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small float32 classifier trained by ``radlens train`` and its data."""
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    from typer.testing import CliRunner

    from radlens.cli.main import app

    root = tmp_path_factory.mktemp("half")
    data = learnable_npz(root / "greymnist.npz")
    out = root / "model"
    args = ["train", "--dataset", "greymnist", "--data", str(data), "--recipes", str(root)]
    args += ["-o", str(out), "--set", "net.arch=resnet-tiny", "--set", "schedule.threads=1"]
    args += ["--set", "schedule.batch_size=16", "--epochs", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, data


def test_half_makes_a_smaller_recalibrated_version_with_its_own_ood_score(
    radlens: Callable[..., Result], trained: tuple[Path, Path], tmp_path: Path
) -> None:
    import onnx

    source, data = trained
    before = load_model(source).card
    out = tmp_path / "half"
    done = radlens("half", source, "--data", data, "-o", out, "--version", "0.0.2")
    assert done.exit_code == 0, done.stderr
    after = load_model(out).card  # hashes of weights and OOD statistics match the card
    assert after.version == "0.0.2" and after.name == before.name
    assert after.sha256 != before.sha256
    assert (out / "model.onnx").stat().st_size < 0.6 * (source / "model.onnx").stat().st_size
    stored = {i.data_type for i in onnx.load(str(out / "model.onnx")).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in stored
    # Re-measured on val: float16's rounding barely moves a classifier's figures.
    assert after.metrics["val"]["auc"] == pytest.approx(before.metrics["val"]["auc"], abs=0.02)
    assert after.ood is not None and before.ood is not None
    assert after.ood.sha256 != before.ood.sha256  # refitted on the float16 features
    log = (out / "train.log").read_text()
    assert "radlens half" in log and "weights stored as float16" in log
    assert load_model(source).card == before  # the float32 version is untouched
    # The evaluation reproduces the new card.
    evaluated = radlens("evaluate", "--model", out, "--data", data, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr


def test_half_refuses_halved_weights_an_existing_folder_and_other_tasks(
    radlens: Callable[..., Result], trained: tuple[Path, Path], tmp_path: Path
) -> None:
    source, data = trained
    out = tmp_path / "half"
    assert radlens("half", source, "--data", data, "-o", out, "--version", "1").exit_code == 0
    again = radlens("half", out, "--data", data, "-o", tmp_path / "again", "--version", "2")
    assert again.exit_code != 0 and "already stored as float16" in again.stderr
    exists = radlens("half", source, "--data", data, "-o", out, "--version", "3")
    assert exists.exit_code != 0 and "exists" in exists.stderr
    detector = shutil.copytree(source, tmp_path / "boxes")
    import json

    card = json.loads((detector / "card.json").read_text())
    card.update(task="detection", outputs=["heatmap", "ltrb"], detection={}, labels=["x"])
    card.pop("ood", None)
    (detector / "card.json").write_text(json.dumps(card))
    refused = radlens("half", detector, "--data", data, "-o", tmp_path / "d", "--version", "2")
    assert refused.exit_code != 0 and "classifiers only" in refused.stderr


def test_a_failed_check_leaves_no_half_made_version(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from radlens.training import half_weights

    def moved(*args: object, **kwargs: object) -> None:
        raise RuntimeError("float16 weights move the outputs by 1.00e+00 (scale 1.0)")

    monkeypatch.setattr(half_weights, "halve_checked", moved)
    source, data = trained
    with pytest.raises(RuntimeError, match="move the outputs"):
        half_weights.halve_model(source, data, tmp_path / "half", "0.0.2")
    assert not (tmp_path / "half").exists()
