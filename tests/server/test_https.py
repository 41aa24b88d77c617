"""HTTPS for ``radlens serve``: a real server process with the test CA's certificate.

Health over TLS verified by CA and host name, TLS older than 1.2 and plain HTTP refused,
HSTS, a ``Secure`` session cookie, the redirect port; and the plain-HTTP policy of
production mode (refused on a network address unless a TLS proxy is declared).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from radlens.cli.main import app
from radlens.config import Settings
from radlens.errors import ConfigError, DicomWebError
from radlens.net.tls import client_context
from radlens.server.app import pacs_client
from radlens.server.https import HSTS, check_plain_http, is_loopback
from serve_helpers import free_port, stop_server
from tls_helpers import Pki, legacy_client_context, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass(frozen=True)
class HttpsServer:
    home: Path
    port: int
    redirect_port: int
    ca: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def https_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    home = tmp_path_factory.mktemp("home")
    port, redirect_port = free_port(), free_port()
    env = {
        **os.environ,
        "RADLENS_TLS_CERT_FILE": str(pki.server_cert),
        "RADLENS_TLS_KEY_FILE": str(pki.server_key),
        "RADLENS_HTTP_REDIRECT_PORT": str(redirect_port),
    }
    radlens = Path(sys.executable).with_name("radlens")
    with (home / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [str(radlens), "serve", "--home", str(home), "--port", str(port), "--no-dicom"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    server = HttpsServer(home, port, redirect_port, pki.ca)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(verify=client_context(pki.ca), timeout=2) as client:
            while True:
                try:
                    if client.get(f"{server.url}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log_tail = (home / "server.log").read_text(errors="replace")[-3000:]
                    pytest.fail(f"radlens serve (HTTPS) did not start:\n{log_tail}")
                time.sleep(0.2)
        yield server
    finally:
        assert stop_server(process) is not None


@pytest.mark.integration
def test_health_answers_over_tls_verified_by_ca_and_host_name(https_server: HttpsServer) -> None:
    with httpx.Client(verify=client_context(https_server.ca)) as client:
        answer = client.get(f"{https_server.url}/healthz")
    assert answer.status_code == 200
    assert answer.headers["Strict-Transport-Security"] == HSTS
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{https_server.url}/healthz")  # the system's CAs do not know the test CA


def _tls_version(port: int, ctx: ssl.SSLContext) -> str:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        return str(tls.version())


@pytest.mark.integration
@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"]
)
def test_tls_older_than_1_2_is_refused(https_server: HttpsServer, version: ssl.TLSVersion) -> None:
    with pytest.raises(ssl.SSLError):
        _tls_version(https_server.port, legacy_client_context(https_server.ca, version))
    only_12 = client_context(https_server.ca)
    only_12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert _tls_version(https_server.port, only_12) == "TLSv1.2"
    assert _tls_version(https_server.port, client_context(https_server.ca)) == "TLSv1.3"


@pytest.mark.integration
def test_plain_http_on_the_https_port_gets_no_answer(https_server: HttpsServer) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{https_server.port}/healthz", timeout=5)


@pytest.mark.integration
def test_the_session_cookie_is_secure_over_https(https_server: HttpsServer) -> None:
    password = (https_server.home / "initial-admin-password").read_text().strip()
    with httpx.Client(verify=client_context(https_server.ca)) as client:
        answer = client.post(
            f"{https_server.url}/api/auth/login", json={"username": "admin", "password": password}
        )
    assert answer.status_code == 200, answer.text
    cookie = answer.headers["set-cookie"].lower()
    assert "; secure" in cookie and "; httponly" in cookie and "samesite=strict" in cookie
    assert answer.headers["Strict-Transport-Security"] == HSTS


@pytest.mark.integration
def test_the_redirect_port_sends_every_request_to_https(https_server: HttpsServer) -> None:
    base = f"http://127.0.0.1:{https_server.redirect_port}"
    answer = httpx.get(f"{base}/api/worklist?status=ready")
    assert answer.status_code == 308
    assert answer.headers["location"] == f"{https_server.url}/api/worklist?status=ready"
    assert httpx.post(f"{base}/api/auth/login", content=b"{}").status_code == 308
    # A Host header that is no host name is not echoed into the Location.
    with socket.create_connection(("127.0.0.1", https_server.redirect_port), timeout=10) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: a<b>c\r\n\r\n")
        head = sock.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.0 308") or head.startswith("HTTP/1.1 308")
    assert f"Location: https://127.0.0.1:{https_server.port}/x\r\n" in head


@pytest.mark.integration
def test_the_dicomweb_client_trusts_an_https_pacs_through_pacs_ca_file(
    https_server: HttpsServer, tmp_path: Path
) -> None:
    """radlens's PACS client against radlens's own HTTPS DICOMweb (it wants a login)."""
    settings = Settings(
        home=tmp_path, pacs_url=f"{https_server.url}/dicomweb", pacs_ca_file=https_server.ca
    )
    study = "1.2.826.0.1.3680043.10.5"
    with closing(pacs_client(settings)) as trusting, pytest.raises(DicomWebError) as answered:
        trusting.search_series(study)
    assert "answered HTTP 401" in str(answered.value)  # TLS verified; the login is missing
    default = settings.model_copy(update={"pacs_ca_file": None})
    with closing(pacs_client(default)) as untrusting, pytest.raises(DicomWebError) as refused:
        untrusting.search_series(study)
    assert "answered" not in str(refused.value)  # refused at the handshake, never asked


# The plain-HTTP policy, without a server.


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.1.2.3", "radlens.example.org"]))


def test_production_refuses_plain_http_on_a_network_address(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    plain = Settings(home=tmp_path, host="0.0.0.0", production=True)
    with pytest.raises(ConfigError, match="plain HTTP on 0.0.0.0"):
        check_plain_http(plain)
    check_plain_http(plain.model_copy(update={"allow_plain_http": True}))  # a TLS proxy
    check_plain_http(Settings(home=tmp_path, host="127.0.0.1", production=True))
    tls = Settings(
        home=tmp_path,
        host="0.0.0.0",
        production=True,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
    )
    check_plain_http(tls)
    with caplog.at_level(logging.WARNING, logger="radlens.server.https"):
        check_plain_http(Settings(home=tmp_path, host="0.0.0.0"))  # embedded: a warning
    assert "logins and patient data would cross the network in clear" in caplog.text


def test_serve_stops_with_one_line_on_policy_or_certificate_errors(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADLENS_PRODUCTION", "true")
    args = ["serve", "--home", str(tmp_path), "--no-dicom", "--port", str(free_port())]
    refused = CliRunner().invoke(app, [*args, "--host", "0.0.0.0"])
    assert refused.exit_code == 1 and "allow_plain_http" in refused.output
    monkeypatch.delenv("RADLENS_PRODUCTION")
    monkeypatch.setenv("RADLENS_TLS_CERT_FILE", str(pki.server_cert))
    monkeypatch.setenv("RADLENS_TLS_KEY_FILE", str(tmp_path / "missing.key"))
    missing = CliRunner().invoke(app, args)
    assert missing.exit_code == 1
    assert "missing.key: certificate or key file not found" in missing.output


def test_settings_refuse_incomplete_tls(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ValueError, match="need tls_cert_file"):
        Settings(home=tmp_path, tls_key_file=pki.server_key)
    with pytest.raises(ValueError, match="dicom_tls_enabled needs"):
        Settings(home=tmp_path, dicom_tls_enabled=True)
    with pytest.raises(ValueError, match="dicom_tls_only needs"):
        Settings(home=tmp_path, dicom_tls_only=True)
    shared = Settings(
        home=tmp_path,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        dicom_tls_enabled=True,
    )
    assert (shared.dicom_tls_cert, shared.dicom_tls_key) == (pki.server_cert, pki.server_key)
