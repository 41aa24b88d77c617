"""Findings, boxes and study results validate themselves on construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radlens.domain.findings import (
    Box,
    Finding,
    Priority,
    SeriesResult,
    StudyResult,
)


def finding(probability: float = 0.7, threshold: float = 0.5, **kw: object) -> Finding:
    return Finding("pneumonia", "Pneumonia", probability, threshold, "m", "1", **kw)  # type: ignore[arg-type]


def test_box_area_and_iou() -> None:
    a = Box(0, 0, 10, 10)
    b = Box(5, 0, 15, 10)
    assert a.area_px == 100
    assert a.iou(a) == 1.0
    assert a.iou(b) == pytest.approx(50 / 150)
    assert a.iou(Box(20, 20, 30, 30)) == 0.0


@pytest.mark.parametrize("coords", [(0, 0, 0, 5), (0, 0, 5, 0), (5, 5, 1, 10)])
def test_empty_or_inverted_box_is_rejected(coords: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="empty box"):
        Box(*coords)


def test_box_is_frozen() -> None:
    box = Box(0, 0, 1, 1)
    with pytest.raises(AttributeError):
        box.x0 = 3  # type: ignore[misc]


@pytest.mark.parametrize("probability", [-0.01, 1.01, math.nan])
def test_finding_rejects_probability_outside_unit_interval(probability: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        finding(probability)


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_finding_rejects_threshold_outside_unit_interval(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        finding(0.5, threshold)


def test_finding_is_positive_at_or_above_threshold() -> None:
    assert finding(0.5, 0.5).positive
    assert finding(0.51, 0.5).positive
    assert not finding(0.49, 0.5).positive


def test_finding_repr_leaves_out_the_heatmap_array() -> None:
    f = finding(heatmap=np.full((64, 64), 0.123456, np.float32))
    assert "heatmap" not in repr(f)
    assert "0.123456" not in repr(f)


def test_priority_orders_by_urgency() -> None:
    assert Priority.ROUTINE < Priority.PRIORITY < Priority.URGENT < Priority.CRITICAL
    assert max(Priority.PRIORITY, Priority.URGENT) is Priority.URGENT


def test_study_result_findings_gathers_every_series() -> None:
    a, b, c = finding(0.1), finding(0.6), finding(0.9)
    result = StudyResult(
        "1.2.3",
        (
            SeriesResult("1.2.3.1", "CR", "CHEST", 1, ("m",), (a, b)),
            SeriesResult("1.2.3.2", "CT", "", 10, skipped_reason="no model"),
            SeriesResult("1.2.3.3", "DX", "CHEST", 1, ("m",), (c,)),
        ),
    )
    assert result.findings == (a, b, c)
    assert result.priority is Priority.ROUTINE
