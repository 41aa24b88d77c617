"""Store an ONNX model's large weights as float16, computed as float32.

The weights budget of the shipped zoo is 40 MB, and a wider network or a second ensemble
member does not fit in float32. Storing the weight tensors of convolutions and matrix
products as float16 halves their bytes; a ``Cast`` node after each turns them back into
float32 and ONNX Runtime folds those casts into float32 constants when it loads the model
(constant folding), so inference computes exactly as before on slightly rounded weights
(float16 keeps 11 significant bits: a relative rounding of at most 2^-11). Nothing changes
for the runtime: it loads an ordinary ONNX file with ONNX Runtime and no torch.

Biases, normalization statistics and small tensors stay float32 (they are few bytes and
some, such as variances, lose more in float16). A weight with any value beyond float16's
range stays float32 too.

Example:
    >>> report = halve_weights(Path("model.onnx"))  # doctest: +SKIP
    >>> report.bytes_after / report.bytes_before  # doctest: +SKIP
    0.51
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WEIGHT_INPUTS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}
"""Operator type -> the input position of its weight tensor."""
MIN_ELEMENTS = 64
FLOAT16_MAX = float(np.finfo(np.float16).max)
HALF_SUFFIX = "__float16"
HALF_PARITY_RELATIVE = 1e-2
"""Float16 weights may move a model's outputs by at most this share of their largest
magnitude (checked against torch after the rewrite, by each trainer)."""


@dataclass(frozen=True)
class HalfReport:
    """What :func:`halve_weights` did.

    Attributes:
        tensors: weight tensors now stored as float16.
        bytes_before, bytes_after: the file's size.
    """

    tensors: int
    bytes_before: int
    bytes_after: int


def weight_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Every initializer of ``graph`` as float arrays under the name the graph computes with:
    a float16 weight under its float32 name (what its cast outputs), so code that reads
    weights by name works on both kinds of file."""
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for name in [n for n in values if n.endswith(HALF_SUFFIX)]:
        values[name.removesuffix(HALF_SUFFIX)] = values.pop(name).astype(np.float32)
    return values


def halve_weights(path: Path, out: Path | None = None) -> HalfReport:
    """Rewrite the ONNX model at ``path`` (or into ``out``) with its convolution and matrix
    weights stored as float16 behind a ``Cast`` to float32.

    Raises:
        ValueError: the model already stores weights this way (its initializers carry the
            float16 suffix), so a second pass would change nothing but the names.
    """
    model = onnx.load(str(path))
    graph = model.graph
    if any(i.name.endswith(HALF_SUFFIX) for i in graph.initializer):
        raise ValueError(f"{path}: weights are already stored as float16")
    weights = {
        node.input[WEIGHT_INPUTS[node.op_type]]
        for node in graph.node
        if node.op_type in WEIGHT_INPUTS and len(node.input) > WEIGHT_INPUTS[node.op_type]
    }
    graph_inputs = {i.name for i in graph.input}
    kept: list[TensorProto] = []
    casts: list[onnx.NodeProto] = []
    for init in graph.initializer:
        array = numpy_helper.to_array(init) if init.name in weights else None
        if (
            array is None
            or init.name in graph_inputs
            or init.data_type != TensorProto.FLOAT
            or array.size < MIN_ELEMENTS
            or not np.all(np.abs(array) <= FLOAT16_MAX)
        ):
            kept.append(init)
            continue
        half = numpy_helper.from_array(array.astype(np.float16), init.name + HALF_SUFFIX)
        kept.append(half)
        casts.append(
            helper.make_node(
                "Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=half.name + "_cast"
            )
        )
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # the casts read initializers only: first is topological
    onnx.checker.check_model(model)
    target = out or path
    before = path.stat().st_size
    onnx.save(model, str(target))
    return HalfReport(len(casts), before, target.stat().st_size)


def halve_checked(
    path: Path,
    example: np.ndarray,
    expected: dict[str, np.ndarray],
    log: logging.Logger,
    separately: bool = False,
) -> HalfReport:
    """:func:`halve_weights` on ``path``, then check ONNX Runtime's outputs on ``example``
    against ``expected`` (the same outputs before the rewrite: torch's or the float32 file's).

    ``separately``: each output is held to its own scale (a detector's ``heatmap`` in [0, 1]
    beside ``ltrb`` in pixels), not to the largest of them all.

    Raises:
        RuntimeError: an output moved by more than ``HALF_PARITY_RELATIVE`` of the largest
            expected magnitude (at least 1): of all outputs, or of its own.
    """
    from radlens.inference.backends import OnnxBackend

    report = halve_weights(path)
    OnnxBackend.forget(path)
    got = OnnxBackend(path, threads=1).run(example)
    groups = [[name] for name in expected] if separately else [list(expected)]
    for names in groups:
        diff = max(float(np.abs(got[name] - expected[name]).max()) for name in names)
        scale = max(max(float(np.abs(expected[name]).max()) for name in names), 1.0)
        log.info(
            "weights stored as float16: %d tensors, %.2f -> %.2f MB; max |float16 - float32| "
            "= %.2e (%s up to %.1f)",
            report.tensors,
            report.bytes_before / 1e6,
            report.bytes_after / 1e6,
            diff,
            ", ".join(names) if separately else "outputs",
            scale,
        )
        if diff > HALF_PARITY_RELATIVE * scale:
            raise RuntimeError(
                f"float16 weights move the outputs by {diff:.2e} (scale {scale:.1f})"
            )
    return report


@dataclass(frozen=True)
class HalvedModel:
    """What :func:`halve_model` made.

    Attributes:
        model, version: the card's name and the new version.
        folder: the new model folder.
        report: the rewrite (tensors, bytes before and after).
        metrics_before, metrics_after: the val metrics of the float32 and float16 cards.
    """

    model: str
    version: str
    folder: Path
    report: HalfReport
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]


def halve_model(
    model_dir: Path, data: Path, out_dir: Path, version: str, command: str = ""
) -> HalvedModel:
    """A new version of a trained classifier with its weights stored as float16.

    The folder is copied to ``out_dir``; :func:`halve_checked` rewrites its weights and
    compares every output with the float32 file's on val images; the card takes ``version``
    and the new hash; then calibration, thresholds and val metrics are refitted from val
    (``radlens calibrate``'s code) and, when the card has an OOD score, its statistics and
    thresholds too (``radlens ood``'s), since features and logits moved by float16's
    rounding. ``train.log`` records the step. Only the stored weights change: training is
    not rerun.

    Raises:
        UnsupportedTaskError: not a classifier.
        ConfigError: ``out_dir`` exists, the weights are already float16, or the card has an
            INT8 copy (quantized from the float32 weights: quantize the new version again).
    """
    import shutil
    from dataclasses import replace

    from radlens.errors import ConfigError
    from radlens.evaluation.evaluate import prepare_batch
    from radlens.inference.backends import OnnxBackend
    from radlens.io.datasets import read_labelled
    from radlens.models.card import require_classifier, write_card
    from radlens.models.registry import load_model, sha256_of
    from radlens.training.calibrate import recalibrate_model

    installed = load_model(model_dir)
    card = installed.card
    require_classifier(card, "half")
    if card.int8 is not None:
        raise ConfigError(
            f"{card.name}: its INT8 copy was quantized from the float32 weights; drop it or "
            "quantize the float16 version again"
        )
    if any(
        i.name.endswith(HALF_SUFFIX) for i in onnx.load(str(installed.weights)).graph.initializer
    ):
        raise ConfigError(f"{card.name}: its weights are already stored as float16")
    if out_dir.exists():
        raise ConfigError(f"{out_dir} exists: give a new folder for the float16 version")
    val = read_labelled(data, "val", card.labels)
    shutil.copytree(installed.folder, out_dir)
    try:  # a failed check or refit leaves no half-made version behind
        weights = out_dir / card.weights_file
        example = prepare_batch(card, val.images[:16])
        expected = OnnxBackend(installed.weights, threads=1).run(example)
        report = halve_checked(weights, example, expected, logging.getLogger(__name__))
        new = replace(card, version=version, sha256=sha256_of(weights))
        write_card(new, out_dir / "card.json")
        recalibrate_model(out_dir, data)
        if card.ood is not None:
            from radlens.training.ood import fit_ood

            fit_ood(out_dir, data, input_statistics=card.ood.inputs is not None)
        after = load_model(out_dir).card
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    with (out_dir / "train.log").open("a", encoding="utf-8") as handle:
        handle.write(
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} {command or 'radlens half'}: weights stored "
            f"as float16 ({report.tensors} tensors, {report.bytes_before / 1e6:.2f} -> "
            f"{report.bytes_after / 1e6:.2f} MB), version {card.version} -> {version}; "
            f"calibration{' and OOD score' if card.ood else ''} refitted on val; val metrics "
            f"{card.metrics.get('val', {})} -> {after.metrics['val']}\n"
        )
    return HalvedModel(
        card.name,
        version,
        out_dir,
        report,
        dict(card.metrics.get("val", {})),
        dict(after.metrics["val"]),
    )
