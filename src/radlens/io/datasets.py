"""Labelled image sets for training and evaluation, in the two layouts people publish.

* A MedMNIST ``.npz`` with ``<split>_images`` and ``<split>_labels`` (any splits present).
* A folder of images: either ``labels.csv`` with columns ``file,label[,split]`` (paths
  relative to the folder), or one subfolder per class (``DIR/NORMAL/*.jpeg``) when there is
  no ``labels.csv``; then every image belongs to every split asked for.

Both give a :class:`LabelledImages`; neither needs torch.

Example:
    >>> data = read_labelled(Path("../shared/data/cxr_pneumonia"), "val")  # doctest: +SKIP
    >>> data.label_names, len(data)
    (('NORMAL', 'PNEUMONIA'), 522)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from radlens.errors import EmptyInputError, InputError, UnsupportedFormatError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True, eq=False)
class LabelledImages:
    """Images with integer labels.

    Attributes:
        images: one array per item; 2D ``(rows, cols)``, RGB ``(rows, cols, 3)`` or 3D
            ``(slices, rows, cols)``, as stored (uint8 for the usual sources).
        labels: ``(N,)`` int class indices into ``label_names``.
        label_names: class names in index order.
        ids: a stable name per item (file name or ``split[index]``).
    """

    images: list[np.ndarray] = field(repr=False)
    labels: np.ndarray = field(repr=False)
    label_names: tuple[str, ...]
    ids: tuple[str, ...] = field(repr=False)
    source: str = ""
    split: str = ""

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.labels) == len(self.ids)):
            raise ValueError("images, labels and ids differ in length")

    def __len__(self) -> int:
        return len(self.images)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.label_names))
        return {name: int(n) for name, n in zip(self.label_names, counts, strict=True)}


def read_labelled(
    path: Path, split: str, label_names: tuple[str, ...] | None = None
) -> LabelledImages:
    """Read one split of a labelled image set (see the module docstring for layouts).

    Args:
        path: a ``.npz`` file or a folder.
        split: ``train``, ``val`` or ``test``.
        label_names: names for npz class indices, or the class order for folders
            (default: sorted names found).

    Raises:
        InputError: the path or split does not exist, or an image cannot be read.
    """
    if path.suffix == ".npz":
        return _read_npz(path, split, label_names)
    if path.is_dir():
        return _read_folder(path, split, label_names)
    raise InputError(path, "expected a MedMNIST .npz file or a folder of labelled images")


def _read_npz(path: Path, split: str, names: tuple[str, ...] | None) -> LabelledImages:
    try:
        with np.load(path) as npz:
            keys = set(npz.files)
            if f"{split}_images" not in keys:
                have = sorted({k.split("_")[0] for k in keys if k.endswith("_images")})
                raise InputError(path, f"no split {split!r} in this file; it has {have}")
            images = npz[f"{split}_images"]
            labels = np.asarray(npz[f"{split}_labels"])
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read npz: {exc}") from exc
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise InputError(path, f"multi-label arrays {labels.shape} are not supported yet")
    labels = labels.astype(np.int64)
    n_classes = int(labels.max()) + 1 if labels.size else 0
    names = names or tuple(str(i) for i in range(max(n_classes, 2)))
    if n_classes > len(names):
        raise InputError(path, f"labels go up to {n_classes - 1} but {len(names)} names given")
    ids = tuple(f"{split}[{i}]" for i in range(len(labels)))
    return LabelledImages(list(images), labels, names, ids, str(path), split)


def _read_folder(path: Path, split: str, names: tuple[str, ...] | None) -> LabelledImages:
    table = path / "labels.csv"
    if table.exists():
        rows = _read_table(table, split)
    else:
        rows = [
            (str(f.relative_to(path)), f.parent.name)
            for f in sorted(path.glob("*/*"))
            if f.suffix.lower() in IMAGE_SUFFIXES
        ]
    if not rows:
        raise EmptyInputError(path, f"no labelled images for split {split!r}")
    found = sorted({label for _, label in rows})
    names = names or tuple(found)
    unknown = set(found) - set(names)
    if unknown:
        raise InputError(path, f"labels {sorted(unknown)} are not among {list(names)}")
    index = {name: i for i, name in enumerate(names)}
    images = [read_image_file(path / rel) for rel, _ in rows]
    labels = np.array([index[label] for _, label in rows], dtype=np.int64)
    return LabelledImages(images, labels, names, tuple(r for r, _ in rows), str(path), split)


def _read_table(table: Path, split: str) -> list[tuple[str, str]]:
    with table.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if "file" not in fields or "label" not in fields:
            raise InputError(table, f"needs columns file,label[,split]; has {fields}")
        has_split = "split" in fields
        return [
            (row["file"], row["label"]) for row in reader if not has_split or row["split"] == split
        ]


def read_image_file(path: Path) -> np.ndarray:
    """Pixels of a PNG/JPEG as uint8 (grayscale when all colour channels are equal)."""
    try:
        with PILImage.open(path) as pil:
            pil.load()
            array = np.asarray(pil.convert("RGB") if pil.mode not in ("L", "I;16", "I") else pil)
    except FileNotFoundError as exc:
        raise InputError(path, "file not found") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise UnsupportedFormatError(path, f"not a readable image: {exc}") from exc
    if (
        array.ndim == 3
        and np.array_equal(array[..., 0], array[..., 1])
        and np.array_equal(array[..., 0], array[..., 2])
    ):
        array = array[..., 0]
    return np.ascontiguousarray(array)
