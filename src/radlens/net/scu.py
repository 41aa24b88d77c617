"""radlens as a DICOM SCU: C-ECHO (PS3.4 Annex A) and C-STORE (PS3.4 Annex B) to a peer.

A :class:`DicomPeer` names the other AE; with an ``ssl_context``
(:func:`radlens.net.tls.client_context`) the association runs over TLS 1.2 or later and
the peer's certificate must verify against the CA and match ``server_hostname`` (its
``host`` unless given), as PS3.15 B.9 and BCP 195 ask. A peer that cannot be reached,
refuses the association or fails the handshake is a
:class:`~radlens.errors.DicomNetworkError`; the message names the peer by AE title, host
and port, never the data sent.
"""

from __future__ import annotations

import io
import logging
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field

import pydicom
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from radlens.errors import DicomNetworkError
from radlens.warning_scopes import ignoring

log = logging.getLogger(__name__)

_MAX_CONTEXTS = 128  # presentation contexts one association may propose (PS3.8 9.3.2.2)


@dataclass(frozen=True)
class DicomPeer:
    """Another DICOM AE: where it listens and, for DICOM TLS, how to trust it.

    Example:
        >>> from radlens.net.tls import client_context
        >>> DicomPeer("pacs.example.org", 2762, "PACS", client_context())
        DicomPeer(host='pacs.example.org', port=2762, ae_title='PACS', tls=True)
    """

    host: str
    port: int
    ae_title: str
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    server_hostname: str = field(default="", repr=False)  # "" = host

    def __repr__(self) -> str:
        return (
            f"DicomPeer(host={self.host!r}, port={self.port}, ae_title={self.ae_title!r}, "
            f"tls={self.ssl_context is not None})"
        )

    def __str__(self) -> str:
        scheme = "dicom-tls" if self.ssl_context is not None else "dicom"
        return f"{self.ae_title}@{scheme}://{self.host}:{self.port}"


def echo(peer: DicomPeer, calling_ae_title: str = "RADLENS", timeout_s: float = 30.0) -> None:
    """C-ECHO the peer; return when it answered success.

    Raises:
        DicomNetworkError: unreachable, association refused, TLS failed, or a status other
            than success.

    Example:
        >>> echo(DicomPeer("127.0.0.1", 11112, "ORTHANC"))  # doctest: +SKIP
    """
    ae = _application_entity(calling_ae_title, timeout_s)
    ae.add_requested_context(Verification)
    assoc = _associate(ae, peer)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    code = _status_code(status)
    if code != 0x0000:
        raise DicomNetworkError(f"{peer}: C-ECHO answered {_hex(code)}")


def store_instances(
    peer: DicomPeer,
    instances: Iterable[bytes],
    calling_ae_title: str = "RADLENS",
    timeout_s: float = 30.0,
) -> list[int]:
    """C-STORE each PS3.10 instance over one association; the peer's status for each.

    Each instance is proposed in the SOP class and transfer syntax of its file meta. A
    status of 0x0000 is success, 0xB000-0xB0FF a warning (stored), anything else a
    failure; -1 stands for an instance the peer accepted no presentation context for.

    Raises:
        DicomNetworkError: unreachable, association refused or aborted, or TLS failed.

    Example:
        >>> store_instances(DicomPeer("127.0.0.1", 11112, "ORTHANC"), [data])  # doctest: +SKIP
        [0]
    """
    datasets = [_read(data) for data in instances]
    if not datasets:
        return []
    contexts = sorted(
        {
            (str(ds.file_meta.MediaStorageSOPClassUID), str(ds.file_meta.TransferSyntaxUID))
            for ds in datasets
        }
    )
    if len(contexts) > _MAX_CONTEXTS:
        raise ValueError(f"{len(contexts)} SOP class and transfer syntax pairs; send in parts")
    ae = _application_entity(calling_ae_title, timeout_s)
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, syntax)
    assoc = _associate(ae, peer)
    statuses: list[int] = []
    try:
        for ds in datasets:
            try:
                status = assoc.send_c_store(ds)
            except ValueError:  # no accepted presentation context for this one
                statuses.append(-1)
                continue
            if not assoc.is_established:
                raise DicomNetworkError(f"{peer}: association ended during C-STORE")
            statuses.append(_status_code(status))
    finally:
        if assoc.is_established:
            assoc.release()
    return statuses


def _application_entity(calling_ae_title: str, timeout_s: float) -> AE:
    ae = AE(ae_title=calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    return ae


def _associate(ae: AE, peer: DicomPeer) -> Association:
    tls_args = None
    if peer.ssl_context is not None:
        tls_args = (peer.ssl_context, peer.server_hostname or peer.host)
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, tls_args=tls_args)
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        raise DicomNetworkError(f"{peer}: association rejected (check the AE titles)")
    # pynetdicom reports a failed connect or TLS handshake as an abort; its log says which.
    if tls_args:
        raise DicomNetworkError(
            f"{peer}: connection or TLS handshake failed, or the association was aborted; "
            "check the port, the peer's certificate, the name it is checked against and "
            "the CA file"
        )
    raise DicomNetworkError(f"{peer}: connection failed or the association was aborted")


def _read(data: bytes) -> pydicom.Dataset:
    with ignoring():  # pydicom warns about values the peer may judge
        return pydicom.dcmread(io.BytesIO(data))


def _status_code(status: pydicom.Dataset) -> int:
    """The Status (0000,0900) of a response; -1 when none came (timeout, abort)."""
    return int(status.Status) if "Status" in status else -1


def _hex(code: int) -> str:
    return f"0x{code:04X}" if code >= 0 else "no answer"
