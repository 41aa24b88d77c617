"""Segmentation sets for training and evaluation: images, masks, pixel size, reference size.

The layout is the one the HC18 fetal head set (van den Heuvel et al., PLoS ONE 2018) is
published in, kept general: a folder with ``images/``, ``masks/`` and ``labels.csv`` whose
columns include ``filename`` (under ``images/``), ``mask`` (under ``masks/``, 0 / non-zero),
``subject_id``, ``pixel_size_mm`` and, for a measured structure, ``head_circumference_mm``
(the reference measurement). A ``split`` column is used when present; otherwise the
subjects are split at random (seeded) into ``val_fraction`` val and the rest train, so two
images of one examination never fall on both sides.

Example:
    >>> val = read_segmentation(Path("seg/hc18_fetal_head_us"), "val")  # doctest: +SKIP
    >>> len(val), len(set(val.subjects)), val.masks[0].dtype
    (40, 32, dtype('bool'))
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radlens.errors import InputError
from radlens.io.datasets import read_image_file

SPLIT_SEED = 0
VAL_FRACTION = 0.2
REFERENCE_COLUMN = "head_circumference_mm"


@dataclass(frozen=True, eq=False)
class SegmentedImages:
    """Images with their masks, on the same pixel grid.

    Attributes:
        images: ``(rows, cols)`` uint8 (or RGB) arrays as stored.
        masks: ``(rows, cols)`` bool arrays.
        pixel_size_mm: the square pixel side of each image, in mm (NaN when unknown).
        reference_mm: the reference measurement of each image in mm (NaN when none).
        ids: the image file names; subjects: the subject of each image.
    """

    images: list[np.ndarray] = field(repr=False)
    masks: list[np.ndarray] = field(repr=False)
    pixel_size_mm: np.ndarray = field(repr=False)
    reference_mm: np.ndarray = field(repr=False)
    ids: tuple[str, ...] = field(repr=False)
    subjects: tuple[str, ...] = field(repr=False)
    source: str = ""
    split: str = ""

    def __post_init__(self) -> None:
        n = len(self.images)
        sizes = (len(self.masks), len(self.pixel_size_mm), len(self.reference_mm), len(self.ids))
        if any(s != n for s in (*sizes, len(self.subjects))):
            raise ValueError("images, masks, pixel sizes, references and ids differ in length")
        for image, mask in zip(self.images, self.masks, strict=True):
            if image.shape[:2] != mask.shape:
                raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")

    def __len__(self) -> int:
        return len(self.images)


def is_segmentation_set(path: Path) -> bool:
    """Whether ``path`` is a folder in the layout :func:`read_segmentation` reads."""
    return path.is_dir() and (path / "masks").is_dir() and (path / "labels.csv").is_file()


def split_subjects(
    subjects: list[str], val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED
) -> set[str]:
    """The val subjects: ``round(val_fraction * n)`` of the sorted unique subjects, drawn
    with ``random.Random(seed)`` (the same on every machine and Python 3 version).

    Example:
        >>> sorted(split_subjects(["1", "2", "3", "4", "5"], 0.4, seed=0))
        ['1', '4']
    """
    unique = sorted(set(subjects))
    n_val = round(val_fraction * len(unique))
    return set(random.Random(seed).sample(unique, n_val))


def read_segmentation(
    path: Path, split: str, val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED
) -> SegmentedImages:
    """Read the ``train`` or ``val`` split (or ``all``) of a segmentation set.

    Raises:
        InputError: the folder, table or an image is missing, or the split is unknown.
    """
    table = path / "labels.csv"
    if not is_segmentation_set(path):
        raise InputError(path, "expected a folder with images/, masks/ and labels.csv")
    with table.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"filename", "mask", "subject_id"} <= set(rows[0]):
        raise InputError(table, "labels.csv needs columns filename, mask and subject_id")
    if "split" in rows[0]:
        chosen = [r for r in rows if r["split"] == split or split == "all"]
    elif split in ("train", "val", "all"):
        val = split_subjects([r["subject_id"] for r in rows], val_fraction, seed)
        chosen = [r for r in rows if split == "all" or (r["subject_id"] in val) == (split == "val")]
    else:
        raise InputError(path, f"no split {split!r}: without a split column there are train, val")
    if not chosen:
        raise InputError(path, f"split {split!r} is empty")
    return SegmentedImages(
        images=[read_image_file(path / "images" / r["filename"]) for r in chosen],
        masks=[read_image_file(path / "masks" / r["mask"]) > 0 for r in chosen],
        pixel_size_mm=np.array([_number(r.get("pixel_size_mm")) for r in chosen]),
        reference_mm=np.array([_number(r.get(REFERENCE_COLUMN)) for r in chosen]),
        ids=tuple(r["filename"] for r in chosen),
        subjects=tuple(r["subject_id"] for r in chosen),
        source=str(path),
        split=split,
    )


def _number(text: str | None) -> float:
    try:
        return float(text) if text else float("nan")
    except ValueError:
        return float("nan")
