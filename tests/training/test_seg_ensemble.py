"""``compose_members``: segmentation networks of different input sizes joined into one ONNX
graph whose output is the mean of their logits, each member reading the input resized."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from radlens.models.registry import zoo_folder
from radlens.training.seg_ensemble import compose_members, member_parity, resized

pytest.importorskip("torch")
pytest.importorskip("monai")

from train_helpers import mask_net_onnx  # noqa: E402


def run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(["mask_logits"], {"image": x})[0]
    return out


def test_the_ensemble_takes_the_largest_input_and_averages_its_members(tmp_path: Path) -> None:
    big = mask_net_onnx(tmp_path / "big.onnx", (48, 64), seed=0)
    small = mask_net_onnx(tmp_path / "small.onnx", (32, 48), seed=1)
    out = tmp_path / "ensemble.onnx"
    assert compose_members([small, big], [(32, 48), (48, 64)], out) == (48, 64)
    x = np.random.default_rng(0).normal(size=(3, 1, 48, 64)).astype(np.float32)
    got = run(out, x)
    assert got.shape == (3, 1, 48, 64)
    # The same as running the members one by one on the resized input.
    expected = (resized(run(small, resized(x, (32, 48), antialias=True)), (48, 64), False)
                + run(big, x)) / 2  # fmt: skip
    assert np.abs(got - expected).max() < 1e-5
    assert member_parity(out, [small, big], [(32, 48), (48, 64)], x) < 1e-5
    # Each member really contributes.
    assert np.abs(got - run(big, x)).max() > 1e-3


def test_composing_a_network_with_itself_changes_nothing(tmp_path: Path) -> None:
    net = mask_net_onnx(tmp_path / "net.onnx", (32, 32))
    out = tmp_path / "twice.onnx"
    compose_members([net, net], [(32, 32), (32, 32)], out)
    x = np.random.default_rng(1).normal(size=(2, 1, 32, 32)).astype(np.float32)
    assert np.abs(run(out, x) - run(net, x)).max() < 1e-5


def test_only_two_or_more_segmentation_networks_compose(tmp_path: Path) -> None:
    net = mask_net_onnx(tmp_path / "net.onnx", (32, 32))
    with pytest.raises(ValueError, match="two or more"):
        compose_members([net], [(32, 32)], tmp_path / "one.onnx")
    with pytest.raises(ValueError, match="two or more"):
        compose_members([net, net], [(32, 32)], tmp_path / "mismatch.onnx")
    classifier = zoo_folder() / "knee_oa_kl" / "model.onnx"
    with pytest.raises(ValueError, match="not a segmentation model"):
        compose_members([net, classifier], [(32, 32), (224, 224)], tmp_path / "mixed.onnx")
