"""The per-attribute actions: the library's basic column, the option columns, resolution."""

from __future__ import annotations

import pytest

from radlens.privacy.profile import (
    ALL_OPTIONS,
    BASIC_EDITION,
    Action,
    DeidOption,
    action_for,
    basic_action,
    method_codes,
)


@pytest.mark.parametrize(
    ("tag", "action"),
    [
        (0x00100010, Action.ZERO),  # Patient's Name: Z
        (0x00081030, Action.REMOVE),  # Study Description: X
        (0x0020000D, Action.UID),  # Study Instance UID: U
        (0x00080080, Action.DUMMY),  # Institution Name: X/Z/D -> D
        (0x00080022, Action.ZERO),  # Acquisition Date: X/Z -> Z
        (0x00082112, Action.KEEP),  # Source Image Sequence: X/Z/U* -> K (items de-identified)
        (0x60023000, Action.REMOVE),  # Overlay Data in group 6002: (60xx,3000) X
        (0x50000010, Action.REMOVE),  # Curve data: (50xx,xxxx) X
        (0x00280010, None),  # Rows: not in the table
    ],
)
def test_basic_actions_come_from_the_table_with_conditionals_resolved(
    tag: int, action: Action | None
) -> None:
    assert basic_action(tag) is action


def test_the_edition_is_the_newest_the_library_ships() -> None:
    assert BASIC_EDITION == "dicomfields_2026c"


@pytest.mark.parametrize(
    ("tag", "option", "action"),
    [
        (0x00080020, DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES, Action.CLEAN),  # Study Date
        (0x0008002A, DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES, Action.CLEAN),  # Acq. DT
        (0x00100030, DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES, Action.ZERO),  # Birth Date
        (0x00080201, DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES, Action.REMOVE),  # Timezone
        (0x00101010, DeidOption.RETAIN_PATIENT_CHARACTERISTICS, Action.KEEP),  # Patient's Age
        (0x00081010, DeidOption.RETAIN_DEVICE_IDENTITY, Action.KEEP),  # Station Name
        (0x00181000, DeidOption.RETAIN_DEVICE_IDENTITY, Action.KEEP),  # Device Serial Number
        (0x0008103E, DeidOption.CLEAN_DESCRIPTORS, Action.CLEAN),  # Series Description
        (0x00100010, DeidOption.CLEAN_DESCRIPTORS, Action.ZERO),  # no option names it
    ],
)
def test_an_option_replaces_the_basic_action_only_where_its_column_has_a_cell(
    tag: int, option: DeidOption, action: Action
) -> None:
    assert action_for(tag, frozenset({option})) is action


def test_a_date_kept_by_one_option_and_modified_by_another_is_modified() -> None:
    assert action_for(0x00080021, ALL_OPTIONS) is Action.CLEAN  # Series Date


def test_method_codes_follow_the_options_in_a_fixed_order() -> None:
    assert [c for c, _ in method_codes(ALL_OPTIONS)] == [
        "113100",
        "113107",
        "113108",
        "113109",
        "113105",
    ]
    assert method_codes(frozenset()) == [("113100", "Basic Application Confidentiality Profile")]
