"""STOW-RS (PS3.18 10.5): store the instances of a ``multipart/related`` request.

Each part of type ``application/dicom`` is one PS3.10 file and goes through
:meth:`radlens.store.intake.Intake.receive`; the response is a DICOM JSON data set
(PS3.18 F.2) that lists each instance as stored (Referenced SOP Sequence) or failed
(Failed SOP Sequence with a Failure Reason). HTTP status: 200 all stored, 202 some
failed, 409 none stored (PS3.18 10.5.3).

The request body is read with :func:`read_body`, which stops at ``max_upload_bytes``: a
declared Content-Length over the cap is refused before anything is read, and a body that
streams past it (chunked, or lying about its length) is refused as soon as it does, so
one request never holds more than the cap in memory (413, ``too_large``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from enum import IntEnum
from typing import Any

from radlens.errors import InputError, TooLargeError, UnsupportedFormatError
from radlens.store.intake import Intake

log = logging.getLogger(__name__)
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"


class FailureReason(IntEnum):
    """Failure Reason (0008,1197) values used here (PS3.18 table 10.5.3-2, PS3.4 B.2.3)."""

    PROCESSING_FAILURE = 0x0110
    OUT_OF_RESOURCES = 0xA700
    CANNOT_UNDERSTAND = 0xC000


@dataclass
class StowOutcome:
    """What one STOW-RS request did."""

    stored: list[tuple[str, str]] = field(default_factory=list)  # (SOP class, instance)
    failed: list[tuple[str, str, FailureReason]] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        if not self.failed:
            return 200
        return 202 if self.stored else 409

    def to_dicom_json(self, base_url: str) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.stored:
            body["00081199"] = {
                "vr": "SQ",
                "Value": [
                    _reference(sop_class, sop_uid)
                    | {"00081190": {"vr": "UR", "Value": [f"{base_url}/instances/{sop_uid}"]}}
                    for sop_class, sop_uid in self.stored
                ],
            }
        if self.failed:
            body["00081198"] = {
                "vr": "SQ",
                "Value": [
                    _reference(sop_class, sop_uid)
                    | {"00081197": {"vr": "US", "Value": [int(reason)]}}
                    for sop_class, sop_uid, reason in self.failed
                ],
            }
        return body


async def read_body(
    chunks: AsyncIterator[bytes], content_length: str | None, max_bytes: int
) -> bytes:
    """The request body, read chunk by chunk and never past ``max_bytes``.

    Args:
        chunks: the body as it streams in (Starlette's ``request.stream()``).
        content_length: the Content-Length header, when the client sent one.
        max_bytes: the cap (``Settings.max_upload_bytes``).

    Raises:
        TooLargeError: the declared or the streamed length is over the cap.
    """
    if content_length is not None and content_length.strip().isdigit():
        declared = int(content_length)
        if declared > max_bytes:
            raise TooLargeError(
                None, f"request body of {declared} bytes, over the cap of {max_bytes}"
            )
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise TooLargeError(None, f"request body past the cap of {max_bytes} bytes")
    return bytes(body)


def split_multipart(content_type: str, body: bytes) -> list[bytes]:
    """The ``application/dicom`` parts of a ``multipart/related`` body.

    Raises:
        UnsupportedFormatError: not ``multipart/related; type="application/dicom"``.
    """
    header = Message()
    header["Content-Type"] = content_type
    related_type = str(header.get_param("type", DICOM)).lower()
    if header.get_content_type() != "multipart/related" or related_type != DICOM:
        raise UnsupportedFormatError(
            None, 'STOW-RS accepts multipart/related; type="application/dicom" only'
        )
    if not header.get_param("boundary"):
        raise InputError(None, "multipart/related without a boundary")
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
    )
    parts = []
    for part in message.iter_parts():
        if part.get_content_type() != DICOM:
            raise UnsupportedFormatError(None, f"part of type {part.get_content_type()}")
        payload = part.get_payload(decode=True)
        parts.append(payload if isinstance(payload, bytes) else b"")
    return parts


def store_parts(intake: Intake, parts: list[bytes], source: str) -> StowOutcome:
    """Receive every part; one failure never stops the others."""
    outcome = StowOutcome()
    for index, raw in enumerate(parts):
        try:
            received = intake.receive(raw, source)
        except TooLargeError as exc:
            log.warning("STOW-RS part %d refused (%s): %s", index, exc.kind, exc.reason)
            outcome.failed.append(("", "", FailureReason.OUT_OF_RESOURCES))
            continue
        except InputError as exc:
            log.warning("STOW-RS part %d refused (%s): %s", index, exc.kind, exc.reason)
            outcome.failed.append(("", "", FailureReason.CANNOT_UNDERSTAND))
            continue
        except OSError as exc:
            log.error("STOW-RS part %d not stored: %s", index, exc.strerror or type(exc).__name__)
            outcome.failed.append(("", "", FailureReason.OUT_OF_RESOURCES))
            continue
        outcome.stored.append((received.sop_class_uid, received.sop_instance_uid))
    return outcome


def _reference(sop_class: str, sop_uid: str) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if sop_class:
        item["00081150"] = {"vr": "UI", "Value": [sop_class]}
    if sop_uid:
        item["00081155"] = {"vr": "UI", "Value": [sop_uid]}
    return item
