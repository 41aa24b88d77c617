"""The box detector: targets, augmentation, a short training run, ONNX / torch parity."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch")

from radlens.training.detection import (  # noqa: E402
    BoxNet,
    FlipAverageBoxes,
    MeanBoxes,
    TrunkBoxNet,
    augment_item,
    export_detector,
    make_targets,
)
from radlens.training.recipe import NetSpec, recipe_from_dict  # noqa: E402

SQUARE = 255


def recipe_dict(data: Path, **schedule: object) -> dict[str, object]:
    return {
        "name": "tiny_boxes",
        "version": "0.0.1",
        "task": "detection",
        "data": str(data),
        "labels": ["blob", "bar"],
        "finding_code": "object",
        "finding_label": "Object",
        "licence": "CC0",
        "commercial_use": True,
        "citation": "",
        "intended_use": "tests",
        "input": {"size": [32, 48], "channels": 1, "resize": "pad", "use_window": False},
        "applies_to": {"modalities": ["OT"]},
        "net": {"arch": "boxnet", "widths": [4, 8, 8, 8], "layers": [1, 1, 1, 0]},
        "detection": {"stride": 4, "min_score": 0.01},
        "schedule": {"epochs": 2, "batch_size": 4, "threads": 1, "lr": 5e-3, **schedule},
        "augment": {"scale": [0.9, 1.1], "flip_axes": ["x", "y"], "contrast": 0.1},
    }


def synthetic_set(root: Path, n: int = 6) -> Path:
    """Grey images with bright squares ("blob") and bars ("bar"), in ``boxes.csv`` form."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    rows = []
    for split in ("train", "val"):
        for k in range(n):
            image = np.full((64, 96), 40, np.uint8)
            name = f"{split}{k}.png"
            for label, (h, w) in (("blob", (12, 12)), ("bar", (8, 24))):
                y, x = int(rng.integers(0, 64 - h)), int(rng.integers(0, 96 - w))
                image[y : y + h, x : x + w] = SQUARE if label == "blob" else 160
                rows.append([split, name, label, x, y, x + w, y + h])
            PILImage.fromarray(image).save(root / "images" / name)
    with (root / "boxes.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "image", "label", "xmin", "ymin", "xmax", "ymax"])
        writer.writerows(rows)
    return root


def test_targets_put_a_peak_of_one_on_the_centre_cell_of_the_box_class() -> None:
    boxes = np.array([[8, 8, 24, 24], [30, 4, 38, 12]], np.float32)
    t = make_targets(boxes, np.array([1, 0]), 2, (32, 48), stride=4)
    assert t.heat.shape == (2, 8, 12)
    assert t.heat[1, 4, 4] == 1.0 and t.heat[0, 2, 8] == 1.0
    assert t.heat[0, 4, 4] < 1e-6  # classes apart
    assert t.weight[4, 4] > 0 and t.weight[0, 0] == 0
    assert t.ltrb[:, 4, 4].tolist() == [8, 8, 24, 24]  # the box, in input pixels
    assert t.ltrb[:, 2, 8].tolist() == [30, 4, 38, 12]


@pytest.mark.parametrize("seed", range(4))
def test_augmented_boxes_follow_the_pixels(seed: int) -> None:
    recipe = recipe_from_dict(recipe_dict(Path("unused")), "test")
    x = np.full((1, 32, 48), -2.0, np.float32)
    x[:, 8:20, 10:30] = 2.0  # the object
    boxes = np.array([[10, 8, 30, 20]], np.float32)
    out, moved, classes = augment_item(x, boxes, np.array([0]), recipe, np.random.default_rng(seed))
    assert out.shape == (1, 32, 48) and classes.tolist() == [0]
    x0, y0, x1, y1 = np.round(moved[0]).astype(int)
    inside = out[0, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1]
    assert inside.size and inside.min() > 0.5  # still on the object after scale and flips


def test_boxnet_output_sizes_follow_any_input_size() -> None:
    net = BoxNet(3, 4, (4, 8, 8, 8), (1, 1, 1, 1)).eval()
    for rows, cols in ((32, 48), (40, 56), (64, 64)):
        with torch.no_grad():
            heat, ltrb = net(torch.zeros(1, 3, rows, cols))
        assert heat.shape == (1, 4, rows // 4, cols // 4) and ltrb.shape == (
            1,
            4,
            rows // 4,
            cols // 4,
        )
        assert float(heat.min()) >= 0 and float(heat.max()) <= 1 and float(ltrb.min()) > 0


def test_onnx_export_matches_torch_at_other_sizes_too(tmp_path: Path) -> None:
    from radlens.inference.backends import OnnxBackend

    torch.manual_seed(0)
    net = BoxNet(1, 2, (4, 8, 8, 8), (1, 1, 1, 1)).eval()
    example = torch.randn(2, 1, 32, 48)
    diff = export_detector(net, example, tmp_path / "m.onnx")
    assert diff < 1e-4
    other = torch.randn(1, 1, 48, 64)  # rows and columns are dynamic axes
    out = OnnxBackend(tmp_path / "m.onnx").run(other.numpy())
    with torch.no_grad():
        heat, ltrb = net(other)
    np.testing.assert_allclose(out["heatmap"], heat.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["ltrb"], ltrb.numpy(), rtol=1e-4)


def test_a_trunk_detector_reads_any_size_and_exports_its_pooled_features(tmp_path: Path) -> None:
    from radlens.inference.backends import OnnxBackend

    torch.manual_seed(0)
    net = TrunkBoxNet(NetSpec(arch="resnet-tiny"), 1, 2).eval()
    assert all(key.startswith("trunk.") for key in net.trunk.state_dict(prefix="trunk."))
    for rows, cols in ((64, 64), (40, 56), (96, 72)):
        with torch.no_grad():
            heat, ltrb, features = net(torch.zeros(1, 1, rows, cols), features=True)
        assert heat.shape == (1, 2, rows // 4, cols // 4) and ltrb.shape == (
            1,
            4,
            rows // 4,
            cols // 4,
        )
        assert features.shape == (1, 32)  # the decoder's channels (widths[1])
    diff = export_detector(net, torch.randn(2, 1, 64, 64), tmp_path / "m.onnx")
    assert diff < 1e-4
    other = torch.randn(1, 1, 48, 80)  # rows and columns are dynamic axes
    out = OnnxBackend(tmp_path / "m.onnx").run(other.numpy())
    assert set(out) == {"heatmap", "ltrb", "features"}
    with torch.no_grad():
        heat, ltrb, features = net(other, features=True)
    np.testing.assert_allclose(out["heatmap"], heat.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["ltrb"], ltrb.numpy(), rtol=1e-4)
    np.testing.assert_allclose(out["features"], features.numpy(), atol=1e-5)
    assert not net.training  # exporting left it in eval mode


def test_flip_averaged_maps_mirror_exactly_with_the_image(tmp_path: Path) -> None:
    """Left-right flip averaging makes a detector mirror-equivariant: the maps of a mirrored
    image are the mirrored maps, with ltrb's left and right swapped."""
    torch.manual_seed(0)
    tta = FlipAverageBoxes(TrunkBoxNet(NetSpec(arch="resnet-tiny"), 1, 2).eval(), ((1,),)).eval()
    x = torch.randn(1, 1, 64, 96)
    with torch.no_grad():
        heat, ltrb, features = tta(x, features=True)
        m_heat, m_ltrb, m_features = tta(x.flip(-1), features=True)
    torch.testing.assert_close(m_heat, heat.flip(-1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(m_ltrb, ltrb.flip(-1)[:, [2, 1, 0, 3]], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(m_features, features, atol=1e-5, rtol=1e-4)
    diff = export_detector(tta, torch.randn(2, 1, 64, 64), tmp_path / "m.onnx")
    assert diff < 1e-4  # the exported graph holds the mirrored passes and their outputs
    with pytest.raises(ValueError, match="not training"):
        tta(x, logits=True)


def test_a_top_bottom_flip_swaps_top_and_bottom_distances() -> None:
    torch.manual_seed(0)
    net = BoxNet(1, 1, (4, 8, 8, 8), (1, 1, 1, 1)).eval()
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():
        heat, ltrb = FlipAverageBoxes(net, ((1,), (2,))).eval()(x)
        h0, l0 = net(x)
        h1, l1 = net(x.flip(-1))
        h2, l2 = net(x.flip(-2))
    torch.testing.assert_close(heat, (h0 + h1.flip(-1) + h2.flip(-2)) / 3)
    mirrored = l1.flip(-1)[:, [2, 1, 0, 3]] + l2.flip(-2)[:, [0, 3, 2, 1]]
    torch.testing.assert_close(ltrb, (l0 + mirrored) / 3)


def test_detector_recipes_refuse_what_the_detector_cannot_do() -> None:
    def recipe(**net: object) -> object:
        raw = recipe_dict(Path("unused"))
        return recipe_from_dict({**raw, "net": net}, "test")

    with pytest.raises(Exception, match="not basicunet"):
        recipe(arch="basicunet")
    classifier = {**recipe_dict(Path("unused")), "task": "binary", "labels": ["no", "yes"]}
    with pytest.raises(Exception, match="boxnet is for detection"):
        recipe_from_dict({**classifier, "net": {"arch": "boxnet"}}, "test")
    with pytest.raises(ValueError, match="stride 4"):
        TrunkBoxNet(NetSpec(arch="resnet-tiny", max_pool=False), 1, 1)


@pytest.mark.slow
def test_a_trunk_detector_trains_with_the_feature_and_input_ood_score(tmp_path: Path) -> None:
    from radlens.domain.imaging import Geometry, Image, ImageLayout
    from radlens.inference.backends import OnnxBackend
    from radlens.inference.detection import detect_findings
    from radlens.inference.ood import card_input_stats, stats_for
    from radlens.models.registry import load_model
    from radlens.training.ood import refit_detector_ood
    from radlens.training.train import train

    data = synthetic_set(tmp_path / "data", n=12)
    raw = {**recipe_dict(data, epochs=1), "net": {"arch": "resnet-tiny", "weights": "float16"}}
    raw["schedule"] = {**raw["schedule"], "tta": True}  # type: ignore[dict-item]
    card, _ = train(recipe_from_dict(raw, "test"), tmp_path / "model", data, "radlens train t")
    model = load_model(tmp_path / "model")
    assert card.outputs == ("heatmap", "ltrb", "features")
    assert card.detection is not None and card.detection.ood_inputs is None
    assert card.ood is not None and card.ood.inputs is not None
    assert card.ood.inputs.statistics == "image2d/4"
    assert card_input_stats(model.folder, card) is None  # not the input-only score
    stats = stats_for(model.folder, card.ood)
    assert stats is not None and stats.means.shape == (1, 32)  # one class: a box set
    log = (model.folder / "train.log").read_text()
    assert "OOD score (features and input statistics)" in log
    # float16 weights, each output held to its own scale; the card was measured after.
    assert "(heatmap up to" in log and "(ltrb up to" in log and "(features up to" in log
    assert "test-time augmentation: the mean over mirror images ((1,), (2,))" in log
    import onnx

    stored = {i.data_type for i in onnx.load(str(model.weights)).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in stored
    image = np.asarray(PILImage.open(data / "images" / "val0.png"))
    found = detect_findings(
        Image(image, ImageLayout.YX, Geometry((1.0, 1.0)), source_uids=("1.2",)),
        card,
        OnnxBackend(model.weights),
        ood_stats=stats,
    )
    for finding in found:  # every finding carries both distances and the decision
        assert finding.ood_feature_score is not None and finding.ood_input_score is not None
        assert finding.ood_score is not None
    # radlens ood refits the same files and card from the same data.
    before = {p.name: p.read_bytes() for p in sorted(model.folder.glob("*.npz"))}
    assert set(before) == {"ood.npz", "ood_inputs.npz"}
    spec = refit_detector_ood(model.folder, data)
    assert spec == card.ood
    assert {p.name: p.read_bytes() for p in sorted(model.folder.glob("*.npz"))} == before


@pytest.mark.slow
def test_train_detection_writes_a_verified_model_that_detects(tmp_path: Path) -> None:
    from radlens.inference.backends import OnnxBackend
    from radlens.inference.detection import detect
    from radlens.models.card import Task
    from radlens.models.registry import load_model
    from radlens.training.train import train

    data = synthetic_set(tmp_path / "data")
    recipe = recipe_from_dict(recipe_dict(data, epochs=3), "test")
    card, scores = train(recipe, tmp_path / "model", data, "radlens train test")
    model = load_model(tmp_path / "model")  # the hash in the card matches the weights
    assert model.card == card and card.task is Task.DETECTION
    assert card.outputs == ("heatmap", "ltrb") and card.labels == ("blob", "bar")
    assert set(card.metrics["val"]) >= {"map50", "map50_95", "ap50:blob", "ap50:bar"}
    assert card.metrics["val"]["map50"] == pytest.approx(scores.map_50, abs=1e-4)
    assert "onnx parity" in (tmp_path / "model" / "train.log").read_text()
    # The operating score is fitted on val: refitting it there finds the same one.
    from radlens.evaluation.detection import measure_detector
    from radlens.io.box_sets import read_boxes

    val = read_boxes(data, "val", card.labels)
    _, point = measure_detector(card, OnnxBackend(model.weights), val, default=0.3)
    assert card.threshold == pytest.approx(point.score)
    assert card.metrics["val"]["f1_at_operating"] == pytest.approx(point.f1, abs=1e-4)
    assert "operating score" in (tmp_path / "model" / "train.log").read_text()
    # The input-statistics OOD score is fitted with the card, its file hash-checked.
    from radlens.inference.ood import card_input_stats

    assert card.detection is not None and card.detection.ood_inputs is not None
    assert card_input_stats(model.folder, card) is not None
    assert "input-statistics OOD score" in (tmp_path / "model" / "train.log").read_text()
    image = np.asarray(PILImage.open(data / "images" / "val0.png"))
    found = detect(image, card, OnnxBackend(model.weights))
    assert found.boxes.shape[1] == 4 and len(found) <= card.detection.max_detections  # type: ignore[union-attr]


def test_a_box_set_without_a_recipe_gets_an_inferred_detection_recipe(tmp_path: Path) -> None:
    from radlens.training.detection import infer_detection_recipe

    data = synthetic_set(tmp_path / "data")
    inferred = infer_detection_recipe(data, "tiny")
    recipe = recipe_from_dict(inferred, "inferred")
    assert recipe.task.value == "detection" and recipe.labels == ("bar", "blob")
    assert recipe.input.size == (64, 96) and recipe.input.channels == 1  # grey kept
    assert recipe.net.arch == "boxnet" and recipe.schedule.crop == (48, 64)
    assert not recipe.commercial_use and recipe.augment.flip_axes == ()


def test_cli_train_task_detection_infers_the_recipe_and_records_the_flag(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from radlens.cli.main import app

    data = synthetic_set(tmp_path / "data")
    out = tmp_path / "model"
    args = ["train", "--dataset", "tiny", "--data", str(data), "--task", "detection"]
    args += ["--epochs", "1", "--set", "net.widths=[4,8,8,8]", "--set", "schedule.crop=[32,48]"]
    args += ["--recipes", str(tmp_path / "none"), "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    card = (out / "card.json").read_text()
    assert '"task": "detection"' in card and "--task detection" in card
    evaluated = CliRunner().invoke(
        app, ["evaluate", "--model", str(out), "--data", str(data), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    doc = json.loads(evaluated.output)
    assert doc["n"] == 6 and set(doc["per_class"]) == {"bar", "blob"}
    assert doc["metrics"]["map50"] == pytest.approx(doc["card_metrics"]["map50"], abs=1e-4)


def test_a_detector_ensemble_averages_the_maps_and_puts_the_features_side_by_side() -> None:
    torch.manual_seed(0)
    nets = [TrunkBoxNet(NetSpec(arch="resnet-tiny"), 1, 2).eval() for _ in range(2)]
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        heat, ltrb, feats = MeanBoxes(nets)(x, features=True)
        outs = [net(x, features=True) for net in nets]
    assert torch.allclose(heat, (outs[0][0] + outs[1][0]) / 2)
    assert torch.allclose(ltrb, (outs[0][1] + outs[1][1]) / 2)
    assert torch.equal(feats, torch.cat([outs[0][2], outs[1][2]], dim=1))
    assert MeanBoxes(nets).has_features
    assert not MeanBoxes([BoxNet(1, 2, (4, 8, 8, 8), (1, 1, 1, 1))]).has_features
    with pytest.raises(ValueError, match="not training"):
        MeanBoxes(nets)(x, logits=True)


@pytest.mark.slow
def test_detector_ensemble_members_in_worker_processes_are_the_ones_trained_in_turn(
    tmp_path: Path,
) -> None:
    """``schedule.ensemble`` for a detection recipe: members with seeds seed, seed + 1 in
    one graph; trained two at a time (``schedule.workers``) the file is byte for byte the
    same; member 1 alone is the plain recipe's network."""
    import re

    from radlens.models.registry import sha256_of
    from radlens.training.train import train

    data = synthetic_set(tmp_path / "data")
    runs = {}
    for workers in (1, 2):
        raw = recipe_dict(data, epochs=2, ensemble=2, workers=workers)
        out = tmp_path / f"w{workers}"
        card, _ = train(recipe_from_dict(raw, "test"), out, data, "radlens train t")
        log = (out / "train.log").read_text()
        assert "ensemble: the mean of 2 members' maps in one graph" in log
        epochs = re.findall(r"(member \d/2: seed \d|epoch +\d+ loss [\d.]+)", log)
        runs[workers] = (sha256_of(out / "model.onnx"), epochs, card.metrics["val"])
    assert runs[1] == runs[2]
    single = recipe_dict(data, epochs=2)
    train(recipe_from_dict(single, "test"), tmp_path / "one", data, "radlens train t")
    one = re.findall(r"epoch +\d+ loss [\d.]+", (tmp_path / "one" / "train.log").read_text())
    assert runs[1][1][1 : 1 + len(one)] == one  # member 1's epochs are the plain run's
