"""Input quality checks before inference: images no model should be trusted on.

Each check returns a warning naming the problem, or nothing. A finding on an image that fails
one is flagged low-trust (``ood_flag``) with the warning; its probability is still reported.

Thresholds were measured on the validation images of the shipped models' datasets
(``benchmarks/trust.md``): the noise estimate (median absolute difference of neighbouring
pixels, as a share of the 1-99th percentile range) is at most 0.055 on clean images (breast
ultrasound speckle) and at least 0.12 once Gaussian noise of 20% of that range is added.

Example:
    >>> check_quality(np.zeros((64, 64)))
    ('blank image: no contrast',)
"""

from __future__ import annotations

import numpy as np

MIN_SIDE_PX = 32
MAX_NOISE = 0.10
MAX_SATURATED = 0.5
DECIMATE_ABOVE = 512


def noise_level(array: np.ndarray) -> float:
    """Robust noise estimate along rows, relative to the 1-99th percentile range."""
    a = np.asarray(array, np.float64)
    low, high = np.percentile(a, [1, 99])
    spread = float(high - low)
    if spread <= 0:
        return 0.0
    d = np.abs(np.diff(a, axis=-1)).ravel()
    return float(np.median(d) / 0.6745 / np.sqrt(2) / spread)


def check_quality(
    array: np.ndarray, mask: bool = False, min_side: int = MIN_SIDE_PX
) -> tuple[str, ...]:
    """Warnings for one 2D image (gray or RGB) or one volume; ``mask`` for label volumes.

    ``min_side``: smaller images are "tiny" (callers pass half the model's input side, so a
    model trained on 28 px images accepts them and a 224 px model refuses a 64 px thumbnail).
    """
    a = np.asarray(array)
    warnings: list[str] = []
    shape = a.shape[:2] if a.ndim == 3 and a.shape[-1] == 3 and not mask else a.shape
    if min(shape) < min_side:
        warnings.append(f"tiny image ({'x'.join(map(str, shape))} px): too small to read")
    if not mask and a.ndim in (2, 3) and max(a.shape[:2]) > DECIMATE_ABOVE:
        # Statistics of a large radiograph from every k-th pixel: the same verdicts, ~20x
        # faster (the noise estimate of a 2000 px chest film goes from 0.006 to 0.010).
        step = max(a.shape[:2]) // DECIMATE_ABOVE + 1
        a = a[::step, ::step]
    gray = a.mean(axis=-1) if a.ndim == 3 and a.shape[-1] == 3 and not mask else a
    low, high = np.percentile(gray, [0.5, 99.5]) if gray.size else (0.0, 0.0)
    flat = gray.size == 0 or high - low <= 1e-6 * max(1.0, abs(float(high)))
    if flat and (not mask or float(np.max(gray)) == float(np.min(gray))):
        warnings.append("blank image: no contrast" if not mask else "empty mask")
        return tuple(warnings)
    if mask:
        return tuple(warnings)
    top = float(gray.max())
    saturated = float(np.mean(gray >= top))
    if saturated > MAX_SATURATED:
        warnings.append(f"saturated image: {saturated:.0%} of pixels at the maximum")
    noise = noise_level(gray)
    if noise > MAX_NOISE:
        warnings.append(f"extreme noise (estimated {noise:.2f} of the intensity range)")
    return tuple(warnings)
