"""``prepare``: a dataset's view (labels.csv + boxes.csv, images linked) with its split."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracatlas_helpers import fracatlas_like
from radlens.errors import InputError
from radlens.io.box_sets import read_boxes
from radlens.io.datasets import read_labelled
from radlens.io.prepare import FRACTURE, NO_FRACTURE, prepare

LABELS = (NO_FRACTURE, FRACTURE)


def test_fracatlas_keeps_the_official_fracture_split_and_splits_the_rest_alike(
    tmp_path: Path,
) -> None:
    source = fracatlas_like(tmp_path / "src")
    view = prepare("fracatlas", source, tmp_path / "view")
    assert view.counts == {
        "train": {FRACTURE: 6, NO_FRACTURE: 12},
        "val": {FRACTURE: 2, NO_FRACTURE: 4},  # the same 25% of the negatives
    }
    val = read_labelled(tmp_path / "view", "val", LABELS)
    assert val.class_counts() == {NO_FRACTURE: 4, FRACTURE: 2}
    assert {"images/IMG0000000.png", "images/IMG0000004.png"} <= set(val.ids)
    boxes = read_boxes(tmp_path / "view", "val", (FRACTURE,))
    assert len(boxes) == 6 and boxes.box_counts() == {FRACTURE: 2}
    assert (tmp_path / "view" / "images").is_symlink()
    assert "random.Random(0)" in (tmp_path / "view" / "PREPARED.txt").read_text()


def test_the_view_is_the_same_for_the_same_seed_and_differs_for_another(tmp_path: Path) -> None:
    source = fracatlas_like(tmp_path / "src")
    prepare("fracatlas", source, tmp_path / "a")
    prepare("fracatlas", source, tmp_path / "a")  # again in place: same result, no error
    prepare("fracatlas", source, tmp_path / "b")
    prepare("fracatlas", source, tmp_path / "c", seed=1)
    table = (tmp_path / "a" / "labels.csv").read_text()
    assert table == (tmp_path / "b" / "labels.csv").read_text()
    assert table != (tmp_path / "c" / "labels.csv").read_text()


def test_unknown_preparers_and_other_layouts_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no preparer 'mura'"):
        prepare("mura", tmp_path, tmp_path / "out")
    with pytest.raises(InputError, match="not the FracAtlas layout"):
        prepare("fracatlas", tmp_path, tmp_path / "out")


@pytest.mark.shared_data
def test_the_shared_fracatlas_view(shared_data_dir: Path, tmp_path: Path) -> None:
    view = prepare("fracatlas", shared_data_dir / "det" / "fracatlas_fracture", tmp_path / "v")
    assert view.counts["val"] == {FRACTURE: 82, NO_FRACTURE: 112}
    assert view.counts["train"] == {FRACTURE: 574, NO_FRACTURE: 788}
