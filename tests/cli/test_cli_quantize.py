"""``radlens quantize`` and ``radlens evaluate --int8`` on tiny ONNX models."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

from radlens.models.card import InputSpec, read_card

# The keep/drop path, not the wall-clock race: latency read as fp32 2 ms, INT8 1 ms.
pytestmark = pytest.mark.usefixtures("int8_latency")

Radlens = Callable[..., Result]
SIZE = 64


def write_conv_onnx(path: Path, width: int = 64) -> None:
    """Two 3x3 convolutions (heavy enough for INT8 to pay); logits rise with brightness."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    head = np.concatenate([-np.ones((1, width)), np.ones((1, width))]) / width
    weights = {
        "w1": (rng.random((width, 1, 3, 3)) / 4.5).astype(np.float32),
        "w2": (rng.random((width, width, 3, 3)) / (4.5 * width)).astype(np.float32),
        "head": head.astype(np.float32).reshape(2, width, 1, 1),
    }
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], **conv),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], **conv),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "head"], ["cam"], kernel_shape=[1, 1]),
        helper.make_node("ReduceMean", ["cam"], ["logits"], axes=[2, 3], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_cam",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, SIZE, SIZE])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("cam", TensorProto.FLOAT, ["batch", 2, SIZE, SIZE]),
        ],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    """Train and val splits; label 1 images are mostly bright, label 0 mostly dark."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 20), ("val", 10)):
        labels = np.arange(n) % 2
        bright = np.where(labels == 1, 0.8, 0.2)
        images = (rng.random((n, 28, 28)) < bright[:, None, None]) * 200 + 20
        arrays[f"{split}_images"] = images.astype(np.uint8)
        arrays[f"{split}_labels"] = labels[:, None]
    path = tmp_path / "brightmnist.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture
def conv_model_dir(tmp_path: Path, write_model_folder) -> Path:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnx")
    write_conv_onnx(tmp_path / "conv.onnx")
    return Path(
        write_model_folder(
            tmp_path / "zoo" / "tiny_cxr",
            (tmp_path / "conv.onnx").read_bytes(),
            input=InputSpec(size=(SIZE, SIZE)),
        )
    )


@pytest.fixture
def tiny_copy(tiny_onnx_model_dir: Path, tmp_path: Path) -> Path:
    """The shared tiny model, copied so a test may rewrite its card."""
    return Path(shutil.copytree(tiny_onnx_model_dir, tmp_path / "copy" / "tiny_cxr"))


def test_quantize_prints_figures_and_keeps_a_faster_int8(
    radlens: Radlens, conv_model_dir: Path, npz: Path
) -> None:
    result = radlens("quantize", conv_model_dir, "--data", npz, "--max-calibration", "8")
    assert result.exit_code == 0, result.output
    text = result.stdout.replace("\n", " ")
    assert "AUC fp32 1.0000" in text and "int8 1.0000" in text
    assert "ms" in text
    assert "int8 kept" in text and "model.int8.onnx" in text
    card = read_card(conv_model_dir / "card.json")
    assert card.int8 is not None and (conv_model_dir / card.int8.file).exists()

    evaluated = radlens("evaluate", "--model", conv_model_dir, "--data", npz, "--int8", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    doc = json.loads(evaluated.stdout)
    assert doc["weights"] == "model.int8.onnx"
    assert doc["metrics"]["auc"] == 1.0


def test_quantize_by_name_with_an_impossible_gate_keeps_nothing(
    radlens: Radlens, tiny_copy: Path, npz: Path
) -> None:
    result = radlens(
        "quantize",
        "tiny_cxr",
        "--models",
        tiny_copy.parent,
        "--data",
        npz,
        "--max-drop=-1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kept"] is False and doc["file"] is None
    assert doc["model"] == "tiny_cxr" and doc["n_gate"] == 10
    assert not list(tiny_copy.glob("*.int8.onnx"))
    assert read_card(tiny_copy / "card.json").int8 is None


def test_evaluate_int8_without_a_variant_exits_1(
    radlens: Radlens, tiny_onnx_model_dir: Path, npz: Path
) -> None:
    result = radlens("evaluate", "--model", tiny_onnx_model_dir, "--data", npz, "--int8")
    assert result.exit_code == 1
    assert "no INT8 variant" in result.stderr


def test_quantize_without_the_train_extra_says_what_to_install(
    radlens: Radlens, tiny_copy: Path, npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "radlens.training.quantize", None)
    result = radlens("quantize", tiny_copy, "--data", npz)
    assert result.exit_code == 1
    assert "needs the onnx package" in result.stderr and "pip install onnx" in result.stderr
