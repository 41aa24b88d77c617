"""``process_study``: the only place that knows the order of the steps.

    study -> route each series -> load images -> predict -> explain (overlays) -> triage

The CLI, the server and the batch engine all call this function, so a result is the same
whichever door the study came through.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radlens.domain.findings import Finding, RejectedInput, SeriesResult, StudyResult
from radlens.domain.imaging import Image, ImageLayout, Series, Study
from radlens.errors import InputError
from radlens.explain.overlay import render_overlay
from radlens.inference.backends import Backend, OnnxBackend
from radlens.inference.detection import detect_findings
from radlens.inference.ood import card_input_stats, stats_for
from radlens.inference.predict import ood_score, predict
from radlens.inference.segment import segment
from radlens.io.load import load_images
from radlens.models.card import Task
from radlens.models.registry import InstalledModel, applies, route, series_shape
from radlens.triage.priority import study_priority
from radlens.warning_scopes import recording


@dataclass(frozen=True, eq=False)
class Overlay:
    """A rendered overlay for one analyzed image."""

    name: str
    rgb: np.ndarray = field(repr=False)


@dataclass(frozen=True, eq=False)
class Analysis:
    """A study's result plus what was rendered for people to look at."""

    result: StudyResult
    overlays: tuple[Overlay, ...] = ()


def onnx_backends(
    threads: int = 1, prefer_int8: bool = True
) -> Callable[[InstalledModel], Backend]:
    """Backend factory used by default: one cached ONNX Runtime session per model.

    A model's static INT8 variant is used when its card records one (kept only when it is
    faster and its validation AUC is within the gate; see ``radlens quantize``).
    """

    def make(model: InstalledModel) -> Backend:
        return OnnxBackend(model.runtime_weights(prefer_int8), threads=threads)

    return make


def process_study(
    study: Study,
    models: list[InstalledModel],
    backend_for: Callable[[InstalledModel], Backend] | None = None,
    render: bool = True,
    pixel_size_mm: float | None = None,
) -> Analysis:
    """Analyze every series of ``study`` with the models that apply to it.

    A series that cannot be decoded is reported in ``rejected`` with its typed reason;
    the rest of the study is still analyzed. ``pixel_size_mm`` is the pixel side for
    images whose files do not state it (PNG, JPEG), used by measuring models.
    """
    backend_for = backend_for or onnx_backends()
    timings: dict[str, float] = {"decode": 0.0, "preprocess": 0.0, "inference": 0.0, "explain": 0.0}
    series_results, rejected, overlays = [], [], []
    read_warnings: list[str] = []
    for series in study.series:
        chosen = route(series, models)
        if not series.has_pixels:
            series_results.append(_series_result(series, skipped_reason=chosen.reason))
            continue
        # Every image is decoded, also where no model applies: a broken image in a study
        # is reported to the reader, never passed over in silence.
        clock = time.perf_counter()
        try:
            # Decoding re-reads each file: keep its read warnings (which scan already
            # reported to the user) in the result instead of re-emitting them.
            with recording() as caught:
                images = load_images(series)
            read_warnings.extend(str(w.message) for w in caught)
        except InputError as exc:
            rejected.append(RejectedInput(exc.path or "", exc.kind, exc.reason))
            series_results.append(
                _series_result(series, skipped_reason=f"could not be read: {exc.reason}")
            )
            continue
        timings["decode"] += time.perf_counter() - clock
        if not chosen.models:
            mismatch = _content_unlike_tags(series, images, models, backend_for)
            series_results.append(
                _series_result(series, skipped_reason=chosen.reason, warnings=mismatch)
            )
            continue
        findings: list[Finding] = []
        for index, image in enumerate(images):
            image_findings = [
                f
                for model in chosen.models
                for f in _run_model(model, image, study, backend_for, timings, pixel_size_mm)
            ]
            findings.extend(image_findings)
            if render:
                clock = time.perf_counter()
                overlays.append(_overlay(series.series_instance_uid, index, image, image_findings))
                timings["explain"] += time.perf_counter() - clock
        series_warnings = chosen.notes + tuple(sorted({w for f in findings for w in f.warnings}))
        series_results.append(
            _series_result(
                series,
                models=tuple(m.card.name for m in chosen.models),
                findings=tuple(findings),
                warnings=series_warnings,
            )
        )
    result = StudyResult(
        study.study_instance_uid,
        tuple(series_results),
        priority=study_priority(f for s in series_results for f in s.findings),
        timings_s=timings,
        warnings=tuple(dict.fromkeys(read_warnings)),
        rejected=tuple(rejected),
    )
    return Analysis(result, tuple(overlays))


def _run_model(
    model: InstalledModel,
    image: Image,
    study: Study,
    backend_for: Callable[[InstalledModel], Backend],
    timings: dict[str, float],
    pixel_size_mm: float | None,
) -> list[Finding]:
    """The findings of one model on one image: ``segment`` for segmentation models,
    ``detect_findings`` (one finding per box) for detectors."""
    if model.card.task is Task.SEGMENTATION:
        return segment(
            image,
            model.card,
            backend_for(model),
            study.patient,
            timings,
            pixel_size_mm,
            card_input_stats(model.folder, model.card),
        )
    if model.card.task is Task.DETECTION:
        return detect_findings(
            image,
            model.card,
            backend_for(model),
            study.patient,
            timings,
            card_input_stats(model.folder, model.card),
            stats_for(model.folder, model.card.ood),
        )
    return predict(
        image,
        model.card,
        backend_for(model),
        study.patient,
        timings,
        stats_for(model.folder, model.card.ood),
    )


def _content_unlike_tags(
    series: Series,
    images: list[Image],
    models: list[InstalledModel],
    backend_for: Callable[[InstalledModel], Backend],
) -> tuple[str, ...]:
    """Warnings when an unrouted series looks like a model's training data.

    Every installed model with an OOD score reads the first image; a score under its
    threshold means the image resembles that model's training images even though the
    series' tags (modality, body part, view) kept it away, so the tags may be wrong.
    """
    if not images:
        return ()
    dims, color = series_shape(series)
    warnings = []
    for model in models:
        spec = model.card.ood
        stats = stats_for(model.folder, spec) if spec is not None else None
        if spec is None or stats is None:
            continue
        score = ood_score(images[0], model.card, backend_for(model), stats)
        if score is not None and score < 1.0:  # the score is a multiple of its threshold
            tagged = " ".join(t for t in (series.modality, series.body_part) if t)
            warnings.append(
                f"image content resembles the training data of {model.card.name} "
                f"({model.card.finding_label}), which did not read it "
                f"({applies(model.card, series, dims, color)}; series tagged "
                f"{tagged or 'without modality'}): check the DICOM tags"
            )
    return tuple(warnings)


def _overlay(series_uid: str, index: int, image: Image, findings: list[Finding]) -> Overlay:
    if image.layout is ImageLayout.ZYX:
        # A volume is shown on the slice where the most probable finding's map peaks.
        top = max(findings, key=lambda f: f.probability, default=None)
        array = image.array[top.frame if top else image.array.shape[0] // 2]
    else:
        array = image.array[0] if image.layout.is_multiframe else image.array
    name = f"overlay_{series_uid[-12:]}_{index}.png"
    return Overlay(name, render_overlay(array, image.window, findings))


def _series_result(series: Series, **fields: Any) -> SeriesResult:
    return SeriesResult(
        series.series_instance_uid,
        series.modality,
        series.body_part,
        len(series.instances),
        **fields,
    )
