"""MedMNIST-C's modality-specific corruptions, reimplemented with numpy and Pillow.

MedMNIST-C (Di Salvo et al., 2024, arXiv:2406.17536; the ``medmnistc`` package) corrupts
each MedMNIST+ dataset by the artifacts of its modality, at five severities tuned per
dataset on 224 x 224 images. The package imports torchvision and ImageMagick (Wand) at
import time, which radlens does not install, so its tables are reproduced here
(``medmnistc/corruptions/registry.py``, v0.1.0) with the same operations. Checked against
the 0.1.0 wheel (its modules loaded without torchvision): the tables are its first five
severities exactly, pixelation and JPEG give identical bytes, and the noise kinds the same
mean change within sampling error.

- ``pixelate``: Pillow box resize down by the factor and box resize back;
- ``jpeg_compression``: Pillow JPEG at the quality;
- ``gaussian_noise`` (+ N(0, c) on [0, 1]), ``speckle_noise`` (+ x N(0, c)),
  ``impulse_noise`` (salt and pepper on a share c of pixels, as scikit-image's
  ``random_noise(mode="s&p")``), ``shot_noise`` (Poisson(x c) / c);
- ``gaussian_blur``: a Gaussian of kernel size k and torchvision's sigma for it,
  0.3 ((k - 1) / 2 - 1) + 0.8, reflected at the border;
- ``motion_blur``: ImageMagick's one-sided motion blur, 2 ceil(radius) + 1 taps at whole-
  pixel offsets weighted exp(-i^2 / 2 sigma^2), at an angle drawn in [-45, 45] degrees;
- ``defocus_blur``: an anti-aliased disk (its 3 x 3 or 5 x 5 Gaussian smoothing) of the radius;
- ``brightness_*``, ``contrast_*``: Pillow's ``ImageEnhance`` with the factor;
- ``gamma_corr_*``: torchvision's gamma table, 255.999 (x / 255) ** gamma.

The tables are for 224-pixel images. A larger image gets its blur sizes scaled by its
longest side / 224 (pixelation factors are relative already). A smaller one (MedMNIST's
28 px) is resized up to 224 (bicubic) and corrupted there, and the change the corruption
made, box-resized back to the image's size, is added to it: MedMNIST-C at 224 seen at the
image's own size, without the resampling round trip's own smoothing. Noise (and a motion
blur's angle) is drawn from ``seed``, so a corruption is deterministic.

Example:
    >>> import numpy as np
    >>> image = np.full((224, 224), 100.0)
    >>> float(medmnistc_corrupt(image, "breastmnist", "brightness_down", 5).max())
    30.0
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageEnhance

REFERENCE = 224  # the side MedMNIST-C's tables are tuned at

_XRAY_COMMON = {
    "gaussian_blur": (3, 5, 7, 9, 11),
    "brightness_up": (1.1, 1.2, 1.3, 1.4, 1.5),
    "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
    "contrast_up": (1.1, 1.2, 1.3, 1.4, 1.6),
    "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.4),
    "gamma_corr_up": (1.1, 1.2, 1.3, 1.4, 1.6),
    "gamma_corr_down": (0.9, 0.8, 0.7, 0.6, 0.4),
}

# Severity parameters per MedMNIST-C dataset (registry.py), for the datasets whose
# modality a radlens 2D model reads.
TABLES: dict[str, dict[str, tuple[Any, ...]]] = {
    "chestmnist": {
        "pixelate": (0.30, 0.25, 0.20, 0.15, 0.10),
        "jpeg_compression": (50, 30, 15, 10, 7),
        "gaussian_noise": (0.04, 0.08, 0.12, 0.18, 0.26),
        "speckle_noise": (0.05, 0.15, 0.2, 0.35, 0.45),
        "impulse_noise": (0.01, 0.03, 0.06, 0.09, 0.17),
        "shot_noise": (60, 25, 18, 10, 5),
        **_XRAY_COMMON,
    },
    "pneumoniamnist": {
        "pixelate": (0.8, 0.7, 0.6, 0.5, 0.40),
        "jpeg_compression": (50, 30, 15, 10, 7),
        "gaussian_noise": (0.04, 0.05, 0.06, 0.07, 0.08),
        "speckle_noise": (0.05, 0.07, 0.10, 0.15, 0.20),
        "impulse_noise": (0.005, 0.01, 0.013, 0.017, 0.02),
        "shot_noise": (300, 200, 150, 100, 80),
        **_XRAY_COMMON,
    },
    "breastmnist": {
        "pixelate": (0.30, 0.25, 0.20, 0.15, 0.10),
        "jpeg_compression": (50, 30, 15, 10, 7),
        "speckle_noise": (0.10, 0.15, 0.20, 0.25, 0.30),
        "motion_blur": ((5, 5), (9, 7), (9, 10), (13, 10), (17, 12)),
        "brightness_up": (1.4, 1.5, 1.6, 1.8, 2.0),
        "brightness_down": (0.55, 0.5, 0.45, 0.4, 0.3),
        "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.4),
    },
    "retinamnist": {
        "pixelate": (0.8, 0.60, 0.50, 0.40, 0.35),
        "jpeg_compression": (30, 25, 20, 10, 5),
        "gaussian_noise": (0.04, 0.08, 0.12, 0.16, 0.20),
        "speckle_noise": (0.10, 0.15, 0.20, 0.25, 0.30),
        "defocus_blur": ((4, 0.1), (5, 0.2), (6, 0.3), (7, 0.4), (8, 0.5)),
        "motion_blur": ((8, 5), (15, 5), (15, 8), (15, 12), (20, 15)),
        "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
        "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.4),
    },
}

# Kinds that act over neighbourhoods, whose sizes scale with an image above 224 px.
_SPATIAL = ("gaussian_blur", "motion_blur", "defocus_blur")


def kinds_of(table: str) -> tuple[str, ...]:
    """The corruption kinds of MedMNIST-C dataset ``table``, in its registry's order."""
    if table not in TABLES:
        raise ValueError(f"unknown MedMNIST-C table {table!r}; known: {sorted(TABLES)}")
    return tuple(TABLES[table])


def medmnistc_corrupt(
    image: np.ndarray, table: str, kind: str, severity: int, seed: int = 0
) -> np.ndarray:
    """``image`` (uint8-range gray ``(H, W)`` or RGB ``(H, W, 3)``) corrupted by ``kind``
    of MedMNIST-C dataset ``table`` at ``severity`` (1-5): a float image of the same shape
    in [0, 255]: 8-bit values from 224 px up, the reduced change added to a smaller image
    (round it to store it as a file would)."""
    if kind not in kinds_of(table) or severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"{table} has no corruption {kind!r} at severity {severity}")
    param = TABLES[table][kind][severity - 1]
    x = np.clip(np.rint(np.asarray(image, np.float64)), 0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    side = max(x.shape[:2])
    if side >= REFERENCE:
        scale = side / REFERENCE if kind in _SPATIAL else 1.0
        return _apply(x, kind, param, scale, rng).astype(np.float64)
    h, w = x.shape[:2]
    f = REFERENCE / side
    big = (max(1, round(w * f)), max(1, round(h * f)))
    up = PILImage.fromarray(x).resize(big, PILImage.Resampling.BICUBIC)
    corrupted = PILImage.fromarray(_apply(np.asarray(up), kind, param, 1.0, rng))

    def down(image: PILImage.Image) -> np.ndarray:
        return np.asarray(image.resize((w, h), PILImage.Resampling.BOX), np.float64)

    # The change the corruption makes at 224, reduced: the resampling round trip's own
    # smoothing (1-2 gray levels on a 28 px image) cancels.
    return np.asarray(np.clip(x + down(corrupted) - down(up), 0, 255), np.float64)


def _apply(
    x: np.ndarray, kind: str, param: Any, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """One corruption of uint8 ``x`` at its own size; uint8 out."""
    if kind in ("pixelate", "jpeg_compression") or kind.startswith(("brightness", "contrast")):
        return _pillow(x, kind, param)
    if kind.startswith("gamma_corr"):
        table = np.floor((255 + 1 - 1e-3) * (np.arange(256) / 255.0) ** float(param))
        return np.asarray(table.astype(np.uint8)[x])
    u = x.astype(np.float64) / 255.0
    out = _blurred(u, kind, param, scale, rng) if kind in _SPATIAL else _noisy(u, kind, param, rng)
    return np.asarray((np.clip(out, 0.0, 1.0) * 255).astype(np.uint8))


def _pillow(x: np.ndarray, kind: str, param: Any) -> np.ndarray:
    """The kinds MedMNIST-C leaves to Pillow."""
    image = PILImage.fromarray(x)
    if kind == "pixelate":
        w, h = image.size
        small = (max(1, int(w * float(param))), max(1, int(h * float(param))))
        image = image.resize(small, PILImage.Resampling.BOX)
        return np.asarray(image.resize((w, h), PILImage.Resampling.BOX))
    if kind == "jpeg_compression":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(param))
        return np.asarray(PILImage.open(io.BytesIO(buffer.getvalue())).convert(image.mode))
    enhancer = ImageEnhance.Brightness if kind.startswith("brightness") else ImageEnhance.Contrast
    return np.asarray(enhancer(image).enhance(float(param)))


def _noisy(u: np.ndarray, kind: str, param: Any, rng: np.random.Generator) -> np.ndarray:
    """The noise kinds, on ``u`` in [0, 1] (not clipped)."""
    c = float(param)
    if kind == "gaussian_noise":
        return u + rng.normal(0.0, c, u.shape)
    if kind == "speckle_noise":
        return u + u * rng.normal(0.0, c, u.shape)
    if kind == "shot_noise":
        return rng.poisson(u * c) / c
    if kind != "impulse_noise":
        raise ValueError(f"unknown corruption {kind!r}")
    flipped = rng.random(u.shape) <= c
    salted = rng.random(u.shape) <= 0.5
    out = u.copy()
    out[flipped & salted] = 1.0
    out[flipped & ~salted] = 0.0
    return out


def _blurred(
    u: np.ndarray, kind: str, param: Any, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """The blur kinds, on ``u`` in [0, 1], their sizes times ``scale``."""
    if kind == "gaussian_blur":
        k = int(param)
        sigma = (0.3 * ((k - 1) * 0.5 - 1) + 0.8) * scale
        size = k if scale == 1.0 else 2 * math.ceil(((k - 1) / 2) * scale) + 1
        return _separable(u, _gaussian_taps(size, sigma))
    if kind == "motion_blur":
        radius, sigma = param
        angle = float(rng.uniform(-45.0, 45.0))
        return _motion(u, float(radius) * scale, float(sigma) * scale, angle)
    radius, alias = param  # defocus_blur
    return _convolve(u, _disk(float(radius) * scale, float(alias)))


def _gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """torchvision's 1D Gaussian kernel: ``size`` taps at -(size-1)/2 .. (size-1)/2."""
    t = np.linspace(-(size - 1) / 2, (size - 1) / 2, size)
    taps = np.exp(-0.5 * (t / sigma) ** 2)
    return np.asarray(taps / taps.sum())


def _separable(u: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """``u`` filtered by ``taps`` along rows then columns (channels apart), reflected at
    the border (torch's "reflect", OpenCV's default reflect-101)."""
    r = len(taps) // 2
    pad = [(r, r), (r, r)] + [(0, 0)] * (u.ndim - 2)
    p = np.pad(u, pad, mode="reflect")
    rows = np.zeros((u.shape[0], *p.shape[1:]))
    for i, t in enumerate(taps):
        rows += t * p[i : i + u.shape[0]]
    out = np.zeros(u.shape)
    for i, t in enumerate(taps):
        out += t * rows[:, i : i + u.shape[1]]
    return out


def _motion(u: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's ``MotionBlurImage``: taps i = 0 .. width - 1 at whole-pixel offsets
    along ``angle`` (degrees), weights exp(-i^2 / 2 sigma^2), edges replicated."""
    width = int(2 * math.ceil(radius) + 1)
    weights = np.exp(-(np.arange(width) ** 2) / (2.0 * sigma * sigma))
    weights /= weights.sum()
    px, py = width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle))
    norm = math.hypot(px, py)
    h, w = u.shape[:2]
    pad = [(width, width), (width, width)] + [(0, 0)] * (u.ndim - 2)
    p = np.pad(u, pad, mode="edge")
    out = np.zeros_like(u)
    for i, weight in enumerate(weights):
        dx = math.ceil(i * py / norm - 0.5)
        dy = math.ceil(i * px / norm - 0.5)
        out += weight * p[width + dy : width + dy + h, width + dx : width + dx + w]
    return out


def _disk(radius: float, alias: float) -> np.ndarray:
    """MedMNIST-C's (ImageNet-C's) anti-aliased disk: the disk of ``radius`` on a grid of
    at least -8..8, normalized, then smoothed by a 3 x 3 (radius <= 8) or 5 x 5 Gaussian of
    sigma ``alias`` with OpenCV's default border (reflect-101)."""
    reach = 8 if radius <= 8 else math.ceil(radius)
    grid = np.arange(-reach, reach + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    size = 3 if radius <= 8 else 5
    return _separable(disk, _gaussian_taps(size, alias))


def _convolve(u: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``u`` filtered by the (symmetric) 2D ``kernel``, OpenCV's default border
    (reflect-101), channels apart."""
    r = kernel.shape[0] // 2
    pad = [(r, r), (r, r)] + [(0, 0)] * (u.ndim - 2)
    p = np.pad(u, pad, mode="reflect")
    h, w = u.shape[:2]
    out = np.zeros_like(u)
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            if kernel[i, j] != 0.0:
                out += kernel[i, j] * p[i : i + h, j : j + w]
    return out
