"""``radlens ood`` on a detector or a segmenter: the input-statistics score alone, from the
box set or segmentation set it was trained on."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from radlens.models.card import read_card
from radlens.models.registry import sha256_of, zoo_folder
from train_helpers import assert_same_statistics

Radlens = Callable[..., Result]
BCCD = Path("det") / "bccd_blood_cells"
HC18 = Path("seg") / "hc18_fetal_head_us"


def assert_refitted_like_the_shipped_model(folder: Path, name: str) -> None:
    """The card names the new statistics file, which holds the shipped statistics (to the
    last bits of this machine's arithmetic), and the weights are untouched."""
    card = read_card(folder / "card.json")
    spec = card.input_ood
    assert spec is not None and spec.sha256 == sha256_of(folder / "ood_inputs.npz")
    assert_same_statistics(folder / "ood_inputs.npz", zoo_folder() / name / "ood_inputs.npz")
    shipped = read_card(zoo_folder() / name / "card.json").input_ood
    assert shipped is not None and dataclasses.replace(
        spec, sha256="0" * 64
    ) == dataclasses.replace(shipped, sha256="0" * 64)
    assert sha256_of(folder / "model.onnx") == card.sha256


def detector_copy(tmp_path: Path) -> Path:
    folder = Path(shutil.copytree(zoo_folder() / "bccd_cells", tmp_path / "bccd_cells"))
    (folder / "ood_inputs.npz").unlink()
    return folder


@pytest.mark.shared_data
def test_ood_fits_a_detectors_input_statistics_and_reproduces_the_shipped_file(
    radlens: Radlens, tmp_path: Path, shared_data_dir: Path
) -> None:
    folder = detector_copy(tmp_path)
    result = radlens("ood", folder, "--data", shared_data_dir / BCCD)
    assert result.exit_code == 0, result.output
    assert "from 205 train images" in result.output and "of 87 val images" in result.output
    assert_refitted_like_the_shipped_model(folder, "bccd_cells")


def test_ood_refuses_no_input_stats_for_a_detector(radlens: Radlens, tmp_path: Path) -> None:
    folder = detector_copy(tmp_path)
    before = (folder / "card.json").read_bytes()
    result = radlens("ood", folder, "--data", tmp_path, "--no-input-stats")
    assert result.exit_code != 0
    assert "only OOD score is its input statistics" in result.output
    assert (folder / "card.json").read_bytes() == before


def test_ood_on_a_detector_with_the_wrong_data_names_the_folder(
    radlens: Radlens, tmp_path: Path
) -> None:
    folder = detector_copy(tmp_path)
    (tmp_path / "empty").mkdir()
    result = radlens("ood", folder, "--data", tmp_path / "empty")
    assert result.exit_code == 2, result.output  # an input error
    assert "not a box set" in result.output and "Traceback" not in result.output
    assert not (folder / "ood_inputs.npz").exists()


@pytest.mark.shared_data
def test_ood_refits_a_segmenters_input_statistics_and_reproduces_the_shipped_file(
    radlens: Radlens, tmp_path: Path, shared_data_dir: Path
) -> None:
    folder = Path(shutil.copytree(zoo_folder() / "fetal_head_hc18", tmp_path / "seg"))
    (folder / "ood_inputs.npz").unlink()
    result = radlens("ood", folder, "--data", shared_data_dir / HC18)
    assert result.exit_code == 0, result.output
    assert "(image2d/4) from 154 train images" in result.output
    assert "of 40 val images" in result.output
    assert_refitted_like_the_shipped_model(folder, "fetal_head_hc18")


def test_ood_on_a_segmenter_with_the_wrong_data_names_the_folder(
    radlens: Radlens, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(zoo_folder() / "fetal_head_hc18", tmp_path / "seg"))
    before = (folder / "card.json").read_bytes(), (folder / "ood_inputs.npz").read_bytes()
    (tmp_path / "empty").mkdir()
    result = radlens("ood", folder, "--data", tmp_path / "empty")
    assert result.exit_code == 2, result.output  # an input error
    assert "images/, masks/ and labels.csv" in result.output
    assert "Traceback" not in result.output
    assert ((folder / "card.json").read_bytes(), (folder / "ood_inputs.npz").read_bytes()) == before
