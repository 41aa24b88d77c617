"""Several readers per finding: majority and senior rules, ties, and visible disagreement,
on records made in code and on decisions stored through ``store.review``."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from radlens.feedback.adjudication import AdjudicationRule, adjudicate, adjudicate_all
from radlens.feedback.records import FeedbackRecord, ReaderCall, ShownFinding
from radlens.feedback.stored import feedback_records, stored_adjudications
from radlens.store.review import Decision, review_finding

SHOWN = ShownFinding("pneumonia", "Pneumonia", 0.8, 0.5, True, "cxr", "1.0.0")
T0 = datetime(2025, 3, 1, 8, 0)


def _votes(*pairs: tuple[str, str]) -> list[FeedbackRecord]:
    return [
        FeedbackRecord(i, "1.2", "f1", reader, T0 + timedelta(minutes=i), decision, SHOWN)
        for i, (reader, decision) in enumerate(pairs, start=1)
    ]


def test_majority_of_three_readers_wins_and_the_disagreement_is_visible() -> None:
    a = adjudicate(_votes(("ann", "accepted"), ("bob", "rejected"), ("cy", "accepted")))
    assert a.call == ReaderCall(True) and a.decided_by == "majority"
    assert a.n_readers == 3 and a.agreement == pytest.approx(2 / 3)
    assert a.disagreement and a.ai_agrees is True
    assert a.summary() == (
        "3 readers disagree: ann present, bob absent, cy present (majority: present)"
    )


def test_a_tie_is_unresolved_under_the_majority_rule() -> None:
    a = adjudicate(_votes(("ann", "accepted"), ("bob", "rejected")))
    assert a.call is None and not a.resolved and a.decided_by == "unresolved"
    assert a.ai_agrees is None and a.agreement == 0.5
    assert a.summary().endswith("(unresolved)")


def test_the_senior_reader_wins_over_a_majority_under_the_senior_rule() -> None:
    records = _votes(("ann", "accepted"), ("bob", "rejected"), ("cy", "accepted"))
    a = adjudicate(records, AdjudicationRule.SENIOR, frozenset({"bob"}))
    assert a.call == ReaderCall(False) and a.decided_by == "senior"
    assert a.ai_agrees is False and a.agreement == pytest.approx(1 / 3)
    assert "bob (senior) absent" in a.summary()
    # the majority rule ignores seniority
    assert adjudicate(records, "majority", frozenset({"bob"})).call == ReaderCall(True)


def test_senior_rule_falls_back_to_the_majority_and_seniors_tie_unresolved() -> None:
    records = _votes(("ann", "accepted"), ("bob", "rejected"), ("cy", "accepted"))
    assert adjudicate(records, "senior", frozenset({"zed"})).decided_by == "majority"
    tied = adjudicate(records, "senior", frozenset({"ann", "bob"}))
    assert tied.call is None and tied.decided_by == "unresolved"


def test_each_reader_counts_once_with_their_newest_decision() -> None:
    a = adjudicate(_votes(("ann", "accepted"), ("bob", "accepted"), ("ann", "rejected")))
    assert [(v.reader, v.call.present) for v in a.votes] == [("bob", True), ("ann", False)]
    assert a.call is None  # 1 : 1 after ann changed her mind


def test_one_reader_decides_alone_and_a_relabel_keeps_the_class_named() -> None:
    a = adjudicate([FeedbackRecord(1, "1.2", "f1", "ann", T0, "edited", SHOWN, label="Normal")])
    assert a.decided_by == "single reader" and not a.disagreement
    assert (
        a.call == ReaderCall(False, None, "normal")
        and a.summary() == "1 reader agree: absent (normal)"
    )


def test_records_of_several_findings_are_adjudicated_apart() -> None:
    records = _votes(("ann", "accepted"))
    other = FeedbackRecord(9, "1.2", "f2", "ann", T0, "rejected", SHOWN)
    judged = adjudicate_all([*records, other])
    assert set(judged) == {("1.2", "f1"), ("1.2", "f2")}
    with pytest.raises(ValueError, match="several findings"):
        adjudicate([*records, other])


def test_stored_decisions_of_several_readers_with_confidence_and_box(db, add_study) -> None:  # type: ignore[no-untyped-def]
    (fid,) = add_study("1.2.40")
    review_finding(db, "1.2.40", fid, Decision.ACCEPTED, "ann", confidence=5)
    review_finding(
        db,
        "1.2.40",
        fid,
        Decision.EDITED,
        "bob",
        label="Pneumonia",
        box_px=(10, 12, 40, 50),
        confidence=2,
    )
    review_finding(db, "1.2.40", fid, Decision.REJECTED, "cy", confidence=3)
    records = feedback_records(db, "cxr_pneumonia")
    assert [(r.reader, r.decision, r.confidence) for r in records] == [
        ("ann", "accepted", 5),
        ("bob", "edited", 2),
        ("cy", "rejected", 3),
    ]
    assert records[1].box_px == (10.0, 12.0, 40.0, 50.0)
    assert {r.shown.model_version for r in records} == {"1.0.0"}
    assert feedback_records(db, "another_model") == []
    (a,) = stored_adjudications(db, "majority").values()
    assert a.call == ReaderCall(True) and a.disagreement and a.n_readers == 3
    (senior,) = stored_adjudications(db, "senior", ["cy"]).values()
    assert senior.call == ReaderCall(False)
