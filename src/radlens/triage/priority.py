"""Study priority from its findings, and the worklist score that orders studies.

Two parts, both data the site can change (``Settings.critical_labels``,
``ood_penalty``, ``aging_minutes``):

- **Priority level.** A positive finding whose code the site lists as critical makes a
  study URGENT; any other positive finding makes it PRIORITY. A finding on an input unlike
  the training data still raises the level: uncertainty never lowers priority silently.
  A detector's box of a class its card does not triage (``Finding.counted``: the cells of
  a blood smear) is reported but sets no level.
- **Score.** The worklist sorts by ``level + fraction + waited / aging``. The fraction in
  [0, 1) orders studies within a level by the calibrated probability of the finding that
  set the level, less ``ood_penalty`` when that finding is low-trust, so a trusted finding
  is read before an equally probable one the model is unsure about. Waiting adds one level
  per ``aging_minutes``, so no study starves. A radiologist's priority is a floor the AI
  never lowers: the effective level is the higher of the two.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from radlens.domain.findings import Finding, Priority

DEFAULT_CRITICAL = frozenset({"pneumonia", "pneumothorax", "fracture", "hemorrhage"})
_BELOW_ONE = 0.999  # the fraction never reaches the next level on its own


def study_priority(
    findings: Iterable[Finding], critical: frozenset[str] = DEFAULT_CRITICAL
) -> Priority:
    """Highest priority any finding asks for.

    Example:
        >>> study_priority([])
        <Priority.ROUTINE: 0>
    """
    level = Priority.ROUTINE
    for f in findings:
        if f.positive and not f.counted:
            level = max(level, Priority.URGENT if f.code in critical else Priority.PRIORITY)
    return level


@dataclass(frozen=True)
class Triage:
    """A study's AI priority and its score before waiting time is added."""

    priority: Priority
    score: float


@dataclass(frozen=True)
class TriageRules:
    """A site's triage rules.

    Example:
        >>> rules = TriageRules(critical=frozenset({"pneumothorax"}))
        >>> rules.score(Priority.URGENT, 2.5, radiologist=None, waited_s=1800)
        3.0
    """

    critical: frozenset[str] = DEFAULT_CRITICAL
    ood_penalty: float = 0.5
    aging_minutes: float = 60.0

    def triage(self, findings: Iterable[Finding]) -> Triage:
        """The AI priority of a study with these findings, and its score."""
        findings = list(findings)
        level = study_priority(findings, self.critical)
        fraction = 0.0
        for f in findings:
            if f.positive and not f.counted and self._level_of(f) == level:
                trusted = f.probability - (self.ood_penalty if f.ood_flag else 0.0)
                fraction = max(fraction, min(max(trusted, 0.0), _BELOW_ONE))
        return Triage(level, int(level) + fraction)

    def score(
        self,
        ai: Priority | None,
        ai_score: float | None,
        radiologist: Priority | None,
        waited_s: float,
    ) -> float:
        """The worklist sort key: effective level and AI fraction, plus waiting time."""
        base = ai_score if ai_score is not None else float(ai or Priority.ROUTINE)
        if radiologist is not None and radiologist > int(base):
            base = float(radiologist)  # the radiologist's level is a floor
        return base + self.aging(waited_s)

    def aging(self, waited_s: float) -> float:
        """Levels added for waiting ``waited_s`` seconds."""
        return max(waited_s, 0.0) / 60.0 / self.aging_minutes

    def _level_of(self, finding: Finding) -> Priority:
        return Priority.URGENT if finding.code in self.critical else Priority.PRIORITY


def effective_priority(ai: Priority | None, radiologist: Priority | None) -> Priority | None:
    """The higher of the AI's and the radiologist's priority (None when neither is set)."""
    levels = [p for p in (ai, radiologist) if p is not None]
    return max(levels) if levels else None
