"""The active-learning queue: what makes a case informative, its order, and fairness across
sites and scanners; on candidates made in code and on stored studies."""

from __future__ import annotations

from datetime import datetime, timedelta

from feedback_helpers import Spec

from radlens.feedback.adjudication import adjudicate
from radlens.feedback.equipment import Equipment
from radlens.feedback.queue import Candidate, Reason, informativeness, learning_queue
from radlens.feedback.records import FeedbackRecord, ShownFinding
from radlens.feedback.views import queue
from radlens.store.review import Decision, open_study, review_finding, save_report, sign
from radlens.store.worklist import get_study

T0 = datetime(2025, 3, 1, 8, 0)
BUSY = Equipment("ACME", "Scan 1", "CT01")
RARE = Equipment("Other", "Portable 2", "WARD7")


def _shown(p: float, t: float = 0.5, ood: float | None = 0.4, **extra: object) -> ShownFinding:
    return ShownFinding(
        "pneumonia",
        "Pneumonia",
        p,
        t,
        p >= t,
        "cxr",
        "1.0.0",
        ood_score=ood,
        ood_flag=ood is not None and ood >= 1,
        **extra,  # type: ignore[arg-type]
    )


def _candidate(
    uid: str, shown: ShownFinding, equipment: Equipment = BUSY, **kw: object
) -> Candidate:
    return Candidate(uid, f"f{uid}", shown, equipment, T0 + timedelta(seconds=len(uid)), **kw)  # type: ignore[arg-type]


def test_informativeness_reasons_and_their_weights() -> None:
    assert informativeness(_shown(0.95)).reasons == ()  # confident, in distribution
    at_threshold = informativeness(_shown(0.5))
    assert at_threshold.reasons == (Reason.UNCERTAIN,) and at_threshold.score == 1.0
    assert informativeness(_shown(0.58)).score == 0.84  # 1 - 0.08 / 0.5
    in_band = _shown(0.75, warnings=("indeterminate: probability too close",))
    assert informativeness(in_band).reasons == (Reason.UNCERTAIN,)
    ood = informativeness(_shown(0.95, ood=1.6))
    assert ood.reasons == (Reason.OOD,) and ood.score == 0.8
    shown = _shown(0.9)
    votes = [
        FeedbackRecord(1, "1", "f", "ann", T0, "rejected", shown, confidence=1),
        FeedbackRecord(2, "1", "f", "bob", T0, "rejected", shown, confidence=2),
    ]
    disagreed = informativeness(shown, adjudicate(votes))
    assert disagreed.reasons == (Reason.AI_DISAGREEMENT, Reason.LOW_CONFIDENCE)
    assert disagreed.score == 1.5
    split = [
        FeedbackRecord(3, "1", "f", "ann", T0, "rejected", shown, confidence=4),
        FeedbackRecord(4, "1", "f", "cy", T0, "accepted", shown),
    ]
    assert informativeness(shown, adjudicate(split)).reasons == (Reason.READER_DISAGREEMENT,)


def test_the_queue_orders_cases_by_what_they_would_teach() -> None:
    items = learning_queue(
        [
            _candidate("1", _shown(0.97)),  # nothing to learn: left out
            _candidate("2", _shown(0.45)),  # uncertain
            _candidate("3", _shown(0.5, ood=2.0)),  # uncertain and out of distribution
            _candidate("4", _shown(0.59)),  # barely uncertain
        ]
    )
    assert [i.study_uid for i in items] == ["3", "2", "4"]
    assert [i.rank for i in items] == [1, 2, 3]
    assert items[0].reasons == ("uncertain", "out of distribution") and items[0].score == 2.0


def test_a_study_is_one_case_scored_by_its_best_finding() -> None:
    weak = Candidate("9", "a", _shown(0.6), BUSY, T0)
    strong = Candidate("9", "b", _shown(0.95, ood=2.0), BUSY, T0)
    (item,) = learning_queue([weak, strong])
    assert item.finding_id == "b" and item.n_findings == 2
    assert item.reasons == ("uncertain", "out of distribution")


def test_sites_and_scanners_take_turns_so_a_busy_scanner_cannot_crowd_out_a_rare_one() -> None:
    busy = [_candidate(f"b{i}", _shown(0.5 + i * 0.01), BUSY) for i in range(6)]
    rare = [_candidate(f"r{i}", _shown(0.58 + i * 0.01), RARE) for i in range(2)]
    items = learning_queue(busy + rare)
    strata = [i.stratum for i in items]
    assert strata[:4] == [BUSY.stratum, RARE.stratum, BUSY.stratum, RARE.stratum]
    assert strata[4:] == [BUSY.stratum] * 4
    # without fairness the rare scanner's cases (all less uncertain) would come last
    assert max(i.score for i in items if i.equipment == RARE) < min(
        i.score for i in items[:3] if i.equipment == BUSY
    )
    assert len(learning_queue(busy + rare, limit=3)) == 3


def test_a_reader_does_not_get_findings_they_already_reviewed() -> None:
    shown = _shown(0.5)
    voted = adjudicate([FeedbackRecord(1, "1", "f1", "ann", T0, "accepted", shown)])
    candidate = _candidate("1", shown, adjudication=voted)
    assert learning_queue([candidate], reader="ann") == []
    assert len(learning_queue([candidate], reader="bob")) == 1


def test_the_stored_queue_lists_open_studies_with_their_equipment(db, site, add_study) -> None:  # type: ignore[no-untyped-def]
    (uncertain,) = add_study("1.2.50", [Spec(probability=0.52)])
    add_study("1.2.51", [Spec(probability=0.99)])
    (rare,) = add_study("1.2.52", [Spec(probability=0.4, ood_score=1.4)], equipment=RARE)
    (signed_fid,) = add_study("1.2.53", [Spec(probability=0.5)])
    open_study(db, "1.2.53")
    save_report(db, "1.2.53", "No acute finding.", "ann")
    sign(db, "1.2.53", "ann")
    assert get_study(db, "1.2.53").signed_at is not None
    items = queue(db, site.storage)
    assert [(i.study_uid, i.finding_id) for i in items] == [
        ("1.2.52", rare),
        ("1.2.50", uncertain),
    ]
    assert items[0].equipment == RARE and items[1].equipment == BUSY
    review_finding(db, "1.2.50", uncertain, Decision.ACCEPTED, "ann")
    assert [i.study_uid for i in queue(db, site.storage, reader="ann")] == ["1.2.52"]
    (mine,) = [i for i in queue(db, site.storage, reader="bob") if i.study_uid == "1.2.50"]
    assert mine.adjudication is not None and mine.adjudication.n_readers == 1
    assert queue(db, site.storage, model_name="nothing") == []
