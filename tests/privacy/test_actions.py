"""Element-level steps: whole-day date shifts, descriptor scrubbing, dropped tags."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydicom.tag import Tag

from radlens.privacy.actions import dropped, scrubber, shift_date, shift_datetime

BACK = timedelta(days=-400)


@pytest.mark.parametrize(
    ("value", "shifted"),
    [
        ("20040119", "20021215"),
        ("1995.05.01", "19940327"),  # ACR-NEMA 300 style, written back as DICOM
        ("20240301", "20230126"),  # across a leap day
        ("2004011", None),
        ("20041301", None),
        ("", None),
    ],
)
def test_shift_date_moves_whole_days_or_gives_up(value: str, shifted: str | None) -> None:
    assert shift_date(value, BACK) == shifted


@pytest.mark.parametrize(
    ("value", "shifted"),
    [
        ("20040119123456.123+0100", "20021215123456.123+0100"),
        ("20020904000000.000000", "20010731000000.000000"),
        ("200401", "200211"),
        ("2004", "2002"),
        ("noon", None),
    ],
)
def test_shift_datetime_keeps_precision_time_and_utc_offset(
    value: str, shifted: str | None
) -> None:
    assert shift_datetime(value, BACK) == shifted


def test_scrubber_removes_identifying_words_dates_and_long_numbers() -> None:
    scrub = scrubber(["Doe^Jane", "MRN-778812", "St. Elsewhere Hospital"])
    assert scrub("CT HEAD Jane DOE mrn-778812 14/02/2004 follow-up") == "CT HEAD follow-up"
    assert scrub("Elsewhere protocol 1234567") == "protocol"
    assert scrub("T2 axial") == "T2 axial"  # words of other words are kept ("T2" in "ST2")
    assert scrubber([])("PA 2004-01-19") == "PA"


@pytest.mark.parametrize(
    ("tag", "is_dropped"),
    [
        (Tag(0x0009, 0x1001), True),  # private
        (Tag(0x0009, 0x0010), True),  # private creator
        (Tag(0x0008, 0x0000), True),  # group length
        (Tag(0x6000, 0x0010), True),  # overlay plane
        (Tag(0x0002, 0x0010), True),  # file meta inside the data set
        (Tag(0x0011, 0x0000), True),
        (Tag(0x0028, 0x0010), False),  # Rows
        (Tag(0x0010, 0x0010), False),  # Patient's Name: handled by the table, not dropped
    ],
)
def test_dropped_tags(tag: Tag, is_dropped: bool) -> None:
    assert dropped(tag) is is_dropped
