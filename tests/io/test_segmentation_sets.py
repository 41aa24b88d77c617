"""Segmentation sets: reading masks and splitting by subject."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from radlens.errors import InputError
from radlens.io.segmentation_sets import read_segmentation, split_subjects


def make_set(root: Path, subjects: list[str]) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    lines = ["filename,subject_id,mask,pixel_size_mm,head_circumference_mm"]
    for i, subject in enumerate(subjects):
        image = np.full((20, 30), i * 10, np.uint8)
        mask = np.zeros((20, 30), np.uint8)
        mask[5:15, 5 : 10 + i] = 255
        PILImage.fromarray(image).save(root / "images" / f"{i:03d}_HC.png")
        PILImage.fromarray(mask).save(root / "masks" / f"{i:03d}_HC_mask.png")
        lines.append(f"{i:03d}_HC.png,{subject},{i:03d}_HC_mask.png,0.1,{50 + i}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_split_keeps_every_subject_on_one_side(tmp_path: Path) -> None:
    subjects = [str(s) for s in range(10) for _ in range(2)]
    folder = make_set(tmp_path / "set", subjects)
    train = read_segmentation(folder, "train", val_fraction=0.2, seed=0)
    val = read_segmentation(folder, "val", val_fraction=0.2, seed=0)
    assert len(train) + len(val) == 20 and len(val) == 4
    assert not set(train.subjects) & set(val.subjects)
    assert val.masks[0].dtype == np.bool_ and val.masks[0].shape == (20, 30)
    assert val.pixel_size_mm.tolist() == [0.1] * 4
    assert read_segmentation(folder, "val").ids == val.ids  # deterministic


def test_split_subjects_is_seeded() -> None:
    subjects = [str(s) for s in range(50)]
    assert split_subjects(subjects, 0.2, 0) == split_subjects(subjects, 0.2, 0)
    assert len(split_subjects(subjects, 0.2, 0)) == 10


def test_an_unknown_split_or_folder_is_an_input_error(tmp_path: Path) -> None:
    folder = make_set(tmp_path / "set", ["1", "2"])
    with pytest.raises(InputError, match="no split"):
        read_segmentation(folder, "test")
    with pytest.raises(InputError, match="images/, masks/"):
        read_segmentation(tmp_path, "train")
