"""The audit trail: who touched which patient's data, when, from where, with what outcome.

Each access is an audit message in the structure of DICOM PS3.15 Annex A.5 (IHE ATNA,
RFC 3881): ``EventIdentification`` (EventID from DCM CID 400, EventActionCode C/R/U/D/E,
EventDateTime, EventOutcomeIndicator 0/4/8/12), ``ActiveParticipant`` (the user, the
requestor, with the client's IP as network access point; and radlens itself),
``AuditSourceIdentification`` (radlens and the site id) and ``ParticipantObjectIdentification``
(the patient, the study, or the query). :func:`build_record` makes one as a dict with the
standard's element names; :func:`to_xml` writes the DICOM audit message XML for syslog.

:class:`AuditTrail` builds, stores and forwards each record. The storage (``store.audit``,
re-exported here: :func:`append`, :func:`verify`, :func:`list_records`) keeps each record as
canonical JSON in a hash chain, ``sha256(prev_sha256 + canonical JSON)``, with appends
serialized on the chain's head row so concurrent writers never fork it; :func:`verify`
names the first broken record. Forwarding is RFC 5424 syslog over UDP or TCP.

The patient is identified by the keyed hash of the Patient ID (``StudyRow.patient_key``),
never the ID itself: the database holds no direct identifiers, and whoever holds the site's
secret (``store.drafts.patient_secret``) finds a patient's records by hashing the ID
(``radlens audit list --patient``). See ``docs/privacy.md``.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from radlens.errors import ConfigError
from radlens.store.audit import GENESIS_SHA256 as GENESIS_SHA256
from radlens.store.audit import StoredRecord as StoredRecord
from radlens.store.audit import Verification as Verification
from radlens.store.audit import append as append
from radlens.store.audit import canonical_json as canonical_json
from radlens.store.audit import chain_sha256 as chain_sha256
from radlens.store.audit import list_records as list_records
from radlens.store.audit import patient_key_of
from radlens.store.audit import verify as verify
from radlens.store.db import Database

log = logging.getLogger(__name__)

AUDIT_SOURCE_ID = "radlens"
ANONYMOUS = "anonymous"  # ActiveParticipant UserID when no one is logged in
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class EventAction(StrEnum):
    """EventActionCode (PS3.15 A.5.1)."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class EventOutcome(IntEnum):
    """EventOutcomeIndicator (PS3.15 A.5.1)."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


@dataclass(frozen=True)
class Code:
    """A coded value as the audit message schema writes it."""

    code: str
    system: str
    meaning: str

    def as_dict(self) -> dict[str, str]:
        return {"csd-code": self.code, "codeSystemName": self.system, "originalText": self.meaning}


class AuditEvent(StrEnum):
    """What radlens audits; each maps to a DICOM audit event in :data:`EVENTS`."""

    LOGIN = "login"
    LOGOUT = "logout"
    WORKLIST_VIEWED = "worklist-viewed"
    STUDY_VIEWED = "study-viewed"
    STUDY_OPENED = "study-opened"
    INSTANCES_QUERIED = "instances-queried"
    IMAGES_VIEWED = "images-viewed"
    HEATMAP_VIEWED = "heatmap-viewed"
    FHIR_QUERIED = "fhir-queried"
    FHIR_READ = "fhir-read"
    EXPORTED = "exported"
    IMPORTED = "imported"
    REPORT_SAVED = "report-saved"
    NOTES_SAVED = "notes-saved"
    REPORT_SIGNED = "report-signed"
    FINDING_REVIEWED = "finding-reviewed"
    PRIORITY_CHANGED = "priority-changed"
    MODEL_PROMOTED = "model-promoted"
    AUDIT_LOG_USED = "audit-log-used"
    ACCOUNT_CHANGED = "account-changed"
    DEIDENTIFIED_QUERIED = "deidentified-queried"
    DEIDENTIFIED_EXPORTED = "deidentified-exported"


@dataclass(frozen=True)
class EventSpec:
    event_id: Code
    action: EventAction
    type_code: Code | None = None


_PATIENT_RECORD = Code("110110", "DCM", "Patient Record")
_INSTANCES_ACCESSED = Code("110103", "DCM", "DICOM Instances Accessed")
_QUERY = Code("110112", "DCM", "Query")
_R, _U, _E = EventAction.READ, EventAction.UPDATE, EventAction.EXECUTE

EVENTS: dict[AuditEvent, EventSpec] = {
    AuditEvent.LOGIN: EventSpec(
        Code("110114", "DCM", "User Authentication"), _E, Code("110122", "DCM", "Login")
    ),
    AuditEvent.LOGOUT: EventSpec(
        Code("110114", "DCM", "User Authentication"), _E, Code("110123", "DCM", "Logout")
    ),
    AuditEvent.WORKLIST_VIEWED: EventSpec(_QUERY, _E),
    AuditEvent.STUDY_VIEWED: EventSpec(_PATIENT_RECORD, _R),
    AuditEvent.STUDY_OPENED: EventSpec(_PATIENT_RECORD, _R),
    AuditEvent.INSTANCES_QUERIED: EventSpec(_QUERY, _E),
    AuditEvent.IMAGES_VIEWED: EventSpec(_INSTANCES_ACCESSED, _R),
    AuditEvent.HEATMAP_VIEWED: EventSpec(_INSTANCES_ACCESSED, _R),
    AuditEvent.FHIR_QUERIED: EventSpec(_QUERY, _E),
    AuditEvent.FHIR_READ: EventSpec(_PATIENT_RECORD, _R),
    AuditEvent.EXPORTED: EventSpec(Code("110106", "DCM", "Export"), _R),
    AuditEvent.IMPORTED: EventSpec(Code("110107", "DCM", "Import"), EventAction.CREATE),
    AuditEvent.REPORT_SAVED: EventSpec(_PATIENT_RECORD, _U),
    AuditEvent.NOTES_SAVED: EventSpec(_PATIENT_RECORD, _U),
    AuditEvent.REPORT_SIGNED: EventSpec(_PATIENT_RECORD, _U),
    AuditEvent.FINDING_REVIEWED: EventSpec(_PATIENT_RECORD, _U),
    AuditEvent.PRIORITY_CHANGED: EventSpec(_PATIENT_RECORD, _U),
    AuditEvent.MODEL_PROMOTED: EventSpec(
        Code("110113", "DCM", "Security Alert"), _E, Code("110131", "DCM", "Software Configuration")
    ),
    AuditEvent.AUDIT_LOG_USED: EventSpec(Code("110101", "DCM", "Audit Log Used"), _R),
    # An account made, its role, password or state changed (PS3.16 CID 403 type code).
    AuditEvent.ACCOUNT_CHANGED: EventSpec(
        Code("110113", "DCM", "Security Alert"),
        _E,
        Code("110137", "DCM", "User Security Attributes Changed"),
    ),
    # De-identified data for researchers (privacy.deid): no patient, but still who and when.
    AuditEvent.DEIDENTIFIED_QUERIED: EventSpec(_QUERY, _E),
    AuditEvent.DEIDENTIFIED_EXPORTED: EventSpec(Code("110106", "DCM", "Export"), _R),
}


def build_record(
    event: AuditEvent | str,
    *,
    user_id: str,
    client_ip: str = "",
    outcome: EventOutcome | int = EventOutcome.SUCCESS,
    site_id: str = AUDIT_SOURCE_ID,
    study_uid: str | None = None,
    patient_key: str | None = None,
    uri: str | None = None,
    query: str = "",
    description: str = "",
    when: datetime | None = None,
) -> dict[str, Any]:
    """One audit message (PS3.15 A.5) as a dict with the standard's element names.

    Example:
        >>> r = build_record("study-viewed", user_id="alice", study_uid="1.2.3")
        >>> event = r["EventIdentification"]
        >>> event["EventID"]["csd-code"], event["EventActionCode"]
        ('110110', 'R')
    """
    event = AuditEvent(event)
    spec = EVENTS[event]
    when = (when or datetime.now(UTC)).astimezone(UTC)
    identification: dict[str, Any] = {
        "EventID": spec.event_id.as_dict(),
        "EventActionCode": spec.action.value,
        "EventDateTime": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "EventOutcomeIndicator": int(EventOutcome(outcome)),
        "EventTypeCode": [
            *([spec.type_code.as_dict()] if spec.type_code else []),
            Code(event.value, "radlens", event.value.replace("-", " ")).as_dict(),
        ],
    }
    if description:
        identification["EventOutcomeDescription"] = description
    user: dict[str, Any] = {"UserID": user_id or ANONYMOUS, "UserIsRequestor": True}
    if client_ip:
        # NetworkAccessPointTypeCode 2: an IP address (RFC 3881 5.3.5).
        user |= {"NetworkAccessPointID": client_ip, "NetworkAccessPointTypeCode": "2"}
    application = {
        "UserID": AUDIT_SOURCE_ID,
        "AlternativeUserID": str(os.getpid()),
        "UserIsRequestor": False,
        "RoleIDCode": [Code("110152", "DCM", "Destination Role ID").as_dict()],
    }
    objects: list[dict[str, Any]] = []
    if patient_key:
        objects.append(_patient_object(patient_key))
    if study_uid:
        objects.append(
            {  # type 2 system object, role 3 report, ID type Study Instance UID
                "ParticipantObjectID": study_uid,
                "ParticipantObjectTypeCode": 2,
                "ParticipantObjectTypeCodeRole": 3,
                "ParticipantObjectIDTypeCode": Code(
                    "110180", "DCM", "Study Instance UID"
                ).as_dict(),
            }
        )
    if uri:
        uri_object: dict[str, Any] = {  # type 2 system object, role 24 query, ID type 12 URI
            "ParticipantObjectID": uri,
            "ParticipantObjectTypeCode": 2,
            "ParticipantObjectTypeCodeRole": 24,
            "ParticipantObjectIDTypeCode": Code("12", "RFC-3881", "URI").as_dict(),
        }
        if query:
            uri_object["ParticipantObjectQuery"] = base64.b64encode(query.encode()).decode()
        objects.append(uri_object)
    return {
        "EventIdentification": identification,
        "ActiveParticipant": [user, application],
        "AuditSourceIdentification": {
            "AuditSourceID": AUDIT_SOURCE_ID,
            "AuditEnterpriseSiteID": site_id,
            "AuditSourceTypeCode": [Code("4", "RFC-3881", "Application Server").as_dict()],
        },
        "ParticipantObjectIdentification": objects,
    }


def to_xml(record: dict[str, Any]) -> str:
    """The DICOM audit message XML (PS3.15 A.5.1 schema) of a record from :func:`build_record`.

    Example:
        >>> to_xml(build_record("login", user_id="alice"))[:14]
        '<AuditMessage>'
    """
    root = ET.Element("AuditMessage")
    ident = record["EventIdentification"]
    event = ET.SubElement(root, "EventIdentification", _attrs(ident, _EVENT_ATTRS))
    ET.SubElement(event, "EventID", ident["EventID"])
    for code in ident.get("EventTypeCode", []):
        ET.SubElement(event, "EventTypeCode", code)
    if "EventOutcomeDescription" in ident:
        ET.SubElement(event, "EventOutcomeDescription").text = ident["EventOutcomeDescription"]
    for participant in record["ActiveParticipant"]:
        element = ET.SubElement(root, "ActiveParticipant", _attrs(participant))
        for code in participant.get("RoleIDCode", []):
            ET.SubElement(element, "RoleIDCode", code)
    source = record["AuditSourceIdentification"]
    element = ET.SubElement(root, "AuditSourceIdentification", _attrs(source))
    for code in source.get("AuditSourceTypeCode", []):
        ET.SubElement(element, "AuditSourceTypeCode", code)
    for obj in record["ParticipantObjectIdentification"]:
        element = ET.SubElement(root, "ParticipantObjectIdentification", _attrs(obj))
        ET.SubElement(element, "ParticipantObjectIDTypeCode", obj["ParticipantObjectIDTypeCode"])
        for name in ("ParticipantObjectName", "ParticipantObjectQuery"):
            if name in obj:
                ET.SubElement(element, name).text = obj[name]
    return ET.tostring(root, encoding="unicode")


_EVENT_ATTRS = ("EventActionCode", "EventDateTime", "EventOutcomeIndicator")


def _attrs(element: dict[str, Any], names: tuple[str, ...] | None = None) -> dict[str, str]:
    """The scalar members of ``element`` as XML attributes (booleans as xs:boolean)."""
    chosen = names or tuple(k for k, v in element.items() if not isinstance(v, dict | list))
    chosen = tuple(
        k for k in chosen if k not in ("ParticipantObjectName", "ParticipantObjectQuery")
    )
    return {
        k: ("true" if element[k] else "false") if isinstance(element[k], bool) else str(element[k])
        for k in chosen
    }


# --- forwarding -------------------------------------------------------------------------

SYSLOG_PRI = 10 * 8 + 5  # facility authpriv (10), severity notice (5): RFC 5424 6.2.1
SYSLOG_MSGID = "IHE+RFC-3881"  # IHE ITI TF-2a 3.20.6.2


def syslog_message(xml: str, when: datetime | None = None, hostname: str = "") -> bytes:
    """An RFC 5424 message carrying one audit message (UTF-8, with a BOM)."""
    stamp = (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")
    header = (
        f"<{SYSLOG_PRI}>1 {stamp.replace('+00:00', 'Z')} {hostname or socket.gethostname() or '-'} "
        f"{AUDIT_SOURCE_ID} {os.getpid()} {SYSLOG_MSGID} - "
    )
    return header.encode("ascii", "replace") + b"\xef\xbb\xbf" + xml.encode("utf-8")


@dataclass(frozen=True)
class SyslogForwarder:
    """Sends audit messages to a syslog collector (UDP datagram, or TCP framed by octet
    count, RFC 6587 3.4.1). A failed send is logged, never raised: the database keeps
    the record."""

    host: str
    port: int
    protocol: str = "udp"
    timeout_s: float = 2.0

    @classmethod
    def parse(cls, address: str, protocol: str = "udp") -> SyslogForwarder:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or protocol not in ("udp", "tcp"):
            raise ConfigError(f"audit_syslog {address!r}: expected host:port (udp or tcp)")
        return cls(host.strip("[]"), int(port), protocol)

    def send(self, message: bytes) -> bool:
        try:
            if self.protocol == "udp":
                with socket.socket(_family(self.host), socket.SOCK_DGRAM) as sock:
                    sock.sendto(message, (self.host, self.port))
            else:
                with socket.create_connection((self.host, self.port), self.timeout_s) as sock:
                    sock.sendall(f"{len(message)} ".encode("ascii") + message)
        except OSError as exc:
            log.warning("audit syslog %s:%d: %s", self.host, self.port, type(exc).__name__)
            return False
        return True


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@dataclass(frozen=True)
class AuditTrail:
    """Records events for one site: builds, appends and (optionally) forwards each.

    Example:
        >>> trail = AuditTrail(db, site_id="st-marys")  # doctest: +SKIP
        >>> trail.record("study-viewed", user_id="alice", study_uid="1.2.3")  # doctest: +SKIP
    """

    db: Database
    site_id: str = AUDIT_SOURCE_ID
    forwarder: SyslogForwarder | None = None

    def record(self, event: AuditEvent | str, **fields: Any) -> StoredRecord:
        """Build the record of ``event``, append it and forward it; the study, when it is
        a valid UID, brings its patient's key."""
        event = AuditEvent(event)
        study_uid = fields.pop("study_uid", None)
        study_uid = study_uid if study_uid and _UID.match(study_uid) else None
        if study_uid and not fields.get("patient_key"):
            fields["patient_key"] = patient_key_of(self.db, study_uid)
        record = build_record(event, site_id=self.site_id, study_uid=study_uid, **fields)
        stored = append(self.db, event.value, record)
        if self.forwarder is not None:
            self.forwarder.send(syslog_message(to_xml(stored.record)))
        return stored


def audit_trail(db: Database, site_id: str, syslog: str = "", protocol: str = "udp") -> AuditTrail:
    """The trail the settings describe (``audit_site_id``, ``audit_syslog``, ...)."""
    forwarder = SyslogForwarder.parse(syslog, protocol) if syslog else None
    return AuditTrail(db, site_id, forwarder)


def _patient_object(patient_key: str) -> dict[str, Any]:
    # Type 1 person, role 1 patient, ID type 2 patient number (here its keyed hash).
    return {
        "ParticipantObjectID": patient_key,
        "ParticipantObjectTypeCode": 1,
        "ParticipantObjectTypeCodeRole": 1,
        "ParticipantObjectIDTypeCode": Code("2", "RFC-3881", "Patient Number").as_dict(),
        "ParticipantObjectName": "HMAC-SHA256 of the Patient ID",
    }
