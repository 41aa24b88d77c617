"""Cheap statistics of an input image, for the second out-of-distribution score (numpy only).

The feature score (:mod:`radlens.inference.ood`) sees what the network sees, after the
preprocessing that scales intensities to the 0.5-99.5th percentiles; a contrast-reduced image,
a heavily JPEG-compressed one or a pixelated one looks ordinary to it. These statistics look at
the image itself:

* on the decoded frame (``raw``), what normalization hides: how many grey levels are used
  (contrast reduction of a stored image), edges on the 8 x 8 JPEG block grid and flat steps
  (pixelation), both only where the frame is near the model input's scale, and colour; since
  ``image2d/3`` the flat steps are measured at every frame size, as pixelation on a log scale
  (an 800 px ultrasound frame enlarged 2.86x by nearest neighbour is read at 240 px, where
  the resize all but undoes the blocks: only the decoded frame shows them);
* on a decoded 8-bit frame, since ``image2d/4``, the fingerprints a grey-level mapping leaves
  in its histogram (Stamm and Liu, "Forensic detection of image manipulation using statistical
  intrinsic fingerprints", IEEE TIFS 2010): a stretch, gamma or brightness gain spreads the 256
  stored levels apart and leaves empty levels between them, and a dimmed or contrast-reduced
  frame no longer reaches the training images' darkest and brightest levels. After the model's
  percentile normalization these look like an ordinary exposure (a gamma of 1.6 was flagged
  for 21% of 300 chest X-rays at image2d/3's 5% val rate);
* on the model input (after the model's own preprocessing, as ``predict`` sees it): the
  intensity histogram, gradients, autocorrelation at lags 1, 2 and 4, and flat steps
  (blur, noise, pixelation, another modality or body part); since ``image2d/2`` also the
  texture of the tissue (speckle: an ultrasound image sent to a radiograph model);
* for 3D segmentation masks, the shape of the object: size, extents, fill of its bounding box,
  surface share, centring and elongation (``mask3d/1``), and since ``mask3d/2`` also its local
  form: sheet-like or tube-like neighbourhoods, the roundness of its cross-section and the
  fill of its covariance ellipsoid (an adrenal gland is a curved sheet, a vessel a tube).

Pixel-level statistics of the decoded frame depend on its resolution and storage (a 2000 px,
12-bit radiograph is far smoother pixel to pixel than the 224 px, 8-bit training images, and
often uses a fraction of its bit range), so only resolution- and range-free ones are taken
there; the others are measured on the model input, which has the training size. Statistics
that only measure quality are *one-sided* (:attr:`StatisticSet.direction`): more grey levels
or fewer block edges than the training images is not a reason to distrust an input, so only
the degraded side counts.

Each set is versioned (``image2d/1``, ``mask3d/2``); the fitted statistics file names the set
and its statistics, and a change to any definition here needs a new version and
``radlens ood``. Earlier versions stay computable, so a card keeps the set it was fitted with.

Example:
    >>> from radlens.models.card import InputSpec, ModelCard
    >>> spec = InputSpec(size=(28, 28), percentile_low=0, percentile_high=100)
    >>> raw = np.tile(np.arange(28, dtype=np.uint8) * 9, (28, 1))
    >>> x = (raw[None] / 243.0 - spec.mean) / spec.std
    >>> values = statistics_of(STATISTICS["image2d/1"], raw, x, spec)
    >>> values.shape, round(float(values[0]), 2)  # log2 of ~28 grey levels (27 inside p0.5-p99.5)
    ((24,), 4.75)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from radlens.models.card import InputSpec, ModelCard

RAW_CROP_PX = 256
"""Side of the central crop of the decoded frame its statistics are measured on."""
JPEG_BLOCK_PX = 8
MAX_LEVELS_BITS = 8.0
"""Grey levels are counted up to 256: a 12-bit image is not unusual for having more."""
PIXELATION_FLOOR = 1e-3
"""Added to the share of moving steps before its logarithm: a fully enlarged frame scores 3."""
MAX_PIXEL_SHRINK = 2.0
"""Block edges and flat steps of the decoded frame are measured only when it is at most this
many times the model input's side."""


@dataclass(frozen=True)
class StatisticSet:
    """A named, versioned list of statistics and how each is compared to training.

    Attributes:
        kind: ``image2d/1`` or ``mask3d/1``; stored with the fitted statistics.
        names: one per statistic, in the order :attr:`compute` returns them.
        direction: ``-1`` only values below the training median count (fewer grey levels),
            ``+1`` only values above it (more block edges), ``0`` both.
        min_scale: the smallest spread a statistic's z-score divides by, so one that barely
            varies in training (colour of greyscale images) does not make every small
            difference extreme.
        compute: ``(raw, model_input, spec) -> values``.
        rank: whether new fits put the statistics on rank-Gaussian z-scores
            (:func:`radlens.inference.ood.rank_gaussian`) rather than robust ones.
    """

    kind: str
    names: tuple[str, ...]
    direction: tuple[int, ...]
    min_scale: tuple[float, ...]
    compute: Callable[[np.ndarray, np.ndarray, InputSpec], np.ndarray]
    rank: bool = True

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(self.direction) != n or len(self.min_scale) != n:
            raise ValueError(f"{self.kind}: names, direction and min_scale differ in length")


def statistics_of(
    stats: StatisticSet, raw: np.ndarray, model_input: np.ndarray, spec: InputSpec
) -> np.ndarray:
    """The set's statistics of one input: ``raw`` as decoded, ``model_input`` as the model
    reads it (``(C, H, W)`` or ``(1, D, H, W)``)."""
    values = stats.compute(np.asarray(raw), np.asarray(model_input, np.float32), spec)
    return np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=1e6, neginf=-1e6)


# --- 2D images ---------------------------------------------------------------------------


def _central_crop(a: np.ndarray, side: int) -> np.ndarray:
    """A central crop whose offsets are multiples of 8, so the JPEG block grid stays put."""
    rows, cols = a.shape[:2]
    y = max(0, (rows - side) // 2) // JPEG_BLOCK_PX * JPEG_BLOCK_PX
    x = max(0, (cols - side) // 2) // JPEG_BLOCK_PX * JPEG_BLOCK_PX
    return a[y : y + side, x : x + side]


def _blockiness(plane: np.ndarray) -> float:
    """Log ratio of the mean step across 8 x 8 block borders to the mean step inside blocks
    (0 for an image never JPEG-compressed; positive when the block grid shows)."""
    dx = np.abs(np.diff(plane, axis=1))
    dy = np.abs(np.diff(plane, axis=0))
    on_x = (np.arange(dx.shape[1]) % JPEG_BLOCK_PX) == JPEG_BLOCK_PX - 1
    on_y = (np.arange(dy.shape[0]) % JPEG_BLOCK_PX) == JPEG_BLOCK_PX - 1
    if not (on_x.any() and on_y.any() and (~on_x).any() and (~on_y).any()):
        return 0.0
    across = float(dx[:, on_x].mean() + dy[on_y].mean())
    inside = float(dx[:, ~on_x].mean() + dy[~on_y].mean())
    eps = 1e-9 + 1e-6 * float(np.ptp(plane))
    return float(np.log((across + eps) / (inside + eps)))


def _raw_statistics(raw: np.ndarray, spec: InputSpec, pixelation: bool = False) -> list[float]:
    """Grey levels, JPEG blockiness, flat steps and colour of the decoded frame. The flat
    steps are the staircase near the model input's scale, or with ``pixelation``
    (``image2d/3``) :func:`_pixelation` at any scale."""
    crop = _central_crop(raw, RAW_CROP_PX)
    colour = crop.ndim == 3 and crop.shape[-1] == 3
    # Green carries most of the luminance and keeps the stored (integer) levels.
    plane = (crop[..., 1] if colour else crop).astype(np.float64)
    low, high = np.percentile(plane[::2, ::2], [0.5, 99.5])
    inside = plane[(plane >= low) & (plane <= high)]
    levels = min(MAX_LEVELS_BITS, float(np.log2(max(1, np.unique(inside).size))))
    # Blocks and steps far smaller than a model-input pixel cannot reach the model (a 2000 px
    # radiograph stored as lossy JPEG is read at 224 px, where its 8 px blocks vanish), and a
    # smooth high-resolution frame has flat steps of its own: measured near the input scale only
    # (image2d/1, /2). image2d/3 measures pixelation at every size: a frame enlarged by nearest
    # neighbour has a lower resolution than it claims whatever the model reads, and real 12- and
    # 16-bit DICOM frames move at nearly every step (benchmarks/trust.md, the DICOM table).
    shrink = max(s / t for s, t in zip(raw.shape[:2], spec.size[-2:], strict=True))
    near = shrink <= MAX_PIXEL_SHRINK
    chroma = 0.0
    if colour and high > low:
        rgb = crop.astype(np.float32)
        chroma = float((rgb.max(axis=-1) - rgb.min(axis=-1)).mean()) / float(high - low)
    return [
        levels,
        _blockiness(plane) if near else 0.0,
        _pixelation(plane) if pixelation else _staircase(plane) if near else 0.0,
        chroma,
    ]


def _pixelation(plane: np.ndarray) -> float:
    """How nearest-neighbour enlarged a decoded frame looks, at any resolution: ``-log10`` of
    the share of its changing two-pixel steps along rows with no flat half (plus
    ``PIXELATION_FLOOR``). About 0.1-0.5 on natural radiographs and ultrasound, 1.2 once
    pixelation keeps 55% of the side, 3 when every step is a flat run (enlarged 2x or more).
    The logarithm spreads the degraded end, so an enlarged image lies far from training
    whatever the other statistics do."""
    return float(-np.log10(1.0 - _staircase(plane) + PIXELATION_FLOOR))


def _staircase(g: np.ndarray) -> float:
    """Of the two-pixel steps along rows that change, the share with a flat half: near 1 for
    a pixelated (nearest-neighbour enlarged) image, low for a natural one."""
    step = np.diff(g, axis=1)
    moving = (g[:, 2:] - g[:, :-2]) != 0
    flat = (step[:, :-1] == 0) | (step[:, 1:] == 0)
    n_moving = int(np.count_nonzero(moving))
    return float(np.count_nonzero(flat & moving)) / n_moving if n_moving else 0.0


def _autocorrelation(c: np.ndarray, var: float, lag: int) -> float:
    """Autocorrelation of the centred image ``c`` at ``lag`` pixels, rows and columns pooled."""
    if var <= 0:
        return 1.0
    across = float(np.einsum("ij,ij->", c[:, :-lag], c[:, lag:])) / c[:, lag:].size
    down = float(np.einsum("ij,ij->", c[:-lag], c[lag:])) / c[lag:].size
    return (across + down) / (2 * var)


def _input_statistics(u: np.ndarray) -> list[float]:
    """Statistics of the model input ``u`` (``(C, H, W)`` scaled back to 0..1)."""
    saturation = float((u.max(axis=0) - u.min(axis=0)).mean()) if u.shape[0] > 1 else 0.0
    g = u.mean(axis=0) if u.shape[0] > 1 else u[0]
    mean = float(g.mean())
    c = g - np.float32(mean)
    c2 = c * c
    var = float(c2.mean())
    std = float(np.sqrt(var))
    skew = float((c2 * c).mean()) / std**3 if std > 0 else 0.0
    kurt = float((c2 * c2).mean()) / var**2 if var > 0 else 0.0
    step = 2 if max(g.shape) > 64 else 1  # percentiles of a large input from every other pixel
    pcts = [float(p) for p in np.percentile(g[::step, ::step], [5, 25, 50, 75, 95])]
    dx, dy = np.diff(g, axis=1), np.diff(g, axis=0)
    adx, ady = np.abs(dx), np.abs(dy)
    grad = float(adx.mean() + ady.mean())
    edge = float(np.count_nonzero((adx[:-1] + ady[:, :-1]) > 0.1)) / adx[:-1].size
    lag2 = float(np.abs(g[:, 2:] - g[:, :-2]).mean() + np.abs(g[2:] - g[:-2]).mean())
    return [
        mean,
        std,
        skew,
        float(np.log1p(kurt)),
        *pcts,
        float(np.count_nonzero(g <= 0.02)) / g.size,
        float(np.count_nonzero(g >= 0.98)) / g.size,
        grad,
        edge,
        _autocorrelation(c, var, 1),
        _autocorrelation(c, var, 2),
        _autocorrelation(c, var, 4),
        grad / lag2 if lag2 > 0 else 0.5,
        saturation,
        float(np.count_nonzero(dx == 0)) / dx.size,
        _staircase(g),
    ]


def _image_statistics(raw: np.ndarray, model_input: np.ndarray, spec: InputSpec) -> np.ndarray:
    u = model_input * spec.std + spec.mean
    return np.array(_raw_statistics(raw, spec) + _input_statistics(u))


TISSUE_LEVEL = 0.15
"""Model-input intensity (0..1) above which a pixel or block counts as tissue, not background."""
TEXTURE_BLOCK_PX = 8


def _texture_statistics(u: np.ndarray) -> list[float]:
    """Texture of the tissue on the model input ``u`` (``(C, H, W)`` scaled back to 0..1):
    the median coefficient of variation of 8 x 8 blocks and the median Laplacian relative to
    the local level. Ultrasound speckle is grainy where a radiograph is smooth (about 0.30 vs
    0.11 and 0.15 vs 0.04 on the model inputs of HC18 and FracAtlas images)."""
    g = u.mean(axis=0) if u.shape[0] > 1 else u[0]
    k = TEXTURE_BLOCK_PX
    rows, cols = g.shape[0] // k * k, g.shape[1] // k * k
    cv = 0.0
    if rows and cols:
        blocks = g[:rows, :cols].reshape(rows // k, k, cols // k, k)
        mean, std = blocks.mean(axis=(1, 3)), blocks.std(axis=(1, 3))
        tissue = mean > TISSUE_LEVEL
        cv = float(np.median(std[tissue] / mean[tissue])) if tissue.any() else 0.0
    inner = g[1:-1, 1:-1]
    laplacian = np.abs(4 * inner - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])
    tissue_px = inner > TISSUE_LEVEL
    relative = float(np.median(laplacian[tissue_px] / inner[tissue_px])) if tissue_px.any() else 0.0
    return [cv, relative]


def _image_statistics_v2(
    raw: np.ndarray, model_input: np.ndarray, spec: InputSpec, pixelation: bool = False
) -> np.ndarray:
    """``image2d/2``; with ``pixelation``, ``image2d/3`` (see :func:`_raw_statistics`)."""
    u = model_input * spec.std + spec.mean
    decoded = _raw_statistics(raw, spec, pixelation)
    return np.array(decoded + _input_statistics(u) + _texture_statistics(u))


DENSE_LEVEL_COUNT = 5.0
"""A stored level counts towards the gap share only where the histogram smoothed over 5 levels
holds at least this many pixels per level: a Poisson count with mean 5 is zero with chance
0.7%, so the sparse histogram of a small frame (784 pixels of a 28 px image) is not read as
gaps."""
LEVEL_SMOOTHING = 5


def _level_statistics(raw: np.ndarray) -> list[float]:
    """``image2d/4``'s statistics of a decoded 8-bit frame (integers within 0..255): the share
    of empty levels among the densely used ones inside its 0.5-99.5th percentiles, and those
    percentiles over 255. A frame stored with more bits (a 12-bit radiograph may use only
    every fourth level of its range, as stored) or as floats reads as neutral: no gaps,
    full range."""
    crop = _central_crop(raw, RAW_CROP_PX)
    plane = crop[..., 1] if crop.ndim == 3 and crop.shape[-1] == 3 else crop
    if plane.size == 0 or not _is_8_bit(plane):
        return [0.0, 1.0, 0.0]
    levels = plane.astype(np.int64)
    low, high = (int(round(v)) for v in np.percentile(levels[::2, ::2], [0.5, 99.5]))
    counts = np.bincount(levels.ravel(), minlength=256)[low : high + 1].astype(np.float64)
    # Zero-padded so the smoothing keeps the length of a range narrower than its window.
    half = LEVEL_SMOOTHING // 2
    window = np.ones(LEVEL_SMOOTHING) / LEVEL_SMOOTHING
    smooth = np.convolve(np.pad(counts, half), window, mode="valid")
    dense = smooth >= DENSE_LEVEL_COUNT
    gaps = float(np.count_nonzero(counts[dense] == 0)) / int(dense.sum()) if dense.any() else 0.0
    return [gaps, high / 255.0, low / 255.0]


def _is_8_bit(plane: np.ndarray) -> bool:
    if plane.dtype == np.uint8:
        return True
    if plane.dtype.kind not in "uif":
        return False
    low, high = float(plane.min()), float(plane.max())
    if low < 0 or high > 255:
        return False
    return plane.dtype.kind in "ui" or bool(np.all(plane == np.floor(plane)))


def _image_statistics_v4(raw: np.ndarray, model_input: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``image2d/3`` and :func:`_level_statistics`."""
    v3 = _image_statistics_v2(raw, model_input, spec, pixelation=True)
    return np.concatenate([v3, _level_statistics(raw)])


_IMAGE_NAMES = (
    # decoded frame
    ("grey_levels_bits", -1, 0.1),
    ("jpeg_blockiness", 1, 0.02),
    ("staircase_decoded", 1, 1e-3),
    ("colour_chroma", 0, 0.02),
    # model input
    ("mean", 0, 1e-3),
    ("std", 0, 1e-3),
    ("skewness", 0, 1e-3),
    ("log1p_kurtosis", 0, 1e-3),
    ("p5", 0, 1e-3),
    ("p25", 0, 1e-3),
    ("p50", 0, 1e-3),
    ("p75", 0, 1e-3),
    ("p95", 0, 1e-3),
    ("share_black", 0, 1e-3),
    ("share_white", 0, 1e-3),
    ("gradient", 0, 1e-3),
    ("edge_density", 0, 1e-3),
    ("autocorr_lag1", 0, 1e-3),
    ("autocorr_lag2", 0, 1e-3),
    ("autocorr_lag4", 0, 1e-3),
    ("lag1_to_lag2_step", 0, 1e-3),
    ("saturation", 0, 0.02),
    ("flat_steps", 1, 1e-3),
    ("staircase", 1, 1e-3),
)
_TEXTURE_NAMES = (
    ("tissue_block_cv", 0, 1e-3),
    ("tissue_laplacian", 0, 1e-3),
)

_IMAGE_NAMES_V3 = (
    *_IMAGE_NAMES[:2],
    ("pixelation_decoded", 1, 0.05),
    *_IMAGE_NAMES[3:],
)
_LEVEL_NAMES = (
    ("level_gaps_decoded", 1, 0.02),
    ("high_level_decoded", -1, 0.01),
    ("low_level_decoded", 1, 0.01),
)

# --- 3D masks ----------------------------------------------------------------------------


def _mask_of(model_input: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The mask the model reads: its input thresholded at half its range."""
    mask: np.ndarray = (model_input[0] * spec.std + spec.mean) >= 0.5
    return mask


def _mask_floor(mask: np.ndarray) -> float:
    """The smallest value a mask statistic takes before its logarithm."""
    return 0.05 / float(max(mask.shape))


def _mask_statistics(raw: np.ndarray, model_input: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Shape of the mask the model reads (``model_input`` thresholded at half its range).

    All are logarithms, so shapes differing by a factor are equally far apart at any size.
    """
    return _mask_shape(_mask_of(model_input, spec))


def _mask_shape(mask: np.ndarray) -> np.ndarray:
    side = np.array(mask.shape, np.float64)
    floor = _mask_floor(mask)
    n = int(mask.sum())
    if n == 0:
        return np.full(len(_MASK_NAMES), np.log(floor))
    where = np.argwhere(mask).astype(np.float64)
    low, high = where.min(axis=0), where.max(axis=0)
    box = high - low + 1
    extents = np.sort(box / side)
    interior = mask.copy()
    padded = np.pad(mask, 1)
    for axis in range(3):
        for shift in (-1, 1):
            interior &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    surface = float(n - int(interior.sum())) / n
    centre = np.sort(np.abs(where.mean(axis=0) / side - 0.5 + 0.5 / side))
    cov = np.cov((where / side).T) if n > 1 else np.zeros((3, 3))
    eig = np.sort(np.linalg.eigvalsh(cov))[::-1] + floor**2
    values = [
        n / mask.size,
        *extents,
        n / float(np.prod(box)),
        surface,
        *centre,
        float(np.sqrt(eig[1] / eig[0])),
        float(np.sqrt(eig[2] / eig[0])),
    ]
    out: np.ndarray = np.log(np.maximum(np.array(values), floor))
    return out


_MASK_NAMES = (
    ("log_foreground_share", 0, 1e-3),
    ("log_extent_short", 0, 1e-3),
    ("log_extent_middle", 0, 1e-3),
    ("log_extent_long", 0, 1e-3),
    ("log_box_fill", 0, 1e-3),
    ("log_surface_share", 0, 1e-3),
    ("log_centre_offset_small", 0, 1e-3),
    ("log_centre_offset_middle", 0, 1e-3),
    ("log_centre_offset_large", 0, 1e-3),
    ("log_elongation_middle", 0, 1e-3),
    ("log_elongation_short", 0, 1e-3),
)

LOCAL_FORM_SIDE_VOXELS = 28
"""The local form is measured on the mask block-averaged to about this many voxels per side
(64³ by 2 x 2 x 2 blocks), so its neighbourhoods span the same share of the object at any
input size, and a 64³ input costs little more than a 28³ one."""
LOCAL_SIGMAS_VOXELS = (0.8, 1.2)
"""Widths of the Gaussian neighbourhoods (fine, coarse) the local form is measured in."""


def _mask_statistics_v2(raw: np.ndarray, model_input: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``mask3d/1``'s shape statistics and the local form of the mask, all logarithms.

    Around each foreground voxel, the foreground positions weighted by a Gaussian
    neighbourhood have a covariance with eigenvalues ``l1 >= l2 >= l3``: a sheet has one
    small (planarity ``(l2 - l3) / l1`` near 1), a tube two similar small ones (roundness
    ``sqrt(l3 / l2)`` near 1, linearity ``(l1 - l2) / l1`` high); each is averaged over the
    voxels (planarity at two widths). Along the grid axes, the shortest run of foreground
    through a voxel over the middle one is near 1 for a round cross-section and low for a
    flat one. The fill of the ellipsoid with the same covariance as the whole mask is near 1
    for a compact solid object, low for a branched or bent one. Adrenal glands (curved
    sheets) and vessel segments (tubes), which the global statistics confuse, differ most in
    these.
    """
    mask = _mask_of(model_input, spec)
    shape = _mask_shape(mask)
    floor = _mask_floor(mask)
    out: np.ndarray
    if not mask.any():
        out = np.r_[shape, np.full(len(_LOCAL_NAMES), np.log(floor))]
        return out
    small = _block_mean_mask(mask, max(1, max(mask.shape) // LOCAL_FORM_SIDE_VOXELS))
    # An object too thin to fill half a block is measured at full resolution.
    fine, coarse = (
        _local_eigenvalues(small if small.any() else mask, sigma) for sigma in LOCAL_SIGMAS_VOXELS
    )
    values = [
        float(_planarity(fine).mean()),
        float(_planarity(coarse).mean()),
        float(_roundness(coarse).mean()),
        float(_linearity(coarse).mean()),
        _cross_section_ratio(mask),
        _ellipsoid_fill(mask),
    ]
    out = np.r_[shape, np.log(np.maximum(np.array(values), floor))]
    return out


def _block_mean_mask(mask: np.ndarray, step: int) -> np.ndarray:
    """The mask shrunk by ``step`` along each axis: a block is foreground when at least half
    of it is (a partial block at the far end is dropped)."""
    if step == 1:
        return mask
    n = [s // step for s in mask.shape]
    counts = np.zeros(n, np.int32)
    for z, y, x in np.ndindex(step, step, step):  # strided slices: faster than a reshape
        counts += mask[z : n[0] * step : step, y : n[1] * step : step, x : n[2] * step : step]
    out: np.ndarray = 2 * counts >= step**3
    return out


def _planarity(eig: np.ndarray) -> np.ndarray:
    out: np.ndarray = (eig[:, 1] - eig[:, 2]) / np.maximum(eig[:, 0], 1e-12)
    return out


def _linearity(eig: np.ndarray) -> np.ndarray:
    out: np.ndarray = (eig[:, 0] - eig[:, 1]) / np.maximum(eig[:, 0], 1e-12)
    return out


def _roundness(eig: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.sqrt(eig[:, 2] / np.maximum(eig[:, 1], 1e-12))
    return out


def _bounding_box(mask: np.ndarray, margin: int = 0) -> np.ndarray:
    """The mask cropped to its foreground's bounding box and ``margin`` voxels around it."""
    span = []
    for axis, n in enumerate(mask.shape):
        used = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        span.append(slice(max(int(used[0]) - margin, 0), min(int(used[-1]) + margin + 1, n)))
    out: np.ndarray = mask[tuple(span)]
    return out


def _local_eigenvalues(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Per foreground voxel, the eigenvalues (descending, voxels²) of the covariance of the
    foreground positions around it, weighted by a Gaussian of ``sigma`` voxels (cut at 2.5
    sigma): round, so a tube reads the same along an axis or a diagonal.

    The weighted moments (count, three first, six second) are separable filters, computed
    one axis at a time on the bounding box (beyond it all is background), sharing the
    partial results.
    """
    radius = int(np.ceil(2.5 * sigma))
    box = _bounding_box(mask, radius)
    offset = np.arange(-radius, radius + 1, dtype=np.float64)
    weight = np.exp(-(offset**2) / (2 * sigma**2))
    kernels = (weight, weight * offset, weight * offset**2)
    partial: dict[tuple[int, ...], np.ndarray] = {(): box.astype(np.float64)}

    def moment(powers: tuple[int, ...]) -> np.ndarray:
        """The box filtered with ``offset**power`` along each axis in turn."""
        if powers not in partial:
            axis = len(powers) - 1
            partial[powers] = _correlate(moment(powers[:-1]), axis, kernels[powers[-1]])
        return partial[powers]

    unit = [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    count = moment((0, 0, 0))[box]
    mean = [moment(u)[box] / count for u in unit]
    cov = np.empty((len(count), 3, 3))
    for i in range(3):
        for j in range(i, 3):
            powers = tuple(a + b for a, b in zip(unit[i], unit[j], strict=True))
            cov[:, i, j] = cov[:, j, i] = moment(powers)[box] / count - mean[i] * mean[j]
    return _symmetric_eigenvalues(cov)


def _correlate(a: np.ndarray, axis: int, kernel: np.ndarray) -> np.ndarray:
    """``a`` correlated with an odd-length ``kernel`` along ``axis``, zero beyond the edge."""
    radius = len(kernel) // 2
    pad = [(0, 0)] * a.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(a, pad)
    n = a.shape[axis]
    window = [slice(None)] * a.ndim
    out = np.zeros_like(a)
    for k, w in enumerate(kernel):
        window[axis] = slice(k, k + n)
        out += w * padded[tuple(window)]
    return out


def _symmetric_eigenvalues(c: np.ndarray) -> np.ndarray:
    """Eigenvalues (descending, at least 0) of symmetric 3 x 3 matrices ``(N, 3, 3)``, in
    closed form (Smith, Comm. ACM 4:168, 1961): far faster than a batched LAPACK call for
    thousands of small matrices."""
    q = np.trace(c, axis1=1, axis2=2) / 3
    off = c[:, 0, 1] ** 2 + c[:, 0, 2] ** 2 + c[:, 1, 2] ** 2
    diagonal = c[:, [0, 1, 2], [0, 1, 2]] - q[:, None]
    p = np.sqrt(((diagonal**2).sum(axis=1) + 2 * off) / 6)
    b = (c - q[:, None, None] * np.eye(3)) / np.where(p > 0, p, 1.0)[:, None, None]
    half_det = np.clip(np.linalg.det(b) / 2, -1.0, 1.0)
    phi = np.arccos(half_det) / 3
    largest = q + 2 * p * np.cos(phi)
    smallest = q + 2 * p * np.cos(phi + 2 * np.pi / 3)
    out: np.ndarray = np.maximum(np.stack([largest, 3 * q - largest - smallest, smallest], 1), 0)
    return out


def _runs(mask: np.ndarray, axis: int) -> np.ndarray:
    """Length of the run of foreground along ``axis`` through each voxel (0 outside)."""
    lines = np.moveaxis(mask, axis, -1)
    shape = lines.shape
    # A background voxel after each line keeps runs from joining across lines.
    flat = np.pad(lines.reshape(-1, shape[-1]), ((0, 0), (0, 1))).ravel()
    run = np.cumsum(flat & ~np.r_[False, flat[:-1]])
    length = np.bincount(run[flat], minlength=int(run[-1]) + 1)
    runs = np.where(flat, length[run], 0).reshape(-1, shape[-1] + 1)[:, :-1]
    return np.moveaxis(runs.reshape(shape), -1, axis)


def _cross_section_ratio(mask: np.ndarray) -> float:
    """Mean over foreground voxels of the shortest over the middle of the three axis runs
    through it."""
    box = _bounding_box(mask)
    runs = np.sort(np.stack([_runs(box, axis)[box] for axis in range(3)], axis=1), axis=1)
    return float(np.mean(runs[:, 0] / runs[:, 1]))


def _ellipsoid_fill(mask: np.ndarray) -> float:
    """Foreground voxels over the volume of the solid ellipsoid with the same covariance
    (a solid ellipsoid has variance a²/5 along a semi-axis a); each variance is at least a
    voxel's own (1/12), so a sheet or a single voxel has a finite fill."""
    where = np.argwhere(mask).astype(np.float64)
    cov = np.cov(where.T) if len(where) > 1 else np.zeros((3, 3))
    variances = np.maximum(np.linalg.eigvalsh(cov), 1 / 12)
    return len(where) / (4 / 3 * np.pi * float(np.sqrt(np.prod(5 * variances))))


_LOCAL_NAMES = (
    ("log_local_planarity_fine", 0, 1e-3),
    ("log_local_planarity_coarse", 0, 1e-3),
    ("log_local_roundness_coarse", 0, 1e-3),
    ("log_local_linearity_coarse", 0, 1e-3),
    ("log_cross_section_ratio", 0, 1e-3),
    ("log_ellipsoid_fill", 0, 1e-3),
)


def _set(
    kind: str,
    table: tuple[tuple[str, int, float], ...],
    compute: Callable[[np.ndarray, np.ndarray, InputSpec], np.ndarray],
    rank: bool = True,
) -> StatisticSet:
    return StatisticSet(
        kind,
        tuple(t[0] for t in table),
        tuple(t[1] for t in table),
        tuple(t[2] for t in table),
        compute,
        rank,
    )


STATISTICS: dict[str, StatisticSet] = {
    "image2d/1": _set("image2d/1", _IMAGE_NAMES, _image_statistics),
    "image2d/2": _set("image2d/2", _IMAGE_NAMES + _TEXTURE_NAMES, _image_statistics_v2),
    "image2d/3": _set(
        "image2d/3",
        _IMAGE_NAMES_V3 + _TEXTURE_NAMES,
        partial(_image_statistics_v2, pixelation=True),
    ),
    "image2d/4": _set(
        "image2d/4", _IMAGE_NAMES_V3 + _TEXTURE_NAMES + _LEVEL_NAMES, _image_statistics_v4
    ),
    # Mask shapes keep robust z-scores: rank-Gaussian ones lowered vessel_mra_3d's AUROC
    # against adrenal masks from 0.9946 to 0.9899 (benchmarks/trust.md, 2026-12-02).
    "mask3d/1": _set("mask3d/1", _MASK_NAMES, _mask_statistics, rank=False),
    "mask3d/2": _set("mask3d/2", _MASK_NAMES + _LOCAL_NAMES, _mask_statistics_v2, rank=False),
}


DESCRIPTIONS: dict[str, tuple[str, str]] = {
    # name: (what a value above the training images' says, what a value below them says)
    "grey_levels_bits": ("more grey levels", "few grey levels (contrast reduced)"),
    "jpeg_blockiness": ("JPEG block edges (heavy compression)", "fewer JPEG block edges"),
    "staircase_decoded": ("flat steps (pixelated)", "fewer flat steps"),
    "pixelation_decoded": ("pixelated (enlarged by nearest neighbour)", "less pixelated"),
    "colour_chroma": ("more colour", "less colour"),
    "mean": ("brighter", "darker"),
    "std": ("wider intensity spread", "narrower intensity spread"),
    "skewness": ("mostly dark with a bright tail", "mostly bright with a dark tail"),
    "log1p_kurtosis": ("intensity histogram peaked", "intensity histogram flat"),
    "p5": ("dark tones lifted", "dark tones deepened"),
    "p25": ("lower tones brighter", "lower tones darker"),
    "p50": ("mid tones brighter", "mid tones darker"),
    "p75": ("upper tones brighter", "upper tones darker"),
    "p95": ("bright tones brighter", "bright tones darker"),
    "share_black": ("more black background", "less black background"),
    "share_white": ("more clipped white", "less clipped white"),
    "gradient": ("sharper or noisier", "blurred or smoother"),
    "edge_density": ("more edges (noise or texture)", "fewer edges (blur)"),
    "autocorr_lag1": ("smoother (blur)", "grainier (noise)"),
    "autocorr_lag2": ("smoother (blur)", "grainier (noise)"),
    "autocorr_lag4": ("smoother at larger scales", "less coherent at larger scales"),
    "lag1_to_lag2_step": ("pixel-level noise", "smooth at the pixel level (blur)"),
    "saturation": ("more colour", "less colour"),
    "flat_steps": ("flat steps (pixelated or posterized)", "fewer flat steps"),
    "staircase": ("staircase steps (pixelated)", "fewer staircase steps"),
    "tissue_block_cv": ("grainy texture (speckle or noise)", "smooth texture"),
    "tissue_laplacian": ("grainy texture (speckle or noise)", "smooth texture"),
    "level_gaps_decoded": (
        "empty grey levels (a contrast, gamma or brightness change)",
        "fewer empty grey levels",
    ),
    "high_level_decoded": ("brighter top level", "dimmed (brightest levels unused)"),
    "low_level_decoded": ("black level lifted", "deeper black level"),
    "log_foreground_share": ("larger object", "smaller object"),
    "log_extent_short": ("thicker object", "thinner object"),
    "log_extent_middle": ("wider object", "narrower object"),
    "log_extent_long": ("longer object", "shorter object"),
    "log_box_fill": ("fills its box more", "fills its box less"),
    "log_surface_share": ("rougher or thinner surface", "smoother or thicker surface"),
    "log_centre_offset_small": ("off centre", "more centred"),
    "log_centre_offset_middle": ("off centre", "more centred"),
    "log_centre_offset_large": ("off centre", "more centred"),
    "log_elongation_middle": ("less elongated", "more elongated"),
    "log_elongation_short": ("less flat", "flatter"),
    "log_local_planarity_fine": ("more sheet-like", "less sheet-like"),
    "log_local_planarity_coarse": ("more sheet-like", "less sheet-like"),
    "log_local_roundness_coarse": ("rounder cross-section", "flatter cross-section"),
    "log_local_linearity_coarse": ("more tube-like", "less tube-like"),
    "log_cross_section_ratio": ("rounder cross-section", "flatter cross-section"),
    "log_ellipsoid_fill": ("more compact", "more branched or bent"),
}
"""Plain words for each statistic's departure from training, shown to the reader with a
low-trust flag (:func:`radlens.inference.ood.unusual_statistics`)."""


def describe(name: str, z: float) -> str:
    """Plain words for statistic ``name`` at robust z-score ``z`` (sign: above or below the
    training images).

    Example:
        >>> describe("level_gaps_decoded", 12.0)
        'empty grey levels (a contrast, gamma or brightness change)'
        >>> describe("mean", -4.0)
        'darker'
    """
    above, below = DESCRIPTIONS.get(name, (f"{name} higher", f"{name} lower"))
    return above if z > 0 else below


def statistic_set_for(card: ModelCard) -> StatisticSet | None:
    """The set ``radlens ood`` fits for a model: images for a 2D model, shapes for a model
    that reads segmentation masks; None for a 3D model of intensities (none defined yet).

    A fitted card names its set (``ood.inputs.statistics``) and is scored with that one, so
    cards fitted with an earlier version (``image2d/1`` to ``/3``, ``mask3d/1``) keep working until
    refitted.
    """
    if card.input.dims == 2:
        return STATISTICS["image2d/4"]
    if card.applies_to.modalities == ("SEG",):
        return STATISTICS["mask3d/2"]
    return None
