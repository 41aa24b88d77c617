"""Image corruptions at five severities, for robustness tests and robustness training.

Two kinds of table:

- ``radlens`` (the default): this module's six corruptions, the same for every modality, in
  the spirit of Hendrycks & Dietterich (ICLR 2019). Their blur is scaled from 28 px, so at
  224 px it is 4-18 px sigma: a stress test well beyond MedMNIST-C's X-ray blur.
- a MedMNIST-C dataset's name (``chestmnist``, ``pneumoniamnist``, ``breastmnist``,
  ``retinamnist``): that dataset's modality-specific corruptions and severities, as
  ``radlens.evaluation.medmnistc`` reproduces them.

Each corruption maps a uint8-range image (gray ``(H, W)`` or RGB ``(H, W, 3)``) to a float
image of the same shape in [0, 255]. Deterministic for a given ``seed``.

Example:
    >>> bool(corrupt(np.full((8, 8), 100.0), "contrast", 5).max() <= 100.0)
    True
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFilter

from radlens.evaluation.medmnistc import TABLES as MEDMNISTC_TABLES
from radlens.evaluation.medmnistc import kinds_of as medmnistc_kinds
from radlens.evaluation.medmnistc import medmnistc_corrupt

SEVERITIES = (1, 2, 3, 4, 5)
CORRUPTIONS = ("gaussian_noise", "blur", "contrast", "brightness", "jpeg", "pixelate")

_NOISE = (0.02, 0.04, 0.07, 0.10, 0.15)  # sigma as a share of 255
_BLUR = (0.5, 0.8, 1.2, 1.6, 2.2)  # Gaussian sigma in pixels at 28 px (scaled with size)
_CONTRAST = (0.75, 0.6, 0.45, 0.3, 0.2)  # kept share of contrast about the mean
_BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)  # added share of 255
_JPEG = (60, 40, 25, 15, 8)  # quality
_PIXELATE = (0.85, 0.7, 0.55, 0.45, 0.35)  # downsampling factor


RADLENS = "radlens"
TABLES = (RADLENS, *MEDMNISTC_TABLES)


def kinds_in(table: str = RADLENS) -> tuple[str, ...]:
    """The corruption kinds of ``table`` (see the module's docstring).

    Example:
        >>> kinds_in("breastmnist")[:3]
        ('pixelate', 'jpeg_compression', 'speckle_noise')
    """
    if table == RADLENS:
        return CORRUPTIONS
    if table not in MEDMNISTC_TABLES:
        raise ValueError(f"unknown corruption table {table!r}; known: {', '.join(TABLES)}")
    return medmnistc_kinds(table)


def corrupt(
    image: np.ndarray, kind: str, severity: int, seed: int = 0, table: str = RADLENS
) -> np.ndarray:
    """``image`` corrupted by ``kind`` of ``table`` at ``severity`` (1-5)."""
    if table != RADLENS:
        return medmnistc_corrupt(image, table, kind, severity, seed)  # checks table and kind
    if kind not in CORRUPTIONS or severity not in SEVERITIES:
        raise ValueError(f"unknown corruption {kind!r} or severity {severity}")
    x = np.asarray(image, np.float64)
    s = severity - 1
    scale = max(x.shape[:2]) / 28
    if kind == "gaussian_noise":
        rng = np.random.default_rng(seed)
        out = x + rng.normal(0, _NOISE[s] * 255, x.shape)
    elif kind == "contrast":
        mean = x.mean()
        out = (x - mean) * _CONTRAST[s] + mean
    elif kind == "brightness":
        out = x + _BRIGHTNESS[s] * 255
    else:
        pil = PILImage.fromarray(np.clip(x, 0, 255).astype(np.uint8))
        if kind == "blur":
            pil = pil.filter(ImageFilter.GaussianBlur(_BLUR[s] * scale))
        elif kind == "jpeg":
            buffer = io.BytesIO()
            pil.save(buffer, format="JPEG", quality=_JPEG[s])
            pil = PILImage.open(io.BytesIO(buffer.getvalue()))
            pil.load()
        else:
            w, h = pil.size
            small = (max(1, round(w * _PIXELATE[s])), max(1, round(h * _PIXELATE[s])))
            pil = pil.resize(small, PILImage.Resampling.BOX).resize(
                (w, h), PILImage.Resampling.NEAREST
            )
        out = np.asarray(pil, np.float64)
    return np.clip(out, 0, 255)
