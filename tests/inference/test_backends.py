"""Backends: the fake one for unit tests, and ONNX Runtime on a tiny real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlens.errors import InferenceError
from radlens.inference.backends import FakeBackend, OnnxBackend


def test_fake_backend_returns_what_its_function_returns() -> None:
    seen: list[tuple[int, ...]] = []

    def fn(batch: np.ndarray) -> dict[str, np.ndarray]:
        seen.append(batch.shape)
        return {"logits": np.ones((len(batch), 2), np.float32)}

    out = FakeBackend(fn).run(np.zeros((3, 1, 8, 8), np.float32))
    assert out["logits"].shape == (3, 2)
    assert seen == [(3, 1, 8, 8)]


@pytest.fixture
def weights(tiny_onnx_model_dir: Path) -> Path:
    return tiny_onnx_model_dir / "model.onnx"


def batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 1, 224, 224)).astype(np.float32)


def test_onnx_backend_returns_logits_and_cam(weights: Path) -> None:
    x = batch(3)
    out = OnnxBackend(weights).run(x)
    assert set(out) == {"logits", "cam"}
    assert out["logits"].shape == (3, 2)
    assert out["cam"].shape == (3, 2, 7, 7)
    # The tiny model's class-1 logit is the mean of the image; its CAM averages to it.
    np.testing.assert_allclose(out["logits"][:, 1], x.mean(axis=(1, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(out["cam"].mean(axis=(2, 3)), out["logits"], atol=1e-5)


def test_onnx_backend_runs_in_chunks_with_the_same_result(weights: Path) -> None:
    x = batch(5, seed=1)
    whole = OnnxBackend(weights, max_batch=32).run(x)
    chunked = OnnxBackend(weights, max_batch=2).run(x)
    for name in ("logits", "cam"):
        np.testing.assert_allclose(chunked[name], whole[name], atol=1e-6)


def test_onnx_sessions_are_cached_per_file_and_thread_count(weights: Path) -> None:
    a = OnnxBackend(weights, threads=1)
    b = OnnxBackend(weights, threads=1)
    c = OnnxBackend(weights, threads=2)
    assert a._session is b._session
    assert a._session is not c._session


def test_a_file_that_is_not_onnx_raises_inference_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InferenceError, match="cannot load ONNX model"):
        OnnxBackend(bad)


def test_a_wrong_input_shape_raises_inference_error(weights: Path) -> None:
    with pytest.raises(InferenceError, match="inference failed"):
        OnnxBackend(weights).run(np.zeros((1, 3, 224, 224), np.float32))
