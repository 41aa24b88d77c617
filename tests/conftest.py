"""Fixtures shared by every test package: where the real data live."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from pg import create_database, postgres_cluster

SHARED_DATA_DIR = Path(__file__).parents[1].parent / "shared" / "data"
"""``../shared/data`` next to the repository (developers' machines only)."""


def find_pydicom_data_dir() -> Path | None:
    """The pydicom-data files (``data_store/data``), or None when not installed."""
    spec = importlib.util.find_spec("data_store")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


@pytest.fixture(scope="session")
def pydicom_data_dir() -> Path:
    """Folder of the pydicom-data DICOM files; skips when pydicom-data is not installed."""
    folder = find_pydicom_data_dir()
    if folder is None:
        pytest.skip("needs pydicom-data (pip install pydicom-data, or radlens[dev])")
    return folder


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data``; skips where it is absent."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip("needs ../shared/data (not in a user's clone)")
    return SHARED_DATA_DIR


# --- tiny models (no shipped weights needed) -------------------------------------------

TINY_MODEL_NAME = "tiny_cxr"


def tiny_card_fields() -> dict[str, object]:
    """Fields of a valid binary chest-radiograph card (structure of recipes/cxr_pneumonia)."""
    from radlens.models.card import AppliesTo, Calibration, InputSpec, Population, Training

    return {
        "name": TINY_MODEL_NAME,
        "version": "0.0.1",
        "task": "binary",
        "labels": ("NORMAL", "PNEUMONIA"),
        "finding_code": "pneumonia",
        "finding_label": "Pneumonia",
        "input": InputSpec(size=(224, 224)),
        "applies_to": AppliesTo(
            modalities=("CR", "DX"),
            body_parts=("CHEST",),
            views=("AP", "PA"),
            population=Population("pediatric, 1-5 years", 1, 5),
        ),
        "calibration": Calibration(temperature=1.0),
        "thresholds": {"operating": 0.5, "high_sensitivity": 0.3},
        "metrics": {"val": {"auc": 0.9, "acc": 0.8, "ece": 0.05, "n": 10.0}},
        "training": Training(
            command="built by tests/conftest.py",
            data="synthetic",
            licence="CC0-1.0",
            commercial_use=True,
        ),
        "intended_use": "Unit tests only; not a medical device.",
        "limitations": ("Mean brightness is not pneumonia.",),
        "sha256": "0" * 64,
    }


@pytest.fixture(scope="session")
def make_card():  # type: ignore[no-untyped-def]
    """``make_card(**overrides) -> ModelCard``: a valid tiny card with fields replaced."""
    from radlens.models.card import ModelCard

    def make(**overrides: object) -> ModelCard:
        return ModelCard(**(tiny_card_fields() | overrides))  # type: ignore[arg-type]

    return make


def write_tiny_onnx(path: Path) -> None:
    """An ONNX model with the radlens contract, built with the ``onnx`` helper API.

    ``image`` float32 (B, 1, 224, 224) -> AveragePool 32x32 -> (B, 1, 7, 7);
    ``cam`` = that map times (-1, +1) -> (B, 2, 7, 7); ``logits`` = spatial mean of ``cam``
    -> (B, 2). So a brighter image is more "positive" and the CAM peaks where it is bright.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    sign = numpy_helper.from_array(np.array([-1.0, 1.0], np.float32).reshape(1, 2, 1, 1), "sign")
    nodes = [
        helper.make_node(
            "AveragePool", ["image"], ["pooled"], kernel_shape=[32, 32], strides=[32, 32]
        ),
        helper.make_node("Mul", ["pooled", "sign"], ["cam"]),
        helper.make_node("ReduceMean", ["cam"], ["logits"], axes=[2, 3], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cam",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 224, 224])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("cam", TensorProto.FLOAT, ["batch", 2, 7, 7]),
        ],
        initializer=[sign],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))


def write_model_folder(folder: Path, weights: bytes, **overrides: object) -> Path:
    """A model folder (``model.onnx`` + ``card.json`` with the right sha256)."""
    from dataclasses import replace

    from radlens.models.card import ModelCard, write_card
    from radlens.models.registry import sha256_of

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(weights)
    card = ModelCard(**(tiny_card_fields() | overrides))  # type: ignore[arg-type]
    write_card(replace(card, sha256=sha256_of(folder / "model.onnx")), folder / "card.json")
    return folder


@pytest.fixture(scope="session")
def tiny_onnx_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, runnable tiny ONNX model folder; skips without the ``onnx`` package."""
    pytest.importorskip("onnx")
    scratch = tmp_path_factory.mktemp("tiny_onnx_build")
    write_tiny_onnx(scratch / "model.onnx")
    return write_model_folder(
        tmp_path_factory.mktemp("tiny_onnx_zoo") / TINY_MODEL_NAME,
        (scratch / "model.onnx").read_bytes(),
    )


@pytest.fixture(scope="session")
def fake_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with stand-in weight bytes (hash matches), for FakeBackend tests."""
    return write_model_folder(
        tmp_path_factory.mktemp("fake_zoo") / TINY_MODEL_NAME,
        b"stand-in weights for FakeBackend tests\n",
    )


@pytest.fixture(scope="session", name="write_model_folder")
def write_model_folder_fixture():  # type: ignore[no-untyped-def]
    """``write_model_folder(folder, weights_bytes, **card_overrides) -> folder``."""
    return write_model_folder


@pytest.fixture
def int8_latency(monkeypatch: pytest.MonkeyPatch) -> tuple[float, float]:
    """``radlens quantize``'s latency figures fixed at fp32 2 ms, INT8 1 ms.

    Whether INT8 wins the race on a tiny graph depends on what else the host is running (a
    busy CI host once read 8.93 ms against 8.41), and these tests check what follows the
    gate's decision: the files, the card and the registry. The speed rule itself is tested
    on :func:`radlens.training.quantize.gate_int8`, the timing on
    :func:`~radlens.training.quantize.median_latency_ms` without an order, and the real
    speed-ups are measured in ``benchmarks/models.md`` (ms/image fp32 and int8).
    """
    from radlens.training import quantize

    figures = (2.0, 1.0)

    def fixed(paths: object, example: object, **_: object) -> list[float]:
        return list(figures)

    monkeypatch.setattr(quantize, "median_latency_ms", fixed)
    return figures


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback for the session (skips when not installed)."""
    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a new database on the PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'radlens.sqlite'}"
    server_url: str = request.getfixturevalue("postgres_server")
    return create_database(server_url)
