"""Robustness of the 2D models to corrupted input, before and after robustness training
(issue 5, part 4).

For each 2D model in both folders whose weights differ: val AUC clean and under every
corruption of ``radlens.evaluation.corruptions`` at severities 1-5 (corrupted at the source
resolution and stored as 8-bit, as a file would be), for the untreated model (``--before``)
and the one trained with corruption augmentation (``--after``, default: the installed zoo).
A model's drop is its clean AUC minus its corrupted AUC. Goal: the treated model's mean drop
per severity at most half of the untreated model's. Corruptions the treated model trained on
(``--seen``, default: ``augment.corruptions`` of ``recipes/<name>.toml``) are marked *seen*;
the others test generalization. How sure each goal cell is: a paired bootstrap of the val
images gives 95% intervals of both mean drops and of *after - before / 2*
(:func:`drop_intervals`, :func:`verdict`). Rows are kept in benchmarks/robustness.json by (model,
label), so runs with different ``--label`` add up; *What was tried* lists every row with its
clean AUCs, goal counts and the shipping rule (:func:`ship_check`). A treated model ships only
when it meets the goal at more severities than the untreated model does against itself (a
severity where the untreated drop is already <= 0 counts for it) and its clean val AUC is at
most ``MAX_CLEAN_LOSS`` below the untreated one's (necessary, not sufficient: the other clean
metrics, ``clean_metrics``, are shown beside it). Variants are trained into scratch folders
and measured with their own label and ``--out`` first:

    radlens train recipes/retina_dr_grade.toml --set augment.corruption_prob=0.8 \
        --set 'augment.corruptions=["gaussian_noise","blur","brightness","jpeg"]' \
        -o /tmp/p08/retina_dr_grade
    python benchmarks/bench_robustness.py --before src/radlens/zoo --after /tmp/p08 \
        --models retina_dr_grade --seen gaussian_noise,blur,brightness,jpeg \
        --label "tried p=0.8, not shipped" --out /tmp/scratch

A treated model that ships is measured against the untreated one from git:

    git worktree add /tmp/before <commit with the untreated models>
    python benchmarks/bench_robustness.py --before /tmp/before/src/radlens/zoo \
        --label "shipped" --before-label "<commit>"

Where val is too small to tell a halved drop from noise, ``--crossfit MODEL`` measures the
recipe instead, on its whole train split: the fold models ``bench_crossfit.py`` trained (the
recipe's, ``--before-variant ""``, and a treated variant's, ``--after-variant NAME``, on the
same folds) each score their own unseen train fold, clean and corrupted, and the pooled
out-of-fold probabilities give the AUCs, drops and intervals of one row (``n`` = train
items; the label says it is cross-fitted):

    python benchmarks/bench_crossfit.py --models retina_dr_grade --variant cons12 \
        --set augment.consistency=12 ...
    python benchmarks/bench_robustness.py --crossfit retina_dr_grade --folds 5 \
        --after-variant cons12 --seen gaussian_noise,blur,contrast,brightness,jpeg,pixelate \
        --label "cross-fitted: cons12 against the recipe"

(``--before-variant NAME`` with the recipe after: the recipe once it is the treated one.)

Writes benchmarks/robustness.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from radlens.evaluation import metrics as m
from radlens.evaluation.corruptions import RADLENS, SEVERITIES, corrupt, kinds_in
from radlens.evaluation.evaluate import evaluate
from radlens.inference.backends import OnnxBackend
from radlens.io.datasets import LabelledImages, read_labelled
from radlens.models.card import ModelCard
from radlens.models.registry import InstalledModel, load_model, zoo_folder
from radlens.training.recipe import read_recipe

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_crossfit as crossfit  # noqa: E402
from bench_calibration import data_source  # noqa: E402

HERE = Path(__file__).resolve().parent
RECIPES = HERE.parent / "recipes"
MAX_VAL = 300
# A treated model may be shipped only if it loses at most this much clean val AUC.
MAX_CLEAN_LOSS = 0.01
# Clean val metrics shown beside the AUC in *What was tried* (when the row has them).
OTHER_METRICS = ("acc", "qwk", "mae")
# Bootstrap resamples of the val images behind the drop intervals.
BOOTS = 500
# ``--table medmnistc``: each model's MedMNIST-C table (radlens.evaluation.medmnistc). The
# chest X-ray models read the Kermany set, PneumoniaMNIST's source; breast and retina read
# BreastMNIST and RetinaMNIST themselves; the two other X-ray models (adult knee and
# extremity radiographs) have no MedMNIST-C dataset and take ChestMNIST's, the general X-ray
# table (and the harsher of the two X-ray tables).
MEDMNISTC = {
    "cxr_pneumonia": "pneumoniamnist",
    "cxr_pneumonia_128": "pneumoniamnist",
    "breast_us_malignancy": "breastmnist",
    "retina_dr_grade": "retinamnist",
    "knee_oa_kl": "chestmnist",
    "fracture_xray": "chestmnist",
}
# A MedMNIST-C kind counts as *seen* when a treated model trained on radlens' kind of the
# same family (other parameters): radlens' blur is a Gaussian, its contrast lowers and its
# brightness raises.
FAMILY = {
    "gaussian_noise": ("gaussian_noise",),
    "blur": ("gaussian_blur", "motion_blur", "defocus_blur"),
    "contrast": ("contrast_down",),
    "brightness": ("brightness_up",),
    "jpeg": ("jpeg_compression",),
    "pixelate": ("pixelate",),
}


def table_for(model: str, table: str) -> str:
    """The corruption table a ``--table`` choice means for ``model``."""
    if table != "medmnistc":
        kinds_in(table)  # refuses an unknown one
        return table
    if model not in MEDMNISTC:
        raise ValueError(f"{model}: no MedMNIST-C table chosen for it (MEDMNISTC)")
    return MEDMNISTC[model]


def seen_kinds(trained_on: list[str] | tuple[str, ...], table: str) -> list[str]:
    """The kinds of ``table`` a model trained on radlens' ``trained_on`` kinds has seen.

    Example:
        >>> seen_kinds(["blur", "brightness"], "breastmnist")
        ['motion_blur', 'brightness_up']
        >>> seen_kinds(["blur", "jpeg"], "radlens")
        ['blur', 'jpeg']
    """
    if table == RADLENS:
        return [k for k in kinds_in(table) if k in trained_on]
    family = {m for k in trained_on for m in FAMILY.get(k, ())}
    return [k for k in kinds_in(table) if k in family]


def row_kinds(row: dict[str, Any]) -> tuple[str, ...]:
    """The corruption kinds of a robustness.json row (rows before tables: radlens')."""
    return kinds_in(row.get("table", RADLENS))


def _kinds(result: dict[str, Any]) -> list[str]:
    """The corruption kinds of an :func:`aucs` result, from its probabilities."""
    return [k for k in result["_probs"] if k not in ("clean", "labels")]


def corrupted(val: LabelledImages, kind: str, severity: int, table: str) -> LabelledImages:
    images = [
        np.rint(corrupt(im, kind, severity, seed=i, table=table)).astype(np.uint8)
        for i, im in enumerate(val.images)
    ]
    return LabelledImages(images, val.labels, val.label_names, val.ids, val.source, val.split)


def aucs(model: InstalledModel, val: LabelledImages, table: str = RADLENS) -> dict[str, Any]:
    """Clean AUC, the other clean metrics (``clean_metrics``: accuracy, and QWK and MAE of
    an ordinal grade) and ``{kind: [AUC at severity 1..5]}`` of one model, for the kinds of
    corruption ``table``."""
    backend = OnnxBackend(model.weights, threads=2)
    clean = evaluate(model.card, backend, val)
    out: dict[str, Any] = {
        "clean": clean.metrics["auc"],
        "clean_metrics": {k: clean.metrics[k] for k in OTHER_METRICS if k in clean.metrics},
    }
    # Per-image probabilities for the intervals (``drop_intervals``); never written out.
    probs: dict[str, Any] = {"clean": clean.probs, "labels": clean.labels}
    for kind in kinds_in(table):
        runs = [evaluate(model.card, backend, corrupted(val, kind, s, table)) for s in SEVERITIES]
        out[kind] = [e.metrics["auc"] for e in runs]
        probs[kind] = [e.probs for e in runs]
        print(model.card.name, model.folder.parent.name, kind, np.round(out[kind], 3))
    out["_probs"] = probs
    return out


def pooled_aucs(parts: list[tuple[np.ndarray, dict[str, Any]]]) -> dict[str, Any]:
    """One :func:`aucs` result from the fold models' results on their held-out items
    (``(item indices, aucs result)`` per fold): their probabilities put back in item order,
    and the AUCs of the pooled probabilities (``clean_metrics`` left to the caller: they
    need the card's grade rule).

    Raises:
        ValueError: the folds do not cover every item exactly once.
    """

    def pooled(get: Any) -> np.ndarray:
        return crossfit.in_item_order(
            [{"index": held, "value": get(r["_probs"])} for held, r in parts], "value"
        )

    probs: dict[str, Any] = {"labels": pooled(lambda p: p["labels"])}
    probs["clean"] = pooled(lambda p: p["clean"])
    kinds = _kinds(parts[0][1])
    for kind in kinds:
        probs[kind] = [pooled(lambda p, i=i, k=kind: p[k][i]) for i in range(len(SEVERITIES))]
    y = probs["labels"]
    return {
        "clean": m.auc(y, probs["clean"]),
        "clean_metrics": {},
        **{k: [m.auc(y, p) for p in probs[k]] for k in kinds},
        "_probs": probs,
    }


def cross_fitted(
    model: str, folds: int, variant: str, train: LabelledImages, work: Path, table: str
) -> dict[str, Any]:
    """:func:`aucs` of a recipe (or one of its ``bench_crossfit.py`` variants) measured on
    its whole train split: each fold model on the train fold it never saw, pooled."""
    parts = []
    for k in range(folds):
        held = crossfit.held_out(train.labels, folds, k)
        fold_model = load_model(crossfit.fold_folder(work, model, variant, k, folds) / "model")
        parts.append((held, aucs(fold_model, crossfit.subset(train, held), table)))
    out = pooled_aucs(parts)
    probs = out["_probs"]
    clean = crossfit.oof_metrics(
        fold_model.card.task, probs["labels"], probs["clean"], work / model / variant
    )
    out["clean_metrics"] = {k: clean[f"{k}_oof"] for k in OTHER_METRICS if f"{k}_oof" in clean}
    return out


def drop_intervals(
    before: dict[str, Any], after: dict[str, Any], boots: int = BOOTS, seed: int = 0
) -> dict[str, list[list[float]]]:
    """95% intervals, per severity, of the mean drop over every corruption (``before``,
    ``after``) and of ``after - before / 2`` (``excess``: the goal holds where it is <= 0),
    from one paired bootstrap of the val images: each resample scores both models on the
    same images, clean and corrupted, so what the images share cancels.

    ``before`` and ``after`` are :func:`aucs` results with their ``_probs``.
    """
    pb, pa = before["_probs"], after["_probs"]
    y, kinds = pb["labels"], _kinds(before)
    samples: dict[str, list[list[float]]] = {"before": [], "after": [], "excess": []}
    for idx in paired_resamples(y, boots, seed):
        rows = {}
        for name, p in (("before", pb), ("after", pa)):
            clean = m.auc(y[idx], p["clean"][idx])
            rows[name] = [
                float(np.mean([clean - m.auc(y[idx], p[k][i][idx]) for k in kinds]))
                for i in range(len(SEVERITIES))
            ]
        samples["before"].append(rows["before"])
        samples["after"].append(rows["after"])
        samples["excess"].append(
            [a - 0.5 * b for a, b in zip(rows["after"], rows["before"], strict=True)]
        )
    return {
        name: np.round(np.percentile(np.array(v), [2.5, 97.5], axis=0).T, 4).tolist()
        for name, v in samples.items()
    }


def paired_resamples(y: np.ndarray, boots: int = BOOTS, seed: int = 0) -> Iterator[np.ndarray]:
    """``boots`` bootstrap resamples (indices) of the items labelled ``y``, each scored on
    both sides of a paired comparison; a resample missing a class is drawn again (it has
    no AUC of that class)."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < boots:
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) < len(np.unique(y)):
            continue
        done += 1
        yield idx


def verdict(before_ci: list[float], excess_ci: list[float]) -> str:
    """One severity's goal, read from its intervals (see :func:`drop_intervals`).

    Example:
        >>> verdict([0.01, 0.03], [-0.02, -0.001]), verdict([0.01, 0.03], [0.002, 0.01])
        ('met', 'not met')
        >>> verdict([-0.004, 0.006], [-0.01, 0.01]), verdict([0.01, 0.03], [-0.01, 0.01])
        ('no drop to halve', 'within noise')
    """
    if before_ci[0] <= 0:
        return "no drop to halve"
    if excess_ci[1] <= 0:
        return "met"
    if excess_ci[0] > 0:
        return "not met"
    return "within noise"


def mean_drops(result: dict[str, Any], kinds: list[str]) -> list[float]:
    """Mean over ``kinds`` of clean AUC minus corrupted AUC, per severity."""
    clean = float(result["clean"])
    return [float(np.mean([clean - result[k][i] for k in kinds])) for i in range(len(SEVERITIES))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="untreated model folders (val)")
    parser.add_argument("--after", type=Path, default=zoo_folder(), help="treated models")
    parser.add_argument("--label", default="shipped", help="what the treated models are")
    parser.add_argument("--before-label", default="", help="where --before came from")
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--seen", default="", help="corruptions trained on (default: recipe)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the results")
    parser.add_argument("--crossfit", default="", metavar="MODEL", help="measure on train")
    parser.add_argument("--folds", type=int, default=5, help="with --crossfit")
    parser.add_argument(
        "--before-variant", default="", help="with --crossfit: untreated (default the recipe)"
    )
    parser.add_argument(
        "--after-variant", default="", help="with --crossfit: treated (default the recipe)"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/radlens-crossfit"))
    parser.add_argument(
        "--table",
        default=RADLENS,
        help="corruptions: radlens (its own six), medmnistc (each model's MedMNIST-C table, "
        "MEDMNISTC) or a MedMNIST-C dataset's name",
    )
    args = parser.parse_args()
    if bool(args.crossfit) == (args.before is not None):
        parser.error("give --before (val) or --crossfit MODEL (train), not both")
    if args.crossfit and args.before_variant == args.after_variant:
        parser.error("--crossfit compares two recipes: give --before-variant or --after-variant")
    root = Path(os.environ.get("RADLENS_DATA", HERE.parent.parent / "shared" / "data"))
    if not root.exists():
        print(f"skip: no data at {root}")
        return 0
    wanted = {m for m in args.models.split(",") if m}
    measured = [crossfit_row(args, root)] if args.crossfit else list(val_rows(args, root, wanted))
    save(measured, args.out)
    return 0


def save(measured: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Merge ``measured`` into ``out``/robustness.json by model and label and rewrite it and
    robustness.md. The file is read only now, under a lock, so runs measured side by side
    (minutes each) keep each other's rows."""
    json_path = out / "robustness.json"
    with crossfit.locked(json_path):
        rows = json.loads(json_path.read_text())["rows"] if json_path.is_file() else []
        for row in measured:
            rows = [r for r in rows if _key(r) != _key(row)]
            rows.append(row)
        rows.sort(
            key=lambda r: (
                r.get("table", RADLENS) != RADLENS,
                r["label"] != "shipped",
                r["label"],
                r["model"],
                r.get("table", RADLENS),
            )
        )
        result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": rows}
        json_path.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
        (out / "robustness.md").write_text(render(result), encoding="utf-8")
    return result


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    """A row's identity in robustness.json: model, label and corruption table."""
    return row["model"], row["label"], row.get("table", RADLENS)


def val_rows(args: argparse.Namespace, root: Path, wanted: set[str]) -> Iterator[dict[str, Any]]:
    """A row per 2D model in ``--after`` whose ``--before`` weights differ, measured on val."""
    for folder in sorted(p for p in args.after.iterdir() if (p / "card.json").is_file()):
        if wanted and folder.name not in wanted:
            continue
        if not (args.before / folder.name / "card.json").is_file():
            continue
        after, before = load_model(folder), load_model(args.before / folder.name)
        if after.card.input.dims != 2 or after.card.sha256 == before.card.sha256:
            continue
        recipe = read_recipe(RECIPES / f"{folder.name}.toml")
        trained_on = args.seen.split(",") if args.seen else recipe.augment.corruptions
        table = table_for(folder.name, args.table)
        val = read_labelled(data_source(after.card, root), "val", after.card.labels)
        val = val.sample(MAX_VAL)
        measured = {"before": aucs(before, val, table), "after": aucs(after, val, table)}
        yield measured_row(
            {
                "model": folder.name,
                "label": args.label,
                "versions": [before.card.version, after.card.version],
                "before_source": args.before_label or str(args.before),
                "n_val": len(val),
                "sha256": [before.card.sha256, after.card.sha256],
                "command": after.card.training.command,
                "table": table,
                **_denoise_head(before.card, after.card),
            },
            measured,
            seen_kinds(trained_on, table),
        )


def _denoise_head(before: ModelCard, after: ModelCard) -> dict[str, Any]:
    """The median filter side of each model's ``input.denoise`` (rows without the key: none)."""
    sides = [c.input.denoise.median if c.input.denoise else None for c in (before, after)]
    return {"denoise": sides} if any(sides) else {}


def measured_row(
    head: dict[str, Any], measured: dict[str, dict[str, Any]], seen: list[str]
) -> dict[str, Any]:
    """A robustness.json row: ``head`` (what was measured, its corruption ``table``), the
    two :func:`aucs` results, the intervals of the drops and the mean drops over all, seen
    and unseen corruptions."""
    every = _kinds(measured["before"])
    intervals = drop_intervals(measured["before"], measured["after"])
    for side in measured.values():
        del side["_probs"]
    row: dict[str, Any] = {
        **head,
        "date": time.strftime("%Y-%m-%d"),
        "seen": seen,
        **measured,
        "drop_all_ci": intervals,
    }
    for name, kinds in (
        ("all", every),
        ("seen", seen),
        ("unseen", [k for k in every if k not in seen]),
    ):
        if kinds:
            row[f"drop_{name}"] = {
                "before": mean_drops(measured["before"], kinds),
                "after": mean_drops(measured["after"], kinds),
            }
    return row


def crossfit_row(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The ``--crossfit`` row: the recipe's and the treated variant's fold models on train."""
    model = args.crossfit
    _, raw = crossfit.recipe_of(model)
    train = read_labelled(crossfit.data_path(raw, root), "train", tuple(raw["labels"]))
    table = table_for(model, args.table)
    measured = {
        side: cross_fitted(model, args.folds, variant, train, args.work, table)
        for side, variant in (("before", args.before_variant), ("after", args.after_variant))
    }
    trained_on = args.seen.split(",") if args.seen else []
    return measured_row(
        {
            "model": model,
            "label": args.label,
            "versions": [raw["version"], raw["version"]],
            "before_source": (
                f"bench_crossfit.py variant `{args.before_variant}`"
                if args.before_variant
                else "the recipe"
            )
            + f": fold models cross-fitted over train ({args.folds} folds)",
            "n_val": len(train),
            "cross_fitted": {
                "folds": args.folds,
                "before": args.before_variant,
                "after": args.after_variant,
            },
            "command": f"bench_crossfit.py --variant {args.after_variant}"
            if args.after_variant
            else f"the recipe, recipes/{model}.toml",
            "table": table,
        },
        measured,
        seen_kinds(trained_on, table),
    )


def goal_count(before: list[float], after: list[float]) -> int:
    """Severities where the ``after`` drop is at most half the ``before`` one (a negative
    ``before`` drop counts as 0).

    Example:
        >>> goal_count([0.02, 0.04, -0.01], [0.01, 0.03, 0.0])
        2
    """
    return sum(1 for b, a in zip(before, after, strict=True) if a <= 0.5 * max(b, 0.0) + 1e-9)


def _goal(before: list[float], after: list[float]) -> str:
    return f"{goal_count(before, after)}/{len(before)}"


def ship_check(row: dict[str, Any]) -> tuple[int, int, float, bool]:
    """The shipping rule for one row: (severities meeting the goal after treatment, the
    same count for the untreated model against itself, clean AUC after - before, whether
    the treated model qualifies: more severities than the untreated one and a clean AUC at
    most ``MAX_CLEAN_LOSS`` lower).

    Example:
        >>> row = {"drop_all": {"before": [0.02, -0.01], "after": [0.005, 0.0]},
        ...        "before": {"clean": 0.90}, "after": {"clean": 0.895}}
        >>> ship_check(row)[0:2], ship_check(row)[3]
        ((2, 1), True)
    """
    drops = row["drop_all"]
    treated = goal_count(drops["before"], drops["after"])
    untreated = goal_count(drops["before"], drops["before"])
    delta = float(row["after"]["clean"]) - float(row["before"]["clean"])
    return treated, untreated, delta, treated > untreated and delta >= -MAX_CLEAN_LOSS - 1e-12


def _label(row: dict[str, Any]) -> str:
    """A row's label, whether the treated model denoises noisier inputs, and its corruption
    table when it is not radlens' own."""
    table = row.get("table", RADLENS)
    side = (row.get("denoise") or [None, None])[1]
    denoise = f" + denoise {side} x {side}" if side else ""
    return row["label"] + denoise + ("" if table == RADLENS else f" [MedMNIST-C {table}]")


def _other_metrics(row: dict[str, Any]) -> str:
    before = row["before"].get("clean_metrics")
    after = row["after"].get("clean_metrics")
    if not before or not after:
        return "-"
    keys = [k for k in OTHER_METRICS if k in before and k in after]
    return ", ".join(f"{k.upper()} {before[k]:.3f} / {after[k]:.3f}" for k in keys)


def render(result: dict[str, Any]) -> str:
    rows: list[dict[str, Any]] = result["rows"]
    out = [
        "# Benchmark: robustness to corrupted input (issue 5, part 4)\n",
        f"Measured on {result['machine']} by `benchmarks/bench_robustness.py` (dates per "
        f"row below). Val split (up to {MAX_VAL} images per model, the same for both "
        "models), corrupted at the source resolution by `radlens.evaluation.corruptions` at "
        "severities 1-5 and stored as 8-bit. *Before*: the untreated model; *after*: the "
        "model trained with corruption augmentation (`augment.corruptions` in its recipe, "
        "with `augment.corruption_prob`: corrupted copies swapped in, or "
        "`augment.consistency`: a consistency term between each item and a corrupted copy), "
        "*shipped* or *tried and not shipped*; a tried variant's label names what it changes "
        "(corruption probability p, consistency weight, copies, kinds, schedule), "
        "the rest is the untreated model's recipe (`command` in robustness.json). Drop = "
        "clean AUC - corrupted AUC of the same model. Goal: mean drop per severity after "
        "robustness training at most half of the untreated model's. *Seen* corruptions are "
        "the kinds the treated model trained on (other seeds and severities drawn at "
        "random); *unseen* ones test generalization.\n",
        "Two corruption tables. Rows without a mark use radlens' own six corruptions "
        "(`radlens.evaluation.corruptions`, the same for every modality; its blur scales "
        "from 28 px, so at 224 px it is a 4-18 px Gaussian, far beyond MedMNIST-C's X-ray "
        "blur). Rows marked *[MedMNIST-C dataset]* use that MedMNIST-C dataset's "
        "modality-specific corruptions and severities (`radlens.evaluation.medmnistc`, "
        "`--table medmnistc`): pneumoniamnist for the chest X-ray models (their source "
        "set), breastmnist and retinamnist for breast and retina, chestmnist for knee and "
        "fracture X-rays. There, *seen* means a kind of a family the model trained on "
        "(radlens' blur, noise, lowered contrast, raised brightness, JPEG, pixelation) with "
        "other parameters.\n",
        "Rows marked *+ denoise N x N*: the treated model's card also has `input.denoise` "
        "(`radlens denoise`, docs/model-card.md): an input noisier than every training "
        "image is read after an N x N median filter, a test-time treatment beside the "
        "robustness training (flagged low trust, never applied to an input no noisier than "
        "the training images, so clean figures are unchanged); the untreated model reads "
        "every input as it came.\n",
        "| model | label | versions before -> after | before from | date | n val |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['model']} | {_label(r)} | {' -> '.join(r['versions'])} | "
            f"{r['before_source']} | {r['date']} | {r['n_val']} |"
        )
    out += [
        "\n## Mean AUC drop per severity (before / after)\n",
        "| model | label | corruptions | s1 | s2 | s3 | s4 | s5 | severities meeting the goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        unseen = [k for k in row_kinds(r) if k not in r["seen"]]
        for name, kinds in (("all", []), ("seen", r["seen"]), ("unseen", unseen)):
            drops = r.get(f"drop_{name}")
            if drops is None:
                continue
            pairs = zip(drops["before"], drops["after"], strict=True)
            cells = [f"{b:+.3f} / {a:+.3f}" for b, a in pairs]
            what = name + (": " + ", ".join(kinds) if kinds else "")
            goal = _goal(drops["before"], drops["after"])
            out.append(
                f"| {r['model']} | {_label(r)} | {what} | " + " | ".join(cells) + f" | {goal} |"
            )
    with_ci = [r for r in rows if "drop_all_ci" in r]
    if with_ci:
        out += [
            "\n## How sure: 95% intervals of the mean drop (all corruptions)\n",
            f"A paired bootstrap of the val images ({BOOTS} resamples; both models, clean "
            "and corrupted, scored on the same resampled images). Each cell: the untreated "
            "drop's interval / the treated drop's interval, and the goal read from the "
            "interval of *treated drop - untreated drop / 2*: **met** (all of it <= 0), "
            "**not met** (all of it > 0), **within noise** (it spans 0), or **no drop to "
            "halve** (the untreated drop's interval reaches 0 or below: nothing measurable "
            "to halve). Rows measured before the intervals were added have none.\n",
            "| model | label | s1 | s2 | s3 | s4 | s5 |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in with_ci:
            ci = r["drop_all_ci"]
            cells = [
                f"[{b[0]:+.3f}, {b[1]:+.3f}] / [{a[0]:+.3f}, {a[1]:+.3f}]: **{verdict(b, e)}**"
                for b, a, e in zip(ci["before"], ci["after"], ci["excess"], strict=True)
            ]
            out.append(f"| {r['model']} | {_label(r)} | " + " | ".join(cells) + " |")
    out += [
        "\n## AUC per corruption and severity (before / after)\n",
        "| model | label | corruption | clean | s1 | s2 | s3 | s4 | s5 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b, a = r["before"], r["after"]
        for kind in row_kinds(r):
            cells = [f"{x:.3f} / {y:.3f}" for x, y in zip(b[kind], a[kind], strict=True)]
            mark = " (seen)" if kind in r["seen"] else ""
            out.append(
                f"| {r['model']} | {_label(r)} | {kind}{mark} | "
                f"{b['clean']:.3f} / {a['clean']:.3f} | " + " | ".join(cells) + " |"
            )
    out += [
        "\n## What was tried\n",
        "Every treated variant measured, against the same untreated model. *Goal*: severities "
        "(of 5, all corruptions) where the treated model's mean drop is at most half the "
        "untreated one's; *untreated*: the same count for the untreated model against itself "
        "(a severity whose untreated drop is already <= 0 counts). *Rule*: a variant may ship "
        "only if its goal count exceeds the untreated count and its clean val AUC is at most "
        f"{MAX_CLEAN_LOSS} below the untreated model's. The rule is necessary, not "
        "sufficient: a variant that meets it but does worse on the other clean metrics "
        "(accuracy; QWK and MAE of a grade) is not shipped, and its label says why. All "
        "selection is on val (no test split is used). With the small val sets (n val "
        "above), one AUC is uncertain by a few hundredths, so drops below about 0.01 and "
        "their halves are within noise.\n",
        "| model | label | trained on | clean AUC before / after (delta) | other clean "
        "metrics before / after | goal all / seen / unseen | untreated | rule |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["model"], r["label"] != "shipped", _label(r))):
        treated, untreated, delta, ok = ship_check(r)
        counts = " / ".join(
            _goal(r[f"drop_{n}"]["before"], r[f"drop_{n}"]["after"]) if f"drop_{n}" in r else "-"
            for n in ("all", "seen", "unseen")
        )
        out.append(
            f"| {r['model']} | {_label(r)} | {', '.join(r['seen']) or '-'} | "
            f"{r['before']['clean']:.3f} / {r['after']['clean']:.3f} ({delta:+.3f}) | "
            f"{_other_metrics(r)} | {counts} | {untreated}/{len(SEVERITIES)} | "
            f"{'met' if ok else 'not met'} |"
        )
    out.append(
        "\nOut-of-distribution detection of the same corruptions: `benchmarks/trust.md`; "
        "calibration: `benchmarks/calibration.md`."
    )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
