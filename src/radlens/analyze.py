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
from dataclasses import dataclass
from pathlib import Path

from radlens.domain.findings import RejectedInput, StudyResult
from radlens.domain.imaging import Study
from radlens.inference.backends import Backend
from radlens.io.raster import write_png
from radlens.io.scan import scan
from radlens.models.registry import InstalledModel
from radlens.pipeline import onnx_backends, process_study
from radlens.report.compose import compose_markdown
from radlens.report.fhir import to_fhir
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
) -> AnalyzeRun:
    """Scan ``inputs``, analyze every study and write its outputs under ``out_dir``.

    Raises:
        InputError: the inputs as a whole cannot be used (missing path, empty folder).
    """
    found = scan(list(inputs), modality=modality, body_part=body_part)
    rejected = [RejectedInput(e.path or "", e.kind, e.reason) for e in found.rejected]
    backend_for = backend_for or onnx_backends()
    outputs = []
    notes: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for study in found.studies:
        analysis = process_study(study, models, backend_for)
        folder = out_dir / _folder_name(study)
        folder.mkdir(parents=True, exist_ok=True)
        for overlay in analysis.overlays:
            write_png(folder / overlay.name, overlay.rgb)
        document = to_json(analysis.result, study.modalities)
        (folder / "findings.json").write_text(json.dumps(document, indent=2) + "\n", "utf-8")
        (folder / "report.md").write_text(compose_markdown(study, analysis.result), "utf-8")
        if fhir:
            bundle = to_fhir(study, analysis.result)
            (folder / "fhir.json").write_text(json.dumps(bundle, indent=2) + "\n", "utf-8")
        if dicom_results:
            notes.extend(_write_dicom_results(folder, study, analysis.result))
        rejected.extend(analysis.result.rejected)
        output = StudyOutput(study, analysis.result, folder)
        outputs.append(output)
        if on_study:
            on_study(output)
    return AnalyzeRun(tuple(outputs), tuple(rejected), (*found.warnings, *notes))


def _write_dicom_results(folder: Path, study: Study, result: StudyResult) -> list[str]:
    """Write the study's DICOM result objects; return why any could not be made."""
    # Imported here: highdicom takes a quarter of a second to import, paid only when asked.
    from radlens.report.dicom_results import to_dicom_results
    from radlens.report.equipment import to_bytes

    made = to_dicom_results(study, result)
    for obj in made.objects:
        (folder / obj.name).write_bytes(to_bytes(obj.dataset))
    return [f"{folder.name}: {reason}" for reason in made.skipped]
