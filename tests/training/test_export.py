"""A tiny CamClassifier exported to ONNX runs in radlens' ONNX backend, matching torch."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    pytest.importorskip("onnx")
    from radlens.training.export import export_onnx
    from radlens.training.nets import CamClassifier
    from radlens.training.recipe import NetSpec

    torch.manual_seed(0)
    spec = NetSpec(layers=(1, 1, 1, 1), widths=(4, 4, 8, 8), dropout=0.0)
    net = CamClassifier(spec, in_channels=1, n_classes=2, dims=2)
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    export_onnx(net, torch.zeros(1, 1, 224, 224), path)
    return net, path


def test_exported_model_has_logits_and_cam_with_a_dynamic_batch(exported) -> None:  # type: ignore[no-untyped-def]
    from radlens.inference.backends import OnnxBackend

    _, path = exported
    x = np.random.default_rng(0).normal(size=(3, 1, 224, 224)).astype(np.float32)
    out = OnnxBackend(path).run(x)
    assert out["logits"].shape == (3, 2)
    assert out["cam"].shape == (3, 2, 7, 7)
    # The CAM head: logits are the spatial mean of the CAM.
    np.testing.assert_allclose(out["cam"].mean(axis=(2, 3)), out["logits"], atol=1e-4)


def test_onnx_matches_torch(exported) -> None:  # type: ignore[no-untyped-def]
    import torch

    from radlens.training.export import parity

    net, path = exported
    batch = torch.from_numpy(
        np.random.default_rng(1).normal(size=(2, 1, 224, 224)).astype(np.float32)
    )
    assert parity(net, path, batch) < 1e-4
