"""Decoding a detector's maps into boxes: peaks, top-k, class-wise NMS, source pixels."""

from __future__ import annotations

import numpy as np
import pytest

from det_helpers import detector_card, one_box_backend
from radlens.domain.imaging import Geometry, Image, ImageLayout
from radlens.inference.backends import FakeBackend
from radlens.inference.detection import (
    Detections,
    box_iou,
    decode_boxes,
    detect,
    detect_findings,
    nms,
    peaks,
    to_source,
)
from radlens.inference.preprocess import Placement


def test_peaks_keep_only_the_maximum_of_each_3x3_neighbourhood_per_class() -> None:
    heat = np.zeros((2, 5, 5), np.float32)
    heat[0, 2, 2], heat[0, 2, 3] = 0.9, 0.5  # a shoulder next to a peak
    heat[1, 2, 3] = 0.4  # another class at the same place is its own peak
    out = peaks(heat)
    assert out[0, 2, 2] == pytest.approx(0.9) and out[0, 2, 3] == 0
    assert out[1, 2, 3] == pytest.approx(0.4)


def test_nms_drops_overlapping_boxes_of_lower_score_and_keeps_the_rest() -> None:
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [1, 0, 11, 10], [0, 0, 10, 4]], np.float32)
    keep = nms(boxes, np.array([0.5, 0.6, 0.9, 0.8]), 0.5)
    assert keep.tolist() == [2, 3, 1]  # box 0 overlaps box 2 by IoU 0.82; box 3 by 0.4
    assert box_iou(boxes[:1], boxes[2:3])[0, 0] == pytest.approx(90 / 110)


def test_decode_applies_nms_per_class_only_and_caps_at_top_k() -> None:
    heat = np.zeros((2, 8, 8), np.float32)
    heat[0, 2, 2], heat[1, 2, 4] = 0.9, 0.8  # two classes, overlapping boxes
    heat[0, 6, 6] = 0.3
    ltrb = np.full((4, 8, 8), 10.0, np.float32)
    both = decode_boxes(heat, ltrb, stride=4, score_threshold=0.1, nms_iou=0.5)
    assert both.classes.tolist() == [0, 1, 0]
    assert both.scores.tolist() == pytest.approx([0.9, 0.8, 0.3])
    assert both.boxes[0].tolist() == [0.0, 0.0, 20.0, 20.0]  # centre (10, 10) +/- 10
    top = decode_boxes(heat, ltrb, stride=4, score_threshold=0.1, top_k=2)
    assert len(top) == 2
    assert len(decode_boxes(heat, ltrb, stride=4, score_threshold=0.95)) == 0


def test_to_source_undoes_the_padded_resize_and_clips_to_the_image() -> None:
    placement = Placement((100, 200), 2.0, 2.0, offset_y=25.0, offset_x=0.0)
    found = Detections(
        np.array([[10, 30, 20, 40], [95, 70, 110, 80], [0, 0, 5, 20]], np.float32),
        np.array([0.9, 0.8, 0.7], np.float32),
        np.array([0, 1, 2]),
    )
    mapped = to_source(found, placement)
    assert mapped.boxes[0].tolist() == [20.0, 10.0, 40.0, 30.0]
    assert mapped.boxes[1].tolist() == [190.0, 90.0, 200.0, 100.0]  # clipped
    assert len(mapped) == 2  # the third lies in the padding above the image


def test_detect_runs_preprocessing_backend_and_decoding_in_source_pixels() -> None:
    card = detector_card()
    image = np.zeros((128, 96, 3), np.uint8)  # padded to 64 x 64: scale 2, 8 px left pad
    found = detect(image, card, one_box_backend(cell=(6, 6), half=8.0, label=2))
    assert found.classes.tolist() == [2]
    # Input box [18, 18, 34, 34] -> source x (18 - 8) * 2 = 20 .. 52, y 36 .. 68.
    assert found.boxes[0].tolist() == pytest.approx([20.0, 36.0, 52.0, 68.0])


def smear_like(rows: int = 64, cols: int = 64) -> np.ndarray:
    """A colour image that passes the quality checks (neither blank, saturated nor noisy)."""
    ramp = np.add.outer(np.arange(rows), np.arange(cols)) * (200 / (rows + cols))
    return np.stack([ramp, ramp * 0.8, ramp * 0.9], axis=-1).astype(np.uint8)


def test_detect_findings_gives_one_finding_per_box_above_the_operating_score() -> None:
    card = detector_card()
    image = Image(smear_like(), ImageLayout.YXC, Geometry((1.0, 1.0)), source_uids=("1.2",))
    [finding] = detect_findings(image, card, one_box_backend(label=2, score=0.9))
    assert (finding.code, finding.label, finding.model_name) == ("wbc", "WBC", "tiny_cells")
    assert finding.probability == pytest.approx(0.9) and finding.positive
    assert finding.box is not None and finding.heatmap is None
    assert (finding.box.x0, finding.box.y1) == (18.0, 34.0)
    assert finding.sop_instance_uid == "1.2"
    assert not finding.ood_flag and finding.ood_score is None  # the card has no OOD score
    assert detect_findings(image, card, one_box_backend(score=0.2)) == []  # below 0.3


def test_box_findings_keep_distinct_ids_through_findings_json() -> None:
    from radlens.domain.findings import SeriesResult, StudyResult, finding_id
    from radlens.report.findings_json import from_json, to_json

    def two_rbc(batch: np.ndarray) -> dict[str, np.ndarray]:
        heat = np.zeros((len(batch), 3, 16, 16), np.float32)
        heat[:, 1, 3, 3], heat[:, 1, 10, 12] = 0.9, 0.8
        return {"heatmap": heat, "ltrb": np.full((len(batch), 4, 16, 16), 5.0, np.float32)}

    image = Image(
        np.zeros((64, 64, 3), np.uint8), ImageLayout.YXC, Geometry((1.0, 1.0)), source_uids=("1.2",)
    )
    findings = detect_findings(image, detector_card(), FakeBackend(two_rbc))
    assert [f.code for f in findings] == ["rbc", "rbc"] and all(f.detected for f in findings)
    ids = [finding_id("9.9", f) for f in findings]
    assert len(set(ids)) == 2  # one image, one class, two boxes: two findings
    result = StudyResult("9", (SeriesResult("9.9", "SM", "BLOOD", 1, ("tiny",), tuple(findings)),))
    again = from_json(to_json(result)).findings
    assert [finding_id("9.9", f) for f in again] == ids and all(f.detected for f in again)
