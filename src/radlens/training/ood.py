"""``radlens ood``: give a model an out-of-distribution score without retraining it.

1. Graph surgery (``onnx``): every class-activation head in the graph (one per ensemble member
   and mirror pass) multiplies the flattened last feature map by the class weights in an
   ``Einsum``; its input is averaged over positions and the averages are concatenated into a
   third output, ``features``. Logits and CAM are untouched (checked).
2. Statistics: class means and a shrunk shared covariance of the training features
   (:func:`radlens.inference.ood.fit_stats`), written to ``ood.npz``.
3. Threshold: the ``1 - flag_rate`` quantile of the validation scores, so ``flag_rate`` of
   in-distribution validation images are flagged.

The card gets ``ood`` (and new hashes for the rewritten weights).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from radlens.evaluation.evaluate import prepare_batch
from radlens.inference.backends import OnnxBackend
from radlens.inference.ood import OodStats, fit_stats, load_stats, mahalanobis_scores, save_stats
from radlens.io.datasets import LabelledImages, read_labelled
from radlens.models.card import Int8Variant, ModelCard, OodSpec, write_card
from radlens.models.registry import load_model, sha256_of

log = logging.getLogger(__name__)

FEATURES = "features"
STATS_FILE = "ood.npz"


@dataclass(frozen=True)
class OodReport:
    model: str
    feature_dim: int
    n_train: int
    n_val: int
    threshold: float
    val_flag_rate: float


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
    fp32: np.ndarray,
    threshold: float,
    threads: int,
) -> Int8Variant | None:
    """Drop the INT8 variant when its features no longer give the same OOD flags.

    Quantization may distort the feature output more than the logits; the INT8 graph is
    kept only if it flags within ``INT8_FLAG_RATE_TOLERANCE`` of the fp32 share on val
    (``fp32``: the fp32 graph's val scores).
    """
    if int8 is None:
        return None
    quant = mahalanobis_scores(
        features_of(card, OnnxBackend(model_dir / int8.file, threads), val), stats
    )
    gap = abs(float(np.mean(quant >= threshold)) - float(np.mean(fp32 >= threshold)))
    if gap <= INT8_FLAG_RATE_TOLERANCE:
        return int8
    log.warning(
        "%s: INT8 features flag %.0f%% of val vs %.0f%% for fp32; INT8 variant removed",
        card.name,
        100 * float(np.mean(quant >= threshold)),
        100 * float(np.mean(fp32 >= threshold)),
    )
    OnnxBackend.forget(model_dir / int8.file)
    (model_dir / int8.file).unlink()
    return None


def features_of(card: ModelCard, backend: OnnxBackend, data: LabelledImages) -> np.ndarray:
    out = []
    for start in range(0, len(data), 64):
        batch = prepare_batch(card, data.images[start : start + 64])
        out.append(backend.run(batch)[FEATURES])
    return np.concatenate(out).astype(np.float64)


def fit_ood(
    model_dir: Path,
    data: Path,
    flag_rate: float = 0.05,
    max_train: int = 3000,
    threads: int = 2,
    seed: int = 0,
) -> OodReport:
    """Add the OOD score to the model folder ``model_dir`` (see the module docstring)."""
    installed = load_model(model_dir)
    card = installed.card
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
    save_stats(fit_stats(features_of(card, backend, train), labels), model_dir / STATS_FILE)
    stats = load_stats(model_dir / STATS_FILE)  # score with what inference will read
    val_scores = mahalanobis_scores(features_of(card, backend, val), stats)
    threshold = float(np.quantile(val_scores, 1 - flag_rate))
    int8 = _keep_int8_if_it_agrees(
        model_dir, card, int8, val, stats, val_scores, threshold, threads
    )
    spec = OodSpec(
        method="mahalanobis",
        stats_file=STATS_FILE,
        sha256=sha256_of(model_dir / STATS_FILE),
        threshold=round(threshold, 6),
        val_flag_rate=round(float(np.mean(val_scores >= round(threshold, 6))), 6),
    )
    new_card = replace(card, sha256=sha256_of(installed.weights), int8=int8, ood=spec)
    write_card(new_card, model_dir / "card.json")
    return OodReport(
        card.name,
        int(stats.means.shape[1]),
        len(train),
        len(val),
        spec.threshold,
        spec.val_flag_rate,
    )
