"""Out-of-distribution detection (issue 5): how well each model's OOD scores separate its own
val images from images of every other dataset in ../shared/data and from severity-5
corruptions of its own val images.

For each model with an ``ood`` card entry, three scores are measured on the same images, each
put through the model's own preprocessing (as an image routed to the wrong model would be):

* ``feature``: Mahalanobis distance of the model's pooled features (``ood.npz``);
* ``input``: Mahalanobis distance of the input statistics (``ood_inputs.npz``);
* ``combined``: the decision findings carry (``inference.ood.combined_score``), flagged at 1.

For each: AUROC (own val = negative), and the share flagged: by the combined decision, and
by the feature score alone at its own threshold (the decision before input statistics).
Corruptions (``radlens.evaluation.corruptions``) are applied to up to ``MAX_VAL`` own val
images and stored as 8-bit integers, as an image file or a DICOM would hold them; the float
output is measured too (``combined_float``), since contrast reduction of floats keeps every
grey level. Writes ``benchmarks/trust.json`` and ``benchmarks/trust.md``.

Models without a features output (segmentation, detection: ``segmentation.ood_inputs`` /
``detection.ood_inputs``) have the input score alone; for them ``combined`` is the input
distance as a multiple of its threshold (the ``ood_score`` their findings carry) and the
feature columns are empty. They are read without running the network: the score depends on
the image and the preprocessing only.

A third table reads the real radiographs and ultrasound images in ``../shared/data/dicom``
with every 2D model of their modality and reports their scores: not a goal (none is from the
training population: adult and veterinary chests, prostate and other ultrasound), a look at
what input statistics make of real DICOM resolution, bit depth and compression.

``python benchmarks/bench_trust.py`` measures every shipped model; ``--only NAME ...``
measures the named models and merges their rows into the existing ``trust.json`` (rows of
other models are kept as measured, with the date of their run), then renders ``trust.md``.

``--medmnistc`` measures only the severity-5 corruptions of each 2D classifier's MedMNIST-C
table (``bench_robustness.MEDMNISTC``: the modality-specific corruptions issue 5 names) and
keeps them apart (``corruptions_medmnistc``), with their own goal line; the rest of
``trust.json`` is left as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radlens.evaluation.corruptions import RADLENS, corrupt, kinds_in
from radlens.evaluation.evaluate import prepare_batch
from radlens.evaluation.metrics import auc, auc_binary
from radlens.inference.backends import OnnxBackend
from radlens.inference.input_stats import describe, statistics_of
from radlens.inference.ood import (
    InputStats,
    OodStats,
    card_input_ood,
    input_scores,
    read_ood,
    stats_for,
    verified_input_stats,
)
from radlens.inference.predict import frames_of, predict
from radlens.inference.preprocess import prepare_2d
from radlens.io.box_sets import read_boxes
from radlens.io.datasets import read_image_file, read_labelled
from radlens.io.load import load_images
from radlens.io.scan import scan
from radlens.io.segmentation_sets import read_segmentation
from radlens.models.card import ModelCard, Task
from radlens.models.registry import InstalledModel, discover

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_robustness import BOOTS, MEDMNISTC, paired_resamples  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PER_SOURCE = 200
MAX_VAL = 300
SEVERITY = 5

# name -> (path under the data root, how to read it)
SOURCES: dict[str, tuple[str, str]] = {
    "cxr_pneumonia (chest X-ray)": ("cxr_pneumonia", "labelled"),
    "breastmnist (breast US)": ("medmnist/breastmnist.npz", "labelled"),
    "retinamnist (fundus)": ("medmnist/retinamnist.npz", "labelled"),
    "adrenalmnist3d (mask)": ("medmnist/adrenalmnist3d.npz", "labelled"),
    "adrenalmnist3d_64 (mask)": ("medmnist/adrenalmnist3d_64.npz", "labelled"),
    "vesselmnist3d (mask)": ("medmnist/vesselmnist3d.npz", "labelled"),
    "knee OA (knee X-ray)": ("cls/knee_oa_kl_grade", "glob:**/*.png"),
    "HC18 (fetal US)": ("seg/hc18_fetal_head_us/images", "glob:*.png"),
    "FracAtlas (MSK X-ray)": ("det/fracatlas_fracture/images", "glob:*.png"),
    "BCCD (microscopy)": ("det/bccd_blood_cells/JPEGImages", "glob:*.jpg"),
}


def images_of(root: Path, where: str, how: str, n: int) -> list[np.ndarray]:
    path = root / where
    if not path.exists():
        return []
    if how == "labelled":
        images = read_labelled(path, "val").images
    else:
        files = sorted(path.glob(how.removeprefix("glob:")))
        images = [read_image_file(f) for f in files[: n * 3]]
    picked = np.random.default_rng(0).permutation(len(images))[:n]
    return [images[i] for i in sorted(picked)]


def fits(model: InstalledModel, image: np.ndarray) -> bool:
    """Whether the model's preprocessing can take this image at all (2D vs 3D)."""
    volume = image.ndim == 3 and image.shape[-1] != 3
    return volume == (model.card.input.dims == 3)


def readings(
    model: InstalledModel, backend: OnnxBackend, stats: OodStats, images: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """Feature, input and combined scores and the two flags, one entry per image, and the
    model's logits (``logits``, one row per image)."""
    card = model.card
    assert card.ood is not None
    out: dict[str, list[float]] = {k: [] for k in ("feature", "input", "combined")}
    logits = []
    for start in range(0, len(images), 32):
        raws = images[start : start + 32]
        # The score reads the input as it came; the logits are the reading findings carry,
        # after the card's denoising of an input noisier than the training images, or
        # deblurring of one far blurrier.
        batch = prepare_batch(card, raws, restore=False)
        outputs = backend.run(batch)
        restores = card.input.denoise is not None or card.input.deblur is not None
        read = prepare_batch(card, raws) if restores else batch
        read_outputs = (
            outputs if read is batch or np.array_equal(read, batch) else backend.run(read)
        )
        logits.append(np.asarray(read_outputs[card.outputs[0]], np.float64))
        for r in read_ood(card, stats, outputs[card.ood.output], raws, batch):
            out["feature"].append(np.nan if r.feature is None else r.feature)
            out["input"].append(np.nan if r.inputs is None else r.inputs)
            out["combined"].append(np.nan if r.score is None else r.score)
    result = {k: np.array(v) for k, v in out.items()}
    result["logits"] = np.concatenate(logits)
    result["flag"] = result["combined"] >= 1.0
    result["flag_feature"] = result["feature"] >= card.ood.threshold
    return result


def input_readings(
    model: InstalledModel, stats: InputStats, images: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """Input distance and its multiple of the threshold (``ood_score``) per image, for a
    model whose score is the input statistics alone (no network run: the score depends on
    the image and the preprocessing only)."""
    card = model.card
    spec = card.input_ood
    assert spec is not None
    values = np.stack(
        [
            statistics_of(
                stats.statistics, im, prepare_2d(im, card.input, restore=False)[0], card.input
            )
            for im in images
        ]
    )
    distance = input_scores(values, stats)
    combined = distance / spec.threshold
    nan = np.full(len(images), np.nan)
    return {
        "feature": nan,
        "input": distance,
        "combined": combined,
        "flag": combined >= 1.0,
        "flag_feature": nan,
    }


def compare(inside: dict[str, np.ndarray], outside: dict[str, np.ndarray]) -> dict[str, Any]:
    y = np.r_[np.zeros(len(inside["feature"])), np.ones(len(outside["feature"]))] == 1
    row: dict[str, Any] = {"n_in": len(inside["feature"]), "n_out": len(outside["feature"])}
    for score in ("feature", "input", "combined"):
        both = np.r_[inside[score], outside[score]]
        row[f"auroc_{score}"] = None if np.isnan(both).any() else round(auc_binary(y, both), 4)
    row["flagged_out"] = round(float(np.mean(outside["flag"])), 4)
    row["flagged_out_feature_only"] = _share(outside["flag_feature"])
    return row


def _share(flags: np.ndarray) -> float | None:
    """The share of True flags, or None for a score the model does not have (NaN)."""
    if flags.dtype != bool and np.isnan(flags).any():
        return None
    return round(float(np.mean(flags)), 4)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="MODEL",
        help="measure these models and merge their rows into the existing trust.json",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE,
        help="folder for trust.json and trust.md (default: benchmarks/)",
    )
    parser.add_argument(
        "--medmnistc",
        action="store_true",
        help="measure only the severity-5 corruptions of each model's MedMNIST-C table",
    )
    args = parser.parse_args(argv)
    root = Path(os.environ.get("RADLENS_DATA", HERE.parent.parent / "shared" / "data"))
    if not root.exists():
        print(f"skip: no data at {root}")
        return 0
    if args.medmnistc:
        return medmnistc_main(root, args.out, args.only)
    pools = {name: images_of(root, w, how, PER_SOURCE) for name, (w, how) in SOURCES.items()}
    installed = [
        m
        for m in discover(include_disabled=True)
        if m.card.ood is not None or m.card.input_ood is not None
    ]
    models = [m for m in installed if not args.only or m.card.name in args.only]
    missing = set(args.only or ()) - {m.card.name for m in models}
    if missing:
        print(f"no installed model with an OOD score named {sorted(missing)}")
        return 2
    measured = measure(root, pools, models)
    run = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "models": [m.card.name for m in models],
    }
    result: dict[str, Any] = {
        "per_source": PER_SOURCE,
        "max_val_corrupted": MAX_VAL,
        **measured,
        "runs": [run],
    }
    if args.only:
        result = merge(json.loads((args.out / "trust.json").read_text(encoding="utf-8")), result)
    else:
        result["date"], result["machine"] = run["date"], run["machine"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "trust.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.out / "trust.md").write_text(render(result), encoding="utf-8")
    return 0


def medmnistc_main(root: Path, out: Path, only: Sequence[str] | None) -> int:
    """``--medmnistc``: the MedMNIST-C rows of the 2D classifiers that have a table (or of
    ``only``), replacing those models' earlier MedMNIST-C rows in ``out``/trust.json."""
    models = [
        m
        for m in discover(include_disabled=True)
        if m.card.name in MEDMNISTC and m.card.ood is not None
        if not only or m.card.name in only
    ]
    result = json.loads((out / "trust.json").read_text(encoding="utf-8"))
    names = {m.card.name for m in models}
    rows = [r for r in result.get("corruptions_medmnistc", []) if r["model"] not in names]
    for model in models:
        rows += corruption_rows(root, model, MEDMNISTC[model.card.name])
    result["corruptions_medmnistc"] = rows
    result["medmnistc_date"] = time.strftime("%Y-%m-%d")
    (out / "trust.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "trust.md").write_text(render(result), encoding="utf-8")
    return 0


def corruption_rows(root: Path, model: InstalledModel, table: str) -> list[dict[str, Any]]:
    """Severity-5 rows of ``model``'s own val (up to ``MAX_VAL`` images) under every kind
    of corruption ``table``, stored as 8-bit."""
    card, read = model.card, reader(model)
    path = _val_path(root, _data_of(card.training.data))
    val = read_labelled(path, "val", card.labels)
    keep = _sample_index(len(val.images), MAX_VAL)
    sample = [val.images[i] for i in keep]
    return _corrupted(card, read, sample, read(sample), table, val.labels[keep])


def _corrupted(
    card: ModelCard,
    read: Any,
    sample: list[np.ndarray],
    clean: Any,
    table: str,
    labels: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The rows of :func:`corruption_rows` from the clean ``sample`` already read. radlens'
    own table's rows also read the unrounded corruption (``auroc_combined_float``); a
    MedMNIST-C table's rows name it. With the sample's ``labels``, a row also has the
    model's AUC on the clean and on the corrupted images (``auc_clean``,
    ``auc_corrupted``): what the corruption costs the reader when it goes unflagged."""
    rows = []
    clean_probs = None if labels is None else _probs(card, clean["logits"])
    for kind in kinds_in(table):
        bad = [corrupt(im, kind, SEVERITY, i, table) for i, im in enumerate(sample)]
        stored = [np.round(b).astype(np.uint8) for b in bad]
        named = {} if table == RADLENS else {"table": table}
        row = {"model": card.name, **named, "corruption": kind, "severity": SEVERITY}
        corrupted = read(stored)
        row |= compare(clean, corrupted)
        if labels is not None and clean_probs is not None:
            bad_probs = _probs(card, corrupted["logits"])
            row["auc_clean"] = round(auc(labels, clean_probs), 4)
            row["auc_corrupted"] = round(auc(labels, bad_probs), 4)
            row["auc_change_ci"] = auc_change_interval(labels, clean_probs, bad_probs)
        if table == RADLENS:
            row["auroc_combined_float"] = compare(clean, read(bad))["auroc_combined"]
        row["input_change"] = input_change(card, sample, stored)
        rows.append(row)
        print(rows[-1], flush=True)
    return rows


def measure(
    root: Path, pools: dict[str, list[np.ndarray]], models: list[InstalledModel]
) -> dict[str, list[dict[str, Any]]]:
    """Own val, other datasets, corruptions and real DICOM rows of ``models``."""
    datasets, corruptions, own = [], [], []
    for model in models:
        card = model.card
        read = reader(model)
        mine = _data_of(card.training.data)
        # The same dataset at another resolution or in a prepared view is not OOD.
        same = [n for n, (w, _) in SOURCES.items() if _family(w) == _family(mine)]
        val = own_val(root, card, mine)
        inside = read(val)
        own.append(
            {
                "model": card.name,
                "task": card.task.value,
                "n_val": len(val),
                "input_statistics": _statistics_of(card),
                "scores": "features + inputs" if card.ood is not None else "inputs only",
                "val_flag_rate": round(float(np.mean(inside["flag"])), 4),
                "val_flag_rate_feature_only": _share(inside["flag_feature"]),
                "card_val_flag_rate": _card_flag_rate(card),
            }
        )
        print(own[-1], flush=True)
        for name, pool in pools.items():
            usable = [im for im in pool if fits(model, im)]
            if name in same or not usable:
                continue
            row = {"model": card.name, "ood_source": name}
            datasets.append(row | compare(inside, read(usable)))
            print(datasets[-1], flush=True)
        if card.input.dims != 2:
            continue
        sample = _sample(val, MAX_VAL)
        corruptions += _corrupted(card, read, sample, read(sample), RADLENS)
    return {
        "own_val": own,
        "rows": datasets,
        "corruptions": corruptions,
        "real_dicom": real_dicom(root / "dicom", models),
    }


def input_change(card: ModelCard, clean: list[np.ndarray], bad: list[np.ndarray]) -> float:
    """How much a corruption changes what the model reads: the median over images of the
    mean absolute difference of the model inputs (after the model's own preprocessing),
    as a share of the clean input's standard deviation. Near 0, the model reads nearly the
    same image, and no score computed from it can tell the two apart."""
    changes = []
    for a, b in zip(clean, bad, strict=True):
        x = prepare_2d(a, card.input, restore=False)[0]
        y = prepare_2d(b, card.input, restore=False)[0]
        changes.append(float(np.abs(x - y).mean()) / max(float(x.std()), 1e-9))
    return round(float(np.median(changes)), 4)


def reader(model: InstalledModel) -> Any:
    """``images -> readings`` for a model: features and inputs, or inputs alone."""
    card = model.card
    if card.ood is not None:
        stats = stats_for(model.folder, card.ood)
        assert stats is not None
        backend = OnnxBackend(model.weights, threads=2)
        return lambda images: readings(model, backend, stats, list(images))
    spec = card.input_ood
    assert spec is not None
    inputs = verified_input_stats(model.folder / spec.stats_file, spec.sha256)
    return lambda images: input_readings(model, inputs, images)


def _probs(card: ModelCard, logits: np.ndarray) -> np.ndarray:
    """The model's calibrated probabilities (as models.md's AUC reads them)."""
    return card.calibration.probabilities(logits, card.task)


def auc_change_interval(
    labels: np.ndarray, clean: np.ndarray, corrupted: np.ndarray
) -> list[float]:
    """95% interval of the AUC of ``corrupted`` probabilities minus that of ``clean`` ones,
    from a paired bootstrap of the images (``bench_robustness.paired_resamples``)."""
    changes = [
        auc(labels[idx], corrupted[idx]) - auc(labels[idx], clean[idx])
        for idx in paired_resamples(labels)
    ]
    return [round(float(v), 4) for v in np.percentile(changes, [2.5, 97.5])]


def _val_path(root: Path, mine: str) -> Path:
    return REPO / mine if mine.startswith("build/") else root / mine


def own_val(root: Path, card: ModelCard, mine: str) -> list[np.ndarray]:
    """The model's own val images, read the way its training read them."""
    path = _val_path(root, mine)
    if card.task is Task.SEGMENTATION:
        return read_segmentation(path, "val", seed=card.training.seed).images
    if card.task is Task.DETECTION:
        return read_boxes(path, "val", card.labels).images
    return read_labelled(path, "val", card.labels).images


def _sample(images: list[np.ndarray], n: int) -> list[np.ndarray]:
    """At most ``n`` images, drawn as ``LabelledImages.sample`` draws them."""
    return [images[i] for i in _sample_index(len(images), n)]


def _sample_index(total: int, n: int) -> np.ndarray:
    """The indices :func:`_sample` keeps of ``total`` items, in order."""
    if total <= n:
        return np.arange(total)
    return np.sort(np.random.default_rng(0).permutation(total)[:n])


def _statistics_of(card: ModelCard) -> str | None:
    spec = card.input_ood
    if spec is not None:
        return spec.statistics
    return card.ood.inputs.statistics if card.ood and card.ood.inputs else None


def _card_flag_rate(card: ModelCard) -> float:
    spec = card.input_ood
    if spec is not None:
        return spec.val_flag_rate
    assert card.ood is not None
    return (card.ood.inputs or card.ood).val_flag_rate


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` results with the rows of ``new``'s models replaced by ``new``'s."""
    names = set(new["runs"][0]["models"])
    runs = old.get("runs") or [
        {
            "date": old["date"],
            "machine": old["machine"],
            "models": [r["model"] for r in old["own_val"]],
        }
    ]
    runs = [
        r | {"models": [m for m in r["models"] if m not in names]}
        for r in runs
        if set(r["models"]) - names
    ]
    merged = {k: v for k, v in old.items() if k not in ("date", "machine")}
    for key in ("own_val", "rows", "corruptions", "real_dicom"):
        merged[key] = [r for r in old[key] if r["model"] not in names] + new[key]
    merged["runs"] = [*runs, *new["runs"]]
    return merged


def real_dicom(folder: Path, models: list[InstalledModel]) -> list[dict[str, Any]]:
    """OOD readings of the real radiographs and ultrasound images in ``folder``, read by
    every 2D model of their modality (body part and view ignored: most of these files do
    not state them)."""
    rows = []
    for sub in ("cr_dx", "us"):
        if not (folder / sub).is_dir():
            continue
        for study in scan([folder / sub]).studies:
            for series in study.series:
                images = load_images(series)[:1]
                for model in models:
                    rule = model.card.applies_to
                    if series.modality not in rule.modalities or rule.dims != 2 or not images:
                        continue
                    rows.append(
                        _real_row(series.instances[0].path, series.modality, model, images[0])
                    )
                    print(rows[-1], flush=True)
    return rows


def _real_row(path: Path, modality: str, model: InstalledModel, image: Any) -> dict[str, Any]:
    card = model.card
    spec = card.input_ood
    if spec is not None:  # input statistics alone: the reading detect_findings/segment give
        frame = frames_of(image)[0]
        x = prepare_2d(frame.array, card.input, image.window)[0]
        stats = verified_input_stats(model.folder / spec.stats_file, spec.sha256)
        r = card_input_ood(card, stats, frame.array, x)
        feature, inputs, score, reasons = None, r.inputs, r.score, r.reasons
    else:
        ood_stats = stats_for(model.folder, card.ood)
        assert card.ood is not None
        backend = OnnxBackend(model.weights, threads=2)
        if card.task is Task.DETECTION:  # features and inputs: what detect_findings reads
            frame = frames_of(image)[0]
            x = prepare_2d(frame.array, card.input, image.window)[0][None]
            features = backend.run(x)[card.ood.output]
            r = read_ood(card, ood_stats, features, [frame.array], x)[0]
            feature, inputs, score, reasons = r.feature, r.inputs, r.score, r.reasons
        else:
            [f] = predict(image, card, backend, ood_stats=ood_stats)[:1]
            feature, inputs, score = f.ood_feature_score, f.ood_input_score, f.ood_score
            reasons = f.ood_reasons
    return {
        "file": Path(path).name,
        "modality": modality,
        "model": card.name,
        "feature": _round(feature),
        "input": _round(inputs),
        "combined": _round(score),
        "flag": score is not None and score >= 1.0,
        "feature_only_flag": (
            None if card.ood is None or feature is None else feature >= card.ood.threshold
        ),
        "reasons": [{"statistic": name, "z": z} for name, z in reasons],
    }


def _why(reasons: list[dict[str, Any]] | None) -> str:
    """A real-DICOM row's reasons in the words its finding's warning uses, with z-scores."""
    if not reasons:
        return "—"
    return "; ".join(f"{describe(r['statistic'], r['z'])} ({r['z']:+.0f})" for r in reasons)


def _yes(flag: bool | None) -> str:
    return "—" if flag is None else ("yes" if flag else "no")


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _family(where: str) -> str:
    """The dataset a path belongs to: a MedMNIST file's name before its size
    (``adrenalmnist3d_64`` -> ``adrenalmnist3d``), else the first word of its dataset
    folder (``det/fracatlas_fracture/images`` and ``build/data/fracatlas`` -> ``fracatlas``)."""
    if where.endswith(".npz"):
        return Path(where).stem.split("_")[0]
    parts = [p for p in Path(where).parts if p not in ("build", "data", "cls", "seg", "det")]
    return parts[0].split("_")[0] if parts else where


def _data_of(training_data: str) -> str:
    """The card's data path relative to the data root ("../shared/data/x (train ...)")."""
    path = training_data.split(" (")[0]
    marker = "shared/data/"
    return path.split(marker, 1)[1] if marker in path else path


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1%}"


def goals(result: dict[str, Any]) -> list[str]:
    """Which rows meet the issue's goals, now (combined) and before (feature alone, for
    the models that have a feature score), with the input-only models counted apart."""
    input_only = {r["model"] for r in result["own_val"] if r.get("scores") == "inputs only"}
    lines = ["## Goals\n"]
    for label, rows, goal in (
        ("other datasets", result["rows"], 0.99),
        ("severity-5 corruptions (8-bit)", result["corruptions"], 0.90),
        *(
            [("MedMNIST-C severity-5 corruptions", result["corruptions_medmnistc"], 0.90)]
            if result.get("corruptions_medmnistc")
            else []
        ),
    ):
        with_features = [r for r in rows if r["auroc_feature"] is not None]
        before = sum(r["auroc_feature"] >= goal for r in with_features)
        now = [r for r in rows if r["auroc_combined"] < goal]
        alone = [r for r in rows if r["model"] in input_only]
        missed = "; ".join(
            f"{r['model']} vs {r.get('ood_source') or _kind(r)} {r['auroc_combined']:.3f}"
            + (f" (model AUC {_auc_cell(r)})" if r.get("auc_clean") is not None else "")
            for r in now
        )
        lines.append(
            f"- {label} (AUROC ≥ {goal}): {len(rows) - len(now)} of {len(rows)} met "
            f"(feature score alone: {before} of {len(with_features)} rows of models with "
            f"features; input score alone, models without features: "
            f"{sum(r['auroc_combined'] >= goal for r in alone)} of {len(alone)})"
            + (f"; not met: {missed}" if missed else "")
        )
    return [*lines, ""]


def _measured(result: dict[str, Any]) -> str:
    """When and where each model's rows were measured."""
    runs = result.get("runs") or [
        {"date": result["date"], "machine": result["machine"], "models": []}
    ]
    if len(runs) == 1:
        return f"Measured {runs[0]['date']} on {runs[0]['machine']}"
    parts = [
        f"{', '.join(r['models'])} on {r['date']} ({r['machine']}"
        + (", its rows replacing the earlier run's)" if i else ")")
        for i, r in enumerate(runs)
    ]
    return "Measured in " + str(len(runs)) + " runs: " + "; ".join(parts)


def _kind(row: dict[str, Any]) -> str:
    """A corruption row's kind, with its MedMNIST-C table where it has one."""
    return row["corruption"] + (f" ({row['table']})" if "table" in row else "")


STORED_LEVELS_NOTE = (
    "Stored levels (`image2d/4`, 2026-12-02): a gamma, contrast or brightness gain "
    "applied to an 8-bit frame spreads its stored levels apart and leaves empty levels "
    "between them (Stamm and Liu, IEEE TIFS 2010), while the model's percentile "
    "normalization makes the model input look like an ordinary exposure. With "
    "`image2d/3`, MedMNIST-C's gamma up (1.6) was flagged on 21% of cxr_pneumonia's "
    "val images (AUROC 0.766), 9% of knee_oa_kl's (0.721) and 19% of fracture_xray's "
    "(0.751); with the share of empty levels and the frame's 0.5th and 99.5th "
    "percentiles added, 100%, 100% and 50% (0.998, 0.992, 0.916), and fracture_xray's "
    "brightness up 0.619 -> 1.000 and contrast up 0.717 -> 1.000. A frame stored with "
    "more than 8 bits, or as floats, reads as neutral on these three. (These figures are on "
    "robust z-scores; the table above is on rank-Gaussian ones, next paragraph.)"
)
"""Why ``image2d/4`` exists, with the MedMNIST-C rows that showed the need (rendered in
their section)."""

RANK_NOTE = (
    "Rank-Gaussian z-scores (2026-12-02, every 2D model refitted without retraining): each "
    "input statistic is put at the normal quantile of its rank among the training images "
    "before the Mahalanobis distance, instead of a robust z-score (median, scaled MAD) under "
    "which statistics with heavy training tails (a few images with a large clipped-white area "
    "or black border) swamped a shift in a tightly distributed one. On this table, met rows "
    "went from 56 to 59 of 67: fracture_xray Gaussian blur 0.845 -> 0.961, brightness down "
    "0.785 -> 0.919, contrast down 0.884 -> 0.966, gamma up 0.916 -> 0.993; retina_dr_grade "
    "motion blur 0.725 -> 0.843, brightness down 0.774 -> 0.875 (still below 0.90). On "
    "radlens' table every row still meets the goal and the fracture models' blur and contrast "
    "rows rose (fracture_xray 0.967 -> 0.993 and 0.968 -> 0.992, flagged 80% and 88% -> "
    "100%); the other-dataset rows of the 2D models stay at or above 0.99. The mask models "
    "keep robust z-scores: on rank-Gaussian ones vessel_mra_3d against adrenal masks fell "
    "from 0.9946 to 0.9899, so they were refitted back (that choice was made on this "
    "benchmark's own rows, so those two rows are optimistic by one binary choice)."
)
"""Why the input score's z-scores are rank-Gaussian, with the rows that moved."""


def _medmnistc_section(result: dict[str, Any]) -> list[str]:
    """The MedMNIST-C severity-5 table, when ``--medmnistc`` has measured it."""
    rows = result.get("corruptions_medmnistc")
    if not rows:
        return []
    lines = [
        f"\n## Severity-{SEVERITY} corruptions of MedMNIST-C (measured "
        f"{result['medmnistc_date']})\n",
        "Each 2D classifier's MedMNIST-C table (`radlens.evaluation.medmnistc`; "
        "pneumoniamnist for the chest X-ray models, chestmnist for knee and fracture, "
        "breastmnist, retinamnist), applied as above to up to "
        f"{result['max_val_corrupted']} own val images and stored as 8-bit.\n",
        "*model AUC clean / corrupted*: the model's own AUC on the same val images, clean "
        "and corrupted: what a corruption that goes unflagged costs the reading (the "
        f"change, with its 95% interval from a paired bootstrap of the images, {BOOTS} "
        "resamples). For a model whose card denoises inputs noisier than every training "
        "image (`input.denoise`: fracture_xray since 1.6.1), that is its reading after the "
        "median filter, and for one that deblurs inputs far blurrier (`input.deblur`: "
        "knee_oa_kl since 1.5.2) its reading after Wiener deconvolution; the scores always "
        "read the input as it came.\n",
        "| model | table | corruption | n | AUROC feature | AUROC input "
        "| **AUROC combined** | flagged (combined) | model input change "
        "| model AUC clean / corrupted |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['table']} | {r['corruption']} | {r['n_out']} | "
            f"{_f(r['auroc_feature'])} | {_f(r['auroc_input'])} | "
            f"**{_f(r['auroc_combined'])}** | {r['flagged_out']:.1%} | "
            f"{r['input_change']:.1%} | {_auc_cell(r)} |"
        )
    return [*lines, "", STORED_LEVELS_NOTE, "", RANK_NOTE]


def _auc_cell(row: dict[str, Any]) -> str:
    """``clean / corrupted (change)`` of the model's AUC, or a dash where not measured."""
    if row.get("auc_clean") is None:
        return "—"
    change = row["auc_corrupted"] - row["auc_clean"]
    low, high = row.get("auc_change_ci") or (None, None)
    interval = "" if low is None else f"; 95% {low:+.3f} to {high:+.3f}"
    return f"{row['auc_clean']:.3f} / {row['auc_corrupted']:.3f} ({change:+.3f}{interval})"


def render(result: dict[str, Any]) -> str:
    notes = [f"> {n}\n" for n in result.get("notes", [])]
    lines = [
        "# Benchmark: out-of-distribution detection (issue 5)\n",
        *notes,
        f"{_measured(result)}, by `benchmarks/bench_trust.py`. "
        "Three scores per input, each through the model's own preprocessing: **feature** "
        "(Mahalanobis distance of the pooled last-layer features to the nearest training "
        "class mean), **input** (Mahalanobis distance of cheap input statistics to the "
        "training images': grey levels, JPEG block edges, flat steps and colour on the "
        "decoded image; histogram, gradients, autocorrelation and flat steps on the model "
        "input; shape and local form (sheets vs tubes) for 3D masks) and **combined**, "
        "the decision every finding carries: "
        "flagged when `max(feature / median, 1) x max(input / median, 1)` reaches its "
        "threshold or either score alone goes beyond its largest value on own val, the product "
        "threshold set so that about 5% of own val is flagged; its AUROC is that of "
        "`ood_score`, the largest of the three ratios to their thresholds. Models without a "
        "features output (the fetal head segmenter and the BoxNet detector `bccd_cells`: "
        "*inputs only*) have the input score alone, flagged at the 95th percentile of own "
        "val; their combined score is the input score as a multiple of that threshold and "
        "their feature "
        "columns are empty. Goals: AUROC "
        "≥ 0.99 against every other dataset, ≥ 0.90 against severity-5 corruptions. The "
        "feature score alone was the decision before input statistics were added, so its "
        "columns are the *before* figures (same models, same feature statistics).\n",
        *goals(result),
        "## Own validation images flagged\n",
        "| model | scores | input statistics | n val | flagged (combined) "
        "| flagged (feature alone) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["own_val"]:
        lines.append(
            f"| {r['model']} | {r.get('scores', 'features + inputs')} | "
            f"{r['input_statistics'] or '—'} | {r['n_val']} | "
            f"{r['val_flag_rate']:.1%} | {_pct(r['val_flag_rate_feature_only'])} |"
        )
    lines += [
        f"\n## Other datasets (up to {result['per_source']} images each)\n",
        "| model | other dataset | n own val | n other | AUROC feature (before) "
        "| AUROC input | **AUROC combined** | flagged (combined) | flagged (feature alone) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['ood_source']} | {r['n_in']} | {r['n_out']} | "
            f"{_f(r['auroc_feature'])} | "
            f"{_f(r['auroc_input'])} | **{_f(r['auroc_combined'])}** | "
            f"{r['flagged_out']:.1%} | {_pct(r['flagged_out_feature_only'])} |"
        )
    lines += [
        f"\n## Severity-{SEVERITY} corruptions of own val (up to "
        f"{result['max_val_corrupted']} images, stored as 8-bit)\n",
        "*model input change*: the median mean absolute change of the model's input (after "
        "its own preprocessing) as a share of the clean input's standard deviation; near 0, "
        "the model reads nearly the image it would read uncorrupted.\n",
        "| model | corruption | n | AUROC feature (before) | AUROC input "
        "| **AUROC combined** | flagged (combined) | flagged (feature alone) "
        "| AUROC combined, float | model input change |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["corruptions"]:
        change = r.get("input_change")
        lines.append(
            f"| {r['model']} | {r['corruption']} | {r['n_out']} | "
            f"{_f(r['auroc_feature'])} | "
            f"{_f(r['auroc_input'])} | **{_f(r['auroc_combined'])}** | "
            f"{r['flagged_out']:.1%} | {_pct(r['flagged_out_feature_only'])} | "
            f"{_f(r['auroc_combined_float'])} | {'—' if change is None else f'{change:.1%}'} |"
        )
    lines += _medmnistc_section(result)
    if result["real_dicom"]:
        lines += [
            "\n## Real DICOM radiographs and ultrasound (`../shared/data/dicom`, first image)\n",
            "Read by every 2D model of their modality, body part ignored; none is from a "
            "training population. *combined* is the decision score as a multiple of its "
            "threshold (flagged at 1); *feature* and *input* are the distances (no *feature* "
            "for a model without one).\n",
            "| file | modality | model | feature | input | combined | flagged | "
            "flagged by feature alone | why (the finding's warning; robust z) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in result["real_dicom"]:
            lines.append(
                f"| {r['file']} | {r['modality']} | {r['model']} | "
                f"{'—' if r['feature'] is None else r['feature']} | "
                f"{r['input']} | {r['combined']} | {'yes' if r['flag'] else 'no'} | "
                f"{_yes(r['feature_only_flag'])} | {_why(r.get('reasons'))} |"
            )
    lines += [
        "\n## Notes\n",
        "- Corruptions are stored as 8-bit integers, as any image file or DICOM holds them. "
        "Contrast reduction kept in floating point (last column) keeps every grey level, and "
        "the percentile scaling of the preprocessing undoes it, so neither score can see it "
        "(AUROC 0.50); stored, it leaves fewer grey levels, which the input score sees.",
        "- The input statistics and the combination rule were chosen on own val, on other "
        "datasets' train splits or files beyond the ones measured here (HC18 has only 194: "
        "the same images), and on corrupted own val. Thresholds are fitted on own val, so "
        "its flag rates above are in-sample; the held-out test splits were not used.",
        "- Models without a features output (*inputs only*) have no second score to catch "
        "what the input statistics miss; the goals' *not met* list names where that happens.",
        "- `fracture_xray` 1.3.0 (2026-11-30, the 1.2.0 recipe trained twice as long) missed "
        "severity-5 brightness at AUROC 0.892, where 1.2.0 reached 0.916: trained with "
        "brightness among its corruptions, its features moved less under it (feature AUROC "
        "0.650 against 0.680). 1.4.0 (three members of that recipe with mirror-image "
        "test-time augmentation in one graph, 768 pooled features) reaches 0.909 on that row "
        "(feature AUROC 0.705) and raises every feature-score corruption row.",
        "- `fracture_xray` 1.6.0 (2026-12-01, 1.5.0's four members trained with the CAM box "
        "loss at weight 0.1) missed severity-5 brightness at AUROC 0.895 (1.5.0: 0.907) with "
        "the single-score guards at the 99th percentile of own val, though its input score "
        "alone reached 0.963 and the same 51% of those images were flagged. The guards' "
        "thresholds sat nearer the median than the product's (feature: 1.87 times the median "
        "against 2.85), so below the flag most images' decision score was their feature "
        "distance over the guard, and they were ranked by the feature score (0.722 on that "
        "row). Since 2026-12-01 the guards sit just above the largest own val score "
        "(`guard_quantile` 1.0, every card refitted without retraining): on the scores of "
        "every row of the previous run, the flags changed in 3 of 87 rows (retina_dr_grade "
        "blur, brightness and JPEG: 1 or 2 of 120 images fewer flagged) and that row rose "
        "to 0.935; in that rerun the lowest severity-5 row was 0.931 (fracture_boxes, "
        "brightness; 0.920 before) and no other-dataset row fell below 0.99. Later that day "
        "the thresholds moved off the val scores themselves (guards 0.1% above the largest, "
        "the product threshold midway between two val products: float noise at inference "
        "had decided the flag of an image on a threshold; docs/model-card.md), every card "
        "refitted again: at the same own val flag rates more corrupted images are flagged "
        "(fracture_boxes brightness 51.0% -> 55.7%, contrast 42.8% -> 53.1%); rerun here, "
        "the lowest severity-5 row is 0.936 (fracture_xray and fracture_boxes, brightness), "
        "no other-dataset row is below 0.99 and the real DICOM flags are unchanged.",
        "- Tried for `fracture_boxes` 1.0.0 (a BoxNet) vs HC18 and not kept (2026-11-29, own "
        "val against the "
        "same 200 HC18 images): the detector's pooled features, read from its graph with an "
        "added global pooling output (encoder stride 16, stride 8 and the stride-4 decoder "
        "map; weights unchanged), scored by Mahalanobis distance to the train images' "
        "features. Alone they give AUROC 0.938-0.965 (the three maps) and 0.963 together; "
        "combined with the input distance by the classifiers' product rule 0.977-0.985, and "
        "as one joint Mahalanobis distance of features and input z-scores 0.970-0.986. Fetal "
        "ultrasound, with its dark background and bright curved edges, reads to this network "
        "much like a radiograph; none reaches 0.99, so no features output was added.",
        "- `fracture_boxes` 1.1.0 (2026-11-30) is a detector on a resnet-tiny trunk "
        "(`TrunkBoxNet`) whose graph exports its stride-4 decoder map averaged over "
        "positions, what both heads read, so it decides as a classifier on features and "
        "input statistics combined (its feature score is the distance to the mean of the "
        "train images' features). Read from the same trained network before the output "
        "was settled, the trunk's last stage (stride 32) gave feature AUROC 0.960 against "
        "HC18 and 0.987 combined; the decoder map gave 0.990 alone, and the shipped graph "
        "(with mirror-image test-time augmentation, float16 weights) 0.993 alone and 0.996 "
        "combined. The layer was chosen on these same HC18 images (there are no others), "
        "so that row is optimistic by the choice between two layers.",
        "- Statistics of the decoded frame that depend on pixel scale: JPEG block edges are "
        "measured only when the frame is at most twice the model input's side, and grey "
        "levels are counted up to 256, so a 2000 px, 12-bit DICOM is not flagged for its "
        "resolution or bit depth (see the real DICOM table: the adult chests score high "
        "mostly for clipped white after their VOI window and their anatomy). Pixelation "
        "(`image2d/3`) is measured at every frame size: severity-5 pixelation keeps 35% of "
        "the frame's side, which for the 800 x 540 fetal head frames is still more pixels "
        "than the 240 x 160 model input, so the model input barely changes (1.8%) and only "
        "the decoded frame shows the nearest-neighbour steps. Real 12- and 16-bit frames "
        "change at nearly every step and score low on it.",
    ]
    unseen = [
        r
        for r in [*result["corruptions"], *result.get("corruptions_medmnistc", [])]
        if r.get("input_change") is not None
        and r["input_change"] < 0.1
        and r["auroc_combined"] < 0.9
    ]
    if unseen:
        lines.append(
            "- Misses where the model reads nearly the clean image: "
            + "; ".join(
                f"{r['model']} vs {_kind(r)} (model input change "
                f"{r['input_change']:.1%}, AUROC {r['auroc_combined']:.3f})"
                for r in unseen
            )
            + ". Pixelation at severity 5 keeps 35% of the frame's side, which for a frame "
            "much larger than the model input is still more pixels than the model reads, so "
            "the preprocessing's resize all but undoes it. They stay counted as not met."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
