"""What each reader decision says about the image, and what kind of edit it was."""

from __future__ import annotations

from datetime import datetime

import pytest

from radlens.feedback.records import EditKind, FeedbackRecord, ReaderCall, ShownFinding, ai_call

POSITIVE = ShownFinding("pneumonia", "Pneumonia", 0.8, 0.5, True, "cxr", "1.0.0")
NEGATIVE = ShownFinding("pneumonia", "Pneumonia", 0.2, 0.5, False, "cxr", "1.0.0")
GRADED = ShownFinding("dr", "Diabetic retinopathy", 0.6, 0.5, True, "dr", "1.0.0", grade=2)


def _record(decision: str, shown: ShownFinding = POSITIVE, **edits: object) -> FeedbackRecord:
    return FeedbackRecord(1, "1.2", "f", "ann", datetime(2025, 1, 1), decision, shown, **edits)  # type: ignore[arg-type]


def test_accepting_takes_the_ai_call_and_rejecting_reverses_it() -> None:
    assert _record("accepted").call == ReaderCall(True)
    assert _record("accepted", NEGATIVE).call == ReaderCall(False)
    assert _record("rejected").call == ReaderCall(False)
    assert _record("rejected", NEGATIVE).call == ReaderCall(True)
    assert _record("accepted").kinds == (EditKind.ACCEPT,)
    assert _record("rejected").kinds == (EditKind.REJECT,)


def test_a_relabel_is_an_absent_call_naming_the_other_class() -> None:
    record = _record("edited", label="NORMAL")
    assert record.call == ReaderCall(False, None, "normal")
    assert record.kinds == (EditKind.RELABEL,)
    # the finding's own label (any case) is not a relabel: it confirms the finding
    assert _record("edited", NEGATIVE, label="pneumonia").call == ReaderCall(True)


def test_a_box_edit_confirms_the_finding_at_the_readers_box() -> None:
    record = _record("edited", NEGATIVE, box_px=(1.0, 2.0, 30.0, 40.0))
    assert record.call == ReaderCall(True)
    assert record.kinds == (EditKind.BOX_EDIT,)


def test_grades_decide_graded_findings_and_grade_zero_is_absent() -> None:
    assert _record("edited", GRADED, grade=3).call == ReaderCall(True, 3)
    assert _record("edited", GRADED, grade=0).call == ReaderCall(False, 0)
    assert _record("edited", GRADED, grade=3).kinds == (EditKind.GRADE_CHANGE,)
    assert _record("rejected", GRADED).call == ReaderCall(False, 0)
    assert ai_call(GRADED) == ReaderCall(True, 2)


def test_an_edit_with_only_a_note_keeps_the_ai_call() -> None:
    record = _record("edited", note="see prior")
    assert record.call == ai_call(POSITIVE) and record.kinds == (EditKind.NOTE,)
    assert "see prior" not in repr(record)


def test_invalid_records_cannot_exist() -> None:
    with pytest.raises(ValueError, match="confidence"):
        _record("accepted", confidence=7)
    with pytest.raises(ValueError, match="decision"):
        _record("maybe")


def test_a_stored_finding_document_reads_back() -> None:
    doc = {
        "code": "pneumonia",
        "label": "Pneumonia",
        "probability": 0.7,
        "threshold": 0.5,
        "positive": True,
        "model_name": "cxr",
        "model_version": "2",
        "box_px": [1, 2, 3, 4],
        "ood_score": 1.5,
        "ood_flag": True,
        "warnings": ["indeterminate: x"],
    }
    shown = ShownFinding.from_dict(doc)
    assert shown.box_px == (1.0, 2.0, 3.0, 4.0) and shown.ood_flag and shown.ood_score == 1.5
    assert shown.warnings == ("indeterminate: x",) and not shown.graded
