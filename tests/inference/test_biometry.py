"""Ellipse fit, head circumference and Hadlock gestational age of a head mask."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radlens.errors import InferenceError
from radlens.inference.biometry import (
    Ellipse,
    ellipse_perimeter,
    fit_ellipse,
    gestational_age,
    head_biometry,
    largest_component,
)


def ellipse_mask(
    shape: tuple[int, int], cx: float, cy: float, a: float, b: float, angle: float = 0.0
) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    c, s = math.cos(angle), math.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    mask: np.ndarray = (u / a) ** 2 + (v / b) ** 2 <= 1
    return mask


def test_ellipse_perimeter_is_exact_for_a_circle_and_ramanujan_for_an_ellipse() -> None:
    assert ellipse_perimeter(5.0, 5.0) == pytest.approx(2 * math.pi * 5.0)
    # Reference: the complete elliptic integral for a = 2, b = 1 gives 9.688448220547675.
    assert ellipse_perimeter(2.0, 1.0) == pytest.approx(9.688448220547675, rel=1e-9)


def test_fit_ellipse_recovers_a_rotated_ellipse_to_a_fraction_of_a_pixel() -> None:
    mask = ellipse_mask((400, 600), 310.0, 190.0, 150.0, 100.0, angle=0.5)
    e = fit_ellipse(mask)
    assert (e.center_x_px, e.center_y_px) == pytest.approx((310.0, 190.0), abs=0.2)
    assert e.semi_major_px == pytest.approx(150.0, abs=0.6)
    assert e.semi_minor_px == pytest.approx(100.0, abs=0.6)
    assert math.remainder(e.angle_rad - 0.5, math.pi) == pytest.approx(0.0, abs=0.01)


def test_largest_component_drops_specks() -> None:
    mask = ellipse_mask((200, 300), 150.0, 100.0, 80.0, 50.0)
    mask[5:9, 5:9] = True
    kept = largest_component(mask)
    assert not kept[5:9, 5:9].any() and kept[100, 150]
    assert not largest_component(np.zeros((10, 10), bool)).any()


def test_an_empty_mask_has_no_ellipse() -> None:
    with pytest.raises(InferenceError, match="no head found"):
        fit_ellipse(np.zeros((50, 50), bool))


def test_head_biometry_measures_hc_in_mm_less_the_edge_offset() -> None:
    mask = ellipse_mask((540, 800), 400.0, 270.0, 200.0, 150.0)
    bio = head_biometry(mask, 0.1, edge_offset_px=1.5)
    # The fitted edge lies about half a pixel outside the analytic ellipse's centres.
    expected = ellipse_perimeter(200.0 - 1.0, 150.0 - 1.0) * 0.1
    assert bio.head_circumference_mm == pytest.approx(expected, abs=0.5)
    assert bio.gestational_age.weeks is not None


def test_hadlock_1984_gives_the_published_ages_and_bands() -> None:
    # HC 17.7 cm at 20 weeks and 34.6 cm at 40 weeks (Hadlock et al., AJR 1982).
    assert gestational_age(177.0).weeks == pytest.approx(20.2, abs=0.1)
    assert gestational_age(346.0).weeks == pytest.approx(40.1, abs=0.1)
    assert gestational_age(150.0).two_sd_weeks == 1.2
    assert gestational_age(280.0).two_sd_weeks == 3.4  # 30.6 weeks
    early = gestational_age(60.0)
    assert early.weeks is None and "outside the 14-42 weeks" in early.out_of_range


def test_an_ellipse_shrinks_by_an_offset_on_both_semi_axes() -> None:
    e = Ellipse(0.0, 0.0, 10.0, 5.0, 0.0).shrunk(1.0)
    assert (e.semi_major_px, e.semi_minor_px) == (9.0, 4.0)
    assert e.points(8).shape == (8, 2)
