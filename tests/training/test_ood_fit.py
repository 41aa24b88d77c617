"""``radlens ood``: graph surgery keeps logits and CAM, statistics and threshold on real data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.train


def test_features_output_is_added_once_and_leaves_logits_and_cam_alone(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from radlens.inference.backends import OnnxBackend
    from radlens.training.export import export_onnx
    from radlens.training.nets import CamClassifier, FlipAverage, MeanEnsemble
    from radlens.training.ood import add_features_output
    from radlens.training.recipe import NetSpec

    torch.manual_seed(0)
    spec = NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1, max_pool=False)
    members = [CamClassifier(spec, 1, 2, 2).eval() for _ in range(2)]
    net = FlipAverage(MeanEnsemble(members), ((1,),)).eval()
    path = tmp_path / "model.onnx"
    x = np.random.default_rng(0).normal(size=(3, 1, 16, 16)).astype(np.float32)
    export_onnx(net, torch.from_numpy(x[:1]), path)
    before = OnnxBackend(path).run(x)
    assert add_features_output(path) == 4  # two members, each read plain and mirrored
    after = OnnxBackend(path).run(x)
    for name in ("logits", "cam"):
        np.testing.assert_array_equal(before[name], after[name])
    assert after["features"].shape == (3, 4 * 128)
    assert add_features_output(path) == 4  # idempotent
    assert list(OnnxBackend(path).run(x)) == ["logits", "cam", "features"]


@pytest.mark.shared_data
@pytest.mark.slow
def test_fit_ood_on_a_copy_of_the_breast_model(tmp_path: Path, shared_data_dir: Path) -> None:
    pytest.importorskip("onnx")
    from radlens.evaluation.evaluate import evaluate
    from radlens.inference.backends import OnnxBackend
    from radlens.io.datasets import read_labelled
    from radlens.models.registry import load_model, zoo_folder

    folder = Path(shutil.copytree(zoo_folder() / "breast_us_malignancy", tmp_path / "m"))
    data = shared_data_dir / "medmnist" / "breastmnist.npz"
    from radlens.training.ood import fit_ood

    report = fit_ood(folder, data, flag_rate=0.1)
    model = load_model(folder)  # hashes of the rewritten weights verify
    assert model.card.ood is not None and report.feature_dim == 3 * 256
    assert 0.05 <= model.card.ood.val_flag_rate <= 0.15
    # The card's val metrics still hold for the rewritten graph.
    val = read_labelled(data, "val", model.card.labels)
    result = evaluate(model.card, OnnxBackend(model.weights), val)
    assert result.metrics["auc"] == pytest.approx(model.card.metrics["val"]["auc"], abs=1e-6)
