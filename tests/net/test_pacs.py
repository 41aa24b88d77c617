"""The PACS poller's QIDO-RS window (the poller itself runs against Orthanc in
tests/integration/test_orthanc.py)."""

from __future__ import annotations

from datetime import date

import pytest

from radlens.net.pacs import study_date_range


def test_study_date_range_starts_lookback_days_before_today_and_stays_open() -> None:
    assert study_date_range(2, date(2024, 3, 1)) == "20240228-"  # across a leap day
    assert study_date_range(1, date(2025, 1, 1)) == "20241231-"
    assert study_date_range(0, date(2025, 1, 1)) == "20250101-"


def test_study_date_range_refuses_a_negative_lookback() -> None:
    with pytest.raises(ValueError, match="lookback_days"):
        study_date_range(-1, date(2025, 1, 1))
