"""Study priority: the highest any positive finding asks for."""

from __future__ import annotations

from radlens.domain.findings import Finding, Priority
from radlens.triage.priority import study_priority


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


def test_site_can_choose_critical_codes() -> None:
    positive = [finding("pneumonia", 0.9)]
    assert study_priority(positive, critical=frozenset()) is Priority.PRIORITY
    assert study_priority([finding("nodule", 0.6)], frozenset({"nodule"})) is Priority.URGENT
