"""The reading flow on the store: open, decide on findings, report, sign, priority."""

from __future__ import annotations

from pathlib import Path

import pytest

from radlens.domain.findings import Priority
from radlens.errors import ConflictError, ForbiddenError, NotFoundError
from radlens.privacy.roles import Role
from radlens.store.db import Database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.models import StudyStatus
from radlens.store.review import (
    Decision,
    open_study,
    review_finding,
    save_report,
    set_priority,
    sign,
)
from radlens.store.worklist import get_study, latest_reviews
from serve_helpers import make_instance, result_with_finding


@pytest.fixture
def analyzed(intake: Intake, db: Database, tmp_path: Path) -> str:
    """An analyzed (ready) study with one urgent finding; returns its UID."""
    intake.receive(make_instance("1.2.7", "1.2.7.1"), "t")
    queue = JobQueue(db, intake.storage_dir, quiet_period_s=0.0)
    assert queue.run_one(result_with_finding)
    return "1.2.7"


def _finding_id(db: Database, uid: str) -> str:
    result = get_study(db, uid).result
    assert result is not None
    fid: str = result["series"][0]["findings"][0]["id"]
    return fid


def test_opening_stamps_the_first_view_once_and_starts_review(db: Database, analyzed: str) -> None:
    open_study(db, analyzed)
    first = get_study(db, analyzed)
    assert first.status is StudyStatus.IN_REVIEW
    assert first.first_viewed_at is not None and first.time_to_view_s is not None
    assert first.time_to_view_s >= 0
    open_study(db, analyzed)
    assert get_study(db, analyzed).first_viewed_at == first.first_viewed_at


def test_opening_before_analysis_does_not_count_as_viewing_a_result(
    intake: Intake, db: Database
) -> None:
    intake.receive(make_instance("1.2.8", "1.2.8.1"), "t")
    open_study(db, "1.2.8")
    entry = get_study(db, "1.2.8")
    assert entry.first_viewed_at is None and entry.status is StudyStatus.RECEIVED


def test_decisions_are_appended_and_the_newest_counts(db: Database, analyzed: str) -> None:
    fid = _finding_id(db, analyzed)
    review_finding(db, analyzed, fid, Decision.ACCEPTED, "ann")
    review_finding(db, analyzed, fid, Decision.EDITED, "bob", label="Atelectasis", note="not")
    latest = latest_reviews(db, analyzed)
    assert set(latest) == {fid}
    assert (latest[fid].decision, latest[fid].label, latest[fid].username) == (
        "edited",
        "Atelectasis",
        "bob",
    )
    # The finding as it was shown is kept with the decision, for the feedback loop.
    assert latest[fid].finding["model_name"] == "stand-in"
    assert latest[fid].finding["probability"] == pytest.approx(0.9)
    assert get_study(db, analyzed).status is StudyStatus.IN_REVIEW


def test_unknown_study_or_finding_is_not_found(db: Database, analyzed: str) -> None:
    with pytest.raises(NotFoundError):
        review_finding(db, analyzed, "0" * 16, Decision.ACCEPTED, "ann")
    with pytest.raises(NotFoundError):
        review_finding(db, "9.9", _finding_id(db, analyzed), Decision.ACCEPTED, "ann")
    with pytest.raises(NotFoundError):
        open_study(db, "9.9")


def test_signing_needs_a_report_and_freezes_it(db: Database, analyzed: str) -> None:
    with pytest.raises(ConflictError, match="empty"):
        sign(db, analyzed, "ann")
    save_report(db, analyzed, "No consolidation.", "ann")
    sign(db, analyzed, "ann")
    entry = get_study(db, analyzed)
    assert entry.status is StudyStatus.SIGNED
    assert entry.report.text == "No consolidation."
    assert entry.report.signed_by == "ann" and entry.report.signed_at is not None
    with pytest.raises(ConflictError):
        save_report(db, analyzed, "changed", "ann")
    with pytest.raises(ConflictError):
        review_finding(db, analyzed, _finding_id(db, analyzed), Decision.REJECTED, "ann")
    with pytest.raises(ConflictError):
        sign(db, analyzed, "ann")


def test_a_draft_is_its_authors_and_an_admin_may_take_it_over(db: Database, analyzed: str) -> None:
    save_report(db, analyzed, "Ann's draft.", "ann")
    with pytest.raises(ForbiddenError, match="ann's"):
        save_report(db, analyzed, "Bob's words.", "bob", Role.RADIOLOGIST)
    assert get_study(db, analyzed).report.text == "Ann's draft."
    save_report(db, analyzed, "Ann's draft, amended.", "ann")
    save_report(db, analyzed, "Taken over.", "root", Role.ADMIN)
    report = get_study(db, analyzed).report
    assert (report.text, report.updated_by) == ("Taken over.", "root")
    with pytest.raises(ForbiddenError):
        save_report(db, analyzed, "Back.", "ann", Role.RADIOLOGIST)  # now root's


def test_only_the_author_of_the_saved_draft_signs_it(db: Database, analyzed: str) -> None:
    save_report(db, analyzed, "No consolidation.", "ann")
    with pytest.raises(ForbiddenError, match="only its author"):
        sign(db, analyzed, "bob")
    assert get_study(db, analyzed).status is not StudyStatus.SIGNED
    sign(db, analyzed, "ann")
    assert get_study(db, analyzed).report.signed_by == "ann"


def test_a_study_still_analyzing_cannot_be_signed(intake: Intake, db: Database) -> None:
    intake.receive(make_instance("1.2.9", "1.2.9.1"), "t")
    save_report(db, "1.2.9", "Preliminary.", "ann")
    with pytest.raises(ConflictError, match="received"):
        sign(db, "1.2.9", "ann")


def test_radiologist_priority_is_kept_apart_and_wins_when_higher(
    intake: Intake, db: Database
) -> None:
    intake.receive(make_instance("1.3.1", "1.3.1.1"), "t")
    queue = JobQueue(db, intake.storage_dir, quiet_period_s=0.0)
    assert queue.run_one(lambda s: result_with_finding(s, "nodule", 0.2))  # routine
    set_priority(db, "1.3.1", Priority.URGENT)
    entry = get_study(db, "1.3.1")
    assert entry.ai_priority is Priority.ROUTINE
    assert entry.radiologist_priority is Priority.URGENT
    assert entry.priority is Priority.URGENT
    # A new analysis (new instance) changes the AI's priority, never the radiologist's.
    intake.receive(make_instance("1.3.1", "1.3.1.2"), "t")
    assert queue.run_one(lambda s: result_with_finding(s, "nodule", 0.1))
    assert get_study(db, "1.3.1").priority is Priority.URGENT
    set_priority(db, "1.3.1", None)
    assert get_study(db, "1.3.1").priority is Priority.ROUTINE
