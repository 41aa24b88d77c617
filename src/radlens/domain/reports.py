"""The physician's report of a study, as the structured outputs need it.

The AI draft is composed from the findings (``report/compose.py``); once a radiologist signs
a report, its text and signing time replace the draft in every output (FHIR
``DiagnosticReport`` status ``final``), while the AI's findings stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from radlens.domain.findings import Finding


@dataclass(frozen=True)
class SignedReport:
    """A report a radiologist signed.

    Attributes:
        text: the signed text, as written.
        signed_at: when it was signed; time-zone aware (FHIR ``instant`` needs the zone).
        signed_by: the account that signed it.

    Example:
        >>> from datetime import UTC, datetime
        >>> SignedReport("No acute finding.", datetime(2026, 1, 2, 3, 4, tzinfo=UTC)).signed_by
        ''
    """

    text: str
    signed_at: datetime
    signed_by: str = ""

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a signed report has text")
        if self.signed_at.utcoffset() is None:
            raise ValueError("signed_at must be time-zone aware")


@dataclass(frozen=True)
class PriorStudy:
    """An earlier study of the same patient, as the draft's Comparison section needs it.

    Attributes:
        study_instance_uid: the prior study.
        study_date: when it was made, ISO ``YYYY-MM-DD`` (the time received when it has no
            Study Date); "" when unknown.
        description: its Study Description (or requested procedure), "" when none.
        findings: its AI findings as stored (no heatmaps needed).
    """

    study_instance_uid: str
    study_date: str = field(default="", repr=False)
    description: str = ""
    findings: tuple[Finding, ...] = ()
