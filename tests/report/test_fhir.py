"""FHIR R4 output: a real study through the real pipeline, and constructed findings.

Every document is parsed back with fhir.resources (its R4B models), so an invalid resource
fails the test, not a FHIR server later.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome

from radlens.analyze import AnalyzeRun, analyze
from radlens.domain.findings import Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Instance, Patient, Series, Study
from radlens.domain.reports import SignedReport
from radlens.models.registry import discover
from radlens.report.compose import compose_markdown
from radlens.report.fhir import (
    FHIR_JSON,
    LOW_TRUST,
    device_id,
    fhir_resources,
    observation_id,
    operation_outcome,
    report_id,
    resource_ids,
    search_bundle,
    to_fhir,
)
from radlens.report.findings_json import DISCLAIMER

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
RG1_PATIENT_ID = "9RG1"


def finding(**kw: object) -> Finding:
    fields: dict[str, object] = {
        "code": "pneumonia",
        "label": "Pneumonia",
        "probability": 0.91,
        "threshold": 0.5,
        "model_name": "cxr_pneumonia",
        "model_version": "1.0.0",
        "sop_instance_uid": "1.2.3.1.1",
    } | kw
    return Finding(**fields)  # type: ignore[arg-type]


def study(uid: str = "1.2.3", body_part: str = "CHEST", patient: Patient | None = None) -> Study:
    instances = (
        Instance("1.2.3.1.1", "1.2.840.10008.5.1.4.1.1.1", Path("a.dcm"), instance_number=1),
        Instance("1.2.3.1.2", "1.2.840.10008.5.1.4.1.1.1", Path("b.dcm"), instance_number=2),
    )
    return Study(
        uid,
        (Series("1.2.3.1", "CR", instances, body_part=body_part, series_number=1),),
        patient=patient or Patient(patient_id="PID-0042", name="Doe^Jane"),
        study_date="20240131",
        accession_number="ACC-77",
    )


def result(*findings: Finding, uid: str = "1.2.3", body_part: str = "CHEST") -> StudyResult:
    series = SeriesResult("1.2.3.1", "CR", body_part, 2, ("cxr_pneumonia",), findings)
    return StudyResult(uid, (series,))


def mixed() -> StudyResult:
    """A positive low-trust finding, a negative one, and a graded one from another model."""
    return result(
        finding(ood_score=1.7, ood_flag=True, warnings=("outside the training population",)),
        finding(code="nodule", label="Nodule", probability=0.2, sop_instance_uid="1.2.3.1.2"),
        finding(
            code="retinopathy_grade",
            label="Retinopathy grade",
            probability=0.7,
            model_name="grader",
            model_version="2.0.0",
            grade=2,
            grade_label="moderate",
            ood_score=0.4,
        ),
    )


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def decoded(report: dict[str, Any]) -> str:
    [form] = report["presentedForm"]
    assert form["contentType"].startswith("text/plain")
    return base64.b64decode(form["data"]).decode("utf-8")


def notes(observation: dict[str, Any]) -> list[str]:
    return [n["text"] for n in observation.get("note", [])]


def components(observation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["code"]["coding"][0]["code"]: c for c in observation.get("component", [])}


# --- a real study through the real pipeline ----------------------------------------------


@pytest.fixture(scope="module")
def rg1_run(pydicom_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AnalyzeRun:
    """pydicom-data's CR chest (RG1, JPEG 2000) analyzed by the shipped models, with FHIR."""
    out = tmp_path_factory.mktemp("rg1")
    return analyze([pydicom_data_dir / "RG1_J2KR.dcm"], out, discover(), fhir=True)


def test_real_study_fhir_json_validates_and_describes_the_findings(rg1_run: AnalyzeRun) -> None:
    [output] = rg1_run.outputs
    text = (output.folder / "fhir.json").read_text("utf-8")
    parsed = Bundle.model_validate_json(text)  # the library validates every resource
    assert parsed.type == "transaction"
    bundle = json.loads(text)
    [imaging] = resources(bundle, "ImagingStudy")
    uid = output.study.study_instance_uid
    assert {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"} in imaging["identifier"]
    assert imaging["subject"]["identifier"]["value"] == RG1_PATIENT_ID
    [report] = resources(bundle, "DiagnosticReport")
    assert report["status"] == "preliminary"
    assert report["code"]["coding"][0] == {
        "system": LOINC,
        "code": "18748-4",
        "display": "Diagnostic imaging study",
    }
    assert decoded(report) == (output.folder / "report.md").read_text("utf-8")
    observations = resources(bundle, "Observation")
    assert len(observations) == len(output.result.findings) >= 1
    for obs, f in zip(observations, output.result.findings, strict=True):
        assert obs["code"]["coding"][0]["system"] == SNOMED  # pneumonia is a SNOMED concept
        assert obs["valueQuantity"]["value"] == pytest.approx(f.probability, abs=1e-6)
        assert obs["interpretation"][0]["coding"][0]["code"] == ("POS" if f.positive else "NEG")
        assert obs["bodySite"]["coding"][0]["code"] == "51185008"  # thorax
        assert obs["derivedFrom"] == [{"reference": f"urn:uuid:{imaging['id']}"}]
        assert (LOW_TRUST in " ".join(notes(obs))) is f.ood_flag
    [device] = resources(bundle, "Device")
    assert device["deviceName"][0]["name"] == "cxr_pneumonia"


def test_real_study_export_is_idempotent(rg1_run: AnalyzeRun) -> None:
    [output] = rg1_run.outputs
    written = json.loads((output.folder / "fhir.json").read_text("utf-8"))
    assert to_fhir(output.study, output.result) == written


# --- constructed findings: deterministic checks -------------------------------------------


def test_every_observation_has_code_value_interpretation_body_site_and_provenance() -> None:
    bundle = to_fhir(study(), mixed())
    [imaging] = resources(bundle, "ImagingStudy")
    observations = resources(bundle, "Observation")
    assert len(observations) == 3
    for obs in observations:
        assert obs["status"] == "preliminary"
        assert obs["code"]["coding"][0]["code"] and obs["code"]["text"]
        quantity = obs["valueQuantity"]
        assert (quantity["system"], quantity["code"]) == (UCUM, "1")
        assert 0.0 <= quantity["value"] <= 1.0
        [interpretation] = obs["interpretation"]
        assert interpretation["coding"][0]["system"] == INTERPRETATION
        assert obs["bodySite"]["coding"][0] == {
            "system": SNOMED,
            "code": "51185008",
            "display": "Thorax",
        }
        assert obs["derivedFrom"] == [{"reference": f"urn:uuid:{imaging['id']}"}]
        assert obs["device"]["reference"].startswith("urn:uuid:")
        assert obs["subject"]["identifier"] == {"value": "PID-0042"}
        assert obs["effectiveDateTime"] == "2024-01-31"
        assert "requires physician review" in obs["method"]["text"]


def test_interpretation_is_the_cards_operating_point() -> None:
    at, below = finding(probability=0.5), finding(probability=0.4999, sop_instance_uid="1.2.3.1.2")
    obs = resources(to_fhir(study(), result(at, below)), "Observation")
    assert [o["interpretation"][0]["coding"][0]["code"] for o in obs] == ["POS", "NEG"]


def test_low_trust_note_and_ood_components_iff_flagged() -> None:
    flagged, negative, graded = resources(to_fhir(study(), mixed()), "Observation")
    [note, caution] = notes(flagged)
    assert note == "Input unlike training data - low trust (out-of-distribution score 1.70)."
    assert caution == "Caution: outside the training population."
    assert components(flagged)["ood_flag"]["valueBoolean"] is True
    assert components(flagged)["ood_score"]["valueQuantity"]["value"] == 1.7
    assert not any(LOW_TRUST in n for n in notes(negative) + notes(graded))
    assert components(graded)["ood_flag"]["valueBoolean"] is False
    assert "component" not in negative  # no score, no grade: nothing to add


def test_severity_grade_is_a_component() -> None:
    graded = resources(to_fhir(study(), mixed()), "Observation")[2]
    severity = components(graded)["246112005"]
    assert severity["valueQuantity"] == {
        "value": 2,
        "unit": "{grade}",
        "system": UCUM,
        "code": "{grade}",
    }
    assert "Severity grade 2: moderate." in notes(graded)


def test_one_device_per_model_version_and_observations_point_at_theirs() -> None:
    bundle = to_fhir(study(), mixed())
    devices = {d["id"]: d for d in resources(bundle, "Device")}
    assert set(devices) == {device_id("cxr_pneumonia", "1.0.0"), device_id("grader", "2.0.0")}
    grader = devices[device_id("grader", "2.0.0")]
    assert grader["deviceName"] == [{"name": "grader", "type": "model-name"}]
    assert grader["version"][0] == {"type": {"text": "model"}, "value": "2.0.0"}
    assert grader["type"]["coding"][0]["code"] == "123110"  # DCM Artificial Intelligence
    for obs in resources(bundle, "Observation"):
        assert obs["device"]["reference"].removeprefix("urn:uuid:") in devices


def test_draft_report_is_preliminary_and_presents_the_ai_draft() -> None:
    s, r = study(), mixed()
    [report] = resources(
        to_fhir(s, r, issued=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)), "DiagnosticReport"
    )
    assert report["status"] == "preliminary"
    assert report["category"][0]["coding"][0]["code"] == "RAD"
    assert report["issued"] == "2026-01-02T03:04:05Z"
    assert decoded(report) == compose_markdown(s, r)
    assert "Pneumonia very likely" in report["conclusion"]
    assert "requires physician review" in report["conclusion"]
    assert [c["coding"][0]["code"] for c in report["conclusionCode"]] == [
        "233604007",
        "retinopathy_grade",
    ]
    assert len(report["result"]) == 3
    assert "resultsInterpreter" not in report


def test_signed_report_is_final_with_its_text() -> None:
    paris = timezone(timedelta(hours=1))
    signed = SignedReport(
        "Right lower lobe pneumonia. \u2265 2 cm.",
        datetime(2026, 1, 2, 4, 0, tzinfo=paris),
        "dr_who",
    )
    [report] = resources(to_fhir(study(), mixed(), signed), "DiagnosticReport")
    assert report["status"] == "final"
    assert decoded(report) == signed.text
    assert report["conclusion"] == signed.text
    assert report["issued"] == "2026-01-02T03:00:00Z"
    assert report["resultsInterpreter"] == [{"display": "dr_who"}]
    assert "conclusionCode" not in report  # the AI's codes are not the physician's


def test_bundle_round_trips_through_the_library_and_equals_itself() -> None:
    signed = SignedReport("Signed.", datetime(2026, 1, 2, tzinfo=UTC))
    for document in (to_fhir(study(), mixed()), to_fhir(study(), mixed(), signed)):
        text = json.dumps(document)
        parsed = Bundle.model_validate_json(text)
        assert parsed == Bundle.model_validate(json.loads(text))
        assert json.loads(parsed.model_dump_json()) == document
        for entry in document["entry"]:
            assert entry["request"] == {
                "method": "PUT",
                "url": f"{entry['resource']['resourceType']}/{entry['resource']['id']}",
            }


def test_references_resolve_inside_the_bundle() -> None:
    bundle = to_fhir(study(), mixed())
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    assert len(full_urls) == len(bundle["entry"])
    references = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str):
                references.append(node["reference"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(bundle)
    assert len(references) == 3 + 1 + 3 * 2  # results, imaging study; device, derivedFrom
    assert set(references) <= full_urls


def test_ids_are_uuid5_deterministic_and_follow_the_study_and_finding() -> None:
    f = finding()
    first = to_fhir(study(), result(f))
    again = to_fhir(study(), result(finding()))
    assert first == again
    other = to_fhir(study("1.2.4"), result(f, uid="1.2.4"))
    assert {e["fullUrl"] for e in first["entry"]} & {e["fullUrl"] for e in other["entry"]} == {
        f"urn:uuid:{device_id('cxr_pneumonia', '1.0.0')}"  # the model is the same device
    }
    assert uuid.UUID(observation_id("1.2.3", "1.2.3.1", f)).version == 5
    assert first["id"] == "1.2.3"  # the Bundle is named by its Study Instance UID
    ids = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in first["entry"]]
    assert resource_ids(result(f)) == ids
    assert ids[1] == ("DiagnosticReport", report_id("1.2.3"))


def test_rest_resources_refer_by_type_and_id() -> None:
    listed = fhir_resources(study(), mixed())
    report = next(r for r in listed if r["resourceType"] == "DiagnosticReport")
    assert all(ref["reference"].startswith("Observation/") for ref in report["result"])
    assert report["imagingStudy"][0]["reference"].startswith("ImagingStudy/")
    for resource in listed:
        kind = {"DiagnosticReport": DiagnosticReport, "Observation": Observation}.get(
            resource["resourceType"]
        )
        if kind is not None:
            kind.model_validate(resource)


def test_unmapped_codes_use_the_local_scheme_and_the_body_part_as_text() -> None:
    f = finding(code="odd_thing", label="Odd thing")
    [obs] = resources(
        to_fhir(study(body_part="PINKY"), result(f, body_part="PINKY")), "Observation"
    )
    assert obs["code"]["coding"][0] == {
        "system": "urn:radlens:finding",
        "code": "odd_thing",
        "display": "Odd thing",
    }
    assert obs["bodySite"] == {"text": "PINKY"}


def test_subject_is_a_logical_reference_to_the_patient() -> None:
    [imaging] = resources(to_fhir(study(), result()), "ImagingStudy")
    assert imaging["subject"] == {
        "type": "Patient",
        "identifier": {"value": "PID-0042"},
        "display": "Doe Jane",
    }
    nobody = to_fhir(study(patient=Patient()), result())
    assert resources(nobody, "ImagingStudy")[0]["subject"] == {
        "type": "Patient",
        "display": "unidentified patient",
    }


def test_imaging_study_lists_series_and_instances() -> None:
    [imaging] = resources(to_fhir(study(), result()), "ImagingStudy")
    assert imaging["numberOfSeries"] == 1 and imaging["numberOfInstances"] == 2
    assert imaging["started"] == "2024-01-31"
    assert {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                    "code": "ACSN",
                    "display": "Accession ID",
                }
            ]
        },
        "value": "ACC-77",
    } in imaging["identifier"]
    [series] = imaging["series"]
    assert series["modality"]["code"] == "CR" and series["bodySite"]["code"] == "51185008"
    assert [i["uid"] for i in series["instance"]] == ["1.2.3.1.1", "1.2.3.1.2"]
    assert series["instance"][0]["sopClass"]["code"] == "urn:oid:1.2.840.10008.5.1.4.1.1.1"


def test_no_model_applies_gives_a_report_without_results() -> None:
    skipped = StudyResult("1.2.3", (SeriesResult("1.2.3.1", "CR", "CHEST", 2, skipped_reason="x"),))
    bundle = to_fhir(study(), skipped)
    [report] = resources(bundle, "DiagnosticReport")
    assert "result" not in report and "No AI assessment" in report["conclusion"]
    assert resources(bundle, "Observation") == resources(bundle, "Device") == []


def test_a_result_of_another_study_is_refused() -> None:
    with pytest.raises(ValueError, match="not about this study"):
        to_fhir(study("1.2.3"), result(uid="9.9"))


def test_searchset_and_operation_outcome_validate() -> None:
    listed = [
        r for r in fhir_resources(study(), mixed()) if r["resourceType"] == "DiagnosticReport"
    ]
    found = search_bundle(listed, "http://x/fhir/", "http://x/fhir/DiagnosticReport?study=1.2.3")
    parsed = Bundle.model_validate(found)
    assert parsed.type == "searchset" and parsed.total == 1
    assert found["entry"][0]["fullUrl"] == f"http://x/fhir/DiagnosticReport/{report_id('1.2.3')}"
    assert found["entry"][0]["search"] == {"mode": "match"}
    outcome = OperationOutcome.model_validate(operation_outcome("not-found", "no such thing"))
    assert outcome.issue[0].code == "not-found"
    assert FHIR_JSON == "application/fhir+json"


def head_finding(ga_weeks: float | None = 20.2) -> Finding:
    """A fetal head finding with its HC and GA (or a GA outside the formula's range)."""
    from radlens.domain.findings import Measurement

    hc = Measurement("head_circumference", "Head circumference", 176.5, "mm", method="ellipse")
    ga = (
        Measurement("gestational_age", "Gestational age", ga_weeks, "wk", 18.3, 22.1, "Hadlock")
        if ga_weeks is not None
        else Measurement("gestational_age", "Gestational age", None, "wk", note="HC too small")
    )
    return finding(
        code="fetal_head",
        label="Fetal head",
        probability=0.98,
        model_name="fetal_head_hc18",
        measurements=(hc, ga),
    )


def test_hc_and_ga_are_observations_with_loinc_and_ucum_units() -> None:
    f = head_finding()
    bundle = to_fhir(study(body_part="FETAL_HEAD"), result(f, body_part="FETAL_HEAD"))
    Bundle.model_validate(bundle)
    by_code = {o["code"]["coding"][0]["code"]: o for o in resources(bundle, "Observation")}
    hc, ga = by_code["11984-2"], by_code["18185-9"]
    assert hc["code"]["coding"][0]["system"] == "http://loinc.org"
    assert hc["valueQuantity"] == {
        "value": 176.5,
        "unit": "mm",
        "system": "http://unitsofmeasure.org",
        "code": "mm",
    }
    assert ga["valueQuantity"]["value"] == 20.2 and ga["valueQuantity"]["code"] == "wk"
    assert "Range 18.3-22.1 wk." in notes(ga) and "Hadlock" in ga["method"]["text"]
    assert hc["status"] == "preliminary" and DISCLAIMER in hc["method"]["text"]
    finding_url = f"urn:uuid:{observation_id('1.2.3', '1.2.3.1', f)}"
    assert {"reference": finding_url} in hc["derivedFrom"]
    [report] = resources(bundle, "DiagnosticReport")
    results = {r["display"] for r in report["result"]}
    assert {"Head circumference", "Gestational age", "Fetal head"} <= results
    text = decoded(report)
    assert "Head circumference 176.5 mm" in text
    assert "Gestational age 20.2 weeks (range 18.3-22.1 weeks)" in text
    ids = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]]
    assert resource_ids(result(f, body_part="FETAL_HEAD")) == ids


def test_a_ga_that_cannot_be_given_is_absent_with_its_reason() -> None:
    bundle = to_fhir(study(), result(head_finding(None)))
    Bundle.model_validate(bundle)
    [ga] = [
        o for o in resources(bundle, "Observation") if o["code"]["coding"][0]["code"] == "18185-9"
    ]
    assert "valueQuantity" not in ga
    assert ga["dataAbsentReason"]["coding"][0]["code"] == "not-applicable"
    assert notes(ga) == ["HC too small"]
