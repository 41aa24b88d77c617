"""Study priority: the highest any positive finding asks for."""

from __future__ import annotations

import pytest

from radlens.domain.findings import Box, Finding, Priority
from radlens.triage.priority import TriageRules, effective_priority, study_priority


def finding(code: str, probability: float, ood: bool = False) -> Finding:
    return Finding(code, code.title(), probability, 0.5, "m", "1", ood_flag=ood)


def test_no_findings_is_routine() -> None:
    assert study_priority([]) is Priority.ROUTINE


def test_negative_findings_stay_routine() -> None:
    assert study_priority([finding("pneumonia", 0.49), finding("nodule", 0.1)]) is Priority.ROUTINE


def test_positive_non_critical_finding_is_priority() -> None:
    assert study_priority([finding("nodule", 0.7)]) is Priority.PRIORITY


def test_positive_critical_finding_is_urgent_whatever_the_order() -> None:
    findings = [finding("pneumonia", 0.9), finding("nodule", 0.7)]
    assert study_priority(findings) is Priority.URGENT
    assert study_priority(reversed(findings)) is Priority.URGENT


def test_out_of_distribution_positive_still_raises_priority() -> None:
    assert study_priority([finding("pneumonia", 0.9, ood=True)]) is Priority.URGENT


def test_counted_detector_boxes_set_no_level_but_a_triaged_class_does() -> None:
    box = Box(0, 0, 9, 9)
    cell = Finding("rbc", "RBC", 0.9, 0.3, "cells", "1", box=box, detected=True, counted=True)
    fracture = Finding("fracture", "Fracture", 0.8, 0.3, "frac", "1", box=box, detected=True)
    assert study_priority([cell, cell]) is Priority.ROUTINE
    assert TriageRules().triage([cell]).score == 0.0
    assert study_priority([cell, fracture]) is Priority.URGENT
    assert TriageRules().triage([cell, fracture]).score == pytest.approx(2.8)


def test_site_can_choose_critical_codes() -> None:
    positive = [finding("pneumonia", 0.9)]
    assert study_priority(positive, critical=frozenset()) is Priority.PRIORITY
    assert study_priority([finding("nodule", 0.6)], frozenset({"nodule"})) is Priority.URGENT


# --- worklist score (TriageRules) -------------------------------------------------------


def test_score_orders_within_a_level_by_probability() -> None:
    rules = TriageRules()
    high = rules.triage([finding("pneumonia", 0.95)])
    low = rules.triage([finding("pneumonia", 0.6)])
    assert high.priority is low.priority is Priority.URGENT
    assert 2 <= low.score < high.score < 3


def test_low_trust_finding_is_penalized_within_its_level_never_below_it() -> None:
    rules = TriageRules(ood_penalty=0.5)
    trusted = rules.triage([finding("pneumonia", 0.9)])
    unsure = rules.triage([finding("pneumonia", 0.9, ood=True)])
    assert unsure.priority is Priority.URGENT
    assert 2.0 <= unsure.score < trusted.score
    harsh = TriageRules(ood_penalty=0.8)
    assert harsh.triage([finding("pneumonia", 0.6, ood=True)]).score == 2.0


def test_fraction_comes_from_the_finding_that_set_the_level() -> None:
    rules = TriageRules()
    mixed = rules.triage([finding("pneumonia", 0.6), finding("nodule", 0.99)])
    assert mixed.priority is Priority.URGENT
    assert mixed.score == pytest.approx(2.6)


def test_routine_study_scores_its_level() -> None:
    assert TriageRules().triage([finding("nodule", 0.2)]).score == 0.0


def test_waiting_adds_one_level_per_aging_period_so_nothing_starves() -> None:
    rules = TriageRules(aging_minutes=30)
    fresh_urgent = rules.score(Priority.URGENT, 2.5, None, waited_s=0)
    old_routine = rules.score(Priority.ROUTINE, 0.0, None, waited_s=3 * 30 * 60)
    assert old_routine > fresh_urgent
    assert rules.score(Priority.ROUTINE, 0.0, None, waited_s=15 * 60) == pytest.approx(0.5)


def test_radiologist_priority_is_a_floor_the_ai_never_lowers() -> None:
    rules = TriageRules()
    assert rules.score(Priority.ROUTINE, 0.0, Priority.URGENT, 0) == 2.0
    # The AI asking for more wins over a lower radiologist level.
    assert rules.score(Priority.CRITICAL, 3.4, Priority.PRIORITY, 0) == 3.4
    assert effective_priority(Priority.ROUTINE, Priority.URGENT) is Priority.URGENT
    assert effective_priority(Priority.URGENT, Priority.ROUTINE) is Priority.URGENT
    assert effective_priority(None, None) is None


def test_unanalyzed_study_scores_as_routine() -> None:
    assert TriageRules().score(None, None, None, 0) == 0.0
