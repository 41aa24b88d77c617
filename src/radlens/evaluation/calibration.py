"""Calibration on validation logits: fit, choose the method out of fold, and say how sure.

Methods (:class:`radlens.models.card.CalibrationMethod`; probabilities always come from
:meth:`radlens.models.card.Calibration.probabilities`):

* ``temperature``: one temperature, minimizing NLL (:func:`metrics.fit_temperature`).
* ``platt`` (binary): a temperature and a bias on the logit difference,
  ``p1 = sigmoid((z1 - z0) / T + b)`` (Platt 1999).
* ``vector`` (multi-class, ordinal): a temperature and a bias per class,
  ``softmax(z / t + b)`` (vector scaling, Guo et al., ICML 2017).

The two flexible methods are fitted by Newton's method on the NLL plus a weak Gaussian prior
centred on plain temperature scaling (the scale ``1 / t`` within about half of its
temperature-scaling value, each bias within about one logit), which keeps them finite on
separable data and shrinks the extra parameters where the val set is small.

The method is chosen by cross-validated NLL: :data:`FOLDS` stratified folds of val (seeded);
each candidate is fitted on four folds and predicts the fifth; the flexible candidate is
chosen only when its out-of-fold NLL is lower than temperature scaling's by more than one
standard error of the paired per-item difference (:func:`choose_method`). Multi-label models
keep one shared temperature.

Honest figures, all on val (the card's ``calibration``):

* ``ece_after``: in-sample, the chosen method fitted on all of val and measured there.
* ``ece_cv``: the chosen method's out-of-fold probabilities (each item predicted by a fit that
  never saw it). The choice itself was made on the same folds, so this is slightly optimistic.
* ``ece_noise_mean`` / ``ece_noise_p95``: the ECE a *perfectly* calibrated model with the same
  calibrated probabilities shows at this val size, from labels drawn from those probabilities
  (:data:`NOISE_DRAWS` draws, seeded). An ECE inside this range cannot be told from perfect
  calibration with this many items.

Operating thresholds and the abstain band live on the calibrated-probability scale, so they
are refitted with every calibration (:func:`thresholds_for`, :func:`calibrate_card`).

Example:
    >>> calibration, probs = calibrate(Task.BINARY, logits_val, y_val)  # doctest: +SKIP
    >>> calibration.method, calibration.ece_cv  # doctest: +SKIP
    (<CalibrationMethod.PLATT: 'platt'>, 0.021)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from radlens.evaluation import metrics as m
from radlens.evaluation.evaluate import Evaluation, summarize
from radlens.models.card import Calibration, CalibrationMethod, CrossFitted, ModelCard, Task

FOLDS = 5
SEED = 0
NOISE_DRAWS = 2000
# Prior of the flexible methods: scale 1/t ~ N(1/T, (SCALE_SD * 1/T)^2), bias ~ N(0, BIAS_SD^2).
SCALE_SD = 0.5
BIAS_SD = 1.0
_LOG_T_BOUND = 3.0  # temperatures stay in [e^-3, e^3], as fit_temperature's search


def candidate_methods(task: Task) -> tuple[CalibrationMethod, ...]:
    """The methods tried for a task; the first (temperature) is the default."""
    task = Task(task)
    if task is Task.BINARY:
        return (CalibrationMethod.TEMPERATURE, CalibrationMethod.PLATT)
    if task in (Task.MULTICLASS, Task.ORDINAL):
        return (CalibrationMethod.TEMPERATURE, CalibrationMethod.VECTOR)
    return (CalibrationMethod.TEMPERATURE,)


def ece_for(task: Task, y: np.ndarray, probs: np.ndarray) -> float:
    """The card's ECE for ``task`` (top-label, or the mean binary ECE per label)."""
    return m.ece_multilabel(y, probs) if Task(task) is Task.MULTILABEL else m.ece(y, probs)


def ece_debiased_for(task: Task, y: np.ndarray, probs: np.ndarray) -> float:
    """:func:`ece_for` less its sampling bias (``metrics.ece_debiased``): the estimate of the
    model's own calibration error that can be held against a goal at a small n."""
    if Task(task) is Task.MULTILABEL:
        return m.ece_debiased_multilabel(y, probs)
    return m.ece_debiased(y, probs)


def nll_for(task: Task, y: np.ndarray, probs: np.ndarray) -> float:
    """The card's NLL for ``task`` (of the true class, or binary cross-entropy per label)."""
    return m.nll_multilabel(y, probs) if Task(task) is Task.MULTILABEL else m.nll(y, probs)


def _fit_affine(
    design: np.ndarray,
    y: np.ndarray,
    prior_mean: np.ndarray,
    prior_precision: np.ndarray,
) -> np.ndarray:
    """MAP parameters ``theta`` of ``softmax(design @ theta)`` under a diagonal Gaussian prior.

    ``design`` is ``(N, K, P)``: calibrated logit ``k`` of item ``i`` is
    ``design[i, k] @ theta``. The objective (summed NLL plus the prior) is convex in
    ``theta``; Newton's method with step halving, from the prior mean.
    """
    n, k, _ = design.shape
    onehot = np.eye(k)[y]
    theta = prior_mean.astype(np.float64).copy()

    def objective(t: np.ndarray) -> tuple[float, np.ndarray]:
        z = design @ t
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        value = float((log_norm - z[np.arange(n), y]).sum())
        value += 0.5 * float((prior_precision * (t - prior_mean) ** 2).sum())
        return value, np.exp(z - log_norm[:, None])

    value, p = objective(theta)
    for _ in range(100):
        grad = np.einsum("nkp,nk->p", design, p - onehot) + prior_precision * (theta - prior_mean)
        dp = np.einsum("nkp,nk->np", design, p)
        hess = np.einsum("nkp,nk,nkq->pq", design, p, design) - dp.T @ dp
        step = np.linalg.solve(hess + np.diag(prior_precision), grad)
        for _ in range(40):
            candidate = theta - step
            new_value, new_p = objective(candidate)
            if new_value <= value:
                break
            step = step / 2
        else:
            break
        converged = value - new_value < 1e-12 * max(1.0, abs(value))
        theta, value, p = candidate, new_value, new_p
        if converged:
            break
    return theta


def _clipped_scale(scale: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.clip(scale, math.exp(-_LOG_T_BOUND), math.exp(_LOG_T_BOUND))
    return out


def fit_platt(logits: np.ndarray, y_true: np.ndarray) -> tuple[float, float]:
    """Temperature and bias of ``sigmoid((z1 - z0) / T + b)`` (binary), minimizing val NLL
    under the weak prior of the module docstring.

    Example:
        >>> temperature, bias = fit_platt(logits_val, y_val)  # doctest: +SKIP
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    scale_t = 1.0 / m.fit_temperature(z, y)
    design = np.zeros((len(z), 2, 2))
    design[:, :, 0] = z  # one scale for both logits
    design[:, 1, 1] = 1.0  # the bias, on class 1
    mean = np.array([scale_t, 0.0])
    precision = np.array([1.0 / (SCALE_SD * scale_t) ** 2, 1.0 / BIAS_SD**2])
    scale, bias = _fit_affine(design, y, mean, precision)
    return float(1.0 / _clipped_scale(np.array([scale]))[0]), float(bias)


def fit_vector_scaling(logits: np.ndarray, y_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class temperatures and biases of ``softmax(z / t + b)``, minimizing val NLL under
    the weak prior of the module docstring (centred on plain temperature scaling).

    Example:
        >>> temperatures, biases = fit_vector_scaling(logits_val, y_val)  # doctest: +SKIP
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    n, k = z.shape
    scale_t = 1.0 / m.fit_temperature(z, y)
    design = np.zeros((n, k, 2 * k))
    classes = np.arange(k)
    design[:, classes, classes] = z
    design[:, classes, k + classes] = 1.0
    mean = np.r_[np.full(k, scale_t), np.zeros(k)]
    precision = np.r_[np.full(k, 1.0 / (SCALE_SD * scale_t) ** 2), np.full(k, 1.0 / BIAS_SD**2)]
    theta = _fit_affine(design, y, mean, precision)
    return 1.0 / _clipped_scale(theta[:k]), theta[k:]


def fit_method(
    method: CalibrationMethod | str, task: Task, logits: np.ndarray, y: np.ndarray
) -> Calibration:
    """One method fitted on ``(logits, y)``, as the card stores it (6 decimals)."""
    method, task = CalibrationMethod(method), Task(task)
    if method not in candidate_methods(task):
        raise ValueError(f"calibration method {method.value} does not apply to {task.value}")
    if method is CalibrationMethod.PLATT:
        temperature, bias = fit_platt(logits, y)
        return Calibration(method, round(temperature, 6), biases=(0.0, round(bias, 6)))
    if method is CalibrationMethod.VECTOR:
        temperatures, biases = fit_vector_scaling(logits, y)
        return Calibration(
            method,
            round(m.fit_temperature(logits, y), 6),  # the centre the class ones shrink to
            class_temperatures=tuple(round(float(t), 6) for t in temperatures),
            biases=tuple(round(float(b), 6) for b in biases),
        )
    if task is Task.MULTILABEL:
        return Calibration(temperature=round(m.fit_temperature_multilabel(logits, y), 6))
    return Calibration(temperature=round(m.fit_temperature(logits, y), 6))


def stratified_folds(y: np.ndarray, folds: int = FOLDS, seed: int = SEED) -> np.ndarray:
    """A fold index per item: each class dealt round-robin over the folds after a seeded
    shuffle (multi-label items: all one stratum).

    Example:
        >>> stratified_folds(np.array([0, 0, 1, 1]), folds=2, seed=0).tolist()  # doctest: +SKIP
        [1, 0, 0, 1]
    """
    y = np.asarray(y)
    strata = y if y.ndim == 1 else np.zeros(len(y), dtype=np.int64)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    dealt = 0
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        fold[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return fold


def cross_validated(
    task: Task, logits: np.ndarray, y: np.ndarray, folds: int = FOLDS, seed: int = SEED
) -> dict[CalibrationMethod, np.ndarray]:
    """Out-of-fold calibrated probabilities of every candidate method.

    Each item's probabilities come from the method fitted on the other folds. With fewer
    items than ``folds`` every item is its own fold.
    """
    task = Task(task)
    fold = stratified_folds(y, min(folds, len(y)), seed)
    out = {}
    for method in candidate_methods(task):
        probs = np.empty(logits.shape, dtype=np.float64)
        for f in np.unique(fold):
            held = fold == f
            fitted = fit_method(method, task, logits[~held], y[~held])
            probs[held] = fitted.probabilities(logits[held], task)
        out[method] = probs
    return out


def item_nll(task: Task, y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each item's NLL (multi-label: its mean binary cross-entropy over labels)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    out: np.ndarray
    if Task(task) is Task.MULTILABEL:
        out = -np.where(np.asarray(y).astype(bool), np.log(p), np.log1p(-p)).mean(axis=1)
    else:
        out = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))
    return out


def nll_gain(
    task: Task, y: np.ndarray, out_of_fold: dict[CalibrationMethod, np.ndarray], method: str
) -> tuple[float, float]:
    """How much lower ``method``'s out-of-fold NLL is than temperature scaling's: the mean
    per-item difference and its standard error (paired over items)."""
    method = CalibrationMethod(method)
    return paired_nll_gain(task, y, out_of_fold[CalibrationMethod.TEMPERATURE], out_of_fold[method])


def paired_nll_gain(
    task: Task, y: np.ndarray, base: np.ndarray, other: np.ndarray
) -> tuple[float, float]:
    """How much lower ``other``'s NLL is than ``base``'s (two sets of probabilities of the
    same items): the mean per-item difference and its standard error (paired)."""
    gain = item_nll(task, y, base) - item_nll(task, y, other)
    if len(gain) < 2:
        return float(gain.mean()), math.inf
    return float(gain.mean()), float(gain.std(ddof=1) / math.sqrt(len(gain)))


def choose_method(
    task: Task, y: np.ndarray, out_of_fold: dict[CalibrationMethod, np.ndarray]
) -> CalibrationMethod:
    """Temperature scaling, unless the flexible method's out-of-fold NLL is lower by more
    than one standard error of the paired difference.

    A bare "lower" would pick the flexible method about half the time when its extra
    parameters are worth nothing (its fit shrinks to temperature scaling, so the two are
    then a coin toss); one standard error keeps that to about 7% at 80 val items and 2% at
    200, and still finds a bias of half a logit at 200 items four times in five (simulated).
    """
    default, *flexible = candidate_methods(task)
    best = default
    best_gain = 0.0
    for method in flexible:
        gain, error = nll_gain(task, y, out_of_fold, method)
        if gain > error and gain > best_gain:
            best, best_gain = method, gain
    return best


def ece_noise_floor(
    task: Task, probs: np.ndarray, draws: int = NOISE_DRAWS, seed: int = SEED
) -> tuple[float, float]:
    """Mean and 95th percentile of the ECE of a perfectly calibrated model with ``probs``.

    Labels are drawn from ``probs`` themselves (``draws`` times, seeded), so every
    difference between confidence and accuracy is sampling noise at this size.

    Example:
        >>> mean, p95 = ece_noise_floor(Task.BINARY, probs_val)  # doctest: +SKIP
    """
    rng = np.random.default_rng(seed)
    p = np.asarray(probs, dtype=np.float64)
    if Task(task) is Task.MULTILABEL:
        per_label = [_binary_noise(p[:, k], draws, rng) for k in range(p.shape[1])]
        eces = np.mean(per_label, axis=0)
    else:
        cumulative = np.cumsum(p, axis=1)
        u = rng.random((draws, len(p), 1))
        labels = np.minimum((u > cumulative[None, :, :-1]).sum(axis=2), p.shape[1] - 1)
        eces = _ece_of_draws(p.max(axis=1), labels == p.argmax(axis=1))
    return float(np.mean(eces)), float(np.quantile(eces, 0.95))


def _binary_noise(p: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    yes = rng.random((draws, len(p))) < p
    # The two-way distribution (1 - p, p) of metrics.ece_binary: argmax says "no" at 0.5.
    return _ece_of_draws(np.maximum(p, 1 - p), yes == (p > 0.5))


def _ece_of_draws(confidence: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """:func:`metrics.ece` for one confidence vector and many ``(draws, N)`` outcomes."""
    bins = m.ece_bins(confidence)
    member = np.eye(int(bins.max()) + 1)[bins]  # (N, bins)
    gap = (correct - confidence[None, :]) @ member
    out: np.ndarray = np.abs(gap).sum(axis=1) / len(confidence)
    return out


@dataclass(frozen=True)
class CrossFittedLogits:
    """Out-of-fold logits and labels of a model's recipe over its train split (each item
    scored by a fold model that never trained on it), to pool with val when fitting the
    calibration; ``record`` is what the card keeps of them (:class:`CrossFitted`)."""

    logits: np.ndarray
    labels: np.ndarray
    record: CrossFitted

    def __post_init__(self) -> None:
        if self.logits.ndim != 2 or len(self.logits) != len(self.labels):
            raise ValueError("cross-fitted logits must be (N, K) with one label per row")
        if len(self.labels) != self.record.n:
            raise ValueError(
                f"{len(self.labels)} cross-fitted items, the record says {self.record.n}"
            )

    def pooled_with(self, logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logits, y)`` (val) followed by these items: the pool a calibration is fitted on."""
        return (
            np.concatenate([np.asarray(logits, np.float64), np.asarray(self.logits, np.float64)]),
            np.concatenate([np.asarray(y), self.labels]),
        )


def choice_and_fit_sets(
    logits: np.ndarray, y: np.ndarray, cross_fitted: CrossFittedLogits | None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The items the method is chosen on and the items it is fitted on, from val
    ``(logits, y)`` and ``cross_fitted``: val for both without a pool; the pool for both
    (its record's ``use`` ``fit``), or the pool to choose and val to fit (``choose``)."""
    val = (np.asarray(logits, dtype=np.float64), np.asarray(y))
    if cross_fitted is None:
        return val, val
    pool = cross_fitted.pooled_with(*val)
    return pool, pool if cross_fitted.record.fitted_on_pool else val


def calibrate(
    task: Task,
    logits: np.ndarray,
    y: np.ndarray,
    folds: int = FOLDS,
    seed: int = SEED,
    cross_fitted: CrossFittedLogits | None = None,
) -> tuple[Calibration, np.ndarray]:
    """Choose and fit the calibration on validation logits; return it with its figures and
    the calibrated probabilities of the validation items.

    With ``cross_fitted``, the method is chosen on val pooled with those items: a set
    several times val's size, of items no model of the recipe saw, for a model whose val
    alone is too small to choose, fit or check one (``bench_crossfit.py`` measures what
    transfers better than val alone, recipe by recipe). Its record's ``use`` says whether the
    method is also fitted on the pool, the calibration's figures then being of the pool
    (``fit``), or fitted on val alone (``choose``: the figures are of val, ``cv_nll`` of the
    pool that chose).

    The probabilities use the parameters as the card stores them (6 decimals), so thresholds
    chosen on them are the ones ``predict`` and ``radlens evaluate`` reproduce.

    Example:
        >>> calibration, probs = calibrate(Task.BINARY, logits_val, y_val)  # doctest: +SKIP
    """
    task = Task(task)
    n_val = len(logits)
    (choice_logits, choice_y), (logits, y) = choice_and_fit_sets(logits, y, cross_fitted)
    choice = cross_validated(task, choice_logits, choice_y, folds, seed)
    cv_nll = {method: nll_for(task, choice_y, p) for method, p in choice.items()}
    chosen = choose_method(task, choice_y, choice)
    out_of_fold = (
        choice if len(y) == len(choice_y) else cross_validated(task, logits, y, folds, seed)
    )
    fitted = fit_method(chosen, task, logits, y)
    probs = fitted.probabilities(logits, task)
    raw = Calibration().probabilities(logits, task)
    noise_mean, noise_p95 = ece_noise_floor(task, probs, seed=seed)
    calibration = replace(
        fitted,
        ece_before=round(ece_for(task, y, raw), 6),
        ece_after=round(ece_for(task, y, probs), 6),
        ece_cv=round(ece_for(task, y, out_of_fold[chosen]), 6),
        ece_noise_mean=round(noise_mean, 6),
        ece_noise_p95=round(noise_p95, 6),
        cv_nll={method.value: round(v, 6) for method, v in cv_nll.items()},
        cross_fitted=None if cross_fitted is None else cross_fitted.record,
    )
    return calibration, probs[:n_val]


def describe(calibration: Calibration) -> str:
    """One line for logs: the method and its parameters.

    Example:
        >>> describe(Calibration(CalibrationMethod.PLATT, 1.2, biases=(0.0, -0.3)))
        'platt: T 1.2, bias -0.3'
    """
    if calibration.method is CalibrationMethod.PLATT:
        return f"platt: T {calibration.temperature:.4g}, bias {calibration.biases[1]:.4g}"
    if calibration.method is CalibrationMethod.VECTOR:
        ts = ", ".join(f"{t:.4g}" for t in calibration.class_temperatures)
        bs = ", ".join(f"{b:.4g}" for b in calibration.biases)
        return f"vector: T ({ts}), bias ({bs})"
    return f"temperature: T {calibration.temperature:.4g}"


def thresholds_for(
    card_task: Task,
    y: np.ndarray,
    probs: np.ndarray,
    sensitivity: float,
    positive: int = 1,
    labels: tuple[str, ...] = (),
) -> dict[str, float]:
    """Operating points on validation: Youden (operating) and a high-sensitivity one.

    Multi-label: ``operating`` 0.5 and ``youden:<label>`` for each of ``labels``.

    Thresholds are stored with 6 decimals, rounded down (and the abstain band's upper edge
    up), so the val item a threshold was chosen at still counts as positive (``p >= t``)
    and the sensitivities promised on val hold for the stored figures.
    """
    if card_task is Task.MULTILABEL:
        per_label = {
            f"youden:{name}": _down(m.youden_threshold(y[:, k], probs[:, k]))
            for k, name in enumerate(labels)
        }
        return {"operating": 0.5} | per_label
    if card_task is not Task.BINARY:
        return {"operating": 0.5}
    score = probs[:, positive]
    youden = m.youden_threshold(y == positive, score)
    low, high = m.abstain_band(y == positive, score, youden)
    return {
        "operating": _down(youden),
        # Too close to the operating point to call (see metrics.abstain_band).
        "abstain_low": _down(low),
        "abstain_high": _up(high) if high > low else _down(low),  # equal: never abstain
        "youden": _down(youden),
        # Never above the operating point: a triage threshold only adds sensitivity.
        "high_sensitivity": _down(
            min(youden, m.sensitivity_threshold(y == positive, score, sensitivity))
        ),
        "argmax": 0.5,
    }


def _down(value: float) -> float:
    """``value`` with 6 decimals, never above it."""
    out = math.floor(value * 1e6) / 1e6
    return out if out <= value else (math.floor(value * 1e6) - 1) / 1e6


def _up(value: float) -> float:
    """``value`` with 6 decimals, never below it (and at most 1)."""
    out = math.ceil(value * 1e6) / 1e6
    return min(1.0, out if out >= value else (math.ceil(value * 1e6) + 1) / 1e6)


def calibrate_card(
    card: ModelCard,
    logits: np.ndarray,
    y: np.ndarray,
    high_sensitivity: float,
    folds: int = FOLDS,
    seed: int = SEED,
    cross_fitted: CrossFittedLogits | None = None,
) -> tuple[ModelCard, Evaluation]:
    """The card with calibration, thresholds and val metrics refitted on val logits.

    What ``radlens train`` does after export and ``radlens calibrate`` does to a trained
    model: one code path, so both give the same card from the same logits.

    Args:
        high_sensitivity: the val sensitivity the ``high_sensitivity`` threshold must keep
            (the recipe's ``high_sensitivity``).
        cross_fitted: items pooled with val for the calibration (:func:`calibrate`); the
            thresholds and val metrics stay val's.
    """
    calibration, probs = calibrate(card.task, logits, y, folds, seed, cross_fitted)
    card = replace(
        card,
        calibration=calibration,
        thresholds=thresholds_for(
            card.task, y, probs, high_sensitivity, card.positive_index, card.labels
        ),
    )
    evaluation = summarize(card, logits, y, "val")
    val = {k: round(v, 6) for k, v in evaluation.metrics.items()} | {"n": len(y)}
    return replace(card, metrics=card.metrics | {"val": val}), evaluation
