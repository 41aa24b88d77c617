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
    from radlens.inference.input_stats import STATISTICS
    from radlens.io.datasets import read_labelled
    from radlens.models.registry import load_model, zoo_folder

    folder = Path(shutil.copytree(zoo_folder() / "breast_us_malignancy", tmp_path / "m"))
    data = shared_data_dir / "medmnist" / "breastmnist.npz"
    from radlens.training.ood import fit_ood

    report = fit_ood(folder, data, flag_rate=0.1)
    model = load_model(folder)  # hashes of the rewritten weights verify
    assert model.card.ood is not None and report.feature_dim == 3 * 256
    assert 0.05 <= model.card.ood.val_flag_rate <= 0.15
    # The input statistics are fitted too, and the decision flags about the rate asked for.
    inputs = model.card.ood.inputs
    assert inputs is not None and inputs.statistics == "image2d/4"
    assert (folder / inputs.stats_file).exists() and report.n_statistics == len(
        STATISTICS["image2d/4"].names
    )
    assert 0.05 <= inputs.val_flag_rate <= 0.15 and report.val_flag_rate == inputs.val_flag_rate
    from radlens.inference.ood import stats_for

    stats = stats_for(folder, model.card.ood)
    assert stats is not None and stats.inputs is not None
    # Without input statistics the card is as before, and the stale file goes.
    fit_ood(folder, data, flag_rate=0.1, input_statistics=False)
    plain = load_model(folder).card
    assert plain.ood is not None and plain.ood.inputs is None
    assert plain.ood.sha256 == model.card.ood.sha256  # the feature statistics are reproduced
    assert not (folder / inputs.stats_file).exists()
    # The card's val metrics still hold for the rewritten graph.
    val = read_labelled(data, "val", model.card.labels)
    result = evaluate(model.card, OnnxBackend(model.weights), val)
    assert result.metrics["auc"] == pytest.approx(model.card.metrics["val"]["auc"], abs=1e-6)


def test_the_combined_threshold_flags_about_the_rate_asked_for_and_keeps_the_guards() -> None:
    pytest.importorskip("onnx")
    from radlens.inference.ood import combined_score
    from radlens.training.ood import GUARD_QUANTILE, THRESHOLD_MARGIN, _combined_spec

    rng = np.random.default_rng(0)
    feature = rng.chisquare(16, 500) ** 0.5
    inputs = rng.chisquare(24, 500) ** 0.5
    spec = _combined_spec(feature, inputs, 0.05, "image2d/1", "0" * 64)
    flagged = np.mean(
        [combined_score(f, i, spec) >= 1 for f, i in zip(feature, inputs, strict=True)]
    )
    assert flagged == pytest.approx(0.05, abs=0.004) and spec.val_flag_rate == flagged
    assert spec.feature_threshold == pytest.approx(
        np.quantile(feature, GUARD_QUANTILE) * (1 + THRESHOLD_MARGIN), 1e-5
    )
    # The guards sit above every val score: on val, only the product flags.
    assert spec.feature_threshold >= feature.max() and spec.input_threshold >= inputs.max()
    # No val image on a threshold, where float noise at inference would decide its flag.
    products = np.maximum(feature / spec.feature_median, 1) * np.maximum(
        inputs / spec.input_median, 1
    )
    for scores, threshold in (
        (feature, spec.feature_threshold),
        (inputs, spec.input_threshold),
        (products, spec.product_threshold),
    ):
        assert np.min(np.abs(scores / threshold - 1)) > 1e-5
    assert spec.feature_median == pytest.approx(np.median(feature), 1e-5)
    # One extreme score is flagged whatever the other; both somewhat raised are flagged too.
    assert combined_score(spec.feature_threshold, 0.0, spec) >= 1
    assert combined_score(0.0, spec.input_threshold, spec) >= 1
    both = np.sqrt(spec.product_threshold) * (1 + 1e-9)  # just past it, not on it
    assert combined_score(both * spec.feature_median, both * spec.input_median, spec) >= 1
    assert both * spec.feature_median < spec.feature_threshold
