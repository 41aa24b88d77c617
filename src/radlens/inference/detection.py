"""Boxes from a detector's two output maps, in numpy: peaks, top-k, class-wise NMS.

The detectors radlens trains (``radlens.training.detection``) are anchor-free, in the
manner of CenterNet (Zhou et al., "Objects as Points", 2019) and TTFNet (Liu et al., AAAI
2020): at stride ``s`` the graph gives

* ``heatmap`` ``(B, K, h, w)``: per class, the probability that a box centre falls in the
  cell (sigmoid already applied);
* ``ltrb`` ``(B, 4, h, w)``: distances in input pixels from the cell centre
  ``((j + 0.5) s, (i + 0.5) s)`` to the box's left, top, right and bottom edges.

:func:`decode_boxes` keeps the cells that are the maximum of their 3 x 3 neighbourhood,
above ``score_threshold``, the ``top_k`` best, and then applies non-maximum suppression per
class. Everything after the graph is here, so it needs no torch and is the same in
training, evaluation and inference.

Example:
    >>> heat = np.zeros((1, 2, 4, 4), np.float32); heat[0, 1, 2, 1] = 0.9
    >>> ltrb = np.full((1, 4, 4, 4), 3.0, np.float32)
    >>> d = decode_boxes(heat[0], ltrb[0], stride=4, score_threshold=0.1)
    >>> d.boxes.tolist(), d.classes.tolist(), [round(float(s), 2) for s in d.scores]
    ([[3.0, 7.0, 9.0, 13.0]], [1], [0.9])
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from radlens.domain.findings import Box, Finding
from radlens.domain.imaging import Image, Patient, Window
from radlens.inference.backends import Backend
from radlens.inference.ood import InputStats, OodStats, card_input_ood, read_ood
from radlens.inference.preprocess import Placement, prepare_2d
from radlens.inference.quality import check_quality
from radlens.models.card import DetectionSpec, ModelCard, Task

NO_BOX = "no box reached the operating score"
"""The warning of the one finding that stands for a low-trust image without boxes."""


@dataclass(frozen=True, eq=False)
class Detections:
    """Boxes of one image, best first.

    Attributes:
        boxes: ``(n, 4)`` float32 ``[x0, y0, x1, y1]`` (model input or source pixels).
        scores: ``(n,)`` float32 in [0, 1].
        classes: ``(n,)`` int64 class indexes.
    """

    boxes: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)
    classes: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.boxes.shape != (n, 4) or self.classes.shape != (n,):
            raise ValueError("boxes, scores and classes differ in length")

    def __len__(self) -> int:
        return len(self.scores)


def peaks(heatmap: np.ndarray) -> np.ndarray:
    """``heatmap`` ``(K, h, w)`` with every value that is not its 3 x 3 maximum set to 0."""
    padded = np.pad(heatmap, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    local_max = windows.max(axis=(-2, -1))
    out: np.ndarray = np.where(heatmap >= local_max, heatmap, 0.0).astype(np.float32)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` ``(n, 4)`` with every box of ``b`` ``(m, 4)``: ``(n, m)``.

    Example:
        >>> box_iou(np.array([[0, 0, 2, 2.0]]), np.array([[1, 0, 3, 2.0]])).round(3).tolist()
        [[0.333]]
    """
    ix = np.clip(
        np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[:, 0]), 0, None
    )
    iy = np.clip(
        np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[:, 1]), 0, None
    )
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    iou: np.ndarray = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    return iou


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indexes of the boxes greedy non-maximum suppression keeps, best first.

    Example:
        >>> b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
        >>> nms(b, np.array([0.9, 0.8, 0.7]), 0.5).tolist()
        [0, 2]
    """
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(int(best))
        order = rest[box_iou(boxes[best : best + 1], boxes[rest])[0] <= iou_threshold]
    return np.array(keep, np.int64)


def decode_boxes(
    heatmap: np.ndarray,
    ltrb: np.ndarray,
    stride: int,
    score_threshold: float = 0.05,
    top_k: int = 100,
    nms_iou: float = 0.5,
) -> Detections:
    """The boxes of one image from its ``heatmap`` ``(K, h, w)`` and ``ltrb`` ``(4, h, w)``.

    Boxes are in model-input pixels; :func:`to_source` maps them to the source image.
    """
    peak = peaks(heatmap)
    flat = peak.reshape(-1)
    candidates = np.flatnonzero(flat >= score_threshold)
    candidates = candidates[np.argsort(-flat[candidates], kind="stable")[:top_k]]
    n_classes, rows, cols = heatmap.shape
    cls, rem = np.divmod(candidates, rows * cols)
    i, j = np.divmod(rem, cols)
    cx, cy = (j + 0.5) * stride, (i + 0.5) * stride
    dist = ltrb[:, i, j]
    boxes = np.stack([cx - dist[0], cy - dist[1], cx + dist[2], cy + dist[3]], axis=1)
    scores = flat[candidates]
    keep = np.concatenate(
        [
            np.flatnonzero(cls == k)[nms(boxes[cls == k], scores[cls == k], nms_iou)]
            for k in range(n_classes)
        ]
        + [np.zeros(0, np.int64)]
    )
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    return Detections(
        boxes[keep].astype(np.float32).reshape(-1, 4),
        scores[keep].astype(np.float32),
        cls[keep].astype(np.int64),
    )


def to_source(detections: Detections, placement: Placement) -> Detections:
    """Boxes from model-input pixels to source pixels, clipped to the source image.

    Example:
        >>> d = Detections(np.array([[2, 2, 6, 6.0]]), np.array([0.5]), np.array([0]))
        >>> to_source(d, Placement((16, 16), 2.0, 2.0)).boxes.tolist()
        [[4.0, 4.0, 12.0, 12.0]]
    """
    rows, cols = placement.source_shape
    b = detections.boxes.astype(np.float64)
    x = (b[:, 0::2] - placement.offset_x) * placement.scale_x
    y = (b[:, 1::2] - placement.offset_y) * placement.scale_y
    boxes = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)
    boxes = np.clip(boxes, 0, [cols, rows, cols, rows]).astype(np.float32)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Detections(boxes[valid], detections.scores[valid], detections.classes[valid])


def detect(
    array: np.ndarray,
    card: ModelCard,
    backend: Backend,
    window: Window | None = None,
    min_score: float | None = None,
) -> Detections:
    """Boxes of one 2D image (``(rows, cols)`` or ``(rows, cols, 3)``) in source pixels.

    Every box down to ``min_score`` (default: the card's ``detection.min_score``, the cut
    AP is measured at) is returned.
    """
    x, placement = prepare_2d(array, card.input, window)
    heat, ltrb = _maps(x, card, backend)
    return _boxes(heat, ltrb, placement, card, min_score)


def _maps(x: np.ndarray, card: ModelCard, backend: Backend) -> tuple[np.ndarray, np.ndarray]:
    """The ``heatmap`` and ``ltrb`` maps of one prepared input ``(C, H, W)``."""
    out = backend.run(x[None])
    return out[card.outputs[0]][0], out[card.outputs[1]][0]


def _boxes(
    heat: np.ndarray,
    ltrb: np.ndarray,
    placement: Placement,
    card: ModelCard,
    min_score: float | None,
) -> Detections:
    spec = card.detection or DetectionSpec()
    cut = spec.min_score if min_score is None else max(min_score, spec.min_score)
    found = decode_boxes(heat, ltrb, spec.stride, cut, spec.max_detections, spec.nms_iou)
    return to_source(found, placement)


def detect_findings(
    image: Image,
    card: ModelCard,
    backend: Backend,
    patient: Patient | None = None,
    timings_s: dict[str, float] | None = None,
    input_stats: InputStats | None = None,
    ood_stats: OodStats | None = None,
) -> list[Finding]:
    """One finding per box at or above the card's ``operating`` score, best first.

    A box's finding has ``code`` = its class name lower-cased (spaces as ``_``), ``label``
    = the class name, ``probability`` = the box's score (a detector score, not a calibrated
    probability), ``threshold`` = ``operating`` and ``box`` in source pixels. A 2D image
    is read as is, a cine by its first frame.

    Trust: a detector whose graph has a ``features`` output and whose card has ``ood``
    (with its statistics, ``ood_stats``, from :func:`radlens.inference.ood.stats_for`)
    decides as a classifier does, on its features and input statistics combined
    (:func:`radlens.inference.ood.read_ood`): ``ood_feature_score``, ``ood_input_score`` and
    the decision score ``ood_score``. One with the card's ``detection.ood_inputs`` and its
    statistics (``input_stats``, from :func:`radlens.inference.ood.card_input_stats`) has
    the input-statistics distance alone as ``ood_input_score`` and, as a multiple of its
    threshold, ``ood_score``. At 1 or more the finding is flagged "input unlike training
    data — low trust". A failed quality check (blank, saturated, noisy, tiny) or a patient
    outside the card's population flags it too. Scores and boxes never change.

    No box above the threshold gives no finding, unless the image is low-trust: then one
    finding without a box stands for the image (``card.finding_code``, the best box score
    below the threshold as its probability, the flag and :data:`NO_BOX` among its
    warnings), so "nothing found" on an unfamiliar input is never said with full trust.

    Example:
        >>> detect_findings(image, load_model(folder).card, backend)[0].label  # doctest: +SKIP
        'WBC'
    """
    from radlens.inference.predict import frames_of, label_code, population_warning

    if card.task is not Task.DETECTION or card.detection is None:
        raise ValueError(f"{card.name} is not a detection model")
    clock = time.perf_counter()
    frame = frames_of(image)[0]
    x, placement = prepare_2d(frame.array, card.input, image.window)
    out = backend.run(x[None])
    heat, ltrb = out[card.outputs[0]][0], out[card.outputs[1]][0]
    found = _boxes(heat, ltrb, placement, card, card.threshold)
    if timings_s is not None:
        timings_s["inference"] = timings_s.get("inference", 0.0) + time.perf_counter() - clock
    quality = check_quality(frame.array, False, max(8, min(card.input.size) // 2))
    if card.ood is not None:
        reading = read_ood(card, ood_stats, out.get(card.ood.output), [frame.array], x[None])[0]
    else:
        reading = card_input_ood(card, input_stats, frame.array, x)
    ood_score, feature_score, input_score = reading.score, reading.feature, reading.inputs
    flagged = reading.flagged
    population, outside = population_warning(card, patient or Patient())
    warnings = ((population,) if population else ()) + quality + reading.warnings
    low_trust = bool(quality) or outside or flagged
    triaged = card.detection.triage_classes
    findings = []
    for box, score, k in zip(found.boxes, found.scores, found.classes, strict=True):
        if score < card.threshold:
            continue
        name = card.labels[int(k)]
        findings.append(
            Finding(
                code=label_code(name),
                label=name,
                probability=float(min(1.0, max(0.0, score))),
                threshold=card.threshold,
                model_name=card.name,
                model_version=card.version,
                sop_instance_uid=frame.sop_instance_uid,
                frame=frame.frame,
                box=Box(*(float(v) for v in box)),
                ood_score=ood_score,
                ood_flag=low_trust,
                ood_feature_score=feature_score,
                ood_input_score=input_score,
                ood_reasons=reading.reasons,
                warnings=warnings,
                detected=True,
                counted=triaged is not None and name not in triaged,
            )
        )
    if findings or not low_trust:
        return findings
    best = min(float(np.max(heat, initial=0.0)), float(np.nextafter(card.threshold, 0)))
    return [
        Finding(
            code=card.finding_code,
            label=card.finding_label,
            probability=min(1.0, max(0.0, best)),
            threshold=card.threshold,
            model_name=card.name,
            model_version=card.version,
            sop_instance_uid=frame.sop_instance_uid,
            frame=frame.frame,
            ood_score=ood_score,
            ood_flag=True,
            ood_feature_score=feature_score,
            ood_input_score=input_score,
            ood_reasons=reading.reasons,
            warnings=(NO_BOX, *warnings),
            detected=True,
            counted=True,
        )
    ]
