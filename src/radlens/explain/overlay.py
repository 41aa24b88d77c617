"""Overlay rendering: the image, the heatmap, the box, the label and "AI draft".

Produces an RGB uint8 array for a PNG; the secondary-capture and DICOM forms come from
``radlens.report``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from radlens.domain.findings import Finding
from radlens.domain.imaging import Window

AI_DRAFT = "AI draft - requires physician review"

# A perceptually ordered blue -> cyan -> yellow -> red ramp (anchor colours of "turbo").
_RAMP = np.array(
    [
        [48, 18, 59],
        [70, 131, 247],
        [27, 229, 181],
        [164, 252, 60],
        [251, 185, 56],
        [228, 70, 10],
        [122, 4, 3],
    ],
    dtype=np.float32,
)


def colormap(values01: np.ndarray) -> np.ndarray:
    """Map [0, 1] to RGB float32 by linear interpolation along the ramp."""
    pos = np.clip(values01, 0, 1) * (len(_RAMP) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(_RAMP) - 1)
    frac = (pos - lo)[..., None]
    rgb: np.ndarray = _RAMP[lo] * (1 - frac) + _RAMP[hi] * frac
    return rgb


def heatmap_rgba(heat: np.ndarray, max_alpha: float = 0.6) -> np.ndarray:
    """A heatmap in [0, 1] as 8-bit RGBA for drawing over an image in a viewer.

    Colour from :func:`colormap`; opacity grows with the value, so low values let the
    image through and nothing is hidden where the model saw nothing.
    """
    heat = np.clip(heat.astype(np.float32), 0, 1)
    rgba = np.empty((*heat.shape, 4), np.uint8)
    rgba[..., :3] = np.clip(colormap(heat), 0, 255).astype(np.uint8)
    rgba[..., 3] = np.rint(heat * max_alpha * 255).astype(np.uint8)
    return rgba


def display_rgb(array: np.ndarray, window: Window | None) -> np.ndarray:
    """An 8-bit RGB rendering of a grayscale or colour image for display."""
    if array.ndim == 3 and array.shape[-1] == 3:
        return (
            np.asarray(array, dtype=np.uint8)
            if array.dtype == np.uint8
            else np.clip(array, 0, 255).astype(np.uint8)
        )
    gray = array.astype(np.float32)
    if window is not None:
        low, high = window.center - window.width / 2, window.center + window.width / 2
    else:
        low, high = (float(v) for v in np.percentile(gray, [0.5, 99.5]))
    scaled = np.clip((gray - low) / max(high - low, 1e-6), 0, 1) * 255
    return np.repeat(scaled.astype(np.uint8)[..., None], 3, axis=2)


def render_overlay(
    array: np.ndarray,
    window: Window | None,
    findings: list[Finding],
    max_side: int = 1024,
    alpha: float = 0.4,
) -> np.ndarray:
    """Image + heatmap of the most probable finding + boxes of positive ones + labels."""
    rows, cols = array.shape[:2]
    scale = min(1.0, max_side / max(rows, cols))
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    if array.ndim == 2 and scale < 1.0:
        # Shrink before windowing: display conversion of a 2000 px radiograph is slow.
        array = np.asarray(
            PILImage.fromarray(array.astype(np.float32), mode="F").resize(
                size, PILImage.Resampling.BILINEAR
            ),
            np.float32,
        )
    rgb = display_rgb(array, window)
    base = np.asarray(
        PILImage.fromarray(rgb).resize(size, PILImage.Resampling.BILINEAR), np.float32
    )
    top = max(findings, key=lambda f: f.probability, default=None)
    if top is not None and top.heatmap is not None:
        heat = np.asarray(
            PILImage.fromarray(top.heatmap.astype(np.float32), mode="F").resize(
                size, PILImage.Resampling.BILINEAR
            ),
            np.float32,
        )
        weight = (alpha * heat)[..., None]
        base = base * (1 - weight) + colormap(heat) * weight
    canvas = PILImage.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(12, size[1] // 40))
    for f in findings:
        if f.positive and f.box is not None:
            b = f.box
            draw.rectangle(
                [b.x0 * scale, b.y0 * scale, b.x1 * scale, b.y1 * scale],
                outline=(255, 60, 60),
                width=max(2, size[0] // 300),
            )
    lines = [
        f"{f.label}: {f.probability:.0%} ({'positive' if f.positive else 'negative'}"
        f" at {f.threshold:.2f}) {f.model_name} {f.model_version}"
        + (" - LOW TRUST" if f.ood_flag else "")
        for f in findings
    ] + [AI_DRAFT]
    y = 4.0
    for line in lines:
        box = draw.textbbox((4, y), line, font=font)
        draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill=(0, 0, 0))
        draw.text((4, y), line, fill=(255, 255, 0), font=font)
        y = float(box[3] + 6)
    return np.asarray(canvas, dtype=np.uint8)
