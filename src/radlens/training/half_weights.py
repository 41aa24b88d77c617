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
