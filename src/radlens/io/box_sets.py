"""Box sets for training and evaluating detectors: images with labelled boxes.

Two layouts are read, both common for detection data:

* Pascal VOC (Everingham et al., IJCV 2010): ``JPEGImages/``, ``Annotations/<id>.xml`` and
  the split lists ``ImageSets/Main/<split>.txt``;
* a flat table ``boxes.csv`` with columns ``split, image, label, xmin, ymin, xmax, ymax``
  (``difficult`` optional), images under ``images/`` or ``JPEGImages/``; an image without
  boxes has one row with an empty ``label``.

When both are present the table is read. Boxes are in source pixels, column then row,
``[x0, y0, x1, y1]`` as written (VOC's 1-based corners are kept: a one-pixel shift is far
below the box sizes any detector here resolves). Empty boxes (``xmax <= xmin`` or
``ymax <= ymin``; BCCD has two) are dropped. ``difficult`` boxes are kept; the VOC metric
neither rewards nor penalises detections of them.

Example:
    >>> val = read_boxes(Path("../shared/data/det/bccd_blood_cells"), "val")  # doctest: +SKIP
    >>> len(val), val.label_names
    (87, ('Platelets', 'RBC', 'WBC'))
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radlens.errors import InputError
from radlens.io.datasets import read_image_file

TABLE = "boxes.csv"


@dataclass(frozen=True, eq=False)
class BoxedImages:
    """Images with their boxes.

    Attributes:
        images: ``(rows, cols)`` or ``(rows, cols, 3)`` uint8 arrays as stored.
        boxes: per image, ``(n, 4)`` float32 ``[x0, y0, x1, y1]`` in source pixels.
        classes: per image, ``(n,)`` int64 indexes into ``label_names``.
        difficult: per image, ``(n,)`` bool (VOC "difficult": ignored by the metric).
        label_names: class names in index order.
        ids: the image file names.
    """

    images: list[np.ndarray] = field(repr=False)
    boxes: list[np.ndarray] = field(repr=False)
    classes: list[np.ndarray] = field(repr=False)
    difficult: list[np.ndarray] = field(repr=False)
    label_names: tuple[str, ...]
    ids: tuple[str, ...] = field(repr=False)
    source: str = ""
    split: str = ""

    def __post_init__(self) -> None:
        n = len(self.images)
        if any(len(x) != n for x in (self.boxes, self.classes, self.difficult, self.ids)):
            raise ValueError("images, boxes, classes, difficult and ids differ in length")
        for boxes, classes in zip(self.boxes, self.classes, strict=True):
            if boxes.shape != (len(classes), 4):
                raise ValueError(f"boxes of shape {boxes.shape} for {len(classes)} classes")
            if len(boxes) and not np.all(boxes[:, 2:] > boxes[:, :2]):
                raise ValueError("a box has x1 <= x0 or y1 <= y0")
            if len(classes) and not 0 <= classes.min() <= classes.max() < len(self.label_names):
                raise ValueError("a class index is outside label_names")

    def __len__(self) -> int:
        return len(self.images)

    def box_counts(self) -> dict[str, int]:
        """Boxes per class name."""
        every = np.concatenate([*self.classes, np.zeros(0, np.int64)])
        return {name: int((every == k).sum()) for k, name in enumerate(self.label_names)}


def read_boxes(path: Path, split: str, labels: tuple[str, ...] | None = None) -> BoxedImages:
    """Read the ``split`` of a box set in either layout (see the module docstring).

    Args:
        path: the set's folder.
        split: ``train``, ``val`` or ``test``.
        labels: class names in model order; by default the sorted names found in the split.

    Raises:
        InputError: the folder has neither layout, the split is empty, or a box names a
            class outside ``labels``.
    """
    table = path / TABLE
    if table.is_file():
        rows = _read_table(table, split)
    elif (path / "Annotations").is_dir():
        rows = _read_voc(path, split)
    else:
        raise InputError(path, f"no {TABLE} and no Annotations/ folder: not a box set")
    if not rows:
        raise InputError(path, f"split {split!r} has no images")
    names = labels or tuple(sorted({name for boxes in rows.values() for name, *_ in boxes}))
    index = {name: k for k, name in enumerate(names)}
    image_dir = next(
        (path / d for d in ("JPEGImages", "images") if (path / d).is_dir()), path / "images"
    )
    images, all_boxes, all_classes, all_difficult = [], [], [], []
    for image_id, boxes in rows.items():
        unknown = {name for name, *_ in boxes} - set(index)
        if unknown:
            raise InputError(path, f"{image_id}: classes {sorted(unknown)} not in {names}")
        images.append(read_image_file(image_dir / image_id))
        boxes = [b for b in boxes if b[3] > b[1] and b[4] > b[2]]  # empty boxes mark nothing
        all_boxes.append(np.array([b[1:5] for b in boxes], np.float32).reshape(-1, 4))
        all_classes.append(np.array([index[b[0]] for b in boxes], np.int64))
        all_difficult.append(np.array([b[5] for b in boxes], bool))
    return BoxedImages(
        images, all_boxes, all_classes, all_difficult, names, tuple(rows), str(path), split
    )


_Row = tuple[str, float, float, float, float, bool]


def _read_table(table: Path, split: str) -> dict[str, list[_Row]]:
    rows: dict[str, list[_Row]] = {}
    with table.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("split", split) != split:
                continue
            boxes = rows.setdefault(row["image"], [])
            if row.get("label"):
                corners = (float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
                boxes.append((row["label"], *corners, row.get("difficult", "0") == "1"))  # type: ignore[arg-type]
    return rows


def _read_voc(path: Path, split: str) -> dict[str, list[_Row]]:
    listing = path / "ImageSets" / "Main" / f"{split}.txt"
    try:
        stems = [s.strip() for s in listing.read_text(encoding="utf-8").split() if s.strip()]
    except OSError as exc:
        raise InputError(listing, f"cannot read the split list: {exc}") from exc
    rows: dict[str, list[_Row]] = {}
    for stem in stems:
        root = ET.parse(path / "Annotations" / f"{stem}.xml").getroot()
        name = root.findtext("filename") or f"{stem}.jpg"
        boxes = rows.setdefault(name, [])
        for obj in root.iter("object"):
            bnd = obj.find("bndbox")
            if bnd is None:
                continue
            corners = [float(bnd.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax")]
            difficult = (obj.findtext("difficult") or "0").strip() == "1"
            boxes.append((obj.findtext("name") or "", *corners, difficult))  # type: ignore[arg-type]
    return rows
