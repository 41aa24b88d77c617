"""Heatmaps and boxes from a model's class activation map, with no torch.

The CAM comes out of the ONNX graph at the trunk's resolution (7 x 7 for a 224 input).
``cam_to_heatmap`` normalizes it to [0, 1] and maps it onto the source image through the
preprocessing ``Placement``; ``cam_box`` takes the connected region around the peak
(cells at or above half the peak, 4-connected) and returns its box in source pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage

from radlens.domain.findings import Box
from radlens.inference.preprocess import Placement


def normalize_cam(cam: np.ndarray) -> np.ndarray:
    """Scale one class's CAM to [0, 1] (all zeros when flat)."""
    low, high = float(cam.min()), float(cam.max())
    if high - low < 1e-9:
        return np.zeros_like(cam, dtype=np.float32)
    return ((cam - low) / (high - low)).astype(np.float32)


def cam_to_heatmap(
    cam: np.ndarray, input_size: tuple[int, int], where: Placement, max_side: int | None = None
) -> np.ndarray:
    """Heatmap in [0, 1] over the source image (optionally capped at ``max_side`` px)."""
    cam01 = normalize_cam(cam)
    rows, cols = where.source_shape
    if max_side and max(rows, cols) > max_side:
        f = max_side / max(rows, cols)
        rows, cols = max(1, round(rows * f)), max(1, round(cols * f))
    up = np.asarray(
        PILImage.fromarray(cam01, mode="F").resize(
            (input_size[1], input_size[0]), PILImage.Resampling.BILINEAR
        ),
        np.float32,
    )
    # Remove padding, then stretch back to the source grid.
    src_rows_in_input = where.source_shape[0] / where.scale_y
    src_cols_in_input = where.source_shape[1] / where.scale_x
    y0, x0 = int(round(where.offset_y)), int(round(where.offset_x))
    crop = up[
        y0 : y0 + max(1, round(src_rows_in_input)), x0 : x0 + max(1, round(src_cols_in_input))
    ]
    out = PILImage.fromarray(crop, mode="F").resize((cols, rows), PILImage.Resampling.BILINEAR)
    return np.clip(np.asarray(out, np.float32), 0.0, 1.0)


def peak_region(cam01: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Boolean mask of the 4-connected cells >= ``level`` that contain the peak."""
    above = cam01 >= level * float(cam01.max())
    seed = np.unravel_index(int(np.argmax(cam01)), cam01.shape)
    region = np.zeros_like(above)
    stack = [seed]
    while stack:
        y, x = stack.pop()
        if region[y, x] or not above[y, x]:
            continue
        region[y, x] = True
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            ny, nx = y + dy, x + dx
            if 0 <= ny < above.shape[0] and 0 <= nx < above.shape[1]:
                stack.append((ny, nx))
    return region


def cam_box(cam: np.ndarray, input_size: tuple[int, int], where: Placement) -> Box | None:
    """Box (source pixel coordinates) around the CAM's peak region, or None if flat.

    Example:
        >>> cam = np.zeros((7, 7), np.float32); cam[2:4, 3:5] = 1
        >>> cam_box(cam, (224, 224), Placement((448, 448), 2.0, 2.0))
        Box(x0=192.0, y0=128.0, x1=320.0, y1=256.0)
    """
    cam01 = normalize_cam(cam)
    if not cam01.any():
        return None
    ys, xs = np.nonzero(peak_region(cam01))
    cell_y = input_size[0] / cam01.shape[0]
    cell_x = input_size[1] / cam01.shape[1]
    rows, cols = where.source_shape

    def to_src_y(v: float) -> float:
        return float(np.clip((v - where.offset_y) * where.scale_y, 0, rows))

    def to_src_x(v: float) -> float:
        return float(np.clip((v - where.offset_x) * where.scale_x, 0, cols))

    y0, y1 = to_src_y(ys.min() * cell_y), to_src_y((ys.max() + 1) * cell_y)
    x0, x1 = to_src_x(xs.min() * cell_x), to_src_x((xs.max() + 1) * cell_x)
    if y1 <= y0 or x1 <= x0:
        return None
    return Box(x0, y0, x1, y1)
