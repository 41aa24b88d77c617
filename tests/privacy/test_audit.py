"""The audit trail: ATNA records, the hash chain, tamper detection, syslog forwarding."""

from __future__ import annotations

import base64
import socket
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, update

from radlens.privacy.audit import (
    EVENTS,
    AuditEvent,
    AuditTrail,
    EventOutcome,
    SyslogForwarder,
    build_record,
    canonical_json,
    chain_sha256,
    list_records,
    to_xml,
    verify,
)
from radlens.store.db import Database, open_database
from radlens.store.models import AuditChainRow, AuditRecordRow, StudyRow

PATIENT_KEY = "ab" * 32


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.close()


def _trail_with(db: Database, n: int) -> AuditTrail:
    trail = AuditTrail(db, site_id="test-site")
    for i in range(n):
        trail.record(AuditEvent.STUDY_VIEWED, user_id=f"user{i}", study_uid=f"1.2.{i}")
    return trail


# --- records ----------------------------------------------------------------------------


def test_build_record_follows_the_atna_structure() -> None:
    record = build_record(
        AuditEvent.REPORT_SIGNED,
        user_id="alice",
        client_ip="10.1.2.3",
        outcome=EventOutcome.MINOR_FAILURE,
        site_id="st-marys",
        study_uid="1.2.3",
        patient_key=PATIENT_KEY,
    )
    event = record["EventIdentification"]
    assert event["EventID"] == {
        "csd-code": "110110",
        "codeSystemName": "DCM",
        "originalText": "Patient Record",
    }
    assert (event["EventActionCode"], event["EventOutcomeIndicator"]) == ("U", 4)
    assert event["EventDateTime"].endswith("Z")
    user, application = record["ActiveParticipant"]
    assert user == {
        "UserID": "alice",
        "UserIsRequestor": True,
        "NetworkAccessPointID": "10.1.2.3",
        "NetworkAccessPointTypeCode": "2",
    }
    assert application["UserIsRequestor"] is False
    source = record["AuditSourceIdentification"]
    assert (source["AuditSourceID"], source["AuditEnterpriseSiteID"]) == ("radlens", "st-marys")
    patient, study = record["ParticipantObjectIdentification"]
    assert (patient["ParticipantObjectID"], patient["ParticipantObjectTypeCodeRole"]) == (
        PATIENT_KEY,
        1,
    )
    assert study["ParticipantObjectID"] == "1.2.3"
    assert study["ParticipantObjectIDTypeCode"]["csd-code"] == "110180"


def test_every_event_has_a_dcm_event_id() -> None:
    assert set(EVENTS) == set(AuditEvent)
    assert {spec.event_id.system for spec in EVENTS.values()} == {"DCM"}
    login = build_record("login", user_id="bob")["EventIdentification"]
    assert (login["EventID"]["csd-code"], login["EventTypeCode"][0]["csd-code"]) == (
        "110114",
        "110122",
    )


def test_to_xml_writes_the_dicom_audit_message() -> None:
    record = build_record(
        AuditEvent.WORKLIST_VIEWED, user_id="alice", uri="/api/worklist", query="modality=CT"
    )
    root = ET.fromstring(to_xml(record))
    assert root.tag == "AuditMessage"
    assert [child.tag for child in root] == [
        "EventIdentification",
        "ActiveParticipant",
        "ActiveParticipant",
        "AuditSourceIdentification",
        "ParticipantObjectIdentification",
    ]
    event = root.find("EventIdentification")
    assert event is not None and event.get("EventActionCode") == "E"
    assert event.find("EventID").get("csd-code") == "110112"  # type: ignore[union-attr]
    assert root.find("ActiveParticipant").get("UserIsRequestor") == "true"  # type: ignore[union-attr]
    query = root.find("ParticipantObjectIdentification/ParticipantObjectQuery")
    assert query is not None and base64.b64decode(query.text or "") == b"modality=CT"


# --- the chain --------------------------------------------------------------------------


def test_records_are_chained_by_hash(db: Database) -> None:
    _trail_with(db, 3)
    records = list_records(db)
    assert [r.number for r in records] == [1, 2, 3]
    prev = "0" * 64
    for r in records:
        assert r.sha256 == chain_sha256(prev, canonical_json(r.record))
        prev = r.sha256
    assert verify(db).ok and verify(db).n_records == 3


def test_the_study_brings_its_patient_key(db: Database) -> None:
    with db.sessions.begin() as session:
        session.add(StudyRow(study_uid="1.2.9", patient_key=PATIENT_KEY))
    AuditTrail(db).record(AuditEvent.STUDY_VIEWED, user_id="alice", study_uid="1.2.9")
    (stored,) = list_records(db, patient_key=PATIENT_KEY)
    assert stored.record["ParticipantObjectIdentification"][0]["ParticipantObjectID"] == PATIENT_KEY
    assert verify(db).ok


def test_list_filters_by_study_and_user(db: Database) -> None:
    _trail_with(db, 4)
    assert [r.number for r in list_records(db, study_uid="1.2.2")] == [3]
    assert [r.number for r in list_records(db, user_id="user0")] == [1]


def test_verify_names_an_altered_record(db: Database) -> None:
    _trail_with(db, 4)
    with db.sessions.begin() as session:
        row = session.get(AuditRecordRow, 3)
        assert row is not None
        forged = row.record_json.replace('"user2"', '"mallory"')
        session.execute(
            update(AuditRecordRow).where(AuditRecordRow.number == 3).values(record_json=forged)
        )
    result = verify(db)
    assert (result.ok, result.broken_at) == (False, 3)
    assert "altered" in result.reason


def test_verify_names_an_altered_index_column(db: Database) -> None:
    _trail_with(db, 3)
    with db.sessions.begin() as session:
        session.execute(
            update(AuditRecordRow).where(AuditRecordRow.number == 2).values(user_id="mallory")
        )
    assert verify(db).broken_at == 2


def test_verify_names_a_deleted_record(db: Database) -> None:
    _trail_with(db, 4)
    with db.sessions.begin() as session:
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.number == 2))
    result = verify(db)
    assert (result.broken_at, result.reason) == (2, "record 2 is missing (the next is 3)")


def test_verify_notices_the_newest_record_deleted(db: Database) -> None:
    _trail_with(db, 3)
    with db.sessions.begin() as session:
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.number == 3))
    assert verify(db).broken_at == 3


def test_verify_notices_a_rewritten_chain_link(db: Database) -> None:
    _trail_with(db, 3)
    with db.sessions.begin() as session:
        session.execute(
            update(AuditRecordRow).where(AuditRecordRow.number == 2).values(prev_sha256="1" * 64)
        )
    assert verify(db).broken_at == 2


def test_concurrent_appends_do_not_fork_the_chain(db: Database) -> None:
    trail = AuditTrail(db)
    threads_n, each = 6, 8
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(each):
                trail.record(AuditEvent.IMAGES_VIEWED, user_id=f"t{i}", study_uid=f"1.{i}.{j}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    records = list_records(db)
    assert [r.number for r in records] == list(range(1, threads_n * each + 1))
    assert len({r.sha256 for r in records}) == threads_n * each
    result = verify(db)
    assert result.ok and result.n_records == threads_n * each
    with db.sessions() as session:
        head = session.get(AuditChainRow, 1)
        assert head is not None and head.last_sha256 == records[-1].sha256


# --- syslog -----------------------------------------------------------------------------


def test_records_reach_a_udp_syslog_collector(db: Database) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        port = server.getsockname()[1]
        trail = AuditTrail(db, "site", SyslogForwarder("127.0.0.1", port, "udp"))
        trail.record(AuditEvent.LOGIN, user_id="alice", client_ip="127.0.0.1")
        message, _ = server.recvfrom(65536)
    header, _, xml = message.partition(b"\xef\xbb\xbf")
    assert header.startswith(b"<85>1 ") and b" radlens " in header and b"IHE+RFC-3881" in header
    root = ET.fromstring(xml.decode("utf-8"))
    assert root.find("EventIdentification/EventID").get("csd-code") == "110114"  # type: ignore[union-attr]
    assert root.find("ActiveParticipant").get("UserID") == "alice"  # type: ignore[union-attr]


def test_records_reach_a_tcp_syslog_collector(db: Database) -> None:
    received: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(5)
        port = server.getsockname()[1]

        def accept() -> None:
            connection, _ = server.accept()
            with connection:
                chunks = []
                while chunk := connection.recv(65536):
                    chunks.append(chunk)
                received.append(b"".join(chunks))

        thread = threading.Thread(target=accept)
        thread.start()
        trail = AuditTrail(db, "site", SyslogForwarder.parse(f"127.0.0.1:{port}", "tcp"))
        trail.record(AuditEvent.EXPORTED, user_id="alice", study_uid="1.2.3")
        thread.join(5)
    (frame,) = received
    length, _, message = frame.partition(b" ")
    assert int(length) == len(message)
    xml = message.partition(b"\xef\xbb\xbf")[2].decode("utf-8")
    study = ET.fromstring(xml).find("ParticipantObjectIdentification")
    assert study is not None and study.get("ParticipantObjectID") == "1.2.3"


def test_an_unreachable_collector_does_not_lose_the_record(db: Database) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    trail = AuditTrail(db, "site", SyslogForwarder("127.0.0.1", port, "tcp", timeout_s=0.5))
    trail.record(AuditEvent.LOGIN, user_id="alice")
    assert verify(db).n_records == 1
