"""``radlens train --dataset`` end to end on tiny real-format data, then ``evaluate``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

from radlens.cli.train import parse_sets
from radlens.errors import ConfigError
from train_helpers import TINY, ellipse_set


def learnable_npz(path: Path, shape: tuple[int, ...], n_classes: int, n: int = 24) -> Path:
    """Brightness encodes the class, so two epochs learn something."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val"):
        labels = np.arange(n) % n_classes
        noise = rng.integers(0, 60, (n, *shape))
        images = noise + (labels * (190 // max(1, n_classes - 1))).reshape(-1, *[1] * len(shape))
        arrays[f"{split}_images"] = images.astype(np.uint8)
        arrays[f"{split}_labels"] = labels.reshape(n, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_parse_sets_reads_toml_values_and_bare_words() -> None:
    assert parse_sets(["net.widths=[8, 8, 16, 16]", "seed=3", "net.arch=resnet10"]) == {
        "net.widths": [8, 8, 16, 16],
        "seed": 3,
        "net.arch": "resnet10",
    }
    with pytest.raises(ConfigError):
        parse_sets(["no-equals-sign"])


@pytest.mark.train
@pytest.mark.slow
@pytest.mark.parametrize(
    ("shape", "n_classes", "output_cam_ndim", "extra"),
    [
        ((8, 8, 8), 2, 5, ["--set", "schedule.ensemble=2", "--set", "net.weights=float16"]),
        (
            (12, 12, 3),
            3,
            4,
            [
                "--set",
                "schedule.ema=0.9",
                "--set",
                "schedule.tta=true",
                "--set",
                "augment.hflip=true",
            ],
        ),
        (
            (12, 12),
            2,
            4,
            [
                "--set",
                "augment.consistency=2",
                "--set",
                "augment.corruption_copies=2",
                "--set",
                'augment.corruptions=["blur","gaussian_noise"]',
                "--set",
                "input.denoise={median = 3}",
                "--set",
                "input.deblur={factor = 1.5}",
            ],
        ),
    ],
    ids=["volume-binary-ensemble-float16", "colour-multiclass-ema-tta", "gray-consistency"],
)
def test_train_an_unknown_dataset_then_evaluate_reproduces_the_card(
    radlens: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shape: tuple[int, ...],
    n_classes: int,
    output_cam_ndim: int,
    extra: list[str],
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    monkeypatch.setenv("RADLENS_DATA", str(tmp_path / "data"))
    learnable_npz(tmp_path / "data" / "medmnist" / "tinymnist.npz", shape, n_classes)
    out = tmp_path / "model"
    trained = radlens(
        "train",
        "--dataset",
        "tinymnist",
        "--recipes",
        tmp_path,
        "-o",
        out,
        "--seed",
        "1",
        *TINY,
        *extra,
    )
    assert trained.exit_code == 0, trained.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["name"] == "tinymnist" and card["enabled_by_default"] is False
    # Every trained model gets its out-of-distribution score and threshold.
    assert card["ood"]["method"] == "mahalanobis" and (out / "ood.npz").exists()
    assert card["training"]["command"].startswith("radlens train --dataset tinymnist")
    log = (out / "train.log").read_text()
    assert log.count("epoch ") >= 2
    if "augment.consistency=2" in extra:
        assert (
            "at severities 1, 2, 3, 4, 5; 2 corrupted copies per image, p=0.00 per item, "
            "consistency weight 2" in log
        )
    if "input.denoise={median = 3}" in extra:
        # Asked for by the recipe, fitted on the training images at the end of training.
        denoise = card["input"]["denoise"]
        assert (denoise["median"], denoise["n_train"]) == (3, 24)
        assert 0 <= denoise["noise_above"] < 1 and 0 <= denoise["impulse_above"] < 1
        assert "denoise: 3 x 3 median filter above noise" in log
    if "input.deblur={factor = 1.5}" in extra:
        deblur = card["input"]["deblur"]
        assert (deblur["factor"], deblur["n_train"], deblur["wiener_k"]) == (1.5, 24, 0.01)
        assert deblur["blur_max"] > 0
        assert "deblur: Wiener deconvolution (k 0.01) at blur" in log
    if "schedule.ensemble=2" in extra:
        assert "member 2/2" in log and "seed 2" in log
    if "net.weights=float16" in extra:
        # Stored as float16, then calibrated, measured and hashed as shipped: the evaluation
        # below reproduces the card from this file.
        import onnx

        stored = {i.data_type for i in onnx.load(str(out / "model.onnx")).graph.initializer}
        assert onnx.TensorProto.FLOAT16 in stored and "weights stored as float16" in log

    evaluated = radlens(
        "evaluate", "--model", out, "--data", tmp_path / "data/medmnist/tinymnist.npz", "--json"
    )
    assert evaluated.exit_code == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    for key in ("auc", "acc", "ece"):
        assert report["metrics"][key] == pytest.approx(card["metrics"]["val"][key], abs=1e-6)

    from radlens.inference.backends import OnnxBackend

    x = np.zeros((1, card["input"]["channels"], *card["input"]["size"]), np.float32)
    assert OnnxBackend(out / "model.onnx").run(x)["cam"].ndim == output_cam_ndim


def test_train_needs_a_recipe_or_a_dataset(radlens: Callable[..., Result], tmp_path: Path) -> None:
    result = radlens("train", "-o", tmp_path / "m")
    assert result.exit_code == 1
    assert "either a recipe file or --dataset" in result.stderr


def test_train_an_absent_dataset_says_where_it_looked(
    radlens: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("RADLENS_DATA", str(tmp_path))
    result = radlens("train", "--dataset", "nosuchmnist", "--recipes", tmp_path, "-o", tmp_path)
    assert result.exit_code == 1
    assert "no dataset 'nosuchmnist'" in result.stderr


def test_train_task_segmentation_on_data_without_masks_says_what_it_needs(
    radlens: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    monkeypatch.setenv("RADLENS_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "notmasks" / "images").mkdir(parents=True)
    result = radlens(
        "train", "--dataset", "notmasks", "--task", "segmentation", "--recipes", tmp_path, "-o",
        tmp_path / "m",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "--task segmentation needs a folder with images/, masks/ and labels.csv" in (
        result.stderr
    )


def test_infer_segmentation_recipe_keeps_the_aspect_and_measures_hc(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    from radlens.training.recipe import recipe_from_dict
    from radlens.training.segment import infer_segmentation_recipe

    inferred = infer_segmentation_recipe(ellipse_set(tmp_path / "blobs"), "blobs")
    assert inferred["input"]["size"] == [64, 96]
    assert inferred["measure"] == "head_circumference" and inferred["commercial_use"] is False
    recipe = recipe_from_dict(inferred, "inferred")
    assert recipe.task.value == "segmentation" and recipe.net.arch == "basicunet"
    assert infer_segmentation_recipe(tmp_path / "blobs", "blobs", 48)["input"]["size"] == [32, 48]


@pytest.mark.train
@pytest.mark.slow
def test_train_task_segmentation_infers_a_recipe_from_a_mask_set(
    radlens: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    monkeypatch.setenv("RADLENS_DATA", str(tmp_path / "data"))
    ellipse_set(tmp_path / "data" / "seg" / "blobs")
    out = tmp_path / "model"
    trained = radlens(
        "train", "--dataset", "blobs", "--task", "segmentation", "--size", "48", "--recipes",
        tmp_path, "--set", "schedule.epochs=2", "--set", "net.weights=float16", "-o", out,
    )  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    card = json.loads((out / "card.json").read_text())
    # Stored as float16, measured and hashed as shipped (the card's figures are of this file).
    import onnx

    stored = {i.data_type for i in onnx.load(str(out / "model.onnx")).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in stored
    assert "weights stored as float16" in (out / "train.log").read_text()
    assert card["task"] == "segmentation" and card["input"]["size"] == [32, 48]
    assert card["segmentation"]["measure"] == "head_circumference"
    assert card["enabled_by_default"] is False and (out / "model.onnx").exists()
    assert "--task segmentation" in card["training"]["command"]
    assert {"dice", "hd95_mm"} <= set(card["metrics"]["val"])


@pytest.mark.train
@pytest.mark.slow
def test_a_multi_scale_segmentation_ensemble_is_its_single_size_runs_composed(
    radlens: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    import re

    monkeypatch.setenv("RADLENS_DATA", str(tmp_path / "data"))
    ellipse_set(tmp_path / "data" / "seg" / "blobs")
    common = ["train", "--dataset", "blobs", "--task", "segmentation", "--size", "48",
              "--recipes", tmp_path, "--set", "schedule.epochs=2"]  # fmt: skip
    out = tmp_path / "ensemble"
    trained = radlens(
        *common, "--set", "schedule.member_sizes=[[32, 48], [24, 32]]",
        "--set", "net.weights=float16", "-o", out,
    )  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["input"]["size"] == [32, 48] and {"dice", "hc_mad_mm"} <= set(
        card["metrics"]["val"]
    )
    log = (out / "train.log").read_text()
    shas = dict(re.findall(r"member (\d)/2 \(trained\): input \[\d+, \d+\], sha256 (\w+)", log))
    assert set(shas) == {"1", "2"} and "weights stored as float16" in log
    # Member 2 is exactly what a single-size run of the recipe at its size exports.
    single = tmp_path / "single"
    alone = radlens(*common, "--set", "input.size=[24, 32]", "-o", single)
    assert alone.exit_code == 0, alone.stderr
    from radlens.models.registry import sha256_of

    assert sha256_of(single / "model.onnx") == shas["2"]
    # Trained members can be given instead: the same ensemble, nothing trained.
    given = tmp_path / "given"
    big = tmp_path / "big"
    assert radlens(*common, "-o", big).exit_code == 0
    again = radlens(
        *common, "--set", "schedule.member_sizes=[[32, 48], [24, 32]]",
        "--set", "net.weights=float16", "--member", big / "model.onnx",
        "--member", single / "model.onnx", "-o", given,
    )  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert sha256_of(big / "model.onnx") == shas["1"]
    assert (given / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()
    assert "(given)" in (given / "train.log").read_text()


def test_trained_members_are_only_for_segmentation_ensembles(
    radlens: Callable[..., Result], tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    done = radlens(
        "train", "recipes/fetal_head_hc18.toml", "--set", "schedule.member_sizes=[]",
        "--member", tmp_path / "m.onnx", "-o", tmp_path / "out",
    )  # fmt: skip
    assert done.exit_code != 0 and "schedule.member_sizes" in done.stderr


@pytest.mark.train
@pytest.mark.slow
def test_net_start_fine_tunes_a_trained_model_of_the_recipe_and_refuses_another(
    radlens: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``net.start``: a second run starts from the first run's whole weights, checked
    against its ONNX file before training; a model of other labels is refused."""
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    monkeypatch.setenv("RADLENS_DATA", str(tmp_path / "data"))
    learnable_npz(tmp_path / "data" / "medmnist" / "tinymnist.npz", (12, 12), 2)
    learnable_npz(tmp_path / "data" / "medmnist" / "threemnist.npz", (12, 12), 3)
    first, other, tuned = tmp_path / "first", tmp_path / "other", tmp_path / "tuned"
    common = ["--recipes", tmp_path, "--seed", "1", *TINY]
    for name, out in (("tinymnist", first), ("threemnist", other)):
        made = radlens("train", "--dataset", name, "-o", out, *common)
        assert made.exit_code == 0, made.stderr
    robust = [
        "--set", "augment.consistency=4", "--set", "augment.corruption_copies=1",
        "--set", 'augment.corruptions=["gaussian_noise"]',
    ]  # fmt: skip
    started = radlens(
        "train", "--dataset", "tinymnist", "-o", tuned, *common, *robust,
        "--set", f"net.start={json.dumps(str(first))}",
    )  # fmt: skip
    assert started.exit_code == 0, started.stderr
    log = (tuned / "train.log").read_text()
    line = next(x for x in log.splitlines() if "warm start from ONNX initializers" in x)
    assert float(line.rsplit("= ", 1)[1]) <= 1e-3  # the first model, reproduced
    assert "member 1/1" in log and ", warm start" in log
    card = json.loads((tuned / "card.json").read_text())
    assert "net.start=" in card["training"]["command"]

    refused = radlens(
        "train", "--dataset", "tinymnist", "-o", tmp_path / "no", *common,
        "--set", f"net.start={json.dumps(str(other))}",
    )  # fmt: skip
    assert refused.exit_code != 0
    assert "net.start" in refused.stderr and "Traceback" not in refused.stderr
    assert "not of this recipe's" in refused.stderr
    missing = radlens(
        "train", "--dataset", "tinymnist", "-o", tmp_path / "no2", *common,
        "--set", f"net.start={json.dumps(str(tmp_path / 'nothing'))}",
    )  # fmt: skip
    assert missing.exit_code != 0 and "no trained model there" in missing.stderr


def test_train_with_boxes_and_a_transferred_trunk_exports_a_plain_classifier(
    radlens: Callable[..., Result], tmp_path: Path
) -> None:
    """``schedule.box_loss`` and ``net.init`` on the FracAtlas recipe, with a tiny view."""
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    from PIL import Image as PILImage

    from fracatlas_helpers import fracatlas_like

    source = fracatlas_like(tmp_path / "src")
    rng = np.random.default_rng(0)
    for png in (source / "images").glob("*.png"):  # texture, so the input statistics vary
        PILImage.fromarray(rng.integers(0, 256, (32, 40), dtype=np.uint8)).save(png)
    view = tmp_path / "view"
    prepared = radlens("data", "prepare", "fracatlas", source, "-o", view)
    assert prepared.exit_code == 0, prepared.output
    out = tmp_path / "model"
    trained = radlens(
        "train",
        "recipes/fracture_xray.toml",
        "--data",
        view,
        "-o",
        out,
        "--epochs",
        "1",
        "--set",
        "input.size=[64,64]",
        "--set",
        "schedule.batch_size=8",
        "--set",
        "schedule.box_loss=1.0",
        "--set",
        "net.init=cxr_pneumonia_128",
        "--set",
        "augment.corruption_prob=0",
    )
    assert trained.exit_code == 0, trained.stderr
    log = (out / "train.log").read_text()
    assert f"data {view}" in log  # --data replaces the recipe's data folder
    assert "transfer: trunk of cxr_pneumonia_128" in log
    assert "box masks: 6 of 18 train images have boxes" in log
    assert "box supervision: loss weight 1.00, 4 x 4 cells" in log
    from radlens.inference.backends import OnnxBackend

    outputs = OnnxBackend(out / "model.onnx").run(np.zeros((1, 1, 64, 64), np.float32))
    assert set(outputs) == {"logits", "cam", "features"}  # those of any classifier


@pytest.mark.train
@pytest.mark.slow
def test_ensemble_members_trained_in_worker_processes_are_the_ones_trained_in_turn(
    radlens: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``schedule.workers``: the exported file is byte for byte the one of a run training
    the members one after another, the log holds each member's epochs in turn, and the
    console shows every member's progress named by member."""
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    import re

    from radlens.models.registry import sha256_of

    monkeypatch.setenv("RADLENS_DATA", str(tmp_path / "data"))
    learnable_npz(tmp_path / "data" / "medmnist" / "tinymnist.npz", (12, 12), 2)
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        trained = radlens(
            "train", "--dataset", "tinymnist", "--recipes", tmp_path, "-o", out, *TINY,
            "--set", "schedule.ensemble=3", "--set", f"schedule.workers={workers}",
        )  # fmt: skip
        assert trained.exit_code == 0, trained.stderr
        log = (out / "train.log").read_text()
        epochs = re.findall(r"(member \d/3|epoch \d+/2 train_loss [\d.]+ val_loss [\d.]+)", log)
        runs[workers] = (sha256_of(out / "model.onnx"), epochs)
    assert runs[1] == runs[2]
    assert [e for e in runs[2][1] if e.startswith("member")] == [
        "member 1/3",
        "member 2/3",
        "member 3/3",
    ]
    log = (tmp_path / "w2" / "train.log").read_text()
    assert "3 members, 2 at a time in worker processes" in log
    # The console names each worker's record by its member as it comes; train.log does not.
    assert "member 2/3: epoch" not in log
    assert re.search(r"member 2/3: epoch 1/2 train_loss", trained.stderr), trained.stderr
    assert re.search(r"member 3/3: best epoch \d", trained.stderr), trained.stderr
    assert "member 2/3: member 2/3:" not in trained.stderr  # named once
