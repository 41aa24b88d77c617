"""``analyze``: files, folders or zips in; one output folder per study out.

Per study: ``findings.json`` (see ``report.findings_json``), one overlay PNG per analyzed
image and ``report.md``; with ``fhir=True`` also ``fhir.json`` (a FHIR R4 transaction Bundle,
see ``report.fhir``); with ``dicom_results=True`` also the DICOM result objects
``sr.dcm``, ``pm_<n>.dcm`` and ``seg_<n>.dcm`` (see ``report.dicom_results``). This is what
``radlens analyze`` and ``radlens demo`` call.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from radlens.domain.findings import RejectedInput, StudyResult
from radlens.domain.imaging import Study
from radlens.domain.reports import PriorStudy
from radlens.inference.backends import Backend
from radlens.io.raster import write_png
from radlens.io.scan import scan
from radlens.models.registry import InstalledModel
from radlens.pipeline import onnx_backends, process_study
from radlens.report import require_result_libraries
from radlens.report.compose import compose_markdown
from radlens.report.findings_json import to_json

# Real pydicom-data samples the demo reads: CR chest, CR extremity, CT, MR (single and
# multi-frame), US and NM, in JPEG 2000, JPEG lossless and uncompressed encodings.
DEMO_FILES = (
    "RG1_J2KR.dcm",
    "RG3_J2KR.dcm",
    "693_J2KR.dcm",
    "MR-SIEMENS-DICOM-WithOverlays.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "US1_J2KR.dcm",
    "JPEG-LL.dcm",
)


@dataclass(frozen=True)
class StudyOutput:
    study: Study
    result: StudyResult
    folder: Path


@dataclass(frozen=True)
class AnalyzeRun:
    """What one ``analyze`` call did."""

    outputs: tuple[StudyOutput, ...]
    rejected: tuple[RejectedInput, ...]
    warnings: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """0: everything analyzed; 2: some input rejected (see ``docs/cli.md``)."""
        return 2 if self.rejected else 0


def demo_inputs() -> list[Path]:
    """Paths of the demo files inside the installed ``pydicom-data`` package.

    Raises:
        ModuleNotFoundError: pydicom-data is not installed (``pip install radlens[demo]``).
    """
    spec = importlib.util.find_spec("data_store")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the demo needs pydicom-data: pip install 'radlens[demo]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return [folder / name for name in DEMO_FILES]


def _folder_name(study: Study) -> str:
    # Study UIDs are validated as DICOM UIDs by io; keep the name safe regardless.
    return re.sub(r"[^0-9A-Za-z._-]", "_", study.study_instance_uid)[-64:] or "study"


def analyze(
    inputs: Sequence[Path],
    out_dir: Path,
    models: list[InstalledModel],
    backend_for: Callable[[InstalledModel], Backend] | None = None,
    on_study: Callable[[StudyOutput], None] | None = None,
    modality: str = "",
    body_part: str = "",
    fhir: bool = False,
    dicom_results: bool = False,
    clinical_notes: str = "",
    pixel_size_mm: float | None = None,
) -> AnalyzeRun:
    """Scan ``inputs``, analyze every study and write its outputs under ``out_dir``.

    ``report.md`` reads ``clinical_notes`` (free text, a prior report, or HL7 v2 ORM/ORU
    text; the same for every study of the run) beside each study's DICOM reason for study,
    and compares each study with the latest earlier study of the same patient (same
    Patient ID, earlier Study Date and Time) among the studies of this run.
    ``pixel_size_mm`` is the pixel side of PNG/JPEG inputs, for measuring models.

    Raises:
        InputError: the inputs as a whole cannot be used (missing path, empty folder).
        ConfigError: FHIR or DICOM results asked for without ``radlens[reports]``.
    """
    require_result_libraries(fhir=fhir, dicom_results=dicom_results)
    found = scan(list(inputs), modality=modality, body_part=body_part)
    rejected = [RejectedInput(e.path or "", e.kind, e.reason) for e in found.rejected]
    backend_for = backend_for or onnx_backends()
    outputs = []
    notes: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    priors = prior_uids(found.studies)
    wanted = set(priors.values())
    done: dict[str, PriorStudy] = {}
    waiting: list[tuple[Study, StudyResult, Path]] = []  # their prior comes later in the run
    for study in found.studies:
        analysis = process_study(study, models, backend_for, pixel_size_mm=pixel_size_mm)
        folder = out_dir / _folder_name(study)
        folder.mkdir(parents=True, exist_ok=True)
        for overlay in analysis.overlays:
            write_png(folder / overlay.name, overlay.rgb)
        document = to_json(analysis.result, study.modalities)
        (folder / "findings.json").write_text(json.dumps(document, indent=2) + "\n", "utf-8")
        uid = study.study_instance_uid
        if uid in wanted:
            done[uid] = as_prior(study, analysis.result)
        prior = priors.get(uid)
        if prior is None or prior in done:
            _write_report(
                folder, study, analysis.result, done.get(prior or ""), clinical_notes, fhir
            )
        else:
            waiting.append((study, _without_arrays(analysis.result), folder))
        if dicom_results:
            notes.extend(_write_dicom_results(folder, study, analysis.result))
        rejected.extend(analysis.result.rejected)
        output = StudyOutput(study, analysis.result, folder)
        outputs.append(output)
        if on_study:
            on_study(output)
    for study, result, folder in waiting:
        prior_study = done[priors[study.study_instance_uid]]
        _write_report(folder, study, result, prior_study, clinical_notes, fhir)
    return AnalyzeRun(tuple(outputs), tuple(rejected), (*found.warnings, *notes))


def prior_uids(studies: Sequence[Study]) -> dict[str, str]:
    """Study UID -> UID of the latest earlier study of the same patient among ``studies``
    (same non-empty Patient ID, earlier Study Date and Time; undated studies have none)."""
    by_patient: dict[str, list[tuple[str, str]]] = {}
    for s in studies:
        if s.patient.patient_id.strip() and s.when:
            by_patient.setdefault(s.patient.patient_id.strip(), []).append(
                (s.when, s.study_instance_uid)
            )
    found = {}
    for dated in by_patient.values():
        dated.sort()
        for i, (when, uid) in enumerate(dated):
            earlier = [u for w, u in dated[:i] if w < when]
            if earlier:
                found[uid] = earlier[-1]
    return found


def as_prior(study: Study, result: StudyResult) -> PriorStudy:
    """The study as a prior of a later one: date, description and findings."""
    when = study.when
    return PriorStudy(
        study.study_instance_uid,
        f"{when[:4]}-{when[4:6]}-{when[6:8]}" if when else "",
        study.description or study.requested_procedure,
        _without_arrays(result).findings,
    )


def _without_arrays(result: StudyResult) -> StudyResult:
    """The result without heatmaps and masks (what a report needs, kept small)."""
    series = tuple(
        replace(s, findings=tuple(replace(f, heatmap=None, mask=None) for f in s.findings))
        for s in result.series
    )
    return replace(result, series=series)


def _write_report(
    folder: Path,
    study: Study,
    result: StudyResult,
    prior: PriorStudy | None,
    notes: str,
    fhir: bool,
) -> None:
    """``report.md``, and with ``fhir`` the Bundle whose presentedForm is that same text."""
    text = compose_markdown(study, result, prior, notes)
    (folder / "report.md").write_text(text, "utf-8")
    if fhir:
        # Imported here: fhir.resources (pydantic models) takes about a third of a second
        # to import, paid only with --fhir (radlens analyze cold start, docs/edge.md).
        from radlens.report.fhir import to_fhir

        bundle = to_fhir(study, result, draft=text)
        (folder / "fhir.json").write_text(json.dumps(bundle, indent=2) + "\n", "utf-8")


def _write_dicom_results(folder: Path, study: Study, result: StudyResult) -> list[str]:
    """Write the study's DICOM result objects; return why any could not be made."""
    # Imported here: highdicom takes a quarter of a second to import, paid only when asked.
    from radlens.report.dicom_results import to_dicom_results
    from radlens.report.equipment import to_bytes

    made = to_dicom_results(study, result)
    for obj in made.objects:
        (folder / obj.name).write_bytes(to_bytes(obj.dataset))
    return [f"{folder.name}: {reason}" for reason in made.skipped]
