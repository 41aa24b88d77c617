"""The C-STORE SCP (PS3.4 Annex B) with Verification (C-ECHO, PS3.4 Annex A).

Each C-STORE request is handed to :meth:`radlens.store.intake.Intake.receive` as the
encoded data set the peer sent (with file meta added, not decoded and re-encoded), and the
success status goes back only after ``receive`` returned: the instance is then on disk and
in the database. A malformed object is refused with :attr:`StoreStatus.CANNOT_UNDERSTAND`
and one log line naming the reason (never patient data); the SCP keeps serving.

Limits, so that one peer cannot exhaust the service:

* ``max_pdu_bytes`` is the Maximum Length the SCP proposes (PS3.8 D.3.3.1); a P-DATA PDU
  longer than it is a protocol violation and the association is aborted.
* ``max_associations`` peers at once; more are rejected by pynetdicom (A-ASSOCIATE-RJ).
* A data set over :attr:`~radlens.store.intake.Intake.max_instance_bytes` is refused with
  :attr:`StoreStatus.OUT_OF_RESOURCES` (0xA700) and a log line, and is never stored. While
  it is still arriving, :class:`ReceiveGuard` counts its fragments: past twice the cap the
  association is aborted, so memory stays bounded. pynetdicom reads one whole PDU before
  any handler sees it, hence the PDU limit above.

DICOM TLS (PS3.15 B.9, BCP 195): with an ``ssl_context`` (:func:`radlens.net.tls.server_context`)
the same SCP also listens on a second port where every association runs over TLS 1.2 or
later; the plain port may be left out. Both ports share one AE, so ``max_associations``
counts the peers of both. The TLS handshake of a connection runs in that connection's own
thread and must finish within ``handshake_timeout_s``, so a peer that connects and stays
silent holds no one else up (pynetdicom itself handshakes on the thread that accepts).
Intake is the same on both ports: nothing is acknowledged before it is durable.

Handlers are plain functions bound to pynetdicom's named events, as pynetdicom does it.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from enum import IntEnum
from typing import cast

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import Verification, register_uid  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer
from pynetdicom.utils import make_target

from radlens.errors import InputError, TooLargeError
from radlens.store.intake import Intake

log = logging.getLogger(__name__)
# Retired image storage classes (PS3.6 table A-1) that older modalities and archives still
# send; pynetdicom's list holds only the current ones.
RETIRED_IMAGE_STORAGE = {
    "1.2.840.10008.5.1.4.1.1.3": "UltrasoundMultiFrameImageStorageRetired",
    "1.2.840.10008.5.1.4.1.1.5": "NuclearMedicineImageStorageRetired",
    "1.2.840.10008.5.1.4.1.1.6": "UltrasoundImageStorageRetired",
    "1.2.840.10008.5.1.4.1.1.12.3": "XRayAngiographicBiPlaneImageStorageRetired",
}


class StoreStatus(IntEnum):
    """C-STORE response statuses used here (PS3.4 B.2.3, PS3.7 C.4)."""

    SUCCESS = 0x0000
    OUT_OF_RESOURCES = 0xA700
    CANNOT_UNDERSTAND = 0xC210
    PROCESSING_FAILURE = 0x0110


DEFAULT_MAX_PDU_BYTES = 16382  # pynetdicom's default Maximum Length
DEFAULT_HANDSHAKE_TIMEOUT_S = 30.0
_P_DATA_TF = 0x04
_COMMAND, _LAST_FRAGMENT = 0x01, 0x02  # message control header bits (PS3.8 E.2)


@dataclass
class ReceiveGuard:
    """Aborts an association whose PDU or in-flight data set grows past its cap.

    Bound to ``EVT_DATA_RECV`` (every PDU, before pynetdicom decodes it) and
    ``EVT_CONN_CLOSE``. Counts the data set fragments of each association's current
    message (PS3.8 9.3.5, E.2) and forgets them when the last fragment arrives.
    """

    max_pdu_bytes: int
    max_dataset_bytes: int
    _received: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_data(self, event: Event) -> None:
        data: bytes = event.data
        if not data or data[0] != _P_DATA_TF:
            return
        calling = str(event.assoc.requestor.ae_title).strip()
        if len(data) - 6 > self.max_pdu_bytes:
            log.warning(
                "association from %s aborted: P-DATA PDU of %d bytes, over the %d agreed",
                calling,
                len(data) - 6,
                self.max_pdu_bytes,
            )
            event.assoc.abort(block=False)
            return
        key = id(event.assoc)
        with self._lock:
            total = self._received.get(key, 0)
            for length, control in _pdvs(data):
                if control & _COMMAND:
                    continue
                total += length
                if control & _LAST_FRAGMENT:
                    total = 0  # this message is complete; handle_store judges its size
            self._received[key] = total
        if total > self.max_dataset_bytes:
            log.warning(
                "association from %s aborted: data set past %d bytes while arriving",
                calling,
                self.max_dataset_bytes,
            )
            event.assoc.abort(block=False)

    def on_close(self, event: Event) -> None:
        with self._lock:
            self._received.pop(id(event.assoc), None)


def _pdvs(pdu: bytes) -> list[tuple[int, int]]:
    """(fragment length, message control header) of each PDV item of a P-DATA-TF PDU."""
    items, pos = [], 6
    while pos + 6 <= len(pdu):
        (length,) = struct.unpack(">L", pdu[pos : pos + 4])
        if length < 2:
            break
        items.append((length - 2, pdu[pos + 5]))
        pos += 4 + length
    return items


class TlsAssociationServer(ThreadedAssociationServer):
    """An association server whose TLS handshakes run in each connection's thread.

    pynetdicom's own server completes the handshake inside ``get_request``, on the one
    thread that accepts connections. Here that thread only wraps the socket; the handshake
    runs where the association will, with a deadline, and a failed one (a plain DICOM
    peer, TLS older than 1.2, no or a wrong client certificate) costs one log line.
    """

    handshake_timeout_s: float = DEFAULT_HANDSHAKE_TIMEOUT_S

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        listening = cast(socket.socket, self.socket)
        context = cast(ssl.SSLContext, self.ssl_context)
        client, address = listening.accept()
        tls = context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        return tls, address

    def process_request_thread(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: tuple[str, int] | str,
    ) -> None:
        tls = cast(ssl.SSLSocket, request)
        try:
            tls.settimeout(self.handshake_timeout_s)
            tls.do_handshake()
            tls.settimeout(None)
        except (OSError, ValueError) as exc:  # ssl.SSLError, a timeout, a reset
            peer = client_address[0] if isinstance(client_address, tuple) else client_address
            reason = getattr(exc, "reason", None) or type(exc).__name__
            log.warning("DICOM TLS connection from %s refused: %s", peer, reason)
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)


@dataclass
class StorageSCP:
    """A running SCP (a plain and/or a TLS listener); :meth:`stop` shuts it down."""

    server: ThreadedAssociationServer | None
    ae_title: str
    tls_server: ThreadedAssociationServer | None = None

    @property
    def port(self) -> int | None:
        """The plain DICOM port; None when the SCP listens on TLS only."""
        return int(self.server.server_address[1]) if self.server is not None else None

    @property
    def tls_port(self) -> int | None:
        """The DICOM TLS port; None without TLS."""
        return int(self.tls_server.server_address[1]) if self.tls_server is not None else None

    def stop(self) -> None:
        for server in (self.server, self.tls_server):
            if server is not None:
                server.shutdown()


def start_scp(
    intake: Intake,
    ae_title: str,
    host: str,
    port: int | None,
    max_associations: int = 16,
    max_pdu_bytes: int = DEFAULT_MAX_PDU_BYTES,
    ssl_context: ssl.SSLContext | None = None,
    tls_port: int = 0,
    handshake_timeout_s: float = DEFAULT_HANDSHAKE_TIMEOUT_S,
) -> StorageSCP:
    """Listen for C-STORE and C-ECHO on ``host:port`` (port 0: any free port).

    With ``ssl_context`` (:func:`radlens.net.tls.server_context`) also on ``host:tls_port``
    over TLS; ``port`` None leaves the plain port closed. Every storage SOP class is
    accepted in every transfer syntax pynetdicom knows, so an instance is stored exactly
    as the modality encoded it. See the module docstring for the limits.

    Example:
        >>> scp = start_scp(intake, "RADLENS", "127.0.0.1", 11112)  # doctest: +SKIP
        >>> scp.stop()
    """
    if port is None and ssl_context is None:
        raise ValueError("start_scp needs a plain port, a TLS context, or both")
    ae = AE(ae_title=ae_title)
    ae.maximum_associations = max_associations
    ae.maximum_pdu_size = max_pdu_bytes
    for context in AllStoragePresentationContexts:
        if context.abstract_syntax is not None:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    for sop_class, keyword in RETIRED_IMAGE_STORAGE.items():
        # pynetdicom routes a request to a service class by SOP class: register these.
        register_uid(sop_class, keyword, StorageServiceClass)
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    guard = ReceiveGuard(max_pdu_bytes, 2 * intake.max_instance_bytes)
    handlers: list[EventHandlerType] = [
        (evt.EVT_C_STORE, handle_store, [intake]),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_DATA_RECV, guard.on_data),
        (evt.EVT_CONN_CLOSE, guard.on_close),
    ]
    scp = StorageSCP(None, ae_title)
    if port is not None:
        scp.server = ae.start_server((host, port), block=False, evt_handlers=handlers)
        log.info("DICOM SCP %s listening on %s:%d", ae_title, host, scp.port)
    if ssl_context is not None:
        try:
            scp.tls_server = _start_tls_server(
                ae, (host, tls_port), ssl_context, handlers, handshake_timeout_s
            )
        except OSError:
            scp.stop()  # the plain listener must not outlive a failed start
            raise
        log.info("DICOM TLS SCP %s listening on %s:%d", ae_title, host, scp.tls_port)
    return scp


def _start_tls_server(
    ae: AE,
    address: tuple[str, int],
    ssl_context: ssl.SSLContext,
    handlers: list[EventHandlerType],
    handshake_timeout_s: float,
) -> TlsAssociationServer:
    """``AE.start_server(block=False)`` with :class:`TlsAssociationServer`."""
    server = cast(
        TlsAssociationServer,
        ae.make_server(
            address,
            ssl_context=ssl_context,
            evt_handlers=handlers,
            server_class=TlsAssociationServer,
        ),
    )
    server.handshake_timeout_s = handshake_timeout_s
    thread = threading.Thread(
        target=make_target(server.serve_forever), name="DicomTlsAcceptor", daemon=True
    )
    thread.start()
    ae._servers.append(server)  # as start_server does: server.shutdown() removes it
    return server


def handle_echo(event: Event) -> int:
    return StoreStatus.SUCCESS


def handle_store(event: Event, intake: Intake) -> int:
    """Store one instance; answer only once it is durable (see the module docstring)."""
    calling = str(event.assoc.requestor.ae_title).strip()
    try:
        raw = event.encoded_dataset(include_meta=True)
        intake.receive(raw, f"c-store:{calling}")
    except TooLargeError as exc:
        log.warning("C-STORE from %s refused (%s): %s", calling, exc.kind, exc.reason)
        return StoreStatus.OUT_OF_RESOURCES
    except InputError as exc:
        log.warning("C-STORE from %s refused (%s): %s", calling, exc.kind, exc.reason)
        return StoreStatus.CANNOT_UNDERSTAND
    except OSError as exc:
        log.error("C-STORE from %s not stored: %s", calling, exc.strerror or type(exc).__name__)
        return StoreStatus.OUT_OF_RESOURCES
    except Exception:
        log.exception("C-STORE from %s failed", calling)
        return StoreStatus.PROCESSING_FAILURE
    return StoreStatus.SUCCESS
