"""Ellipse fit, head circumference and Hadlock gestational age of a head mask."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radlens.errors import InferenceError
from radlens.inference.biometry import (
    Ellipse,
    ellipse_perimeter,
    fill_holes,
    fit_conic_ellipse,
    fit_ellipse,
    gestational_age,
    head_biometry,
    label_components,
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


# --- the numpy implementations against scikit-image's (a dev dependency) -----------------


def test_label_components_partitions_like_scikit_image_for_both_connectivities() -> None:
    from skimage.measure import label

    rng = np.random.default_rng(0)
    for _ in range(100):
        mask = rng.random((30, 45)) < rng.uniform(0.1, 0.7)
        for connectivity, skimage_connectivity in ((8, 2), (4, 1)):
            ours, n = label_components(mask, connectivity)
            theirs = label(mask, connectivity=skimage_connectivity)
            assert n == theirs.max()
            assert np.array_equal(ours > 0, mask)
            # The same partition: each of our labels meets exactly one of theirs.
            pairs = zip(ours.ravel().tolist(), theirs.ravel().tolist(), strict=True)
            assert len(set(pairs)) == n + 1


def test_label_components_refuses_what_it_cannot_label() -> None:
    with pytest.raises(ValueError, match="2D"):
        label_components(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="connectivity"):
        label_components(np.zeros((2, 2), bool), connectivity=6)
    assert label_components(np.zeros((3, 3), bool))[1] == 0


def test_fill_holes_fills_enclosed_background_only() -> None:
    mask = np.zeros((9, 9), bool)
    mask[1:8, 1:8] = True
    mask[3:6, 3:6] = False  # a hole
    mask[0:2, 4] = False  # a notch open to the edge is not a hole
    filled = fill_holes(mask)
    assert filled[4, 4] and not filled[1, 4] and not filled[0, 4]
    assert np.array_equal(filled & ~mask, np.pad(np.ones((3, 3), bool), 3))
    mask[2, 4] = False  # now the notch opens the hole to the edge
    assert not fill_holes(mask)[4, 4]
    # A ring of diagonal steps (8-connected) encloses its middle: background is 4-connected.
    ring = np.zeros((5, 5), bool)
    ring[[1, 2, 3, 2], [2, 1, 2, 3]] = True
    assert fill_holes(ring)[2, 2] and fill_holes(ring).sum() == 5


def test_fit_ellipse_agrees_with_scikit_image_contour_and_ellipse_model() -> None:
    from skimage.measure import EllipseModel, find_contours

    rng = np.random.default_rng(1)
    for _ in range(20):
        a = rng.uniform(60, 200)
        b = a * rng.uniform(0.6, 0.95)
        angle = rng.uniform(-3, 3)
        mask = ellipse_mask((540, 800), rng.uniform(300, 500), rng.uniform(220, 320), a, b, angle)
        ours = fit_ellipse(mask)
        boundary = max(find_contours(np.pad(mask, 1).astype(float), 0.5), key=len) - 1.0
        model = EllipseModel.from_estimate(boundary[:, ::-1])
        major, minor = sorted((float(v) for v in model.axis_lengths), reverse=True)
        assert ours.center_x_px == pytest.approx(model.center[0], abs=0.01)
        assert ours.center_y_px == pytest.approx(model.center[1], abs=0.01)
        assert ours.semi_major_px == pytest.approx(major, abs=0.01)
        assert ours.semi_minor_px == pytest.approx(minor, abs=0.01)
        assert ours.semi_major_px == pytest.approx(a, abs=0.1)
        assert ours.semi_minor_px == pytest.approx(b, abs=0.1)


def test_fit_ellipse_uses_the_outer_boundary_of_a_head_with_holes() -> None:
    mask = ellipse_mask((300, 400), 200.0, 150.0, 120.0, 80.0)
    holed = mask & ~ellipse_mask((300, 400), 200.0, 150.0, 40.0, 30.0)
    assert fit_ellipse(holed) == fit_ellipse(mask)


def test_fit_conic_ellipse_refuses_points_that_fit_no_ellipse() -> None:
    with pytest.raises(InferenceError, match="5 points|4 points"):
        fit_conic_ellipse(np.zeros((4, 2)))
    line = np.stack([np.arange(20.0), 2 * np.arange(20.0)], 1)
    with pytest.raises(InferenceError):
        fit_conic_ellipse(line)
