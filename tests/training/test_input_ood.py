"""``fit_input_only_ood``: a detector's or segmenter's input-statistics OOD score added to its
folder without retraining; reproducible, refused for classifiers and for data the model was
not trained on."""

from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from radlens.errors import InputError, UnsupportedTaskError
from radlens.inference.ood import card_input_stats
from radlens.io.raster import write_png
from radlens.io.segmentation_sets import read_segmentation
from radlens.models.card import read_card, write_card
from radlens.models.registry import load_model, sha256_of, zoo_folder
from radlens.training.input_ood import fit_input_only_ood
from train_helpers import assert_same_statistics, ellipse_set

BCCD = Path("det") / "bccd_blood_cells"


def box_set(folder: Path, n_train: int, n_val: int) -> Path:
    """A ``boxes.csv`` box set of colour images with one RBC box each."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(n_train + n_val):
        image = np.clip(rng.normal(180, 30, (48, 64, 3)), 0, 255).astype(np.uint8)
        write_png(folder / "images" / f"{i}.png", image)
        split = "train" if i < n_train else "val"
        rows.append([split, f"{i}.png", "RBC", 10, 10, 30, 30])
    with (folder / "boxes.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "image", "label", "xmin", "ymin", "xmax", "ymax"])
        writer.writerows(rows)
    return folder


def bccd_copy(tmp_path: Path, data: str | None = None) -> Path:
    folder = Path(shutil.copytree(zoo_folder() / "bccd_cells", tmp_path / "bccd_cells"))
    (folder / "ood_inputs.npz").unlink()
    card = read_card(folder / "card.json")
    assert card.detection is not None
    card = dataclasses.replace(card, detection=dataclasses.replace(card.detection, ood_inputs=None))
    if data is not None:
        card = dataclasses.replace(card, training=dataclasses.replace(card.training, data=data))
    write_card(card, folder / "card.json")
    return folder


def test_fit_writes_the_statistics_and_the_card_and_leaves_the_weights(tmp_path: Path) -> None:
    folder = bccd_copy(tmp_path, "synthetic (train split 12, val split 20)")
    data = box_set(tmp_path / "boxes", 12, 20)
    weights = sha256_of(folder / "model.onnx")
    report = fit_input_only_ood(folder, data)
    card = load_model(folder).card  # the weights still match the card
    assert card.detection is not None and card.detection.ood_inputs is not None
    spec = card.detection.ood_inputs
    assert (report.n_train, report.n_val, report.statistics) == (12, 20, "image2d/4")
    assert spec.sha256 == sha256_of(folder / "ood_inputs.npz")
    assert spec.val_flag_rate == report.val_flag_rate == pytest.approx(0.05)  # 1 of 20
    assert sha256_of(folder / "model.onnx") == weights == card.sha256
    assert card_input_stats(folder, card) is not None
    before = (folder / "card.json").read_bytes(), (folder / "ood_inputs.npz").read_bytes()
    fit_input_only_ood(folder, data)  # the same data gives the same files
    assert ((folder / "card.json").read_bytes(), (folder / "ood_inputs.npz").read_bytes()) == before


def test_data_with_other_split_sizes_than_the_card_states_is_refused(tmp_path: Path) -> None:
    folder = bccd_copy(tmp_path)  # trained on 205 + 87 images
    before = (folder / "card.json").read_bytes()
    with pytest.raises(InputError, match="205/87"):
        fit_input_only_ood(folder, box_set(tmp_path / "boxes", 12, 20))
    assert (folder / "card.json").read_bytes() == before
    assert not (folder / "ood_inputs.npz").exists()


def test_a_classifier_is_refused(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(zoo_folder() / "knee_oa_kl", tmp_path / "knee"))
    with pytest.raises(UnsupportedTaskError, match="detectors and segmenters"):
        fit_input_only_ood(folder, tmp_path)


def test_a_segmenter_gets_its_statistics_refitted_from_its_own_split(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(zoo_folder() / "fetal_head_hc18", tmp_path / "seg"))
    card = read_card(folder / "card.json")
    card = dataclasses.replace(card, training=dataclasses.replace(card.training, data="synthetic"))
    write_card(card, folder / "card.json")
    data = ellipse_set(tmp_path / "heads", 30)
    report = fit_input_only_ood(folder, data)
    val = read_segmentation(data, "val", seed=card.training.seed)
    assert (report.n_train, report.n_val) == (30 - len(val), len(val))
    assert report.statistics == "image2d/4"
    refitted = load_model(folder).card  # the weights still match the card
    assert refitted.segmentation is not None and refitted.segmentation.ood_inputs is not None
    assert refitted.segmentation.ood_inputs.sha256 == sha256_of(folder / "ood_inputs.npz")
    assert refitted.segmentation.edge_offset_px == card.segmentation.edge_offset_px  # type: ignore[union-attr]
    with pytest.raises(InputError, match="images/, masks/"):
        fit_input_only_ood(folder, box_set(tmp_path / "boxes", 12, 20))


@pytest.mark.shared_data
def test_the_shipped_statistics_are_made_again_by_the_recorded_command(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    folder = bccd_copy(tmp_path)
    fit_input_only_ood(folder, shared_data_dir / BCCD)
    shipped = read_card(zoo_folder() / "bccd_cells" / "card.json")
    again = read_card(folder / "card.json")
    assert again.detection is not None and shipped.detection is not None
    made, kept = again.detection.ood_inputs, shipped.detection.ood_inputs
    assert made is not None and kept is not None
    assert dataclasses.replace(made, sha256="0" * 64) == dataclasses.replace(kept, sha256="0" * 64)
    assert_same_statistics(
        folder / "ood_inputs.npz", zoo_folder() / "bccd_cells" / "ood_inputs.npz"
    )
