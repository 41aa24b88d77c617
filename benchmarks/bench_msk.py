"""Benchmark: the musculoskeletal models on their val splits (issue 11).

* ``knee_oa_kl`` (Kellgren-Lawrence grade 0-4) on ``cls/knee_oa_kl_grade`` val: accuracy,
  macro-F1, quadratic weighted kappa, mean absolute grade error, the confusion matrix, and
  the same for a plain cross-entropy twin trained by the same recipe (``--ce-model``), as the
  issue asks an ordinal loss to be measured against cross-entropy. What the heatmap points
  at: the share of the class activation map's mass in the joint band (the middle rows of
  these joint-centred crops, where the joint space and the marginal osteophytes are), over
  every val image and per grade, and overlays of a few val images in ``benchmarks/msk/``.
* ``fracture_xray`` (study-level fracture) on the FracAtlas view's val split (``radlens data
  prepare fracatlas``): AUC, sensitivity at 90% specificity, and ``fracture_boxes`` (the
  fracture box detector): VOC AP@0.5 per box. Where the classifier's heatmap points, on
  every fractured val image (called or not): its peak within 15 px of a labelled fracture
  box (the pointing game of Zhang et al., ECCV 2016) and its box around a fracture's
  centre, for the shipped model and any other fracture model passed as ``--cam-compare
  LABEL=DIR`` (a robustness-trained variant, say: robustness training can move the map off
  the fracture).

Every figure comes from ONNX Runtime through the code ``radlens evaluate`` runs. Writes
``benchmarks/msk.json`` and ``benchmarks/msk.md``:
``python benchmarks/bench_msk.py [--ce-model DIR] [--cam-compare LABEL=DIR ...]
[--data-root ../shared/data]``; ``--fracture-only`` measures the shipped fracture models
again and keeps the rest; ``--knee-only`` measures the knee models and keeps the
fracture part of the committed ``msk.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from PIL import Image as PILImage

from radlens import __version__
from radlens.domain.findings import Box, Finding
from radlens.evaluation import metrics as m
from radlens.evaluation.evaluate import evaluate
from radlens.explain.overlay import render_overlay
from radlens.inference.backends import OnnxBackend
from radlens.inference.predict import predict
from radlens.io.datasets import read_labelled
from radlens.io.prepare import prepare
from radlens.models.registry import InstalledModel, discover, get_model, load_model

HERE = Path(__file__).parent
KNEE, KNEE_DATA = "knee_oa_kl", "cls/knee_oa_kl_grade"
FRACTURE, BOXES, FRACATLAS = "fracture_xray", "fracture_boxes", "det/fracatlas_fracture"
VIEW = HERE.parent / "build" / "data" / "fracatlas"
JOINT_BAND = (0.3, 0.7)  # rows of the 224 x 224 crop: the joint line sits mid-image
GOALS = {"knee_acc": 0.72, "knee_qwk": 0.87, "fracture_auc": 0.90}
BOOTS = 1000  # resamples behind each 95% interval
# The pointing game's tolerance (Zhang et al., ECCV 2016: 15 px): a heatmap peak this close
# to a labelled box counts as a hit. The view's images are 256 px on their shorter side.
POINT_TOLERANCE_PX = 15.0
REFERENCES = [
    "Thomas KA, Kidzinski L, Halilaj E, et al. Automated classification of radiographic knee "
    "osteoarthritis severity using deep neural networks. Radiology: Artificial Intelligence "
    "2(2):e190065, 2020: accuracy 0.71 and weighted kappa 0.86 on OAI radiographs (issue 11's "
    "figures; not re-checked here).",
    "Chen P, Gao L, Shi X, Allen K, Yang L. Fully automatic knee osteoarthritis severity "
    "grading using deep neural networks with a novel ordinal loss. Computerized Medical Imaging "
    "and Graphics 75:84-92, 2019: about 69.7% accuracy and MAE about 0.34 on the official "
    "kneeKL224 test split with the full 5,778-image train split (the figures quoted in issue 11; "
    "the paper itself could not be read from this machine, so they are unconfirmed here).",
    "Abedeen I, Rahman MA, Prottyasha FZ, et al. FracAtlas: A Dataset for Fracture "
    "Classification, Localization and Segmentation of Musculoskeletal Radiographs. Scientific "
    "Data 10:521, 2023: YOLOv8 localization and segmentation baselines (their figures could "
    "not be read from this machine; see the notes).",
]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def macro_f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    scores = []
    for c in range(k):
        tp = float(((pred == c) & (y == c)).sum())
        fp = float(((pred == c) & (y != c)).sum())
        fn = float(((pred != c) & (y == c)).sum())
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def interval(
    statistic: Callable[[np.ndarray], float], n: int, boots: int = BOOTS, seed: int = 0
) -> list[float]:
    """95% bootstrap interval of ``statistic(indices)`` over ``n`` val items resampled with
    replacement (percentiles 2.5 and 97.5 of ``boots`` resamples).

    Example:
        >>> x = np.arange(100.0)
        >>> lo, hi = interval(lambda i: float(x[i].mean()), 100, boots=200)
        >>> 40 < lo < 49.5 < hi < 59
        True
    """
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n, n)) for _ in range(boots)]
    return [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]


def grading(model: InstalledModel, root: Path) -> dict[str, Any]:
    card = model.card
    val = read_labelled(root / KNEE_DATA, "val", card.labels)
    result = evaluate(card, OnnxBackend(model.weights, threads=1), val)
    y, pred = result.labels, card.decide(result.probs)
    top = result.probs.argmax(axis=1)
    k = len(card.labels)
    confusion = np.zeros((k, k), int)
    for t, p in zip(y, pred, strict=True):
        confusion[t, p] += 1
    return {
        "model": f"{card.name} {card.version}",
        "ci95": {
            "accuracy": interval(lambda i: m.accuracy(y[i], pred[i]), len(y)),
            "qwk": interval(lambda i: m.quadratic_weighted_kappa(y[i], pred[i], k), len(y)),
            "mae": interval(lambda i: m.mean_abs_error(y[i], pred[i]), len(y)),
        },
        "folder": str(model.folder),
        "loss": card.training.command,
        "n": int(len(y)),
        "accuracy": round(m.accuracy(y, pred), 4),
        "macro_f1": round(macro_f1(y, pred, k), 4),
        "qwk": round(m.quadratic_weighted_kappa(y, pred, k), 4),
        "mae": round(m.mean_abs_error(y, pred), 4),
        "auc": round(result.metrics["auc"], 4),
        "ece": round(result.metrics["ece"], 4),
        "within_one_grade": round(float((np.abs(y - pred) <= 1).mean()), 4),
        "confusion": confusion.tolist(),
        "labels": list(card.labels),
        "grade_rule": card.grade_rule,
        "argmax": {  # the most probable grade, for comparison with the card's rule
            "accuracy": round(m.accuracy(y, top), 4),
            "qwk": round(m.quadratic_weighted_kappa(y, top, k), 4),
            "mae": round(m.mean_abs_error(y, top), 4),
        },
    }


def heatmaps(model: InstalledModel, root: Path, out_dir: Path) -> dict[str, Any]:
    """Where the CAM of the reported grade lies on every val crop; overlays of a few."""
    from radlens.domain.imaging import Geometry, Image, ImageLayout

    card = model.card
    val = read_labelled(root / KNEE_DATA, "val", card.labels)
    backend = OnnxBackend(model.weights, threads=1)
    band: dict[int, list[float]] = {grade: [] for grade in range(len(card.labels))}
    out_dir.mkdir(parents=True, exist_ok=True)
    shown = []
    for array, label in zip(val.images, val.labels, strict=True):
        image = Image(
            array.astype(np.float32), ImageLayout.YX, Geometry((1.0, 1.0), spacing_known=False)
        )
        [finding] = predict(image, card, backend)
        if finding.heatmap is None:
            continue
        rows = finding.heatmap.shape[0]
        lo, hi = (int(f * rows) for f in JOINT_BAND)
        mass = float(finding.heatmap.sum())
        band[int(label)].append(float(finding.heatmap[lo:hi].sum()) / mass if mass else 0.0)
        if int(label) in (0, 2, 4) and sum(1 for s in shown if s[1] == int(label)) < 1:
            name = f"knee_val_kl{int(label)}.png"
            rgb = render_overlay(array, None, [finding])
            PILImage.fromarray(rgb).save(out_dir / name)
            shown.append((name, int(label), finding.grade_label, round(finding.probability, 3)))
    every = [v for values in band.values() for v in values]
    return {
        "band_rows": list(JOINT_BAND),
        "band_share_uniform": round(JOINT_BAND[1] - JOINT_BAND[0], 2),
        "band_share_mean": round(float(np.mean(every)), 4),
        "band_share_by_grade": {
            card.labels[g]: round(float(np.mean(v)), 4) for g, v in band.items() if v
        },
        "overlays": [
            {"file": f"msk/{n}", "true": card.labels[t], "reported": r, "probability": p}
            for n, t, r, p in shown
        ],
    }


def fracture(
    root: Path,
    boxes_before: Path | None = None,
    cam_compare: Sequence[tuple[str, Path]] = (),
) -> dict[str, Any] | None:
    installed = discover(include_disabled=True)
    names = {mo.card.name for mo in installed}
    if FRACTURE not in names:
        return None
    prepare("fracatlas", root / FRACATLAS, VIEW)
    model = get_model(FRACTURE, installed)
    card = model.card
    val = read_labelled(VIEW, "val", card.labels)
    result = evaluate(card, OnnxBackend(model.weights, threads=1), val)
    y = result.labels == card.positive_index
    score = result.probs[:, card.positive_index]
    negatives = np.sort(score[~y])
    cut = negatives[int(np.ceil(0.9 * len(negatives))) - 1]  # 90% of negatives at or below
    out: dict[str, Any] = {
        "model": f"{card.name} {card.version}",
        "n": int(len(y)),
        "n_fractured": int(y.sum()),
        "auc": round(m.auc_binary(y, score), 4),
        "auc_ci95": interval(lambda i: m.auc_binary(y[i], score[i]), len(y)),
        "sensitivity_at_90_specificity": round(float((score[y] > cut).mean()), 4),
        "specificity_at_that_threshold": round(float((score[~y] <= cut).mean()), 4),
        "ece": round(result.metrics["ece"], 4),
        "operating": card.metrics["val"],
    }
    seen = _fractured_findings(model)  # one pass over the images for both figures
    out["cam_box"] = cam_box_figures(model, seen)
    out["localization"] = [localization_figures(model, "shipped", seen)] + [
        localization_figures(load_model(folder), label) for label, folder in cam_compare
    ]
    if BOXES in names:
        out["detector"] = detector_figures(get_model(BOXES, installed))
    if boxes_before is not None:
        out["detector_before"] = detector_figures(load_model(boxes_before))
    return out


Fractured = list[tuple[np.ndarray, np.ndarray, Finding]]
"""``(image, labelled boxes, finding)`` for every fractured image of the view's val split."""


def _fractured_findings(model: InstalledModel) -> Fractured:
    """The model's finding on every fractured val image, each with its box: ``predict``
    runs with the operating threshold at 0, since the threshold only decides whether a
    finding carries its box (callers compare the probability with the card's threshold)."""
    from radlens.domain.imaging import Geometry, Image, ImageLayout
    from radlens.io.box_sets import read_boxes

    card = replace(model.card, thresholds={**model.card.thresholds, "operating": 0.0})
    boxes = read_boxes(VIEW, "val", ("fracture",))
    backend = OnnxBackend(model.weights, threads=1)
    seen: Fractured = []
    for array, truth in zip(boxes.images, boxes.boxes, strict=True):
        if len(truth):
            image = Image(
                array.astype(np.float32), ImageLayout.YX, Geometry((1.0, 1.0), spacing_known=False)
            )
            [finding] = predict(image, card, backend)
            seen.append((array, truth, finding))
    return seen


def _holds_a_centre(box: Box, truth: np.ndarray) -> bool:
    mid_x, mid_y = (truth[:, 0] + truth[:, 2]) / 2, (truth[:, 1] + truth[:, 3]) / 2
    return bool(
        ((box.x0 <= mid_x) & (mid_x <= box.x1) & (box.y0 <= mid_y) & (mid_y <= box.y1)).any()
    )


def _share(box: Box, array: np.ndarray) -> float:
    return float((box.x1 - box.x0) * (box.y1 - box.y0) / (array.shape[0] * array.shape[1]))


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 4) if values else None


def cam_box_figures(model: InstalledModel, seen: Fractured | None = None) -> dict[str, Any]:
    """Where a positive fracture finding's box (its CAM's strongest region, what the report,
    SR and viewer show) lies: of the fractured val images the model calls positive, how many
    boxes overlap a labelled fracture box (IoU > 0.1), the bar the detector rows use."""
    from radlens.inference.detection import box_iou

    fractured = called = hits = centred = 0
    shares: list[float] = []
    for array, truth, finding in _fractured_findings(model) if seen is None else seen:
        fractured += 1
        if (b := finding.box) is None or finding.probability < model.card.threshold:
            continue
        called += 1
        found = np.array([[b.x0, b.y0, b.x1, b.y1]], np.float32)
        hits += bool((box_iou(found, truth) > 0.1).any())
        centred += _holds_a_centre(b, truth)
        shares.append(_share(b, array))
    return {
        "fractured": fractured,
        "called": called,
        "box_overlaps": hits,
        "box_holds_a_fracture_centre": centred,
        "median_box_share_of_image": _median(shares),
    }


def localization_figures(
    model: InstalledModel, label: str, seen: Fractured | None = None
) -> dict[str, Any]:
    """Where a fracture classifier's heatmap points on every fractured val image, whatever
    its probability: its peak within ``POINT_TOLERANCE_PX`` of a labelled fracture box (the
    pointing game), and its box (the one a positive finding carries) holding a labelled
    box's centre."""
    fractured = peaks = centred = 0
    shares: list[float] = []
    for array, truth, finding in _fractured_findings(model) if seen is None else seen:
        fractured += 1
        if (heat := finding.heatmap) is None or (b := finding.box) is None:
            continue
        py, px = np.unravel_index(int(np.argmax(heat)), heat.shape)
        y = (py + 0.5) * array.shape[0] / heat.shape[0]
        x = (px + 0.5) * array.shape[1] / heat.shape[1]
        peaks += bool(_near(truth, x, y, POINT_TOLERANCE_PX).any())
        centred += _holds_a_centre(b, truth)
        shares.append(_share(b, array))
    return {
        "label": label,
        "model": f"{model.card.name} {model.card.version}",
        "sha256": model.card.sha256,
        "fractured": fractured,
        "peak_near_a_fracture_box": peaks,
        "point_tolerance_px": POINT_TOLERANCE_PX,
        "box_holds_a_fracture_centre": centred,
        "median_box_share_of_image": _median(shares),
    }


def _near(truth: np.ndarray, x: float, y: float, tolerance: float) -> np.ndarray:
    """Which of the ``[x0, y0, x1, y1]`` rows of ``truth`` lie within ``tolerance`` px of
    the point ``(x, y)`` (0 inside the box)."""
    dx = np.maximum(np.maximum(truth[:, 0] - x, x - truth[:, 2]), 0.0)
    dy = np.maximum(np.maximum(truth[:, 1] - y, y - truth[:, 3]), 0.0)
    return np.hypot(dx, dy) <= tolerance


def detector_figures(boxes: InstalledModel) -> dict[str, Any]:
    """AP of the box detector on the FracAtlas view's val split, and at its card's threshold
    how many fractured images get a box overlapping a labelled one (IoU > 0.1) and how many
    fracture-free images get any box."""
    from radlens.evaluation.detection import ranked_hits, score_detections
    from radlens.inference.detection import box_iou, detect
    from radlens.io.box_sets import read_boxes

    data = read_boxes(VIEW, "val", boxes.card.labels)
    backend = OnnxBackend(boxes.weights, threads=1)
    # One pass of the detector, every box down to the card's min_score (as for AP); the
    # boxes a finding reports are those at or above the operating score among them.
    found_all = [detect(image, boxes.card, backend) for image in data.images]
    truth = (data.boxes, data.classes, data.difficult)
    scores = score_detections(found_all, *truth, data.label_names)
    kept = matched = positives = 0
    for label in range(len(boxes.card.labels)):
        hit, score, n_pos = ranked_hits(found_all, *truth, label, 0.5)
        kept += int((score >= boxes.card.threshold).sum())
        matched += int(hit[score >= boxes.card.threshold].sum())
        positives += n_pos
    hits = fractured = alarms = clean = 0
    for every, truth in zip(found_all, data.boxes, strict=True):
        found = every.boxes[every.scores >= boxes.card.threshold]
        if len(truth):
            fractured += 1
            hits += bool(len(found)) and bool((box_iou(found, truth) > 0.1).any())
        else:
            clean += 1
            alarms += len(found) > 0
    return {
        "threshold": boxes.card.threshold,
        "precision_at_operating": round(matched / max(kept, 1), 4),
        "recall_at_operating": round(matched / max(positives, 1), 4),
        "fractured_images_boxed": [hits, fractured],
        "clean_images_with_a_box": [alarms, clean],
        "model": f"{boxes.card.name} {boxes.card.version}",
        "weights_mb": round(boxes.weights.stat().st_size / 1e6, 2),
        "images": len(data),
        "boxes": scores.n_boxes,
        "ap50": {k: round(v, 4) for k, v in scores.ap_50.items()},
        "map50": round(scores.map_50, 4),
        "map50_95": round(scores.map_50_95, 4),
    }


def run(
    root: Path,
    ce_model: Path | None,
    out_dir: Path = HERE,
    boxes_before: Path | None = None,
    cam_compare: Sequence[tuple[str, Path]] = (),
    kept: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure both parts; with ``kept`` (an earlier result) only the knee, the fracture
    part copied from it, and the cross-entropy twin's row too when ``ce_model`` is not given
    (the twin does not change when the shipped model does)."""
    knee = get_model(KNEE, discover(include_disabled=True))
    if ce_model:
        knee_ce = grading(load_model(ce_model), root)
    else:
        knee_ce = kept.get("knee_ce") if kept else None
    return {
        "radlens": __version__,
        "knee": grading(knee, root),
        "knee_ce": knee_ce,
        "knee_ce_kept": bool(knee_ce) and not ce_model,
        "knee_heatmaps": heatmaps(knee, root, out_dir / "msk"),
        "fracture": kept["fracture"] if kept else fracture(root, boxes_before, cam_compare),
        # where the kept fracture part was measured
        "fracture_machine": (kept.get("fracture_machine") or kept["machine"]) if kept else None,
        "goals": GOALS,
        "references": REFERENCES,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "onnxruntime": onnxruntime.__version__,
        },
    }


def _ci(result: dict[str, Any], key: str, inside: bool = False) -> str:
    """`` (95% CI lo-hi)`` of ``key`` when the run measured it (``ci95`` or ``<key>_ci95``);
    ``; 95% CI lo-hi`` ``inside`` parentheses already open."""
    ci = result.get("ci95", {}).get(key) or result.get(f"{key}_ci95")
    if not ci:
        return ""
    text = f"95% CI {ci[0]:.3f}-{ci[1]:.3f}"
    return f"; {text}" if inside else f" ({text})"


def _grading_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    head = "| model | loss | acc | macro-F1 | QWK | MAE | within 1 grade | AUC | ECE |\n"
    head += "|---|---|---|---|---|---|---|---|---|\n"
    for loss, g in rows:
        head += (
            f"| {g['model']} | {loss} | {g['accuracy']:.3f} | {g['macro_f1']:.3f} | "
            f"{g['qwk']:.3f} | {g['mae']:.3f} | {g['within_one_grade']:.3f} | {g['auc']:.3f} | "
            f"{g['ece']:.3f} |\n"
        )
    return head


def markdown(r: dict[str, Any]) -> str:
    knee, goals = r["knee"], r["goals"]
    rows = [("cross-entropy + squared EMD (shipped)", knee)]
    if r["knee_ce"]:
        rows.append(("cross-entropy", r["knee_ce"]))
    labels = knee["labels"]
    confusion = "| true \\ predicted | " + " | ".join(labels) + " |\n"
    confusion += "|---" * (len(labels) + 1) + "|\n"
    for name, row in zip(labels, knee["confusion"], strict=True):
        confusion += f"| {name} | " + " | ".join(str(v) for v in row) + " |\n"
    h = r["knee_heatmaps"]
    by_grade = ", ".join(f"{k} {v:.2f}" for k, v in h["band_share_by_grade"].items())
    overlays = "\n".join(
        f"- ![{o['true']}]({o['file']}) true {o['true']}, reported {o['reported']} "
        f"({o['probability']:.2f})"
        for o in h["overlays"]
    )
    acc_ci, qwk_ci = (_ci(knee, key, inside=True) for key in ("accuracy", "qwk"))
    mae_ci = _ci(knee, "mae")
    acc_met = "met" if knee["accuracy"] >= goals["knee_acc"] else "NOT met"
    qwk_met = "met" if knee["qwk"] >= goals["knee_qwk"] else "NOT met"
    frac = r["fracture"]
    if frac is None:
        fracture_md = "Not shipped yet: no `fracture_xray` model in the zoo when this ran.\n"
    else:
        auc_met = "met" if frac["auc"] >= goals["fracture_auc"] else "NOT met"
        low = frac.get("auc_ci95", [frac["auc"]])[0]
        if frac["auc"] >= goals["fracture_auc"] > low:
            auc_met = "met by the point estimate; its 95% interval reaches below"
        fracture_md = (
            f"`{frac['model']}` on the FracAtlas view's val split ({frac['n']} images, "
            f"{frac['n_fractured']} fractured):\n\n| metric | value | goal |\n|---|---|---|\n"
            f"| AUC | {frac['auc']:.3f}{_ci(frac, 'auc')} | >= {goals['fracture_auc']:.2f}: "
            f"{auc_met} |\n"
            f"| sensitivity at 90% specificity | {frac['sensitivity_at_90_specificity']:.3f} "
            f"(specificity {frac['specificity_at_that_threshold']:.3f}) | |\n"
            f"| ECE | {frac['ece']:.3f} | |\n"
        )
        det = frac.get("detector")
        if det:
            fracture_md += (
                f"\n`{det['model']}` boxes on the same val split ({det['images']} images, "
                f"{det['boxes']['fracture']} fracture boxes):\n\n"
                "| detector | weights MB | AP@0.5 | AP@0.5:0.95 | operating score | fractured "
                "images boxed (IoU > 0.1) | fracture-free images with a box |\n"
                "|---|---|---|---|---|---|---|\n"
            )
            for d in (det, frac.get("detector_before")):
                if d is None:
                    continue
                shipped = "(shipped)" if d is det else "(replaced)"
                fracture_md += (
                    f"| {d['model']} {shipped} | {d.get('weights_mb', '—')} | "
                    f"**{d['map50']:.3f}** | {d['map50_95']:.3f} | {d['threshold']:.2f} | "
                    f"{d['fractured_images_boxed'][0]} of {d['fractured_images_boxed'][1]} | "
                    f"{d['clean_images_with_a_box'][0]} of {d['clean_images_with_a_box'][1]} |\n"
                )
            cam = frac.get("cam_box")
            if cam:
                fracture_md += (
                    f"| {frac['model']} heatmap box (shipped; the box a positive finding "
                    f"carries) | — | — | — | operating threshold | {cam['box_overlaps']} of "
                    f"{cam['fractured']} ({cam['called']} called positive) | — |\n"
                )
            if cam:
                fracture_md += (
                    f"\nThe heatmap box of a positive `{frac['model']}` finding is coarse: it "
                    f"holds the centre of a labelled fracture box in "
                    f"{cam['box_holds_a_fracture_centre']} of the {cam['called']} fractured "
                    f"images called positive, but covers a median "
                    f"{100 * cam['median_box_share_of_image']:.0f}% of the image, so it rarely "
                    "passes IoU > 0.1 against the small labelled boxes. The detector's boxes "
                    "are tight where they are found.\n"
                )
            fracture_md += (
                "\nImage counts at each card's operating score: a box scoring less is not "
                "reported (since 1.1.1 the score with the best val F1 of boxes at IoU 0.5, "
                "fitted by `radlens calibrate`; 0.30 before). The boxes "
                "find the fracture's region more often than they frame it: AP@0.5 needs IoU "
                "0.5, and the median val box is about 13 x 15 px of the 256 px input. Shipped "
                "disabled (`radlens analyze --enable fracture_boxes`).\n"
            )
        else:
            fracture_md += "\nThe fracture box detector is not shipped yet.\n"
        fracture_md += localization_md(frac.get("localization") or [])
    refs = "\n".join(f"- {ref}" for ref in r["references"])
    ce = r["knee_ce"]
    ordinal_note = (
        "not measured in this run (pass --ce-model)."
        if ce is None
        else f"with the same recipe, seed and data, adding the squared earth mover's distance "
        f"changed accuracy {ce['accuracy']:.3f} -> {knee['accuracy']:.3f}, weighted kappa "
        f"{ce['qwk']:.3f} -> {knee['qwk']:.3f} and MAE {ce['mae']:.3f} -> {knee['mae']:.3f}; "
        "one seed each on 128 images, so differences of a few hundredths are within noise."
    )
    frac_auc = "n/a" if frac is None else f"{frac['auc']:.3f}"
    frac_auc_met = "not measured" if frac is None else ("met" if frac["auc"] >= 0.90 else "NOT met")
    if frac is not None and frac["auc"] >= 0.90 > frac.get("auc_ci95", [1.0])[0]:
        frac_auc_met = (
            f"met by the point estimate; 95% interval {frac['auc_ci95'][0]:.3f}-"
            f"{frac['auc_ci95'][1]:.3f}"
        )
    det_ap = "n/a" if not frac or "detector" not in frac else f"{frac['detector']['map50']:.3f}"
    shipped_det = (frac or {}).get("detector") or {}
    det_point = (
        f"{shipped_det['threshold']:.3f}, box precision "
        f"{shipped_det['precision_at_operating']:.2f} and recall "
        f"{shipped_det['recall_at_operating']:.2f} at IoU 0.5"
        if "precision_at_operating" in shipped_det
        else "not measured"
    )
    det_counts = (
        f"{shipped_det['fractured_images_boxed'][0]} fractured and "
        f"{shipped_det['clean_images_with_a_box'][0]} fracture-free images boxed"
        if shipped_det
        else "not measured"
    )
    predicted_kl1 = sum(row[1] for row in knee["confusion"])
    top = knee.get("argmax")
    rule_note = (
        ""
        if top is None or knee.get("grade_rule", "argmax") == "argmax"
        else f"- The reported grade is the median of the calibrated grade distribution (the "
        f"card's `grade_rule`), the choice with the least expected absolute grade error; "
        f"the most probable grade would give accuracy {top['accuracy']:.3f}, weighted kappa "
        f"{top['qwk']:.3f} and MAE {top['mae']:.3f} on the same val knees (chosen on val, "
        "and better on train as well: `recipes/knee_oa_kl.toml`).\n"
    )
    grade1_note = f"KL 1 (doubtful) was predicted for {predicted_kl1} of {knee['n']} val knees."
    mach, kept, knee_kept = r["machine"], r.get("fracture_machine"), r.get("knee_machine")
    earlier = (
        f" The fracture part is kept from an earlier run ({kept['cpu']}, {kept['cores']} cores,"
        f" onnxruntime {kept['onnxruntime']}; `--knee-only`)"
        + (", and so is the cross-entropy twin's row." if r.get("knee_ce_kept") else ".")
        if kept
        else ""
    )
    if knee_kept:
        earlier = (
            f" The knee part, and the fracture candidates compared with the shipped model, are "
            f"kept from an earlier run ({knee_kept['cpu']}, {knee_kept['cores']} cores, "
            f"onnxruntime {knee_kept['onnxruntime']}; `--fracture-only`)."
        )
    return f"""# Musculoskeletal models (val)

radlens {r["radlens"]}; {mach["cpu"]}, {mach["cores"]} cores, onnxruntime
{mach["onnxruntime"]}. Written by `python benchmarks/bench_msk.py` from ONNX Runtime runs of
the shipped weights on the val splits (test splits are held out).{earlier}

## Knee osteoarthritis: Kellgren-Lawrence grade

Val: {knee["n"]} knees of other patients than train (`../shared/data/{KNEE_DATA}`, a
class-stratified subset of the official kneeKL224 val split; 681 train images).

{_grading_table(rows)}
Goals: accuracy >= {goals["knee_acc"]:.2f}: **{acc_met}** ({knee["accuracy"]:.3f}{acc_ci});
weighted kappa >= {goals["knee_qwk"]:.2f}: **{qwk_met}** ({knee["qwk"]:.3f}{qwk_ci}).
Intervals: 95%, bootstrap of the val images ({BOOTS} resamples); MAE {knee["mae"]:.3f}{mae_ci}.

Confusion matrix of the shipped model (rows: reference grade):

{confusion}
**What the heatmap points at.** The class activation map of the reported grade, on every val
crop: its share of mass in the middle band (rows {h["band_rows"][0]:.0%}-{h["band_rows"][1]:.0%}
of the crop, where these joint-centred crops hold the joint space and the marginal
osteophytes; a map spread evenly would put {h["band_share_uniform"]:.0%} there) is
**{h["band_share_mean"]:.2f}** on average; by reference grade: {by_grade}.

{overlays}

## Fracture

{fracture_md}
## Notes

{rule_note}- Ordinal loss against cross-entropy: {ordinal_note}
- What the maps show, looked at on the overlays above and others: the map of the reported
  grade lies over the joint line and the proximal tibia (the tibial plateau and the
  tibial spines), both compartments at once, and reaches the joint margins where
  osteophytes grow; it does not single out the narrowed compartment, and on severe knees it
  spreads wider (the lower band share at KL 4).
- Both goals of the knee model are missed by a wide margin. The references trained on the
  whole OAI set (Chen et al.: the 5,778 kneeKL224 train images; Thomas et al.: their OAI
  radiographs); this model saw the 681 of the class-stratified subset in `../shared/data`,
  from scratch (no pretrained weights can be fetched here). {grade1_note}
- Fracture (`recipes/fracture_xray.toml`): since 1.2.0 the trunk starts from the chest model
  `cxr_pneumonia_128` (`net.init`) and a training-only head learns the FracAtlas boxes
  (`schedule.box_loss`). Seed 0 / seed 1 val AUC: 1.1.0's recipe 0.822 / 0.846, with boxes
  0.844 / 0.844, the transferred trunk alone 0.850 (seed 0), both 0.855 / 0.866 (seed 0
  was 1.2.0); input 320 px instead of 256: 0.827 (seed 0). Fracture 1.3.0 is 1.2.0's
  recipe trained 80 epochs (patience 24) instead of 40, whose best epoch had been the
  37th: val AUC 0.855 -> 0.883, ECE 0.092 -> 0.058 (one seed; the two seeds of 1.2.0's
  recipe differed by 0.011). Fracture 1.4.0 is three members of that recipe (seeds 0, 1, 2;
  member 1 is 1.3.0 exactly) with mirror-image test-time augmentation in one graph, weights
  in float16 (1.9 MB): val AUC 0.883 -> 0.899, ECE 0.058 -> 0.048, sensitivity at 90%
  specificity 0.695 -> 0.780; seed 1's member alone reached 0.906 at its best epoch, so the
  seed-to-seed spread at 80 epochs is about 0.02. Fracture 1.5.0 adds a fourth member
  (seed 3; members 1-3 are 1.4.0's epoch for epoch), trained two at a time in worker
  processes (`schedule.workers = 2`, 58.5 min): val AUC 0.899 -> 0.903, but sensitivity at
  90% specificity 0.780 -> 0.756 and ECE 0.048 -> 0.056; the bootstrap 95% interval of the
  AUC on these 194 images is 0.85-0.94, so the two versions cannot be told apart on val.
  Knee 1.2.0 is 1.1.0 retrained identically
  with float16 weights (same figures to three decimals). Knee 1.3.0 added robustness training
  (`augment.consistency`: each image also seen as a corrupted copy at severity 1-3, the
  Jensen-Shannon divergence of the two predictions added to the loss), shipped because on
  these 128 val knees its mean AUC drop under corruption was about halved at 4 of 5
  severities (val AUC 0.815 -> 0.816, weighted kappa 0.739 -> 0.735). Measured cross-fitted
  over the 681 train images it was not (0/5), and it cost clean figures (AUC 0.818 -> 0.810,
  weighted kappa 0.760 -> 0.737; `benchmarks/robustness.md`, `benchmarks/crossfit.md`), so
  knee 1.4.0 is 1.2.0's recipe again, trained with today's code (not 1.2.0's weights): against
  1.3.0 on val, AUC 0.816 -> 0.820, NLL 1.042 -> 0.983, macro F1 0.538 -> 0.542, but accuracy
  0.547 -> 0.523, weighted kappa 0.735 -> 0.710 and ECE 0.068 -> 0.125, all within what 128
  images can tell apart.
  Every run is in `benchmarks/experiments.jsonl` (rendered in `benchmarks/models.md`). A
  knee model from the
  same transferred trunk stopped early at weighted kappa 0.657 (argmax) against 0.683: not
  kept; the knee recipe trained 80 epochs gave AUC 0.826 but accuracy 0.500 and weighted
  kappa 0.728: not kept either.
- Fracture boxes (`recipes/fracture_boxes.toml`): 1.1.0 is the same CenterNet/TTFNet
  detector on a resnet-tiny trunk with a feature pyramid back to stride 4
  (`TrunkBoxNet`) instead of 1.0.0's BoxNet, 40 epochs, with mirror-image test-time
  augmentation in the graph and float16 weights: val AP@0.5 0.086 -> {det_ap}. One seed each
  (`benchmarks/experiments.jsonl`): the trunk network alone gave 0.190, the flip averaging
  0.203; starting the trunk from the chest model `cxr_pneumonia_128` gave 0.125 (the chest
  trunk helps the fracture classifier, not the detector), and reading the images at their
  full 320 px instead of 256 gave 0.138; the shipped recipe with seed 1 gave 0.227. Val AP
  moves by several hundredths from one evaluated epoch and one seed to the next (91 boxes),
  so differences of that size are noise. At the
  operating score of 0.30 the image-level counts barely moved (33 against 34 fractured
  images boxed where labelled, 11 against 14 fracture-free images boxed): the gain is in
  ranking and framing the boxes. 1.1.1 keeps 1.1.0's weights with the operating score fitted
  on val ({det_point}): {det_counts}. Its pooled decoder features also give it the
  OOD score of a classifier (`benchmarks/trust.md`).
- Fracture goals: study-level AUC {frac_auc} against 0.90 ({frac_auc_met}); the box
  detector's AP@0.5 against the FracAtlas paper's YOLOv8 baseline, whose figures could not
  be read from this machine; at {det_ap} it is below any published YOLOv8 result on
  FracAtlas we know of, so that goal is counted as not met.
- Training commands: `radlens train recipes/knee_oa_kl.toml -o OUT` (and
  `--set schedule.loss=ce` for the cross-entropy twin); `radlens data prepare fracatlas
  ../shared/data/det/fracatlas_fracture -o build/data/fracatlas`, then
  `radlens train recipes/fracture_xray.toml -o OUT` and
  `radlens train recipes/fracture_boxes.toml -o OUT`. Every figure is on val; the held-out
  test splits are measured elsewhere.

## References

{refs}
"""


def localization_md(rows: list[dict[str, Any]]) -> str:
    """The table of where each fracture classifier's heatmap points."""
    if not rows:
        return ""
    n = rows[0]["fractured"]
    out = (
        f"\nWhere the classifier's heatmap points, on every one of the {n} fractured val "
        f"images (called positive or not): its peak within {rows[0]['point_tolerance_px']:.0f} "
        "px of a labelled fracture box (the pointing game; the view's images are 256 px on "
        "their shorter side), and its box (the one a positive finding carries) around a labelled "
        "box's centre. Models other than the shipped one are tried variants, named by what "
        "they change (`--cam-compare`); robustness training can move the map off the "
        "fracture.\n\n"
        "| model | which | peak near a fracture box | box holds a fracture centre | "
        "median box share of the image |\n|---|---|---|---|---|\n"
    )
    for r in rows:
        share = r["median_box_share_of_image"]
        out += (
            f"| {r['model']} | {r['label']} | {r['peak_near_a_fracture_box']} of "
            f"{r['fractured']} | {r['box_holds_a_fracture_centre']} of {r['fractured']} | "
            f"{'—' if share is None else f'{100 * share:.0f}%'} |\n"
        )
    return out


def refresh_fracture(root: Path, kept: dict[str, Any]) -> dict[str, Any]:
    """``kept`` (the committed result) with the shipped fracture models measured again: the
    knee part, the compared candidates' localization rows and the replaced detector's
    figures are copied from it."""
    fresh = fracture(root)
    if fresh is None:
        raise SystemExit("no fracture_xray model in the zoo")
    old = kept["fracture"] or {}
    fresh["localization"] = fresh["localization"][:1] + [
        row for row in old.get("localization", []) if row["label"] != "shipped"
    ]
    if "detector_before" in old:
        fresh["detector_before"] = old["detector_before"]
    return kept | {
        "radlens": __version__,
        "fracture": fresh,
        "fracture_machine": None,
        "knee_machine": kept.get("knee_machine") or kept["machine"],
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "onnxruntime": onnxruntime.__version__,
        },
    }


def cam_compare_arg(text: str) -> tuple[str, Path]:
    """``LABEL=DIR`` of ``--cam-compare``."""
    label, sep, folder = text.rpartition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"{text!r}: give LABEL=DIR")
    return label, Path(folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", type=Path, default=None, help="default ../shared/data")
    parser.add_argument("--ce-model", type=Path, default=None, help="the cross-entropy twin")
    parser.add_argument("--out-dir", type=Path, default=HERE)
    parser.add_argument(
        "--boxes-before", type=Path, default=None, help="the replaced fracture_boxes version"
    )
    parser.add_argument(
        "--cam-compare",
        type=cam_compare_arg,
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="another fracture model whose heatmap placement to measure beside the shipped one",
    )
    parser.add_argument(
        "--knee-only",
        action="store_true",
        help="measure the knee models only; the fracture part (and, without --ce-model, the "
        "cross-entropy twin) is kept from msk.json",
    )
    parser.add_argument(
        "--fracture-only",
        action="store_true",
        help="measure the shipped fracture models only; the knee part, the compared fracture "
        "candidates and the replaced detector are kept from msk.json",
    )
    args = parser.parse_args(argv)
    if args.knee_only and args.fracture_only:
        parser.error("--knee-only and --fracture-only exclude each other")
    root = args.data_root or Path(
        os.environ.get("RADLENS_DATA", HERE.parent.parent / "shared" / "data")
    )
    kept = None
    if args.knee_only or args.fracture_only:
        kept = json.loads((args.out_dir / "msk.json").read_text("utf-8"))
    if args.fracture_only:
        assert kept is not None
        result = refresh_fracture(root, kept)
    else:
        result = run(root, args.ce_model, args.out_dir, args.boxes_before, args.cam_compare, kept)
    (args.out_dir / "msk.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    (args.out_dir / "msk.md").write_text(markdown(result), "utf-8")
    print(f"wrote {args.out_dir / 'msk.md'}")


if __name__ == "__main__":
    main()
