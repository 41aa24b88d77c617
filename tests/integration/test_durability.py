"""Durability: SIGKILL ``radlens serve`` in the middle of a multi-association send.

After a restart, every instance that got a success status is stored (bytes intact) and
every study is analyzed exactly once (one ``done`` job per study).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import signal
import sqlite3
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

from serve_helpers import free_port, make_instance

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    # pynetdicom leaves the socket of an association whose peer was SIGKILLed unclosed.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

THREADS, STUDIES_PER_THREAD, INSTANCES_PER_STUDY = 4, 3, 10


def _start(home: Path, http_port: int, dicom_port: int) -> subprocess.Popen[bytes]:
    radlens = Path(sys.executable).with_name("radlens")
    started = time.monotonic()
    with (home / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [
                str(radlens),
                "serve",
                "--home",
                str(home),
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


def test_sigkill_mid_send_loses_no_acknowledged_instance_and_analyzes_once(
    tmp_path: Path,
) -> None:
    http_port, dicom_port = free_port(), free_port()
    server = _start(tmp_path, http_port, dicom_port)
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
        server = _start(tmp_path, http_port, dicom_port)
        sent_studies = {sop.rsplit(".", 1)[0] for sop in acked}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{http_port}/api/worklist?status=ready", timeout=5
            ) as r:
                ready = {item["study_uid"] for item in json.load(r)}
            if sent_studies <= ready:
                break
            time.sleep(0.2)
        time.sleep(2.0)  # room for a wrong second analysis to show up
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(10)
    _close_sockets(opened)
    gc.collect()  # close the dead associations' sockets here, under this test's filters
    with sqlite3.connect(tmp_path / "radlens.sqlite") as connection:
        rows = dict(connection.execute("SELECT sop_uid, path FROM instances").fetchall())
        shas = dict(connection.execute("SELECT sop_uid, sha256 FROM instances").fetchall())
        done = dict(
            connection.execute(
                "SELECT study_uid, count(*) FROM jobs WHERE state = 'done' GROUP BY study_uid"
            ).fetchall()
        )
        studies = {uid for (uid,) in connection.execute("SELECT study_uid FROM studies")}
    missing = [sop for sop in acked if sop not in rows]
    assert missing == []
    for sop in acked:
        data = (tmp_path / "storage" / rows[sop]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shas[sop]
    assert done == {uid: 1 for uid in studies}
