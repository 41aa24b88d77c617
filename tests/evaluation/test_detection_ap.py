"""VOC average precision of detections: hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from det_helpers import detector_card, one_box_backend
from radlens.evaluation.detection import (
    average_precision,
    evaluate_detector,
    measure_detector,
    operating_point,
    score_detections,
)
from radlens.inference.detection import Detections
from radlens.io.box_sets import BoxedImages


def dets(boxes: list[list[float]], scores: list[float], classes: list[int]) -> Detections:
    return Detections(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(classes, np.int64),
    )


def test_average_precision_is_the_area_under_the_monotone_precision_recall_curve() -> None:
    # TP, FP, FP, TP of 3 positives: precision 1 up to recall 1/3, then max(.5) up to 2/3.
    assert average_precision(np.array([1.0, 0.0, 0.0, 1.0]), 3) == pytest.approx(0.5)
    assert average_precision(np.array([1.0, 1.0]), 2) == pytest.approx(1.0)
    assert average_precision(np.array([0.0, 0.0]), 2) == 0.0
    assert np.isnan(average_precision(np.array([0.0]), 0))


def test_duplicates_are_false_positives_and_difficult_boxes_count_neither_way() -> None:
    gt_boxes = [
        np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32),
        np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32),
    ]
    gt_classes = [np.array([0, 0]), np.array([0, 0])]
    difficult = [np.array([False, False]), np.array([True, False])]
    found = [
        dets([[0, 0, 10, 10], [1, 1, 10, 10], [100, 100, 110, 110]], [0.9, 0.8, 0.6], [0, 0, 0]),
        dets([[0, 0, 10, 10], [50, 50, 60, 60]], [0.7, 0.5], [0, 0]),
    ]
    scores = score_detections(found, gt_boxes, gt_classes, difficult, ["cell"])
    # Ranked without the difficult match: TP FP FP TP of 3 positives (the hand case above).
    assert scores.ap_50["cell"] == pytest.approx(0.5)
    assert scores.n_boxes == {"cell": 3}
    assert scores.n == 2
    plain = score_detections(found, gt_boxes, gt_classes, [d & False for d in difficult], ["cell"])
    assert plain.ap_50["cell"] != pytest.approx(0.5)  # the difficult box mattered


def test_classes_are_scored_apart_and_a_class_without_boxes_is_left_out_of_the_mean() -> None:
    gt = [np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)]
    found = [dets([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.8], [1, 0])]
    scores = score_detections(found, gt, [np.array([0, 1])], [np.zeros(2, bool)], ["a", "b", "c"])
    assert scores.ap_50["a"] == 0.0 and scores.ap_50["b"] == 0.0  # right place, wrong class
    assert np.isnan(scores.ap_50["c"])
    assert scores.map_50 == 0.0
    metrics = scores.as_metrics()
    assert "ap50:c" not in metrics and metrics["map50"] == 0.0


def test_ap_50_95_averages_ten_iou_thresholds() -> None:
    gt = [np.array([[0, 0, 10, 10]], np.float32)]
    # IoU 0.8: a hit at 0.50 ... 0.80 (7 thresholds), a miss at 0.85, 0.90, 0.95.
    found = [dets([[0, 0, 10, 8]], [0.9], [0])]
    scores = score_detections(found, gt, [np.array([0])], [np.zeros(1, bool)], ["x"])
    assert scores.ap_50["x"] == 1.0
    assert scores.ap_50_95["x"] == pytest.approx(0.7)
    assert scores.per_class["x"] == {"n": 1.0, "ap50": 1.0, "ap50_95": pytest.approx(0.7)}


def test_evaluate_detector_scores_a_backend_through_the_inference_decoding() -> None:
    card = detector_card()
    image = np.zeros((64, 64, 3), np.uint8)
    data = BoxedImages(
        [image],
        [np.array([[18, 18, 34, 34]], np.float32)],
        [np.array([1])],
        [np.zeros(1, bool)],
        card.labels,
        ("a.png",),
    )
    scores = evaluate_detector(card, one_box_backend(cell=(6, 6), half=8.0, label=1), data)
    assert scores.ap_50["RBC"] == 1.0 and scores.ap_50_95["RBC"] == 1.0
    assert np.isnan(scores.ap_50["WBC"]) and scores.map_50 == 1.0


def test_the_operating_score_is_the_best_f1_of_boxes_pooled_over_classes() -> None:
    # Class 0: hits at 0.9 and 0.5, a false box at 0.7; class 1: a hit at 0.6, a false box
    # at 0.2; 4 labelled boxes (one class-1 box never found). Pooled by score:
    # 0.9 TP, 0.7 FP, 0.6 TP, 0.5 TP, 0.2 FP -> F1 at each cut 2/5, 2/6, 4/7, 6/8, 6/9.
    gt = [
        np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32),
        np.array([[0, 0, 10, 10], [40, 40, 50, 50]], np.float32),
    ]
    classes = [np.array([0, 0]), np.array([1, 1])]
    found = [
        dets([[0, 0, 10, 10], [60, 60, 70, 70], [20, 20, 30, 30]], [0.9, 0.7, 0.5], [0, 0, 0]),
        dets([[0, 0, 10, 10], [80, 80, 90, 90]], [0.6, 0.2], [1, 1]),
    ]
    point = operating_point(found, gt, classes, [np.zeros(2, bool)] * 2, ["a", "b"], 0.3)
    assert point.fitted and point.score == pytest.approx(0.5)
    assert (point.precision, point.recall, point.f1) == pytest.approx((0.75, 0.75, 0.75))
    assert point.as_metrics() == {
        "precision_at_operating": 0.75,
        "recall_at_operating": 0.75,
        "f1_at_operating": 0.75,
    }
    assert "0.5000" in point.describe() and "IoU 0.5" in point.describe()


def test_tied_scores_are_cut_together_and_a_tie_in_f1_goes_to_the_higher_score() -> None:
    gt = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)]
    # 0.8 TP (F1 2/3), then 0.4 FP and 0.4 TP together (F1 4/5): the tie is one cut.
    found = [dets([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], [0.8, 0.4, 0.4], [0] * 3)]
    point = operating_point(found, gt, [np.array([0, 0])], [np.zeros(2, bool)], ["x"], 0.3)
    assert point.score == pytest.approx(0.4) and point.f1 == pytest.approx(0.8)
    # One hit then one false box: F1 2/3 at 0.8, 2/4 below: the higher score wins.
    one = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)]
    found = [dets([[0, 0, 10, 10], [50, 50, 60, 60]], [0.8, 0.4], [0, 0])]
    point = operating_point(found, one, [np.array([0, 0])], [np.zeros(2, bool)], ["x"], 0.3)
    assert point.score == pytest.approx(0.8) and point.precision == 1.0


def test_without_a_matched_box_the_operating_score_stays_the_default() -> None:
    gt = [np.array([[0, 0, 10, 10]], np.float32)]
    found = [dets([[50, 50, 60, 60]], [0.9], [0])]
    point = operating_point(found, gt, [np.array([0])], [np.zeros(1, bool)], ["x"], 0.3)
    assert not point.fitted and point.score == 0.3 and point.f1 == 0.0
    assert "the default" in point.describe()


def test_measure_detector_fits_the_operating_score_from_the_same_pass() -> None:
    card = detector_card()
    data = BoxedImages(
        [np.zeros((64, 64, 3), np.uint8)],
        [np.array([[18, 18, 34, 34]], np.float32)],
        [np.array([1])],
        [np.zeros(1, bool)],
        card.labels,
        ("a.png",),
    )
    backend = one_box_backend(cell=(6, 6), half=8.0, label=1, score=0.55)
    scores, point = measure_detector(card, backend, data, default=0.3)
    assert scores.map_50 == 1.0
    assert point.score == pytest.approx(0.55) and point.recall == 1.0
