"""Calibration measured on the train split by cross-fitting, where val is too small (issue 5).

``bench_calibration.py`` measures each shipped model's ECE on its val split. At 78-194 val
items a perfectly calibrated model already reads an ECE of 0.06-0.10 there (its noise
floor), so the goal of ECE <= 0.03 can be neither shown nor refuted for most models. This
script measures the *recipe's* calibration on many more items, none of them seen by the
network that scores them:

1. the train split is dealt into ``--folds`` stratified folds (seed 0);
2. for each fold ``k`` the model's recipe is trained (``radlens train``, the recipe
   unchanged but for ``data``) on the other folds, with val unchanged: early stopping, model
   selection and calibration on val exactly as for the shipped model;
3. the fold model's val logits are calibrated by ``radlens.evaluation.calibration.calibrate``
   (the code of ``radlens calibrate``), and its calibrated probabilities taken on fold ``k``;
4. pooled, those out-of-fold probabilities cover every train item once: ECE before
   (T = 1) and after calibration, a bootstrap 95% interval over items (2000 resamples,
   seed 0), and the noise floor at this n (``ece_noise_floor``).

What it shows: the calibration that a model made by this recipe and calibrated on this
val reaches on unseen items of the same distribution. The shipped model is one such model,
trained on all of train (a fold model sees (folds - 1) / folds of it), so this is the
recipe's figure, not the shipped weights' own. Train and val are random splits of one
source for every dataset measured here.

    python benchmarks/bench_crossfit.py --models breast_us_malignancy retina_dr_grade
    python benchmarks/bench_crossfit.py --render-only

A *variant* is the recipe with ``radlens train --set`` overrides, measured the same way on
the same folds under its own name (``--variant NAME --set KEY=VALUE ...``), to compare a
change to how the model is made on unseen items rather than on val:

    python benchmarks/bench_crossfit.py --models retina_dr_grade --variant last20 \
        --set schedule.epochs=20

``{fold}`` in a ``--set`` value becomes the fold's number, so a variant can fine-tune each
fold's model of the recipe (``net.start``) on that fold's own training items:

    python benchmarks/bench_crossfit.py --models knee_oa_kl --variant ft --set \
        'net.start="/tmp/radlens-crossfit/knee_oa_kl/fold{fold}of5/model"' ...

Fold models and their figures are kept under ``--work`` (default /tmp/radlens-crossfit):
a rerun reuses every finished fold made by the same recipe and overrides (``made-by.json``
in each fold folder; another recipe's folds are refused, not silently reused). Writes
benchmarks/crossfit.{json,md} (rows merged by model and variant, so they can be measured by
separate runs) and benchmarks/reliability/<model>-crossfit[-<variant>].png.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radlens.cli.train import parse_sets
from radlens.evaluation import metrics as m
from radlens.evaluation.calibration import (
    NOISE_DRAWS,
    SEED,
    CrossFittedLogits,
    calibrate,
    candidate_methods,
    ece_debiased_for,
    ece_for,
    ece_noise_floor,
    fit_method,
    nll_for,
    paired_nll_gain,
    stratified_folds,
)
from radlens.evaluation.evaluate import predict_logits, summarize
from radlens.inference.backends import OnnxBackend
from radlens.io.datasets import LabelledImages, read_labelled
from radlens.models.card import Calibration, CalibrationMethod, CrossFitted, Task
from radlens.models.registry import load_model
from radlens.training.recipe import read_recipe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_calibration import (  # noqa: E402
    BOOTSTRAP,
    bootstrap_ece,
    debiased_cell,
    debiased_verdict,
    reliability_png,
)
from sweep import radlens_command  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GOAL_ECE = 0.03
WORK = Path("/tmp/radlens-crossfit")
POOLED = "val + cross-fitted"  # calibrated_on of a card made by radlens calibrate --cross-fitted
# calibrated_on of a card made by radlens calibrate --cross-fitted --choose-only
CHOSEN_ON_POOL = "val, method chosen on val + cross-fitted"


@dataclass(frozen=True)
class Variant:
    """The recipe with ``radlens train --set`` overrides, measured under its own name; the
    recipe itself is the nameless one, ``AS_SHIPPED``."""

    name: str = ""
    sets: tuple[str, ...] = ()
    note: str = ""

    @property
    def suffix(self) -> str:
        """``-NAME`` for a variant's files, nothing for the recipe's."""
        return f"-{self.name}" if self.name else ""


AS_SHIPPED = Variant()


def recipe_of(model: str) -> tuple[Path, dict[str, Any]]:
    path = REPO / "recipes" / f"{model}.toml"
    return path, tomllib.loads(path.read_text(encoding="utf-8"))


def data_path(raw: dict[str, Any], root: Path) -> Path:
    """The recipe's data under ``root`` (recipes name it as ``../shared/data/...``)."""
    relative = Path(str(raw["data"]))
    parts = relative.parts
    return root.joinpath(*parts[3:]) if parts[:3] == ("..", "shared", "data") else relative


def fold_data(source: Path, train: LabelledImages, keep: np.ndarray, out: Path) -> Path:
    """A copy of ``source`` whose train split holds only the ``keep`` items; val unchanged.

    A MedMNIST file is rewritten with the kept train rows; a prepared set (``labels.csv``
    with a split column, ``boxes.csv``) gets tables of the kept train rows and links to the
    rest; a folder of class folders becomes links: ``val`` to the source's,
    ``train/<class>/<file>`` to each kept file.
    """
    out.mkdir(parents=True, exist_ok=True)
    if source.suffix == ".npz":
        target = out / source.name
        if not target.exists():
            with np.load(source) as data:
                arrays = {k: data[k] for k in data.files}
            arrays["train_images"] = arrays["train_images"][keep]
            arrays["train_labels"] = arrays["train_labels"][keep]
            np.savez(out / f"partial-{source.name}", **arrays)
            (out / f"partial-{source.name}").rename(target)
        return target
    target = out / source.name
    if not target.exists() and (source / "labels.csv").exists():
        _fold_table(source, {train.ids[i] for i in np.flatnonzero(keep)}, target)
    elif not target.exists():
        partial = out / f"partial-{source.name}"
        (partial / "train").mkdir(parents=True, exist_ok=True)
        (partial / "val").symlink_to((source / "val").resolve())
        for i in np.flatnonzero(keep):
            rel = Path(train.ids[i])
            link = partial / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((source / rel).resolve())
        partial.rename(target)
    return target


def _fold_table(source: Path, kept: set[str], target: Path) -> None:
    """A prepared set (``labels.csv`` with a split column, and ``boxes.csv`` where it has
    one) whose train rows are the ``kept`` files; every other entry linked."""
    partial = target.parent / f"partial-{target.name}"
    partial.mkdir(parents=True, exist_ok=True)
    names = {Path(k).name for k in kept}
    tables = {"labels.csv": ("file", kept), "boxes.csv": ("image", names)}
    for entry in sorted(source.iterdir()):
        if entry.name not in tables:
            (partial / entry.name).symlink_to(entry.resolve())
            continue
        column, keep = tables[entry.name]
        with entry.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("split") != "train" or r[column] in keep]
        with (partial / entry.name).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    partial.rename(target)


def subset(data: LabelledImages, index: np.ndarray) -> LabelledImages:
    return LabelledImages(
        [data.images[i] for i in index],
        data.labels[index],
        data.label_names,
        tuple(data.ids[i] for i in index),
        data.source,
        data.split,
    )


def fingerprint(recipe: Path, sets: tuple[str, ...] = ()) -> str:
    """What makes the fold models: the recipe's training fields with the ``--set``
    overrides, not its name, version or prose."""
    made = read_recipe(recipe, parse_sets(list(sets)))
    fields = ("task", "labels", "seed", "input", "net", "schedule", "augment")
    plain = {f: _plain(getattr(made, f)) for f in fields}
    if made.schedule.keep == "last":
        del plain["schedule"]["patience"]  # every epoch runs: patience changes nothing
    return json.dumps(plain, sort_keys=True, default=str)


def _plain(value: Any) -> Any:
    return asdict(value) if hasattr(value, "__dataclass_fields__") else value


def check_stamp(base: Path, made_by: str) -> None:
    """Fold models are reused only when made by the same recipe and overrides.

    ``base/made-by.json`` records it. A fold folder without one (made before it was
    written) is taken as made by this recipe, and stamped.

    Raises:
        ValueError: the folder's models were made by another recipe or overrides.
    """
    stamp = base / "made-by.json"
    if stamp.exists() and stamp.read_text(encoding="utf-8") != made_by:
        raise ValueError(
            f"{base} was made by another recipe or other overrides (see {stamp.name}): "
            "remove the folder to train it again, or measure the change as a --variant"
        )
    base.mkdir(parents=True, exist_ok=True)
    stamp.write_text(made_by, encoding="utf-8")


def held_out(labels: np.ndarray, folds: int, k: int) -> np.ndarray:
    """The train items fold ``k`` holds out (``folds`` stratified folds, seed :data:`SEED`)."""
    return np.flatnonzero(stratified_folds(labels, folds, SEED) == k)


def fold_folder(work: Path, model: str, variant: str, k: int, folds: int) -> Path:
    """Where fold ``k``'s model of ``model``'s recipe (or its ``variant``) is kept."""
    return work / model / variant / f"fold{k}of{folds}"


def fold_sets(sets: tuple[str, ...], k: int) -> list[str]:
    """A variant's ``--set`` overrides for fold ``k``: ``{fold}`` becomes its number.

    Example:
        >>> fold_sets(('net.start="/w/fold{fold}of5/model"', "schedule.epochs=10"), 3)
        ['net.start="/w/fold3of5/model"', 'schedule.epochs=10']
    """
    return [kv.replace("{fold}", str(k)) for kv in sets]


def run_fold(
    model: str,
    recipe: Path,
    source: Path,
    train: LabelledImages,
    k: int,
    folds: int,
    work: Path,
    variant: Variant = AS_SHIPPED,
) -> dict[str, Any]:
    """Train fold ``k``'s model (unless already trained) and score its held-out items.

    A ``variant`` trains the recipe with its ``--set`` overrides, in a folder of its own."""
    held = held_out(train.labels, folds, k)
    base = fold_folder(work, model, variant.name, k, folds)
    sets = [arg for kv in fold_sets(variant.sets, k) for arg in ("--set", kv)]
    check_stamp(base, fingerprint(recipe, variant.sets))
    scored = base / "scored.npz"
    if scored.exists():
        with np.load(scored) as saved:
            if "val_logits" in saved.files:  # else scored by an older version: score again
                return {key: saved[key] for key in saved.files}
    keep = np.ones(len(train.labels), dtype=bool)
    keep[held] = False
    data = fold_data(source, train, keep, base / "data")
    out = base / "model"
    if not (out / "card.json").exists():
        command = [
            radlens_command(),
            "train",
            str(recipe),
            "--set",
            f"data={json.dumps(str(data))}",
            *sets,
            "-o",
            str(out),
        ]
        print(" ".join(command), flush=True)
        started = time.perf_counter()
        with (base / "train.out").open("w") as log:
            subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=True)
        (base / "minutes").write_text(f"{(time.perf_counter() - started) / 60:.1f}\n")
    installed = load_model(out)
    card = installed.card
    backend = OnnxBackend(installed.weights, threads=2)
    val = read_labelled(data, "val", card.labels)
    val_logits = predict_logits(card, backend, val)
    calibration, _ = calibrate(card.task, val_logits, val.labels)
    logits = predict_logits(card, backend, subset(train, held))
    result = {
        "index": held,
        "logits": logits,
        "probs": calibration.probabilities(logits, card.task),
        "raw": Calibration().probabilities(logits, card.task),
        "val_logits": val_logits,
        "val_labels": val.labels,
        "method": np.array(calibration.method.value),
        "temperature": np.array(calibration.temperature),
        "val_auc": np.array(summarize(card, val_logits, val.labels, "val").metrics["auc"]),
        "minutes": np.array(float((base / "minutes").read_text())),
    }
    np.savez(scored, **result)
    return result


def pool(
    parts: list[dict[str, Any]], labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, calibrated and T = 1 probabilities of every item in item order, from the
    folds' held-out parts.

    Raises:
        ValueError: the parts do not cover every item exactly once.
    """
    probs = in_item_order(parts, "probs")
    if len(probs) != len(labels):
        raise ValueError(COVER)
    return labels, probs, in_item_order(parts, "raw")


COVER = "the folds' held-out items must cover every item exactly once"


def in_item_order(parts: list[dict[str, Any]], key: str) -> np.ndarray:
    """The parts' ``key`` arrays, concatenated and put back in item order (each part's
    ``index`` says which items it holds).

    Raises:
        ValueError: the parts do not hold items 0 .. N - 1 exactly once.
    """
    index = np.concatenate([p["index"] for p in parts])
    if np.sort(index).tolist() != list(range(len(index))):
        raise ValueError(COVER)
    out: np.ndarray = np.concatenate([p[key] for p in parts])[np.argsort(index)]
    return out


def debiased(task: Task, y: np.ndarray, probs: np.ndarray, key: str) -> dict[str, Any]:
    """``{key}_debiased`` and its 95% bootstrap interval (``{key}_debiased_ci95``)."""
    interval = bootstrap_ece(task, y, probs, ece_debiased_for)
    return {
        f"{key}_debiased": round(ece_debiased_for(task, y, probs), 4),
        f"{key}_debiased_ci95": [round(v, 4) for v in interval],
    }


def measure(
    model: str, folds: int, root: Path, work: Path, variant: Variant = AS_SHIPPED
) -> dict[str, Any]:
    recipe, raw = recipe_of(model)
    source = data_path(raw, root)
    labels = tuple(raw["labels"])
    task = Task(raw["task"])
    train = read_labelled(source, "train", labels)
    parts = [run_fold(model, recipe, source, train, k, folds, work, variant) for k in range(folds)]
    y, probs, raw_probs = pool(parts, train.labels)
    transfer = transferred(task, parts, train.labels)
    pooled, pooled_methods = pooled_with_val(task, parts, train.labels)
    gain, error = paired_nll_gain(task, y, probs, pooled)
    pooled_noise = ece_noise_floor(task, pooled)
    ece_after = ece_for(task, y, probs)
    low, high = bootstrap_ece(task, y, probs)
    noise_mean, noise_p95 = ece_noise_floor(task, probs)
    shipped = json.loads((REPO / "src/radlens/zoo" / model / "card.json").read_text())
    shipped_calibration = shipped.get("calibration", {})
    card_method = CalibrationMethod(shipped_calibration.get("method", "temperature"))
    calibrated_on = _calibrated_on(shipped_calibration)
    fixed = fixed_method(task, parts, train.labels, card_method, pooled=calibrated_on == POOLED)
    fixed_noise = ece_noise_floor(task, fixed)
    reliability_png(
        HERE / "reliability" / f"{model}-crossfit{variant.suffix}.png",
        f"{model}{f' ({variant.name})' if variant.name else ''} cross-fitted over train, "
        f"n={len(y)} ({folds} folds)",
        y,
        [
            (f"T = 1: ECE {ece_for(task, y, raw_probs):.3f}", raw_probs),
            (f"calibrated on val: ECE {ece_after:.3f}", probs),
            (f"on val + other folds: ECE {ece_for(task, y, pooled):.3f}", pooled),
        ],
    )
    return {
        "model": model,
        "variant": variant.name,
        "sets": list(variant.sets),
        "note": variant.note,
        "version": shipped.get("version"),
        "task": task.value,
        "folds": folds,
        "n": len(y),
        "n_val": len(read_labelled(source, "val", labels)),
        "methods": sorted({str(p["method"]) for p in parts}),
        "fold_val_auc": [round(float(p["val_auc"]), 4) for p in parts],
        "fold_minutes": [round(float(p["minutes"]), 1) for p in parts],
        **oof_metrics(task, y, probs, fold_folder(work, model, variant.name, 0, folds) / "model"),
        "ece_before": round(ece_for(task, y, raw_probs), 4),
        "ece_after": round(ece_after, 4),
        "ece_after_ci95": [round(low, 4), round(high, 4)],
        **debiased(task, y, probs, "ece_after"),
        "ece_noise_mean": round(noise_mean, 4),
        "ece_noise_p95": round(noise_p95, 4),
        "ece_transfer": round(ece_for(task, y, transfer), 4),
        "calibrated_on": calibrated_on,
        "ece_pooled": round(ece_for(task, y, pooled), 4),
        "ece_pooled_ci95": [round(v, 4) for v in bootstrap_ece(task, y, pooled)],
        **debiased(task, y, pooled, "ece_pooled"),
        "ece_pooled_noise_mean": round(pooled_noise[0], 4),
        "ece_pooled_noise_p95": round(pooled_noise[1], 4),
        "pooled_methods": sorted(set(pooled_methods)),
        "card_method": card_method.value,
        "ece_card_method": round(ece_for(task, y, fixed), 4),
        "ece_card_method_ci95": [round(v, 4) for v in bootstrap_ece(task, y, fixed)],
        **debiased(task, y, fixed, "ece_card_method"),
        "ece_card_method_noise_mean": round(fixed_noise[0], 4),
        "ece_card_method_noise_p95": round(fixed_noise[1], 4),
        "nll_gain_pooled": [round(gain, 4), round(error, 4)],
        "pool_wins": gain > error,
        "every_fold": methods_on_every_fold(task, parts, train.labels, y),
        "fold_temperatures": [float(p["temperature"]) for p in parts],
        "nll": {
            "before": round(nll_for(task, y, raw_probs), 4),
            "after": round(nll_for(task, y, probs), 4),
            "transfer": round(nll_for(task, y, transfer), 4),
            "pooled": round(nll_for(task, y, pooled), 4),
            "card_method": round(nll_for(task, y, fixed), 4),
        },
    }


def _calibrated_on(calibration: dict[str, Any]) -> str:
    """How a shipped card's calibration used cross-fitted items: none (``val``), to choose
    and fit (:data:`POOLED`), or to choose the method alone (:data:`CHOSEN_ON_POOL`)."""
    record = calibration.get("cross_fitted")
    if record is None:
        return "val"
    return POOLED if record.get("use", "fit") == "fit" else CHOSEN_ON_POOL


def other_folds(
    parts: list[dict[str, Any]], labels: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The out-of-fold logits and labels of every fold but ``k``: items that neither fold
    ``k``'s model nor their own fold's model trained on."""
    others = [p for j, p in enumerate(parts) if j != k]
    return (
        np.concatenate([p["logits"] for p in others]),
        np.concatenate([labels[p["index"]] for p in others]),
    )


def fixed_method(
    task: Task,
    parts: list[dict[str, Any]],
    labels: np.ndarray,
    method: CalibrationMethod,
    pooled: bool = False,
) -> np.ndarray:
    """Each fold's items calibrated by ``method`` fitted on its model's val (``pooled``: val
    and the other folds' out-of-fold items, as :func:`pooled_with_val`), whatever
    ``radlens calibrate`` would choose for that fold model: the figures of the method the
    shipped card uses (chosen once, on the shipped model's val), in item order."""
    out = []
    for k, part in enumerate(parts):
        logits, y = part["val_logits"], part["val_labels"]
        if pooled:
            extra_logits, extra_labels = other_folds(parts, labels, k)
            logits, y = np.concatenate([logits, extra_logits]), np.concatenate([y, extra_labels])
        fitted = fit_method(method, task, logits, y)
        out.append({"index": part["index"], "probs": fitted.probabilities(part["logits"], task)})
    return in_item_order(out, "probs")


VAL_RULE = "chosen on val"
POOL_RULE = "chosen on val + other folds"


def methods_on_every_fold(
    task: Task, parts: list[dict[str, Any]], labels: np.ndarray, y: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Each calibration method ``radlens calibrate`` can choose for ``task``, fitted on every
    fold model's val alone (:func:`fixed_method`) and scored on the unseen folds, and two
    rules that choose among them per fold model: :data:`VAL_RULE` (``radlens calibrate``'s:
    on its val) and :data:`POOL_RULE` (on its val pooled with the other folds' out-of-fold
    items, several times as many, still fitted on val alone: :func:`pooled_with_val` with
    ``use`` ``choose``). For each: its ECE and debiased ECE with their intervals, its NLL,
    and against temperature scaling its NLL gain (+- one standard error, paired over items:
    the margin the rule asks of a flexible method) and its ECE difference with a paired
    bootstrap 95% interval; a rule also names the method each fold model got. What the
    out-of-fold items say about the method choice, which the shipped card makes on its val
    alone."""
    base = fixed_method(task, parts, labels, CalibrationMethod.TEMPERATURE)
    candidates: dict[str, tuple[np.ndarray, list[str] | None]] = {
        method.value: (
            base
            if method is CalibrationMethod.TEMPERATURE
            else fixed_method(task, parts, labels, method),
            None,
        )
        for method in candidate_methods(task)
    }
    candidates[VAL_RULE] = (pool(parts, labels)[1], [str(p["method"]) for p in parts])
    candidates[POOL_RULE] = pooled_with_val(task, parts, labels, use="choose")
    out: dict[str, dict[str, Any]] = {}
    for name, (probs, methods) in candidates.items():
        low, high = bootstrap_ece(task, y, probs)
        gain, error = paired_nll_gain(task, y, base, probs)
        noise_mean, noise_p95 = ece_noise_floor(task, probs)
        out[name] = {
            "ece": round(ece_for(task, y, probs), 4),
            "ece_ci95": [round(low, 4), round(high, 4)],
            "noise_mean": round(noise_mean, 4),
            "noise_p95": round(noise_p95, 4),
            **debiased(task, y, probs, "ece"),
            "nll": round(nll_for(task, y, probs), 4),
            "nll_gain": [round(gain, 4), round(error, 4)],
            "ece_minus_temperature_ci95": [
                round(v, 4) for v in paired_ece_difference(task, y, base, probs)
            ],
        } | ({"fold_methods": methods} if methods is not None else {})
    return out


def paired_ece_difference(
    task: Task, y: np.ndarray, base: np.ndarray, other: np.ndarray
) -> tuple[float, float]:
    """95% bootstrap interval (``BOOTSTRAP`` resamples of the items, seed 0) of ``other``'s
    ECE minus ``base``'s, both read on the same resample."""
    rng = np.random.default_rng(0)
    values = [
        ece_for(task, y[draw], other[draw]) - ece_for(task, y[draw], base[draw])
        for draw in (rng.integers(0, len(y), len(y)) for _ in range(BOOTSTRAP))
    ]
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


def pooled_with_val(
    task: Task, parts: list[dict[str, Any]], labels: np.ndarray, use: str = "fit"
) -> tuple[np.ndarray, list[str]]:
    """Each fold's items calibrated as ``radlens calibrate --cross-fitted`` would calibrate
    its model: chosen and fitted on its own val logits pooled with the other folds'
    out-of-fold logits (items neither it nor their own fold model trained on), or with
    ``use`` ``choose`` (``--choose-only``) chosen on that pool and fitted on its val alone.
    Returns the probabilities in item order, and each fold's chosen method."""
    out, methods = [], []
    for k, part in enumerate(parts):
        extra_logits, extra_labels = other_folds(parts, labels, k)
        extra = CrossFittedLogits(
            extra_logits,
            extra_labels,
            CrossFitted("cross_fitted.npz", "0" * 64, len(extra_labels), use),
        )
        fitted, _ = calibrate(task, part["val_logits"], part["val_labels"], cross_fitted=extra)
        out.append({"index": part["index"], "probs": fitted.probabilities(part["logits"], task)})
        methods.append(fitted.method.value)
    return in_item_order(out, "probs"), methods


def save_logits(model: str, folds: int, root: Path, work: Path, out: Path) -> Path:
    """The recipe's out-of-fold logits and labels over all of train (and each item's fold),
    for ``radlens calibrate MODEL --cross-fitted`` to pool with the shipped model's val."""
    recipe, raw = recipe_of(model)
    source = data_path(raw, root)
    train = read_labelled(source, "train", tuple(raw["labels"]))
    parts = [run_fold(model, recipe, source, train, k, folds, work) for k in range(folds)]
    fold = [{"index": p["index"], "fold": np.full(len(p["index"]), k)} for k, p in enumerate(parts)]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{model}-cross-fitted.npz"
    np.savez(
        path,
        logits=in_item_order(parts, "logits").astype(np.float32),
        labels=train.labels.astype(np.int64),
        fold=in_item_order(fold, "fold"),
    )
    return path


def oof_metrics(task: Task, y: np.ndarray, probs: np.ndarray, fold_model: Path) -> dict[str, Any]:
    """Discrimination of the pooled out-of-fold probabilities: AUC, and accuracy (and QWK
    and MAE of a grade) of the class the fold models' card reports (``ModelCard.decide``;
    ``fold_model`` is one of them: the decision rule is the recipe's)."""
    if task is Task.MULTILABEL:
        return {}
    card = load_model(fold_model).card
    pred = card.decide(probs)
    out = {"auc_oof": round(m.auc(y, probs), 4), "acc_oof": round(m.accuracy(y, pred), 4)}
    if task is Task.ORDINAL:
        out["qwk_oof"] = round(m.quadratic_weighted_kappa(y, pred, probs.shape[1]), 4)
        out["mae_oof"] = round(m.mean_abs_error(y, pred), 4)
    return out


def transferred(task: Task, parts: list[dict[str, Any]], labels: np.ndarray) -> np.ndarray:
    """Each fold's items calibrated by a temperature fitted on the other folds' out-of-fold
    logits and labels instead of on val, pooled in item order: whether a calibration fitted
    on unseen items of other models of the recipe transfers to a new one (as it would to the
    shipped model)."""
    out = []
    for k, part in enumerate(parts):
        fitted = fit_method(CalibrationMethod.TEMPERATURE, task, *other_folds(parts, labels, k))
        out.append({"index": part["index"], "probs": fitted.probabilities(part["logits"], task)})
    return in_item_order(out, "probs")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with (Path(tempfile.gettempdir()) / f"radlens-{path.stem}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def save(rows: list[dict[str, Any]], directory: Path = HERE) -> dict[str, Any]:
    """Merge ``rows`` into ``directory``/crossfit.json by model and variant and rewrite it
    and crossfit.md."""
    target = directory / "crossfit.json"
    with locked(target):
        old = json.loads(target.read_text()) if target.exists() else {"rows": []}
        merged = {(r["model"], r.get("variant", "")): r for r in old["rows"]}
        for row in rows:
            row["date"] = time.strftime("%Y-%m-%d")
            merged[row["model"], row.get("variant", "")] = row
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "goal_ece": GOAL_ECE,
            "bootstrap": BOOTSTRAP,
            "noise_draws": NOISE_DRAWS,
            "rows": [merged[k] for k in sorted(merged)],
        }
        target.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (directory / "crossfit.md").write_text(render(result), encoding="utf-8")
    return result


def as_shipped(row: dict[str, Any], on_val: bool = False) -> dict[str, Any]:
    """The row's figures for the calibration its shipped card uses: fitted on val (the
    ``ece_after`` keys), on val pooled with cross-fitted train items (``ece_pooled``), or
    fitted on val with the method chosen on that pool (:data:`POOL_RULE` of ``every_fold``);
    ``on_val``: the val-fitted ones, method chosen on val, whatever the card uses."""
    if not on_val and row.get("calibrated_on") == CHOSEN_ON_POOL:
        rule = row["every_fold"][POOL_RULE]
        return {
            "ece": rule["ece"],
            "ci95": rule["ece_ci95"],
            "noise_mean": rule["noise_mean"],
            "noise_p95": rule["noise_p95"],
            "methods": sorted(set(rule["fold_methods"])),
            **_debiased_of(rule, "ece"),
        }
    prefix = "ece_after" if on_val or row.get("calibrated_on", "val") != POOLED else "ece_pooled"
    methods = "methods" if prefix == "ece_after" else "pooled_methods"
    noise = "ece" if prefix == "ece_after" else "ece_pooled"
    return {
        "ece": row[prefix],
        "ci95": row[f"{prefix}_ci95"],
        "noise_mean": row[f"{noise}_noise_mean"],
        "noise_p95": row[f"{noise}_noise_p95"],
        "methods": row[methods],
        **_debiased_of(row, prefix),
    }


def _debiased_of(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The debiased ECE and its interval under ``prefix`` (None for a row measured before
    they were kept)."""
    return {
        "debiased": row.get(f"{prefix}_debiased"),
        "debiased_ci95": row.get(f"{prefix}_debiased_ci95"),
    }


def _goal(row: dict[str, Any], on_val: bool = False) -> str:
    return _goal_of(as_shipped(row, on_val))


def card_method_figures(row: dict[str, Any]) -> dict[str, Any] | None:
    """The row's figures with the shipped card's method fitted on every fold model's val
    (``None`` for a row measured before they were kept)."""
    if "ece_card_method" not in row:
        return None
    keys = (
        "ece_card_method",
        "ece_card_method_ci95",
        "ece_card_method_noise_mean",
        "ece_card_method_noise_p95",
    )
    names = ("ece", "ci95", "noise_mean", "noise_p95")
    return dict(zip(names, (row[k] for k in keys), strict=True)) | _debiased_of(
        row, "ece_card_method"
    )


def _card_method_cell(row: dict[str, Any]) -> str:
    figures = card_method_figures(row)
    if figures is None:
        return "(not measured)"
    low, high = figures["ci95"]
    chooser = row["nll"]["pooled" if row.get("calibrated_on") == POOLED else "after"]
    if row.get("calibrated_on") == CHOSEN_ON_POOL:
        chooser = row["every_fold"][POOL_RULE]["nll"]
    return (
        f"{row['card_method']}: {figures['ece']:.3f} ({low:.3f}-{high:.3f}), debiased "
        f"{debiased_cell(figures, 'debiased')}, NLL {row['nll']['card_method']:.3f} vs "
        f"{chooser:.3f}; "
        f"{_goal_of(figures)}"
    )


def _goal_of(figures: dict[str, Any]) -> str:
    """The verdict on the goal: on the plug-in ECE where it decides, else on the debiased
    one (the plug-in reads high at small n: its noise floor)."""
    if figures["ci95"][1] <= GOAL_ECE:
        return "met, shown"
    if figures["ece"] <= GOAL_ECE:
        return "met"
    verdict = debiased_verdict(figures, "debiased")
    if verdict is not None:
        return verdict
    if figures["ece"] <= figures["noise_p95"]:
        return "not met; within the noise floor"
    return "not met"


def render(result: dict[str, Any]) -> str:
    out = [
        "# Benchmark: calibration cross-fitted over the train split (issue 5, part 3)\n",
        f"Measured on {result['machine']} by `benchmarks/bench_crossfit.py` (dates per row). "
        "Each model's recipe is trained once per fold of its train split on the other folds, "
        "with val unchanged (early stopping and model selection as shipped); each fold model "
        "is calibrated on val by the code of `radlens calibrate` and scores the train fold "
        "it never saw. The pooled out-of-fold probabilities cover every train item once, so "
        "the ECE is measured on n = train items instead of the 78-194 of val "
        "(`calibration.md`), where the noise floor is above the goal. These are the "
        "recipe's figures: the shipped model is one such model trained on all of train.\n",
        f"* **ECE**: top-label, 15 equal-width bins, of the calibrated out-of-fold "
        f"probabilities; **95% CI**: {result['bootstrap']} bootstrap resamples of the items "
        "(seed 0). **before**: T = 1.",
        f"* **noise floor**: ECE of a perfectly calibrated model with the same probabilities at "
        f"this n ({result['noise_draws']} label draws, seed 0): mean / 95th percentile.",
        "* **debiased ECE**: the same bins less the plug-in's sampling bias (Kumar, Liang and "
        "Ma, NeurIPS 2019: twice the plug-in ECE less its mean over 1,000 redraws of each "
        "bin's accuracy from its binomial error; `radlens.evaluation.metrics.ece_debiased`), "
        "with its 95% percentile bootstrap interval. What it can say at these n is measured "
        "on simulated models of known ECE in `ece.md`: at n = 681 the plug-in reads 0.045 for "
        "a perfectly calibrated model and 0.053 for one whose true ECE is 0.03, the debiased "
        "one 0.028 and 0.037 (sd 0.017). Its point estimate is at or under 0.03 for 58% of "
        "perfectly calibrated models and 10% of models at 0.05; its interval is conservative "
        "and never under 0.03 at these n.",
        f"* **goal ECE <= {result['goal_ece']}**: *met* when the point estimate is, *shown* when "
        "the whole interval is; where the plug-in ECE is above the goal, *met by the debiased "
        "ECE* when that point estimate is (a reading, not a demonstration; *shown* when its "
        "whole interval is); otherwise *within the noise "
        "floor* when the ECE is below the floor's 95th percentile, so it cannot be told from "
        "perfect calibration at this n.",
        "* **calibrated on**: how the shipped card's calibration is fitted, and so which "
        "figures the row shows: `val` (each fold model calibrated on val), or "
        f"`{POOLED}` (`radlens calibrate --cross-fitted`: each fold model calibrated on val "
        "pooled with the other folds' out-of-fold logits, as the shipped model is on val "
        "pooled with every fold's; see the next section for both), or "
        f"`{CHOSEN_ON_POOL}` (`--cross-fitted --choose-only`: the method chosen on that pool, "
        f"fitted on val; the figures of *{POOL_RULE}* in *Each calibration method on every "
        "fold*).",
        "* **the card's method on every fold**: `radlens calibrate` chooses the method per "
        "model on its val (temperature unless the flexible method's cross-validated NLL is "
        "lower by more than one standard error), so the fold models of one recipe may be "
        "calibrated by different methods (*method(s)*). The shipped card's method was chosen "
        "once, on the shipped model's val; this column fits that method on every fold "
        "model's val (with the other folds' items for a card calibrated on both): the "
        "figures of the calibration the shipped card actually applies, "
        "with its NLL against the per-fold choice's (lower is better).",
        "* **fold val AUC**: each fold model's val AUC (the shipped model's is in models.md).",
        "* Made by `python benchmarks/bench_crossfit.py --models MODEL --folds FOLDS` (fold "
        "models under /tmp/radlens-crossfit; a rerun reuses finished folds); `--save-logits "
        "DIR` writes the out-of-fold logits that `radlens calibrate --cross-fitted` pools "
        "with a shipped model's val.\n",
        "| model | date | folds | n | calibrated on | method(s) | ECE before | ECE after | "
        "95% CI | debiased ECE (95% CI) | noise floor mean / p95 | goal | the card's method "
        "on every fold: ECE (95% CI), debiased (95% CI), NLL vs per-fold choice; goal | "
        "fold val AUC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    table = [
        "\n## Calibrated on val, or on the other folds' unseen items\n",
        "Each fold model calibrated three ways, then scored on the train fold it never saw: "
        "on its val (`radlens calibrate`); by a temperature fitted on the other folds' "
        "out-of-fold logits alone (items none of those models saw); and on its val pooled "
        "with those logits (`radlens calibrate --cross-fitted`, method chosen as on val). "
        "Does calibration learnt on unseen items of other models of the recipe transfer to a "
        "new one, as it would to the shipped model? NLL per item. **NLL gain**: val-only "
        "NLL minus pooled NLL, per item +- one standard error (paired); the pool is "
        "worth shipping when the gain exceeds one standard error (the rule `radlens "
        "calibrate` uses to choose a method).\n",
        "| model | val temperatures (per fold) | ECE: val / other folds' temperature / val + "
        "other folds' (methods) | 95% CI (val + other folds') | NLL before / val / other "
        "folds' / val + other folds' | NLL gain +- SE | shipped calibrated on |",
        "|---|---|---|---|---|---|---|",
    ]
    recipes = [r for r in result["rows"] if not r.get("variant")]
    variants = [r for r in result["rows"] if r.get("variant")]
    for r in recipes:
        shipped = as_shipped(r)
        low, high = shipped["ci95"]
        out.append(
            f"| {r['model']} {r['version']} | {r['date']} | {r['folds']} | {r['n']} | "
            f"{r.get('calibrated_on', 'val')} | {', '.join(shipped['methods'])} | "
            f"{r['ece_before']:.3f} | {shipped['ece']:.3f} | {low:.3f}-{high:.3f} | "
            f"{debiased_cell(shipped, 'debiased')} | "
            f"{shipped['noise_mean']:.3f} / {shipped['noise_p95']:.3f} | {_goal(r)} | "
            f"{_card_method_cell(r)} | {' '.join(f'{a:.3f}' for a in r['fold_val_auc'])} |"
        )
        if "ece_pooled" in r:
            nll = r["nll"]
            gain, error = r["nll_gain_pooled"]
            p_low, p_high = r["ece_pooled_ci95"]
            table.append(
                f"| {r['model']} | {' '.join(f'{t:.2f}' for t in r['fold_temperatures'])} | "
                f"{r['ece_after']:.3f} / {r['ece_transfer']:.3f} / {r['ece_pooled']:.3f} "
                f"({', '.join(r['pooled_methods'])}) | {p_low:.3f}-{p_high:.3f} | "
                f"{nll['before']:.3f} / {nll['after']:.3f} / {nll['transfer']:.3f} / "
                f"{nll['pooled']:.3f} | {gain:+.4f} +- {error:.4f} | "
                f"{r.get('calibrated_on', 'val')} |"
            )
    out += table
    out += methods_table(recipes)
    if variants:
        out += [
            "\n## Recipe variants\n",
            "The recipe as it is now with the `radlens train --set` overrides named, "
            "cross-fitted the same way (same folds, val unchanged), to see whether a change to "
            "how the model is made calibrates or discriminates better on unseen items. Made "
            "by `python benchmarks/bench_crossfit.py --models MODEL --folds FOLDS --variant "
            "NAME --set KEY=VALUE ... [--note TEXT]`. **OOF AUC / "
            "ACC (/ QWK / MAE)**: of the pooled out-of-fold probabilities and the class the "
            "card reports from them, against the recipe's. Every row here is calibrated on val "
            "(the recipe's row too, whatever its shipped card uses), so the rows compare.\n",
            "| model | variant | overrides | date | folds | n | OOF AUC / ACC (/ QWK / MAE) | "
            "ECE before | ECE after "
            "| 95% CI | debiased ECE (95% CI) | noise floor mean / p95 | goal | ECE, other "
            "folds' temperature | NLL before / after (val) / other folds' | val temperatures "
            "| fold val AUC |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        varied = {v["model"] for v in variants}
        compared = sorted(
            (r for r in result["rows"] if r["model"] in varied),
            key=lambda r: (r["model"], bool(r.get("variant")), r.get("variant", "")),
        )
        for r in compared:
            low, high = r["ece_after_ci95"]
            nll = r["nll"]
            overrides = ", ".join(f"`{kv}`" for kv in r.get("sets", [])) or "(as shipped)"
            auc = " / ".join(
                f"{r[k]:.3f}" for k in ("auc_oof", "acc_oof", "qwk_oof", "mae_oof") if k in r
            )
            out.append(
                f"| {r['model']} | {r.get('variant') or 'recipe'}"
                f"{f' ({note})' if (note := r.get('note')) else ''} | {overrides} | {r['date']} | "
                f"{r['folds']} | {r['n']} | {auc} | {r['ece_before']:.3f} | "
                f"{r['ece_after']:.3f} | {low:.3f}-{high:.3f} | "
                f"{debiased_cell(r, 'ece_after_debiased')} | {r['ece_noise_mean']:.3f} / "
                f"{r['ece_noise_p95']:.3f} | {_goal(r, on_val=True)} | {r['ece_transfer']:.3f} | "
                f"{nll['before']:.3f} / {nll['after']:.3f} / {nll['transfer']:.3f} | "
                f"{' '.join(f'{t:.2f}' for t in r['fold_temperatures'])} | "
                f"{' '.join(f'{a:.3f}' for a in r['fold_val_auc'])} |"
            )
    out.append("\n## Reliability diagrams (cross-fitted)\n")
    for r in recipes + variants:
        name = r["model"] + (f" ({r['variant']})" if r.get("variant") else "")
        suffix = Variant(r.get("variant", "")).suffix
        out.append(f"![{name}](reliability/{r['model']}-crossfit{suffix}.png)\n")
    return "\n".join(out) + "\n"


def methods_table(recipes: list[dict[str, Any]]) -> list[str]:
    """The *Each method on every fold* section: rows measured with ``every_fold``."""
    measured = [r for r in recipes if "every_fold" in r]
    if not measured:
        return []
    out = [
        "\n## Each calibration method on every fold\n",
        "`radlens calibrate` chooses a model's method on its val alone: temperature scaling "
        "unless a flexible method's cross-validated NLL is lower by more than one standard "
        "error. Here each method it can choose is fitted on every fold model's val alone "
        "and scored on the unseen folds, so the choice can be read on the train items as "
        f"well; *{VAL_RULE}* is that rule per fold model (the methods it chose, fold by "
        f"fold), *{POOL_RULE}* the same rule read on the fold model's val pooled with the "
        "other folds' unseen items (several times as many), the method then fitted on its "
        "val alone. **NLL gain**: temperature's NLL minus the method's, per item +- one standard "
        "error (paired); the rule's margin is one standard error. **ECE minus "
        "temperature's**: the paired bootstrap 95% interval of the difference (same "
        "resamples).\n",
        "| model | method | ECE (95% CI) | debiased ECE (95% CI) | NLL | NLL gain over "
        "temperature +- SE | ECE minus temperature's (95% CI) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in measured:
        for method, f in r["every_fold"].items():
            low, high = f["ece_ci95"]
            gain, error = f["nll_gain"]
            d_low, d_high = f["ece_minus_temperature_ci95"]
            compared = method != CalibrationMethod.TEMPERATURE.value
            if "fold_methods" in f:
                method = f"{method} ({', '.join(f['fold_methods'])})"
            out.append(
                f"| {r['model']} {r['version']} | {method} | {f['ece']:.3f} "
                f"({low:.3f}-{high:.3f}) | {debiased_cell(f, 'ece_debiased')} | "
                f"{f['nll']:.3f} | {f'{gain:+.4f} +- {error:.4f}' if compared else '-'} | "
                f"{f'{d_low:+.3f} to {d_high:+.3f}' if compared else '-'} |"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=[], help="recipe names")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--render-only", action="store_true", help="rewrite crossfit.md only")
    parser.add_argument("--variant", default="", help="name of the --set overrides measured")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="radlens train --set"
    )
    parser.add_argument("--note", default="", help="what the variant is, for the table")
    parser.add_argument(
        "--save-logits",
        type=Path,
        metavar="DIR",
        help="write DIR/<model>-cross-fitted.npz (the recipe's out-of-fold logits over train, "
        "for radlens calibrate --cross-fitted) instead of measuring",
    )
    args = parser.parse_args(argv)
    if args.save_logits is not None and args.variant:
        parser.error("--save-logits writes the recipe's logits, not a variant's")
    if bool(args.variant) != bool(args.set):
        parser.error("--variant and --set go together: a variant is named overrides")
    variant = Variant(args.variant, tuple(args.set), args.note)
    if args.render_only:
        save([])
        return 0
    root = Path(os.environ.get("RADLENS_DATA", REPO.parent / "shared" / "data"))
    if not root.exists():
        print(f"skip: no data at {root}")
        return 0
    if args.save_logits is not None:
        for model in args.models:
            print(save_logits(model, args.folds, root, args.work, args.save_logits))
        return 0
    (HERE / "reliability").mkdir(exist_ok=True)
    rows = [measure(model, args.folds, root, args.work, variant) for model in args.models]
    for row in rows:
        print(row)
    save(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
