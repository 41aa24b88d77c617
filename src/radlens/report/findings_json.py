"""``findings.json``: the versioned machine-readable result of one study, and back.

Schema (``schema`` = ``radlens.findings/2``), documented in ``docs/findings-json.md``::

    {schema, radlens_version, study_instance_uid, priority, modalities,
     series: [{series_instance_uid, modality, body_part, n_instances, models,
               skipped_reason, warnings,
               findings: [{code, label, probability, threshold, positive, model_name,
                           model_version, sop_instance_uid, frame, box_px, grade,
                           grade_label, ood_score, ood_flag, ood_feature_score,
                           ood_input_score, ood_reasons: [{statistic, z}], trust,
                           warnings, detected, counted,
                           measurements: [{code, label, value, unit, low, high,
                                           method, note}],
                           outline_px, grade_probabilities}]}],
     rejected: [{location, kind, reason}], warnings, timings_s, disclaimer}

No patient identifiers are written. Box coordinates are source-image pixels
(``[x0, y0, x1, y1]``, column then row); ``outline_px`` is the closed outline a measurement
was made on (the fitted head ellipse: ``OUTLINE_POINTS`` ``[x, y]`` points), or null.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radlens import __version__
from radlens.domain.findings import (
    Box,
    Finding,
    Measurement,
    Priority,
    RejectedInput,
    SeriesResult,
    StudyResult,
)

SCHEMA = "radlens.findings/2"
DISCLAIMER = "AI-generated draft - requires physician review; not for primary diagnosis."
# An ellipse drawn through 64 points differs from the true curve by under 0.2% of its
# radius: invisible at any zoom a reader uses, and a small document.
OUTLINE_POINTS = 64


def outline_to_list(outline: np.ndarray | None) -> list[list[float]] | None:
    """At most ``OUTLINE_POINTS`` evenly taken points of an outline, rounded to 0.1 px."""
    if outline is None or len(outline) == 0:
        return None
    step = max(1, -(-len(outline) // OUTLINE_POINTS))
    return [[round(float(x), 1), round(float(y), 1)] for x, y in outline[::step]]


def finding_to_dict(f: Finding) -> dict[str, Any]:
    return {
        "code": f.code,
        "label": f.label,
        "probability": round(f.probability, 6),
        "threshold": round(f.threshold, 6),
        "positive": f.positive,
        "model_name": f.model_name,
        "model_version": f.model_version,
        "sop_instance_uid": f.sop_instance_uid,
        "frame": f.frame,
        "box_px": None
        if f.box is None
        else [round(v, 1) for v in (f.box.x0, f.box.y0, f.box.x1, f.box.y1)],
        "grade": f.grade,
        "grade_label": f.grade_label,
        "ood_score": f.ood_score,
        "ood_flag": f.ood_flag,
        "ood_feature_score": f.ood_feature_score,
        "ood_input_score": f.ood_input_score,
        "ood_reasons": [{"statistic": name, "z": z} for name, z in f.ood_reasons],
        "trust": "low: input unlike training data" if f.ood_flag else "normal",
        "warnings": list(f.warnings),
        "detected": f.detected,
        "counted": f.counted,
        "measurements": [
            {
                "code": m.code,
                "label": m.label,
                "value": m.value,
                "unit": m.unit,
                "low": m.low,
                "high": m.high,
                "method": m.method,
                "note": m.note,
            }
            for m in f.measurements
        ],
        "outline_px": outline_to_list(f.outline_px),
        "grade_probabilities": [
            {"label": label, "probability": p} for label, p in f.grade_probabilities
        ]
        or None,
    }


def to_json(result: StudyResult, modalities: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``findings.json`` document for a study result."""
    return {
        "schema": SCHEMA,
        "radlens_version": __version__,
        "study_instance_uid": result.study_instance_uid,
        "priority": result.priority.name.lower(),
        "modalities": list(modalities),
        "series": [
            {
                "series_instance_uid": s.series_instance_uid,
                "modality": s.modality,
                "body_part": s.body_part,
                "n_instances": s.n_instances,
                "models": list(s.models),
                "skipped_reason": s.skipped_reason,
                "warnings": list(s.warnings),
                "findings": [finding_to_dict(f) for f in s.findings],
            }
            for s in result.series
        ],
        "rejected": [
            {"location": r.location, "kind": r.kind, "reason": r.reason} for r in result.rejected
        ],
        "warnings": list(result.warnings),
        "timings_s": {k: round(v, 4) for k, v in result.timings_s.items()},
        "disclaimer": DISCLAIMER,
    }


def finding_from_dict(doc: dict[str, Any]) -> Finding:
    """A finding back from its ``findings.json`` entry (without its heatmap)."""
    box = doc.get("box_px")
    outline = doc.get("outline_px")
    return Finding(
        code=doc["code"],
        label=doc["label"],
        probability=float(doc["probability"]),
        threshold=float(doc["threshold"]),
        model_name=doc["model_name"],
        model_version=doc["model_version"],
        sop_instance_uid=doc.get("sop_instance_uid", ""),
        frame=int(doc.get("frame", 0)),
        box=None if box is None else Box(*(float(v) for v in box)),
        grade=doc.get("grade"),
        grade_label=doc.get("grade_label", ""),
        ood_score=doc.get("ood_score"),
        ood_flag=bool(doc.get("ood_flag", False)),
        ood_feature_score=doc.get("ood_feature_score"),
        ood_input_score=doc.get("ood_input_score"),
        ood_reasons=tuple((r["statistic"], float(r["z"])) for r in doc.get("ood_reasons", ())),
        warnings=tuple(doc.get("warnings", ())),
        detected=bool(doc.get("detected", False)),
        counted=bool(doc.get("counted", False)),
        measurements=tuple(
            Measurement(
                code=m["code"],
                label=m["label"],
                value=None if m.get("value") is None else float(m["value"]),
                unit=m["unit"],
                low=None if m.get("low") is None else float(m["low"]),
                high=None if m.get("high") is None else float(m["high"]),
                method=m.get("method", ""),
                note=m.get("note", ""),
            )
            for m in doc.get("measurements", ())
        ),
        outline_px=None if not outline else np.asarray(outline, np.float64).reshape(-1, 2),
        grade_probabilities=tuple(
            (g["label"], float(g["probability"])) for g in doc.get("grade_probabilities") or ()
        ),
    )


def from_json(document: dict[str, Any]) -> StudyResult:
    """The study result a ``findings.json`` document describes (heatmaps are not in it).

    Keys added by the store (``id``, ``has_heatmap``) are ignored.

    Example:
        >>> from radlens.domain.findings import StudyResult
        >>> from_json(to_json(StudyResult("1.2.3", ()))).study_instance_uid
        '1.2.3'
    """
    if document.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} document: schema {document.get('schema')!r}")
    return StudyResult(
        study_instance_uid=document["study_instance_uid"],
        series=tuple(
            SeriesResult(
                series_instance_uid=s["series_instance_uid"],
                modality=s["modality"],
                body_part=s["body_part"],
                n_instances=int(s["n_instances"]),
                models=tuple(s.get("models", ())),
                findings=tuple(finding_from_dict(f) for f in s.get("findings", ())),
                skipped_reason=s.get("skipped_reason", ""),
                warnings=tuple(s.get("warnings", ())),
            )
            for s in document["series"]
        ),
        priority=Priority[document.get("priority", "routine").upper()],
        timings_s=dict(document.get("timings_s", {})),
        warnings=tuple(document.get("warnings", ())),
        rejected=tuple(
            RejectedInput(r["location"], r["kind"], r["reason"])
            for r in document.get("rejected", ())
        ),
    )
