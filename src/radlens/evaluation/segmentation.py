"""Segmentation metrics at the source resolution: Dice, Hausdorff distance in mm, and the
head circumference against its reference.

``evaluate_segmentation`` runs a segmentation model over a :class:`SegmentedImages` split
the way ``radlens analyze`` does (``inference.segment``: input preparation, ONNX, sigmoid
resized to the source, threshold, largest component) and compares each mask with its
reference mask on the source grid:

* ``dice``: mean Dice coefficient;
* ``hd_mm``, ``hd95_mm``: mean over images of the Hausdorff distance between the two mask
  boundaries (the largest distance from a boundary pixel of one to the other's boundary),
  and of its 95th-percentile version (the larger of the two directed 95th percentiles,
  as MONAI computes it), in mm from the pixel size;
* ``hc_mad_mm``, ``hc_mean_diff_mm``, ``hc_sd_diff_mm``: for head circumference models,
  mean absolute, mean and SD of (measured - reference) HC in mm, the HC18 challenge's
  figures (van den Heuvel et al., PLoS ONE 2018);
* ``n_no_mask``: images where no mask was found (Dice 0, HD and HC left out).
"""

from __future__ import annotations

import numpy as np

from radlens.errors import InferenceError
from radlens.evaluation.evaluate import Evaluation
from radlens.inference.backends import Backend
from radlens.inference.biometry import head_biometry
from radlens.inference.segment import final_mask, mask_probabilities
from radlens.io.segmentation_sets import SegmentedImages
from radlens.models.card import Measure, ModelCard


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1 when both are empty).

    Example:
        >>> dice(np.array([1, 1, 0], bool), np.array([1, 0, 0], bool))
        0.6666666666666666
    """
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask with a 4-neighbour outside it (image edges count as outside)."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
    edge: np.ndarray = mask & ~inner
    return edge


def nearest_distances(points: np.ndarray, to: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Euclidean distance from each of ``points`` ``(n, 2)`` to the nearest of ``to``
    ``(m, 2)``: exact, by brute force in chunks of ``chunk`` points (boundaries of masks
    have thousands of pixels, so this is milliseconds and needs no scipy).

    Example:
        >>> nearest_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 0.0]]))
        array([0., 5.])
    """
    found = np.empty(len(points))
    for start in range(0, len(points), chunk):
        part = points[start : start + chunk]
        squared = ((part[:, None, :] - to[None, :, :]) ** 2).sum(-1)
        found[start : start + chunk] = np.sqrt(squared.min(1))
    return found


def hausdorff_mm(a: np.ndarray, b: np.ndarray, pixel_size_mm: float) -> tuple[float, float]:
    """(Hausdorff, 95th-percentile Hausdorff) distance of two non-empty masks' boundaries.

    Example:
        >>> a = np.zeros((20, 20), bool); a[5:15, 5:15] = True
        >>> b = np.zeros((20, 20), bool); b[5:15, 5:17] = True
        >>> hausdorff_mm(a, b, 0.5)
        (1.0, 1.0)
    """
    points_a = np.argwhere(boundary(a)).astype(np.float64)
    points_b = np.argwhere(boundary(b)).astype(np.float64)
    a_to_b, b_to_a = nearest_distances(points_a, points_b), nearest_distances(points_b, points_a)
    hd = max(float(a_to_b.max()), float(b_to_a.max()))
    hd95 = max(float(np.percentile(a_to_b, 95)), float(np.percentile(b_to_a, 95)))
    return hd * pixel_size_mm, hd95 * pixel_size_mm


def predicted_masks(
    card: ModelCard, backend: Backend, data: SegmentedImages, batch_size: int = 8
) -> list[np.ndarray]:
    """The finding masks of every image, on the source grids."""
    masks: list[np.ndarray] = []
    for start in range(0, len(data), batch_size):
        chunk = data.images[start : start + batch_size]
        masks.extend(final_mask(p, card) for p in mask_probabilities(chunk, card, backend))
    return masks


def evaluate_segmentation(
    card: ModelCard, backend: Backend, data: SegmentedImages
) -> tuple[Evaluation, list[dict[str, float | str]]]:
    """The metrics of the module docstring, and one row of figures per image.

    Example:
        >>> ev, rows = evaluate_segmentation(card, OnnxBackend(weights), val)  # doctest: +SKIP
        >>> round(ev.metrics["dice"], 3)  # doctest: +SKIP
        0.975
    """
    if card.segmentation is None:
        raise ValueError(f"{card.name} is not a segmentation model")
    spec = card.segmentation
    rows: list[dict[str, float | str]] = []
    for i, mask in enumerate(predicted_masks(card, backend, data)):
        px = float(data.pixel_size_mm[i])
        row: dict[str, float | str] = {"id": data.ids[i], "dice": dice(mask, data.masks[i])}
        if mask.any() and data.masks[i].any():
            hd, hd95 = hausdorff_mm(mask, data.masks[i], px if np.isfinite(px) else 1.0)
            row |= {"hd_mm": hd, "hd95_mm": hd95}
        reference = float(data.reference_mm[i])
        if spec.measure is Measure.HEAD_CIRCUMFERENCE and mask.any() and np.isfinite(px):
            try:
                hc = head_biometry(mask, px, spec.edge_offset_px).head_circumference_mm
            except InferenceError:
                hc = float("nan")
            row |= {"hc_mm": hc, "hc_reference_mm": reference, "hc_diff_mm": hc - reference}
        rows.append(row)
    metrics = summarize_rows(rows)
    evaluation = Evaluation(
        card.name,
        card.version,
        data.split,
        len(data),
        metrics,
        {},
        np.zeros((0, 1)),
        np.zeros((0,)),
    )
    return evaluation, rows


def summarize_rows(rows: list[dict[str, float | str]]) -> dict[str, float]:
    """The split's figures from the per-image rows (see the module docstring)."""

    def column(name: str) -> np.ndarray:
        values = [float(r[name]) for r in rows if name in r]
        return np.array([v for v in values if np.isfinite(v)], np.float64)

    metrics = {
        "n": float(len(rows)),
        "dice": float(column("dice").mean()),
        "n_no_mask": float(sum("hd_mm" not in r for r in rows)),
    }
    for name in ("hd_mm", "hd95_mm"):
        values = column(name)
        if len(values):
            metrics[name] = float(values.mean())
    diffs = column("hc_diff_mm")
    if len(diffs):
        metrics |= {
            "hc_mad_mm": float(np.abs(diffs).mean()),
            "hc_mean_diff_mm": float(diffs.mean()),
            "hc_sd_diff_mm": float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0,
        }
    return {k: round(v, 6) for k, v in metrics.items()}
