"""``to_dicom_sr`` / ``read_dicom_sr``: findings as a TID 1500 Measurement Report.

The document is a Comprehensive 3D SR (PS3.3 A.35.13) in the source study: Study Instance
UID, patient and study modules come from the analyzed images (highdicom copies them from
the evidence), it gets a new series, and General Equipment says ``radlens`` and its
version. The content tree (PS3.16 TID 1500) holds:

- observation context (TID 1001): a Device observer (TID 1004) named after radlens;
- procedure reported: the study's Procedure Code Sequence, else one per modality (CID 100);
- one measurement group per finding (TID 1501, or TID 1410 when the finding has a box;
  a finding with measurements, such as a head circumference in ``mm`` and a gestational
  age in ``wk``, carries them as numeric measurements with their LOINC concept and UCUM
  unit, :data:`radlens.domain.coding.MEASUREMENTS`):
  tracking identifier and UID; ``Finding`` = the finding's concept
  (:mod:`radlens.domain.coding`); finding site from Body Part Examined when mapped;
  algorithm identification (TID 4019: model name, version, operating threshold);
  qualitative evaluations "<finding> = Present/Absent" (the card's operating point),
  "Input unlike training data - low trust = Yes/No" and, for a flagged input, one "Unlike
  training data in" (or "Somewhat unlike training data in", below ``REASON_Z``) per reason:
  the input statistic and its side (``<name>+`` above training, ``<name>-`` below) coded
  with its plain words (``radlens.inference.input_stats.describe``); measurements
  "Certainty of Finding" (the calibrated probability, UCUM ``1``), the out-of-distribution
  score (UCUM ``1``) and the severity grade (UCUM ``{grade}``) when there are such; the box
  as an SCOORD POLYLINE ``Image Region`` on the source image (SOP class, instance, frame),
  or else a reference to the source image of the group.

``docs/dicom-results.md`` says why each concept was chosen. :func:`read_dicom_sr` reads
such a document back (with highdicom's own content accessors) into :class:`SrFinding`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    FindingSite,
    GraphicTypeValues,
    ImageRegion,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    SourceImageForMeasurementGroup,
    SourceImageForRegion,
    TrackingIdentifier,
    ValueTypeValues,
)
from highdicom.sr.utils import find_content_items
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import SegmentationStorage, generate_uid

from radlens.domain.coding import (
    ABSENT,
    ARTIFICIAL_INTELLIGENCE,
    CERTAINTY_OF_FINDING,
    GRADE_UNITS,
    LOCAL,
    NO,
    NO_UNITS,
    OOD_FLAG,
    OOD_REASON,
    OOD_REASON_LEANING,
    OOD_SCORE,
    PRESENT,
    SEVERITY,
    YES,
    Concept,
    body_site,
    finding_concept,
    measurement_concept,
    procedure_concept,
    unit_concept,
)
from radlens.domain.findings import Box, Finding
from radlens.errors import InputError
from radlens.inference.input_stats import describe
from radlens.inference.ood import LEANING, REASON_Z
from radlens.report.equipment import (
    DEVICE_SERIAL_NUMBER,
    DEVICE_UID,
    LOCAL_SCHEME,
    MANUFACTURER,
    MODEL_NAME,
    SERIES_SUFFIX,
    SOFTWARE_VERSIONS,
    coded,
    concept_of,
)
from radlens.warning_scopes import ignoring

SERIES_DESCRIPTION = f"radlens findings - {SERIES_SUFFIX}"
SERIES_NUMBER = 9902
THRESHOLD_PARAMETER = "operating threshold="

_ALGORITHM_NAME = CodedConcept("111001", "DCM", "Algorithm Name")
_ALGORITHM_VERSION = CodedConcept("111003", "DCM", "Algorithm Version")
_ALGORITHM_PARAMETERS = CodedConcept("111002", "DCM", "Algorithm Parameters")
_ABSENT_VALUES = {ABSENT.value, "272519000"}  # 272519000: the older CID 240 "Absent"


@dataclass(frozen=True)
class SrFinding:
    """One measurement group of a radlens SR, as read back.

    ``frame`` is 0-based like :attr:`Finding.frame`; ``box`` is in source pixels.
    """

    concept: Concept
    present: bool
    probability: float
    threshold: float | None
    model_name: str
    model_version: str
    sop_instance_uid: str
    frame: int = 0
    box: Box | None = None
    grade: int | None = None
    ood_flag: bool = False
    ood_score: float | None = None
    tracking_uid: str = ""
    measurements: tuple[tuple[Concept, float, str], ...] = ()
    """Other numeric measurements: (concept, value, UCUM unit code)."""
    ood_reasons: tuple[tuple[str, str], ...] = ()
    """Why a flagged input is unlike training data: (statistic and side, such as
    ``level_gaps_decoded+``; its plain words, with " (somewhat)" for a leaning one)."""


def to_dicom_sr(
    sources: Sequence[Dataset],
    findings: Iterable[Finding],
    series_uid: str = "",
    instance_number: int = 1,
) -> Comprehensive3DSR:
    """A Comprehensive 3D SR (TID 1500) of ``findings`` in the study of ``sources``.

    ``sources`` are the analyzed images (headers are enough); each finding must name one
    of them by its ``sop_instance_uid``.

    Raises:
        InputError: no findings, no sources, sources from several studies, a finding about
            an image not among the sources, or a source lacking what the SR copies.

    Example:
        >>> cr = pydicom.dcmread("cr.dcm", stop_before_pixels=True)  # doctest: +SKIP
        >>> sr = to_dicom_sr([cr], findings)  # doctest: +SKIP
        >>> [f.present for f in read_dicom_sr(sr)]  # doctest: +SKIP
        [True]
    """
    chosen = list(findings)
    if not chosen:
        raise InputError(None, "no findings to report: a DICOM SR needs at least one")
    by_uid = _sources_by_uid(sources)
    groups = []
    for number, finding in enumerate(chosen, start=1):
        source = by_uid.get(finding.sop_instance_uid)
        if source is None:
            raise InputError(
                None,
                f"finding {finding.code!r} of {finding.model_name} refers to an image that is "
                "not among the SR's sources",
            )
        groups.append(_group(finding, source, number))
    report = MeasurementReport(
        observation_context=ObservationContext(
            observer_device_context=ObserverContext(
                observer_type=codes.cid270.Device,
                observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
                    uid=DEVICE_UID,
                    name=f"{MODEL_NAME} {SOFTWARE_VERSIONS}",
                    manufacturer_name=MANUFACTURER,
                    model_name=MODEL_NAME,
                ),
            )
        ),
        procedure_reported=procedures_reported(sources),
        imaging_measurements=groups,
    )
    try:
        with ignoring():  # highdicom notes on source attributes it copies
            return Comprehensive3DSR(
                evidence=list(sources),
                content=report[0],
                series_instance_uid=series_uid or generate_uid(),
                series_number=SERIES_NUMBER,
                sop_instance_uid=generate_uid(),
                instance_number=instance_number,
                manufacturer=MANUFACTURER,
                manufacturer_model_name=MODEL_NAME,
                software_versions=SOFTWARE_VERSIONS,
                device_serial_number=DEVICE_SERIAL_NUMBER,
                series_description=SERIES_DESCRIPTION,
                is_complete=True,
                coding_schemes=[LOCAL_SCHEME],
            )
    except (AttributeError, ValueError) as exc:
        raise InputError(None, f"cannot make a DICOM SR from these sources: {exc}") from exc


def read_dicom_sr(dataset: Dataset) -> list[SrFinding]:
    """The findings of a radlens TID 1500 SR, in document order.

    Raises:
        InputError: ``dataset`` is not a TID 1500 Measurement Report.
    """
    try:
        sr = Comprehensive3DSR.from_dataset(dataset)
        report = MeasurementReport.from_sequence([sr])
    except (AttributeError, ValueError, IndexError) as exc:
        raise InputError(None, f"not a TID 1500 Measurement Report: {exc}") from exc
    groups: list[
        MeasurementsAndQualitativeEvaluations | PlanarROIMeasurementsAndQualitativeEvaluations
    ] = [*report.get_image_measurement_groups(), *report.get_planar_roi_measurement_groups()]
    found = [_read_group(group) for group in groups]
    # Document order: the tracking identifiers are numbered "#1", "#2", ...
    return [record for _, record in sorted(found, key=lambda pair: pair[0])]


def _sources_by_uid(sources: Sequence[Dataset]) -> dict[str, Dataset]:
    if not sources:
        raise InputError(None, "no source images: a DICOM result object joins their study")
    studies = {str(s.get("StudyInstanceUID", "")) for s in sources}
    if len(studies) != 1 or "" in studies:
        raise InputError(None, "source images must all belong to one study")
    return {str(s.SOPInstanceUID): s for s in sources}


def procedures_reported(sources: Sequence[Dataset]) -> list[CodedConcept]:
    """The study's Procedure Code Sequence when it is well formed, else per modality."""
    try:
        listed = [
            CodedConcept(
                str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning)
            )
            for item in sources[0].get("ProcedureCodeSequence", [])
        ]
    except (AttributeError, ValueError):
        listed = []
    if listed:
        return listed
    modalities = dict.fromkeys(str(s.get("Modality", "")) for s in sources)
    return list({c.value: coded(c) for c in map(procedure_concept, modalities)}.values())


def is_2d_reference(source: Dataset, frame: int) -> bool:
    """Whether ``frame`` (0-based) of ``source`` is the 2D image a finding was made on.

    A 3D model's finding names the first instance of its volume and the slice where its
    map peaks, which is no frame of that instance; such a finding gets no region.
    """
    if source.get("SOPClassUID") == SegmentationStorage:
        return False  # only 3D models read masks; their slices are merged frames
    frames = int(source.get("NumberOfFrames", 1) or 1)
    return 0 <= frame < frames


def _frame_numbers(source: Dataset, frame: int) -> list[int] | None:
    multi = "NumberOfFrames" in source
    return [frame + 1] if multi and is_2d_reference(source, frame) else None


def _group(
    finding: Finding, source: Dataset, number: int
) -> MeasurementsAndQualitativeEvaluations | PlanarROIMeasurementsAndQualitativeEvaluations:
    concept = finding_concept(finding.code, finding.label)
    evaluations = [
        QualitativeEvaluation(coded(concept), coded(PRESENT if finding.positive else ABSENT)),
        QualitativeEvaluation(coded(OOD_FLAG), coded(YES if finding.ood_flag else NO)),
        *(_reason(name, z) for name, z in finding.ood_reasons),
    ]
    measurements = [Measurement(coded(CERTAINTY_OF_FINDING), finding.probability, coded(NO_UNITS))]
    if finding.ood_score is not None:
        measurements.append(Measurement(coded(OOD_SCORE), finding.ood_score, coded(NO_UNITS)))
    if finding.grade is not None:
        measurements.append(Measurement(coded(SEVERITY), finding.grade, coded(GRADE_UNITS)))
    for measured in finding.measurements:
        if measured.value is not None:  # one without a value says why in findings.json
            measurements.append(
                Measurement(
                    coded(measurement_concept(measured.code, measured.label)),
                    measured.value,
                    coded(unit_concept(measured.unit)),
                )
            )
    site = body_site(str(source.get("BodyPartExamined", "")))
    tracking = TrackingIdentifier(
        uid=generate_uid(), identifier=f"{finding.model_name} {finding.code} #{number}"
    )
    algorithm = AlgorithmIdentification(
        name=finding.model_name,
        version=finding.model_version,
        parameters=[f"{THRESHOLD_PARAMETER}{finding.threshold:.6g}"],
        family=coded(ARTIFICIAL_INTELLIGENCE),
    )
    sites = [FindingSite(coded(site))] if site else None
    sop_class, sop_uid = str(source.SOPClassUID), str(source.SOPInstanceUID)
    frames = _frame_numbers(source, finding.frame)
    if finding.box is not None and is_2d_reference(source, finding.frame):
        b = finding.box
        # SCOORD pixel coordinates (PS3.3 C.18.6.1.1): (0, 0) is the top left corner of the
        # top left pixel, so the box's corners are its edges; POLYLINE closed on itself.
        corners = np.array(
            [[b.x0, b.y0], [b.x1, b.y0], [b.x1, b.y1], [b.x0, b.y1], [b.x0, b.y0]], np.float32
        )
        region = ImageRegion(
            graphic_type=GraphicTypeValues.POLYLINE,
            graphic_data=corners,
            source_image=SourceImageForRegion(sop_class, sop_uid, frames),
        )
        return PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            referenced_region=region,
            finding_type=coded(concept),
            algorithm_id=algorithm,
            finding_sites=sites,
            measurements=measurements,
            qualitative_evaluations=evaluations,
        )
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_type=coded(concept),
        algorithm_id=algorithm,
        finding_sites=sites,
        measurements=measurements,
        qualitative_evaluations=evaluations,
        source_images=[SourceImageForMeasurementGroup(sop_class, sop_uid, frames)],
    )


def _reason(name: str, z: float) -> QualitativeEvaluation:
    """One reason a flagged input carries: its statistic and side, in plain words."""
    concept = OOD_REASON if abs(z) >= REASON_Z else OOD_REASON_LEANING
    side = Concept(f"{name}{'+' if z > 0 else '-'}", LOCAL, describe(name, z))
    return QualitativeEvaluation(coded(concept), coded(side))


def _read_reasons(
    group: MeasurementsAndQualitativeEvaluations | PlanarROIMeasurementsAndQualitativeEvaluations,
) -> tuple[tuple[str, str], ...]:
    """The reasons of a group, in order (several evaluations share a concept name)."""
    leaning = (OOD_REASON_LEANING.value, OOD_REASON_LEANING.scheme)
    reasons = []
    for e in group.get_qualitative_evaluations():
        name = (str(e.name.value), str(e.name.scheme_designator))
        if name in ((OOD_REASON.value, OOD_REASON.scheme), leaning):
            value = e[0].value
            words = str(value.meaning) + (LEANING if name == leaning else "")
            reasons.append((str(value.value), words))
    return tuple(reasons)


def _read_group(
    group: MeasurementsAndQualitativeEvaluations | PlanarROIMeasurementsAndQualitativeEvaluations,
) -> tuple[int, SrFinding]:
    finding_type = group.finding_type
    if finding_type is None:
        raise InputError(None, "SR measurement group without a Finding")
    evaluations = {
        (str(e.name.value), str(e.name.scheme_designator)): _code_value(e)
        for e in group.get_qualitative_evaluations()
    }
    presence = evaluations.get((str(finding_type.value), str(finding_type.scheme_designator)))
    ood = evaluations.get((OOD_FLAG.value, OOD_FLAG.scheme))
    numbers = {
        (str(m.name.value), str(m.name.scheme_designator)): float(m.value)
        for m in group.get_measurements()
    }
    probability = numbers.get((CERTAINTY_OF_FINDING.value, CERTAINTY_OF_FINDING.scheme))
    if presence is None or probability is None:
        raise InputError(None, "SR measurement group without presence or probability")
    grade = numbers.get((SEVERITY.value, SEVERITY.scheme))
    known = {(c.value, c.scheme) for c in (CERTAINTY_OF_FINDING, SEVERITY, OOD_SCORE)}
    others = tuple(
        (concept_of(m.name), float(m.value), str(m.unit.value))
        for m in group.get_measurements()
        if (str(m.name.value), str(m.name.scheme_designator)) not in known
    )
    texts = _algorithm_texts(group)
    sop_uid, frame, box = _reference(group)
    identifier = group.tracking_identifier or ""
    order = re.search(r"#(\d+)$", identifier)
    record = SrFinding(
        concept=concept_of(finding_type),
        present=presence not in _ABSENT_VALUES,
        probability=probability,
        threshold=_threshold(texts.get(_ALGORITHM_PARAMETERS.value, [])),
        model_name=next(iter(texts.get(_ALGORITHM_NAME.value, [])), ""),
        model_version=next(iter(texts.get(_ALGORITHM_VERSION.value, [])), ""),
        sop_instance_uid=sop_uid,
        frame=frame,
        box=box,
        grade=None if grade is None else int(round(grade)),
        ood_flag=ood == YES.value,
        ood_score=numbers.get((OOD_SCORE.value, OOD_SCORE.scheme)),
        tracking_uid=str(group.tracking_uid or ""),
        measurements=others,
        ood_reasons=_read_reasons(group),
    )
    return (int(order.group(1)) if order else 0), record


def _code_value(evaluation: QualitativeEvaluation) -> str:
    """The Code Value of a qualitative evaluation's answer (a CODE content item)."""
    return str(evaluation[0].value.value)  # a Code Value, or a Long Code Value


def _algorithm_texts(group: Sequence[Dataset]) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = {}
    for name in (_ALGORITHM_NAME, _ALGORITHM_VERSION, _ALGORITHM_PARAMETERS):
        items = find_content_items(group[0], name=name, value_type=ValueTypeValues.TEXT)
        texts[name.value] = [str(item.TextValue) for item in items]
    return texts


def _threshold(parameters: list[str]) -> float | None:
    for parameter in parameters:
        if parameter.startswith(THRESHOLD_PARAMETER):
            try:
                return float(parameter.removeprefix(THRESHOLD_PARAMETER))
            except ValueError:
                return None
    return None


def _reference(
    group: MeasurementsAndQualitativeEvaluations | PlanarROIMeasurementsAndQualitativeEvaluations,
) -> tuple[str, int, Box | None]:
    """The source image (SOP Instance UID, 0-based frame) and the box, if any."""
    if isinstance(group, PlanarROIMeasurementsAndQualitativeEvaluations):
        region = group.roi
        if isinstance(region, ImageRegion):
            points = np.asarray(region.value, np.float64)
            source = region.ContentSequence[0].ReferencedSOPSequence[0]
            box = Box(
                float(points[:, 0].min()),
                float(points[:, 1].min()),
                float(points[:, 0].max()),
                float(points[:, 1].max()),
            )
            return str(source.ReferencedSOPInstanceUID), _frame_of(source), box
        return "", 0, None
    images = group.source_images
    if not images:
        return "", 0, None
    item = images[0].ReferencedSOPSequence[0]
    return str(item.ReferencedSOPInstanceUID), _frame_of(item), None


def _frame_of(item: Dataset) -> int:
    numbers = item.get("ReferencedFrameNumber")
    if numbers is None:
        return 0
    first = (
        numbers[0] if isinstance(numbers, Sequence) and not isinstance(numbers, str) else numbers
    )
    return int(first) - 1
