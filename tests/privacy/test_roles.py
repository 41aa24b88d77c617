"""The permission table and the owner rules (``privacy/roles.py``)."""

from __future__ import annotations

import pytest

from radlens.privacy.roles import PERMISSIONS, Action, Role, allowed, may_edit_draft, may_sign

PATIENT_DATA = {
    Action.WORKLIST_READ,
    Action.STUDY_READ,
    Action.IMAGES_READ,
    Action.IMAGES_STORE,
    Action.STUDY_OPEN,
    Action.FINDINGS_REVIEW,
    Action.PRIORITY_WRITE,
    Action.NOTES_WRITE,
    Action.REPORT_WRITE,
    Action.REPORT_SIGN,
    Action.REPORT_EXPORT,
}


def test_every_role_has_a_row_and_every_action_a_role() -> None:
    assert set(PERMISSIONS) == set(Role)
    assert set().union(*PERMISSIONS.values()) == set(Action)


def test_a_researcher_may_touch_no_patient_data() -> None:
    assert PERMISSIONS[Role.RESEARCHER] == {Action.DEIDENTIFIED_READ}
    assert not any(allowed(Role.RESEARCHER, a) for a in PATIENT_DATA)


def test_a_technologist_may_not_read_for_diagnosis() -> None:
    for action in (
        Action.STUDY_OPEN,
        Action.FINDINGS_REVIEW,
        Action.REPORT_WRITE,
        Action.REPORT_SIGN,
        Action.REPORT_EXPORT,
        Action.PRIORITY_WRITE,
    ):
        assert not allowed(Role.TECHNOLOGIST, action), action
    assert allowed(Role.TECHNOLOGIST, Action.IMAGES_STORE)


def test_only_admins_manage_accounts_and_admins_are_also_readers() -> None:
    assert [r for r in Role if allowed(r, Action.ACCOUNTS_MANAGE)] == [Role.ADMIN]
    assert PERMISSIONS[Role.RADIOLOGIST] < PERMISSIONS[Role.ADMIN]


@pytest.mark.parametrize("role", ["superuser", "", "ADMIN"])
def test_an_unknown_role_may_do_nothing(role: str) -> None:
    assert not any(allowed(role, a) for a in Action)


def test_a_draft_belongs_to_its_author_and_an_admin_may_take_it_over() -> None:
    assert may_edit_draft("ann", Role.RADIOLOGIST, "")
    assert may_edit_draft("ann", Role.RADIOLOGIST, "ann")
    assert not may_edit_draft("ann", Role.RADIOLOGIST, "bob")
    assert may_edit_draft("root", Role.ADMIN, "bob")


def test_only_the_author_signs() -> None:
    assert may_sign("ann", "ann")
    assert not may_sign("ann", "bob") and not may_sign("root", "bob")
    assert not may_sign("ann", "")
