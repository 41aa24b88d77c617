"""benchmarks/bench_robustness.py: the goal count, the shipping rule, the rendered tables
(What was tried) and the committed results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench_helpers import BENCHMARKS, load_benchmark
from radlens.evaluation.corruptions import CORRUPTIONS, kinds_in
from radlens.io.datasets import LabelledImages

bench = load_benchmark("bench_robustness")


def _row(
    model: str,
    label: str,
    clean: tuple[float, float],
    before: list[float],
    after: list[float],
    table: str = "",
) -> dict[str, Any]:
    kinds = kinds_in(table) if table else CORRUPTIONS
    return {
        **({"table": table} if table else {}),
        "model": model,
        "label": label,
        "versions": ["1.0.0", "1.1.0" if label == "shipped" else "1.0.0"],
        "before_source": "abc1234",
        "date": "2026-11-29",
        "n_val": 78,
        "seen": list(kinds[:2]),
        "before": {"clean": clean[0], **{k: [clean[0] - d for d in before] for k in kinds}},
        "after": {"clean": clean[1], **{k: [clean[1] - d for d in after] for k in kinds}},
        "drop_all": {"before": before, "after": after},
        "drop_seen": {"before": before, "after": after},
        "drop_unseen": {"before": before, "after": after},
    }


def test_a_severity_meets_the_goal_at_half_the_untreated_drop_and_a_negative_drop_counts_as_0():
    assert bench.goal_count([0.02, 0.02, 0.02], [0.01, 0.0101, -0.01]) == 2
    assert bench.goal_count([-0.01, 0.0], [0.0, 0.001]) == 1
    # The untreated model against itself meets the goal only where its drop is <= 0.
    assert bench.goal_count([-0.005, 0.002, 0.01], [-0.005, 0.002, 0.01]) == 1


@pytest.mark.parametrize(
    ("clean", "after", "ok"),
    [
        ((0.90, 0.895), [0.0, 0.005, 0.01, 0.02, 0.04], True),
        ((0.90, 0.885), [0.0, 0.005, 0.01, 0.02, 0.04], False),  # loses 0.015 clean AUC
        ((0.90, 0.95), [-0.01, 0.02, 0.03, 0.05, 0.09], False),  # 1 severity, as untreated
    ],
)
def test_a_variant_ships_only_with_more_severities_than_untreated_and_its_clean_auc_kept(
    clean: tuple[float, float], after: list[float], ok: bool
) -> None:
    row = _row("m", "tried", clean, [-0.01, 0.02, 0.03, 0.05, 0.09], after)
    treated, untreated, delta, qualifies = bench.ship_check(row)
    assert untreated == 1
    assert delta == pytest.approx(clean[1] - clean[0])
    assert qualifies is ok
    assert treated == bench.goal_count(row["drop_all"]["before"], after)


def test_saving_reads_the_results_file_when_it_writes_so_side_by_side_runs_keep_both(
    tmp_path: Path,
) -> None:
    first = _row("a", "tried x", (0.9, 0.9), [0.02] * 5, [0.01] * 5)
    bench.save([first], tmp_path)
    # A second run, started before the first saved, saves after it: both rows stay.
    second = _row("b", "tried y", (0.9, 0.9), [0.02] * 5, [0.01] * 5)
    bench.save([second], tmp_path)
    again = _row("a", "tried x", (0.9, 0.89), [0.02] * 5, [0.01] * 5)
    result = bench.save([again], tmp_path)  # same model and label: replaced, not added
    saved = json.loads((tmp_path / "robustness.json").read_text())
    assert saved == result
    assert [(r["model"], r["after"]["clean"]) for r in saved["rows"]] == [("a", 0.89), ("b", 0.9)]
    assert "| b | tried y |" in (tmp_path / "robustness.md").read_text()


def test_what_was_tried_lists_every_row_with_its_figures_and_the_rule() -> None:
    good = _row("m", "tried p=0.8, not shipped", (0.9, 0.9), [0.02] * 5, [0.005] * 5)
    bad = _row("m", "tried p=0.3, not shipped", (0.9, 0.85), [0.02] * 5, [0.03] * 5)
    del bad["drop_seen"]
    text = bench.render({"machine": "x86_64, 2 cores", "rows": [bad, good]})
    tried = text.split("## What was tried")[1]
    lines = [line for line in tried.splitlines() if line.startswith("| m |")]
    assert len(lines) == 2
    assert "tried p=0.3" in lines[0] and "0.900 / 0.850 (-0.050)" in lines[0]
    assert "| 0/5 / - / 0/5 | 0/5 | not met |" in lines[0]
    assert "tried p=0.8" in lines[1] and "| 5/5 / 5/5 / 5/5 | 0/5 | met |" in lines[1]
    # Rows measured before the other clean metrics were stored show a dash.
    assert "| (+0.000) | - |" in lines[1].replace("0.900 / 0.900 ", "")


def test_the_other_clean_metrics_show_beside_the_auc_when_both_models_have_them() -> None:
    row = _row("m", "tried", (0.78, 0.79), [0.02] * 5, [0.01] * 5)
    row["before"]["clean_metrics"] = {"acc": 0.55, "qwk": 0.547, "mae": 0.783}
    row["after"]["clean_metrics"] = {"acc": 0.508, "qwk": 0.427, "mae": 0.9}
    assert bench._other_metrics(row) == "ACC 0.550 / 0.508, QWK 0.547 / 0.427, MAE 0.783 / 0.900"
    del row["before"]["clean_metrics"]
    assert bench._other_metrics(row) == "-"


def test_corrupted_val_images_keep_labels_and_are_stored_as_8_bit() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(3)]
    val = LabelledImages(images, np.array([0, 1, 0]), ("a", "b"), ["1", "2", "3"], "s", "val")
    for table, kind in (("radlens", "gaussian_noise"), ("breastmnist", "speckle_noise")):
        noisy = bench.corrupted(val, kind, 5, table)
        assert all(im.dtype == np.uint8 and im.shape == (28, 28) for im in noisy.images)
        assert np.array_equal(noisy.labels, val.labels)
        assert not np.array_equal(noisy.images[0], images[0])


def test_each_model_gets_its_medmnistc_table_and_seen_kinds_by_family() -> None:
    assert bench.table_for("knee_oa_kl", "medmnistc") == "chestmnist"
    assert bench.table_for("cxr_pneumonia", "medmnistc") == "pneumoniamnist"
    assert bench.table_for("knee_oa_kl", "radlens") == "radlens"
    with pytest.raises(ValueError, match="no MedMNIST-C table"):
        bench.table_for("adrenal_ct_3d_64", "medmnistc")
    with pytest.raises(ValueError, match="unknown corruption table"):
        bench.table_for("knee_oa_kl", "organmnist")
    seen = bench.seen_kinds(["gaussian_noise", "blur", "brightness"], "chestmnist")
    assert seen == ["gaussian_noise", "gaussian_blur", "brightness_up"]


def test_a_medmnistc_row_is_kept_beside_the_same_label_on_radlens_table(tmp_path: Path) -> None:
    ours = _row("knee", "shipped", (0.8, 0.8), [0.02] * 5, [0.01] * 5)
    theirs = _row("knee", "shipped", (0.8, 0.8), [0.01] * 5, [0.01] * 5, table="chestmnist")
    saved = bench.save([ours, theirs], tmp_path)
    assert [r.get("table", "radlens") for r in saved["rows"]] == ["radlens", "chestmnist"]
    text = (tmp_path / "robustness.md").read_text()
    assert "| knee | shipped [MedMNIST-C chestmnist] | gamma_corr_down |" in text
    assert "| knee | shipped | contrast |" in text
    assert "| knee | shipped [MedMNIST-C chestmnist] | contrast |" not in text


def test_the_committed_results_render_to_the_committed_table_and_say_what_shipped() -> None:
    from radlens.models.registry import discover

    result = json.loads((BENCHMARKS / "robustness.json").read_text(encoding="utf-8"))
    assert (BENCHMARKS / "robustness.md").read_text(encoding="utf-8") == bench.render(result)
    zoo = {m.card.name: m.card for m in discover(include_disabled=True)}
    for row in result["rows"]:
        # A cross-fitted row measures a recipe; the one the zoo's model was trained by says so.
        recipe_shipped = "cross_fitted" in row and row["label"].endswith(
            f"shipped as {row['versions'][1]}"
        )
        assert row["label"] == "shipped" or "not shipped" in row["label"] or recipe_shipped
        if recipe_shipped:
            assert row["versions"][1] == zoo[row["model"]].version
        if row["label"] == "shipped":
            # A shipped row describes the weights in the zoo.
            assert row["versions"][1] == zoo[row["model"]].version
            assert "sha256" not in row or row["sha256"][1] == zoo[row["model"]].sha256
    classifiers_2d = {
        name
        for name, card in zoo.items()
        if card.input.dims == 2 and card.task.value in ("binary", "multiclass", "ordinal")
    }
    assert classifiers_2d <= {r["model"] for r in result["rows"]}


def _probs(y: np.ndarray, noise: list[float], rng: np.random.Generator) -> dict[str, Any]:
    """Binary probabilities of a model: clean ones that rank ``y`` well, and per corruption
    and severity the same scores with ``noise[s]`` of uniform noise mixed in."""
    clean = np.clip(0.3 * y + 0.35 + 0.3 * rng.random(len(y)), 0, 1)
    out: dict[str, Any] = {"clean": np.stack([1 - clean, clean], 1), "labels": y}
    for kind in CORRUPTIONS:
        out[kind] = []
        for w in noise:
            p = (1 - w) * clean + w * rng.random(len(y))
            out[kind].append(np.stack([1 - p, p], 1))
    return {"_probs": out}


def test_drop_intervals_tell_a_halved_drop_from_noise_and_from_no_drop() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 100)
    hurt = _probs(y, [0.0, 0.0, 0.6, 0.9, 1.0], rng)  # no drop at s1-s2, a large one after
    kept = _probs(y, [0.0, 0.0, 0.0, 0.0, 0.0], rng)  # the treated model loses nothing
    ci = bench.drop_intervals(hurt, kept, boots=200)
    assert set(ci) == {"before", "after", "excess"} and len(ci["before"]) == 5
    verdicts = [bench.verdict(b, e) for b, e in zip(ci["before"], ci["excess"], strict=True)]
    assert verdicts[:2] == ["no drop to halve"] * 2
    assert verdicts[2:] == ["met"] * 3
    # The same model on both sides: it keeps its whole drop, which is more than half.
    same = bench.drop_intervals(hurt, hurt, boots=200)
    assert bench.verdict(same["before"][4], same["excess"][4]) == "not met"
    for lo, hi in ci["before"]:
        assert lo <= hi


def test_rows_with_intervals_get_the_how_sure_table() -> None:
    row = _row("m", "shipped", (0.9, 0.9), [0.02] * 5, [0.005] * 5)
    row["drop_all_ci"] = {
        "before": [[0.01, 0.03]] * 5,
        "after": [[0.0, 0.01]] * 5,
        "excess": [[-0.02, -0.001]] * 4 + [[-0.01, 0.01]],
    }
    text = bench.render({"machine": "x86_64, 2 cores", "rows": [row]})
    assert "## How sure" in text
    [line] = [x for x in text.splitlines() if x.startswith("| m | shipped | [")]
    assert line.count("**met**") == 4 and line.endswith("**within noise** |")
    plain = bench.render(
        {"machine": "x86_64, 2 cores", "rows": [_row("m", "x", (0.9, 0.9), [0.0] * 5, [0.0] * 5)]}
    )
    assert "## How sure" not in plain


def _fold_result(index: list[int], labels: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """An :func:`aucs` result of one fold model on ``index``: probabilities only."""
    probs = np.stack([1 - score[index], score[index]], axis=1)
    corrupted = [probs * (1 - 0.1 * s) + 0.05 * s for s in range(5)]  # rank-preserving
    return {
        "_probs": {
            "labels": labels[index],
            "clean": probs,
            **{k: corrupted for k in CORRUPTIONS},
        }
    }


def test_cross_fitted_results_are_pooled_in_item_order_and_scored_together() -> None:
    labels = np.array([0, 1, 0, 1, 1, 0])
    score = np.array([0.1, 0.9, 0.4, 0.6, 0.3, 0.2])  # one mistake: item 4 under item 2
    parts = [(np.array(idx), _fold_result(idx, labels, score)) for idx in ([4, 0, 2], [1, 5, 3])]
    out = bench.pooled_aucs(parts)
    np.testing.assert_array_equal(out["_probs"]["labels"], labels)
    np.testing.assert_allclose(out["_probs"]["clean"][:, 1], score)
    assert out["clean"] == pytest.approx(8 / 9)  # one of nine positive-negative pairs wrong
    assert out["blur"] == pytest.approx([8 / 9] * 5)
    with pytest.raises(ValueError, match="exactly once"):
        bench.pooled_aucs(parts[:1])


def test_a_row_whose_treated_model_denoises_says_so_in_its_label() -> None:
    row = {"label": "shipped", "table": "chestmnist", "denoise": [None, 5]}
    assert bench._label(row) == "shipped + denoise 5 x 5 [MedMNIST-C chestmnist]"
    assert bench._label({"label": "shipped"}) == "shipped"
