"""Read a noisy image after denoising it, when it is noisier than every training image.

A model trained on clean radiographs loses much of its AUC on a noisy one: under MedMNIST-C's
severity-5 noise (chestmnist table) the fracture model's val AUC falls from 0.900 to 0.72-0.83
(``benchmarks/trust.md``). Two measures of the model-size input tell such an image from the
training images, and a median filter takes most of the noise out before the model reads it:

* :func:`noise_level`: the pixel noise as a share of the image's intensity range (the
  0.5-99.5th percentile span the model scales to 0-1), by Immerkaer's Laplacian-difference
  operator ("Fast noise variance estimation", CVIU 1996) read robustly: the median of its
  absolute response, so edges and structure, which touch a minority of pixels, do not count;
* :func:`impulse_share`: the share of pixels more than a quarter of that range away from the
  median of their 3 x 3 neighbourhood (salt-and-pepper noise, dead or hot pixels), which the
  robust noise level does not see while they are few.

The card's :class:`radlens.models.card.Denoise` holds the largest value of each measure over
the model's training images (``radlens denoise``, :func:`radlens.training.denoise.fit_denoise`);
an input above either is filtered by a ``median`` x ``median`` median filter after the resize
(and window) and before the percentile scaling of :func:`radlens.inference.preprocess.prepare_2d`.
A training image, or anything no noisier, is never touched, so clean readings are unchanged.
The finding says so, and is flagged as unlike the training data (its out-of-distribution
score is read from the unfiltered input: :func:`radlens.inference.predict.predict`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from radlens.models.card import Denoise

IMPULSE_STEP = 0.25
"""A pixel this far (share of the intensity range) from its 3 x 3 median counts as an impulse."""

_LAPLACIAN_DIFFERENCE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
# For Gaussian noise of sigma s the operator's response has standard deviation 6 s (the root
# of the sum of its squared taps), and the median of |N(0, 1)| is 0.6745.
_TO_SIGMA = 1.0 / (6.0 * 0.6745)


@dataclass(frozen=True)
class Denoised:
    """What was done to one input plane before the model read it.

    Attributes:
        noise: :func:`noise_level` of the input, before filtering.
        impulses: :func:`impulse_share` of the input, before filtering.
        median: side of the median filter applied.
        spec: the card's thresholds it was compared with.
    """

    noise: float
    impulses: float
    median: int
    spec: Denoise

    def warning(self) -> str:
        """The finding's warning: what was measured against which training maximum."""
        why = []
        if self.noise > self.spec.noise_above:
            why.append(
                f"noise {self.noise:.3f} of its range, training at most {self.spec.noise_above:.3f}"
            )
        if self.impulses > self.spec.impulse_above:
            why.append(
                f"impulse pixels {self.impulses:.2%}, training at most "
                f"{self.spec.impulse_above:.2%}"
            )
        return (
            f"input noisier than every training image ({'; '.join(why)}): read after a "
            f"{self.median} x {self.median} median filter"
        )


def unit_range(plane: np.ndarray, low_pct: float, high_pct: float) -> np.ndarray:
    """``plane`` with its ``low_pct``..``high_pct`` percentiles at 0 and 1 (not clipped).

    Example:
        >>> unit_range(np.array([[0.0, 50.0], [100.0, 100.0]]), 0, 100)
        array([[0. , 0.5],
               [1. , 1. ]], dtype=float32)
    """
    low, high = np.percentile(plane, [low_pct, high_pct])
    span = max(float(high - low), 1e-6 * max(1.0, abs(float(high))))
    scaled: np.ndarray = ((plane - low) / span).astype(np.float32)
    return scaled


def noise_level(u: np.ndarray) -> float:
    """Robust estimate of the pixel noise's standard deviation in a 2D image ``u``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> flat = np.full((128, 128), 0.5, np.float32)
        >>> round(noise_level(flat + rng.normal(0, 0.05, flat.shape).astype(np.float32)), 2)
        0.05
        >>> noise_level(flat)
        0.0
    """
    windows = sliding_window_view(np.pad(u, 1, mode="reflect"), (3, 3))[1:-1, 1:-1]
    response = np.abs(np.einsum("ijkl,kl->ij", windows, _LAPLACIAN_DIFFERENCE))
    return float(np.median(response) * _TO_SIGMA)


def median_filter(u: np.ndarray, size: int) -> np.ndarray:
    """``size`` x ``size`` median filter of a 2D image (edges reflected).

    Example:
        >>> dot = np.zeros((5, 5), np.float32); dot[2, 2] = 1.0
        >>> float(median_filter(dot, 3).max())
        0.0
    """
    pad = size // 2
    windows = sliding_window_view(np.pad(u, pad, mode="reflect"), (size, size))
    filtered: np.ndarray = np.median(windows, axis=(-2, -1)).astype(np.float32)
    return filtered


def impulse_share(u: np.ndarray) -> float:
    """Share of the pixels of ``u`` (scaled to 0-1) that stand out from their 3 x 3 median.

    Example:
        >>> u = np.full((10, 10), 0.5, np.float32); u[3, 3] = 1.0; u[6, 6] = 0.0
        >>> impulse_share(u)
        0.02
    """
    clipped = np.clip(u, 0.0, 1.0)
    return float(np.mean(np.abs(clipped - median_filter(clipped, 3)) > IMPULSE_STEP))


def measure(plane: np.ndarray, low_pct: float, high_pct: float) -> tuple[float, float]:
    """:func:`noise_level` and :func:`impulse_share` of a plane on its own intensity range."""
    u = unit_range(plane, low_pct, high_pct)
    return noise_level(u), impulse_share(u)


def denoise(
    plane: np.ndarray, spec: Denoise, low_pct: float, high_pct: float
) -> tuple[np.ndarray, Denoised | None]:
    """``plane`` median-filtered when it is noisier than the training images, else as it is.

    Example:
        >>> from radlens.models.card import Denoise
        >>> rng = np.random.default_rng(0)
        >>> plane = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
        >>> spec = Denoise(median=3, noise_above=0.01, impulse_above=0.01)
        >>> denoise(plane, spec, 0.5, 99.5)[1] is None
        True
        >>> noisy = plane + rng.normal(0, 0.1, plane.shape).astype(np.float32)
        >>> out, done = denoise(noisy, spec, 0.5, 99.5)
        >>> done.median, float(np.abs(out - plane).mean()) < float(np.abs(noisy - plane).mean())
        (3, True)
    """
    noise, impulses = measure(plane, low_pct, high_pct)
    if noise <= spec.noise_above and impulses <= spec.impulse_above:
        return plane, None
    return median_filter(plane, spec.median), Denoised(
        round(noise, 6), round(impulses, 6), spec.median, spec
    )
