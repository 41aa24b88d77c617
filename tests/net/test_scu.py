"""radlens's SCU (C-ECHO, C-STORE) to a DICOM TLS peer: here radlens's own SCP with mutual
TLS; against Orthanc with DICOM TLS in tests/integration/test_orthanc_tls.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from radlens.errors import DicomNetworkError
from radlens.net.scp import StorageSCP, start_scp
from radlens.net.scu import DicomPeer, echo, store_instances
from radlens.net.tls import client_context, server_context
from radlens.store.db import Database, open_database
from radlens.store.intake import Intake
from radlens.store.models import InstanceRow
from serve_helpers import make_instance
from tls_helpers import Pki, make_pki, refused_quietly


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'radlens.sqlite'}")
    yield database
    database.close()


@pytest.fixture
def peer_scp(db: Database, tmp_path: Path, pki: Pki) -> Iterator[StorageSCP]:
    """A DICOM TLS peer that admits only clients with a certificate from the test CA."""
    ctx = server_context(pki.server_cert, pki.server_key, client_ca_file=pki.ca)
    running = start_scp(Intake(db, tmp_path / "peer"), "PEER", "127.0.0.1", None, ssl_context=ctx)
    yield running
    running.stop()


def _peer(scp: StorageSCP, pki: Pki, server_hostname: str = "") -> DicomPeer:
    assert scp.tls_port
    ctx = client_context(pki.ca, pki.client_cert, pki.client_key)
    return DicomPeer("127.0.0.1", scp.tls_port, "PEER", ctx, server_hostname)


def test_echo_and_store_over_mutual_tls(peer_scp: StorageSCP, db: Database, pki: Pki) -> None:
    peer = _peer(peer_scp, pki)
    echo(peer)
    instances = [
        make_instance("1.2.826.0.1.3680043.10.1", f"1.2.826.0.1.3680043.10.1.{i}") for i in (1, 2)
    ]
    assert store_instances(peer, instances, calling_ae_title="RADLENS") == [0, 0]
    with db.sessions() as session:
        rows = session.scalars(select(InstanceRow)).all()
    assert sorted(r.sop_uid for r in rows) == [
        "1.2.826.0.1.3680043.10.1.1",
        "1.2.826.0.1.3680043.10.1.2",
    ]
    assert {r.source for r in rows} == {"c-store:RADLENS"}


def test_a_peer_whose_certificate_does_not_name_it_is_refused(
    peer_scp: StorageSCP, pki: Pki
) -> None:
    # The certificate names localhost and 127.0.0.1; radlens asks for another name.
    with refused_quietly(), pytest.raises(DicomNetworkError, match="TLS handshake failed"):
        echo(_peer(peer_scp, pki, server_hostname="pacs.example.org"))


def test_a_peer_with_a_certificate_from_another_ca_is_refused(
    peer_scp: StorageSCP, pki: Pki
) -> None:
    assert peer_scp.tls_port
    system_cas = client_context(None, pki.client_cert, pki.client_key)
    with (
        refused_quietly(),
        pytest.raises(DicomNetworkError, match=r"PEER@dicom-tls://127\.0\.0\.1"),
    ):
        echo(DicomPeer("127.0.0.1", peer_scp.tls_port, "PEER", system_cas))


def test_plain_peer_repr_says_whether_tls_is_on() -> None:
    assert "tls=False" in repr(DicomPeer("pacs", 104, "PACS"))
    assert str(DicomPeer("pacs", 104, "PACS")) == "PACS@dicom://pacs:104"
