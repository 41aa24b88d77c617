"""Static INT8 quantization: figures, the keep/drop gate, and the card and registry records."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from radlens.models.card import InputSpec, read_card
from radlens.models.registry import load_model, sha256_of

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from radlens.training.quantize import (  # noqa: E402
    QuantizeReport,
    gate_int8,
    median_latency_ms,
    quantize_model,
)

# The keep/drop path, not the wall-clock race: latency read as fp32 2 ms, INT8 1 ms.
pytestmark = pytest.mark.usefixtures("int8_latency")

SIZE = 64


def write_conv_onnx(path: Path, width: int = 64, seed: int = 0) -> None:
    """A small CAM network of 3x3 convolutions whose logits rise with image brightness.

    Positive weights keep every feature monotone in the input, and the head is (-mean, +mean)
    of the features, so bright images score positive: AUC 1 on bright-vs-dark data, and
    convolutions heavy enough that INT8 pays.
    """
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(seed)

    def positive(*shape: int) -> np.ndarray:
        fan_in = int(np.prod(shape[1:]))
        return (rng.random(shape) / fan_in * 2).astype(np.float32)

    head = np.concatenate([-np.ones((1, width)), np.ones((1, width))]).astype(np.float32)
    weights = {
        "w1": positive(width, 1, 3, 3),
        "w2": positive(width, width, 3, 3),
        "w3": positive(width, width, 3, 3),
        "head": (head / width).reshape(2, width, 1, 1),
    }
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], **conv),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2], **conv),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], **conv),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("Conv", ["r3", "head"], ["cam"], kernel_shape=[1, 1]),
        helper.make_node("ReduceMean", ["cam"], ["logits"], axes=[2, 3], keepdims=0),
    ]
    half = SIZE // 2
    graph = helper.make_graph(
        nodes,
        "conv_cam",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, SIZE, SIZE])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("cam", TensorProto.FLOAT, ["batch", 2, half, half]),
        ],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))


def write_bright_dark_npz(path: Path, n_train: int = 40, n_val: int = 20) -> Path:
    """MedMNIST layout; label 1 images are mostly bright, label 0 mostly dark."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("val", n_val)):
        labels = np.arange(n) % 2
        bright = np.where(labels == 1, 0.8, 0.2)
        images = (rng.random((n, 28, 28)) < bright[:, None, None]) * 200 + 20
        arrays[f"{split}_images"] = images.astype(np.uint8)
        arrays[f"{split}_labels"] = labels[:, None]
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, write_model_folder):  # type: ignore[no-untyped-def]
    """(model folder, npz) built once; tests work on copies of the folder."""
    root = tmp_path_factory.mktemp("quantize")
    write_conv_onnx(root / "conv.onnx")
    folder = write_model_folder(
        root / "conv_cam",
        (root / "conv.onnx").read_bytes(),
        input=InputSpec(size=(SIZE, SIZE)),
    )
    return folder, write_bright_dark_npz(root / "brightmnist.npz")


@pytest.fixture
def model_dir(built, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    return Path(shutil.copytree(built[0], tmp_path / "conv_cam"))


@pytest.fixture
def npz(built) -> Path:  # type: ignore[no-untyped-def]
    return Path(built[1])


def test_quantize_keeps_a_faster_int8_variant_and_records_it(model_dir: Path, npz: Path) -> None:
    report = quantize_model(model_dir, npz, max_calibration=16)
    assert isinstance(report, QuantizeReport)
    for figure in (report.auc_fp32, report.auc_int8, report.ms_fp32, report.ms_int8):
        assert math.isfinite(figure)
    assert (report.n_calibration, report.n_gate, report.gate_split) == (16, 20, "val")
    assert report.auc_fp32 == 1.0
    assert report.kept, report.reason
    assert (report.ms_fp32, report.ms_int8, report.speedup) == (2.0, 1.0, 2.0)
    card = read_card(model_dir / "card.json")
    assert card.int8 is not None
    assert card.int8.file == "model.int8.onnx" == report.file
    assert card.int8.sha256 == sha256_of(model_dir / "model.int8.onnx")
    assert (card.int8.auc, card.int8.auc_fp32) == pytest.approx((report.auc_int8, 1.0), abs=1e-6)
    assert card.int8.ms < card.int8.ms_fp32
    model = load_model(model_dir)
    assert model.runtime_weights() == model_dir / "model.int8.onnx"
    assert model.runtime_weights(prefer_int8=False) == model.weights == model_dir / "model.onnx"


def test_latency_is_measured_for_each_file_on_one_image(model_dir: Path) -> None:
    """The real timing (the module's own function, not the fixture's figures): one finite
    median per file, interleaved, in ms. Which one is faster is for benchmarks/models.md."""
    weights = model_dir / "model.onnx"
    example = np.zeros((1, SIZE, SIZE), np.float32)
    figures = median_latency_ms([weights, weights], example, runs=5, warmup=1)
    assert len(figures) == 2
    assert all(math.isfinite(ms) and 0 < ms < 10_000 for ms in figures)


def test_quantize_with_an_impossible_auc_gate_keeps_nothing(model_dir: Path, npz: Path) -> None:
    quantize_model(model_dir, npz, max_calibration=8)  # first a kept variant to remove
    report = quantize_model(model_dir, npz, max_calibration=8, max_auc_drop=-1)
    assert not report.kept
    assert "AUC drop" in report.reason
    assert math.isfinite(report.auc_int8) and math.isfinite(report.ms_int8)
    assert not (model_dir / "model.int8.onnx").exists()
    assert read_card(model_dir / "card.json").int8 is None
    assert "int8" not in json.loads((model_dir / "card.json").read_text())
    model = load_model(model_dir)
    assert model.runtime_weights() == model.weights


def test_runtime_weights_refuses_a_tampered_int8_file(model_dir: Path, npz: Path) -> None:
    from radlens.errors import ModelIntegrityError

    quantize_model(model_dir, npz, max_calibration=8)
    (model_dir / "model.int8.onnx").write_bytes(b"not the calibrated weights")
    with pytest.raises(ModelIntegrityError, match="rerun radlens quantize"):
        load_model(model_dir).runtime_weights()
    (model_dir / "model.int8.onnx").unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        load_model(model_dir).runtime_weights()


@pytest.mark.parametrize(
    ("figures", "kept", "why"),
    [
        ((0.995, 0.994, 1.8, 1.0), True, "1.80x faster"),
        ((0.995, 0.990, 1.8, 1.0), False, "AUC drop 0.0050 > 0.002"),
        ((0.995, 0.995, 1.0, 2.0), False, "not faster"),
        ((0.995, 0.995, 1.0, 1.0), False, "not faster"),
        ((float("nan"), 0.995, 1.8, 1.0), False, "undefined"),
    ],
)
def test_gate_int8_needs_faster_and_a_small_auc_drop(
    figures: tuple[float, float, float, float], kept: bool, why: str
) -> None:
    decision, reason = gate_int8(*figures, max_auc_drop=0.002)
    assert decision is kept
    assert why in reason


def test_quantize_rejects_zero_calibration_images(model_dir: Path, npz: Path) -> None:
    from radlens.errors import ConfigError

    with pytest.raises(ConfigError, match="max_calibration"):
        quantize_model(model_dir, npz, max_calibration=0)
