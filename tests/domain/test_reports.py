"""``SignedReport``: text and an aware signing time, or it cannot exist."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from radlens.domain.reports import SignedReport


def test_a_signed_report_needs_text_and_an_aware_time() -> None:
    report = SignedReport("No acute finding.", datetime(2026, 1, 2, tzinfo=UTC), "reader")
    assert report.signed_by == "reader"
    with pytest.raises(ValueError, match="text"):
        SignedReport("  ", datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="time-zone aware"):
        SignedReport("No acute finding.", datetime(2026, 1, 2))  # naive
