"""What a radiologist does with a study: open it, judge findings, write and sign the report.

Status flow (``StudyStatus``): received -> analyzing -> ready -> in_review -> signed.
Opening an analyzed study stamps ``first_viewed_at`` once (time from result to first
view is a product metric) and moves it from ready to in review. Decisions on findings are
appended, never overwritten; the newest counts. A signed report is frozen.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from radlens.domain.findings import Priority
from radlens.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from radlens.privacy.roles import Role, may_edit_draft, may_sign
from radlens.store.db import Database
from radlens.store.models import FindingReviewRow, StudyRow, StudyStatus, utcnow

MAX_REPORT_CHARS = 100_000
CONFIDENCE_LEVELS = range(1, 6)
"""A reader's confidence in a decision: 1 (guess) .. 5 (certain); None when not given."""


class Decision(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EDITED = "edited"


def open_study(db: Database, study_uid: str) -> None:
    """A reader opened the study: stamp the first view of a result; ready -> in review."""
    with db.sessions.begin() as session:
        study = _study(session, study_uid)
        if study.analyzed_at is not None and study.first_viewed_at is None:
            study.first_viewed_at = utcnow()
        if study.status == StudyStatus.READY:
            study.status = StudyStatus.IN_REVIEW


def review_finding(
    db: Database,
    study_uid: str,
    finding_id: str,
    decision: Decision,
    username: str,
    label: str = "",
    grade: int | None = None,
    note: str = "",
    confidence: int | None = None,
    box_px: tuple[float, float, float, float] | list[float] | None = None,
) -> FindingReviewRow:
    """Record a decision on one finding of the study's current result.

    Several readers may review the same finding (``radlens.feedback`` adjudicates); each
    decision is a new row, a reader's newest one counts for them.

    Args:
        confidence: the reader's confidence, 1 (guess) .. 5 (certain), or None.
        box_px: on an edit that moves the box, the reader's box ``[x0, y0, x1, y1]`` in
            source pixels (column, row).

    Raises:
        NotFoundError: no such study, or no finding with this id in its result.
        ConflictError: the report is signed.
        InputError: a confidence outside 1-5, or a box that is not ``x0 < x1, y0 < y1``.
    """
    if confidence is not None and confidence not in CONFIDENCE_LEVELS:
        raise InputError(None, f"confidence must be 1-5, got {confidence}")
    box = None if box_px is None else _box(box_px)
    with db.sessions.begin() as session:
        study = _study(session, study_uid)
        _not_signed(study)
        finding = _finding(study, finding_id)
        row = FindingReviewRow(
            study_uid=study_uid,
            finding_id=finding_id,
            decision=decision.value,
            label=label[:128],
            grade=grade,
            note=note,
            username=username,
            at=utcnow(),
            finding={k: v for k, v in finding.items() if k != "warnings"},
            confidence=confidence,
            box_px=box,
            model_name=str(finding.get("model_name", ""))[:128],
            model_version=str(finding.get("model_version", ""))[:64],
        )
        session.add(row)
        if study.status == StudyStatus.READY:
            study.status = StudyStatus.IN_REVIEW
    return row


def save_report(
    db: Database, study_uid: str, text: str, username: str, role: Role = Role.RADIOLOGIST
) -> None:
    """Store the report text; its saver becomes the draft's author.

    Raises:
        NotFoundError: no such study.
        ConflictError: the report is signed, or the text is too long.
        ForbiddenError: another reader's draft, and ``role`` is not admin
            (``privacy.roles.may_edit_draft``).
    """
    if len(text) > MAX_REPORT_CHARS:
        raise ConflictError(f"a report has at most {MAX_REPORT_CHARS} characters")
    with db.sessions.begin() as session:
        study = _study(session, study_uid)
        _not_signed(study)
        if not may_edit_draft(username, role, study.report_updated_by):
            raise ForbiddenError(
                f"the report draft is {study.report_updated_by}'s; only they or an admin "
                "may change it"
            )
        study.report_text = text
        study.report_updated_at = utcnow()
        study.report_updated_by = username


def sign(db: Database, study_uid: str, username: str) -> None:
    """Sign the report: the study leaves the open worklist.

    Raises:
        NotFoundError: no such study.
        ConflictError: already signed, not analyzed yet, or the report is empty.
        ForbiddenError: the saved draft is another reader's (``privacy.roles.may_sign``).
    """
    with db.sessions.begin() as session:
        study = _study(session, study_uid)
        _not_signed(study)
        if study.status not in (StudyStatus.READY, StudyStatus.IN_REVIEW, StudyStatus.FAILED):
            raise ConflictError(f"the study is {study.status}; sign it once it is analyzed")
        if not study.report_text.strip():
            raise ConflictError("the report is empty")
        if not may_sign(username, study.report_updated_by):
            raise ForbiddenError(
                f"the report draft is {study.report_updated_by}'s; only its author signs it"
            )
        study.status = StudyStatus.SIGNED
        study.signed_at = utcnow()
        study.signed_by = username


def set_priority(db: Database, study_uid: str, priority: Priority | None) -> None:
    """Set (or clear, with None) the radiologist's priority; the AI never lowers it.

    Raises:
        NotFoundError: no such study.
    """
    with db.sessions.begin() as session:
        study = _study(session, study_uid)
        study.radiologist_priority = None if priority is None else int(priority)


def _study(session: Session, study_uid: str) -> StudyRow:
    study = session.get(StudyRow, study_uid)
    if study is None:
        raise NotFoundError("no study with this Study Instance UID")
    return study


def _not_signed(study: StudyRow) -> None:
    if study.status == StudyStatus.SIGNED:
        raise ConflictError("the report is signed")


def _box(box_px: tuple[float, float, float, float] | list[float]) -> list[float]:
    values = [float(v) for v in box_px]
    if len(values) != 4 or not all(v == v and abs(v) < 1e7 for v in values):
        raise InputError(None, "box_px must be four finite numbers [x0, y0, x1, y1]")
    x0, y0, x1, y1 = values
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        raise InputError(None, "box_px must have 0 <= x0 < x1 and 0 <= y0 < y1")
    return [round(v, 2) for v in values]


def _finding(study: StudyRow, finding_id: str) -> dict[str, Any]:
    for series in (study.result or {}).get("series", []):
        for finding in series["findings"]:
            if finding.get("id") == finding_id:
                return dict(finding)
    raise NotFoundError("no finding with this id in the study's current result")
