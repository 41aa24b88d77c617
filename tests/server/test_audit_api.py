"""Every patient-data route writes an audit record, for successes and failures alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from radlens.config import Settings
from radlens.privacy.audit import AuditEvent, StoredRecord, list_records, verify
from radlens.server.app import create_app
from radlens.server.audit import audit_event
from serve_helpers import READER, READER_PASSWORD, make_instance, wait_until_ready

CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary=b'
NOT_PATIENT_DATA = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/api/auth/me"),
    ("GET", "/api/auth/providers"),
    ("GET", "/api/auth/sessions"),  # the caller's own sessions
    ("GET", "/api/auth/oidc/login"),  # a redirect; its callback records the login
    ("GET", "/api/users"),  # account names and roles, to administrators
    ("GET", "/api/models"),  # model cards: what the models are, no patient data
    ("GET", "/api/models/{name}/{version}"),
    ("GET", "/"),
}
"""Routes that touch no patient data and change nothing about security; every other route
must declare an audit event."""


def _records(client: TestClient) -> list[StoredRecord]:
    return list_records(client.app.state.services.db)  # type: ignore[attr-defined]


def _events(route: APIRoute) -> set[AuditEvent]:
    found: set[AuditEvent] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if (event := audit_event(dependant.call)) is not None:
            found.add(event)
        stack.extend(dependant.dependencies)
    return found


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """The app's routes, also inside included routers (FastAPI keeps those apart)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(_api_routes(route.original_router.routes))
    return found


def test_every_patient_data_route_is_audited(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path, dicom_enabled=False))
    routes = _api_routes(app.routes)
    # Every route the OpenAPI document lists was found (none hides from this test).
    documented = {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}
    assert documented <= {(m, r.path) for r in routes for m in r.methods}
    assert len(routes) > 15
    missing = [
        f"{sorted(r.methods)} {r.path}"
        for r in routes
        if not {(m, r.path) for m in r.methods} <= NOT_PATIENT_DATA and len(_events(r)) != 1
    ]
    assert missing == []


@pytest.fixture
def study(client: TestClient) -> dict[str, Any]:
    body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + make_instance("1.4.2", "1.4.2.1")
    response = client.post(
        "/dicomweb/studies",
        content=body + b"\r\n--b--\r\n",
        headers={"content-type": CONTENT_TYPE},
    )
    assert response.status_code == 200, response.text
    (item,) = wait_until_ready(client, 1)
    detail: dict[str, Any] = client.get(f"/api/studies/{item['study_uid']}").json()
    return detail


def _call(client: TestClient, method: str, url: str, **kwargs: Any) -> StoredRecord:
    """Make one request; return the one audit record it left."""
    before = len(_records(client))
    response = client.request(method, url, **kwargs)
    assert response.status_code < 500, response.text
    records = _records(client)
    assert len(records) == before + 1, f"{method} {url} left {len(records) - before} records"
    return records[-1]


def test_each_patient_data_access_leaves_a_record(
    client: TestClient,
    study: dict[str, Any],  # type: ignore[type-arg]
) -> None:
    uid = study["study_uid"]
    series = study["series"][0]["series_uid"]
    sop = "1.4.2.1"
    fid = study["findings"]["series"][0]["findings"][0]["id"]
    bundle = client.get(f"/fhir/Bundle/{uid}").json()
    resource = bundle["entry"][0]["resource"]
    calls: list[tuple[str, str, dict[str, Any], AuditEvent]] = [
        ("GET", "/api/worklist", {}, AuditEvent.WORKLIST_VIEWED),
        ("GET", f"/api/studies/{uid}", {}, AuditEvent.STUDY_VIEWED),
        ("POST", f"/api/studies/{uid}/open", {}, AuditEvent.STUDY_OPENED),
        (
            "PUT",
            f"/api/studies/{uid}/findings/{fid}/review",
            {"json": {"decision": "accepted"}},
            AuditEvent.FINDING_REVIEWED,
        ),
        (
            "PUT",
            f"/api/studies/{uid}/priority",
            {"json": {"priority": "urgent"}},
            AuditEvent.PRIORITY_CHANGED,
        ),
        ("PUT", f"/api/studies/{uid}/notes", {"json": {"text": "cough"}}, AuditEvent.NOTES_SAVED),
        (
            "PUT",
            f"/api/studies/{uid}/report",
            {"json": {"text": "No pneumonia."}},
            AuditEvent.REPORT_SAVED,
        ),
        ("GET", f"/api/studies/{uid}/findings/{fid}/heatmap.png", {}, AuditEvent.HEATMAP_VIEWED),
        ("GET", f"/dicomweb/studies/{uid}/series", {}, AuditEvent.INSTANCES_QUERIED),
        (
            "GET",
            f"/dicomweb/studies/{uid}/series/{series}/instances",
            {},
            AuditEvent.INSTANCES_QUERIED,
        ),
        ("GET", f"/dicomweb/studies/{uid}/series/{series}/metadata", {}, AuditEvent.IMAGES_VIEWED),
        (
            "GET",
            f"/dicomweb/studies/{uid}/series/{series}/instances/{sop}/frames/1",
            {},
            AuditEvent.IMAGES_VIEWED,
        ),
        (
            "GET",
            f"/dicomweb/studies/{uid}/series/{series}/instances/{sop}",
            {},
            AuditEvent.IMAGES_VIEWED,
        ),
        ("GET", f"/fhir/DiagnosticReport?study={uid}", {}, AuditEvent.FHIR_QUERIED),
        ("GET", f"/fhir/{resource['resourceType']}/{resource['id']}", {}, AuditEvent.FHIR_READ),
        ("GET", f"/fhir/Bundle/{uid}", {}, AuditEvent.EXPORTED),
        ("POST", f"/api/studies/{uid}/sign", {}, AuditEvent.REPORT_SIGNED),
    ]
    for method, url, kwargs, event in calls:
        record = _call(client, method, url, **kwargs)
        assert (record.event, record.user_id, record.outcome) == (event.value, READER, 0), url
        if event not in (AuditEvent.WORKLIST_VIEWED, AuditEvent.FHIR_READ):
            assert record.study_uid == uid, url
        user = record.record["ActiveParticipant"][0]
        assert user["UserIsRequestor"] is True and user["NetworkAccessPointID"]
    assert verify(client.app.state.services.db).ok  # type: ignore[attr-defined]


def test_failures_are_recorded_with_their_outcome(
    client: TestClient,
    study: dict[str, Any],  # type: ignore[type-arg]
) -> None:
    uid = study["study_uid"]
    missing = _call(client, "GET", "/api/studies/9.9.9")
    assert (missing.event, missing.outcome, missing.study_uid) == ("study-viewed", 4, "9.9.9")
    assert missing.record["EventIdentification"]["EventOutcomeDescription"] == "HTTP 404"
    _call(client, "POST", f"/api/studies/{uid}/sign")
    again = _call(client, "POST", f"/api/studies/{uid}/sign")
    assert (again.event, again.outcome) == ("report-signed", 4)

    logout = _call(client, "POST", "/api/auth/logout")
    assert (logout.event, logout.user_id, logout.outcome) == ("logout", READER, 0)
    denied = _call(client, "GET", f"/api/studies/{uid}")
    assert (denied.user_id, denied.outcome, denied.study_uid) == ("anonymous", 4, uid)
    assert denied.record["EventIdentification"]["EventOutcomeDescription"] == "HTTP 401"
    denied_images = _call(client, "GET", f"/dicomweb/studies/{uid}/series")
    assert (denied_images.event, denied_images.outcome) == ("instances-queried", 4)

    wrong = _call(client, "POST", "/api/auth/login", json={"username": READER, "password": "nope"})
    assert (wrong.event, wrong.user_id, wrong.outcome) == ("login", READER, 4)
    assert wrong.record["EventIdentification"]["EventID"]["csd-code"] == "110114"
    right = _call(
        client, "POST", "/api/auth/login", json={"username": READER, "password": READER_PASSWORD}
    )
    assert (right.event, right.outcome) == ("login", 0)
    assert verify(client.app.state.services.db).ok  # type: ignore[attr-defined]
