"""Average precision of a detector, as Pascal VOC scores it (numpy only).

Per class, every detection of the whole split is ranked by score; going down the ranking, a
detection is a true positive when its best-overlapping ground-truth box of that class in
the same image (IoU, :func:`radlens.inference.detection.box_iou`) reaches the IoU threshold
and was not matched before, else a false positive. A detection whose best match is a
``difficult`` box counts as neither, and difficult boxes are not in the recall's
denominator (Everingham et al., IJCV 2010, section 4.2). AP is the area under the
precision-recall curve with precision made monotone (all-point interpolation, VOC 2010 and
later, and the "mAP@0.5" YOLO tools report). A class without ground truth has no AP and is
left out of the mean. ``map_50_95`` is the mean of the AP at IoU 0.50, 0.55, ..., 0.95 (the
COCO thresholds, with the VOC interpolation above rather than COCO's 101 recall points).

Example:
    >>> ap = average_precision(np.array([1.0, 0.0, 1.0]), n_positives=2)
    >>> round(ap, 4)  # precision 1 at recall 0.5, 2/3 at recall 1
    0.8333
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from radlens.inference.backends import Backend
from radlens.inference.detection import Detections, box_iou, detect
from radlens.io.box_sets import BoxedImages
from radlens.models.card import ModelCard

IOU_THRESHOLDS_50_95 = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))


def average_precision(hits: np.ndarray, n_positives: int) -> float:
    """All-point interpolated AP of ranked detections (``hits``: 1 true, 0 false positive).

    Returns NaN when there is nothing to find (``n_positives == 0``).
    """
    if n_positives == 0:
        return float("nan")
    tp = np.cumsum(hits)
    fp = np.cumsum(1 - hits)
    recall = np.concatenate([[0.0], tp / n_positives, [1.0]])
    precision = np.concatenate([[0.0], tp / np.maximum(tp + fp, 1e-12), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    changed = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[changed + 1] - recall[changed]) * precision[changed + 1]))


@dataclass(frozen=True)
class DetectionScores:
    """AP per class at IoU 0.5 and averaged over 0.5:0.95, and their means over classes.

    Attributes:
        ap_50, ap_50_95: class name -> AP (NaN for a class without ground truth).
        n_boxes: class name -> ground-truth boxes that count (not difficult).
        n: images scored.
    """

    ap_50: dict[str, float]
    ap_50_95: dict[str, float]
    n_boxes: dict[str, int]
    n: int = 0

    @property
    def per_class(self) -> dict[str, dict[str, float]]:
        """Class name -> ``n`` (boxes), ``ap50``, ``ap50_95`` (as ``radlens evaluate`` shows)."""
        return {
            name: {"n": float(self.n_boxes[name]), "ap50": ap, "ap50_95": self.ap_50_95[name]}
            for name, ap in self.ap_50.items()
        }

    @property
    def map_50(self) -> float:
        return _nanmean(self.ap_50.values())

    @property
    def map_50_95(self) -> float:
        return _nanmean(self.ap_50_95.values())

    @property
    def metrics(self) -> dict[str, float]:
        """The same as :meth:`as_metrics` (what ``radlens train`` prints)."""
        return self.as_metrics()

    def as_metrics(self) -> dict[str, float]:
        """Flat metrics for a card: ``map50``, ``map50_95``, ``ap50:<class>``,
        ``ap50_95:<class>``."""
        out = {"map50": round(self.map_50, 4), "map50_95": round(self.map_50_95, 4)}
        for name, value in self.ap_50.items():
            if not np.isnan(value):
                out[f"ap50:{name}"] = round(value, 4)
                out[f"ap50_95:{name}"] = round(self.ap_50_95[name], 4)
        return out


def _nanmean(values: object) -> float:
    array = np.array(list(values), np.float64)  # type: ignore[call-overload]
    return float(np.nanmean(array)) if np.any(~np.isnan(array)) else float("nan")


def ranked_hits(
    detections: Sequence[Detections],
    boxes: Sequence[np.ndarray],
    classes: Sequence[np.ndarray],
    difficult: Sequence[np.ndarray],
    label: int,
    iou_threshold: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Class ``label``'s detections over all images ranked by score: their hits (1/0),
    their scores (descending), and the class's positives."""
    scores, hits = [], []
    n_positives = 0
    for det, gt_boxes, gt_classes, gt_difficult in zip(
        detections, boxes, classes, difficult, strict=True
    ):
        mine = gt_classes == label
        gt, hard = gt_boxes[mine], gt_difficult[mine]
        n_positives += int((~hard).sum())
        pick = det.classes == label
        det_boxes, det_scores = det.boxes[pick], det.scores[pick]
        order = np.argsort(-det_scores, kind="stable")
        taken = np.zeros(len(gt), bool)
        iou = box_iou(det_boxes[order], gt) if len(gt) else np.zeros((len(order), 0))
        for row, k in enumerate(order):
            best = int(np.argmax(iou[row])) if len(gt) else -1
            if best < 0 or iou[row, best] < iou_threshold:
                hit = 0
            elif hard[best]:
                continue  # a detection of a difficult box neither helps nor hurts
            elif taken[best]:
                hit = 0
            else:
                taken[best] = True
                hit = 1
            scores.append(float(det_scores[k]))
            hits.append(hit)
    score_array = np.array(scores, np.float64)
    ranked = np.argsort(-score_array, kind="stable")
    return np.array(hits, np.float64)[ranked], score_array[ranked], n_positives


@dataclass(frozen=True)
class OperatingPoint:
    """The score a box needs to be reported, fitted on val, and what it gives there.

    ``score`` maximises the F1 of boxes matched at IoU ``iou`` (every class pooled, each
    detection matched as for AP); ties go to the higher score (fewer boxes). Precision,
    recall and F1 are those of the boxes at or above it. ``fitted`` is False when no
    detection matched a labelled box, and ``score`` is then the default it was given.
    """

    score: float
    precision: float
    recall: float
    f1: float
    iou: float
    fitted: bool = True

    def describe(self) -> str:
        """One line for a log or a table."""
        if not self.fitted:
            return (
                f"operating score {self.score:g} (the default: no val detection matched a "
                f"labelled box at IoU {self.iou:g})"
            )
        return (
            f"operating score {self.score:.4f} (best val F1 of boxes at IoU {self.iou:g}): "
            f"precision {self.precision:.3f}, recall {self.recall:.3f}, F1 {self.f1:.3f}"
        )

    def as_metrics(self) -> dict[str, float]:
        """For a card's val metrics: ``precision_at_operating`` etc. (at IoU ``iou``)."""
        return {
            "precision_at_operating": round(self.precision, 4),
            "recall_at_operating": round(self.recall, 4),
            "f1_at_operating": round(self.f1, 4),
        }


def operating_point(
    detections: Sequence[Detections],
    boxes: Sequence[np.ndarray],
    classes: Sequence[np.ndarray],
    difficult: Sequence[np.ndarray],
    label_names: Sequence[str],
    default: float,
    iou_threshold: float = 0.5,
) -> OperatingPoint:
    """The box score with the best F1 on these detections (see :class:`OperatingPoint`).

    Example:
        >>> gt = [np.array([[0, 0, 10, 10.0]]), np.zeros((0, 4))]
        >>> det = [
        ...     Detections(np.array([[0, 0, 10, 9.0]]), np.array([0.6]), np.array([0])),
        ...     Detections(np.array([[5, 5, 9, 9.0]]), np.array([0.4]), np.array([0])),
        ... ]
        >>> no = [np.array([False]), np.zeros(0, bool)]
        >>> p = operating_point(det, gt, [np.array([0]), np.zeros(0, int)], no, ["x"], 0.3)
        >>> p.score, p.precision, p.recall
        (0.6, 1.0, 1.0)
    """
    all_hits, all_scores, positives = [], [], 0
    for label in range(len(label_names)):
        hits, scores, n_pos = ranked_hits(
            detections, boxes, classes, difficult, label, iou_threshold
        )
        all_hits.append(hits)
        all_scores.append(scores)
        positives += n_pos
    hits, scores = np.concatenate(all_hits), np.concatenate(all_scores)
    order = np.argsort(-scores, kind="stable")
    hits, scores = hits[order], scores[order]
    if positives == 0 or hits.sum() == 0:
        return OperatingPoint(default, 0.0, 0.0, 0.0, iou_threshold, fitted=False)
    tp, fp = np.cumsum(hits), np.cumsum(1 - hits)
    # A cut at a score keeps every detection scoring that much or more: the last of a tie.
    last = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    f1 = 2 * tp[last] / (2 * tp[last] + fp[last] + (positives - tp[last]))
    k = last[int(np.argmax(f1))]  # the first best: the highest score
    return OperatingPoint(
        score=float(scores[k]),
        precision=float(tp[k] / (tp[k] + fp[k])),
        recall=float(tp[k] / positives),
        f1=float(2 * tp[k] / (2 * tp[k] + fp[k] + positives - tp[k])),
        iou=iou_threshold,
    )


def score_detections(
    detections: Sequence[Detections],
    boxes: Sequence[np.ndarray],
    classes: Sequence[np.ndarray],
    difficult: Sequence[np.ndarray],
    label_names: Sequence[str],
) -> DetectionScores:
    """VOC AP per class of one split's detections against its ground truth (source pixels).

    Example:
        >>> gt = [np.array([[0, 0, 10, 10.0]])]
        >>> det = [Detections(np.array([[0, 0, 10, 9.0]]), np.array([0.8]), np.array([0]))]
        >>> s = score_detections(det, gt, [np.array([0])], [np.array([False])], ["cell"])
        >>> s.map_50, s.ap_50_95["cell"]
        (1.0, 0.9)
    """
    ap_50, ap_50_95, n_boxes = {}, {}, {}
    for label, name in enumerate(label_names):
        aps = []
        for threshold in IOU_THRESHOLDS_50_95:
            hits, _, n_pos = ranked_hits(detections, boxes, classes, difficult, label, threshold)
            aps.append(average_precision(hits, n_pos))
        ap_50[name] = aps[0]
        ap_50_95[name] = float(np.mean(aps))
        n_boxes[name] = n_pos
    return DetectionScores(ap_50, ap_50_95, n_boxes, len(detections))


def evaluate_detector(card: ModelCard, backend: Backend, data: BoxedImages) -> DetectionScores:
    """VOC AP of a detector on a box set, through ``backend`` (ONNX Runtime in use), with
    the decoding inference uses; ``radlens train`` and ``radlens evaluate`` both call it."""
    found = _detect_all(card, backend, data)
    return score_detections(found, data.boxes, data.classes, data.difficult, data.label_names)


def measure_detector(
    card: ModelCard, backend: Backend, data: BoxedImages, default: float
) -> tuple[DetectionScores, OperatingPoint]:
    """:func:`evaluate_detector` and the :func:`operating_point` fitted on the same boxes
    (``default`` when none matched), from one pass of the detector."""
    found = _detect_all(card, backend, data)
    truth = (data.boxes, data.classes, data.difficult)
    scores = score_detections(found, *truth, data.label_names)
    return scores, operating_point(found, *truth, data.label_names, default)


def _detect_all(card: ModelCard, backend: Backend, data: BoxedImages) -> list[Detections]:
    """Every image's boxes down to the card's ``detection.min_score`` (the cut AP counts)."""
    return [detect(image, card, backend) for image in data.images]
