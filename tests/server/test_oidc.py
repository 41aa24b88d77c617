"""OIDC login against a real OpenID provider on loopback (not a mock of radlens).

The provider is a small FastAPI app served by uvicorn in a thread: discovery, JWKS,
authorize (it logs the configured user in at once) and token endpoints, RS256 ID tokens
signed with joserfc, PKCE S256 checked. It can be told to issue a bad ID token (another
nonce, audience, issuer or signing key; expired), which radlens must refuse.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey

from radlens.config import Settings
from radlens.privacy.audit import list_records
from radlens.server.app import create_app
from radlens.store.accounts import add_user, list_users
from serve_helpers import free_port, result_with_finding

CLIENT_ID, CLIENT_SECRET = "radlens", "provider-secret-1"


@dataclass
class Provider:
    issuer: str
    user: dict[str, Any] = field(
        default_factory=lambda: {"sub": "u-42", "preferred_username": "dr.grey", "roles": []}
    )
    tamper: dict[str, Any] = field(default_factory=dict)  # claims to override
    sign_with_other_key: bool = False
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)


def provider_app(provider: Provider) -> FastAPI:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
    other = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        return {
            "issuer": provider.issuer,
            "authorization_endpoint": f"{provider.issuer}/authorize",
            "token_endpoint": f"{provider.issuer}/token",
            "jwks_uri": f"{provider.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    @app.get("/jwks")
    def jwks() -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False)]}

    @app.get("/authorize")
    def authorize(request: Request) -> Any:
        q = request.query_params
        if (
            q.get("client_id") != CLIENT_ID
            or q.get("response_type") != "code"
            or "openid" not in q.get("scope", "").split()
            or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        provider.codes[code] = {
            "redirect_uri": q["redirect_uri"],
            "nonce": q.get("nonce", ""),
            "challenge": q["code_challenge"],
        }
        query = urlencode({"code": code, "state": q["state"]})
        return RedirectResponse(f"{q['redirect_uri']}?{query}", status_code=302)

    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        provider.token_requests.append(form)
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        user, _, password = base64.b64decode(credentials or "").decode().partition(":")
        if scheme.lower() != "basic" or (user, password) != (CLIENT_ID, CLIENT_SECRET):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = provider.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant["redirect_uri"]
            or challenge != grant["challenge"]
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {
            "iss": provider.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **provider.user,
            **provider.tamper,
        }
        signing = other if provider.sign_with_other_key else key
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, signing)
        return JSONResponse(
            {"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
        )

    return app


@pytest.fixture
def provider() -> Iterator[Provider]:
    port = free_port()
    found = Provider(f"http://127.0.0.1:{port}")
    server = uvicorn.Server(
        uvicorn.Config(provider_app(found), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield found
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def client(provider: Provider, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        home=tmp_path,
        dicom_enabled=False,
        workers=0,
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_role_map={"radiology-staff": "radiologist", "it-admins": "admin"},
    )
    app = create_app(settings, analyze=lambda study: result_with_finding(study))
    with TestClient(app) as test_client:
        yield test_client


def _log_in(client: TestClient) -> httpx.Response:
    """The browser's part: radlens -> provider -> radlens's callback."""
    start = client.get("/api/auth/oidc/login", follow_redirects=False)
    assert start.status_code == 302, start.text
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    assert back.path == "/api/auth/oidc/callback"
    return client.get(f"{back.path}?{back.query}", follow_redirects=False)


def test_oidc_login_opens_a_session_with_the_mapped_role(
    client: TestClient, provider: Provider
) -> None:
    provider.user["roles"] = ["radiology-staff", "lunch-club"]
    assert client.get("/api/auth/providers").json()["oidc"] is True
    start = client.get("/api/auth/oidc/login", follow_redirects=False)
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"][0]
    assert query["redirect_uri"] == ["http://testserver/api/auth/oidc/callback"]
    done = _log_in(client)
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert "httponly" in done.headers["set-cookie"].lower()
    assert client.get("/api/auth/me").json() == {"username": "dr.grey", "role": "radiologist"}
    assert client.get("/api/worklist").status_code == 200
    # the code was exchanged with the client secret and the PKCE verifier
    (request,) = provider.token_requests[-1:]
    assert request["code_verifier"] and request["grant_type"] == "authorization_code"
    db = client.app.state.services.db  # type: ignore[attr-defined]
    (account,) = [a for a in list_users(db) if a.username == "dr.grey"]
    assert account.sso and account.role.value == "radiologist"
    login_records = [r for r in list_records(db) if r.event == "login"]
    assert (login_records[-1].user_id, login_records[-1].outcome) == ("dr.grey", 0)


def test_the_role_follows_the_provider_at_each_login(
    client: TestClient, provider: Provider
) -> None:
    provider.user["roles"] = ["radiology-staff"]
    _log_in(client)
    provider.user["roles"] = ["it-admins", "radiology-staff"]  # the most privileged wins
    _log_in(client)
    assert client.get("/api/auth/me").json()["role"] == "admin"


def test_a_user_without_a_mapped_role_is_refused(client: TestClient, provider: Provider) -> None:
    provider.user["roles"] = ["lunch-club"]
    done = _log_in(client)
    assert done.status_code == 403 and "set-cookie" not in done.headers
    assert client.get("/api/auth/me").status_code == 401


@pytest.mark.parametrize(
    ("tamper", "other_key"),
    [
        ({"nonce": "replayed-nonce"}, False),
        ({"aud": "another-client"}, False),
        ({"iss": "http://evil.example"}, False),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, False),
        ({}, True),  # signed by a key the provider's JWKS does not hold
    ],
    ids=["nonce", "audience", "issuer", "expired", "signature"],
)
def test_an_id_token_that_fails_a_check_opens_no_session(
    client: TestClient, provider: Provider, tamper: dict[str, Any], other_key: bool
) -> None:
    provider.user["roles"] = ["radiology-staff"]
    provider.tamper, provider.sign_with_other_key = tamper, other_key
    done = _log_in(client)
    assert done.status_code == 401, done.text
    assert "set-cookie" not in done.headers
    assert client.get("/api/auth/me").status_code == 401
    db = client.app.state.services.db  # type: ignore[attr-defined]
    assert "dr.grey" not in {a.username for a in list_users(db)}


def test_a_state_is_used_once_and_an_unknown_one_is_refused(
    client: TestClient, provider: Provider
) -> None:
    provider.user["roles"] = ["radiology-staff"]
    start = client.get("/api/auth/oidc/login", follow_redirects=False)
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    back = urlsplit(at_provider.headers["location"])
    assert client.get(f"{back.path}?{back.query}", follow_redirects=False).status_code == 303
    client.cookies.clear()
    replay = client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert replay.status_code == 401
    forged = client.get("/api/auth/oidc/callback?state=made-up&code=x", follow_redirects=False)
    assert forged.status_code == 401
    assert client.get("/api/auth/me").status_code == 401


def test_oidc_never_takes_over_a_local_account(client: TestClient, provider: Provider) -> None:
    db = client.app.state.services.db  # type: ignore[attr-defined]
    add_user(db, "dr.grey", "a local password", "radiologist")
    provider.user["roles"] = ["it-admins"]
    assert _log_in(client).status_code == 409
    assert client.get("/api/auth/me").status_code == 401
