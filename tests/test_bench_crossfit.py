"""benchmarks/bench_crossfit.py: fold data, pooling and the result files (no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from bench_helpers import load_benchmark
from radlens.evaluation.calibration import stratified_folds
from radlens.io.datasets import LabelledImages, read_labelled

bench = load_benchmark("bench_crossfit")


def _npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.savez(
        path,
        train_images=rng.integers(0, 255, (10, 4, 4), dtype=np.uint8),
        train_labels=np.arange(10).reshape(-1, 1) % 2,
        val_images=rng.integers(0, 255, (3, 4, 4), dtype=np.uint8),
        val_labels=np.array([[0], [1], [1]]),
    )
    return path


def test_a_fold_of_a_medmnist_file_keeps_only_its_train_rows_and_all_of_val(tmp_path: Path) -> None:
    source = _npz(tmp_path / "tiny.npz")
    train = read_labelled(source, "train")
    keep = stratified_folds(train.labels, 5, 0) != 2
    out = bench.fold_data(source, train, keep, tmp_path / "fold")
    with np.load(source) as before, np.load(out) as after:
        assert np.array_equal(after["train_images"], before["train_images"][keep])
        assert np.array_equal(after["train_labels"], before["train_labels"][keep])
        assert np.array_equal(after["val_images"], before["val_images"])
        assert np.array_equal(after["val_labels"], before["val_labels"])
    assert 0 < keep.sum() < len(keep)


def _fold_with_kept_train_and_all_val(
    source: Path, train: LabelledImages, keep: np.ndarray, out: Path
) -> tuple[Path, LabelledImages]:
    """The fold of ``source`` and its train split, checked: the kept train items in order,
    their labels, and every val item."""
    folded = bench.fold_data(source, train, keep, out)
    kept = read_labelled(folded, "train")
    assert kept.ids == tuple(i for i, k in zip(train.ids, keep, strict=True) if k)
    assert np.array_equal(kept.labels, train.labels[keep])
    assert read_labelled(folded, "val").ids == read_labelled(source, "val").ids
    return folded, kept


def test_a_fold_of_a_class_folder_set_links_the_kept_train_files_and_val(tmp_path: Path) -> None:
    source = tmp_path / "set"
    for split, count in (("train", 6), ("val", 2)):
        for grade in ("0", "1"):
            folder = source / split / grade
            folder.mkdir(parents=True)
            for i in range(count):
                PILImage.fromarray(np.full((4, 4), i * 10, np.uint8)).save(folder / f"{i}.png")
    train = read_labelled(source, "train")
    keep = stratified_folds(train.labels, 3, 0) != 0
    _fold_with_kept_train_and_all_val(source, train, keep, tmp_path / "fold")


def test_a_fold_of_a_prepared_set_keeps_the_kept_train_rows_of_its_tables(tmp_path: Path) -> None:
    # The layout of `radlens data prepare` (FracAtlas): images/, labels.csv with a split
    # column and boxes.csv, read by file and by image name.
    source = tmp_path / "set"
    (source / "images").mkdir(parents=True)
    labels = ["file,label,split"]
    boxes = ["split,image,label,xmin,ymin,xmax,ymax"]
    for i in range(8):
        name = f"{i}.png"
        PILImage.fromarray(np.full((4, 4), i * 10, np.uint8)).save(source / "images" / name)
        split, label = ("val" if i >= 6 else "train"), ("fracture" if i % 2 else "none")
        labels.append(f"images/{name},{label},{split}")
        if label == "fracture":
            boxes.append(f"{split},{name},fracture,0,0,2,2")
    (source / "labels.csv").write_text("\n".join(labels) + "\n")
    (source / "boxes.csv").write_text("\n".join(boxes) + "\n")
    (source / "PREPARED.txt").write_text("made by a test\n")
    train = read_labelled(source, "train")
    keep = stratified_folds(train.labels, 2, 0) != 0
    out, kept = _fold_with_kept_train_and_all_val(source, train, keep, tmp_path / "fold")
    kept_names = {Path(i).name for i in kept.ids}
    rows = (out / "boxes.csv").read_text().splitlines()[1:]
    assert {r.split(",")[1] for r in rows if r.startswith("train,")} == {
        n for n in kept_names if int(n[0]) % 2
    }
    assert sum(r.startswith("val,") for r in rows) == 1
    assert (out / "PREPARED.txt").read_text() == "made by a test\n"
    assert 0 < keep.sum() < len(keep)


def _part(index: list[int], classes: int = 2) -> dict[str, Any]:
    probs = np.tile(np.eye(classes)[0] * 0.6 + 0.2, (len(index), 1))
    return {"index": np.array(index), "probs": probs + np.array(index)[:, None], "raw": probs}


def test_pooling_puts_every_held_out_item_back_in_its_place() -> None:
    labels = np.array([0, 1, 0, 1, 1])
    y, probs, raw = bench.pool([_part([3, 0]), _part([4, 1, 2])], labels)
    assert np.array_equal(y, labels)
    assert probs[:, 0].tolist() == pytest.approx([0.8, 1.8, 2.8, 3.8, 4.8])
    assert raw.shape == (5, 2)


@pytest.mark.parametrize("parts", [[[0, 1], [1, 2]], [[0, 1], [3]]])
def test_pooling_refuses_folds_that_miss_or_repeat_an_item(parts: list[list[int]]) -> None:
    with pytest.raises(ValueError, match="exactly once"):
        bench.pool([_part(p) for p in parts], np.zeros(4, dtype=np.int64))


def _row(model: str, ece: float, high: float, noise_p95: float = 0.03) -> dict[str, Any]:
    return {
        "model": model,
        "version": "1.0.0",
        "task": "binary",
        "folds": 5,
        "n": 500,
        "n_val": 80,
        "methods": ["temperature"],
        "fold_val_auc": [0.9, 0.91],
        "fold_minutes": [1.0, 1.1],
        "ece_before": 0.05,
        "ece_after": ece,
        "ece_after_ci95": [ece / 2, high],
        "ece_noise_mean": 0.02,
        "ece_noise_p95": noise_p95,
    }


def test_runs_merge_by_model_and_the_table_says_met_only_as_far_as_shown(tmp_path: Path) -> None:
    bench.save([_row("a", 0.02, 0.028), _row("b", 0.025, 0.04)], tmp_path)
    bench.save([_row("b", 0.05, 0.07), _row("c", 0.04, 0.06, 0.045)], tmp_path)  # b replaced
    result = json.loads((tmp_path / "crossfit.json").read_text())
    assert [r["model"] for r in result["rows"]] == ["a", "b", "c"]
    table = (tmp_path / "crossfit.md").read_text()
    row_a = next(line for line in table.splitlines() if line.startswith("| a "))
    row_b = next(line for line in table.splitlines() if line.startswith("| b "))
    assert "| met, shown |" in row_a
    row_c = next(line for line in table.splitlines() if line.startswith("| c "))
    assert "| not met |" in row_b and "0.050" in row_b
    assert "| not met; within the noise floor |" in row_c


def test_a_row_shipped_with_a_pooled_calibration_is_judged_on_its_pooled_figures(
    tmp_path: Path,
) -> None:
    pooled = _row("p", 0.05, 0.07) | {
        "calibrated_on": bench.POOLED,
        "ece_transfer": 0.04,
        "ece_pooled": 0.025,
        "ece_pooled_ci95": [0.018, 0.036],
        "ece_pooled_noise_mean": 0.015,
        "ece_pooled_noise_p95": 0.02,
        "pooled_methods": ["platt", "temperature"],
        "nll_gain_pooled": [0.004, 0.001],
        "fold_temperatures": [1.1, 1.2],
        "nll": {"before": 0.5, "after": 0.4, "transfer": 0.41, "pooled": 0.396},
    }
    variant = _row("p", 0.06, 0.08) | {
        "variant": "x",
        "sets": ["schedule.epochs=9"],
        "ece_transfer": 0.05,
        "fold_temperatures": [1.0],
        "nll": {"before": 0.5, "after": 0.4, "transfer": 0.41},
        "auc_oof": 0.9,
        "acc_oof": 0.8,
    }
    bench.save([pooled, _row("v", 0.05, 0.07), variant], tmp_path)
    lines = (tmp_path / "crossfit.md").read_text().splitlines()
    main = next(line for line in lines if line.startswith("| p 1.0.0 |"))
    transfer = next(line for line in lines if line.startswith("| p | 1.10 1.20 |"))
    # Among the variants every row is judged on val, the recipe's as well.
    recipe = next(line for line in lines if line.startswith("| p | recipe |"))
    assert "| 0.050 | 0.025-0.070 |" in recipe and "| not met |" in recipe
    assert f"| {bench.POOLED} | platt, temperature | 0.050 | 0.025 | 0.018-0.036 |" in main
    # 0.025 meets 0.03, the interval does not; a row from before the card's-method figures
    assert main.endswith("| met | (not measured) | 0.900 0.910 |")
    assert "0.050 / 0.040 / 0.025 (platt, temperature)" in transfer
    assert "+0.0040 +- 0.0010" in transfer
    row_v = next(line for line in lines if line.startswith("| v "))
    assert "| val | temperature | 0.050 | 0.050 |" in row_v and "| not met |" in row_v


def _labels_of(parts: list[dict[str, Any]]) -> np.ndarray:
    """The train labels the folds' held-out items were drawn with, in item order."""
    labels = np.empty(sum(len(p["index"]) for p in parts), dtype=np.int64)
    for part in parts:
        labels[part["index"]] = part["_y"]
    return labels


def _fold(index: list[int], val_seed: int, temperature: float) -> dict[str, Any]:
    rng = np.random.default_rng(val_seed)
    val = rng.normal(0, 2, (30, 2))
    logits = rng.normal(0, 2, (len(index), 2))
    p1 = 1 / (1 + np.exp(-(logits[:, 1] - logits[:, 0]) / temperature))
    return {
        "index": np.array(index),
        "logits": logits,
        "val_logits": val,
        "val_labels": (rng.random(30) < 0.5).astype(np.int64),
        "_y": (rng.random(len(index)) < p1).astype(np.int64),
    }


def test_pooled_calibration_fits_each_fold_on_its_val_and_the_other_folds_unseen_items() -> None:
    parts = [_fold(list(range(k, 600, 3)), k, 2.0) for k in range(3)]
    labels = _labels_of(parts)
    probs, methods = bench.pooled_with_val(bench.Task.BINARY, parts, labels)
    assert probs.shape == (600, 2) and len(methods) == 3
    others = [parts[1], parts[2]]
    expected, _ = bench.calibrate(
        bench.Task.BINARY,
        np.concatenate([parts[0]["val_logits"]] + [p["logits"] for p in others]),
        np.concatenate([parts[0]["val_labels"]] + [labels[p["index"]] for p in others]),
    )
    np.testing.assert_allclose(
        probs[parts[0]["index"]], expected.probabilities(parts[0]["logits"], bench.Task.BINARY)
    )
    # Val labels are coin flips: pooling with 400 items of the true temperature wins.
    val_only = np.concatenate(
        [
            bench.calibrate(bench.Task.BINARY, p["val_logits"], p["val_labels"])[0].probabilities(
                p["logits"], bench.Task.BINARY
            )
            for p in parts
        ]
    )[np.argsort(np.concatenate([p["index"] for p in parts]))]
    gain, error = bench.paired_nll_gain(bench.Task.BINARY, labels, val_only, probs)
    assert gain > error > 0


def test_the_cards_method_is_fitted_on_every_folds_val_whatever_each_fold_would_choose() -> None:
    parts = [_fold(list(range(k, 300, 3)), k, 2.0) for k in range(3)]
    labels = _labels_of(parts)
    platt = bench.CalibrationMethod.PLATT
    probs = bench.fixed_method(bench.Task.BINARY, parts, labels, platt)
    for part in parts:
        fitted = bench.fit_method(platt, bench.Task.BINARY, part["val_logits"], part["val_labels"])
        np.testing.assert_allclose(
            probs[part["index"]], fitted.probabilities(part["logits"], bench.Task.BINARY)
        )
    pooled = bench.fixed_method(bench.Task.BINARY, parts, labels, platt, pooled=True)
    on_pool = bench.fit_method(
        platt,
        bench.Task.BINARY,
        np.concatenate([parts[2]["val_logits"], parts[0]["logits"], parts[1]["logits"]]),
        np.concatenate([parts[2]["val_labels"], parts[0]["_y"], parts[1]["_y"]]),
    )
    np.testing.assert_allclose(
        pooled[parts[2]["index"]], on_pool.probabilities(parts[2]["logits"], bench.Task.BINARY)
    )
    assert not np.allclose(pooled, probs)


def test_the_table_judges_the_cards_method_on_every_fold_beside_the_per_fold_choice(
    tmp_path: Path,
) -> None:
    row = _row("a", 0.038, 0.06) | {
        "methods": ["platt", "temperature"],
        "card_method": "platt",
        "ece_card_method": 0.029,
        "ece_card_method_ci95": [0.02, 0.045],
        "ece_card_method_noise_mean": 0.02,
        "ece_card_method_noise_p95": 0.031,
        "nll": {"before": 0.44, "after": 0.36, "card_method": 0.3505},
    }
    bench.save([row], tmp_path)
    line = next(
        line
        for line in (tmp_path / "crossfit.md").read_text().splitlines()
        if line.startswith("| a 1.0.0 |")
    )
    assert "| 0.038 | 0.019-0.060 | (not measured) |" in line and "| not met |" in line
    assert "| platt: 0.029 (0.020-0.045), debiased (not measured), NLL 0.350 vs 0.360; met |" in (
        line
    )


@pytest.mark.parametrize(
    ("debiased", "interval", "verdict"),
    [
        (0.024, [0.012, 0.041], "met by the debiased ECE"),
        (0.018, [0.010, 0.029], "met by the debiased ECE, shown"),
        (0.033, [0.020, 0.048], "not met; within the noise floor"),
    ],
)
def test_the_goal_falls_back_on_the_debiased_ece_where_the_plug_in_is_above_it(
    tmp_path: Path, debiased: float, interval: list[float], verdict: str
) -> None:
    row = _row("a", 0.041, 0.06, noise_p95=0.05) | {
        "ece_after_debiased": debiased,
        "ece_after_debiased_ci95": interval,
    }
    bench.save([row], tmp_path)
    line = next(
        line
        for line in (tmp_path / "crossfit.md").read_text().splitlines()
        if line.startswith("| a 1.0.0 |")
    )
    low, high = interval
    assert f"| 0.041 | 0.021-0.060 | {debiased:.3f} ({low:.3f}-{high:.3f}) |" in line
    assert f"| {verdict} |" in line


def test_a_plug_in_ece_at_the_goal_is_met_whatever_the_debiased_one_reads(
    tmp_path: Path,
) -> None:
    row = _row("a", 0.028, 0.05) | {
        "ece_after_debiased": 0.031,
        "ece_after_debiased_ci95": [0.01, 0.05],
    }
    bench.save([row], tmp_path)
    assert "| met |" in (tmp_path / "crossfit.md").read_text()


def test_the_fingerprint_follows_training_fields_and_overrides_not_prose(tmp_path: Path) -> None:
    recipe = bench.REPO / "recipes" / "retina_dr_grade.toml"
    text = recipe.read_text(encoding="utf-8")
    renamed = tmp_path / "retina_dr_grade.toml"
    renamed.write_text(text.replace('version = "', 'version = "9').replace("Severe", "Sev."))
    assert bench.fingerprint(renamed) == bench.fingerprint(recipe)
    changed = bench.fingerprint(recipe, ("schedule.epochs=7",))
    assert changed != bench.fingerprint(recipe)
    assert changed == bench.fingerprint(recipe, ("schedule.epochs=7",))
    last = ("schedule.keep=last",)
    assert bench.fingerprint(recipe, (*last, "schedule.patience=3")) == bench.fingerprint(
        recipe, (*last, "schedule.patience=30")
    )


def test_a_variant_names_each_folds_own_model_under_one_fingerprint(
    tmp_path: Path,
) -> None:
    """``{fold}`` in an override is the fold's number (a fine-tune of each fold's model),
    while the stamp that decides reuse is the same for every fold."""
    start = 'net.start="/work/knee_oa_kl/fold{fold}of5/model"'
    assert bench.fold_sets((start, "schedule.epochs=10"), 4) == [
        'net.start="/work/knee_oa_kl/fold4of5/model"',
        "schedule.epochs=10",
    ]
    recipe = bench.REPO / "recipes" / "knee_oa_kl.toml"
    assert bench.fingerprint(recipe, (start,)) != bench.fingerprint(recipe)


def test_fold_models_made_by_another_recipe_are_not_reused(tmp_path: Path) -> None:
    bench.check_stamp(tmp_path / "fold0of5", "recipe A")  # a new folder: stamped
    bench.check_stamp(tmp_path / "fold0of5", "recipe A")  # the same recipe: reused
    with pytest.raises(ValueError, match="made by another recipe"):
        bench.check_stamp(tmp_path / "fold0of5", "recipe B")
    assert (tmp_path / "fold0of5" / "made-by.json").read_text() == "recipe A"


def test_variant_rows_merge_beside_the_recipes_and_are_compared_with_them(
    tmp_path: Path,
) -> None:
    def full(row: dict[str, Any], variant: str = "") -> dict[str, Any]:
        extra = {"ece_transfer": 0.04, "fold_temperatures": [1.0, 1.1]}
        nll = {"nll": {"before": 1.2, "after": 1.1, "transfer": 1.15}}
        sets = {"variant": variant, "sets": ["schedule.keep=last"] if variant else []}
        return {**row, **extra, **nll, **sets, "auc_oof": 0.75, "acc_oof": 0.5}

    bench.save([full(_row("m", 0.06, 0.09)), full(_row("m", 0.04, 0.07), "last")], tmp_path)
    bench.save([full(_row("m", 0.035, 0.07), "last")], tmp_path)  # the variant remeasured
    result = json.loads((tmp_path / "crossfit.json").read_text())
    assert [(r["model"], r["variant"]) for r in result["rows"]] == [("m", ""), ("m", "last")]
    table = (tmp_path / "crossfit.md").read_text()
    main = table.split("## Recipe variants")[0]
    assert main.count("| m 1.0.0 |") == 1  # the variant is not a recipe row
    variants = table.split("## Recipe variants")[1].split("## Reliability")[0]
    lines = [x for x in variants.splitlines() if x.startswith("| m |")]
    assert ["| recipe |" in lines[0], "| last |" in lines[1]] == [True, True]
    assert "0.035" in lines[1] and "`schedule.keep=last`" in lines[1]
    assert "0.750 / 0.500" in lines[1]
    assert "reliability/m-crossfit-last.png" in table


def _biased_fold(index: list[int], seed: int, bias: float) -> dict[str, Any]:
    """A fold whose model's logits are off by ``bias`` (the true log-odds are the logit
    margin plus ``bias``), for val and held-out items alike: only a method with a bias
    (Platt scaling) can correct it."""
    rng = np.random.default_rng(seed)

    def items(n: int) -> tuple[np.ndarray, np.ndarray]:
        logits = rng.normal(0, 1.5, (n, 2))
        p1 = 1 / (1 + np.exp(-(logits[:, 1] - logits[:, 0] + bias)))
        return logits, (rng.random(n) < p1).astype(np.int64)

    val, val_y = items(200)
    logits, y = items(len(index))
    # As run_fold scores a fold: calibrated on its val by radlens calibrate's rule.
    fitted, _ = bench.calibrate(bench.Task.BINARY, val, val_y)
    return {
        "index": np.array(index),
        "logits": logits,
        "val_logits": val,
        "val_labels": val_y,
        "method": fitted.method.value,
        "probs": fitted.probabilities(logits, bench.Task.BINARY),
        "raw": bench.Calibration().probabilities(logits, bench.Task.BINARY),
        "_y": y,
    }


def test_each_method_on_every_fold_is_judged_against_temperature_on_the_unseen_items(
    tmp_path: Path,
) -> None:
    parts = [_biased_fold(list(range(k, 900, 3)), k, 1.5) for k in range(3)]
    labels = _labels_of(parts)
    figures = bench.methods_on_every_fold(bench.Task.BINARY, parts, labels, labels)
    assert set(figures) == {"temperature", "platt", bench.VAL_RULE, bench.POOL_RULE}
    temperature, platt = figures["temperature"], figures["platt"]
    assert temperature["nll_gain"] == [0.0, 0.0]
    assert temperature["ece_minus_temperature_ci95"] == [0.0, 0.0]
    # A bias of 1.5 logits: Platt's NLL gain is far beyond one standard error, its ECE lower.
    gain, error = platt["nll_gain"]
    assert gain > 3 * error > 0
    assert platt["ece"] < temperature["ece"]
    low, high = platt["ece_minus_temperature_ci95"]
    assert low < platt["ece"] - temperature["ece"] < high and low < 0
    fixed = bench.fixed_method(bench.Task.BINARY, parts, labels, bench.CalibrationMethod.PLATT)
    assert platt["nll"] == round(bench.nll_for(bench.Task.BINARY, labels, fixed), 4)
    # Both rules see the bias (on 200 val items, or 800 pooled) and fit Platt on val.
    for rule in (bench.VAL_RULE, bench.POOL_RULE):
        assert figures[rule]["fold_methods"] == ["platt"] * 3
        assert figures[rule]["nll"] == platt["nll"]
    # The table shows the row's methods, the comparison only where there is one.
    row = _row("b", 0.05, 0.07) | {"every_fold": figures}
    bench.save([row], tmp_path)
    lines = (tmp_path / "crossfit.md").read_text().splitlines()
    assert "## Each calibration method on every fold" in lines
    [t_line] = [x for x in lines if x.startswith("| b 1.0.0 | temperature |")]
    [p_line] = [x for x in lines if x.startswith("| b 1.0.0 | platt |")]
    assert t_line.endswith("| - | - |")
    assert f"| {gain:+.4f} +- {error:.4f} |" in p_line
    assert any(
        x.startswith("| b 1.0.0 | chosen on val + other folds (platt, platt, platt) |")
        for x in lines
    )


def test_the_pool_rule_chooses_on_more_items_and_fits_on_val_alone() -> None:
    # A bias of 0.3 logits: too small for 200 val items to show past one standard error,
    # plain on 200 + 400 pooled ones.
    parts = [_biased_fold(list(range(k, 1200, 3)), k, 0.3) for k in range(3)]
    labels = _labels_of(parts)
    probs, methods = bench.pooled_with_val(bench.Task.BINARY, parts, labels, use="choose")
    for part, method in zip(parts, methods, strict=True):
        fitted = bench.fit_method(method, bench.Task.BINARY, part["val_logits"], part["val_labels"])
        np.testing.assert_allclose(
            probs[part["index"]], fitted.probabilities(part["logits"], bench.Task.BINARY)
        )
    assert methods.count("platt") > [p["method"] for p in parts].count("platt")


def test_a_card_that_chose_its_method_on_the_pool_is_judged_on_the_pool_rules_figures() -> None:
    assert bench._calibrated_on({}) == "val"
    pooled = {"file": "cross_fitted.npz", "sha256": "0" * 64, "n": 9}
    assert bench._calibrated_on({"cross_fitted": pooled}) == bench.POOLED
    chosen = {"cross_fitted": pooled | {"use": "choose"}}
    assert bench._calibrated_on(chosen) == bench.CHOSEN_ON_POOL
    rule = {
        "ece": 0.028,
        "ece_ci95": [0.02, 0.05],
        "noise_mean": 0.03,
        "noise_p95": 0.04,
        "ece_debiased": 0.015,
        "ece_debiased_ci95": [0.01, 0.04],
        "fold_methods": ["vector", "vector", "temperature"],
        "nll": 0.99,
    }
    row = _row("k", 0.04, 0.08) | {
        "calibrated_on": bench.CHOSEN_ON_POOL,
        "every_fold": {bench.POOL_RULE: rule},
    }
    shipped = bench.as_shipped(row)
    assert (shipped["ece"], shipped["ci95"], shipped["debiased"]) == (0.028, [0.02, 0.05], 0.015)
    assert shipped["methods"] == ["temperature", "vector"]
    assert bench._goal(row) == "met"
    assert bench.as_shipped(row, on_val=True)["ece"] == 0.04  # the val rule's, per fold
