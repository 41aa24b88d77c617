"""Prepare a published dataset whose own layout radlens does not read into one it does.

Some releases split only part of their data (FracAtlas splits its fractured images and
leaves the others without a split) or keep labels in a column of their own. ``prepare``
writes a *view*: a folder with ``labels.csv`` (``file,label,split``: read by
:func:`radlens.io.datasets.read_labelled`) and ``boxes.csv`` (``split,image,label,xmin,
ymin,xmax,ymax``: read by :func:`radlens.io.box_sets.read_boxes`) whose images are a symbolic
link to the source's, so no pixel is copied and the source stays untouched. The split it
adds is drawn with a fixed seed and written down, so a recipe trained on the view can be
retrained exactly.

Example:
    >>> view = prepare("fracatlas", Path("../shared/data/det/fracatlas_fracture"),
    ...                Path("build/data/fracatlas"))  # doctest: +SKIP
    >>> view.counts["val"]
    {'fracture': 82, 'no fracture': 112}
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from radlens.errors import InputError

NO_FRACTURE, FRACTURE = "no fracture", "fracture"


@dataclass(frozen=True)
class PreparedView:
    """A prepared folder and its items per split and label."""

    folder: Path
    counts: dict[str, dict[str, int]]


def prepare(name: str, source: Path, out: Path, seed: int = 0) -> PreparedView:
    """Write the view ``name`` (a key of ``PREPARERS``) of ``source`` into ``out``.

    Raises:
        InputError: no preparer by that name, or the source is not that dataset.
    """
    try:
        preparer = PREPARERS[name]
    except KeyError:
        raise InputError(source, f"no preparer {name!r}; known: {sorted(PREPARERS)}") from None
    return preparer(source, out, seed)


def prepare_fracatlas(source: Path, out: Path, seed: int = 0) -> PreparedView:
    """FracAtlas (Abedeen et al., Scientific Data 10:521, 2023) as found in ``../shared/data``.

    Fractured images keep the official fracture split (``train`` -> train, ``valid`` ->
    val). The non-fractured images have no official split: shuffled with
    ``random.Random(seed)``, the same share as the fractured ones (82 of 656, 12.5%) goes
    to val, so both splits hold fractures at about the same prevalence. Labels:
    ``no fracture`` / ``fracture``; boxes: class ``fracture``; an image without boxes gets
    one row with an empty label (it belongs to the split, with nothing to find).
    """
    table, boxes_table = source / "labels.csv", source / "boxes.csv"
    for needed in (table, boxes_table, source / "images"):
        if not needed.exists():
            raise InputError(needed, "missing: not the FracAtlas layout of ../shared/data")
    with table.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"file", "fractured", "official_fracture_split"} <= set(rows[0]):
        raise InputError(table, "needs columns file, fractured, official_fracture_split")
    official = {"train": "train", "valid": "val"}
    fractured = [r for r in rows if r["fractured"] == "1"]
    negatives = sorted(r["file"] for r in rows if r["fractured"] == "0")
    split = {r["file"]: official[r["official_fracture_split"]] for r in fractured}
    n_val = sum(1 for s in split.values() if s == "val")
    share = n_val / max(1, len(fractured))
    random.Random(seed).shuffle(negatives)
    cut = round(share * len(negatives))
    split.update({f: "val" for f in negatives[:cut]})
    split.update({f: "train" for f in negatives[cut:]})
    boxes: dict[str, list[dict[str, str]]] = {}
    with boxes_table.open(newline="", encoding="utf-8") as fh:
        for box in csv.DictReader(fh):
            boxes.setdefault(box["file"], []).append(box)
    out.mkdir(parents=True, exist_ok=True)
    _link(out / "images", (source / "images").resolve())
    counts: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    _write(out / "labels.csv", ["file", "label", "split"], _label_rows(rows, split, counts))
    box_rows: list[list[str]] = []
    for r in rows:
        name = Path(r["file"]).name
        marks = boxes.get(r["file"], [])
        if not marks:
            box_rows.append([split[r["file"]], name, "", "", "", "", ""])
        for b in marks:
            corners = [b["xmin"], b["ymin"], b["xmax"], b["ymax"]]
            box_rows.append([split[r["file"]], name, FRACTURE, *corners])
    _write(out / "boxes.csv", ["split", "image", "label", "xmin", "ymin", "xmax", "ymax"], box_rows)
    (out / "PREPARED.txt").write_text(
        f"radlens data prepare fracatlas {source} -o {out} --seed {seed}\n"
        f"source: {source.resolve()}\nnon-fractured images to val: {cut} of {len(negatives)} "
        f"(random.Random({seed})), fractured: official fracture split\n",
        encoding="utf-8",
    )
    return PreparedView(out, counts)


def _label_rows(
    rows: list[dict[str, str]], split: dict[str, str], counts: dict[str, dict[str, int]]
) -> list[list[str]]:
    out = []
    for r in rows:
        label = FRACTURE if r["fractured"] == "1" else NO_FRACTURE
        where = split[r["file"]]
        counts[where][label] = counts[where].get(label, 0) + 1
        out.append([r["file"], label, where])
    return out


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    partial.replace(path)


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() and link.readlink() == target:
        return
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise InputError(link, "exists and is not the link this view makes; remove it")
    link.symlink_to(target, target_is_directory=True)


PREPARERS: dict[str, Callable[[Path, Path, int], PreparedView]] = {
    "fracatlas": prepare_fracatlas,
}
