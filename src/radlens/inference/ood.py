"""Out-of-distribution scores (numpy only): the model's features, and statistics of its input.

* The feature score of an input is its smallest Mahalanobis distance to a class mean of the
  training features, under one shared covariance (Lee et al., "A Simple Unified Framework for
  Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018).
* The input score is the Mahalanobis distance of the input's statistics
  (:mod:`radlens.inference.input_stats`) to their training distribution: each statistic is
  first put on a common scale, one-sided where only degradation counts, then one mean and a
  shrunk covariance are fitted. Since 2026-12-02 the scale is rank-Gaussian (the normal
  quantile of the statistic's rank among the training images, :func:`rank_gaussian`; beyond
  the training range it grows linearly in robust spreads); before, a robust z-score (median,
  scaled MAD), which let the heavy tails of some statistics in training (clipped white,
  black background) swamp a shift in a tightly distributed one. Files fitted before keep
  their robust z-scores (no ``quantiles`` in them).
* The decision combines the two (:func:`combined_score`): flagged when the product of the
  two scores' multiples of their medians on own validation images is high (both somewhat
  unusual), or when either score alone is extreme (beyond its largest validation value),
  with the product threshold set so 5% of validation images are flagged in all.

Statistics are fitted by ``radlens ood`` (:mod:`radlens.training.ood`) and stored beside the
model; the card holds their hashes, medians and thresholds.

Example:
    >>> stats = OodStats(np.zeros((2, 3)), np.eye(3))
    >>> mahalanobis_scores(np.array([[0.0, 0.0, 2.0]]), stats).round(3)
    array([2.])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist
from typing import Any, TypeVar

import numpy as np

from radlens.errors import ModelIntegrityError
from radlens.inference.input_stats import STATISTICS, StatisticSet, describe, statistics_of
from radlens.models.card import InputStatsSpec, ModelCard, OodSpec
from radlens.models.registry import sha256_of

LOW_TRUST = "input unlike training data — low trust"
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class InputStats:
    """The training distribution of one statistic set (:mod:`radlens.inference.input_stats`).

    Attributes:
        kind: the statistic set, e.g. ``image2d/1``.
        centre, scale: per statistic, the training median and robust spread (scaled MAD,
            floored at the set's ``min_scale``).
        mean, precision: mean and shrunk inverse covariance of the training z-scores.
        quantiles: ``(K, D)`` training quantiles of each statistic (``K`` up to
            ``RANK_GRID``): with them z-scores are rank-Gaussian (:func:`rank_gaussian`),
            without them (files fitted before 2026-12-02) robust (:func:`robust_z`).
    """

    kind: str
    centre: np.ndarray = field(repr=False)
    scale: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)
    quantiles: np.ndarray | None = field(default=None, repr=False)

    @property
    def statistics(self) -> StatisticSet:
        return STATISTICS[self.kind]


@dataclass(frozen=True, eq=False)
class OodStats:
    """Class means ``(K, D)`` and the shared precision matrix ``(D, D)`` of the features, and
    the input statistics' distribution when the card has one."""

    means: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)
    inputs: InputStats | None = None


def fit_stats(features: np.ndarray, labels: np.ndarray, shrinkage: float = 0.1) -> OodStats:
    """Class means and a shrunk shared covariance of training features.

    ``shrinkage`` blends the covariance with its mean variance times the identity, which
    keeps it invertible when features outnumber images.
    """
    x = np.asarray(features, np.float64)
    classes = np.unique(labels)
    means = np.stack([x[labels == k].mean(axis=0) for k in classes])
    centred = x - means[np.searchsorted(classes, labels)]
    cov = centred.T @ centred / max(1, len(x) - len(classes))
    return OodStats(means, _shrunk_precision(cov, shrinkage))


def _shrunk_precision(cov: np.ndarray, shrinkage: float) -> np.ndarray:
    target = np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    shrunk = (1 - shrinkage) * cov + shrinkage * target
    out: np.ndarray = np.linalg.pinv(shrunk, hermitian=True)
    return out


def mahalanobis_scores(features: np.ndarray, stats: OodStats) -> np.ndarray:
    """Smallest Mahalanobis distance of each row to a class mean."""
    x = np.asarray(features, np.float64)
    best = np.full(len(x), np.inf)
    for mean in stats.means:
        d = x - mean
        best = np.minimum(best, np.einsum("nd,de,ne->n", d, stats.precision, d))
    out: np.ndarray = np.sqrt(np.maximum(best, 0.0))
    return out


Z_LIMIT = 1e3
"""z-scores are clipped here so one absurd statistic cannot overflow the distance."""


def robust_z(values: np.ndarray, stats: InputStats) -> np.ndarray:
    """Robust z-scores of statistics ``(N, D)``; a one-sided statistic's good side is 0."""
    z = (np.asarray(values, np.float64) - stats.centre) / stats.scale
    direction = np.array(stats.statistics.direction)
    z = np.where((direction > 0) & (z < 0), 0.0, z)
    z = np.where((direction < 0) & (z > 0), 0.0, z)
    out: np.ndarray = np.clip(z, -Z_LIMIT, Z_LIMIT)
    return out


RANK_GRID = 513
"""At most this many training quantiles per statistic are kept (all training values when there
are fewer): rank-Gaussian z-scores inside the training range then reach about +-3.1."""


def rank_gaussian(values: np.ndarray, stats: InputStats) -> np.ndarray:
    """Rank-Gaussian z-scores of statistics ``(N, D)``: the normal quantile of each value's
    mid-rank among the training quantiles (``(r + 0.5) / (K + 1)``, ties sharing their
    middle rank); below or above every training value, the z of the end value plus the
    distance beyond it in robust spreads (``scale``, floored at the set's ``min_scale``), so
    a value far outside training stays far and one a hair beyond a constant statistic stays
    near. A one-sided statistic's good side is 0.

    Example:
        >>> fitted = fit_input_stats(np.arange(200.0)[:, None].repeat(29, 1), "image2d/4")
        >>> z = rank_gaussian(np.array([[100.0] * 29, [400.0] * 29]), fitted)
        >>> float(z[0, 5].round(1)), bool(z[1, 5] > 3)
        (0.0, True)
    """
    assert stats.quantiles is not None
    x = np.asarray(values, np.float64)
    grid = stats.quantiles
    k = len(grid)
    table = _mid_rank_quantiles(k)
    z = np.empty_like(x)
    for j in range(x.shape[1]):
        col, v = grid[:, j], x[:, j]
        twice = np.searchsorted(col, v, "left") + np.searchsorted(col, v, "right")
        zj = table[twice]
        # Beyond the range: the z of the end value itself plus the distance in robust spreads,
        # so a value a hair beyond a statistic that never varied stays near it.
        low = table[int(np.searchsorted(col, col[0], "right"))]
        high = table[int(np.searchsorted(col, col[-1], "left")) + k]
        zj = np.where(v < col[0], low - (col[0] - v) / stats.scale[j], zj)
        z[:, j] = np.where(v > col[-1], high + (v - col[-1]) / stats.scale[j], zj)
    direction = np.array(stats.statistics.direction)
    z = np.where((direction > 0) & (z < 0), 0.0, z)
    z = np.where((direction < 0) & (z > 0), 0.0, z)
    out: np.ndarray = np.clip(z, -Z_LIMIT, Z_LIMIT)
    return out


@lru_cache(maxsize=8)
def _mid_rank_quantiles(k: int) -> np.ndarray:
    """The normal quantile of every possible mid-rank r = 0, 0.5, ..., k among ``k`` training
    quantiles, indexed by 2r."""
    return np.array([NormalDist().inv_cdf((r / 2 + 0.5) / (k + 1)) for r in range(2 * k + 1)])


def standardized(values: np.ndarray, stats: InputStats) -> np.ndarray:
    """The z-scores the input score is computed on: rank-Gaussian when the fitted file has
    quantiles, robust otherwise."""
    return robust_z(values, stats) if stats.quantiles is None else rank_gaussian(values, stats)


def fit_input_stats(
    values: np.ndarray, kind: str, shrinkage: float = 0.1, rank: bool | None = None
) -> InputStats:
    """The distribution of training statistics ``(N, D)`` of the set ``kind``, on
    rank-Gaussian z-scores or (``rank=False``; by default the set's own ``rank``: the mask
    shapes) robust ones.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> fitted = fit_input_stats(rng.normal(size=(100, 24)), "image2d/1")
        >>> bool(input_scores(np.full((1, 24), 9.0), fitted)[0] > 10)
        True
    """
    x = np.asarray(values, np.float64)
    statistics = STATISTICS[kind]
    if x.ndim != 2 or x.shape[1] != len(statistics.names) or len(x) < 2:
        raise ValueError(
            f"{kind}: need (N >= 2, {len(statistics.names)}) statistics, got {x.shape}"
        )
    centre = np.median(x, axis=0)
    mad = 1.4826 * np.median(np.abs(x - centre), axis=0)
    spread = np.where(mad > 0, mad, x.std(axis=0))
    scale = np.maximum(spread, np.array(statistics.min_scale))
    quantiles = None
    if statistics.rank if rank is None else rank:
        grid = np.linspace(0.0, 1.0, min(RANK_GRID, len(x)))
        quantiles = np.quantile(x, grid, axis=0, method="inverted_cdf")
    partial = InputStats(kind, centre, scale, np.zeros(x.shape[1]), np.eye(x.shape[1]), quantiles)
    z = standardized(x, partial)
    cov = np.cov(z.T)
    precision = _shrunk_precision(cov, shrinkage)
    return InputStats(kind, centre, scale, z.mean(axis=0), precision, quantiles)


def input_scores(values: np.ndarray, stats: InputStats) -> np.ndarray:
    """Mahalanobis distance of each row of statistics to the training distribution."""
    d = standardized(values, stats) - stats.mean
    out: np.ndarray = np.sqrt(np.maximum(np.einsum("nd,de,ne->n", d, stats.precision, d), 0.0))
    return out


def combined_score(feature: float, inputs: float, spec: InputStatsSpec) -> float:
    """The decision score, as a multiple of its threshold (flag at 1 or more).

    The largest of: each score over its own threshold, and the product of the two scores'
    multiples of their validation medians (each floored at 1, so a typical value of one
    cannot offset an unusual value of the other) over the product threshold.

    Example:
        >>> spec = InputStatsSpec(
        ...     "image2d/1", "ood_inputs.npz", "0" * 64, feature_median=8.0, input_median=4.0,
        ...     feature_threshold=16.0, input_threshold=8.0, product_threshold=2.0,
        ...     guard_quantile=0.99, val_flag_rate=0.05)
        >>> combined_score(8.0, 4.0, spec)  # both typical
        0.5
        >>> combined_score(12.0, 6.0, spec)  # both somewhat unusual: 1.5 x 1.5 / 2
        1.125
        >>> combined_score(24.0, 2.0, spec)  # the feature score alone is extreme
        1.5
    """
    product = max(feature / spec.feature_median, 1.0) * max(inputs / spec.input_median, 1.0)
    return max(
        feature / spec.feature_threshold,
        inputs / spec.input_threshold,
        product / spec.product_threshold,
    )


REASON_Z = 3.0
"""A statistic is named as a reason for a flag at this z-score (:func:`standardized`: on the
rank-Gaussian scale, beyond nearly every training image), on its degraded side for a
one-sided one."""
LEANING_Z = 2.0
"""When no statistic of a flagged input reaches ``REASON_Z`` (a flag from two somewhat unusual
scores together), those at least this far are named instead, marked "somewhat"."""
MAX_REASONS = 3


def unusual_statistics(
    values: np.ndarray, stats: InputStats, floor: float = REASON_Z
) -> tuple[tuple[str, float], ...]:
    """The statistics of one input (``values``, ``(D,)``) furthest from training, as
    ``(name, z-score)`` on the input score's scale (:func:`standardized`), largest first:
    those at least ``floor`` away, at most ``MAX_REASONS``, each saying something the ones
    before it do not (autocorrelation at lags 1 and 2 both read "grainier (noise)": only the
    larger is named).

    Example:
        >>> fitted = fit_input_stats(np.random.default_rng(0).normal(size=(200, 29)), "image2d/4")
        >>> values = np.zeros(29)
        >>> values[26] = 9.0  # many empty grey levels
        >>> unusual_statistics(values, fitted)[0][0]
        'level_gaps_decoded'
    """
    z = standardized(np.asarray(values, np.float64)[None], stats)[0]
    names = stats.statistics.names
    found: dict[str, tuple[str, float]] = {}  # plain words -> (name, z)
    for i in np.argsort(-np.abs(z), kind="stable"):
        if abs(z[i]) < floor or len(found) == MAX_REASONS:
            break
        found.setdefault(describe(names[i], float(z[i])), (names[i], round(float(z[i]), 2)))
    return tuple(found.values())


def flag_reasons(values: np.ndarray, stats: InputStats) -> tuple[tuple[str, float], ...]:
    """The reasons a flagged input carries: its statistics at least ``REASON_Z`` from
    training, or, when none is, those at least ``LEANING_Z``."""
    return unusual_statistics(values, stats) or unusual_statistics(values, stats, LEANING_Z)


def reasons_warning(reasons: tuple[tuple[str, float], ...]) -> tuple[str, ...]:
    """The warning that says in plain words how a flagged input differs from training (none
    without reasons).

    Example:
        >>> reasons_warning((("mean", -4.0), ("gradient", -3.5)))
        ('unlike training data in: darker; blurred or smoother',)
    """
    if not reasons:
        return ()
    words = [describe(n, z) + ("" if abs(z) >= REASON_Z else LEANING) for n, z in reasons]
    return (UNLIKE_IN + "; ".join(words),)


UNLIKE_IN = "unlike training data in: "
LEANING = " (somewhat)"
"""Marks a reason under ``REASON_Z`` (one of those at least ``LEANING_Z``) in plain words."""


@dataclass(frozen=True)
class OodReading:
    """The out-of-distribution verdict on one input.

    Attributes:
        score: the decision score as a multiple of its threshold (flagged at 1 or more).
        feature, inputs: the feature and input-statistics distances (``inputs`` None when the
            card has no input statistics).
        flagged: ``score >= 1``.
        reasons: for a flagged input with input statistics, the statistics furthest from
            training (:func:`flag_reasons`); empty otherwise.
    """

    score: float | None = None
    feature: float | None = None
    inputs: float | None = None
    flagged: bool = False
    reasons: tuple[tuple[str, float], ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        """What a flagged reading adds to its finding's warnings: ``LOW_TRUST`` and, with
        reasons, their plain words (:func:`reasons_warning`); nothing when not flagged."""
        return ((LOW_TRUST,) + reasons_warning(self.reasons)) if self.flagged else ()


def read_ood(
    card: ModelCard,
    stats: OodStats | None,
    features: np.ndarray | None,
    raws: list[np.ndarray],
    batch: np.ndarray,
) -> list[OodReading]:
    """One :class:`OodReading` per input: ``features`` is the model's ``features`` output,
    ``raws`` the decoded images and ``batch`` the model inputs made from them.

    Without the card's ``ood`` spec, its statistics or the features output, every reading is
    empty (no score, not flagged). A card without input statistics decides on the feature
    score alone, at ``ood.threshold``.
    """
    spec = card.ood
    if spec is None or stats is None or features is None:
        return [OodReading() for _ in raws]
    feature = mahalanobis_scores(features, stats)
    if spec.inputs is None or stats.inputs is None:
        return [
            OodReading(float(f) / spec.threshold, float(f), None, bool(f >= spec.threshold))
            for f in feature
        ]
    values = np.stack(
        [
            statistics_of(stats.inputs.statistics, r, x, card.input)
            for r, x in zip(raws, batch, strict=True)
        ]
    )
    readings = []
    for f, i, v in zip(feature, input_scores(values, stats.inputs), values, strict=True):
        score = combined_score(float(f), float(i), spec.inputs)
        flagged = score >= 1.0
        reasons = flag_reasons(v, stats.inputs) if flagged else ()
        readings.append(OodReading(score, float(f), float(i), flagged, reasons))
    return readings


def save_stats(stats: OodStats, path: Path) -> None:
    """Write ``ood.npz`` in float32 (half the size; scores agree to ~1e-6 relative)."""
    np.savez(
        path, means=stats.means.astype(np.float32), precision=stats.precision.astype(np.float32)
    )


def save_input_stats(stats: InputStats, path: Path) -> None:
    """Write the input statistics' distribution (``ood_inputs.npz``), naming the set."""
    arrays: dict[str, Any] = {
        "kind": np.array(stats.kind),
        "names": np.array(stats.statistics.names),
        "centre": stats.centre,
        "scale": stats.scale,
        "mean": stats.mean,
        "precision": stats.precision,
    }
    if stats.quantiles is not None:
        arrays["quantiles"] = stats.quantiles
    np.savez(path, **arrays)


def load_input_stats(path: Path) -> InputStats:
    """Read ``ood_inputs.npz``.

    Raises:
        ModelIntegrityError: the file is unreadable, or its statistics are not the ones this
            radlens computes (the set changed since the fit: rerun ``radlens ood``).
    """
    try:
        with np.load(path) as data:
            kind = str(data["kind"])
            names = tuple(str(n) for n in data["names"])
            centre, scale, mean, precision = (
                data[k].astype(np.float64) for k in ("centre", "scale", "mean", "precision")
            )
            quantiles = data["quantiles"].astype(np.float64) if "quantiles" in data else None
    except (OSError, KeyError, ValueError) as exc:
        raise ModelIntegrityError(f"{path}: cannot read input statistics: {exc}") from exc
    if kind not in STATISTICS or STATISTICS[kind].names != names:
        raise ModelIntegrityError(
            f"{path}: input statistics {kind!r} differ from this radlens's; rerun radlens ood"
        )
    if quantiles is not None and (quantiles.ndim != 2 or quantiles.shape[1] != len(names)):
        raise ModelIntegrityError(f"{path}: quantiles of shape {quantiles.shape} do not fit")
    return InputStats(kind, centre, scale, mean, precision, quantiles)


def stats_for(folder: Path, spec: OodSpec | None) -> OodStats | None:
    """The statistics a card's ``ood`` spec names (features, and the input statistics when
    the spec has them), hash-verified; cached per file.

    Raises:
        ModelIntegrityError: a file is missing or differs from the card.
    """
    if spec is None:
        return None
    features = _verified(folder / spec.stats_file, spec.sha256, load_stats)
    if spec.inputs is None:
        return features
    inputs = _verified(folder / spec.inputs.stats_file, spec.inputs.sha256, load_input_stats)
    return OodStats(features.means, features.precision, inputs)


def verified_input_stats(path: Path, sha256: str) -> InputStats:
    """``ood_inputs.npz`` at ``path``, hash-verified and cached (models whose score is the
    input statistics alone: segmentation).

    Raises:
        ModelIntegrityError: the file is missing or differs from the card.
    """
    return _verified(path, sha256, load_input_stats)


def card_input_stats(folder: Path, card: ModelCard) -> InputStats | None:
    """The hash-verified statistics ``card.input_ood`` names, from the model ``folder``.

    Example:
        >>> stats = card_input_stats(model.folder, model.card)  # doctest: +SKIP

    Raises:
        ModelIntegrityError: the file is missing or differs from the card.
    """
    spec = card.input_ood
    return None if spec is None else verified_input_stats(folder / spec.stats_file, spec.sha256)


def card_input_ood(
    card: ModelCard, stats: InputStats | None, raw: np.ndarray, model_input: np.ndarray
) -> OodReading:
    """The reading of an input's statistics alone under the card's ``card.input_ood``
    (``score``: distance / threshold, ``inputs``: the distance), or an empty one without it
    or its statistics."""
    spec = card.input_ood
    if spec is None or stats is None:
        return OodReading()
    values = statistics_of(stats.statistics, raw, model_input, card.input)
    distance = float(input_scores(values[None], stats)[0])
    score = distance / spec.threshold
    reasons = flag_reasons(values, stats) if score >= 1.0 else ()
    return OodReading(score, None, distance, score >= 1.0, reasons)


def _verified(path: Path, sha256: str, load: Callable[[Path], T]) -> T:
    key = (str(path.resolve()), sha256)
    if key not in _CACHE:
        if not path.exists() or sha256_of(path) != sha256:
            raise ModelIntegrityError(
                f"{path}: OOD statistics missing or changed since the card; rerun radlens ood"
            )
        _CACHE[key] = load(path)
    found: T = _CACHE[key]
    return found


_CACHE: dict[tuple[str, str], Any] = {}


def load_stats(path: Path) -> OodStats:
    """Read ``ood.npz``.

    Raises:
        ModelIntegrityError: the file is missing or unreadable.
    """
    try:
        with np.load(path) as data:
            return OodStats(data["means"].astype(np.float64), data["precision"].astype(np.float64))
    except (OSError, KeyError, ValueError) as exc:
        raise ModelIntegrityError(f"{path}: cannot read OOD statistics: {exc}") from exc
