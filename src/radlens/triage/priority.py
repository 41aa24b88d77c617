"""Study priority from its findings (the full worklist rules arrive with the server).

A positive finding whose code the site lists as critical makes a study URGENT; any other
positive finding makes it PRIORITY. A finding on an input outside the model's training
population still raises priority: uncertainty never lowers it silently.
"""

from __future__ import annotations

from collections.abc import Iterable

from radlens.domain.findings import Finding, Priority

DEFAULT_CRITICAL = frozenset({"pneumonia", "pneumothorax", "fracture", "hemorrhage"})


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
        if f.positive:
            level = max(level, Priority.URGENT if f.code in critical else Priority.PRIORITY)
    return level
