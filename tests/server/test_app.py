from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serve_helpers import make_instance, wait_until_ready

BOUNDARY = "radlens-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def multipart(*parts: bytes, part_type: str = "application/dicom") -> bytes:
    body = b""
    for part in parts:
        body += f"--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def test_health_readiness_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["migrations_at_head"] and ready.json()["database"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz", "/dicomweb/studies", "/api/worklist"} <= set(paths)


def test_every_route_is_built_with_the_app_not_at_its_first_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI builds a route's fields inside ``warnings.catch_warnings``; done in a request
    thread beside a job worker's warning scope, a warning it holds back escapes (an error
    under pytest). So the app builds them all under the warning lock when it is made: after
    that, serving any route builds nothing."""
    import fastapi.routing

    from radlens.config import Settings
    from radlens.server.app import create_app

    app = create_app(Settings(home=tmp_path))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a route was built at request time")

    monkeypatch.setattr(fastapi.routing, "get_dependant", refuse)
    with TestClient(app) as late:  # the lifespan starts the workers as in service
        assert late.get("/healthz").status_code == 200
        assert late.get("/api/worklist").status_code == 401  # matched, then refused
        assert late.get("/api/studies/1.2.3").status_code == 401


def test_stow_rs_stores_all_and_answers_200_with_references(client: TestClient) -> None:
    body = multipart(make_instance("1.2.1", "1.2.1.1"), make_instance("1.2.1", "1.2.1.2"))
    response = client.post(
        "/dicomweb/studies", content=body, headers={"content-type": CONTENT_TYPE}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/dicom+json")
    stored = response.json()["00081199"]["Value"]
    assert [item["00081155"]["Value"] for item in stored] == [["1.2.1.1"], ["1.2.1.2"]]
    assert "00081198" not in response.json()


def test_stow_rs_partial_failure_is_202_and_total_failure_409(client: TestClient) -> None:
    mixed = multipart(make_instance("1.2.1", "1.2.1.1"), b"not dicom at all" * 10)
    response = client.post(
        "/dicomweb/studies", content=mixed, headers={"content-type": CONTENT_TYPE}
    )
    assert response.status_code == 202
    failed = response.json()["00081198"]["Value"]
    assert [item["00081197"]["Value"] for item in failed] == [[0xC000]]
    bad = multipart(b"junk", b"\x00" * 200)
    response = client.post("/dicomweb/studies", content=bad, headers={"content-type": CONTENT_TYPE})
    assert response.status_code == 409
    assert len(response.json()["00081198"]["Value"]) == 2


def test_stow_rs_refuses_other_media_types_with_415(client: TestClient) -> None:
    response = client.post(
        "/dicomweb/studies", content=b"{}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_format"


def test_worklist_orders_by_priority_then_waiting_and_filters(client: TestClient) -> None:
    for study in ("1.2.1", "1.2.2", "1.2.3"):
        body = multipart(make_instance(study, f"{study}.9"))
        client.post("/dicomweb/studies", content=body, headers={"content-type": CONTENT_TYPE})
    items = wait_until_ready(client, 3)
    assert [i["study_uid"] for i in items] == ["1.2.2", "1.2.1", "1.2.3"]
    assert items[0]["priority"] == "urgent" and items[0]["modalities"] == ["CT"]
    assert all(i["turnaround_s"] is not None and i["analyses"] == 1 for i in items)
    assert client.get("/api/worklist", params={"modality": "MR"}).json() == []
    assert len(client.get("/api/worklist", params={"modality": "ct"}).json()) == 3
    assert client.get("/api/worklist", params={"status": "bogus"}).status_code == 422
    study = client.get("/api/studies/1.2.2").json()
    assert study["findings"]["schema"] == "radlens.findings/2"
    assert study["findings"]["priority"] == "urgent"
    assert client.get("/api/studies/9.9.9").status_code == 404
