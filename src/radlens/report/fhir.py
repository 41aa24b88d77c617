"""FHIR R4 output: a study's AI result as ``ImagingStudy``, ``DiagnosticReport``,
``Observation`` and ``Device`` resources, in a transaction ``Bundle``.

Library: ``fhir.resources`` 8.x. Its top-level package is FHIR R5; its ``R4B`` subpackage
(FHIR 4.3.0) is the R4 family it ships, and R4B changed none of the elements written here
from R4 (4.0.1), so the JSON is R4 JSON. Every resource is built through the library's
pydantic models, so an invalid one cannot be written. The library stays in this module.

What is written (docs/fhir.md has the full map):

- ``ImagingStudy``: identifier ``urn:dicom:uid`` = ``urn:oid:<Study Instance UID>`` (and the
  accession number), series with modality, body site and instances (SOP class and UID).
- ``DiagnosticReport``: LOINC 18748-4 "Diagnostic imaging study", category RAD; status
  ``preliminary`` for the AI draft, ``final`` once a radiologist signed (``SignedReport``);
  ``presentedForm`` is the text report (the draft of ``report/compose.py``, or the signed
  text) as base64 ``text/plain``; ``result`` points at the Observations.
- ``Observation`` per finding: the finding's concept (``domain/coding.py``), the calibrated
  probability as ``valueQuantity`` (UCUM ``1``), interpretation POS/NEG at the card's
  operating point, body site, ``derivedFrom`` the ImagingStudy, ``device`` the model;
  components for the severity grade and the out-of-distribution score and flag, and a note
  when the input is unlike the model's training data. Observations stay ``preliminary``:
  they are the AI's output, kept apart from the physician's signed text.
- ``Observation`` per measurement of a finding (a fetal head circumference, a gestational
  age): its LOINC concept as the SR uses it (``domain.coding.MEASUREMENTS``: 11984-2,
  18185-9), the value as ``valueQuantity`` in its UCUM unit (``mm``, ``wk``), the stated
  range (GA +/- 2 SD) and method as notes, ``derivedFrom`` the finding's Observation; a
  measurement that cannot be given (GA outside the formula's range) has
  ``dataAbsentReason`` ``not-applicable`` and a note saying why.
- ``Device`` per model version: name, type (DCM 123110 "Artificial Intelligence"), versions.

Ids are UUID v5 of the Study Instance UID (and the finding id, or the model name and
version), so exporting a study again gives the same resources. The Bundle is a
``transaction`` of ``PUT Type/id`` entries: posted to a FHIR server it is stored all or
nothing, and posting it again updates the same resources instead of adding copies. Inside
the Bundle, resources refer to each other by ``urn:uuid:`` full URLs; the REST reads
(:func:`fhir_resources`) use relative ``Type/id`` references instead.

The subject is a logical reference: the DICOM Patient ID as identifier and the patient's
name as display, with no Patient resource; unlike ``findings.json``, FHIR output therefore
holds patient identifiers.

Example:
    >>> from radlens.domain.findings import StudyResult
    >>> from radlens.domain.imaging import Study
    >>> bundle = to_fhir(Study("1.2.3", ()), StudyResult("1.2.3", ()))
    >>> bundle["type"], [e["resource"]["resourceType"] for e in bundle["entry"]]
    ('transaction', ['ImagingStudy', 'DiagnosticReport'])
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.resource import Resource

from radlens import __version__
from radlens.domain.coding import (
    ARTIFICIAL_INTELLIGENCE,
    DCM,
    DIAGNOSTIC_IMAGING_STUDY,
    GRADE_UNITS,
    NO_UNITS,
    OOD_FLAG,
    OOD_SCORE,
    SCHEME_URIS,
    SEVERITY,
    Concept,
    body_site,
    finding_concept,
    measurement_concept,
    unit_concept,
)
from radlens.domain.findings import Finding, Measurement, SeriesResult, StudyResult, finding_id
from radlens.domain.imaging import Patient, Series, Study
from radlens.domain.reports import SignedReport
from radlens.report.compose import compose_markdown, in_words
from radlens.report.findings_json import DISCLAIMER

FHIR_JSON = "application/fhir+json"
"""The FHIR JSON media type (FHIR R4 http.html#mime-type)."""

ID_NAMESPACE = uuid.UUID("9b0f3c1e-6a52-4d7e-8f4b-2c9d1e7a5b60")
"""Namespace of every radlens FHIR id; never change it, or re-exports stop matching."""

DICOM_UID = "urn:dicom:uid"
RFC_3986 = "urn:ietf:rfc:3986"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
NOT_APPLICABLE = {
    "coding": [
        {"system": DATA_ABSENT_REASON, "code": "not-applicable", "display": "Not Applicable"}
    ]
}

RADIOLOGY = {"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]}
IMAGING = {"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]}
POSITIVE = {"system": INTERPRETATION, "code": "POS", "display": "Positive"}
NEGATIVE = {"system": INTERPRETATION, "code": "NEG", "display": "Negative"}
ACCESSION = {"coding": [{"system": V2_0203, "code": "ACSN", "display": "Accession ID"}]}

LOW_TRUST = OOD_FLAG.meaning
"""The note on a finding whose input is unlike the model's training data."""

_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

Ref = Callable[[str, str], str]
"""How a resource refers to another one: (resource type, id) -> reference string."""


def _urn(_: str, resource_id: str) -> str:
    return f"urn:uuid:{resource_id}"


def _relative(resource_type: str, resource_id: str) -> str:
    return f"{resource_type}/{resource_id}"


# --- ids ---------------------------------------------------------------------------------


def _uuid(name: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, name))


def imaging_study_id(study_uid: str) -> str:
    """Id of a study's ``ImagingStudy``."""
    return _uuid(f"{study_uid}/ImagingStudy")


def report_id(study_uid: str) -> str:
    """Id of a study's ``DiagnosticReport``."""
    return _uuid(f"{study_uid}/DiagnosticReport")


def observation_id(study_uid: str, series_uid: str, finding: Finding) -> str:
    """Id of a finding's ``Observation``: the study and the finding id of the store."""
    return _uuid(f"{study_uid}/Observation/{finding_id(series_uid, finding)}")


def measurement_id(study_uid: str, series_uid: str, finding: Finding, code: str) -> str:
    """Id of the ``Observation`` of one measurement (``code``) of a finding."""
    return _uuid(f"{study_uid}/Observation/{finding_id(series_uid, finding)}/{code}")


def device_id(model_name: str, model_version: str) -> str:
    """Id of a model version's ``Device`` (the same for every study it read)."""
    return _uuid(f"Device/{model_name}/{model_version}")


def bundle_id(study_uid: str) -> str:
    """Id of a study's Bundle: the Study Instance UID (a DICOM UID is a valid FHIR id)."""
    return study_uid if _FHIR_ID.match(study_uid) else _uuid(f"{study_uid}/Bundle")


def resource_ids(result: StudyResult) -> list[tuple[str, str]]:
    """(resource type, id) of every resource :func:`to_fhir` writes for ``result``."""
    uid = result.study_instance_uid
    ids = [("ImagingStudy", imaging_study_id(uid)), ("DiagnosticReport", report_id(uid))]
    devices: dict[tuple[str, str], None] = {}
    for series in result.series:
        for f in series.findings:
            ids.append(("Observation", observation_id(uid, series.series_instance_uid, f)))
            ids.extend(
                ("Observation", measurement_id(uid, series.series_instance_uid, f, m.code))
                for m in f.measurements
            )
            devices[f.model_name, f.model_version] = None
    ids.extend(("Device", device_id(*model)) for model in devices)
    return ids


# --- small data types ----------------------------------------------------------------------


def _coding(concept: Concept) -> dict[str, str]:
    return {"system": concept.system, "code": concept.value, "display": concept.meaning}


def _concept(concept: Concept, text: str = "") -> dict[str, Any]:
    return {"coding": [_coding(concept)], "text": text or concept.meaning}


def _quantity(value: float, unit: Concept, display: str = "") -> dict[str, Any]:
    return {
        "value": value,
        "unit": display or unit.value,
        "system": unit.system,
        "code": unit.value,
    }


def _date(dicom_date: str) -> str:
    """A DICOM DA value as a FHIR date, or "" when there is none or it is not a date."""
    try:
        return date(int(dicom_date[:4]), int(dicom_date[4:6]), int(dicom_date[6:8])).isoformat()
    except ValueError:
        return ""


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _subject(patient: Patient) -> dict[str, Any]:
    """A logical reference to the patient: the DICOM Patient ID and the name as display."""
    subject: dict[str, Any] = {"type": "Patient"}
    if patient.patient_id:
        subject["identifier"] = {"value": patient.patient_id}
    name = " ".join(patient.name.replace("^", " ").split())  # DICOM PN: Family^Given
    if name:
        subject["display"] = name
    elif not patient.patient_id:
        subject["display"] = "unidentified patient"
    return subject


def _json(model: Resource) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(model.model_dump_json())
    return document


# --- resources -----------------------------------------------------------------------------


def _modality(code: str) -> dict[str, str]:
    return {"system": SCHEME_URIS[DCM], "code": code or "OT"}


def _series(series: Series) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "uid": series.series_instance_uid,
        "modality": _modality(series.modality),
        "numberOfInstances": len(series.instances),
    }
    if series.series_number is not None and series.series_number >= 0:
        doc["number"] = series.series_number
    if series.description:
        doc["description"] = series.description
    if site := body_site(series.body_part):
        doc["bodySite"] = _coding(site)
    instances = []
    for i in series.instances:
        if not i.sop_class_uid:  # PNG, JPEG and NIfTI inputs have no SOP class
            continue
        instance: dict[str, Any] = {
            "uid": i.sop_instance_uid,
            "sopClass": {"system": RFC_3986, "code": f"urn:oid:{i.sop_class_uid}"},
        }
        if i.instance_number is not None and i.instance_number >= 0:
            instance["number"] = i.instance_number
        instances.append(instance)
    if instances:
        doc["instance"] = instances
    return doc


def _imaging_study(study: Study, subject: dict[str, Any], started: str) -> ImagingStudy:
    uid = study.study_instance_uid
    identifiers: list[dict[str, Any]] = [{"system": DICOM_UID, "value": f"urn:oid:{uid}"}]
    if study.accession_number:
        identifiers.append({"type": ACCESSION, "value": study.accession_number})
    doc: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": imaging_study_id(uid),
        "identifier": identifiers,
        "status": "available",
        "modality": [_modality(m) for m in study.modalities],
        "subject": subject,
        "numberOfSeries": len(study.series),
        "numberOfInstances": study.n_instances,
    }
    if started:
        doc["started"] = started
    if study.description:
        doc["description"] = study.description
    if study.series:
        doc["series"] = [_series(s) for s in study.series]
    return ImagingStudy.model_validate(doc)


def _device(model_name: str, model_version: str) -> Device:
    return Device.model_validate(
        {
            "resourceType": "Device",
            "id": device_id(model_name, model_version),
            "status": "active",
            "manufacturer": "radlens",
            "deviceName": [{"name": model_name, "type": "model-name"}],
            "type": _concept(ARTIFICIAL_INTELLIGENCE, "AI model"),
            "version": [
                {"type": {"text": "model"}, "value": model_version},
                {"type": {"text": "radlens"}, "value": __version__},
            ],
            "note": [{"text": DISCLAIMER}],
        }
    )


def _components(f: Finding) -> list[dict[str, Any]]:
    components: list[dict[str, Any]] = []
    if f.grade is not None:
        components.append(
            {"code": _concept(SEVERITY), "valueQuantity": _quantity(f.grade, GRADE_UNITS)}
        )
    if f.ood_score is not None:
        components.append(
            {"code": _concept(OOD_SCORE), "valueQuantity": _quantity(f.ood_score, NO_UNITS)}
        )
    if f.ood_score is not None or f.ood_flag:
        components.append({"code": _concept(OOD_FLAG), "valueBoolean": f.ood_flag})
    return components


def _notes(f: Finding) -> list[dict[str, str]]:
    notes = []
    if f.ood_flag:
        score = "" if f.ood_score is None else f" (out-of-distribution score {f.ood_score:.2f})"
        notes.append(f"{LOW_TRUST}{score}.")
    if f.grade is not None and f.grade_label:
        notes.append(f"Severity grade {f.grade}: {f.grade_label}.")
    notes.extend(f"Caution: {w}." for w in f.warnings)
    return [{"text": n} for n in notes]


def _observation(
    study_uid: str,
    series: SeriesResult,
    f: Finding,
    context: dict[str, Any],
    ref: Ref,
) -> Observation:
    concept = finding_concept(f.code, f.label)
    device = device_id(f.model_name, f.model_version)
    doc: dict[str, Any] = {
        "resourceType": "Observation",
        "id": observation_id(study_uid, series.series_instance_uid, f),
        "status": "preliminary",
        "category": [IMAGING],
        "code": _concept(concept, f.label),
        "subject": context["subject"],
        "valueQuantity": _quantity(round(f.probability, 6), NO_UNITS),
        "interpretation": [{"coding": [POSITIVE if f.positive else NEGATIVE]}],
        "method": {
            "text": f"AI model {f.model_name} {f.model_version}: calibrated probability, "
            f"positive at or above the operating threshold {f.threshold:.2f}. {DISCLAIMER}"
        },
        "device": {"reference": ref("Device", device), "display": f.model_name},
        "derivedFrom": [context["imaging_study"]],
    }
    if context["effective"]:
        doc["effectiveDateTime"] = context["effective"]
    if site := body_site(series.body_part):
        doc["bodySite"] = _concept(site)
    elif series.body_part:
        doc["bodySite"] = {"text": series.body_part}
    if notes := _notes(f):
        doc["note"] = notes
    if components := _components(f):
        doc["component"] = components
    return Observation.model_validate(doc)


def _measurement_observation(
    study_uid: str,
    series: SeriesResult,
    f: Finding,
    m: Measurement,
    context: dict[str, Any],
    ref: Ref,
) -> Observation:
    """The Observation of one measurement of a finding (HC in mm, GA in weeks)."""
    unit = unit_concept(m.unit)
    finding_ref = ref("Observation", observation_id(study_uid, series.series_instance_uid, f))
    doc: dict[str, Any] = {
        "resourceType": "Observation",
        "id": measurement_id(study_uid, series.series_instance_uid, f, m.code),
        "status": "preliminary",
        "category": [IMAGING],
        "code": _concept(measurement_concept(m.code, m.label), m.label),
        "subject": context["subject"],
        "method": {"text": f"AI model {f.model_name} {f.model_version}: {m.method}. {DISCLAIMER}"},
        "device": {"reference": ref("Device", device_id(f.model_name, f.model_version))},
        "derivedFrom": [context["imaging_study"], {"reference": finding_ref}],
    }
    notes = []
    if m.value is None:
        doc["dataAbsentReason"] = NOT_APPLICABLE
    else:
        doc["valueQuantity"] = _quantity(m.value, unit, m.unit)
    if m.low is not None and m.high is not None:
        notes.append(f"Range {m.low:g}-{m.high:g} {m.unit}.")
    if m.note:
        notes.append(m.note)
    if f.ood_flag:
        notes.append(f"{LOW_TRUST}.")
    if notes:
        doc["note"] = [{"text": n} for n in notes]
    if context["effective"]:
        doc["effectiveDateTime"] = context["effective"]
    return Observation.model_validate(doc)


def _ai_conclusion(result: StudyResult) -> str:
    positives = [f for f in result.findings if f.positive]
    if positives:
        body = " ".join(
            f"{f.label} {in_words(f.probability)} (calibrated probability {f.probability:.0%}"
            + ("; low trust: input unlike training data" if f.ood_flag else "")
            + ")."
            for f in positives
        )
    elif any(s.models for s in result.series):
        body = "No AI finding above its operating threshold."
    else:
        body = "No AI assessment: no AI model applies to the images of this study."
    return f"{body} {DISCLAIMER}"


def _presented_form(text: str, title: str) -> dict[str, str]:
    return {
        "contentType": "text/plain; charset=utf-8",
        "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
        "title": title,
    }


def _diagnostic_report(
    study: Study,
    result: StudyResult,
    observations: list[tuple[str, str]],
    context: dict[str, Any],
    signed: SignedReport | None,
    issued: datetime | None,
    draft: str | None,
) -> DiagnosticReport:
    doc: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": report_id(study.study_instance_uid),
        "status": "preliminary" if signed is None else "final",
        "category": [RADIOLOGY],
        "code": _concept(DIAGNOSTIC_IMAGING_STUDY),
        "subject": context["subject"],
    }
    if context["effective"]:
        doc["effectiveDateTime"] = context["effective"]
    moment = issued if signed is None else signed.signed_at
    if moment is not None:
        doc["issued"] = _instant(moment)
    if signed is not None and signed.signed_by:
        doc["resultsInterpreter"] = [{"display": signed.signed_by}]
    if observations:
        doc["result"] = [{"reference": r, "display": label} for r, label in observations]
    doc["imagingStudy"] = [context["imaging_study"]]
    if signed is None:
        doc["conclusion"] = _ai_conclusion(result)
        positives = {f.code: f for f in result.findings if f.positive}
        if positives:
            doc["conclusionCode"] = [
                _concept(finding_concept(f.code, f.label), f.label) for f in positives.values()
            ]
        form = _presented_form(
            draft if draft is not None else compose_markdown(study, result),
            "AI draft report (requires physician review)",
        )
    else:
        doc["conclusion"] = signed.text
        form = _presented_form(signed.text, "Signed report")
    doc["presentedForm"] = [form]
    return DiagnosticReport.model_validate(doc)


def _resources(
    study: Study,
    result: StudyResult,
    signed: SignedReport | None,
    issued: datetime | None,
    ref: Ref,
    draft: str | None = None,
) -> list[Resource]:
    uid = study.study_instance_uid
    if uid != result.study_instance_uid:
        raise ValueError("the result is not about this study")
    subject = _subject(study.patient)
    effective = _date(study.study_date)
    imaging = _imaging_study(study, subject, effective)
    context = {
        "subject": subject,
        "effective": effective,
        "imaging_study": {"reference": ref("ImagingStudy", imaging_study_id(uid))},
    }
    observations = []
    for series in result.series:
        for f in series.findings:
            observations.append(_observation(uid, series, f, context, ref))
            observations.extend(
                _measurement_observation(uid, series, f, m, context, ref) for m in f.measurements
            )
    devices = {
        (f.model_name, f.model_version): _device(f.model_name, f.model_version)
        for f in result.findings
    }
    references = [
        (ref("Observation", str(o.id)), o.code.text or "") for o in observations if o.code
    ]
    report = _diagnostic_report(study, result, references, context, signed, issued, draft)
    return [imaging, report, *observations, *devices.values()]


# --- public verbs --------------------------------------------------------------------------


def to_fhir(
    study: Study,
    result: StudyResult,
    signed: SignedReport | None = None,
    issued: datetime | None = None,
    draft: str | None = None,
) -> dict[str, Any]:
    """The study's transaction Bundle as FHIR JSON (what ``fhir.json`` holds).

    Args:
        study: the study's DICOM context (series, instances, patient, dates).
        result: what radlens concluded about it.
        signed: the radiologist's signed report; None for the AI draft.
        issued: when the draft was made (``DiagnosticReport.issued``); left out when None,
            so the same input always gives the same bytes. A signed report is issued when
            it was signed.
        draft: the draft text presented while unsigned (with notes and prior, as
            ``report.compose`` made it); None composes one from ``result`` alone.

    Raises:
        ValueError: ``result`` is about another study.
    """
    entries = [
        {
            "fullUrl": f"urn:uuid:{r.id}",
            "resource": r,
            "request": {"method": "PUT", "url": f"{r.get_resource_type()}/{r.id}"},
        }
        for r in _resources(study, result, signed, issued, _urn, draft)
    ]
    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "id": bundle_id(study.study_instance_uid),
            "type": "transaction",
            "entry": entries,
        }
    )
    return _json(bundle)


def fhir_resources(
    study: Study,
    result: StudyResult,
    signed: SignedReport | None = None,
    issued: datetime | None = None,
    draft: str | None = None,
) -> list[dict[str, Any]]:
    """The same resources as :func:`to_fhir`, referring to each other as ``Type/id``
    (for a FHIR REST server, where each is read on its own)."""
    return [_json(r) for r in _resources(study, result, signed, issued, _relative, draft)]


def search_bundle(resources: list[dict[str, Any]], base_url: str, self_url: str) -> dict[str, Any]:
    """A ``searchset`` Bundle of ``resources`` (all matches), full URLs under ``base_url``."""
    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources),
            "link": [{"relation": "self", "url": self_url}],
            "entry": [
                {
                    "fullUrl": f"{base_url.rstrip('/')}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in resources
            ],
        }
    )
    return _json(bundle)


def operation_outcome(code: str, diagnostics: str) -> dict[str, Any]:
    """An ``OperationOutcome`` with one error issue (``code`` from FHIR's IssueType)."""
    outcome = OperationOutcome.model_validate(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
        }
    )
    return _json(outcome)
