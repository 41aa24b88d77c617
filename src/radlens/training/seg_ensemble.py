"""A multi-scale ensemble of segmentation networks in one ONNX graph.

Segmentation networks trained at different input sizes make different errors: a coarse one
sees the whole outline, a finer one its local edge. ``compose_members`` joins their exported
graphs into one model that takes the largest member's input: every smaller member reads the
input resized to its own size in the graph (bilinear with antialiasing, ONNX ``Resize``), its
``mask_logits`` are resized back, and the output is the mean of the members' logits. The
runtime sees an ordinary segmentation model: one ``image`` input, one ``mask_logits`` output.

A recipe asks for it with ``schedule.member_sizes`` (see :mod:`radlens.training.segment`):
member *k* is trained exactly as the recipe with ``input.size`` set to its size (so a member
is the same network a single-size recipe run gives), then the members are composed here.

Example:
    >>> compose_members([big, small], [(224, 336), (160, 240)], out)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, compose, helper

OPSET = 18
"""``Resize`` takes ``antialias`` and ``axes`` from opset 18."""


def _member_graph(path: Path, prefix: str) -> onnx.GraphProto:
    model = onnx.load(str(path))
    if [i.name for i in model.graph.input] != ["image"] or [o.name for o in model.graph.output] != [
        "mask_logits"
    ]:
        raise ValueError(f"{path}: not a segmentation model (image -> mask_logits)")
    model = onnx.version_converter.convert_version(model, OPSET)
    return compose.add_prefix(model, prefix).graph


def _resize(name: str, source: str, size: tuple[int, int], antialias: bool) -> list[onnx.NodeProto]:
    sizes = helper.make_node(
        "Constant",
        [],
        [f"{name}_sizes"],
        value=helper.make_tensor(f"{name}_sizes_value", TensorProto.INT64, [2], list(size)),
    )
    resize = helper.make_node(
        "Resize",
        [source, "", "", f"{name}_sizes"],
        [name],
        mode="linear",
        coordinate_transformation_mode="half_pixel",
        antialias=int(antialias),
        axes=[2, 3],
        name=name,
    )
    return [sizes, resize]


def compose_members(
    members: Sequence[Path], sizes: Sequence[tuple[int, int]], out: Path
) -> tuple[int, int]:
    """Write the ensemble of the segmentation models ``members`` (ONNX files, trained at
    ``sizes`` (rows, cols)) to ``out``; return its input size, the largest member's.

    Raises:
        ValueError: fewer than two members, sizes that do not match them, or a member that is
            not an ``image -> mask_logits`` model.
    """
    if len(members) < 2 or len(members) != len(sizes):
        raise ValueError("an ensemble needs two or more members, each with its input size")
    size = max(sizes, key=lambda s: s[0] * s[1])
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    outputs: list[str] = []
    for k, (path, member_size) in enumerate(zip(members, sizes, strict=True)):
        prefix = f"m{k}_"
        graph = _member_graph(path, prefix)
        initializers.extend(graph.initializer)
        member_nodes = list(graph.node)
        logits = graph.output[0].name
        resize = tuple(member_size) != tuple(size)
        source = f"{prefix}input" if resize else "image"
        if resize:
            nodes.extend(_resize(source, "image", member_size, antialias=True))
        for node in member_nodes:
            node.input[:] = [source if i == f"{prefix}image" else i for i in node.input]
        nodes.extend(member_nodes)
        if resize:
            nodes.extend(_resize(f"{prefix}upsampled", logits, size, antialias=False))
            logits = f"{prefix}upsampled"
        outputs.append(logits)
    nodes.append(helper.make_node("Mean", outputs, ["mask_logits"], name="member_mean"))
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, *size])
    mask = helper.make_tensor_value_info("mask_logits", TensorProto.FLOAT, ["batch", 1, *size])
    graph = helper.make_graph(nodes, "segmentation_ensemble", [image], [mask], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = onnx.load(str(members[0])).ir_version
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return (int(size[0]), int(size[1]))


def resized(x: np.ndarray, size: tuple[int, int], antialias: bool) -> np.ndarray:
    """``x`` ``(n, c, rows, cols)`` resized to ``size`` by the ``Resize`` the ensemble uses."""
    import tempfile

    from radlens.inference.backends import OnnxBackend

    nodes = _resize("y", "x", size, antialias)
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(
        helper.make_graph(nodes, "resize", [x_info], [y_info]),
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resize.onnx"
        onnx.save(model, str(path))
        out = OnnxBackend(path).run(x)["y"]
        OnnxBackend.forget(path)
    return out


def member_parity(
    ensemble: Path, members: Sequence[Path], sizes: Sequence[tuple[int, int]], x: np.ndarray
) -> float:
    """The largest |ensemble - mean of its members| on ``x`` (at the ensemble's input size),
    each member run alone on ``x`` resized to its size and its logits resized back."""
    from radlens.inference.backends import OnnxBackend

    def run(path: Path, batch: np.ndarray) -> np.ndarray:
        return OnnxBackend(path).run(batch)["mask_logits"]

    size = (int(x.shape[-2]), int(x.shape[-1]))
    outputs = []
    for path, member_size in zip(members, sizes, strict=True):
        if tuple(member_size) == size:
            outputs.append(run(path, x))
        else:
            logits = run(path, resized(x, member_size, antialias=True))
            outputs.append(resized(logits, size, antialias=False))
    OnnxBackend.forget(ensemble)
    return float(np.abs(run(ensemble, x) - np.mean(outputs, axis=0)).max())
