"""``/fhir``: FHIR R4 reads of analyzed studies, behind the login, errors as OperationOutcome."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from sqlalchemy import delete

from radlens.store.models import FhirResourceRow
from serve_helpers import make_instance, wait_until_ready

STUDY = "1.4.2"
FHIR_JSON = "application/fhir+json"
MODELS = {
    "DiagnosticReport": DiagnosticReport,
    "Observation": Observation,
    "ImagingStudy": ImagingStudy,
    "Device": Device,
}


def _stow(client: TestClient, *instances: bytes) -> None:
    body = b"".join(
        b"--b\r\nContent-Type: application/dicom\r\n\r\n" + i + b"\r\n" for i in instances
    )
    response = client.post(
        "/dicomweb/studies",
        content=body + b"--b--\r\n",
        headers={"content-type": 'multipart/related; type="application/dicom"; boundary=b'},
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def analyzed(client: TestClient) -> str:
    """An analyzed study (one CT instance, one positive finding); its Study Instance UID."""
    _stow(client, make_instance(STUDY, f"{STUDY}.1"))
    wait_until_ready(client, 1)
    return STUDY


def _fhir(client: TestClient, url: str, status: int = 200) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    document: dict[str, Any] = response.json()
    return document


def _report(client: TestClient, study_uid: str) -> dict[str, Any]:
    found = _fhir(client, f"/fhir/DiagnosticReport?study={study_uid}")
    Bundle.model_validate(found)
    assert found["type"] == "searchset" and found["total"] == 1
    [entry] = found["entry"]
    assert entry["fullUrl"] == f"http://testserver/fhir/DiagnosticReport/{entry['resource']['id']}"
    report: dict[str, Any] = entry["resource"]
    return report


def _outcome(document: dict[str, Any], code: str) -> None:
    outcome = OperationOutcome.model_validate(document)
    assert outcome.issue[0].severity == "error" and outcome.issue[0].code == code


def test_fhir_needs_a_login_and_answers_401_as_operation_outcome(
    client: TestClient, analyzed: str
) -> None:
    report = _report(client, analyzed)
    client.post("/api/auth/logout")
    for url in (
        f"/fhir/DiagnosticReport?study={analyzed}",
        f"/fhir/DiagnosticReport/{report['id']}",
        f"/fhir/Observation/{report['result'][0]['reference'].split('/')[1]}",
        f"/fhir/Bundle/{analyzed}",
    ):
        _outcome(_fhir(client, url, 401), "login")


def test_search_by_study_and_follow_every_reference(client: TestClient, analyzed: str) -> None:
    report = _report(client, analyzed)
    assert report["status"] == "preliminary"
    assert report["code"]["coding"][0]["code"] == "18748-4"
    assert "Draft report" in base64.b64decode(report["presentedForm"][0]["data"]).decode()
    assert report["issued"].endswith("Z")  # when the AI result was recorded
    assert _fhir(client, f"/fhir/DiagnosticReport/{report['id']}") == report
    [result] = report["result"]
    observation = _fhir(client, f"/fhir/{result['reference']}")
    assert observation["interpretation"][0]["coding"][0]["code"] == "POS"
    assert observation["derivedFrom"] == report["imagingStudy"]
    imaging = _fhir(client, f"/fhir/{report['imagingStudy'][0]['reference']}")
    assert {"system": "urn:dicom:uid", "value": f"urn:oid:{analyzed}"} in imaging["identifier"]
    device = _fhir(client, f"/fhir/{observation['device']['reference']}")
    assert device["deviceName"][0]["name"] == "stand-in"
    for resource in (report, observation, imaging, device):
        MODELS[resource["resourceType"]].model_validate(resource)


def test_the_presented_draft_is_the_one_the_reading_room_shows(
    client: TestClient, analyzed: str
) -> None:
    notes = client.put(f"/api/studies/{analyzed}/notes", json={"text": "Rule out pneumonia."})
    assert notes.status_code == 200
    draft = client.get(f"/api/studies/{analyzed}").json()["draft"]
    assert "pneumonia" in draft.lower()
    presented = base64.b64decode(_report(client, analyzed)["presentedForm"][0]["data"])
    assert presented.decode("utf-8") == draft


def test_search_of_an_unknown_study_is_empty_and_without_study_a_400(
    client: TestClient, analyzed: str
) -> None:
    empty = _fhir(client, "/fhir/DiagnosticReport?study=9.9.9")
    assert (empty["type"], empty["total"]) == ("searchset", 0)
    assert _fhir(client, f"/fhir/DiagnosticReport?study=urn:oid:{analyzed}")["total"] == 1
    _outcome(_fhir(client, "/fhir/DiagnosticReport", 400), "invalid")


def test_unknown_ids_and_types_are_404_operation_outcomes(
    client: TestClient, analyzed: str
) -> None:
    _outcome(
        _fhir(client, "/fhir/Observation/00000000-0000-5000-8000-000000000000", 404), "not-found"
    )
    _outcome(_fhir(client, "/fhir/Patient/anyone", 404), "not-found")
    _outcome(_fhir(client, "/fhir/Bundle/9.9.9", 404), "not-found")


def test_signed_report_is_final_with_its_text(client: TestClient, analyzed: str) -> None:
    text = "Right lower lobe pneumonia.\n\nSigned by the reader."
    assert client.put(f"/api/studies/{analyzed}/report", json={"text": text}).status_code == 200
    draft = _report(client, analyzed)
    assert draft["status"] == "preliminary"  # saved but not signed: still the AI draft
    assert client.post(f"/api/studies/{analyzed}/sign").status_code == 200
    final = _report(client, analyzed)
    assert final["id"] == draft["id"]
    assert final["status"] == "final"
    assert base64.b64decode(final["presentedForm"][0]["data"]).decode("utf-8") == text
    assert final["conclusion"] == text
    assert final["resultsInterpreter"] == [{"display": "reader"}]
    signed_at = client.get(f"/api/studies/{analyzed}").json()["report"]["signed_at"]
    assert final["issued"].removesuffix("Z") == signed_at.split(".")[0]


def test_study_bundle_is_the_transaction_analyze_writes(client: TestClient, analyzed: str) -> None:
    response = client.get(f"/fhir/Bundle/{analyzed}")
    assert response.headers["cache-control"] == "no-store"  # patient data
    bundle = _fhir(client, f"/fhir/Bundle/{analyzed}")
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "transaction" and parsed.id == analyzed
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["ImagingStudy", "DiagnosticReport", "Observation", "Device"]
    assert _fhir(client, f"/fhir/Bundle/{analyzed}") == bundle  # same ids every time


def test_studies_analyzed_before_the_index_are_found_by_id(
    client: TestClient, analyzed: str
) -> None:
    report = _report(client, analyzed)
    db = client.app.state.services.db  # type: ignore[attr-defined]
    with db.sessions.begin() as session:
        session.execute(delete(FhirResourceRow))
    assert _fhir(client, f"/fhir/{report['result'][0]['reference']}")["resourceType"] == (
        "Observation"
    )
