"""Overlay rendering: the image, the heatmap, the box, the label and "AI draft"; for a
segmentation finding its mask (tinted), the outline it was measured on and the measurements;
for a detector every box with its class and score, and a count per class.

Produces an RGB uint8 array for a PNG; the secondary-capture and DICOM forms come from
``radlens.report``.
"""

from __future__ import annotations

import zlib

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from radlens.domain.findings import Finding, Measurement, is_detected_box
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


def _interpolate(values01: np.ndarray) -> np.ndarray:
    pos = np.clip(values01, 0, 1) * (len(_RAMP) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(_RAMP) - 1)
    frac = (pos - lo)[..., None]
    rgb: np.ndarray = _RAMP[lo] * (1 - frac) + _RAMP[hi] * frac
    return rgb


# The ramp sampled at 4096 levels: a table lookup instead of interpolating every pixel of a
# full-size heatmap (about 200 ms of a 2 s cold start on a radiograph); the table differs
# from exact interpolation by under a quarter of an 8-bit step.
_LEVELS = 4096
_TABLE = _interpolate(np.linspace(0.0, 1.0, _LEVELS, dtype=np.float32)).astype(np.float32)


def colormap(values01: np.ndarray) -> np.ndarray:
    """Map [0, 1] to RGB float32 along the ramp (linear between its anchors)."""
    index = np.rint(np.clip(values01, 0, 1) * (_LEVELS - 1)).astype(np.intp)
    rgb: np.ndarray = _TABLE[index]
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
    for f in findings:
        if f.mask is not None:
            base = _tint(base, f.mask, size)
    canvas = PILImage.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(12, size[1] // 40))
    for f in findings:
        if f.outline_px is not None:
            points = [(float(x) * scale, float(y) * scale) for x, y in f.outline_px]
            draw.line([*points, points[0]], fill=(60, 255, 60), width=max(2, size[0] // 400))
        elif is_detected_box(f):
            _draw_detection(draw, f, scale, size, font)
        elif f.positive and f.box is not None:
            b = f.box
            draw.rectangle(
                [b.x0 * scale, b.y0 * scale, b.x1 * scale, b.y1 * scale],
                outline=(255, 60, 60),
                width=max(2, size[0] // 300),
            )
    lines = [
        (
            f"{f.label}: no box (best score {f.probability:.2f} < {f.threshold:.2f})"
            if f.detected
            else f"{f.label}: {f.probability:.0%} ({_verdict(f)})"
        )
        + f" {f.model_name} {f.model_version}"
        + (" - LOW TRUST" if f.ood_flag else "")
        for f in findings
        if not is_detected_box(f)
    ]
    lines += _detection_summary([f for f in findings if is_detected_box(f)])
    lines += [f"  {_measurement_text(m)}" for f in findings for m in f.measurements]
    lines += [AI_DRAFT]
    y = 4.0
    for line in lines:
        box = draw.textbbox((4, y), line, font=font)
        draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill=(0, 0, 0))
        draw.text((4, y), line, fill=(255, 255, 0), font=font)
        y = float(box[3] + 6)
    return np.asarray(canvas, dtype=np.uint8)


def _verdict(f: Finding) -> str:
    """ "positive at 0.50" for a thresholded finding; for a grade, "most probable grade", or
    "median grade" when the card reads the median and it is not the most probable (a
    multi-class or ordinal top class has no threshold to be positive at)."""
    if f.grade is not None:
        probs = [p for _, p in f.grade_probabilities]
        most_probable = not probs or max(probs) == probs[f.grade]
        return "most probable grade" if most_probable else "median grade"
    if f.threshold <= 0.0:
        return "most probable class"
    return f"{'positive' if f.positive else 'negative'} at {f.threshold:.2f}"


def _tint(base: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``base`` with a translucent green over the (resized) mask."""
    small = PILImage.fromarray(mask.astype(np.uint8) * 255).resize(
        size, PILImage.Resampling.NEAREST
    )
    inside = (np.asarray(small) > 127)[..., None]
    green = np.array([60.0, 255.0, 60.0], np.float32)
    tinted: np.ndarray = np.where(inside, base * 0.75 + green * 0.25, base)
    return tinted


def _measurement_text(m: Measurement) -> str:
    """``Head circumference 181.2 mm`` / ``Gestational age 20.5 wk (19.0-22.0)``."""
    if m.value is None:
        return f"{m.label}: not given ({m.note})"
    text = f"{m.label} {m.value:.1f} {m.unit}"
    if m.low is not None and m.high is not None:
        text += f" ({m.low:.1f}-{m.high:.1f}, +/- 2 SD)"
    return text


# Box colours of a detector's classes, chosen by a checksum of the class name (the same
# colour for a class in every overlay); BCCD's three classes fall on three colours.
_BOX_COLOURS = (
    (255, 60, 60),
    (60, 160, 255),
    (255, 220, 40),
    (60, 220, 90),
    (230, 90, 255),
    (255, 140, 0),
)


def _box_colour(f: Finding) -> tuple[int, int, int]:
    return _BOX_COLOURS[zlib.crc32(f.label.encode("utf-8")) % len(_BOX_COLOURS)]


def _draw_detection(
    draw: ImageDraw.ImageDraw,
    f: Finding,
    scale: float,
    size: tuple[int, int],
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    assert f.box is not None
    b, colour = f.box, _box_colour(f)
    corners = [b.x0 * scale, b.y0 * scale, b.x1 * scale, b.y1 * scale]
    draw.rectangle(corners, outline=colour, width=max(1, size[0] // 400))
    text = f"{f.label} {f.probability:.2f}"
    top = draw.textbbox((corners[0], corners[1]), text, font=font)
    lift = top[3] - top[1] + 2
    y = corners[1] - lift if corners[1] >= lift else corners[1]
    box = draw.textbbox((corners[0], y), text, font=font)
    draw.rectangle(box, fill=colour)
    draw.text((corners[0], y), text, fill=(0, 0, 0), font=font)


def _detection_summary(boxes: list[Finding]) -> list[str]:
    """One line per model and class: ``RBC: 14 boxes (score >= 0.30) bccd_cells 1.0.0``, with
    `` - LOW TRUST`` when the image was unlike the detector's training data."""
    counts: dict[tuple[str, str, str, float], int] = {}
    low_trust: set[tuple[str, str, str, float]] = set()
    for f in boxes:
        key = (f.label, f.model_name, f.model_version, f.threshold)
        counts[key] = counts.get(key, 0) + 1
        if f.ood_flag:
            low_trust.add(key)
    return [
        f"{label}: {n} box{'es' if n != 1 else ''} (score >= {threshold:.2f}) {model} {version}"
        + (" - LOW TRUST" if (label, model, version, threshold) in low_trust else "")
        for (label, model, version, threshold), n in counts.items()
    ]
