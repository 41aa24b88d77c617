"""Robustness of the 2D models (issue 5, part 4).

* Clean vs corrupted val AUC per corruption and severity (radlens.evaluation.corruptions).
* OOD AUROC of the model's own score: clean val vs severity-5 corrupted val (goal >= 0.90).

Writes benchmarks/robustness.{json,md}. Calibration and reliability diagrams:
benchmarks/bench_calibration.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from radlens.evaluation.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from radlens.evaluation.evaluate import evaluate, prepare_batch
from radlens.evaluation.metrics import auc_binary
from radlens.inference.backends import OnnxBackend
from radlens.inference.ood import mahalanobis_scores, stats_for
from radlens.io.datasets import LabelledImages, read_labelled
from radlens.models.registry import InstalledModel, discover

HERE = Path(__file__).resolve().parent
MAX_VAL = 300


def data_of(model: InstalledModel, root: Path) -> Path:
    path = model.card.training.data.split(" (")[0]
    return root / path.split("shared/data/", 1)[-1]


def corrupted(val: LabelledImages, kind: str, severity: int) -> LabelledImages:
    images = [corrupt(im, kind, severity, seed=i) for i, im in enumerate(val.images)]
    return LabelledImages(images, val.labels, val.label_names, val.ids, val.source, val.split)


def ood_scores(model: InstalledModel, backend: OnnxBackend, images: list[np.ndarray]) -> np.ndarray:
    stats = stats_for(model.folder, model.card.ood)
    assert stats is not None and model.card.ood is not None
    out = [
        mahalanobis_scores(
            backend.run(prepare_batch(model.card, images[i : i + 64]))[model.card.ood.output],
            stats,
        )
        for i in range(0, len(images), 64)
    ]
    return np.concatenate(out)


def main() -> int:
    root = Path(os.environ.get("RADLENS_DATA", HERE.parent.parent / "shared" / "data"))
    if not root.exists():
        print(f"skip: no data at {root}")
        return 0
    rows = []
    for model in discover(include_disabled=True):
        card = model.card
        if card.input.dims != 2:
            continue
        val = read_labelled(data_of(model, root), "val", card.labels)
        backend = OnnxBackend(model.weights, threads=2)
        clean = evaluate(card, backend, val)
        if len(val) > MAX_VAL:
            val = val.sample(MAX_VAL)
            clean = evaluate(card, backend, val)
        clean_ood = ood_scores(model, backend, val.images)
        for kind in CORRUPTIONS:
            row = {"model": card.name, "corruption": kind, "clean_auc": clean.metrics["auc"]}
            for severity in SEVERITIES:
                bad = corrupted(val, kind, severity)
                row[f"auc_s{severity}"] = evaluate(card, backend, bad).metrics["auc"]
                if severity == 5:
                    s5 = ood_scores(model, backend, bad.images)
                    y = np.r_[np.zeros(len(clean_ood)), np.ones(len(s5))]
                    row["ood_auroc_s5"] = auc_binary(y == 1, np.r_[clean_ood, s5])
            rows.append(row)
            print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    result = {"date": time.strftime("%Y-%m-%d"), "rows": rows}
    (HERE / "robustness.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (HERE / "robustness.md").write_text(render(result), encoding="utf-8")
    return 0


def render(result: dict[str, list[dict[str, object]]] | dict[str, object]) -> str:
    rows = result["rows"]
    assert isinstance(rows, list)
    out = [
        "# Benchmark: robustness (issue 5, part 4)\n",
        f"Measured {result['date']} on 2 CPU cores. Val split (up to {MAX_VAL} images per "
        "model), corruptions from `radlens.evaluation.corruptions` at severities 1-5. "
        "`OOD AUROC s5`: the model's own out-of-distribution score separating clean val from "
        "severity-5 corrupted val (goal >= 0.90).\n",
        "| model | corruption | clean AUC | s1 | s2 | s3 | s4 | s5 | OOD AUROC s5 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        assert isinstance(r, dict)
        cells = [f"{r[f'auc_s{s}']:.3f}" for s in SEVERITIES]
        out.append(
            f"| {r['model']} | {r['corruption']} | {r['clean_auc']:.3f} | "
            + " | ".join(cells)
            + f" | {r['ood_auroc_s5']:.3f} |"
        )
    out.append("\nCalibration and reliability diagrams: `benchmarks/calibration.md`.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
