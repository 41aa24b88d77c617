"""Benchmark: the segmentation (and detection) models of the zoo on their val splits.

Segmentation (``fetal_head_hc18``, HC18 fetal head ultrasound): the val split of
``../shared/data/seg/hc18_fetal_head_us`` (subject-disjoint, seeded, as at training) through
``radlens.evaluation.segmentation.evaluate_segmentation`` (ONNX Runtime, masks on the
800 x 540 source grid): Dice, Hausdorff distance and HD95 in mm, head circumference mean
absolute difference and mean difference against the reference HC; the figures are checked
against the card. Latency per 800 x 540 image on one thread (``intra_op_num_threads=1``):
the ONNX call alone, and the whole ``segment`` step (preparation, ONNX, resize back,
threshold, largest component, ellipse fit, HC, GA), median of ``RUNS`` after ``WARMUPS``.

Writes ``benchmarks/seg_det.json`` (keeping other sections already there, so the detection
part can write its own key) and ``benchmarks/seg_det.md``. Run with ``make bench-models``;
``--data-root`` (default ``$RADLENS_DATA`` or ``../shared/data`` beside the repository).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from radlens import __version__
from radlens.domain.imaging import Geometry, Image, ImageLayout
from radlens.evaluation.segmentation import evaluate_segmentation
from radlens.inference.backends import OnnxBackend
from radlens.inference.biometry import Ellipse, fit_ellipse, largest_component
from radlens.inference.preprocess import Placement, prepare_2d
from radlens.inference.segment import mask_probabilities, segment, sigmoid, to_source_grid
from radlens.io.segmentation_sets import SegmentedImages, read_segmentation
from radlens.models.card import ModelCard, Task
from radlens.models.registry import InstalledModel, discover

HERE = Path(__file__).parent
RUNS = 30
WARMUPS = 3
TOLERANCE = 0.002  # rerunning the evaluation must reproduce the card to this precision
SEG_DATA = "seg/hc18_fetal_head_us"
LATENCY_GOAL_MS = 100.0
REFERENCES = [
    {
        "source": "van den Heuvel TLA, de Bruijn D, de Korte CL, van Ginneken B. Automated "
        "measurement of fetal head circumference using 2D ultrasound images. PLoS ONE "
        "13(8):e0200412, 2018 (HC18 dataset paper; random forest + Hough ellipse, "
        "HC18 test set of 335 images)",
        "hc_mad_mm": 2.8,
        "note": "HC mean absolute difference about 2.8 mm for its method",
    },
    {
        "source": "Later deep-learning methods on the HC18 challenge "
        "(hc18.grand-challenge.org leaderboard; test set)",
        "hc_mad_mm": "about 1.6-2.0",
        "dice": "0.97-0.98",
        "note": "HC mean absolute difference about 1.6-2.0 mm with Dice 0.97-0.98 (as "
        "summarized in issue 8)",
    },
]
NOTES = [
    "Commands: `radlens train recipes/fetal_head_hc18.toml -o OUT` (training both members, "
    "about 105 min on one thread, then the card measured through ONNX Runtime; `--member "
    "FILE` per member size reuses trained members); `radlens evaluate --model "
    "fetal_head_hc18 --data ../shared/data/seg/hc18_fetal_head_us --split val` (these "
    "figures); "
    "`python benchmarks/bench_seg_det.py` (this page).",
    "Split: 160 subjects, 20% of subjects to val with `random.Random(0)`; images of one "
    "subject (NNN_HC, NNN_2HC) stay on one side. Model selection (best epoch by val Dice at "
    "the input size) used val; there is no separate test split here (the 40 held-out "
    "subjects of the data README are kept elsewhere), so val figures are slightly optimistic.",
    "HC: ellipse (scikit-image EllipseModel) of the mask's sub-pixel boundary at 800 x 540, "
    "perimeter by Ramanujan's second approximation, less the edge offset fitted on train "
    "(the HC18 masks include the drawn outline: the ellipse of each train reference mask "
    "reproduces the reference HC with 1.39 px taken off each semi-axis, SD 0.06 px; with "
    "that offset the reference masks themselves give HC MAD 0.04 mm on train).",
    "How the ellipse is taken from the model's output barely matters (the table of HC "
    "variants, every edge offset fitted on train; measured on 1.0.0 too: 2.37-2.42 mm): the "
    "error is the segmentation's own, so the shipped method is unchanged and no variant was "
    "chosen on these 40 val images. Mirror test-time augmentation did not help 1.0.0 (MAD "
    "2.43 mm) and is not used.",
    "1.1.0 (2026-11-29) is 1.0.0's recipe trained 140 epochs instead of 40 (`schedule.epochs "
    "= 140`, patience 140): 1.0.0 was underfitted (train-split HC MAD 1.87 mm, train loss no "
    "lower than val loss). Val, 1.0.0 -> 1.1.0: Dice 0.9755 -> 0.9792, HD95 1.87 -> 1.57 mm, "
    "HC MAD 2.42 -> 2.07 mm (mean difference +0.39 -> +0.24, SD 3.01 -> 2.64); train-split "
    "HC MAD 1.87 -> 1.27 mm. The shipped weights are byte-identical to the run that first "
    "measured them (`--set schedule.epochs=140 --set schedule.patience=140 -o "
    "/tmp/hc18_e140`, sha256 d31a4360...): training on one thread is deterministic.",
    "Schedules and sizes tried, val of the same seed-0 split: 40 epochs at 240 x 160 (1.0.0) "
    "HC MAD 2.42 mm, Dice 0.9755; 140 epochs (1.1.0) 2.07 mm, Dice 0.9792; 240 epochs "
    "(`--set schedule.epochs=240 --set schedule.patience=240`) 2.24 mm (mean -0.21, SD "
    "2.81), Dice 0.9796, HD95 1.40 mm: a better overlap but a worse head circumference, so "
    "not shipped; 15 epochs at 320 x 216: 2.94 mm, Dice 0.974; 50 epochs at 288 x 192: "
    "2.55 mm, Dice 0.9765. A wider net, 100 epochs (`--set 'net.features=[12,24,48,96,192,"
    '12]\'`, 1.1 M parameters, 4.4 MB in float32, 2.2 MB with `net.weights = "float16"`): '
    "2.21 mm (mean +0.06, SD 2.80), Dice 0.9786, HD95 1.50 mm: no better than 1.1.0. "
    "Averaging the probability maps of the 40-epoch, 288 and 320 px models gave 2.41-2.49 "
    "mm: no better than the best alone.",
    "The 140 epochs were chosen among these by val HC MAD, so 2.07 mm is optimistic for new "
    "images by that choice (40 images: the standard error of the MAD is 0.26 mm, a "
    "bootstrap 95% interval over images 1.59-2.60 mm).",
    "Losses on the boundary, tried on 1.1.0's recipe (140 epochs, seed 0) and not kept "
    "(2026-11-29): the relative error of the ellipse perimeter taken from the predicted and "
    "the true mask's second moments (a loss on the measurement itself), weight 1: HC MAD "
    "2.14 mm (Dice 0.9782), weight 4: 2.48 mm (Dice 0.9755); the boundary loss of Kervadec "
    "et al. (MIDL 2019: the probability times the signed distance to the true edge, in "
    "input pixels), weight 0.01: 2.21 mm (Dice 0.9788, HD95 1.49 mm), weight 0.05: 2.16 mm "
    "(Dice 0.9788, HD95 1.51 mm). With the schedules, sizes and widths above, every variant "
    "of this recipe lands at 2.07-2.5 mm; the spread between them is within the 0.26 mm "
    "standard error, and 1.1.0's 2.07 is the lowest. The errors are at the faint parts of "
    "the skull outline, where the annotators' ellipse is a judgement; an ellipse fitted "
    "robustly (boundary points beyond 3 robust SD of the first fit dropped) gave 2.03 mm, "
    "no real change.",
    "1.2.0 (2026-11-30) is a multi-scale ensemble in one graph (`schedule.member_sizes`, "
    "`training/seg_ensemble.py`): 1.1.0's recipe trained at 224 x 336 (140 epochs; alone: "
    "HC MAD 2.05 mm, mean -0.10, SD 2.57, Dice 0.9790, HD95 1.43 mm) and 1.1.0 itself at "
    "160 x 240 (2.07 mm, mean +0.24); the graph takes the 224 x 336 input, the smaller "
    "member reads it resized (bilinear, antialiased), and the output is the mean of the two "
    "members' logits. Weights stored as float16 (2.03 MB for both). Val: HC MAD 2.07 -> "
    "1.97 mm (mean +0.24 -> +0.01, SD 2.64 -> 2.49), Dice 0.9792 -> 0.9796, HD95 1.57 -> "
    "1.39 mm. The two members err in opposite directions on average, and the mean cancels "
    "most of it. Members: sha256 f02cb54c... (224 x 336, `--set 'input.size=[224,336]'`) "
    "and d31a4360... (1.1.0); the recipe trains each exactly as a single-size run "
    "(a test checks a member's sha256 against its single-size run on a tiny set); the "
    "shipped file was composed from these two with `--member` (the full rerun takes 105 "
    "min and was not repeated).",
    "This ensemble was chosen on the same 40 val images as everything above (earlier "
    "averages of other members gave 2.08-2.49 mm), and 1.97 mm is within one standard "
    "error (0.24 mm; a bootstrap 95% interval over images 1.53-2.45 mm) of 2.07 mm: the "
    "val figure meets the 2.0 mm goal, but these 40 "
    "images cannot show that the ensemble is truly better on new images; the held-out test "
    "split decides.",
]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def default_data_root() -> Path:
    return Path(os.environ.get("RADLENS_DATA", HERE.parent.parent / "shared" / "data"))


def median_ms(fn: Any, runs: int, warmups: int) -> float:
    for _ in range(warmups):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


# --- HC variants: how the ellipse is taken from the model's output -------------------------


def _ellipse_of_points(rows_cols: np.ndarray) -> Ellipse:
    from skimage.measure import EllipseModel

    model = EllipseModel.from_estimate(rows_cols[:, ::-1].astype(np.float64))  # type: ignore[no-untyped-call]
    r1, r2 = sorted((float(v) for v in model.axis_lengths), reverse=True)
    return Ellipse(float(model.center[0]), float(model.center[1]), r1, r2, 0.0)


def _contour_ellipse(field: np.ndarray) -> Ellipse:
    """Ellipse of the longest 0.5 iso-contour of a probability map (near its largest blob)."""
    from scipy.ndimage import binary_dilation
    from skimage.measure import find_contours

    keep = binary_dilation(largest_component(field >= 0.5), iterations=3)
    padded = np.pad(np.where(keep, field, 0.0).astype(np.float64), 1)
    return _ellipse_of_points(max(find_contours(padded, 0.5), key=len) - 1.0)  # type: ignore[no-untyped-call]


def _lowres_ellipse(low: np.ndarray, where: Placement) -> Ellipse:
    """Ellipse of the 0.5 iso-contour of the input-grid probability, scaled to the source."""
    from skimage.measure import find_contours

    rows, cols = where.source_shape
    in_rows, in_cols = round(rows / where.scale_y), round(cols / where.scale_x)
    y0, x0 = round(where.offset_y), round(where.offset_x)
    inner = np.pad(low[y0 : y0 + in_rows, x0 : x0 + in_cols].astype(np.float64), 1)
    b = max(find_contours(inner, 0.5), key=len) - 1.0  # type: ignore[no-untyped-call]
    scale = np.array([rows / in_rows, cols / in_cols])
    return _ellipse_of_points((b + 0.5) * scale - 0.5)


def _moments_ellipse(weights: np.ndarray) -> Ellipse:
    """Ellipse with the (weighted) second moments of a filled region: semi-axis 2 sqrt(var)."""
    yy, xx = np.nonzero(weights > 0)
    w = weights[yy, xx].astype(np.float64)
    mx, my = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
    cov = np.cov(np.stack([xx - mx, yy - my]), aweights=w, bias=True) + np.eye(2) / 12
    low, high = np.linalg.eigvalsh(cov)
    return Ellipse(float(mx), float(my), 2 * math.sqrt(high), 2 * math.sqrt(low), 0.0)


def _soft_weights(prob: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    keep = binary_dilation(largest_component(prob >= 0.5), iterations=5)
    return np.where(keep, prob, 0.0)


def _shift_tta(image: np.ndarray, card: ModelCard, backend: OnnxBackend) -> np.ndarray:
    """Mean source-grid probability of the image and the image shifted by half an input
    pixel in both axes (shifted back after)."""
    from scipy.ndimage import shift

    rows_in, cols_in = card.input.size
    half = (image.shape[0] / rows_in / 2, image.shape[1] / cols_in / 2)
    moved = shift(image.astype(np.float32), half, order=1, mode="nearest")
    [p0, p1] = [mask_probabilities([a], card, backend)[0] for a in (image, moved)]
    back = shift(p1, (-half[0], -half[1]), order=1, mode="nearest")
    out: np.ndarray = (p0 + back) / 2
    return out


def _offset_px(ellipse: Ellipse, pixel_mm: float, reference_mm: float) -> float:
    """The semi-axis offset that makes the ellipse's perimeter the reference HC."""
    low, high = -10.0, 10.0
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (
            (mid, high)
            if ellipse.shrunk(mid).perimeter_px * pixel_mm > reference_mm
            else (low, mid)
        )
    return (low + high) / 2


def hc_variants(
    card: ModelCard, backend: OnnxBackend, train: SegmentedImages, val: SegmentedImages
) -> list[dict[str, Any]]:
    """Val HC figures of each way tried to take the ellipse from the model's output. Every
    edge offset is fitted on train (the median over its images): on the reference masks
    with the same ellipse method, or (``pred``) on the model's own train predictions."""

    def outputs(data: SegmentedImages) -> list[dict[str, Any]]:
        found = []
        for image in data.images:
            x, where = prepare_2d(image, card.input, None)
            low = sigmoid(backend.run(x[None])[card.outputs[0]][0, 0])
            prob = to_source_grid(low, where)
            found.append({"image": image, "low": low, "where": where, "prob": prob})
        return found

    def mask_of(o: dict[str, Any]) -> np.ndarray:
        found: np.ndarray = largest_component(o["prob"] >= card.threshold)
        return found

    def tta_mask(o: dict[str, Any]) -> np.ndarray:
        found: np.ndarray = largest_component(_shift_tta(o["image"], card, backend) >= 0.5)
        return found

    def moments_of_mask(m: np.ndarray) -> Ellipse:
        return _moments_ellipse(m.astype(np.float64))

    shipped = "mask boundary, sub-pixel contour (shipped)"
    methods: list[tuple[str, Any, Any]] = [
        (shipped, lambda o: fit_ellipse(mask_of(o)), fit_ellipse),
        (
            "probability map at 800 x 540, 0.5 contour",
            lambda o: _contour_ellipse(o["prob"]),
            fit_ellipse,
        ),
        (
            "input-grid probability, 0.5 contour, scaled",
            lambda o: _lowres_ellipse(o["low"], o["where"]),
            fit_ellipse,
        ),
        ("filled-mask moments", lambda o: moments_of_mask(mask_of(o)), moments_of_mask),
        (
            "probability-weighted moments",
            lambda o: _moments_ellipse(_soft_weights(o["prob"])),
            moments_of_mask,
        ),
        (
            "mask boundary of a half-pixel shift TTA (2 runs)",
            lambda o: fit_ellipse(tta_mask(o)),
            fit_ellipse,
        ),
    ]
    train_out, val_out = outputs(train), outputs(val)
    rows: list[dict[str, Any]] = []
    for name, of_output, of_reference in methods:
        on_val = [of_output(o) for o in val_out]
        fits = {"reference masks": [of_reference(m) for m in train.masks]}
        if name == shipped:
            fits["model predictions"] = [of_output(o) for o in train_out]
        for fitted_on, ellipses in fits.items():
            pairs = zip(ellipses, train.pixel_size_mm, train.reference_mm, strict=True)
            offset = float(np.median([_offset_px(e, px, ref) for e, px, ref in pairs]))
            diffs = np.array(
                [
                    e.shrunk(offset).perimeter_px * px - ref
                    for e, px, ref in zip(on_val, val.pixel_size_mm, val.reference_mm, strict=True)
                ]
            )
            rows.append(
                {
                    "ellipse_from": name,
                    "offset_fitted_on": f"train {fitted_on}",
                    "edge_offset_px": round(offset, 4),
                    "hc_mad_mm": round(float(np.abs(diffs).mean()), 3),
                    "hc_mean_diff_mm": round(float(diffs.mean()), 3),
                    "hc_sd_diff_mm": round(float(diffs.std(ddof=1)), 3),
                }
            )
    return rows


def bench_segmentation(
    model: InstalledModel, data_root: Path, runs: int, warmups: int
) -> dict[str, Any]:
    """Val figures, their agreement with the card, and latency of one model."""
    card = model.card
    val = read_segmentation(data_root / SEG_DATA, "val", seed=card.training.seed)
    evaluation, rows = evaluate_segmentation(card, OnnxBackend(model.weights, threads=2), val)
    in_card = card.metrics.get("val", {})
    mismatches = {
        k: (v, in_card[k])
        for k, v in evaluation.metrics.items()
        if k in in_card and abs(v - in_card[k]) > TOLERANCE
    }
    one = OnnxBackend(model.weights, threads=1)
    image = val.images[0]
    batch = prepare_2d(image, card.input)[0][None]
    source = Image(
        image.astype(np.float32),
        ImageLayout.YX,
        Geometry((float(val.pixel_size_mm[0]),) * 2),
        source_uids=("1.2.3",),
    )
    train = read_segmentation(data_root / SEG_DATA, "train", seed=card.training.seed)
    variants = hc_variants(card, OnnxBackend(model.weights, threads=2), train, val)
    onnx_ms = median_ms(lambda: one.run(batch), runs, warmups)
    segment_ms = median_ms(lambda: segment(source, card, one), runs, warmups)
    m = evaluation.metrics
    goals = {
        "dice >= 0.97": m["dice"] >= 0.97,
        "hc_mad_mm <= 2.0": m.get("hc_mad_mm", float("inf")) <= 2.0,
        f"segment ms <= {LATENCY_GOAL_MS:.0f} (one thread)": segment_ms <= LATENCY_GOAL_MS,
    }
    return {
        "model": card.name,
        "version": card.version,
        "task": card.task.value,
        "data": f"{SEG_DATA} (val split: {len(val)} images of {len(set(val.subjects))} "
        "subjects, subject-disjoint from train, seed "
        f"{card.training.seed})",
        "image_size": list(image.shape),
        "input_size": list(card.input.size),
        "edge_offset_px": card.segmentation.edge_offset_px if card.segmentation else None,
        "metrics": m,
        "card_matches": not mismatches,
        "card_mismatches": mismatches,
        "ms_onnx_1thread": onnx_ms,
        "ms_segment_1thread": segment_ms,
        "mb_onnx": round(model.weights.stat().st_size / 1e6, 2),
        "training_min": card.training.duration_min,
        "training_command": card.training.command,
        "goals": goals,
        "hc_variants": variants,
        "per_image": rows,
        "references": REFERENCES,
        "notes": NOTES,
    }


def _load(result: dict[str, Any]) -> str:
    load = result["machine"].get("load_average_1min_at_start")
    if load is None:  # runs before it was recorded shared the machine with training jobs
        return "shared with other jobs while measured"
    return f"1-minute load average {load} at the start"


def render_markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Segmentation and detection models (val)",
        "",
        f"radlens {result['radlens_version']}, {result['date']}; machine: "
        f"{result['machine']['cpu']}, {result['machine']['cores']} cores ({_load(result)}), "
        f"onnxruntime {result['machine']['onnxruntime']}. Written by "
        "`python benchmarks/bench_seg_det.py` (`make bench-models`).",
        "",
    ]
    for seg in result.get("segmentation", []):
        m = seg["metrics"]
        lines += [
            f"## {seg['model']} {seg['version']}: HC18 fetal head ultrasound",
            "",
            f"Data: `{seg['data']}`. Images {seg['image_size'][1]} x {seg['image_size'][0]}, "
            f"model input {seg['input_size'][1]} x {seg['input_size'][0]}; masks compared on "
            "the source grid. "
            + (
                f"Composed from trained members by `{seg['training_command']}` (their "
                "training: see the notes). "
                if "--member" in seg["training_command"]
                else f"Trained with `{seg['training_command']}` ({seg['training_min']} min). "
            )
            + f"Edge offset of the reference masks (train median): {seg['edge_offset_px']} px.",
            "",
            "| metric (val) | value | goal |",
            "|---|---|---|",
            f"| Dice | {m['dice']:.4f} | >= 0.97 |",
            f"| Hausdorff distance (mm), mean | {m.get('hd_mm', float('nan')):.2f} | |",
            f"| HD95 (mm), mean | {m.get('hd95_mm', float('nan')):.2f} | |",
            f"| HC mean absolute difference (mm) | {m.get('hc_mad_mm', float('nan')):.2f} "
            "| <= 2.0 |",
            f"| HC mean difference (mm), measured - reference | "
            f"{m.get('hc_mean_diff_mm', float('nan')):+.2f} | |",
            f"| HC SD of the difference (mm) | {m.get('hc_sd_diff_mm', float('nan')):.2f} | |",
            f"| images without a mask | {m['n_no_mask']:.0f} of {m['n']:.0f} | |",
            f"| ONNX Runtime ms / image, 1 thread | {seg['ms_onnx_1thread']:.1f} | |",
            f"| `segment` ms / 800 x 540 image, 1 thread | {seg['ms_segment_1thread']:.1f} "
            f"| <= {LATENCY_GOAL_MS:.0f} |",
            f"| ONNX file (MB) | {seg['mb_onnx']} | |",
            "",
            "Goals: "
            + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in seg["goals"].items())
            + f". Card figures reproduced: {'yes' if seg['card_matches'] else 'NO'}.",
            "",
            "HC variants tried: the ways of taking the ellipse from the model's output, "
            "measured on val, each with its edge offset fitted on train (none adopted; see "
            "the notes):",
            "",
            "| ellipse from | edge offset fitted on | offset (px) | HC MAD (mm) | mean diff "
            "(mm) | SD (mm) |",
            "|---|---|---|---|---|---|",
            *[
                f"| {v['ellipse_from']} | {v['offset_fitted_on']} | {v['edge_offset_px']:.3f} | "
                f"{v['hc_mad_mm']:.2f} | {v['hc_mean_diff_mm']:+.2f} | {v['hc_sd_diff_mm']:.2f} |"
                for v in seg.get("hc_variants", [])
            ],
            "",
            "References (test-set figures of other methods; radlens's are val figures of "
            "a different, smaller split, so they compare only roughly):",
            "",
        ]
        lines += [f"- {r['source']}: {r['note']}." for r in seg["references"]]
        lines += ["", "Notes:", ""] + [f"- {n}" for n in seg.get("notes", [])] + [""]
    for key in result:
        if key not in ("segmentation", "radlens_version", "date", "machine", "benchmark"):
            lines += [f"## {key}", "", "See `seg_det.json` (written by its own section).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--warmups", type=int, default=WARMUPS)
    args = parser.parse_args(argv)
    root = args.data_root or default_data_root()
    if not (root / SEG_DATA).is_dir():
        print(f"skip: no data at {root / SEG_DATA}")
        return 0
    path = args.out_dir / "seg_det.json"
    result: dict[str, Any] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    models = [m for m in discover(include_disabled=True) if m.card.task is Task.SEGMENTATION]
    result |= {
        "benchmark": "segmentation and detection models: val figures, ms per image",
        "radlens_version": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        },
        "segmentation": [bench_segmentation(m, root, args.runs, args.warmups) for m in models],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    (args.out_dir / "seg_det.md").write_text(render_markdown(result), "utf-8")
    print(f"wrote {path} and seg_det.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
