"""``radlens evaluate`` of the segmentation model and ``analyze --pixel-size-mm``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

Radlens = Callable[..., Result]
DATA = "seg/hc18_fetal_head_us"


@pytest.mark.shared_data
def test_evaluate_prints_dice_hausdorff_and_hc_error(
    radlens: Radlens, shared_data_dir: Path
) -> None:
    result = radlens(
        "evaluate", "--model", "fetal_head_hc18", "--data", shared_data_dir / DATA, "--json"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["n"] == 40
    for key in ("dice", "hd_mm", "hd95_mm", "hc_mad_mm", "hc_mean_diff_mm"):
        assert doc["metrics"][key] == pytest.approx(doc["card_metrics"][key], abs=0.002)


@pytest.mark.shared_data
def test_analyze_measures_a_png_with_the_given_pixel_size(
    radlens: Radlens, shared_data_dir: Path, tmp_path: Path
) -> None:
    image = shared_data_dir / DATA / "images" / "078_HC.png"
    args = ["analyze", image, "--modality", "US", "--body-part", "FETAL_HEAD", "-o", tmp_path]
    result = radlens(*args, "--pixel-size-mm", "0.062732369", "--json")
    assert result.exit_code == 0, result.output
    [finding] = json.loads(result.output)["studies"][0]["series"][0]["findings"]
    hc = finding["measurements"][0]
    assert hc["unit"] == "mm" and hc["value"] == pytest.approx(78.08, abs=6.0)
    bad = radlens(*args, "--pixel-size-mm", "0")
    assert bad.exit_code != 0


@pytest.mark.parametrize(
    ("model", "command"),
    [
        ("fetal_head_hc18", "calibrate"),
        ("fetal_head_hc18", "quantize"),
        ("bccd_cells", "quantize"),
        # radlens ood fits a detector's or segmenter's input-statistics score
        # (tests/cli/test_cli_ood.py), radlens calibrate a detector's operating score
        # (tests/cli/test_cli_calibrate.py)
    ],
)
def test_classifier_only_commands_refuse_segmenters_and_detectors_and_say_why(
    radlens: Radlens, tmp_path: Path, model: str, command: str
) -> None:
    import shutil

    from radlens.models.registry import zoo_folder

    folder = Path(shutil.copytree(zoo_folder() / model, tmp_path / model))
    before = (folder / "card.json").read_bytes()
    args = [] if command == "calibrate" else ["--data", tmp_path]
    result = radlens(command, folder, *args)
    assert result.exit_code == 1, result.output
    assert f"{model} is a" in result.output and "applies to classifiers only" in result.output
    assert "Traceback" not in result.output
    assert (folder / "card.json").read_bytes() == before
