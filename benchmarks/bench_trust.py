"""Out-of-distribution detection: how well each model's OOD score separates its own val images
from images of every other dataset in ../shared/data (issue 5, first part).

For each model with an ``ood`` card entry: scores of its val split (in distribution) against
up to N images from each other dataset, preprocessed by the model's own input spec (as a
mislabelled input would be); AUROC of the score, and the share flagged at the card threshold.
Writes ``benchmarks/trust.json`` and ``benchmarks/trust.md``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from radlens.evaluation.evaluate import prepare_batch
from radlens.evaluation.metrics import auc_binary
from radlens.inference.backends import OnnxBackend
from radlens.inference.ood import load_stats, mahalanobis_scores
from radlens.io.datasets import read_image_file, read_labelled
from radlens.models.registry import InstalledModel, discover

HERE = Path(__file__).resolve().parent
PER_SOURCE = 200

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


def scores(model: InstalledModel, backend: OnnxBackend, images: list[np.ndarray]) -> np.ndarray:
    assert model.card.ood is not None
    stats = load_stats(model.folder / model.card.ood.stats_file)
    out = []
    for start in range(0, len(images), 32):
        batch = prepare_batch(model.card, images[start : start + 32])
        out.append(mahalanobis_scores(backend.run(batch)[model.card.ood.output], stats))
    return np.concatenate(out) if out else np.zeros(0)


def main() -> int:
    root = Path(os.environ.get("RADLENS_DATA", HERE.parent.parent / "shared" / "data"))
    if not root.exists():
        print(f"skip: no data at {root}")
        return 0
    pools = {name: images_of(root, w, how, PER_SOURCE) for name, (w, how) in SOURCES.items()}
    rows = []
    for model in discover(include_disabled=True):
        card = model.card
        if card.ood is None:
            print(f"skip {card.name}: no OOD statistics (radlens ood)")
            continue
        backend = OnnxBackend(model.weights, threads=2)
        mine = _data_of(card.training.data, root)
        # The same dataset at another resolution is not out of distribution.
        own = [n for n, (w, _) in SOURCES.items() if _family(w) == _family(mine)]
        val = read_labelled(root / _data_of(card.training.data, root), "val", card.labels)
        inside = scores(model, backend, val.images)
        for name, pool in pools.items():
            if name in own:
                continue
            usable = [im for im in pool if fits(model, im)]
            if not usable:
                continue
            outside = scores(model, backend, usable)
            y = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
            rows.append(
                {
                    "model": card.name,
                    "ood_source": name,
                    "n_in": len(inside),
                    "n_out": len(outside),
                    "auroc": round(auc_binary(y == 1, np.r_[inside, outside]), 4),
                    "flagged_out": round(float(np.mean(outside >= card.ood.threshold)), 4),
                    "flagged_in": round(float(np.mean(inside >= card.ood.threshold)), 4),
                }
            )
            print(rows[-1])
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "per_source": PER_SOURCE,
        "rows": rows,
    }
    (HERE / "trust.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (HERE / "trust.md").write_text(render(result), encoding="utf-8")
    return 0


def _family(where: str) -> str:
    return Path(where).stem.split("_")[0] if where.endswith(".npz") else where


def _data_of(training_data: str, root: Path) -> str:
    """The card's data path relative to the data root ("../shared/data/x (train ...)")."""
    path = training_data.split(" (")[0]
    marker = "shared/data/"
    return path.split(marker, 1)[1] if marker in path else path


def render(result: dict[str, object]) -> str:
    rows = result["rows"]
    assert isinstance(rows, list)
    lines = [
        "# Benchmark: out-of-distribution detection (issue 5, part 1)\n",
        f"Measured {result['date']} on {result['machine']}. Score: Mahalanobis distance of the "
        "model's pooled last-layer features to the nearest training class mean (shared, "
        "shrunk covariance); threshold from the card (95th percentile of own val scores). "
        f"Up to {result['per_source']} images per other dataset, each put through the model's "
        "own preprocessing, as an image routed to the wrong model would be. Goal: AUROC "
        "≥ 0.99 against every other dataset.\n",
        "| model | other dataset | n own val | n other | AUROC | flagged (other) "
        "| flagged (own val) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['ood_source']} | {r['n_in']} | {r['n_out']} | "
            f"{r['auroc']:.4f} | {r['flagged_out']:.1%} | {r['flagged_in']:.1%} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
