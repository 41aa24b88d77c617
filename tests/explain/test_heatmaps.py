"""CAM -> heatmap over the source image, and the box around the CAM's peak region."""

from __future__ import annotations

import numpy as np
import pytest

from radlens.domain.findings import Box
from radlens.explain.heatmaps import cam_box, cam_to_heatmap, normalize_cam, peak_region
from radlens.inference.preprocess import Placement, resize_2d
from radlens.models.card import Resize

INPUT = (224, 224)


def cam_with(*cells: tuple[int, int], value: float = 1.0) -> np.ndarray:
    cam = np.zeros((7, 7), np.float32)
    for y, x in cells:
        cam[y, x] = value
    return cam


def test_normalize_cam_scales_to_unit_range_and_flat_to_zeros() -> None:
    out = normalize_cam(np.array([[-2.0, 0.0], [2.0, 6.0]]))
    np.testing.assert_allclose(out, [[0.0, 0.25], [0.5, 1.0]])
    assert not normalize_cam(np.full((7, 7), 3.0)).any()


def test_peak_region_is_the_connected_part_around_the_peak() -> None:
    cam = cam_with((1, 1), (1, 2), (5, 5))
    cam[1, 1] = 1.0
    cam[1, 2] = 0.8
    cam[5, 5] = 0.9  # above half the peak but not connected
    region = peak_region(cam)
    assert region.sum() == 2
    assert region[1, 1] and region[1, 2] and not region[5, 5]


def test_cam_box_maps_cells_to_source_pixels_for_stretch() -> None:
    # Source 448 rows x 896 columns, stretched to 224 x 224: 2 and 4 source px per input px.
    where = Placement((448, 896), 2.0, 4.0)
    box = cam_box(cam_with((2, 3), (3, 3)), INPUT, where)
    # Cells rows 2-3, column 3 -> input rows 64-128, columns 96-128.
    assert box == Box(x0=384.0, y0=128.0, x1=512.0, y1=256.0)


def test_cam_box_removes_padding_and_clips_to_the_image() -> None:
    # A 100 x 200 source padded into 224 x 224: scale 200/224, image rows start at 56.
    _, where = resize_2d(np.zeros((100, 200), np.float32), INPUT, Resize.PAD)
    assert where.offset_y == 56.0
    box = cam_box(cam_with((0, 0)), INPUT, where)  # the peak is in the top padding
    assert box is None
    box = cam_box(cam_with((3, 6)), INPUT, where)
    assert box is not None
    scale = 200 / 224
    assert box.x0 == pytest.approx(192 * scale)
    assert box.x1 == pytest.approx(200.0)
    assert box.y0 == pytest.approx((96 - 56) * scale)
    assert box.y1 == pytest.approx((128 - 56) * scale)


def test_flat_cam_gives_no_box() -> None:
    assert cam_box(np.full((7, 7), 2.5, np.float32), INPUT, Placement((224, 224), 1.0, 1.0)) is None


@pytest.mark.parametrize("shape", [(300, 200), (224, 224), (97, 131)])
def test_heatmap_has_the_source_shape_and_unit_range(shape: tuple[int, int]) -> None:
    _, where = resize_2d(np.zeros(shape, np.float32), INPUT, Resize.STRETCH)
    heat = cam_to_heatmap(cam_with((3, 3)), INPUT, where)
    assert heat.shape == shape
    assert heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    assert heat.max() > 0.5


def test_heatmap_of_a_padded_image_drops_the_padding() -> None:
    _, where = resize_2d(np.zeros((100, 200), np.float32), INPUT, Resize.PAD)
    heat = cam_to_heatmap(cam_with((0, 0), (0, 1)), INPUT, where)  # peak only in padding
    assert heat.shape == (100, 200)
    assert heat.max() < 0.5


def test_heatmap_is_capped_at_max_side_keeping_aspect() -> None:
    _, where = resize_2d(np.zeros((2000, 1000), np.float32), INPUT, Resize.STRETCH)
    heat = cam_to_heatmap(cam_with((3, 3)), INPUT, where, max_side=512)
    assert heat.shape == (512, 256)


def test_heatmap_peak_lands_where_the_cam_peaks() -> None:
    _, where = resize_2d(np.zeros((448, 448), np.float32), INPUT, Resize.STRETCH)
    heat = cam_to_heatmap(cam_with((5, 1)), INPUT, where)
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert 5 * 64 <= y < 6 * 64
    assert 1 * 64 <= x < 2 * 64
