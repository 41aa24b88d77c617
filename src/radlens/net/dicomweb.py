"""A small DICOMweb client (PS3.18): QIDO-RS search, WADO-RS retrieve, STOW-RS store.

Used to pull studies from a PACS (Orthanc with its DICOMweb plugin) and push results
back. Credentials (HTTP basic or a bearer token) are sent, never logged: log lines and
error messages name the server by :func:`redact_url` only, and the route with its UIDs
replaced by ``{uid}``. UIDs put into a URL path must be DICOM UIDs (PS3.5 9.1).

Every ``httpx`` error is converted here, at one boundary, to :class:`DicomWebError`.
"""

from __future__ import annotations

import logging
import re
import ssl
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from radlens.errors import DicomWebError

log = logging.getLogger(__name__)

DICOM_MEDIA_TYPE = "application/dicom"
DICOM_JSON = "application/dicom+json"
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_MAX_UID_CHARS = 64


def redact_url(url: str) -> str:
    """``url`` without user name, password, query or fragment, for logs.

    Example:
        >>> redact_url("http://user:secret@pacs:8042/dicom-web?token=x")
        'http://pacs:8042/dicom-web'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass
class DicomWebClient:
    """DICOMweb requests to ``base_url`` (e.g. ``http://127.0.0.1:8042/dicom-web``).

    Example:
        >>> client = DicomWebClient("http://127.0.0.1:8042/dicom-web", "radlens", "s3cret")
        >>> [s["0020000D"]["Value"][0] for s in client.search_studies()]  # doctest: +SKIP
        ['1.2.3']
    """

    base_url: str
    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    timeout_s: float = 30.0
    transport: httpx.BaseTransport | None = field(default=None, repr=False)
    # How to trust an https PACS (radlens.net.tls.client_context: a CA file, a client
    # certificate); None: the default CAs. Verification is never off.
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        auth: httpx.Auth | None = None
        headers: dict[str, str] = {}
        if self.username:
            auth = httpx.BasicAuth(self.username, self.password)
        elif self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        parts = urlsplit(self.base_url)
        if parts.username and auth is None:
            auth = httpx.BasicAuth(parts.username, parts.password or "")
        self._http = httpx.Client(
            base_url=redact_url(self.base_url),
            auth=auth,
            headers=headers,
            timeout=self.timeout_s,
            transport=self.transport,
            verify=self.ssl_context if self.ssl_context is not None else True,
        )

    @property
    def server(self) -> str:
        """The base URL with credentials stripped: what logs may name."""
        return redact_url(self.base_url)

    def __repr__(self) -> str:
        return f"DicomWebClient({self.server!r})"

    def close(self) -> None:
        self._http.close()

    def search_studies(self, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """QIDO-RS ``GET /studies`` (PS3.18 10.6): DICOM JSON objects, one per study."""
        return self._search("/studies", params)

    def search_series(
        self, study_uid: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """QIDO-RS ``GET /studies/{study}/series``: one DICOM JSON object per series."""
        return self._search(f"{_study_path(study_uid)}/series", params)

    def search_instances(
        self, study_uid: str, series_uid: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """QIDO-RS ``GET /studies/{study}/series/{series}/instances``."""
        return self._search(f"{_series_path(study_uid, series_uid)}/instances", params)

    def retrieve_study(self, study_uid: str) -> list[bytes]:
        """WADO-RS ``GET /studies/{study}`` (PS3.18 10.4): each instance as PS3.10 bytes."""
        return self._retrieve(_study_path(study_uid))

    def retrieve_series(self, study_uid: str, series_uid: str) -> list[bytes]:
        """WADO-RS ``GET /studies/{study}/series/{series}``: each instance as PS3.10 bytes."""
        return self._retrieve(_series_path(study_uid, series_uid))

    def retrieve_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> list[bytes]:
        """WADO-RS ``GET /studies/{study}/series/{series}/instances/{sop}`` (one part)."""
        path = f"{_series_path(study_uid, series_uid)}/instances/{_uid(sop_uid)}"
        return self._retrieve(path)

    def store_instances(self, instances: Iterable[bytes], study_uid: str = "") -> dict[str, Any]:
        """STOW-RS ``POST /studies[/{uid}]`` (PS3.18 10.5); the DICOM JSON response."""
        boundary = uuid.uuid4().hex
        body = b"".join(
            b"--"
            + boundary.encode()
            + b"\r\nContent-Type: application/dicom\r\n\r\n"
            + raw
            + b"\r\n"
            for raw in instances
        )
        body += b"--" + boundary.encode() + b"--\r\n"
        content_type = f'multipart/related; type="{DICOM_MEDIA_TYPE}"; boundary={boundary}'
        path = _study_path(study_uid) if study_uid else "/studies"
        response = self._request(
            "POST",
            path,
            content=body,
            headers={"Content-Type": content_type, "Accept": DICOM_JSON},
        )
        if not response.content:
            return {}
        answer = response.json()
        return dict(answer) if isinstance(answer, dict) else {}

    def _search(self, path: str, params: Mapping[str, str] | None) -> list[dict[str, Any]]:
        response = self._request(
            "GET", path, params=dict(params or {}), headers={"Accept": DICOM_JSON}
        )
        if response.status_code == 204 or not response.content:
            return []
        try:
            found = response.json()
        except ValueError as exc:
            raise DicomWebError(f"{self.server}: GET {_redact_path(path)}: not JSON") from exc
        return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []

    def _retrieve(self, path: str) -> list[bytes]:
        accept = f'multipart/related; type="{DICOM_MEDIA_TYPE}"; transfer-syntax=*'
        response = self._request("GET", path, headers={"Accept": accept})
        return parse_multipart(response.headers.get("content-type", ""), response.content)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # Messages name the route with its UIDs replaced: a UID can identify a patient's study.
        route = _redact_path(path)
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DicomWebError(
                f"{self.server}: {method} {route} failed: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 400:
            raise DicomWebError(
                f"{self.server}: {method} {route} answered HTTP {response.status_code}"
            )
        return response


def _uid(uid: str) -> str:
    """``uid`` for a URL path segment, when it is a DICOM UID (PS3.5 9.1).

    Most UIDs come from the server's own answers; checking them keeps a bad one from
    turning into another route (``..``, ``/``).
    """
    if not _UID.fullmatch(uid) or len(uid) > _MAX_UID_CHARS:
        raise DicomWebError("a UID to put in the URL is not a DICOM UID (PS3.5 9.1)")
    return uid


def _study_path(study_uid: str) -> str:
    return f"/studies/{_uid(study_uid)}"


def _series_path(study_uid: str, series_uid: str) -> str:
    return f"{_study_path(study_uid)}/series/{_uid(series_uid)}"


def _redact_path(path: str) -> str:
    """``path`` with each UID segment replaced by ``{uid}``, for messages.

    Example:
        >>> _redact_path("/studies/1.2.3/series/4.5")
        '/studies/{uid}/series/{uid}'
    """
    return "/".join("{uid}" if _UID.fullmatch(part) else part for part in path.split("/"))


def parse_multipart(content_type: str, body: bytes) -> list[bytes]:
    r"""The parts of a ``multipart/related`` body (PS3.18 8.6.1.2, RFC 2046 5.1), as bytes.

    Example:
        >>> parse_multipart("multipart/related; boundary=b", b"--b\r\n\r\nhi\r\n--b--")
        [b'hi']

    Raises:
        DicomWebError: the answer is not multipart or has no boundary.
    """
    if not body:
        return []
    media, _, params = content_type.partition(";")
    boundary = ""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not media.strip().lower().startswith("multipart/") or not boundary:
        raise DicomWebError(f"expected a multipart answer, got {media.strip()!r}")
    delimiter = b"--" + boundary.encode()
    parts: list[bytes] = []
    # The preamble before the first delimiter and the epilogue after the last are ignored.
    for chunk in (b"\r\n" + body).split(b"\r\n" + delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        _, sep, content = chunk.partition(b"\r\n\r\n")
        if sep:
            parts.append(content)
    return parts
