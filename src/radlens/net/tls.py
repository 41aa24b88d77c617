"""TLS contexts for HTTPS, DICOM TLS (PS3.15 B.9, the BCP 195 profile) and outgoing peers.

One place builds every :class:`ssl.SSLContext` radlens uses, so the rules hold everywhere:

* TLS 1.2 is the least version offered or accepted (BCP 195, RFC 9325 3.1.1); TLS 1.3 is
  preferred when both sides have it. Cipher suites are Python's defaults (forward secrecy,
  AEAD first, no RC4, 3DES, NULL or export suites), which RFC 9325 4.2 accepts.
* Certificates and keys are PEM files. A file that is missing or does not load is a
  :class:`~radlens.errors.ConfigError` naming the file, raised at start, never later.
* A client context verifies the peer's certificate *and* its host name (RFC 9325 3.5);
  without a CA file it trusts the system's store. There is no switch to turn that off.
* A server context with a ``client_ca_file`` asks every peer for a certificate signed by
  that CA and refuses those without one (mutual TLS, as IHE ATNA's secure node does).

Example:
    >>> ctx = client_context()
    >>> ctx.minimum_version.name, ctx.check_hostname
    ('TLSv1_2', True)
"""

from __future__ import annotations

import ssl
from pathlib import Path

from radlens.errors import ConfigError

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


def server_context(
    cert_file: Path, key_file: Path | None = None, client_ca_file: Path | None = None
) -> ssl.SSLContext:
    """A server context with this certificate chain (``key_file`` None: the key is in it).

    With ``client_ca_file`` every client must present a certificate signed by that CA.

    Raises:
        ConfigError: a file that is missing or not a usable certificate or key.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MINIMUM_VERSION
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # client-initiated renegotiation costs the server
    _load_chain(ctx, cert_file, key_file)
    if client_ca_file is not None:
        _load_ca(ctx, client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(
    ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca_file`` (None: system CAs).

    ``cert_file`` (and ``key_file``) is the client certificate for peers that ask for one.

    Raises:
        ConfigError: a file that is missing or not a usable certificate or key.
    """
    if ca_file is None:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        # This CA only, not the system's too; PROTOCOL_TLS_CLIENT checks name and chain.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _load_ca(ctx, ca_file)
    ctx.minimum_version = MINIMUM_VERSION
    if cert_file is not None:
        _load_chain(ctx, cert_file, key_file)
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert_file: Path, key_file: Path | None) -> None:
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        missing = key_file if key_file is not None and not key_file.is_file() else cert_file
        raise ConfigError(f"{missing}: certificate or key file not found") from exc
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"{cert_file}: cannot load the certificate and its key "
            f"({getattr(exc, 'reason', None) or exc}); both must be PEM and belong together"
        ) from exc


def _load_ca(ctx: ssl.SSLContext, ca_file: Path) -> None:
    if not ca_file.is_file():
        raise ConfigError(f"{ca_file}: CA certificate file not found")
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"{ca_file}: cannot load CA certificates ({getattr(exc, 'reason', None) or exc})"
        ) from exc
