"""Drift of the out-of-distribution scores of a stream of images against the training set.

A model card does not carry its validation images' scores, but it does carry quantiles of
them (``radlens ood``, :mod:`radlens.training.ood`), and quantiles define bins with known
expected shares. For the card's ``ood`` spec with input statistics, the bins are:

* feature distance: edges ``feature_median``, ``threshold``, ``feature_threshold``;
  expected shares 0.5, 0.5 - r, q - (1 - r), 1 - q;
* input distance: edges ``input_median``, ``input_threshold``; shares 0.5, q - 0.5, 1 - q;
* decision score: edge 1 (the flag); shares 1 - f, f;

with ``r`` = ``ood.val_flag_rate`` (the feature threshold's share above), ``q`` =
``guard_quantile`` and ``f`` = the decision's ``val_flag_rate``. A card without input
statistics has only the decision score (the feature distance over ``threshold``). A model
whose score is the input statistics alone (``segmentation.ood_inputs``,
``detection.ood_inputs``) has the input distance, edges ``median`` and ``threshold``,
shares 0.5, 0.5 - f, f (its decision is that distance over ``threshold``: the same bins).

Each statistic the stream has is compared with its bins by a G-test (likelihood-ratio
goodness of fit, chi-square with bins - 1 degrees of freedom) and the population stability
index (PSI, ``sum((o - e) * ln(o / e))`` over bin shares, the observed shares smoothed by
half a count). A stream **drifts** when, for some statistic, the G-test is significant after
a Bonferroni correction over the statistics tested (``p * k < alpha``) *and* the PSI is at
least ``psi_alert`` (0.2 by default: beyond the customary "moderate shift" of 0.1-0.25),
so that neither a small sample nor a huge one with a negligible shift raises an alert,
*and* the shift is upwards (``shift``: the mean bin of the stream minus that of the
reference is positive). OOD scores measure unlikeness to the training data: a stream that
scores *lower* than the validation images (training images sent again, say) is more typical,
not a reason to trust it less, and is reported without an alert.
Fewer than ``min_images`` images are never judged.

Example:
    >>> spec = OodSpec("mahalanobis", "ood.npz", "0" * 64, threshold=10.0, val_flag_rate=0.05)
    >>> clean = [OodSample(0.5)] * 95 + [OodSample(1.5)] * 5
    >>> drift(clean, spec).alert, drift([OodSample(1.5)] * 100, spec).alert
    (False, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from radlens.models.card import InputOodSpec, OodSpec

PSI_ALERT = 0.2
ALPHA = 0.01
MIN_IMAGES = 30


def upper_regularized_gamma(a: float, x: float) -> float:
    """``Q(a, x) = Gamma(a, x) / Gamma(a)``, so ``Q(k / 2, g / 2)`` is the chi-square
    survival function with ``k`` degrees of freedom at ``g``.

    The series of ``P = 1 - Q`` for ``x < a + 1``, the continued fraction of ``Q``
    (modified Lentz) otherwise, each to 1e-15 relative (Press et al., Numerical Recipes,
    3rd ed., 6.2). Plain Python, so drift tests need no scipy.

    Example:
        >>> round(upper_regularized_gamma(0.5, 3.841458820694124 / 2), 6)  # chi2(1): 5%
        0.05
        >>> round(upper_regularized_gamma(1.0, 2.0), 12) == round(math.exp(-2.0), 12)
        True
    """
    if a <= 0 or x < 0:
        raise ValueError(f"need a > 0 and x >= 0, got a={a}, x={x}")
    if x == 0:
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


@dataclass(frozen=True)
class OodSample:
    """The OOD scores of one image (None where the finding did not record one).

    Attributes:
        decision: the decision score, a multiple of its threshold (flag at 1).
        feature, inputs: the feature and input-statistics distances.
    """

    decision: float | None
    feature: float | None = None
    inputs: float | None = None


@dataclass(frozen=True)
class ReferenceBins:
    """Bins of one statistic and the share of training-distribution images in each.

    Attributes:
        statistic: ``decision``, ``feature`` or ``input``.
        edges: inner bin edges, ascending (a value equal to an edge is in the upper bin).
        expected: ``len(edges) + 1`` shares summing to 1.
    """

    statistic: str
    edges: tuple[float, ...]
    expected: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.expected) != len(self.edges) + 1:
            raise ValueError("need one more expected share than edges")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"edges must ascend: {self.edges}")
        if min(self.expected) <= 0 or not math.isclose(sum(self.expected), 1.0, abs_tol=1e-6):
            raise ValueError(f"expected shares must be positive and sum to 1: {self.expected}")


@dataclass(frozen=True)
class BinTest:
    """One statistic of the stream against its reference bins."""

    statistic: str
    edges: tuple[float, ...]
    expected: tuple[float, ...]
    observed: tuple[int, ...]
    psi: float
    p_value: float
    shift: float = 0.0

    @property
    def n(self) -> int:
        return sum(self.observed)


@dataclass(frozen=True)
class DriftResult:
    """Whether a stream of images drifted from the training distribution, and why.

    Attributes:
        n: images with a decision score.
        tests: one per statistic tested (none below ``min_images`` or without a spec).
        alert: drift detected (see the module docstring).
        reason: one line for people.
    """

    n: int
    tests: tuple[BinTest, ...]
    alert: bool
    reason: str

    @property
    def psi(self) -> float | None:
        """The largest PSI over the statistics tested."""
        return max((t.psi for t in self.tests), default=None)


def reference_bins(spec: OodSpec | InputOodSpec) -> tuple[ReferenceBins, ...]:
    """The bins the card's OOD statistics define (see the module's table); a statistic
    whose quantiles leave no bin (a flag rate of 0) is left out."""
    if isinstance(spec, InputOodSpec):  # a segmenter's or detector's input score alone
        found_input = _bins("input", [(spec.median, 0.5), (spec.threshold, 1 - spec.val_flag_rate)])
        return () if found_input is None else (found_input,)
    inputs = spec.inputs
    if inputs is None:
        found = [_bins("decision", [(1.0, 1 - spec.val_flag_rate)])]
    else:
        guard = inputs.guard_quantile
        found = [
            _bins(
                "feature",
                [
                    (inputs.feature_median, 0.5),
                    (spec.threshold, 1 - spec.val_flag_rate),
                    (inputs.feature_threshold, guard),
                ],
            ),
            _bins("input", [(inputs.input_median, 0.5), (inputs.input_threshold, guard)]),
            _bins("decision", [(1.0, 1 - inputs.val_flag_rate)]),
        ]
    return tuple(b for b in found if b is not None)


def drift(
    samples: Sequence[OodSample],
    spec: OodSpec | InputOodSpec | None,
    psi_alert: float = PSI_ALERT,
    alpha: float = ALPHA,
    min_images: int = MIN_IMAGES,
) -> DriftResult:
    """Test a stream of images' OOD scores against the card's (see the module docstring)."""
    n = sum(s.decision is not None for s in samples)
    if spec is None:
        return DriftResult(n, (), False, "no OOD statistics in the model card")
    if n < min_images:
        return DriftResult(n, (), False, f"{n} images scored; drift is judged from {min_images}")
    tests = []
    for bins in reference_bins(spec):
        values = [_value(s, bins.statistic) for s in samples]
        present = np.array([v for v in values if v is not None], np.float64)
        if len(present) >= min_images:
            tests.append(bin_test(present, bins))
    if not tests:
        return DriftResult(n, (), False, "no OOD statistic recorded often enough")
    k = len(tests)
    drifted = [t for t in tests if t.p_value * k < alpha and t.psi >= psi_alert and t.shift > 0]
    if drifted:
        worst = max(drifted, key=lambda t: t.psi)
        reason = (
            f"drift: {_name(worst.statistic)} PSI {worst.psi:.2f} (alert at {psi_alert:g}), "
            f"p = {worst.p_value:.1e} over {worst.n} images"
        )
        return DriftResult(n, tuple(tests), True, reason)
    top = max(tests, key=lambda t: t.psi)
    lower = " (scores lower than the reference)" if top.psi >= psi_alert and top.shift < 0 else ""
    reason = (
        f"no drift: largest PSI {top.psi:.2f} ({_name(top.statistic)}){lower} over {top.n} images"
    )
    return DriftResult(n, tuple(tests), False, reason)


def bin_test(values: np.ndarray, bins: ReferenceBins) -> BinTest:
    """G-test and PSI of ``values`` against ``bins``.

    Example:
        >>> bins = ReferenceBins("decision", (1.0,), (0.9, 0.1))
        >>> test = bin_test(np.array([0.5] * 90 + [2.0] * 10), bins)
        >>> test.observed, round(test.psi, 3), round(test.p_value, 3)
        ((90, 10), 0.0, 1.0)
    """
    index = np.searchsorted(np.asarray(bins.edges), values, side="right")
    observed = np.bincount(index, minlength=len(bins.expected)).astype(np.int64)
    n = int(observed.sum())
    expected = np.asarray(bins.expected) * n
    nonzero = observed > 0
    g = 2.0 * float(np.sum(observed[nonzero] * np.log(observed[nonzero] / expected[nonzero])))
    # The chi-square survival function with k - 1 degrees of freedom.
    p_value = upper_regularized_gamma((len(bins.expected) - 1) / 2, max(g, 0.0) / 2)
    shares = (observed + 0.5) / (n + 0.5 * len(observed))
    reference = np.asarray(bins.expected)
    psi = float(np.sum((shares - reference) * np.log(shares / reference)))
    bins_index = np.arange(len(reference))
    shift = float(np.sum(observed / n * bins_index) - np.sum(reference * bins_index))
    return BinTest(
        bins.statistic,
        bins.edges,
        bins.expected,
        tuple(int(o) for o in observed),
        round(psi, 6),
        p_value,
        round(shift, 6),
    )


def _name(statistic: str) -> str:
    return "decision score" if statistic == "decision" else f"{statistic} distance"


def _value(sample: OodSample, statistic: str) -> float | None:
    return {"decision": sample.decision, "feature": sample.feature, "input": sample.inputs}[
        statistic
    ]


def _bins(statistic: str, points: list[tuple[float, float]]) -> ReferenceBins | None:
    """Bins from quantile points (edge, cumulative share). A point that breaks the order of
    edges and shares (rounded thresholds can) or sits at share 0 or 1 is left out, merging
    two bins; None when no point is left."""
    kept: list[tuple[float, float]] = []
    for edge, cumulative in sorted(points):
        if not 0.0 < cumulative < 1.0:
            continue
        if not kept or (edge > kept[-1][0] and cumulative > kept[-1][1]):
            kept.append((edge, cumulative))
    if not kept:
        return None
    bounds = [0.0, *(c for _, c in kept), 1.0]
    shares = tuple(round(b - a, 9) for a, b in zip(bounds, bounds[1:], strict=False))
    return ReferenceBins(statistic, tuple(e for e, _ in kept), shares)
