"""``halve_weights``: convolution and matrix weights stored as float16 behind a cast, so a
model file about halves and ONNX Runtime still computes in float32 to within float16's
rounding of the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from radlens.models.registry import zoo_folder
from radlens.training.half_weights import halve_weights, weight_values


def float32_model(name: str, tmp_path: Path) -> Path:
    """A shipped model stored in float32, or for ``mask_net`` a segmentation network of the
    fetal head model's shape (that model ships in float16 since 1.2.0)."""
    if name != "mask_net":
        return zoo_folder() / name / "model.onnx"
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    from train_helpers import mask_net_onnx

    return mask_net_onnx(tmp_path / "mask_net.onnx", (64, 96))


def outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"image": x}), strict=True))


@pytest.mark.parametrize(
    ("model", "shape", "tolerance"),
    [
        ("mask_net", (2, 1, 64, 96), 5e-3),  # mask_logits, through 5 levels
        ("cxr_pneumonia_128", (2, 1, 128, 128), 1e-3),  # logits, cam, features
        ("bccd_cells", (2, 3, 240, 320), 1e-3),  # heatmap, ltrb
    ],
)
def test_half_weights_halve_the_file_and_keep_every_output(
    tmp_path: Path, model: str, shape: tuple[int, ...], tolerance: float
) -> None:
    source = float32_model(model, tmp_path)
    target = tmp_path / "half.onnx"
    report = halve_weights(source, target)
    assert report.tensors > 0 and report.bytes_before == source.stat().st_size
    assert report.bytes_after == target.stat().st_size < 0.55 * report.bytes_before
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    full, half = outputs(source, x), outputs(target, x)
    assert full.keys() == half.keys()
    for name, expected in full.items():
        got = half[name]
        assert got.dtype == np.float32 and got.shape == expected.shape
        scale = float(np.abs(expected).max())
        assert float(np.abs(got - expected).max()) <= tolerance * scale, name
        assert not np.array_equal(got, expected)  # the weights really were rounded


def test_only_large_convolution_and_matrix_weights_become_float16(tmp_path: Path) -> None:
    target = tmp_path / "half.onnx"
    halve_weights(float32_model("mask_net", tmp_path), target)
    graph = onnx.load(str(target)).graph
    half = [i for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    weight_names = {n.input[1] for n in graph.node if n.op_type in ("Conv", "ConvTranspose")}
    assert half and all(i.name.removesuffix("__float16") in weight_names for i in half)
    casts = {n.input[0]: n.output[0] for n in graph.node if n.op_type == "Cast"}
    assert all(casts[i.name] == i.name.removesuffix("__float16") for i in half)
    # Biases and normalization parameters stay float32.
    kept = {
        name
        for n in graph.node
        if n.op_type in ("Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization")
        for name in (n.input[2:] if n.op_type in ("Conv", "ConvTranspose") else n.input[1:])
    }
    types = {i.name: i.data_type for i in graph.initializer}
    assert kept & types.keys()
    assert all(types[name] == onnx.TensorProto.FLOAT for name in kept & types.keys())


def test_a_second_pass_is_refused_and_leaves_the_file(tmp_path: Path) -> None:
    target = tmp_path / "half.onnx"
    halve_weights(zoo_folder() / "cxr_pneumonia_128" / "model.onnx", target)
    before = target.read_bytes()
    with pytest.raises(ValueError, match="already stored as float16"):
        halve_weights(target)
    assert target.read_bytes() == before


def test_weight_values_reads_float16_weights_under_their_float32_names(tmp_path: Path) -> None:
    source = zoo_folder() / "cxr_pneumonia_128" / "model.onnx"
    halve_weights(source, tmp_path / "half.onnx")
    full = weight_values(onnx.load(str(source)).graph)
    half = weight_values(onnx.load(str(tmp_path / "half.onnx")).graph)
    assert half.keys() == full.keys()
    for name, value in full.items():
        assert half[name].dtype == value.dtype and half[name].shape == value.shape
        np.testing.assert_allclose(half[name], value, rtol=1e-3, atol=1e-6)
