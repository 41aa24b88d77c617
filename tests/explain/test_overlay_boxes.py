"""Overlays of a detector's boxes: each box in its class colour, a count per class."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from radlens.domain.findings import Box, Finding, is_detected_box
from radlens.explain.overlay import _detection_summary, render_overlay


def box_finding(label: str, box: Box, score: float = 0.8) -> Finding:
    return Finding(label.lower(), label, score, 0.3, "bccd_cells", "1.0.0", box=box, detected=True)


def test_boxes_are_drawn_in_their_class_colour_on_the_image() -> None:
    image = np.full((200, 300, 3), 128, np.uint8)
    findings = [
        box_finding("WBC", Box(100, 80, 180, 160)),
        box_finding("RBC", Box(20, 120, 60, 190)),
    ]
    rgb = render_overlay(image, None, findings)
    assert rgb.shape == (200, 300, 3)
    right_edge_wbc = rgb[120, 180]
    right_edge_rbc = rgb[160, 60]
    assert not np.array_equal(right_edge_wbc, [128, 128, 128])
    assert not np.array_equal(right_edge_rbc, [128, 128, 128])
    assert not np.array_equal(right_edge_wbc, right_edge_rbc)  # one colour per class
    assert np.array_equal(rgb[120, 140], [128, 128, 128])  # boxes are outlines, not fills


def test_only_findings_marked_detected_are_drawn_as_detections() -> None:
    detected = box_finding("RBC", Box(0, 0, 4, 4))
    cam = Finding("x", "X", 0.9, 0.5, "m", "1", heatmap=np.zeros((4, 4)), box=Box(0, 0, 4, 4))
    assert is_detected_box(detected) and not is_detected_box(cam)
    assert not is_detected_box(Finding("x", "X", 0.9, 0.5, "m", "1", box=Box(0, 0, 4, 4)))


def test_summary_counts_boxes_per_class_and_model() -> None:
    boxes = [box_finding("RBC", Box(0, 0, 4, 4)) for _ in range(3)]
    boxes.append(box_finding("WBC", Box(0, 0, 9, 9)))
    assert _detection_summary(boxes) == [
        "RBC: 3 boxes (score >= 0.30) bccd_cells 1.0.0",
        "WBC: 1 box (score >= 0.30) bccd_cells 1.0.0",
    ]


def test_summary_marks_the_classes_of_low_trust_boxes() -> None:
    flagged = replace(box_finding("RBC", Box(0, 0, 4, 4)), ood_flag=True)
    boxes = [flagged, flagged, box_finding("WBC", Box(0, 0, 9, 9))]
    assert _detection_summary(boxes) == [
        "RBC: 2 boxes (score >= 0.30) bccd_cells 1.0.0 - LOW TRUST",
        "WBC: 1 box (score >= 0.30) bccd_cells 1.0.0",
    ]


def test_a_low_trust_image_without_boxes_is_written_on_the_overlay() -> None:
    nothing = Finding(
        "blood_cells", "Blood cells", 0.12, 0.3, "bccd_cells", "1.0.0", ood_flag=True, detected=True
    )
    plain = render_overlay(np.full((200, 300, 3), 128, np.uint8), None, [])
    marked = render_overlay(np.full((200, 300, 3), 128, np.uint8), None, [nothing])
    # One more caption line (the finding's) above the AI-draft line.
    assert (marked != plain).any(axis=2).sum() > (plain != 128).any(axis=2).sum()
