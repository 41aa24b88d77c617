"""Reading box sets: Pascal VOC folders and flat ``boxes.csv`` tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from radlens.errors import InputError
from radlens.io.box_sets import read_boxes

VOC_OBJECT = """<object><name>{name}</name><difficult>{difficult}</difficult>
<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"""


def write_image(path: Path, rgb: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shape = (24, 32, 3) if rgb else (24, 32)
    PILImage.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)


def voc_set(root: Path) -> Path:
    objects = {
        "a": [("RBC", 0, 1, 2, 11, 12), ("WBC", 1, 3, 4, 20, 20), ("RBC", 0, 5, 5, 5, 5)],
        "b": [("Platelets", 0, 0, 0, 8, 8)],
    }
    for stem, boxes in objects.items():
        write_image(root / "JPEGImages" / f"{stem}.jpg")
        xml = "".join(
            VOC_OBJECT.format(name=n, difficult=d, x0=x0, y0=y0, x1=x1, y1=y1)
            for n, d, x0, y0, x1, y1 in boxes
        )
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename>{xml}</annotation>"
        )
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nb\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("b\n")
    return root


def test_voc_layout_reads_boxes_classes_and_difficult_and_drops_empty_boxes(
    tmp_path: Path,
) -> None:
    data = read_boxes(voc_set(tmp_path), "train")
    assert data.label_names == ("Platelets", "RBC", "WBC")  # sorted names found
    assert data.ids == ("a.jpg", "b.jpg") and len(data) == 2
    assert data.images[0].shape == (24, 32, 3)
    assert data.boxes[0].tolist() == [[1, 2, 11, 12], [3, 4, 20, 20]]  # [5, 5, 5, 5] dropped
    assert data.classes[0].tolist() == [1, 2]
    assert data.difficult[0].tolist() == [False, True]
    assert data.box_counts() == {"Platelets": 1, "RBC": 1, "WBC": 1}


def test_labels_fix_the_class_order_and_unknown_classes_are_refused(tmp_path: Path) -> None:
    root = voc_set(tmp_path)
    data = read_boxes(root, "val", ("WBC", "Platelets"))
    assert data.classes[0].tolist() == [1]
    with pytest.raises(InputError, match="not in"):
        read_boxes(root, "train", ("WBC", "Platelets"))


def test_table_layout_reads_its_split_and_images_without_boxes(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "x.png", rgb=False)
    write_image(tmp_path / "images" / "y.png", rgb=False)
    (tmp_path / "boxes.csv").write_text(
        "split,image,label,xmin,ymin,xmax,ymax\n"
        "train,x.png,fracture,1,2,10,12\n"
        "train,y.png,,,,,\n"
        "val,x.png,fracture,0,0,4,4\n"
    )
    data = read_boxes(tmp_path, "train")
    assert data.label_names == ("fracture",) and data.ids == ("x.png", "y.png")
    assert data.images[0].ndim == 2  # grayscale stays one channel
    assert data.boxes[1].shape == (0, 4) and data.difficult[0].tolist() == [False]


def test_a_folder_without_either_layout_or_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a box set"):
        read_boxes(tmp_path, "train")
    with pytest.raises(InputError, match="split list"):
        read_boxes(voc_set(tmp_path / "v"), "test")


@pytest.mark.shared_data
def test_bccd_val_split_has_the_published_image_count(shared_data_dir: Path) -> None:
    data = read_boxes(shared_data_dir / "det" / "bccd_blood_cells", "val")
    assert len(data) == 87 and data.label_names == ("Platelets", "RBC", "WBC")
    assert data.images[0].shape == (480, 640, 3)
