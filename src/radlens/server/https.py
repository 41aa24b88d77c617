"""HTTPS for ``radlens serve``: the server's TLS context, the plain-HTTP policy, a redirect port.

* :func:`https_context` builds the context uvicorn serves with (TLS 1.2 or later, client
  certificates from ``tls_ca_file`` when set; :mod:`radlens.net.tls`).
* :func:`check_plain_http`: in production mode, plain HTTP on an address other than
  loopback is refused unless ``allow_plain_http`` says a TLS-terminating reverse proxy sits
  in front; outside production mode it is a warning. Logins and patient data must not
  cross a network in clear.
* :class:`RedirectServer`: an optional plain HTTP port (``http_redirect_port``) that
  answers every request with a 308 to the same path over HTTPS and serves nothing else.

HSTS (RFC 6797) and the ``Secure`` session cookie follow the scheme of each request, so
they also hold behind a proxy that sets ``X-Forwarded-Proto`` (see ``server/app.py`` and
``routes/auth.py``).
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from radlens.config import Settings
from radlens.errors import ConfigError
from radlens.net.tls import server_context

log = logging.getLogger(__name__)

# One year, the value RFC 6797 sites and the HSTS preload list use. No includeSubDomains:
# a hospital's domain holds other services radlens cannot speak for.
HSTS = "max-age=31536000"


def https_context(settings: Settings) -> ssl.SSLContext | None:
    """The HTTPS context of ``settings``; None when HTTPS is off (no ``tls_cert_file``).

    Raises:
        ConfigError: a certificate, key or CA file that is missing or does not load.
    """
    if settings.tls_cert_file is None:
        return None
    return server_context(settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the service on this machine.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
        (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_plain_http(settings: Settings) -> None:
    """Refuse (production) or warn about plain HTTP on a network address.

    Raises:
        ConfigError: production mode, no ``tls_cert_file``, a host other than loopback,
            and ``allow_plain_http`` not set.
    """
    if settings.tls_cert_file is not None or is_loopback(settings.host):
        return
    if settings.allow_plain_http:
        log.info(
            "plain HTTP on %s: allow_plain_http says a TLS proxy terminates HTTPS in front",
            settings.host,
        )
        return
    message = (
        f"plain HTTP on {settings.host}: logins and patient data would cross the network "
        "in clear; set tls_cert_file and tls_key_file (HTTPS), or allow_plain_http = true "
        "when a TLS-terminating reverse proxy sits in front"
    )
    if settings.production:
        raise ConfigError(message)
    log.warning(message)


class RedirectServer:
    """Plain HTTP on ``host:port`` answering every request with 308 to HTTPS.

    The target keeps the path and query; its host is the request's ``Host`` without the
    port, and its port ``https_port`` (left out when 443).

    Example:
        >>> redirect = RedirectServer("0.0.0.0", 80, 443)  # doctest: +SKIP
        >>> redirect.start(); redirect.stop()  # doctest: +SKIP
    """

    def __init__(self, host: str, port: int, https_port: int, fallback_host: str = "") -> None:
        if not fallback_host:
            fallback_host = "localhost" if host in ("", "0.0.0.0", "::") else host
        attributes = {"https_port": https_port, "fallback_host": fallback_host}
        handler = type("Handler", (_RedirectHandler,), attributes)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="https-redirect", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _RedirectHandler(BaseHTTPRequestHandler):
    https_port = 443
    fallback_host = ""

    def version_string(self) -> str:
        return "radlens"  # no Python version for a scanner to read

    def _redirect(self) -> None:
        host = _request_host(self.headers.get("Host", ""), self.fallback_host)
        port = "" if self.https_port == 443 else f":{self.https_port}"
        path = self.path if self.path.startswith("/") else "/"
        self.send_response(308)
        self.send_header("Location", f"https://{host}{port}{path}")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _redirect

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        log.debug("redirect %s", format % args)


def _request_host(header: str, fallback: str) -> str:
    """The host name of a ``Host`` header (no port); ``fallback`` when it is not one."""
    host = urlsplit(f"//{header}").hostname or ""
    if not host or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789.-:" for c in host):
        host = fallback
    return f"[{host}]" if ":" in host else host
