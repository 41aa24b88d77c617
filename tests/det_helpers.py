"""Shared by the detection tests: a valid detector card and a fake backend with one box."""

from __future__ import annotations

from typing import Any

import numpy as np

from radlens.inference.backends import FakeBackend
from radlens.models.card import (
    AppliesTo,
    Calibration,
    DetectionSpec,
    InputSpec,
    ModelCard,
    Training,
)


def detector_card(**fields: Any) -> ModelCard:
    """A 3-class colour detector with 64 x 64 inputs at stride 4 (structure of bccd_cells)."""
    values: dict[str, Any] = {
        "name": "tiny_cells",
        "version": "0.0.1",
        "task": "detection",
        "labels": ("Platelets", "RBC", "WBC"),
        "finding_code": "blood_cell",
        "finding_label": "Blood cell",
        "input": InputSpec(size=(64, 64), channels=3, resize="pad", use_window=False),
        "applies_to": AppliesTo(modalities=("SM", "OT"), body_parts=("BLOOD",), color=True),
        "calibration": Calibration(),
        "thresholds": {"operating": 0.3},
        "metrics": {},
        "training": Training("built by tests/det_helpers.py", "synthetic", "CC0-1.0", True),
        "intended_use": "Unit tests only.",
        "limitations": (),
        "sha256": "0" * 64,
        "outputs": ("heatmap", "ltrb"),
        "detection": DetectionSpec(stride=4),
    }
    return ModelCard(**(values | fields))


def one_box_backend(
    cell: tuple[int, int] = (6, 6), half: float = 8.0, label: int = 1, score: float = 0.9
) -> FakeBackend:
    """A peak of ``score`` at ``cell`` (row, col) of class ``label`` and boxes of side
    ``2 * half`` input pixels everywhere: one box centred on ``((col + .5) 4, (row + .5) 4)``."""

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        n, _, rows, cols = batch.shape
        heat = np.zeros((n, 3, rows // 4, cols // 4), np.float32)
        heat[:, label, cell[0], cell[1]] = score
        return {"heatmap": heat, "ltrb": np.full((n, 4, rows // 4, cols // 4), half, np.float32)}

    return FakeBackend(run)
