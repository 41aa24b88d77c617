"""A throwaway PKI for the TLS tests: a CA, a server certificate and a client certificate.

Made with ``cryptography`` (RSA 2048, SHA-256, one day valid). The server certificate names
``localhost`` and ``127.0.0.1``, so host name verification passes on loopback and fails
for any other name. A second, unrelated CA signs an "intruder" client certificate.
"""

from __future__ import annotations

import datetime as dt
import gc
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from radlens.warning_scopes import ignoring


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate (PEM): trust anchor for both sides
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    intruder_cert: Path  # signed by another CA
    intruder_key: Path


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _certificate("radlens test CA", None, None, ca=True)
    other_key, other_cert = _certificate("other CA", None, None, ca=True)
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    server = _certificate("localhost", (ca_key, ca_cert), names, server=True)
    client = _certificate("TESTSCU", (ca_key, ca_cert), None)
    intruder = _certificate("INTRUDER", (other_key, other_cert), None)
    _write(folder / "ca.pem", ca_cert)
    paths = []
    for name, (key, cert) in {"server": server, "client": client, "intruder": intruder}.items():
        _write(folder / f"{name}.pem", cert)
        key_path = folder / f"{name}.key"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        paths += [folder / f"{name}.pem", key_path]
    return Pki(folder / "ca.pem", *paths)


def _certificate(
    common_name: str,
    issuer: tuple[rsa.RSAPrivateKey, x509.Certificate] | None,
    names: list[x509.GeneralName] | None,
    ca: bool = False,
    server: bool = False,
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    signer_key, issuer_name = (key, subject) if issuer is None else (issuer[0], issuer[1].subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[0].public_key()),
            critical=False,
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        # A DICOM node's certificate serves both ends (IHE ATNA): the SCP's and the SCU's.
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server:
            usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(signer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def legacy_client_context(ca: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers only ``version`` (TLS 1.0 or 1.1 need security level 0 in
    OpenSSL 3, so the client side cannot be what refuses them)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with ignoring(DeprecationWarning):  # that is the point here
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


@contextmanager
def tls_listener(ctx: ssl.SSLContext) -> Iterator[tuple[int, list[str]]]:
    """A loopback port whose connections are TLS-handshaken with ``ctx``: (port, outcomes),
    each outcome the negotiated version or ``"refused"``."""
    outcomes: list[str] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    outcomes.append(str(tls.version()))
                    tls.sendall(b"k")
                    tls.recv(1)  # until the client closes
            except (OSError, ValueError):
                outcomes.append("refused")
                conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1]), outcomes
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def handshake(port: int, ctx: ssl.SSLContext, server_hostname: str = "localhost") -> str:
    """Connect to a :func:`tls_listener` and read its byte: the negotiated version.

    Raises (OSError) when either side refuses. The byte matters for TLS 1.3, where the
    server judges the client's certificate after the client's handshake has returned.
    """
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname=server_hostname) as tls,
    ):
        if tls.recv(1) != b"k":
            raise ConnectionError("the server closed the connection")
        return str(tls.version())


@contextmanager
def refused_quietly() -> Iterator[None]:
    """Around a TLS connect expected to fail in pynetdicom: close its socket, now.

    pynetdicom 3.0.4 (``AssociationSocket._shutdown_socket``) calls ``shutdown()`` before
    ``close()`` in one ``try``; on a socket whose handshake failed ``shutdown()`` raises
    ENOTCONN, so the socket is left to the garbage collector, and its ResourceWarning would
    land in whichever test runs then. Its ``LOGGER.exception`` record would also keep the
    socket alive (through the traceback) in pytest's log capture: hence the level.
    """
    logger = logging.getLogger("pynetdicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
        with ignoring(ResourceWarning):
            gc.collect()
