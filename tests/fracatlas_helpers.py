"""A tiny folder in the ../shared/data FracAtlas layout, for tests of ``io.prepare``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image as PILImage


def fracatlas_like(root: Path, n_fractured: int = 8, n_negative: int = 16) -> Path:
    """A folder in the ../shared/data FracAtlas layout: 1 in 4 fractures in val."""
    (root / "images").mkdir(parents=True)
    rows, boxes = [], []
    for i in range(n_fractured + n_negative):
        name = f"images/IMG{i:07d}.png"
        PILImage.fromarray(np.full((32, 40), i, np.uint8)).save(root / name)
        fractured = i < n_fractured
        official = ("valid" if i % 4 == 0 else "train") if fractured else ""
        rows.append([name, int(fractured), "train", official])
        if fractured:
            boxes.append([name, "fracture", 4, 5, 14 + i % 3, 20, 40, 32])
    with (root / "labels.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["file", "fractured", "split", "official_fracture_split"], *rows])
    with (root / "boxes.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(
            [["file", "label", "xmin", "ymin", "xmax", "ymax", "width", "height"], *boxes]
        )
    return root
