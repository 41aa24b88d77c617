"""DICOM TLS on the SCP (PS3.15 B.9): real files stored over TLS, plain and old TLS refused,
mutual TLS, and a silent peer that holds no one else up."""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy import select

from radlens.net.scp import StorageSCP, StoreStatus, start_scp
from radlens.net.tls import client_context, server_context
from radlens.store.db import Database, open_database
from radlens.store.intake import Intake
from radlens.store.models import InstanceRow
from radlens.store.worklist import list_worklist
from radlens.warning_scopes import ignoring
from tls_helpers import Pki, legacy_client_context, make_pki, refused_quietly

FILES = ("MR2_J2KR.dcm", "JPEG-LL.dcm", "OBXXXX1A_rle.dcm", "SC_rgb.dcm")  # pydicom-data


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'radlens.sqlite'}")
    yield database
    database.close()


def _scp(
    db: Database, storage: Path, ctx: ssl.SSLContext, handshake_timeout_s: float = 30.0
) -> StorageSCP:
    intake = Intake(db, storage)
    return start_scp(
        intake,
        "RADLENS",
        "127.0.0.1",
        None,
        ssl_context=ctx,
        handshake_timeout_s=handshake_timeout_s,
    )


@pytest.fixture
def tls_scp(db: Database, tmp_path: Path, pki: Pki) -> Iterator[StorageSCP]:
    running = _scp(db, tmp_path / "storage", server_context(pki.server_cert, pki.server_key))
    yield running
    running.stop()


@pytest.fixture
def mtls_scp(db: Database, tmp_path: Path, pki: Pki) -> Iterator[StorageSCP]:
    ctx = server_context(pki.server_cert, pki.server_key, client_ca_file=pki.ca)
    running = _scp(db, tmp_path / "storage", ctx)
    yield running
    running.stop()


def _associate(
    port: int, ctx: ssl.SSLContext | None, contexts: list[tuple[str, str]] | None = None
) -> Association:
    """An established association to ``port`` (over TLS with ``ctx``), or a failed one."""
    ae = AE(ae_title="TESTSCU")
    ae.acse_timeout = ae.network_timeout = ae.connection_timeout = 10
    for sop_class, syntax in contexts or []:
        ae.add_requested_context(sop_class, syntax)
    ae.add_requested_context(Verification)
    tls_args = (ctx, "localhost") if ctx is not None else None
    return ae.associate("127.0.0.1", port, ae_title="RADLENS", tls_args=tls_args)


def _echo(port: int, ctx: ssl.SSLContext | None) -> int | None:
    """C-ECHO status, or None when no association could be made."""
    with refused_quietly():
        assoc = _associate(port, ctx)
        if not assoc.is_established:
            del assoc
            return None
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


def test_real_files_stored_over_tls_are_durable_and_on_the_worklist(
    tls_scp: StorageSCP, db: Database, pydicom_data_dir: Path, tmp_path: Path, pki: Pki
) -> None:
    assert tls_scp.port is None and tls_scp.tls_port  # TLS only: no plain port opened
    with ignoring():
        datasets = [pydicom.dcmread(pydicom_data_dir / name) for name in FILES]
    pairs = [(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets]
    assoc = _associate(tls_scp.tls_port, client_context(pki.ca), pairs)
    assert assoc.is_established
    assert isinstance(assoc.dul.socket.socket, ssl.SSLSocket)  # type: ignore[union-attr]
    try:
        statuses = [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()
    assert statuses == [StoreStatus.SUCCESS] * len(FILES)
    # Acknowledged means stored: every instance has its row and its file before the answer.
    with db.sessions() as session:
        rows = {r.sop_uid: r for r in session.scalars(select(InstanceRow))}
    assert set(rows) == {str(ds.SOPInstanceUID) for ds in datasets}
    for row in rows.values():
        stored = tmp_path / "storage" / row.path
        assert stored.is_file() and stored.stat().st_size > 0
        assert row.source == "c-store:TESTSCU"
    assert {e.study_uid for e in list_worklist(db)} == {str(d.StudyInstanceUID) for d in datasets}


def _plain_associate_rq() -> bytes:
    """An A-ASSOCIATE-RQ PDU (PS3.8 9.3.2) in clear: what a DICOM peer without TLS sends."""
    uid = b"1.2.840.10008.3.1.1.1"  # DICOM Application Context Name
    context = b"\x10\x00" + struct.pack(">H", len(uid)) + uid
    body = struct.pack(">HH", 1, 0) + b"RADLENS".ljust(16) + b"TESTSCU".ljust(16) + bytes(32)
    body += context
    return b"\x01\x00" + struct.pack(">I", len(body)) + body


def test_plain_dicom_on_the_tls_port_is_refused_and_tls_still_works(
    tls_scp: StorageSCP, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    assert tls_scp.tls_port
    with caplog.at_level(logging.WARNING, logger="radlens.net.scp"):
        with socket.create_connection(("127.0.0.1", tls_scp.tls_port), timeout=10) as sock:
            sock.sendall(_plain_associate_rq())
            try:
                answer = sock.recv(64)
            except ConnectionResetError:
                answer = b""
        assert answer == b""  # closed: no A-ASSOCIATE-AC, no A-ASSOCIATE-RJ in clear
        assert _echo(tls_scp.tls_port, client_context(pki.ca)) == StoreStatus.SUCCESS
    assert "DICOM TLS connection from 127.0.0.1 refused: WRONG_VERSION_NUMBER" in caplog.text


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"]
)
def test_tls_older_than_1_2_is_refused(
    tls_scp: StorageSCP, pki: Pki, version: ssl.TLSVersion
) -> None:
    assert tls_scp.tls_port
    assert _echo(tls_scp.tls_port, legacy_client_context(pki.ca, version)) is None
    only_12 = client_context(pki.ca)
    only_12.maximum_version = ssl.TLSVersion.TLSv1_2  # older toolkits: TLS 1.2 is enough
    assert _echo(tls_scp.tls_port, only_12) == StoreStatus.SUCCESS


def test_mutual_tls_refuses_peers_without_a_certificate_from_the_ca(
    mtls_scp: StorageSCP, pki: Pki
) -> None:
    port = mtls_scp.tls_port
    assert port
    assert _echo(port, client_context(pki.ca)) is None  # no client certificate
    assert _echo(port, client_context(pki.ca, pki.intruder_cert, pki.intruder_key)) is None
    assert _echo(port, client_context(pki.ca, pki.client_cert, pki.client_key)) == 0


def test_a_silent_connection_does_not_hold_up_other_peers(
    db: Database, tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = server_context(pki.server_cert, pki.server_key)
    scp = _scp(db, tmp_path / "storage", ctx, handshake_timeout_s=3.0)
    try:
        assert scp.tls_port
        with (
            caplog.at_level(logging.WARNING, logger="radlens.net.scp"),
            socket.create_connection(("127.0.0.1", scp.tls_port)),  # says nothing
        ):
            assert _echo(scp.tls_port, client_context(pki.ca)) == StoreStatus.SUCCESS
            # Served before the silent one's deadline: its refusal is not logged yet (no
            # wall-clock bound, so a loaded machine cannot fail this).
            assert "refused: TimeoutError" not in caplog.text
            deadline = time.monotonic() + 10
            while "refused: TimeoutError" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.1)
        assert "refused: TimeoutError" in caplog.text
    finally:
        scp.stop()


def test_plain_and_tls_ports_side_by_side(db: Database, tmp_path: Path, pki: Pki) -> None:
    ctx = server_context(pki.server_cert, pki.server_key)
    scp = start_scp(Intake(db, tmp_path / "storage"), "RADLENS", "127.0.0.1", 0, ssl_context=ctx)
    try:
        assert scp.port and scp.tls_port and scp.port != scp.tls_port
        assert _echo(scp.port, None) == StoreStatus.SUCCESS
        assert _echo(scp.tls_port, client_context(pki.ca)) == StoreStatus.SUCCESS
        assert _echo(scp.port, client_context(pki.ca)) is None  # the plain port speaks no TLS
    finally:
        scp.stop()
