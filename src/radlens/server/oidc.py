"""Optional OIDC login (OpenID Connect Core 1.0, authorization code flow with PKCE, RFC 7636)
for hospitals with an identity provider; authlib does the protocol.

``GET /api/auth/oidc/login`` sends the browser to the provider with a fresh ``state``,
``nonce`` and S256 code challenge; the three are kept server-side (``oidc_states``, by the
state's sha256) for 10 minutes and used once. ``GET /api/auth/oidc/callback`` exchanges the
code (client secret and code verifier) for tokens and has authlib check the ID token: its
signature against the provider's JWKS, ``iss`` (the configured issuer, which the discovery
document must also name), ``aud`` (the client id; ``azp`` when there are several), ``exp``,
``iat`` and the ``nonce``. The account is the user name claim; its role comes from the role
claim through ``oidc_role_map`` (``docs/privacy.md``). authlib's and joserfc's errors become
``AuthError`` here and nowhere else.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from authlib.integrations.base_client import FrameworkIntegration, OAuthError
from authlib.integrations.base_client.sync_app import BaseApp, OAuth2Mixin
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.httpx_client import OAuth2Client
from joserfc.errors import JoseError
from sqlalchemy import delete

from radlens.config import Settings
from radlens.errors import AuthError, ForbiddenError
from radlens.privacy.roles import Role
from radlens.store.db import Database
from radlens.store.models import OidcStateRow, utcnow

log = logging.getLogger(__name__)

STATE_LIFETIME = timedelta(minutes=10)
# When the role claim grants several roles, the first of this order wins.
_ROLE_ORDER = (Role.ADMIN, Role.RADIOLOGIST, Role.TECHNOLOGIST, Role.RESEARCHER)


class _Provider(OAuth2Mixin, OpenIDMixin, BaseApp):  # type: ignore[misc]
    """authlib's framework-independent OIDC client (as its Flask and Django apps are built)."""

    client_cls = OAuth2Client


@dataclass(frozen=True)
class OidcIdentity:
    """Who the provider says logged in: ``subject`` is ``iss|sub`` (unique and stable)."""

    subject: str
    username: str
    role: Role


class OidcLogin:
    """The OIDC login of one service (``Settings.oidc_*``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self._provider = _Provider(
            FrameworkIntegration("radlens"),
            name="radlens",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret.get_secret_value(),
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs={
                "scope": settings.oidc_scope,
                "code_challenge_method": "S256",
                "timeout": 10.0,
            },
        )

    def start(self, db: Database, redirect_uri: str) -> str:
        """The provider's authorization URL for a new login (its state stored).

        Raises:
            AuthError: the provider cannot be reached or its discovery document is wrong.
        """
        with _converted("start"):
            self._metadata()
            found = self._provider.create_authorization_url(
                redirect_uri,
                code_verifier=secrets.token_urlsafe(48),
                nonce=secrets.token_urlsafe(24),
                state=secrets.token_urlsafe(24),
            )
        now = utcnow()
        with db.sessions.begin() as session:
            session.execute(
                delete(OidcStateRow).where(OidcStateRow.created_at < now - STATE_LIFETIME)
            )
            session.add(
                OidcStateRow(
                    state_sha256=_sha256(found["state"]),
                    nonce=found["nonce"],
                    code_verifier=found["code_verifier"],
                    redirect_uri=redirect_uri,
                    created_at=now,
                )
            )
        return str(found["url"])

    def finish(self, db: Database, state: str, code: str) -> OidcIdentity:
        """Exchange the code, check the ID token, map the user to an account and a role.

        Raises:
            AuthError: an unknown, used or expired state, a refused code, or an ID token
                that fails any check.
            ForbiddenError: the user has no radlens role (``oidc_role_map``).
        """
        with db.sessions.begin() as session:
            row = session.get(OidcStateRow, _sha256(state), with_for_update=True)
            if row is None or row.created_at < utcnow() - STATE_LIFETIME:
                raise AuthError("OIDC login expired or unknown; start again")
            nonce, verifier, redirect_uri = row.nonce, row.code_verifier, row.redirect_uri
            session.delete(row)  # used once, whatever happens next
        with _converted("token"):
            token = self._provider.fetch_access_token(
                redirect_uri=redirect_uri, code=code, code_verifier=verifier
            )
            if "id_token" not in token:
                raise AuthError("the identity provider sent no ID token")
            claims = self._provider.parse_id_token(
                token,
                nonce=nonce,
                claims_options={
                    "iss": {"essential": True, "value": self.issuer},
                    "aud": {"essential": True, "value": self.settings.oidc_client_id},
                },
                leeway=60,
            )
        return self._identity(dict(claims))

    def _metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = self._provider.load_server_metadata()
        # OpenID Connect Discovery 1.0 §4.3: the document must name the issuer asked.
        if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
            raise AuthError("the identity provider's discovery document names another issuer")
        return metadata

    def _identity(self, claims: dict[str, Any]) -> OidcIdentity:
        name = claims.get(self.settings.oidc_username_claim)
        if not isinstance(name, str) or not name:
            raise AuthError(f"the ID token has no {self.settings.oidc_username_claim!r} claim")
        granted = claims.get(self.settings.oidc_role_claim, [])
        values = [granted] if isinstance(granted, str) else list(granted or [])
        roles = {
            Role(self.settings.oidc_role_map[v])
            for v in values
            if isinstance(v, str) and v in self.settings.oidc_role_map
        }
        role = next((r for r in _ROLE_ORDER if r in roles), None)
        if role is None:
            raise ForbiddenError("the identity provider grants this user no radlens role")
        return OidcIdentity(f"{claims['iss']}|{claims['sub']}", name, role)


_FAILURES = (OAuthError, JoseError, httpx.HTTPError, ValueError, KeyError, RuntimeError)


@contextmanager
def _converted(step: str) -> Iterator[None]:
    """Turns authlib's, joserfc's and httpx's errors into AuthError (the one boundary)."""
    try:
        yield
    except _FAILURES as exc:
        log.warning("OIDC %s failed: %s", step, type(exc).__name__)
        raise AuthError(f"OIDC login failed ({type(exc).__name__}); start again") from exc


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
