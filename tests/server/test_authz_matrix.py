"""The authorization matrix: every route of the app x every role (and no login) x own and
another's object where ownership applies, each cell with its expected HTTP status.

The table below is written out by hand from the policy in ``docs/privacy.md`` and is not
derived from ``privacy.roles.PERMISSIONS``, so a change to either shows up here. A route
the app gains without a row in the table fails ``test_every_route_has_a_row``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from radlens.config import Settings
from radlens.models.card import read_card
from radlens.models.registry import zoo_folder
from radlens.privacy.deid import DeidState
from radlens.server.app import create_app
from radlens.store import accounts, review
from radlens.store.research import research_key
from serve_helpers import make_instance, result_with_finding, wait_until_ready

PASSWORD = "matrix-password-1"
ROLES = ("anonymous", "admin", "radiologist", "technologist", "researcher")
USERS = {"admin": "admin1", "radiologist": "rad1", "technologist": "tech1", "researcher": "res1"}
COLLEAGUE = "rad2"  # another radiologist: the owner of "other" objects
CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary=b'
STUDIES = 40  # analyzed studies for the cells that change one


def _row(
    admin: int,
    radiologist: int,
    technologist: int,
    researcher: int,
    anonymous: int = 401,
) -> dict[str, int]:
    return {
        "anonymous": anonymous,
        "admin": admin,
        "radiologist": radiologist,
        "technologist": technologist,
        "researcher": researcher,
    }


CLINICAL_READ = _row(200, 200, 200, 403)
READING = _row(200, 200, 403, 403)
EXPORT = _row(200, 200, 403, 403)
ADMIN_ONLY = _row(200, 403, 403, 403)
ANY_LOGIN = _row(200, 200, 200, 200)
OPEN = _row(200, 200, 200, 200, anonymous=200)

# (method, path) -> {variant: {role: status}}; variant "" where ownership does not apply.
MATRIX: dict[tuple[str, str], dict[str, dict[str, int]]] = {
    ("GET", "/healthz"): {"": OPEN},
    ("GET", "/readyz"): {"": OPEN},
    ("POST", "/api/auth/login"): {"": OPEN},
    ("POST", "/api/auth/logout"): {"": _row(204, 204, 204, 204, anonymous=204)},
    ("GET", "/api/auth/me"): {"": ANY_LOGIN},
    ("GET", "/api/auth/providers"): {"": OPEN},
    ("GET", "/api/auth/sessions"): {"": ANY_LOGIN},
    ("DELETE", "/api/auth/sessions/{session_id}"): {
        "own": _row(204, 204, 204, 204),
        "other": _row(404, 404, 404, 404),  # another account's session: not told it exists
    },
    ("PUT", "/api/auth/password"): {"own": _row(204, 204, 204, 204)},
    ("GET", "/api/auth/oidc/login"): {"": _row(404, 404, 404, 404, anonymous=404)},
    ("GET", "/api/auth/oidc/callback"): {"": _row(404, 404, 404, 404, anonymous=404)},
    ("GET", "/api/users"): {"": ADMIN_ONLY},
    ("POST", "/api/users"): {"": _row(201, 403, 403, 403)},
    ("PUT", "/api/users/{username}/role"): {"": ADMIN_ONLY},
    ("PUT", "/api/users/{username}/active"): {"": ADMIN_ONLY},
    ("PUT", "/api/users/{username}/password"): {"": _row(204, 403, 403, 403)},
    ("POST", "/dicomweb/studies"): {"": CLINICAL_READ},
    ("GET", "/dicomweb/studies/{study}/series"): {"": CLINICAL_READ},
    ("GET", "/dicomweb/studies/{study}/series/{series}/instances"): {"": CLINICAL_READ},
    ("GET", "/dicomweb/studies/{study}/series/{series}/metadata"): {"": CLINICAL_READ},
    (
        "GET",
        "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
    ): {"": CLINICAL_READ},
    ("GET", "/dicomweb/studies/{study}/series/{series}/instances/{instance}"): {"": CLINICAL_READ},
    ("GET", "/api/worklist"): {"": CLINICAL_READ},
    ("GET", "/api/studies/{study_uid}"): {"": CLINICAL_READ},
    ("POST", "/api/studies/{study_uid}/open"): {"": READING},
    ("PUT", "/api/studies/{study_uid}/findings/{finding_id}/review"): {"": READING},
    ("PUT", "/api/studies/{study_uid}/report"): {
        "own": READING,
        # another radiologist's draft: only an admin may take it over
        "other": _row(200, 403, 403, 403),
    },
    ("PUT", "/api/studies/{study_uid}/notes"): {"": _row(200, 200, 200, 403)},
    ("POST", "/api/studies/{study_uid}/sign"): {
        "own": READING,
        "other": _row(403, 403, 403, 403),  # nobody signs another reader's draft
    },
    ("GET", "/api/studies/{study_uid}/report.dcm"): {"": EXPORT},
    ("PUT", "/api/studies/{study_uid}/priority"): {"": READING},
    ("GET", "/api/studies/{study_uid}/findings/{finding_id}/heatmap.png"): {"": CLINICAL_READ},
    ("GET", "/api/learning/queue"): {"": READING},
    ("GET", "/api/monitoring"): {"": CLINICAL_READ},  # aggregates; no researcher access
    ("GET", "/api/models"): {"": CLINICAL_READ},  # cards: no patient data, for readers
    ("GET", "/api/models/{name}/{version}"): {"": CLINICAL_READ},
    ("GET", "/api/research/studies"): {"": _row(200, 403, 403, 200)},
    ("GET", "/api/research/instances/{instance_id}"): {"": _row(200, 403, 403, 200)},
    ("GET", "/fhir/DiagnosticReport"): {"": EXPORT},
    ("GET", "/fhir/Bundle/{study_uid}"): {"": EXPORT},
    ("GET", "/fhir/{resource_type}/{resource_id}"): {"": EXPORT},
    ("GET", "/"): {"": OPEN},
}

# Cells whose request changes the study: each gets an analyzed study of its own.
CHANGES_STUDY = {
    ("POST", "/api/studies/{study_uid}/open"),
    ("PUT", "/api/studies/{study_uid}/findings/{finding_id}/review"),
    ("PUT", "/api/studies/{study_uid}/report"),
    ("PUT", "/api/studies/{study_uid}/notes"),
    ("POST", "/api/studies/{study_uid}/sign"),
    ("PUT", "/api/studies/{study_uid}/priority"),
}


@dataclass
class World:
    """The app, one client per role, and the objects the requests name."""

    app: FastAPI
    clients: dict[str, TestClient]
    study: dict[str, Any]
    signed_uid: str
    fresh: Iterator[dict[str, Any]]
    instance_id: str
    counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def db(self) -> Any:
        return self.app.state.services.db  # type: ignore[attr-defined]


def _stow_body(*instances: bytes) -> bytes:
    body = b"".join(
        b"--b\r\nContent-Type: application/dicom\r\n\r\n" + i + b"\r\n" for i in instances
    )
    return body + b"--b--\r\n"


def _log_in(client: TestClient, username: str) -> None:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("matrix")
    settings = Settings(
        home=home,
        dicom_enabled=False,
        quiet_period_s=0,
        poll_interval_s=0.05,
        workers=1,
        session_idle_minutes=60,
    )
    app = create_app(settings, analyze=lambda study: result_with_finding(study, "pneumonia", 0.9))
    with TestClient(app) as main:
        db = app.state.services.db
        for role, name in USERS.items():
            accounts.add_user(db, name, PASSWORD, role)
        accounts.add_user(db, COLLEAGUE, PASSWORD, "radiologist")
        clients = {"anonymous": TestClient(app)}
        for role, name in USERS.items():
            clients[role] = TestClient(app)
            _log_in(clients[role], name)
        main.cookies.clear()
        _log_in(main, COLLEAGUE)
        uids = [f"1.2.826.0.1.3680043.9.7777.{n}" for n in range(1, STUDIES + 3)]
        stored = main.post(
            "/dicomweb/studies",
            content=_stow_body(*(make_instance(u, f"{u}.1") for u in uids)),
            headers={"content-type": CONTENT_TYPE},
        )
        assert stored.status_code == 200, stored.text
        items = {i["study_uid"]: i for i in wait_until_ready(main, len(uids), timeout_s=60)}
        details = [main.get(f"/api/studies/{u}").json() for u in uids if u in items]
        study, signed, *rest = details
        # A signed study (by the colleague) for report.dcm.
        review.save_report(db, signed["study_uid"], "No pneumonia.", COLLEAGUE)
        review.sign(db, signed["study_uid"], COLLEAGUE)
        pseudonyms = DeidState(research_key(settings.storage_dir))
        instance_id = pseudonyms.new_uid(f"{study['study_uid']}.1")
        yield World(app, clients, study, signed["study_uid"], iter(rest), instance_id)


def _url(  # noqa: C901 - one branch per route: the setup of its cell
    world: World, method: str, path: str, role: str, variant: str
) -> tuple[str, dict[str, Any]]:
    """The URL and request arguments of one cell, after its setup."""
    study = world.study
    if (method, path) in CHANGES_STUDY:
        study = next(world.fresh)
    uid = study["study_uid"]
    series = study["series"][0]["series_uid"]
    fid = study["findings"]["series"][0]["findings"][0]["id"]
    values: dict[str, str] = {
        "study_uid": uid,
        "study": uid,
        "series": series,
        "instance": f"{uid}.1",
        "frames": "1",
        "finding_id": fid,
        "instance_id": world.instance_id,
        "resource_type": "DiagnosticReport",
        "resource_id": "",
        "username": "",
        "session_id": "",
        "name": "cxr_pneumonia",
        "version": read_card(zoo_folder() / "cxr_pneumonia" / "card.json").version,
    }
    kwargs: dict[str, Any] = {}
    me = USERS.get(role, COLLEAGUE)
    n = next(world.counter)
    if path.endswith("/report") or path.endswith("/sign"):
        author = me if variant == "own" and role != "anonymous" else COLLEAGUE
        review.save_report(world.db, uid, "Draft.", author)
        kwargs = {"json": {"text": "Edited."}} if path.endswith("/report") else {}
    elif path.endswith("/review"):
        kwargs = {"json": {"decision": "accepted"}}
    elif path.endswith("/notes"):
        kwargs = {"json": {"text": "Cough."}}
    elif path.endswith("/priority"):
        kwargs = {"json": {"priority": "urgent"}}
    elif path == "/api/studies/{study_uid}/report.dcm" or path == "/fhir/Bundle/{study_uid}":
        values["study_uid"] = world.signed_uid
    elif path == "/fhir/DiagnosticReport":
        return f"/fhir/DiagnosticReport?study={world.signed_uid}", {}
    elif path == "/fhir/{resource_type}/{resource_id}":
        bundle = world.clients["admin"].get(f"/fhir/Bundle/{world.signed_uid}").json()
        resource = bundle["entry"][0]["resource"]
        values["resource_type"], values["resource_id"] = resource["resourceType"], resource["id"]
    elif path == "/api/auth/login":
        name = f"login{n}"
        accounts.add_user(world.db, name, PASSWORD, "radiologist")
        kwargs = {"json": {"username": name, "password": PASSWORD}}
    elif path == "/api/auth/password":
        kwargs = {"json": {"current_password": PASSWORD, "new_password": PASSWORD}}
    elif path == "/api/auth/sessions/{session_id}":
        owner = me if variant == "own" else COLLEAGUE
        token = accounts.open_session(world.db, owner, 1)
        (info,) = [s for s in accounts.list_sessions(world.db, owner, token) if s.current]
        values["session_id"] = info.id
    elif path == "/api/auth/oidc/callback":
        return "/api/auth/oidc/callback?state=s&code=c", {}
    elif path == "/api/users":
        if method == "POST":
            kwargs = {"json": {"username": f"new{n}", "password": PASSWORD, "role": "researcher"}}
    elif path.startswith("/api/users/{username}"):
        values["username"] = f"target{n}"
        accounts.add_user(world.db, values["username"], PASSWORD, "technologist")
        kwargs = {
            "role": {"json": {"role": "researcher"}},
            "active": {"json": {"active": False}},
            "password": {"json": {"password": "another-password-1"}},
        }[path.rsplit("/", 1)[1]]
    elif method == "POST" and path == "/dicomweb/studies":
        u = f"1.2.826.0.1.3680043.9.7778.{n}"
        kwargs = {
            "content": _stow_body(make_instance(u, f"{u}.1")),
            "headers": {"content-type": CONTENT_TYPE},
        }
    return path.format(**values), kwargs


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """The app's routes, also inside included routers."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(_api_routes(route.original_router.routes))
    return found


def _cells() -> list[tuple[str, str, str, str, int]]:
    return [
        (method, path, variant, role, status)
        for (method, path), variants in MATRIX.items()
        for variant, row in variants.items()
        for role, status in row.items()
        if not (variant == "other" and role == "anonymous")
    ]


def test_every_route_has_a_row(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path, dicom_enabled=False))
    routes = {(m, r.path) for r in _api_routes(app.routes) for m in r.methods if m != "HEAD"}
    assert routes - set(MATRIX) == set(), "a route without an authorization row"
    assert {k for k in MATRIX if k != ("GET", "/")} <= routes, "a row without a route"
    for variants in MATRIX.values():
        for row in variants.values():
            assert set(row) == set(ROLES)


@pytest.mark.parametrize(
    ("method", "path", "variant", "role", "expected"),
    _cells(),
    ids=[f"{m} {p} {v or '-'} {r}" for m, p, v, r, _ in _cells()],
)
def test_authorization_matrix(
    world: World, method: str, path: str, variant: str, role: str, expected: int
) -> None:
    url, kwargs = _url(world, method, path, role, variant)
    client = world.clients[role]
    response = client.request(method, url, follow_redirects=False, **kwargs)
    assert response.status_code == expected, (url, response.text[:300])
    if path in ("/api/auth/logout", "/api/auth/login"):  # the next cells need the session
        client.cookies.clear()
        if role != "anonymous":
            _log_in(client, USERS[role])


UNKNOWN = "1.2.826.0.1.3680043.9.7777.99999"


@pytest.mark.parametrize("role", ["technologist", "researcher"])
def test_a_forbidden_object_and_an_unknown_one_get_the_same_answer(world: World, role: str) -> None:
    """A role that may not see a kind of object learns nothing of which ones exist."""
    client = world.clients[role]
    known = world.signed_uid
    for template in (
        "/api/studies/{}",
        "/api/studies/{}/report.dcm",
        "/fhir/Bundle/{}",
        "/dicomweb/studies/{}/series",
    ):
        a, b = client.get(template.format(known)), client.get(template.format(UNKNOWN))
        if a.status_code == 403:
            assert (b.status_code, b.json()) == (a.status_code, a.json()), template
    # and a session id of another account answers like one that never existed
    token = accounts.open_session(world.db, COLLEAGUE, 1)
    (other,) = [s for s in accounts.list_sessions(world.db, COLLEAGUE, token) if s.current]
    a = client.delete(f"/api/auth/sessions/{other.id}")
    b = client.delete("/api/auth/sessions/0123456789abcdef0123")
    assert (a.status_code, a.json()) == (b.status_code, b.json()) == (404, b.json())
    assert any(s.id == other.id for s in accounts.list_sessions(world.db, COLLEAGUE))
