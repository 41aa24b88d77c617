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


@pytest.mark.parametrize(
    ("dims", "channels", "shape"),
    [(2, 3, (2, 3, 28, 28)), (3, 1, (2, 1, 28, 28, 28)), (3, 1, (1, 1, 16, 24, 20))],
    ids=["2d-colour", "3d-28", "3d-anisotropic"],
)
def test_onnx_matches_torch_for_colour_and_volumes(
    tmp_path, dims: int, channels: int, shape: tuple[int, ...]
) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    pytest.importorskip("onnx")
    from radlens.inference.backends import OnnxBackend
    from radlens.training.export import export_onnx, parity
    from radlens.training.nets import CamClassifier
    from radlens.training.recipe import NetSpec

    torch.manual_seed(0)
    spec = NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1, max_pool=dims == 3)
    net = CamClassifier(spec, in_channels=channels, n_classes=5, dims=dims).eval()
    path = tmp_path / "model.onnx"
    export_onnx(net, torch.zeros(1, *shape[1:]), path)
    batch = torch.from_numpy(np.random.default_rng(2).normal(size=shape).astype(np.float32))
    assert parity(net, path, batch) <= 1e-4
    out = OnnxBackend(path).run(batch.numpy())
    assert out["logits"].shape == (shape[0], 5)
    assert out["cam"].shape[:2] == (shape[0], 5) and out["cam"].ndim == dims + 2
    spatial = tuple(range(2, dims + 2))
    np.testing.assert_allclose(out["cam"].mean(axis=spatial), out["logits"], atol=1e-4)


@pytest.mark.parametrize(("dims", "flips"), [(2, ((1,),)), (3, ((1,), (2,), (3,)))])
def test_flip_average_exports_with_aligned_cam(tmp_path, dims: int, flips) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    pytest.importorskip("onnx")
    from radlens.inference.backends import OnnxBackend
    from radlens.training.export import export_onnx, parity
    from radlens.training.nets import CamClassifier, FlipAverage
    from radlens.training.recipe import NetSpec

    torch.manual_seed(0)
    spec = NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1, max_pool=False)
    net = CamClassifier(spec, in_channels=1, n_classes=2, dims=dims).eval()
    tta = FlipAverage(net, flips).eval()
    shape = (2, 1, *([16] * dims))
    x = torch.from_numpy(np.random.default_rng(3).normal(size=shape).astype(np.float32))
    with torch.no_grad():
        plain, _ = net(x)
        mirrored, _ = net(x.flip(-1))
        averaged, cam = tta(x)
    expected = (plain + mirrored) / 2 if dims == 2 else None
    if expected is not None:
        torch.testing.assert_close(averaged, expected)
    # A mirrored input gives the mirrored averaged CAM when every flip is in the set.
    with torch.no_grad():
        _, cam_of_mirror = tta(x.flip(-1))
    if dims == 2:
        torch.testing.assert_close(cam_of_mirror, cam.flip(-1), atol=1e-5, rtol=0)
    path = tmp_path / "tta.onnx"
    export_onnx(tta, x[:1], path)
    assert parity(tta, path, x) <= 1e-4
    out = OnnxBackend(path).run(x.numpy())
    spatial = tuple(range(2, dims + 2))
    np.testing.assert_allclose(out["cam"].mean(axis=spatial), out["logits"], atol=1e-4)
