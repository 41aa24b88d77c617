"""Logins over HTTP: rate limiting (429 + Retry-After), automatic logoff, HTTP Basic for
DICOMweb clients, and what a login tells the web UI."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from radlens.config import Settings
from radlens.server.app import create_app
from radlens.store.accounts import add_user
from radlens.store.models import SessionRow, utcnow
from serve_helpers import make_instance, result_with_finding

PASSWORD = "a-good-password-1"
CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary=b'


@pytest.fixture
def app_client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        home=tmp_path,
        db=database_url,
        dicom_enabled=False,
        workers=0,
        login_max_failures=3,
        login_max_failures_ip=6,
        login_lockout_s=30,
        session_idle_minutes=15,
    )
    with TestClient(create_app(settings, analyze=result_with_finding)) as client:
        db = client.app.state.services.db  # type: ignore[attr-defined]
        add_user(db, "ann", PASSWORD, "radiologist")
        add_user(db, "tom", PASSWORD, "technologist")
        add_user(db, "rey", PASSWORD, "researcher")
        yield client


def _login(client: TestClient, name: str, password: str = PASSWORD) -> int:
    response = client.post("/api/auth/login", json={"username": name, "password": password})
    return response.status_code


def test_repeated_failures_get_429_with_retry_after_even_with_the_right_password(
    app_client: TestClient,
) -> None:
    assert [_login(app_client, "ann", "wrong-password") for _ in range(3)] == [401] * 3
    locked = app_client.post("/api/auth/login", json={"username": "ann", "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["error"] == "too_many_requests"
    assert 1 <= int(locked.headers["retry-after"]) <= 30
    assert _login(app_client, "tom") == 200  # another name from the same address still may
    # the address limit (6) stops guessing across names
    for name in ("x1", "x2", "x3"):
        assert _login(app_client, name, "wrong-password") == 401
    assert _login(app_client, "rey") == 429


def test_a_session_unused_for_the_idle_time_is_logged_off(app_client: TestClient) -> None:
    assert _login(app_client, "ann") == 200
    assert app_client.get("/api/worklist").status_code == 200
    db = app_client.app.state.services.db  # type: ignore[attr-defined]
    with db.sessions.begin() as session:
        session.execute(update(SessionRow).values(last_seen_at=utcnow() - timedelta(minutes=16)))
    response = app_client.get("/api/worklist")
    assert response.status_code == 401 and "without use" in response.json()["detail"]
    assert app_client.get("/api/auth/me").status_code == 401  # the session is gone


def test_login_answers_with_the_role_for_the_web_ui(app_client: TestClient) -> None:
    response = app_client.post("/api/auth/login", json={"username": "tom", "password": PASSWORD})
    assert response.json() == {"username": "tom", "role": "technologist"}


def _basic(name: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def test_dicomweb_clients_authenticate_with_http_basic_and_roles_still_apply(
    app_client: TestClient,
) -> None:
    body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + make_instance("1.9.1", "1.9.1.1")
    body += b"\r\n--b--\r\n"
    headers = {"content-type": CONTENT_TYPE}
    stow = "/dicomweb/studies"
    assert app_client.post(stow, content=body, headers=headers).status_code == 401
    wrong = headers | _basic("tom", "not-the-password")
    assert app_client.post(stow, content=body, headers=wrong).status_code == 401
    researcher = headers | _basic("rey", PASSWORD)
    assert app_client.post(stow, content=body, headers=researcher).status_code == 403
    sender = headers | _basic("tom", PASSWORD)
    assert app_client.post(stow, content=body, headers=sender).status_code == 200
    assert "set-cookie" not in app_client.post(stow, content=body, headers=sender).headers
    # the web UI's /api takes the session cookie only
    assert app_client.get("/api/worklist", headers=_basic("ann", PASSWORD)).status_code == 401
    malformed = {"authorization": "Basic !!!"}
    assert app_client.get("/dicomweb/studies/1.9.1/series", headers=malformed).status_code == 401
