"""``radlens ood``: give a model an out-of-distribution score without retraining it.

1. Graph surgery (``onnx``): every class-activation head in the graph (one per ensemble member
   and mirror pass) multiplies the flattened last feature map by the class weights in an
   ``Einsum``; its input is averaged over positions and the averages are concatenated into a
   third output, ``features``. Logits and CAM are untouched (checked).
2. Statistics: class means and a shrunk shared covariance of the training features
   (:func:`radlens.inference.ood.fit_stats`), written to ``ood.npz``; and the distribution of
   the training images' input statistics (:mod:`radlens.inference.input_stats`,
   :func:`radlens.inference.ood.fit_input_stats`), written to ``ood_inputs.npz``.
3. Thresholds: the ``1 - flag_rate`` quantile of the validation feature scores (the feature
   score alone, kept for reference), and the same quantile of the combined decision score
   (:func:`radlens.inference.ood.combined_score`), so ``flag_rate`` of in-distribution
   validation images are flagged by the decision findings carry.

The card gets ``ood`` (and new hashes for the rewritten weights). The model's weights,
logits and calibration are never changed; rerunning gives the same statistics (3D masks:
to the last bits of floating point, so their files and hashes may change).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from radlens.errors import UnsupportedTaskError
from radlens.evaluation.evaluate import prepare_batch
from radlens.inference.backends import OnnxBackend
from radlens.inference.input_stats import statistic_set_for, statistics_of
from radlens.inference.ood import (
    InputStats,
    OodStats,
    combined_score,
    fit_input_stats,
    fit_stats,
    input_scores,
    load_input_stats,
    load_stats,
    mahalanobis_scores,
    save_input_stats,
    save_stats,
)
from radlens.io.box_sets import BoxedImages
from radlens.io.datasets import LabelledImages, read_labelled
from radlens.models.card import (
    InputStatsSpec,
    Int8Variant,
    ModelCard,
    OodSpec,
    require_classifier,
    write_card,
)
from radlens.models.registry import load_model, sha256_of

log = logging.getLogger(__name__)

FEATURES = "features"
STATS_FILE = "ood.npz"
INPUT_STATS_FILE = "ood_inputs.npz"


@dataclass(frozen=True)
class OodReport:
    """What ``radlens ood`` fitted.

    ``threshold`` is the feature score's; ``val_flag_rate`` is the share of val images the
    decision findings carry flags (the combined one when there are input statistics).
    """

    model: str
    feature_dim: int
    n_train: int
    n_val: int
    threshold: float
    val_flag_rate: float
    input_statistics: str = ""
    n_statistics: int = 0
    product_threshold: float | None = None
    feature_val_flag_rate: float | None = None


def add_features_output(path: Path) -> int:
    """Add the ``features`` output to the ONNX file at ``path`` (in place); return how many
    heads feed it. A graph that already has it is left alone."""
    model = onnx.load(str(path))
    graph = model.graph
    if any(o.name == FEATURES for o in graph.output):
        return sum(1 for n in graph.node if n.op_type == "Einsum")
    heads = [n for n in graph.node if n.op_type == "Einsum"]
    if not heads:
        raise ValueError(f"{path}: no class-activation head (Einsum) found")
    pooled = []
    for i, node in enumerate(heads):
        name = f"radlens_pooled_{i}"
        graph.node.append(
            helper.make_node("ReduceMean", [node.input[0]], [name], axes=[2], keepdims=0)
        )
        pooled.append(name)
    graph.node.append(helper.make_node("Concat", pooled, [FEATURES], axis=1))
    graph.output.append(
        helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, ["batch", "dim"])
    )
    onnx.checker.check_model(model)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".onnx", delete=False) as tmp:
        onnx.save(model, tmp.name)
    Path(tmp.name).replace(path)
    OnnxBackend.forget(path)
    return len(heads)


INT8_FLAG_RATE_TOLERANCE = 0.05


def _keep_int8_if_it_agrees(
    model_dir: Path,
    card: ModelCard,
    int8: Int8Variant | None,
    val: LabelledImages,
    stats: OodStats,
    fp32_flags: np.ndarray,
    flags: Callable[[np.ndarray], np.ndarray],
    threads: int,
) -> Int8Variant | None:
    """Drop the INT8 variant when its features no longer give the same OOD flags.

    Quantization may distort the feature output more than the logits; the INT8 graph is
    kept only if it flags within ``INT8_FLAG_RATE_TOLERANCE`` of the fp32 share on val
    (``fp32_flags``: the fp32 graph's val flags; ``flags``: feature scores -> flags, with
    the input statistics, which do not depend on the weights, held fixed).
    """
    if int8 is None:
        return None
    quant = flags(
        mahalanobis_scores(
            features_of(card, OnnxBackend(model_dir / int8.file, threads), val), stats
        )
    )
    gap = abs(float(np.mean(quant)) - float(np.mean(fp32_flags)))
    if gap <= INT8_FLAG_RATE_TOLERANCE:
        return int8
    log.warning(
        "%s: INT8 features flag %.0f%% of val vs %.0f%% for fp32; INT8 variant removed",
        card.name,
        100 * float(np.mean(quant)),
        100 * float(np.mean(fp32_flags)),
    )
    OnnxBackend.forget(model_dir / int8.file)
    (model_dir / int8.file).unlink()
    return None


def features_of(card: ModelCard, backend: OnnxBackend, data: LabelledImages) -> np.ndarray:
    return read_features(card, backend, data, with_statistics=False)[0]


def read_features(
    card: ModelCard,
    backend: OnnxBackend,
    data: LabelledImages | BoxedImages,
    with_statistics: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``features`` output and (when the card's model has a statistic set) the input
    statistics of every item, from one pass of preprocessing (a classifier's labelled set or
    a detector's box set: only the images are read)."""
    statistics = statistic_set_for(card) if with_statistics else None
    out, values = [], []
    for start in range(0, len(data), 64):
        raws = data.images[start : start + 64]
        batch = prepare_batch(card, raws, restore=False)  # the score reads inputs as they came
        out.append(backend.run(batch)[FEATURES])
        if statistics is not None:
            values += [
                statistics_of(statistics, r, x, card.input)
                for r, x in zip(raws, batch, strict=True)
            ]
    features = np.concatenate(out).astype(np.float64)
    return features, (np.array(values) if statistics is not None else None)


def fit_ood(
    model_dir: Path,
    data: Path,
    flag_rate: float = 0.05,
    max_train: int = 3000,
    threads: int = 2,
    seed: int = 0,
    input_statistics: bool = True,
) -> OodReport:
    """Add the OOD score to the model folder ``model_dir`` (see the module docstring).

    ``input_statistics=False`` fits the feature score alone (a card as before input
    statistics existed).
    """
    installed = load_model(model_dir)
    card = installed.card
    require_classifier(card, "ood")
    before = OnnxBackend(installed.weights, threads=threads)
    val = read_labelled(data, "val", card.labels)
    probe = prepare_batch(card, val.images[:2])
    reference = before.run(probe)
    add_features_output(installed.weights)
    backend = OnnxBackend(installed.weights, threads=threads)
    after = backend.run(probe)
    for name in card.outputs:
        if not np.array_equal(reference[name], after[name]):
            raise RuntimeError(f"{installed.weights}: adding features changed {name}")
    int8 = card.int8
    if int8 is not None:
        add_features_output(model_dir / int8.file)
        int8 = replace(int8, sha256=sha256_of(model_dir / int8.file))
    train = read_labelled(data, "train", card.labels).sample(max_train, seed)
    labels = train.labels if train.labels.ndim == 1 else np.zeros(len(train), np.int64)
    train_features, train_values = read_features(card, backend, train, input_statistics)
    val_features, val_values = read_features(card, backend, val, input_statistics)
    spec, stats = fit_scores(
        card,
        model_dir,
        (train_features, labels, train_values),
        (val_features, val_values),
        flag_rate,
    )
    inputs = stats.inputs
    val_scores = mahalanobis_scores(val_features, stats)
    flags = _decision(spec, stats.inputs, val_values)
    int8 = _keep_int8_if_it_agrees(
        model_dir, card, int8, val, stats, flags(val_scores), flags, threads
    )
    new_card = replace(card, sha256=sha256_of(installed.weights), int8=int8, ood=spec)
    write_card(new_card, model_dir / "card.json")
    if inputs is None and (model_dir / INPUT_STATS_FILE).exists():
        (model_dir / INPUT_STATS_FILE).unlink()  # from an earlier fit; the card names none
    return OodReport(
        card.name,
        int(stats.means.shape[1]),
        len(train),
        len(val),
        spec.threshold,
        round(float(np.mean(flags(val_scores))), 6),
        spec.inputs.statistics if spec.inputs else "",
        0 if inputs is None else len(inputs.centre),
        spec.inputs.product_threshold if spec.inputs else None,
        spec.val_flag_rate,
    )


def fit_scores(
    card: ModelCard,
    model_dir: Path,
    train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    val: tuple[np.ndarray, np.ndarray | None],
    flag_rate: float,
) -> tuple[OodSpec, OodStats]:
    """Fit the feature statistics (``ood.npz``) and, with input statistics, theirs
    (``ood_inputs.npz``) and the combined decision; return the card's ``ood`` spec and the
    statistics as inference reads them back.

    ``train`` is ``(features, labels, input statistics or None)``, ``val`` is
    ``(features, input statistics or None)``.
    """
    train_features, labels, train_values = train
    val_features, val_values = val
    save_stats(fit_stats(train_features, labels), model_dir / STATS_FILE)
    stats = load_stats(model_dir / STATS_FILE)  # score with what inference will read
    val_scores = mahalanobis_scores(val_features, stats)
    threshold = round(float(np.quantile(val_scores, 1 - flag_rate)), 6)
    spec = OodSpec(
        method="mahalanobis",
        stats_file=STATS_FILE,
        sha256=sha256_of(model_dir / STATS_FILE),
        threshold=threshold,
        val_flag_rate=round(float(np.mean(val_scores >= threshold)), 6),
    )
    if train_values is None or val_values is None:
        return spec, stats
    statistics = statistic_set_for(card)
    assert statistics is not None
    save_input_stats(fit_input_stats(train_values, statistics.kind), model_dir / INPUT_STATS_FILE)
    inputs = load_input_stats(model_dir / INPUT_STATS_FILE)
    inputs_spec = _combined_spec(
        val_scores,
        input_scores(val_values, inputs),
        flag_rate,
        statistics.kind,
        sha256_of(model_dir / INPUT_STATS_FILE),
    )
    return replace(spec, inputs=inputs_spec), OodStats(stats.means, stats.precision, inputs)


def fit_detector_ood(
    card: ModelCard,
    model_dir: Path,
    backend: OnnxBackend,
    train: BoxedImages,
    val: BoxedImages,
    flag_rate: float = 0.05,
) -> OodSpec:
    """The ``ood`` spec of a detector whose graph has a ``features`` output: the feature
    score (distance to the mean of the training images' features: one class, since a box
    set has no image labels) and the input-statistics score, decided together as a
    classifier's (:func:`fit_scores`). Writes ``ood.npz`` and ``ood_inputs.npz``."""
    if FEATURES not in card.outputs:
        raise UnsupportedTaskError(
            f"{card.name}: its graph has no {FEATURES!r} output (its OOD score is the input "
            "statistics alone)"
        )
    train_features, train_values = read_features(card, backend, train)
    val_features, val_values = read_features(card, backend, val)
    labels = np.zeros(len(train_features), np.int64)
    spec, _ = fit_scores(
        card,
        model_dir,
        (train_features, labels, train_values),
        (val_features, val_values),
        flag_rate,
    )
    return spec


def refit_detector_ood(model_dir: Path, data: Path, flag_rate: float = 0.05) -> OodSpec:
    """``radlens ood`` for a detector with a ``features`` output: refit its ``ood`` from the
    box set it was trained on (see :func:`fit_detector_ood`) and write the card.

    Raises:
        InputError: ``data``'s splits differ in size from the card's.
        ModelIntegrityError: the weights differ from the card.
    """
    from radlens.io.box_sets import read_boxes
    from radlens.training.input_ood import check_splits

    installed = load_model(model_dir)
    card = installed.card
    train = read_boxes(data, "train", card.labels)
    val = read_boxes(data, "val", card.labels)
    check_splits(card, data, len(train.images), len(val.images))
    backend = OnnxBackend(installed.weights)
    spec = fit_detector_ood(card, model_dir, backend, train, val, flag_rate)
    assert card.detection is not None
    card = replace(card, ood=spec, detection=replace(card.detection, ood_inputs=None))
    write_card(card, model_dir / "card.json")
    return spec


GUARD_QUANTILE = 1.0
"""Each score alone flags beyond this quantile of its validation scores (see InputStatsSpec):
the largest, so a shift only one score sees is flagged once it goes beyond every val image.
Why not the 99th percentile (the value until 2026-12-01): docs/model-card.md."""

THRESHOLD_MARGIN = 1e-3
"""No val image sits on a fitted threshold: a guard lies this share above the largest val
score, and the product threshold midway between two val products (geometric mean). The
scores an image gets at inference (another batch size, ORT build or CPU) differ from the
fitted ones in the sixth or seventh significant digit, so a threshold on a val score itself
lets that noise decide the image's flag: with guards at the largest val score itself,
knee_oa_kl flagged 7 of its 128 val images where its card said 6."""


def _combined_spec(
    feature: np.ndarray, inputs: np.ndarray, flag_rate: float, kind: str, sha256: str
) -> InputStatsSpec:
    """The combined decision fitted on val scores: medians, single-score thresholds at
    ``GUARD_QUANTILE``, and the product threshold whose share of val flagged (with the
    single-score flags) comes closest to ``flag_rate``; measured with the rounded values
    the card keeps."""
    spec = InputStatsSpec(
        statistics=kind,
        stats_file=INPUT_STATS_FILE,
        sha256=sha256,
        feature_median=_round_up(float(np.median(feature))),
        input_median=_round_up(float(np.median(inputs))),
        feature_threshold=_guard(feature),
        input_threshold=_guard(inputs),
        product_threshold=1.0,
        guard_quantile=GUARD_QUANTILE,
        val_flag_rate=0.0,
    )
    products = np.maximum(feature / spec.feature_median, 1.0) * np.maximum(
        inputs / spec.input_median, 1.0
    )
    guard = (feature >= spec.feature_threshold) | (inputs >= spec.input_threshold)
    # Thresholds between neighbouring val products (each flags the products above it), and
    # one above them all; none on a val product itself (THRESHOLD_MARGIN).
    distinct = np.unique(products)
    candidates: np.ndarray = np.round(
        np.concatenate(
            [
                [distinct[0] / (1 + THRESHOLD_MARGIN)],
                _between(distinct[:-1], distinct[1:]),
                [distinct[-1] * (1 + THRESHOLD_MARGIN)],
            ]
        ),
        6,
    )
    rates = np.array([np.mean(guard | (products >= c)) for c in candidates])
    # Closest to the rate asked for (val sets are small: 78 images move it in 1.3% steps);
    # of equally close ones, the one flagging fewer.
    best = int(np.lexsort((rates, np.abs(rates - flag_rate)))[0])
    spec = replace(spec, product_threshold=max(1.0, float(candidates[best])))
    flagged = [combined_score(f, i, spec) >= 1.0 for f, i in zip(feature, inputs, strict=True)]
    return replace(spec, val_flag_rate=round(float(np.mean(flagged)), 6))


def _guard(scores: np.ndarray) -> float:
    """A single-score threshold: ``THRESHOLD_MARGIN`` above the ``GUARD_QUANTILE`` of val."""
    return _round_up(float(np.quantile(scores, GUARD_QUANTILE)) * (1 + THRESHOLD_MARGIN))


def _between(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Thresholds between neighbouring val products: their geometric mean."""
    midpoints: np.ndarray = np.sqrt(lower * upper)
    return midpoints


def _round_up(value: float) -> float:
    """Six decimals, rounded up, so a stored quantile never flags more than the fitted one."""
    return float(np.ceil(value * 1e6) / 1e6)


def _decision(
    spec: OodSpec, inputs: InputStats | None, values: np.ndarray | None
) -> Callable[[np.ndarray], np.ndarray]:
    """Feature scores of val -> the flags findings would carry (input statistics fixed)."""
    combined = spec.inputs
    if combined is None or inputs is None or values is None:
        return lambda scores: np.asarray(scores) >= spec.threshold
    input_val = input_scores(values, inputs)

    def flags(scores: np.ndarray) -> np.ndarray:
        return np.array(
            [combined_score(f, i, combined) >= 1.0 for f, i in zip(scores, input_val, strict=True)]
        )

    return flags
