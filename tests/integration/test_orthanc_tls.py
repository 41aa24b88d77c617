"""DICOM TLS against a real Orthanc 1.10 (DCMTK's TLS): both directions, mutual TLS.

Orthanc gets ``DicomTlsEnabled`` with the test CA's server certificate (which serves as
its client certificate too) and requires a certificate from that CA of every DICOM peer
(``DicomTlsRemoteCertificateRequired``), so the DICOM port it opens on every interface
(Orthanc 1.10 has no bind-address option) admits no one without the test CA's key.
Its HTTP port accepts loopback clients only, with basic auth, as in ``conftest.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from orthanc_helpers import AUTH, PASSWORD, USER
from sqlalchemy import select

from radlens.errors import DicomNetworkError
from radlens.net.scp import start_scp
from radlens.net.scu import DicomPeer, echo, store_instances
from radlens.net.tls import client_context, server_context
from radlens.store.db import open_database
from radlens.store.intake import Intake
from radlens.store.models import InstanceRow
from serve_helpers import free_port, make_instance
from tls_helpers import Pki, make_pki, refused_quietly

pytestmark = pytest.mark.integration
STUDY = "1.2.826.0.1.3680043.10.77"


@dataclass(frozen=True)
class TlsOrthanc:
    base: str  # REST
    dicom_port: int  # DICOM TLS only
    radlens_port: int  # where Orthanc's "radlens" modality (TLS) is expected
    pki: Pki


@pytest.fixture(scope="module")
def orthanc_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsOrthanc]:
    binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not Path(binary).is_file():
        pytest.skip("needs Orthanc (apt-get install orthanc)")
    folder = tmp_path_factory.mktemp("orthanc-tls")
    pki = make_pki(folder / "pki")
    http_port, dicom_port, radlens_port = free_port(), free_port(), free_port()
    config = {
        "Name": "radlens-tls-test",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "DicomServerEnabled": True,
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": str(pki.server_cert),
        "DicomTlsPrivateKey": str(pki.server_key),
        "DicomTlsTrustedCertificates": str(pki.ca),
        "DicomTlsRemoteCertificateRequired": True,
        "DicomModalities": {
            "radlens": {
                "AET": "RADLENS",
                "Host": "127.0.0.1",
                "Port": radlens_port,
                "UseDicomTls": True,
            }
        },
    }
    (folder / "orthanc.json").write_text(json.dumps(config), "utf-8")
    log_file = (folder / "orthanc.log").open("wb")
    process = subprocess.Popen(
        [binary, str(folder / "orthanc.json")], stdout=log_file, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/system", auth=AUTH, timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Orthanc did not start: {(folder / 'orthanc.log').read_text()}")
            time.sleep(0.2)
        yield TlsOrthanc(base, dicom_port, radlens_port, pki)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def _peer(orthanc: TlsOrthanc, with_certificate: bool = True) -> DicomPeer:
    pki = orthanc.pki
    ctx = (
        client_context(pki.ca, pki.client_cert, pki.client_key)
        if with_certificate
        else client_context(pki.ca)
    )
    return DicomPeer("127.0.0.1", orthanc.dicom_port, "ORTHANC", ctx, "localhost")


def test_radlens_echoes_and_stores_to_orthanc_over_dicom_tls(orthanc_tls: TlsOrthanc) -> None:
    peer = _peer(orthanc_tls)
    echo(peer)
    sops = [f"{STUDY}.1.{i}" for i in (1, 2, 3)]
    statuses = store_instances(peer, [make_instance(STUDY, sop) for sop in sops])
    assert statuses == [0, 0, 0]
    found = httpx.post(
        f"{orthanc_tls.base}/tools/find",
        json={"Level": "Instance", "Query": {"StudyInstanceUID": STUDY}, "Expand": True},
        auth=AUTH,
    ).json()
    assert sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in found) == sops


def test_orthanc_refuses_radlens_without_a_client_certificate(orthanc_tls: TlsOrthanc) -> None:
    with refused_quietly(), pytest.raises(DicomNetworkError, match="ORTHANC@dicom-tls"):
        echo(_peer(orthanc_tls, with_certificate=False))


def test_orthanc_stores_to_the_radlens_tls_scp(orthanc_tls: TlsOrthanc, tmp_path: Path) -> None:
    """DCMTK's TLS as the SCU: Orthanc C-STOREs into radlens's TLS port (mutual TLS)."""
    pki = orthanc_tls.pki
    uploaded = httpx.post(
        f"{orthanc_tls.base}/instances",
        content=make_instance(f"{STUDY}.2", f"{STUDY}.2.1"),
        auth=AUTH,
    )
    uploaded.raise_for_status()
    db = open_database(f"sqlite:///{tmp_path / 'radlens.sqlite'}")
    ctx = server_context(pki.server_cert, pki.server_key, client_ca_file=pki.ca)
    scp = start_scp(
        Intake(db, tmp_path / "storage"),
        "RADLENS",
        "127.0.0.1",
        None,
        ssl_context=ctx,
        tls_port=orthanc_tls.radlens_port,
    )
    try:
        sent = httpx.post(
            f"{orthanc_tls.base}/modalities/radlens/store",
            json={"Resources": [uploaded.json()["ID"]], "Synchronous": True},
            auth=AUTH,
            timeout=60,
        )
        assert sent.is_success, sent.text
        with db.sessions() as session:
            rows = session.scalars(select(InstanceRow)).all()
        assert [(r.sop_uid, r.source) for r in rows] == [(f"{STUDY}.2.1", "c-store:ORTHANC")]
    finally:
        scp.stop()
        db.close()
