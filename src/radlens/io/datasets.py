"""Labelled image sets for training and evaluation, in the two layouts people publish.

* A MedMNIST ``.npz`` with ``<split>_images`` and ``<split>_labels`` (any splits present).
  Labels ``(N,)`` or ``(N, 1)`` are class indices; labels ``(N, K)`` with ``K > 1`` are
  multi-label (ChestMNIST): entry ``[i, k]`` is 1 when item ``i`` has label ``k``, else 0.
* A folder of images: either ``labels.csv`` with columns ``file,label[,split]`` (paths
  relative to the folder), or one subfolder per split and class
  (``DIR/train/3/9003175L.png``, the layout of torchvision's ImageFolder per split, as the
  knee KL-grade set is published) when there is no such table, or one subfolder per class
  (``DIR/NORMAL/*.jpeg``); then every image belongs to every split asked for. A class folder
  named by an integer (``0`` .. ``K-1``) that is not itself a label name is that index.
  The table is multi-label when any cell of its ``label`` column (in any split) joins several
  labels with ``|`` (``Effusion|Nodule``) or is empty (none of the labels); the label names
  are then every name in the column, across all splits, sorted.

Both give a :class:`LabelledImages`; neither needs torch.

Example:
    >>> data = read_labelled(Path("../shared/data/cxr_pneumonia"), "val")  # doctest: +SKIP
    >>> data.label_names, len(data)
    (('NORMAL', 'PNEUMONIA'), 522)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from radlens.errors import EmptyInputError, InputError, UnsupportedFormatError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LABEL_SEPARATOR = "|"  # joins the labels of one item in a multi-label labels.csv


@dataclass(frozen=True, eq=False)
class LabelledImages:
    """Images with integer labels.

    Attributes:
        images: one array per item; 2D ``(rows, cols)``, RGB ``(rows, cols, 3)`` or 3D
            ``(slices, rows, cols)``, as stored (uint8 for the usual sources).
        labels: ``(N,)`` int class indices into ``label_names``, or, for multi-label data,
            ``(N, K)`` 0/1 ints with one column per name in ``label_names``.
        label_names: class (or label) names in index order.
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
        if self.labels.ndim not in (1, 2):
            raise ValueError(f"labels must be (N,) or (N, K), got {self.labels.shape}")
        if self.labels.ndim == 2 and self.labels.shape[1] != len(self.label_names):
            raise ValueError(
                f"{self.labels.shape[1]} label columns but {len(self.label_names)} label names"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def multilabel(self) -> bool:
        """Whether each item carries any number of labels (``labels`` is ``(N, K)``)."""
        return self.labels.ndim == 2

    def sample(self, n: int, seed: int = 0) -> LabelledImages:
        """At most ``n`` items drawn at random (reproducibly), in their original order."""
        if len(self) <= n:
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return replace(
            self,
            images=[self.images[i] for i in keep],
            labels=self.labels[keep],
            ids=tuple(self.ids[i] for i in keep),
        )

    def class_counts(self) -> dict[str, int]:
        """Items per class, or positives per label for multi-label data."""
        if self.multilabel:
            counts = self.labels.sum(axis=0)
        else:
            counts = np.bincount(self.labels, minlength=len(self.label_names))
        return {name: int(n) for name, n in zip(self.label_names, counts, strict=True)}


def read_labelled(
    path: Path,
    split: str,
    label_names: tuple[str, ...] | None = None,
    multilabel: bool | None = None,
) -> LabelledImages:
    """Read one split of a labelled image set (see the module docstring for layouts).

    Args:
        path: a ``.npz`` file or a folder.
        split: ``train``, ``val`` or ``test``.
        label_names: names for npz class indices (or label columns), or the class order for
            folders (default: ``"0"``, ``"1"``, ... for npz files, sorted names found for
            folders).
        multilabel: what the caller expects; ``None`` accepts what the data holds.

    Raises:
        InputError: the path or split does not exist, an image cannot be read, or the labels
            are not what ``label_names`` or ``multilabel`` say.

    Example:
        >>> chest = read_labelled(Path("chestmnist.npz"), "val")  # doctest: +SKIP
        >>> chest.multilabel, chest.labels.shape
        (True, (11219, 14))
    """
    if path.suffix == ".npz":
        data = _read_npz(path, split, label_names)
    elif path.is_dir():
        data = _read_folder(path, split, label_names)
    else:
        raise InputError(path, "expected a MedMNIST .npz file or a folder of labelled images")
    if multilabel is not None and data.multilabel != multilabel:
        have, want = ("multi", "single") if data.multilabel else ("single", "multi")
        raise InputError(
            path,
            f"the labels are {have}-label but {want}-label ones were expected; "
            "check the data against the recipe's or model's task",
        )
    return data


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
    ids = tuple(f"{split}[{i}]" for i in range(len(labels)))
    if labels.ndim == 2:
        return _multilabel_npz(path, split, images, labels, names, ids)
    if labels.ndim != 1:
        raise InputError(path, f"labels of shape {labels.shape} are neither (N,) nor (N, K)")
    labels = labels.astype(np.int64)
    n_classes = int(labels.max()) + 1 if labels.size else 0
    names = names or tuple(str(i) for i in range(max(n_classes, 2)))
    if n_classes > len(names):
        raise InputError(path, f"labels go up to {n_classes - 1} but {len(names)} names given")
    return LabelledImages(list(images), labels, names, ids, str(path), split)


def _multilabel_npz(
    path: Path,
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    names: tuple[str, ...] | None,
    ids: tuple[str, ...],
) -> LabelledImages:
    n_labels = labels.shape[1]
    if not np.isin(labels, (0, 1)).all():
        raise InputError(path, f"multi-label {split}_labels {labels.shape} must hold only 0 and 1")
    names = names or tuple(str(i) for i in range(n_labels))
    if len(names) != n_labels:
        raise InputError(path, f"{n_labels} label columns but {len(names)} names given")
    return LabelledImages(list(images), labels.astype(np.int64), names, ids, str(path), split)


def _read_folder(path: Path, split: str, names: tuple[str, ...] | None) -> LabelledImages:
    table = path / "labels.csv"
    if (path / split).is_dir() and not (table.exists() and _has_label_column(table)):
        return _read_split_folders(path, split, names)
    if table.exists():
        all_rows = _read_table(table)
        if any(not label.strip() or LABEL_SEPARATOR in label for _, label, _ in all_rows):
            return _read_multilabel_table(path, table, all_rows, split, names)
        rows = [(file, label) for file, label, row_split in all_rows if row_split in (None, split)]
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


def _has_label_column(table: Path) -> bool:
    with table.open(newline="", encoding="utf-8") as fh:
        return {"file", "label"} <= set(csv.DictReader(fh).fieldnames or [])


def _read_split_folders(path: Path, split: str, names: tuple[str, ...] | None) -> LabelledImages:
    """``DIR/<split>/<class>/<image>``: class folders named by label or by index."""
    files = [f for f in sorted((path / split).glob("*/*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise EmptyInputError(path / split, f"no images in class folders of split {split!r}")
    found = sorted({f.parent.name for f in files})
    names = names or tuple(found)
    index = {name: i for i, name in enumerate(names)}
    for folder in found:
        if folder not in index:
            if not (folder.isdigit() and int(folder) < len(names)):
                raise InputError(
                    path / split / folder,
                    f"class folder is neither one of {list(names)} nor an index below {len(names)}",
                )
            index[folder] = int(folder)
    images = [read_image_file(f) for f in files]
    labels = np.array([index[f.parent.name] for f in files], dtype=np.int64)
    ids = tuple(str(f.relative_to(path)) for f in files)
    return LabelledImages(images, labels, names, ids, str(path), split)


def _read_table(table: Path) -> list[tuple[str, str, str | None]]:
    """Every row as ``(file, label, split)``; split is None without a split column."""
    with table.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if "file" not in fields or "label" not in fields:
            raise InputError(table, f"needs columns file,label[,split]; has {fields}")
        return [(row["file"], row["label"] or "", row.get("split")) for row in reader]


def _read_multilabel_table(
    path: Path,
    table: Path,
    all_rows: list[tuple[str, str, str | None]],
    split: str,
    names: tuple[str, ...] | None,
) -> LabelledImages:
    """A ``labels.csv`` whose cells hold ``|``-joined labels (see the module docstring)."""
    sets = [
        (file, {part.strip() for part in label.split(LABEL_SEPARATOR)} - {""}, row_split)
        for file, label, row_split in all_rows
    ]
    found = sorted(set().union(*(labels for _, labels, _ in sets)))
    names = names or tuple(found)
    unknown = set(found) - set(names)
    if unknown:
        raise InputError(table, f"labels {sorted(unknown)} are not among {list(names)}")
    rows = [(file, labels) for file, labels, row_split in sets if row_split in (None, split)]
    if not rows:
        raise EmptyInputError(path, f"no labelled images for split {split!r}")
    matrix = np.array([[name in labels for name in names] for _, labels in rows], np.int64)
    images = [read_image_file(path / rel) for rel, _ in rows]
    return LabelledImages(images, matrix, names, tuple(r for r, _ in rows), str(path), split)


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
