"""Segmentation metrics: Dice, Hausdorff distances in mm, HC error summary."""

from __future__ import annotations

import numpy as np
import pytest

from radlens.evaluation.segmentation import (
    boundary,
    dice,
    hausdorff_mm,
    nearest_distances,
    summarize_rows,
)


def square(side: int, shift: int = 0) -> np.ndarray:
    mask = np.zeros((40, 40), bool)
    mask[10 : 10 + side, 10 + shift : 10 + side + shift] = True
    return mask


def test_dice_of_identical_disjoint_and_empty_masks() -> None:
    assert dice(square(10), square(10)) == 1.0
    assert dice(square(5), square(5, shift=20)) == 0.0
    assert dice(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0


def test_hausdorff_is_the_largest_boundary_distance_in_mm() -> None:
    hd, hd95 = hausdorff_mm(square(10), square(10, shift=3), pixel_size_mm=0.25)
    assert hd == pytest.approx(0.75) and hd95 <= hd
    assert boundary(square(10)).sum() == 36


def test_summary_has_the_hc18_figures_and_counts_missing_masks() -> None:
    rows: list[dict[str, float | str]] = [
        {"id": "a", "dice": 0.9, "hd_mm": 2.0, "hd95_mm": 1.0, "hc_diff_mm": 1.0},
        {"id": "b", "dice": 0.8, "hd_mm": 4.0, "hd95_mm": 3.0, "hc_diff_mm": -3.0},
        {"id": "c", "dice": 0.0},
    ]
    metrics = summarize_rows(rows)
    assert metrics["dice"] == pytest.approx(1.7 / 3)
    assert metrics["hd_mm"] == 3.0 and metrics["n_no_mask"] == 1.0
    assert metrics["hc_mad_mm"] == 2.0 and metrics["hc_mean_diff_mm"] == -1.0


def test_hausdorff_matches_scipy_distance_transform_on_ellipses() -> None:
    from scipy.ndimage import distance_transform_edt

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:300, :400]
    for _ in range(10):
        a = ((xx - 200) / rng.uniform(50, 150)) ** 2 + ((yy - 150) / rng.uniform(40, 120)) ** 2
        b = ((xx - rng.uniform(180, 220)) / rng.uniform(50, 150)) ** 2 + (
            (yy - 150) / rng.uniform(40, 120)
        ) ** 2
        mask_a, mask_b = a <= 1, b <= 1
        edge_a, edge_b = boundary(mask_a), boundary(mask_b)
        a_to_b = distance_transform_edt(~edge_b)[edge_a]
        b_to_a = distance_transform_edt(~edge_a)[edge_b]
        expected_hd = max(a_to_b.max(), b_to_a.max()) * 0.5
        expected_hd95 = max(np.percentile(a_to_b, 95), np.percentile(b_to_a, 95)) * 0.5
        assert hausdorff_mm(mask_a, mask_b, 0.5) == pytest.approx((expected_hd, expected_hd95))


def test_nearest_distances_are_exact_across_chunks() -> None:
    points = np.random.default_rng(1).uniform(0, 50, (2500, 2))
    to = np.array([[0.0, 0.0], [50.0, 50.0]])
    expected = np.minimum(np.hypot(*points.T), np.hypot(*(points - 50).T))
    assert nearest_distances(points, to, chunk=700) == pytest.approx(expected)
