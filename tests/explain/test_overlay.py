"""Overlays: RGB uint8, not blank, capped in size, heatmap and box drawn."""

from __future__ import annotations

import numpy as np
import pytest

from radlens.domain.findings import Box, Finding
from radlens.domain.imaging import Window
from radlens.explain.overlay import colormap, display_rgb, render_overlay


def finding(
    probability: float, heatmap: np.ndarray | None = None, box: Box | None = None
) -> Finding:
    return Finding(
        "pneumonia", "Pneumonia", probability, 0.5, "tiny_cxr", "0.0.1", heatmap=heatmap, box=box
    )


def gradient(rows: int, cols: int) -> np.ndarray:
    return np.tile(np.linspace(0, 4000, cols, dtype=np.float32), (rows, 1))


def test_colormap_ends_are_the_ramp_ends() -> None:
    rgb = colormap(np.array([0.0, 1.0, 2.0, -1.0]))
    np.testing.assert_allclose(rgb[0], [48, 18, 59])
    np.testing.assert_allclose(rgb[1], [122, 4, 3])
    np.testing.assert_allclose(rgb[2], rgb[1])
    np.testing.assert_allclose(rgb[3], rgb[0])


def test_display_rgb_of_gray_uses_the_window() -> None:
    gray = np.array([[0.0, 50.0, 100.0, 1000.0]], np.float32)
    rgb = display_rgb(gray, Window(50, 100))
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    assert list(rgb[0, :, 0]) == [0, 127, 255, 255]


def test_display_rgb_passes_colour_through() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(display_rgb(rgb, None), rgb)


def test_overlay_is_rgb_uint8_of_the_source_size_and_not_blank() -> None:
    out = render_overlay(gradient(300, 200), None, [finding(0.3)])
    assert out.shape == (300, 200, 3)
    assert out.dtype == np.uint8
    assert out.std() > 10


def test_overlay_is_capped_at_max_side() -> None:
    out = render_overlay(gradient(2000, 1000), None, [], max_side=256)
    assert out.shape == (256, 128, 3)


def test_overlay_tints_where_the_heatmap_is_hot() -> None:
    image = np.full((256, 256), 1000.0, np.float32)
    image[0, 0] = 0.0  # near-flat: displays black, so any tint shows
    heat = np.zeros((256, 256), np.float32)
    heat[150:250, 150:250] = 1.0
    plain = render_overlay(image, None, [finding(0.3)]).astype(int)
    tinted = render_overlay(image, None, [finding(0.3, heatmap=heat)]).astype(int)
    assert np.abs(tinted[200, 200] - plain[200, 200]).sum() > 30
    np.testing.assert_array_equal(tinted[200, 20], plain[200, 20])


@pytest.mark.parametrize(("probability", "drawn"), [(0.9, True), (0.2, False)])
def test_box_is_drawn_only_for_a_positive_finding(probability: float, drawn: bool) -> None:
    image = np.zeros((256, 256), np.float32)
    image[0, 0] = 1.0
    out = render_overlay(image, None, [finding(probability, box=Box(100, 150, 200, 230))])
    edge = out[230, 120:180]
    red = (edge[:, 0] > 200) & (edge[:, 1] < 100)
    assert bool(red.any()) is drawn


def test_a_grade_is_labelled_as_the_most_probable_not_as_positive_at_zero() -> None:
    from radlens.domain.findings import Finding
    from radlens.explain.overlay import _verdict

    graded = Finding("kl_2", "KL 2", 0.6, 0.0, "knee", "1", grade=2, grade_label="KL 2")
    assert _verdict(graded) == "most probable grade"
    spread = (("KL 0", 0.4), ("KL 1", 0.05), ("KL 2", 0.3), ("KL 3", 0.25))
    median = Finding("kl_2", "KL 2", 0.3, 0.0, "knee", "1", grade=2, grade_probabilities=spread)
    assert _verdict(median) == "median grade"  # the card's grade_rule read the median
    assert _verdict(Finding("c", "C", 0.6, 0.0, "m", "1")) == "most probable class"
    assert _verdict(Finding("p", "P", 0.6, 0.5, "m", "1")) == "positive at 0.50"
    assert _verdict(Finding("p", "P", 0.4, 0.5, "m", "1")) == "negative at 0.50"


def test_the_colormap_table_follows_the_exact_ramp_within_a_quarter_level() -> None:
    from radlens.explain.overlay import _interpolate

    values = np.random.default_rng(0).random(10_000).astype(np.float32)
    np.testing.assert_allclose(colormap(values), _interpolate(values), atol=0.25)
