"""Read a noisy or blurred image after restoring it, when it is noisier, or far blurrier,
than every training image.

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

Blur works the same way (:class:`radlens.models.card.Deblur`, ``radlens deblur``):

* :func:`blur_level` estimates the Gaussian blur of the model-size input, in pixels, from
  how much of its gradient a known further blur takes away: for a blurred edge the steepest
  gradient falls as 1 / sigma, so a reblur by ``s0`` keeps ``sigma / sqrt(sigma^2 + s0^2)``
  of it. The mean absolute gradient stands in for the steepest one, so the figure is an
  estimate on the training images' own scale (the knee radiographs read 0.5-1.2 px, a
  3 px blur reads about 3.4), not a measurement to trust to the pixel.
* An input whose estimate is at least ``factor`` (2) times the blurriest training image's is
  deconvolved by a Wiener filter (:func:`wiener_deblur`) for a Gaussian of the blur beyond
  that image's, ``sqrt(estimate^2 - blur_max^2)``, read through the card's calibration:
  what that excess reads, in median, when the training images are blurred by a known sigma
  (on knee radiographs it runs 20% high at 2 px and is right at 6 px).
* Pixelation is not Gaussian blur, and deconvolving an upscaled low-resolution image makes it
  worse (MedMNIST-C's pixelate on the knee model: AUC 0.792 -> 0.658). A pixelated image is
  flat at the finest scale, so its estimate at ``s0 = 0.5`` px is 1.8-10 times the one at 1 px,
  where a Gaussian-blurred image's is within a few percent of it (:func:`looks_gaussian`); such
  an image is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from radlens.models.card import Deblur, Denoise

IMPULSE_STEP = 0.25
"""A pixel this far (share of the intensity range) from its 3 x 3 median counts as an impulse."""

GAUSSIAN_TOLERANCE = 1.1
""":func:`looks_gaussian`: a Gaussian-blurred image's blur estimate at 0.5 px is within a few
percent of the one at 1 px (0.96-1.02 on blurred radiographs and textures), a pixelated one's
1.8-10 times it."""

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


@dataclass(frozen=True)
class Deblurred:
    """What was done to one blurred input plane before the model read it.

    Attributes:
        blur: :func:`blur_level` of the input, before deconvolution (px at the input size).
        sigma: the Gaussian deconvolved (px).
        spec: the card's spec it was compared with.
    """

    blur: float
    sigma: float
    spec: Deblur

    def warning(self) -> str:
        """The finding's warning: what was measured against which training maximum."""
        return (
            f"input blurrier than every training image (blur {self.blur:.1f} px at the "
            f"model's input size, training at most {self.spec.blur_max:.1f} px): read after "
            f"Wiener deconvolution of a {self.sigma:.1f} px Gaussian"
        )


def _gaussian_transfer(shape: tuple[int, ...], sigma: float) -> np.ndarray:
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    transfer: np.ndarray = np.exp(-2.0 * np.pi**2 * sigma**2 * (fx**2 + fy**2))
    return transfer


def _filtered(u: np.ndarray, sigma: float, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``u`` filtered in the frequency domain by ``gain`` of a Gaussian's transfer function
    (edges reflected, so the image's borders do not wrap around)."""
    pad = int(3 * sigma) + 1
    padded = np.pad(np.asarray(u, np.float64), pad, mode="reflect")
    spectrum = np.fft.fft2(padded) * gain(_gaussian_transfer(padded.shape, sigma))
    out: np.ndarray = np.real(np.fft.ifft2(spectrum))[pad:-pad, pad:-pad].astype(np.float32)
    return out


def gaussian_blur(u: np.ndarray, sigma: float) -> np.ndarray:
    """``u`` blurred by a Gaussian of ``sigma`` px.

    Example:
        >>> dot = np.zeros((9, 9)); dot[4, 4] = 1.0
        >>> spread = gaussian_blur(dot, 1.0)
        >>> round(float(spread.sum()), 3), round(float(spread.max()), 3)
        (1.0, 0.159)
    """
    return _filtered(u, sigma, lambda h: h)


def wiener_deblur(u: np.ndarray, sigma: float, k: float) -> np.ndarray:
    """``u`` deconvolved for a Gaussian blur of ``sigma`` px by a Wiener filter with
    noise-to-signal ratio ``k``: ``H / (H^2 + k)``.

    Example:
        >>> step = np.zeros((32, 32)); step[:, 16:] = 1.0
        >>> blurred = gaussian_blur(step, 2.0)
        >>> restored = wiener_deblur(blurred, 2.0, 1e-2)
        >>> def steepest(u): return round(float(np.diff(u[16]).max()), 2)
        >>> steepest(blurred), steepest(restored)
        (0.2, 0.33)
    """
    return _filtered(u, sigma, lambda h: h / (h * h + k))


def _mean_gradient(u: np.ndarray) -> float:
    return float(np.mean(np.abs(np.diff(u, axis=0))) + np.mean(np.abs(np.diff(u, axis=1))))


def blur_level(u: np.ndarray, s0: float = 1.0) -> float:
    """Estimated Gaussian blur (px) of a 2D image ``u``: the share ``r`` of its mean
    absolute gradient that a further blur by ``s0`` keeps, read as ``s0 r / sqrt(1 - r^2)``
    (see the module's docstring). A flat image reads 0.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> texture = rng.random((96, 96))
        >>> sharp, soft = blur_level(texture), blur_level(gaussian_blur(texture, 3.0))
        >>> round(sharp, 2), round(soft, 2)
        (0.13, 2.06)
    """
    before = _mean_gradient(u)
    if before <= 1e-9:
        return 0.0
    kept = min(_mean_gradient(gaussian_blur(u, s0)) / before, 0.9999)
    return float(s0 * kept / np.sqrt(1.0 - kept * kept))


def looks_gaussian(u: np.ndarray, blur: float | None = None) -> bool:
    """Whether the blur of ``u`` looks Gaussian rather than like pixelation: its estimate at
    the finest scale (0.5 px) is at most ``GAUSSIAN_TOLERANCE`` times the one at 1 px
    (``blur``, when the caller has it already).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> texture = gaussian_blur(rng.random((96, 96)), 3.0)
        >>> blocky = np.kron(rng.random((12, 12)), np.ones((8, 8)))
        >>> looks_gaussian(texture), looks_gaussian(blocky)
        (True, False)
    """
    at_1px = blur_level(u, 1.0) if blur is None else blur
    return blur_level(u, 0.5) <= GAUSSIAN_TOLERANCE * at_1px


def blur_of(plane: np.ndarray, low_pct: float, high_pct: float) -> float:
    """:func:`blur_level` of a plane on its own intensity range."""
    return blur_level(unit_range(plane, low_pct, high_pct))


def deblur(
    plane: np.ndarray, spec: Deblur, low_pct: float, high_pct: float
) -> tuple[np.ndarray, Deblurred | None]:
    """``plane`` deconvolved when it is far blurrier than the training images (and its
    blur looks Gaussian), else as it is.

    Example:
        >>> from radlens.models.card import Deblur
        >>> rng = np.random.default_rng(0)
        >>> texture = rng.random((96, 96)).astype(np.float32)
        >>> spec = Deblur(blur_max=0.6)
        >>> deblur(texture, spec, 0.5, 99.5)[1] is None
        True
        >>> out, done = deblur(gaussian_blur(texture, 3.0), spec, 0.5, 99.5)
        >>> done.blur, done.sigma, round(blur_level(out), 2)
        (2.0563, 1.9668, 1.58)
    """
    u = unit_range(plane, low_pct, high_pct)
    blur = blur_level(u)
    if blur < spec.trigger or not looks_gaussian(u, blur):
        return plane, None
    sigma = spec.sigma_for(float(np.sqrt(max(blur**2 - spec.blur_max**2, 0.0))))
    return wiener_deblur(plane, sigma, spec.wiener_k), Deblurred(
        round(blur, 4), round(sigma, 4), spec
    )
