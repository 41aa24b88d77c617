"""``GET /api/studies/{uid}/report.dcm`` and the PACS push at signing: the signed report SR."""

from __future__ import annotations

import io
import logging

import httpx
import pydicom
import pytest
from fastapi.testclient import TestClient
from highdicom.sr import EnhancedSR
from pydicom.uid import EnhancedSRStorage

from radlens.net.dicomweb import DicomWebClient, parse_multipart
from radlens.report.signed_sr import read_signed_sr
from serve_helpers import READER, make_instance, wait_until_ready

CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary=b'
REPORT = "FINDINGS:\nRight basal opacity.\n\nIMPRESSION: Right lower lobe pneumonia."


def _analyzed_study(client: TestClient, study_uid: str = "1.4.2") -> str:
    instance = make_instance(study_uid, f"{study_uid}.1")
    body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + instance + b"\r\n--b--\r\n"
    stored = client.post("/dicomweb/studies", content=body, headers={"content-type": CONTENT_TYPE})
    assert stored.status_code == 200, stored.text
    wait_until_ready(client, 1)
    return study_uid


def _sign(client: TestClient, uid: str) -> None:
    assert client.put(f"/api/studies/{uid}/report", json={"text": REPORT}).status_code == 200
    assert client.post(f"/api/studies/{uid}/sign").status_code == 200


def _pacs(status: int = 200) -> tuple[DicomWebClient, list[tuple[str, list[bytes]]]]:
    """A push client whose PACS (httpx MockTransport) notes each STOW-RS."""
    stored: list[tuple[str, list[bytes]]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        parts = parse_multipart(request.headers["content-type"], request.content)
        stored.append((request.url.path, parts))
        return httpx.Response(status, json={})

    return DicomWebClient(
        "http://pacs.test/dicom-web", transport=httpx.MockTransport(handle)
    ), stored


def test_report_dcm_is_refused_until_signed_then_is_the_verified_sr(client: TestClient) -> None:
    uid = _analyzed_study(client)
    before = client.get(f"/api/studies/{uid}/report.dcm")
    assert before.status_code == 409 and before.json()["error"] == "conflict"
    assert client.get("/api/studies/9.9.9/report.dcm").status_code == 404

    _sign(client, uid)
    answer = client.get(f"/api/studies/{uid}/report.dcm")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/dicom"
    dataset = pydicom.dcmread(io.BytesIO(answer.content))
    sr = EnhancedSR.from_dataset(dataset)
    assert sr.SOPClassUID == EnhancedSRStorage and sr.StudyInstanceUID == uid
    record = read_signed_sr(dataset)
    assert [(s.heading, s.text) for s in record.sections] == [
        ("Findings", "Right basal opacity."),
        ("Impressions", "Right lower lobe pneumonia."),
    ]
    assert record.verifying_observer_name == record.observer_name == READER
    assert record.verifying_organization == "radlens site"
    assert record.evidence == (f"{uid}.1",)
    detail = client.get(f"/api/studies/{uid}").json()
    signed_at = record.verified_at.replace(tzinfo=None).isoformat()
    assert detail["report"]["signed_at"].startswith(signed_at[:19])
    # The kept file is served again: the same instance, byte for byte.
    assert client.get(f"/api/studies/{uid}/report.dcm").content == answer.content

    client.post("/api/auth/logout")
    assert client.get(f"/api/studies/{uid}/report.dcm").status_code == 401


def test_signing_pushes_the_sr_into_the_study_on_the_pacs(client: TestClient) -> None:
    uid = _analyzed_study(client)
    pacs, stored = _pacs()
    client.app.state.services.push_client = pacs  # type: ignore[attr-defined]
    _sign(client, uid)
    [(path, [raw])] = stored
    assert path == f"/dicom-web/studies/{uid}"
    assert raw == client.get(f"/api/studies/{uid}/report.dcm").content
    client.app.state.services.push_client = None  # type: ignore[attr-defined]
    pacs.close()


def test_a_pacs_error_at_signing_is_logged_and_the_report_stays_signed(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    uid = _analyzed_study(client)
    pacs, stored = _pacs(status=503)
    client.app.state.services.push_client = pacs  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR):
        _sign(client, uid)
    assert len(stored) == 1 and "signed report push failed" in caplog.text
    assert client.get(f"/api/studies/{uid}").json()["status"] == "signed"
    assert client.get(f"/api/studies/{uid}/report.dcm").status_code == 200
    client.app.state.services.push_client = None  # type: ignore[attr-defined]
    pacs.close()
