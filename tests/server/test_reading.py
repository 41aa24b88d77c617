"""The reading room over HTTP: login, the reading flow, heatmaps and WADO-RS for the viewer."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import select

from radlens.net.dicomweb import parse_multipart
from radlens.store.models import SessionRow
from serve_helpers import READER, READER_PASSWORD, make_instance, wait_until_ready

CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary=b'


def _stow(client: TestClient, *instances: bytes) -> None:
    body = b"".join(
        b"--b\r\nContent-Type: application/dicom\r\n\r\n" + i + b"\r\n" for i in instances
    )
    response = client.post(
        "/dicomweb/studies", content=body + b"--b--\r\n", headers={"content-type": CONTENT_TYPE}
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def study(client: TestClient) -> dict:  # type: ignore[type-arg]
    """An analyzed urgent study (one CT instance, one finding with a heatmap)."""
    _stow(client, make_instance("1.4.2", "1.4.2.1"))
    (item,) = wait_until_ready(client, 1)
    detail: dict = client.get(f"/api/studies/{item['study_uid']}").json()  # type: ignore[type-arg]
    return detail


def _fid(study: dict) -> str:  # type: ignore[type-arg]
    fid: str = study["findings"]["series"][0]["findings"][0]["id"]
    return fid


# --- accounts ---------------------------------------------------------------------------


def test_api_and_wado_need_a_login(client: TestClient, study: dict) -> None:  # type: ignore[type-arg]
    client.post("/api/auth/logout")
    series = study["series"][0]
    for url in (
        "/api/worklist",
        f"/api/studies/{study['study_uid']}",
        "/api/auth/me",
        f"/dicomweb/studies/{study['study_uid']}/series/{series['series_uid']}/metadata",
        f"/api/studies/{study['study_uid']}/findings/{_fid(study)}/heatmap.png",
    ):
        response = client.get(url)
        assert response.status_code == 401, url
        assert response.json()["error"] == "unauthorized"
    assert (
        client.put(f"/api/studies/{study['study_uid']}/report", json={"text": "x"}).status_code
        == 401
    )
    # Health and readiness stay open (STOW-RS needs a login too: test_authz_matrix.py).
    assert client.get("/healthz").status_code == 200


def test_login_logout_and_wrong_password(client: TestClient) -> None:
    assert client.get("/api/auth/me").json() == {"username": READER, "role": "radiologist"}
    client.post("/api/auth/logout")
    assert client.get("/api/auth/me").status_code == 401
    wrong = client.post("/api/auth/login", json={"username": READER, "password": "nope-nope-nope"})
    unknown = client.post("/api/auth/login", json={"username": "who", "password": READER_PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()  # never says which part was wrong
    ok = client.post("/api/auth/login", json={"username": READER, "password": READER_PASSWORD})
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/api/auth/me").json() == {"username": READER, "role": "radiologist"}


def test_tampered_tokens_and_a_database_copy_open_no_session(client: TestClient) -> None:
    token = client.cookies.get("radlens_session")
    assert token
    with client.app.state.services.db.sessions() as session:  # type: ignore[attr-defined]
        (stored,) = session.scalars(select(SessionRow.token_sha256)).all()
    for forged in (token[:-2] + "xx", stored, ""):
        client.cookies.clear()
        client.cookies.set("radlens_session", forged)
        assert client.get("/api/worklist").status_code == 401
    client.cookies.clear()
    client.cookies.set("radlens_session", token)
    assert client.get("/api/worklist").status_code == 200


# --- reading flow -----------------------------------------------------------------------


def test_reading_flow_open_review_report_sign(client: TestClient, study: dict) -> None:  # type: ignore[type-arg]
    uid, fid = study["study_uid"], _fid(study)
    assert study["status"] == "ready" and study["first_viewed_at"] is None
    assert study["findings"]["series"][0]["findings"][0]["has_heatmap"] is True
    opened = client.post(f"/api/studies/{uid}/open").json()
    assert opened["status"] == "in_review" and opened["time_to_view_s"] is not None

    review = client.put(
        f"/api/studies/{uid}/findings/{fid}/review",
        json={"decision": "edited", "label": "Atelectasis", "note": "band-like"},
    )
    assert review.status_code == 200 and review.json()["username"] == READER
    bad = client.put(f"/api/studies/{uid}/findings/{fid}/review", json={"decision": "maybe"})
    assert bad.status_code == 422
    missing = client.put(
        f"/api/studies/{uid}/findings/{'0' * 16}/review", json={"decision": "accepted"}
    )
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"

    assert client.post(f"/api/studies/{uid}/sign").status_code == 409  # empty report
    saved = client.put(f"/api/studies/{uid}/report", json={"text": "Right basal atelectasis."})
    assert saved.json()["updated_by"] == READER
    detail = client.get(f"/api/studies/{uid}").json()
    assert detail["reviews"][fid]["decision"] == "edited"
    assert detail["reviews"][fid]["label"] == "Atelectasis"
    assert detail["report"]["text"] == "Right basal atelectasis."

    signed = client.post(f"/api/studies/{uid}/sign").json()
    assert signed["status"] == "signed" and signed["report"]["signed_by"] == READER
    again = client.put(f"/api/studies/{uid}/report", json={"text": "changed"})
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert client.get("/api/worklist", params={"status": "signed"}).json()[0]["study_uid"] == uid


def test_radiologist_priority_over_http(client: TestClient) -> None:
    _stow(client, make_instance("1.4.1", "1.4.1.1"), make_instance("1.4.2", "1.4.2.1"))
    items = wait_until_ready(client, 2)
    assert [i["study_uid"] for i in items] == ["1.4.2", "1.4.1"]
    lifted = client.put("/api/studies/1.4.1/priority", json={"priority": "critical"}).json()
    assert lifted["priority"] == "critical" and lifted["ai_priority"] == "routine"
    order = [i["study_uid"] for i in client.get("/api/worklist").json()]
    assert order == ["1.4.1", "1.4.2"]
    assert (
        client.get("/api/worklist", params={"priority": "critical"}).json()[0]["study_uid"]
        == "1.4.1"
    )
    assert client.put("/api/studies/1.4.1/priority", json={"priority": "soon"}).status_code == 422
    assert client.put("/api/studies/9.9/priority", json={"priority": None}).status_code == 404


def test_heatmap_png(client: TestClient, study: dict) -> None:  # type: ignore[type-arg]
    uid, fid = study["study_uid"], _fid(study)
    response = client.get(f"/api/studies/{uid}/findings/{fid}/heatmap.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    rgba = np.asarray(PILImage.open(io.BytesIO(response.content)))
    assert rgba.shape == (16, 16, 4)
    assert rgba[..., 3].max() > 100 and rgba[0, 0, 3] == 0  # opaque where hot, clear elsewhere
    for bad in ("0" * 16, "..%2F..%2Fradlens.sqlite", "ABC"):
        assert client.get(f"/api/studies/{uid}/findings/{bad}/heatmap.png").status_code == 404


# --- WADO-RS / QIDO-RS for the viewer ---------------------------------------------------


def test_wado_metadata_and_frames_match(client: TestClient, study: dict) -> None:  # type: ignore[type-arg]
    uid = study["study_uid"]
    (series,) = study["series"]
    (instance,) = series["instances"]
    base = f"/dicomweb/studies/{uid}/series/{series['series_uid']}"
    (metadata,) = client.get(f"{base}/metadata").json()
    ds = pydicom.Dataset.from_json(metadata)
    assert "PixelData" not in ds and ds.SOPInstanceUID == instance["sop_uid"]

    response = client.get(f"{base}/instances/{instance['sop_uid']}/frames/1")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        'multipart/related; type="application/octet-stream"'
    )
    parts = parse_multipart(response.headers["content-type"], response.content)
    assert len(parts) == 1
    assert len(parts[0]) == ds.Rows * ds.Columns * ds.BitsAllocated // 8
    original = pydicom.dcmread(io.BytesIO(make_instance("1.4.2", "1.4.2.1")))
    sent = np.frombuffer(parts[0], dtype="<i2" if ds.PixelRepresentation else "<u2")
    assert np.array_equal(sent.reshape(ds.Rows, ds.Columns), original.pixel_array)

    assert client.get(f"{base}/instances/{instance['sop_uid']}/frames/2").status_code == 404
    assert client.get(f"{base}/instances/{instance['sop_uid']}/frames/0").status_code == 422
    assert client.get(f"{base}/instances/9.9/frames/1").status_code == 404
    assert client.get(f"/dicomweb/studies/{uid}/series/9.9/metadata").status_code == 404


def test_wado_instance_and_qido(client: TestClient, study: dict) -> None:  # type: ignore[type-arg]
    uid = study["study_uid"]
    series_uid = study["series"][0]["series_uid"]
    sop = study["series"][0]["instances"][0]["sop_uid"]
    found = client.get(f"/dicomweb/studies/{uid}/series").json()
    assert found[0]["0020000E"]["Value"] == [series_uid]
    assert found[0]["00080060"]["Value"] == ["CT"]
    instances = client.get(f"/dicomweb/studies/{uid}/series/{series_uid}/instances").json()
    assert instances[0]["00080018"]["Value"] == [sop]
    response = client.get(f"/dicomweb/studies/{uid}/series/{series_uid}/instances/{sop}")
    (part,) = parse_multipart(response.headers["content-type"], response.content)
    assert part == make_instance("1.4.2", "1.4.2.1")  # the bytes as stored
    assert client.get("/dicomweb/studies/9.9/series").status_code == 404
    assert client.get("/dicomweb/studies/not-a-uid/series").status_code == 422


def test_security_headers_and_no_caching_of_patient_data(client: TestClient) -> None:
    response = client.get("/api/worklist")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
