"""Durability: SIGKILL ``radlens serve`` in the middle of a multi-association send.

After a restart, every instance that got a success status is stored (bytes intact) and
every study is analyzed exactly once (one ``done`` job per study). Run on SQLite and on a
real PostgreSQL cluster (``radlens serve --db postgresql://...``).
"""

from __future__ import annotations

import gc
import hashlib
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, Association
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from sqlalchemy import func, select

from radlens.privacy.crypto import read_key_file
from radlens.store.db import Database, open_database
from radlens.store.files import read_stored
from radlens.store.models import InstanceRow, JobRow, JobState, StudyRow, StudyStatus
from serve_helpers import free_port, make_instance, stop_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    # pynetdicom leaves the socket of an association whose peer was SIGKILLed unclosed.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

THREADS, STUDIES_PER_THREAD, INSTANCES_PER_STUDY = 4, 3, 10


def _start(
    home: Path, database_url: str, http_port: int, dicom_port: int
) -> subprocess.Popen[bytes]:
    radlens = Path(sys.executable).with_name("radlens")
    started = time.monotonic()
    with (home / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [
                str(radlens),
                "serve",
                "--home",
                str(home),
                "--db",
                database_url,
                "--port",
                str(http_port),
                "--dicom-port",
                str(dicom_port),
                "--quiet-period",
                "1.5",
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1) as r:
                if r.status == 200:
                    print(f"ready after {time.monotonic() - started:.1f} s")
                    return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("radlens serve did not become ready")


def _close_sockets(associations: list[Association]) -> None:
    """Close what pynetdicom leaves open when the peer was killed (it skips closing a
    socket it already marked disconnected)."""
    for assoc in associations:
        transport = assoc.dul.socket
        if transport is not None and transport.socket is not None:
            transport.socket.close()


def _send_studies(
    port: int,
    studies: list[str],
    acked: list[str],
    lock: threading.Lock,
    opened: list[Association],
) -> None:
    ae = AE(ae_title="DURABLE")
    # A killed peer shows as a timeout on the response: keep it short.
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 3
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    for study in studies:
        assoc = ae.associate("127.0.0.1", port, ae_title="RADLENS")
        opened.append(assoc)
        if not assoc.is_established:
            return  # the server is gone
        try:
            for i in range(INSTANCES_PER_STUDY):
                sop = f"{study}.{i + 1}"
                ds = dcmread(BytesIO(make_instance(study, sop)))
                try:
                    status = assoc.send_c_store(ds)
                except (RuntimeError, OSError):
                    return  # the association died with the server
                if status and int(status.Status) == 0:
                    with lock:
                        acked.append(sop)
                elif not assoc.is_established:
                    return
        finally:
            if assoc.is_established:
                assoc.release()
            else:
                assoc.abort()


def _ready_studies(db: Database) -> set[str]:
    with db.sessions() as session:
        return set(
            session.scalars(
                select(StudyRow.study_uid).where(StudyRow.status == StudyStatus.READY)
            ).all()
        )


def test_sigkill_mid_send_loses_no_acknowledged_instance_and_analyzes_once(
    tmp_path: Path, database_url: str
) -> None:
    http_port, dicom_port = free_port(), free_port()
    server = _start(tmp_path, database_url, http_port, dicom_port)
    acked: list[str] = []
    opened: list[Association] = []
    lock = threading.Lock()
    total = THREADS * STUDIES_PER_THREAD * INSTANCES_PER_STUDY
    plan = [
        [f"1.2.826.0.1.3680043.9.7777.{t}.{s}" for s in range(STUDIES_PER_THREAD)]
        for t in range(THREADS)
    ]
    senders = [
        threading.Thread(target=_send_studies, args=(dicom_port, studies, acked, lock, opened))
        for studies in plan
    ]
    try:
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 60
        while len(acked) < total // 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        print(f"killing after {len(acked)} acknowledged")
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        for sender in senders:
            sender.join(30)
        assert 0 < len(acked) < total, "the kill did not land in the middle of the send"
        server = _start(tmp_path, database_url, http_port, dicom_port)
        sent_studies = {sop.rsplit(".", 1)[0] for sop in acked}
        db = open_database(database_url, migrate=False)
        try:
            deadline = time.monotonic() + 60
            while not sent_studies <= _ready_studies(db) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2.0)  # room for a wrong second analysis to show up
        finally:
            db.close()
    finally:
        stop_server(server)
    _close_sockets(opened)
    gc.collect()  # close the dead associations' sockets here, under this test's filters
    db = open_database(database_url, migrate=False)
    with db.sessions() as session:
        rows = {
            sop: path
            for sop, path in session.execute(select(InstanceRow.sop_uid, InstanceRow.path))
        }
        shas = {
            sop: sha
            for sop, sha in session.execute(select(InstanceRow.sop_uid, InstanceRow.sha256))
        }
        done = dict(
            session.execute(
                select(JobRow.study_uid, func.count())
                .where(JobRow.state == JobState.DONE)
                .group_by(JobRow.study_uid)
            ).all()
        )
        studies = set(session.scalars(select(StudyRow.study_uid)).all())
    db.close()
    missing = [sop for sop in acked if sop not in rows]
    assert missing == []
    ring = read_key_file(tmp_path / "keys" / "radlens.keys")  # stored files are sealed
    for sop in acked:
        data = read_stored(tmp_path / "storage", tmp_path / "storage" / rows[sop], ring)
        assert hashlib.sha256(data).hexdigest() == shas[sop]
    assert studies >= sent_studies
    assert done == {uid: 1 for uid in studies}
