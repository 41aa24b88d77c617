"""What a model says about an image, and what radlens says about a study."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates of the source image (column x, row y).

    ``x0, y0`` is the top-left corner, ``x1, y1`` the bottom-right one, exclusive.
    """

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        if not (self.x1 > self.x0 and self.y1 > self.y0):
            raise ValueError(f"empty box {self}")

    @property
    def area_px(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        return inter / (self.area_px + other.area_px - inter)


@dataclass(frozen=True)
class Measurement:
    """A number a model measured, with its UCUM unit (a head circumference, an age).

    Attributes:
        code, label: what was measured (``"head_circumference"``, "Head circumference").
        value: the value in ``unit``, or None when it cannot be given (then ``note`` says
            why, e.g. an age outside the range its formula was fitted on).
        unit: UCUM code (``mm``, ``wk``).
        low, high: the range the value is known to within (e.g. +/- 2 SD), if stated.
        method: how it was obtained, with the published source of any formula.
    """

    code: str
    label: str
    value: float | None
    unit: str
    low: float | None = None
    high: float | None = None
    method: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"measurement {self.code} must be finite, got {self.value}")
        if self.value is None and not self.note:
            raise ValueError(f"measurement {self.code} without a value needs a note saying why")


class Priority(IntEnum):
    """Worklist priority of a study; higher is more urgent."""

    ROUTINE = 0
    PRIORITY = 1
    URGENT = 2
    CRITICAL = 3


@dataclass(frozen=True, eq=False)
class Finding:
    """One label from one model on one image.

    Attributes:
        code: stable machine code of the label, e.g. ``"pneumonia"``.
        label: human-readable label.
        probability: calibrated probability of the label, in [0, 1].
        threshold: operating threshold from the card; ``positive`` is
            ``probability >= threshold``.
        model_name, model_version: which model said so.
        sop_instance_uid: the image it was said about; ``frame`` indexes a frame of it.
        heatmap: class activation map resampled to the image, in [0, 1], or None.
        box: where the heatmap is strongest, in source pixel coordinates, or None.
        grade, grade_label: ordinal severity, when the model grades.
        ood_score, ood_flag: how unlike the training data the input is, as a multiple of
            the card's threshold, and whether it is at or beyond it (1 or more: "input
            unlike training data"); with input statistics this is the combined decision.
        ood_feature_score, ood_input_score: its parts: the Mahalanobis distances of the
            model's features and of the input's statistics to their training distributions.
        ood_reasons: for a flagged input, the input statistics furthest from training as
            ``(name, robust z-score)``, largest first (their plain words are a warning).
        warnings: reasons to trust this finding less (population, uncalibrated, ...).
        mask: where the finding is, on the grid of the image it was made on (bool, or
            float in [0, 1]), for models that segment; None otherwise.
        measurements: what was measured on it (segmentation models), with units.
        outline_px: a closed outline ``(n, 2)`` of (x, y) source pixels that the
            measurements were made on (the fitted head ellipse), for overlays; or None.
        detected: made by a detector (``radlens.inference.detection``): ``probability``
            is the detector's score, not a calibrated probability. With a ``box``, one box
            (the finding; many per image and class); without one, the low-trust image on
            which no box reached the operating score.
        counted: a finding the card does not triage: a detected box of a class outside
            ``DetectionSpec.triage_classes``, the normal structure a segmentation model
            measures (``SegmentationSpec.triage`` false), or a grade below the card's
            ``triage_min_grade``. Reported, drawn and measured, never raising priority.
        grade_probabilities: for an ordinal model, ``(grade label, calibrated
            probability)`` of every grade in order (``grade`` is the one the card's
            ``grade_rule`` reads: the most probable, or the median).
    """

    code: str
    label: str
    probability: float
    threshold: float
    model_name: str
    model_version: str
    sop_instance_uid: str = ""
    frame: int = 0
    heatmap: np.ndarray | None = field(default=None, repr=False)
    box: Box | None = None
    grade: int | None = None
    grade_label: str = ""
    ood_score: float | None = None
    ood_flag: bool = False
    ood_feature_score: float | None = None
    ood_input_score: float | None = None
    ood_reasons: tuple[tuple[str, float], ...] = ()
    warnings: tuple[str, ...] = ()
    mask: np.ndarray | None = field(default=None, repr=False)
    measurements: tuple[Measurement, ...] = ()
    outline_px: np.ndarray | None = field(default=None, repr=False)
    detected: bool = False
    counted: bool = False
    grade_probabilities: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not (0.0 <= self.probability <= 1.0) or math.isnan(self.probability):
            raise ValueError(f"probability must be in [0, 1], got {self.probability}")
        if not (0.0 <= self.threshold <= 1.0):
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")

    @property
    def positive(self) -> bool:
        return self.probability >= self.threshold


def is_detected_box(finding: Finding) -> bool:
    """Whether ``finding`` is one box of a detector (``Finding.detected`` with a box).
    Overlays draw such boxes with class and score, the draft report counts them per class
    instead of listing each, and their ids include the box.

    Example:
        >>> box = Box(0, 0, 9, 9)
        >>> is_detected_box(Finding("rbc", "RBC", 0.8, 0.3, "c", "1", box=box, detected=True))
        True
    """
    return finding.detected and finding.box is not None


def finding_id(series_uid: str, finding: Finding) -> str:
    """Stable id of a finding: its series, image, frame, model and label; for a detector's
    box (:func:`is_detected_box`: many of one class per image) also the box, rounded to
    0.1 px as findings.json writes it.

    Example:
        >>> finding_id("1.2", Finding("pneumonia", "Pneumonia", 0.9, 0.5, "cxr", "1.0.0"))
        'c55e877dd2b4fb2b'
    """
    parts = [series_uid, finding.sop_instance_uid, str(finding.frame), finding.model_name]
    parts.append(finding.code)
    if finding.box is not None and is_detected_box(finding):
        b = finding.box
        parts.append(",".join(f"{round(v, 1):.1f}" for v in (b.x0, b.y0, b.x1, b.y1)))
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class SeriesResult:
    """What ran on one series, and why nothing did when nothing did."""

    series_instance_uid: str
    modality: str
    body_part: str
    n_instances: int
    models: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    skipped_reason: str = ""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RejectedInput:
    """A file that could not be used, with the typed reason."""

    location: str
    kind: str
    reason: str


@dataclass(frozen=True)
class StudyResult:
    """Everything radlens concluded about one study."""

    study_instance_uid: str
    series: tuple[SeriesResult, ...]
    priority: Priority = Priority.ROUTINE
    timings_s: dict[str, float] = field(default_factory=dict, compare=False)
    warnings: tuple[str, ...] = ()
    rejected: tuple[RejectedInput, ...] = ()

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for s in self.series for f in s.findings)
