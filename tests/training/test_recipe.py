"""Recipes: presets, overrides, ``--dataset`` lookup and recipes inferred from data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlens.errors import ConfigError
from radlens.models.card import Task
from radlens.training.recipe import (
    NetSpec,
    find_dataset,
    infer_recipe,
    read_recipe,
    recipe_for_dataset,
    recipe_from_dict,
)

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def write_npz(path: Path, shape: tuple[int, ...], n_classes: int = 2, n: int = 12) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val"):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, *shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % n_classes).reshape(n, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_arch_presets_set_layers_and_widths() -> None:
    assert NetSpec(arch="resnet18").layers == (2, 2, 2, 2)
    assert NetSpec(arch="resnet-tiny").widths == (16, 32, 64, 128)
    assert NetSpec(widths=(8, 8, 16, 16)).widths == (8, 8, 16, 16)
    with pytest.raises(ValueError, match="unknown arch"):
        NetSpec(arch="vit")


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_reads_and_names_its_data_and_licence(path: Path) -> None:
    recipe = read_recipe(path)
    assert recipe.name == path.stem
    assert recipe.licence and recipe.citation and recipe.intended_use
    assert recipe.applies_to.dims == recipe.input.dims
    if recipe.task.value != "detection":  # a detector's labels are box classes
        assert 0 <= recipe.positive_index < len(recipe.labels)


def test_overrides_reach_nested_sections() -> None:
    recipe = read_recipe(
        RECIPES / "breast_us_malignancy.toml",
        {"net.arch": "resnet10", "schedule.epochs": 3, "seed": 7},
    )
    assert recipe.net.widths == (64, 128, 256, 512)
    assert (recipe.schedule.epochs, recipe.seed) == (3, 7)


def test_a_bad_recipe_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('name = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid recipe"):
        read_recipe(tmp_path / "bad.toml")


def test_a_trunk_transfer_and_a_whole_model_start_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="exclude each other"):
        read_recipe(
            RECIPES / "knee_oa_kl.toml",
            {"net.init": "cxr_pneumonia_128", "net.start": "src/radlens/zoo/knee_oa_kl"},
        )
    recipe = read_recipe(RECIPES / "knee_oa_kl.toml", {"net.start": "some/model"})
    assert recipe.net.start == "some/model" and recipe.net.init == ""


def test_an_unknown_corruption_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown corruption"):
        read_recipe(
            RECIPES / "breast_us_malignancy.toml",
            {"augment.corruption_prob": 0.5, "augment.corruptions": ["snow"]},
        )


def test_robustness_training_outside_a_2d_classifier_is_a_config_error() -> None:
    kinds = {"augment.corruptions": ["blur"]}
    with pytest.raises(ConfigError, match="for 2D classifiers"):
        read_recipe(RECIPES / "vessel_mra_3d.toml", {**kinds, "augment.consistency": 1.0})
    with pytest.raises(ConfigError, match="for 2D classifiers"):
        read_recipe(RECIPES / "bccd_cells.toml", {**kinds, "augment.corruption_prob": 0.5})
    boxed = read_recipe(RECIPES / "fracture_xray.toml", {**kinds, "augment.consistency": 1.0})
    assert boxed.augment.consistency == 1.0 and boxed.schedule.box_loss > 0
    consistent = read_recipe(RECIPES / "retina_dr_grade.toml")
    assert consistent.augment.consistency == 12.0
    assert consistent.augment.corruption_severities == (1, 2, 3)


def test_the_cam_box_loss_is_for_binary_2d_classifiers_and_needs_box_masks() -> None:
    with pytest.raises(ConfigError, match="cam_loss is for binary 2D classifiers"):
        read_recipe(RECIPES / "knee_oa_kl.toml", {"schedule.cam_loss": 1.0})
    with pytest.raises(ConfigError, match="cam_loss must be >= 0"):
        read_recipe(RECIPES / "fracture_xray.toml", {"schedule.cam_loss": -1.0})
    shipped = read_recipe(RECIPES / "fracture_xray.toml")
    guided = read_recipe(
        RECIPES / "fracture_xray.toml", {"schedule.cam_loss": 1.0, "schedule.box_loss": 0.0}
    )
    assert shipped.needs_box_masks and guided.needs_box_masks
    assert not read_recipe(RECIPES / "cxr_pneumonia.toml").needs_box_masks


def test_dataset_name_finds_the_recipe_written_for_it() -> None:
    path, overrides = recipe_for_dataset("breastmnist", None, RECIPES)
    assert path == RECIPES / "breast_us_malignancy.toml" and overrides == {}
    path, _ = recipe_for_dataset("retina_dr_grade", None, RECIPES)
    assert path == RECIPES / "retina_dr_grade.toml"


def test_dataset_at_another_size_reuses_the_recipe_with_that_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADLENS_DATA", str(tmp_path))
    data = write_npz(tmp_path / "medmnist" / "breastmnist_64.npz", (64, 64))
    path, overrides = recipe_for_dataset("breastmnist", 64, RECIPES)
    assert path == RECIPES / "breast_us_malignancy.toml"
    assert overrides == {
        "input.size": [64, 64],
        "name": "breast_us_malignancy_64",
        "data": str(data),
    }
    assert read_recipe(path, overrides).input.size == (64, 64)


def test_find_dataset_prefers_the_sized_file_and_explains_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADLENS_DATA", str(tmp_path))
    plain = write_npz(tmp_path / "a" / "organmnist3d.npz", (8, 8, 8))
    sized = write_npz(tmp_path / "b" / "organmnist3d_64.npz", (8, 8, 8))
    assert find_dataset("organmnist3d") == plain
    assert find_dataset("organmnist3d", 64) == sized
    assert find_dataset("organmnist3d", 28) == plain
    with pytest.raises(ConfigError, match="no dataset 'nodulemnist3d'"):
        find_dataset("nodulemnist3d")


@pytest.mark.parametrize(
    ("shape", "n_classes", "dims", "channels", "task"),
    [
        ((28, 28), 2, 2, 1, Task.BINARY),
        ((28, 28, 3), 7, 2, 3, Task.MULTICLASS),
        ((28, 28, 28), 11, 3, 1, Task.MULTICLASS),
    ],
    ids=["gray-binary", "colour-multiclass", "volume-multiclass"],
)
def test_a_recipe_is_inferred_from_an_unknown_dataset(
    tmp_path: Path, shape: tuple[int, ...], n_classes: int, dims: int, channels: int, task: Task
) -> None:
    data = write_npz(tmp_path / "newmnist.npz", shape, n_classes, n=2 * n_classes)
    recipe = recipe_from_dict(infer_recipe(data, "newmnist"), "inferred")
    assert recipe.task is task and len(recipe.labels) == n_classes
    assert recipe.input.dims == dims and recipe.input.channels == channels
    assert recipe.input.size == (28,) * dims
    # Unknown licence: never enabled by default.
    assert recipe.commercial_use is False


def test_member_sizes_are_two_or_more_row_column_pairs() -> None:
    from radlens.training.recipe import Schedule

    assert Schedule(member_sizes=([224, 336], [160, 240])).member_sizes == ((224, 336), (160, 240))  # type: ignore[arg-type]
    assert Schedule().member_sizes == ()
    for bad in (((224, 336),), ((224, 336, 1), (160, 240)), ((8, 8), (16, 16))):
        with pytest.raises(ValueError, match="member_sizes"):
            Schedule(member_sizes=bad)  # type: ignore[arg-type]


def test_keep_is_best_or_last_and_only_for_classifiers() -> None:
    assert read_recipe(RECIPES / "retina_dr_grade.toml").schedule.keep == "last"
    assert read_recipe(RECIPES / "knee_oa_kl.toml").schedule.keep == "best"  # the default
    last = read_recipe(RECIPES / "knee_oa_kl.toml", {"schedule.keep": "last"})
    assert last.schedule.keep == "last"
    with pytest.raises(ConfigError, match="best or last"):
        read_recipe(RECIPES / "retina_dr_grade.toml", {"schedule.keep": "first"})
    with pytest.raises(ConfigError, match="for classifiers"):
        read_recipe(RECIPES / "bccd_cells.toml", {"schedule.keep": "last"})


def test_denoising_is_asked_for_by_a_2d_classifier_recipe_and_fitted_later() -> None:
    shipped = read_recipe(RECIPES / "fracture_xray.toml")
    assert shipped.input.denoise is not None and shipped.input.denoise.median == 5
    assert not shipped.input.denoise.fitted  # training fits it (finish_card)
    with pytest.raises(ConfigError, match="input.denoise is fitted for 2D classifiers"):
        read_recipe(RECIPES / "bccd_cells.toml", {"input.denoise": {"median": 3}})
    with pytest.raises(ConfigError, match="median must be 3 or 5"):
        read_recipe(RECIPES / "knee_oa_kl.toml", {"input.denoise": {"median": 7}})


def test_deblurring_is_asked_for_by_a_2d_classifier_recipe_and_fitted_later() -> None:
    shipped = read_recipe(RECIPES / "knee_oa_kl.toml")
    assert shipped.input.deblur is not None and shipped.input.deblur.factor == 2.0
    assert not shipped.input.deblur.fitted  # training fits it (finish_card)
    with pytest.raises(ConfigError, match="input.deblur is fitted for 2D classifiers"):
        read_recipe(RECIPES / "bccd_cells.toml", {"input.deblur": {"factor": 2.0}})
    with pytest.raises(ConfigError, match="factor must be at least 1"):
        read_recipe(RECIPES / "knee_oa_kl.toml", {"input.deblur": {"factor": 0.5}})
