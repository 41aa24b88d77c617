"""TLS contexts: TLS 1.2 at least, peers verified by CA and host name, mutual TLS, file errors."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from radlens.errors import ConfigError
from radlens.net.tls import client_context, server_context
from tls_helpers import Pki, handshake, legacy_client_context, make_pki, tls_listener


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_server_and_client_contexts_start_at_tls_1_2(pki: Pki) -> None:
    server = server_context(pki.server_cert, pki.server_key)
    client = client_context(pki.ca)
    assert server.minimum_version == client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    assert client_context().check_hostname  # the system's CAs, same checks
    assert server.verify_mode == ssl.CERT_NONE  # no client certificate asked for


def test_a_client_verifying_with_the_ca_completes_tls_1_3_and_1_2(pki: Pki) -> None:
    with tls_listener(server_context(pki.server_cert, pki.server_key)) as (port, outcomes):
        assert handshake(port, client_context(pki.ca)) == "TLSv1.3"
        only_12 = client_context(pki.ca)
        only_12.maximum_version = ssl.TLSVersion.TLSv1_2
        assert handshake(port, only_12) == "TLSv1.2"
    assert outcomes == ["TLSv1.3", "TLSv1.2"]


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"]
)
def test_tls_before_1_2_is_refused_even_at_security_level_0(
    pki: Pki, version: ssl.TLSVersion
) -> None:
    server = server_context(pki.server_cert, pki.server_key)
    # A site that lowers OpenSSL's security level (old ciphers for an old modality) still
    # gets no TLS 1.0 or 1.1: the minimum version is what refuses them, not the level.
    server.set_ciphers("DEFAULT:@SECLEVEL=0")
    with tls_listener(server) as (port, outcomes), pytest.raises(ssl.SSLError):
        handshake(port, legacy_client_context(pki.ca, version))
    assert outcomes == ["refused"]


def test_the_client_refuses_a_server_whose_name_or_ca_does_not_match(pki: Pki) -> None:
    with tls_listener(server_context(pki.server_cert, pki.server_key)) as (port, _):
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            handshake(port, client_context(pki.ca), server_hostname="pacs.example.org")
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(port, client_context())  # the system's CAs do not know the test CA


def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_ca(pki: Pki) -> None:
    server = server_context(pki.server_cert, pki.server_key, client_ca_file=pki.ca)
    with tls_listener(server) as (port, outcomes):
        assert handshake(port, client_context(pki.ca, pki.client_cert, pki.client_key))
        with pytest.raises(OSError):
            handshake(port, client_context(pki.ca))  # no certificate
        with pytest.raises(OSError):
            handshake(port, client_context(pki.ca, pki.intruder_cert, pki.intruder_key))
    assert outcomes[0].startswith("TLSv1") and outcomes[1:] == ["refused", "refused"]


def test_missing_or_mismatched_files_are_config_errors_naming_the_file(
    pki: Pki, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="nope.pem: certificate or key file not found"):
        server_context(tmp_path / "nope.pem", pki.server_key)
    with pytest.raises(ConfigError, match="nope.key: certificate or key file not found"):
        server_context(pki.server_cert, tmp_path / "nope.key")
    with pytest.raises(ConfigError, match="server.pem: cannot load the certificate"):
        server_context(pki.server_cert, pki.client_key)  # a key of another certificate
    with pytest.raises(ConfigError, match="ca.pem: CA certificate file not found"):
        client_context(tmp_path / "ca.pem")
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="junk.pem: cannot load CA certificates"):
        server_context(pki.server_cert, pki.server_key, client_ca_file=tmp_path / "junk.pem")
