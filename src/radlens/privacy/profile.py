"""What happens to each attribute: PS3.15 Annex E, Table E.1-1, with the options radlens uses.

The **basic profile column** (Basic Application Level Confidentiality Profile) is not typed
in here: ``dicom-anonymizer`` (KitwareMedical, BSD-3) ships Table E.1-1 as Python lists
extracted from the standard's own XML, one module per edition, and radlens reads edition
:data:`BASIC_EDITION` through its public selector. Its anonymizing functions are not used
(a module-global UID map and random UIDs that no secret can reproduce).

The **option columns** are in no library, so the four radlens applies are listed here:
Retain Longitudinal Temporal Information with Modified Dates (E.3.6), Retain Patient
Characteristics (E.3.4), Retain Device Identity (E.3.3) and Clean Descriptors (E.3.5).

A conditional action resolves to its last alternative, the one that keeps every IOD
conformant without knowing the IOD's module types: ``X/Z`` -> Z, ``X/D``, ``Z/D`` and
``X/Z/D`` -> D, ``X/Z/U*`` -> K (the sequence stays; the instance UIDs in its items are U
rows of their own). Where two chosen options name one attribute, C wins over K (a date is
shifted rather than kept).

``tests/privacy/annex_e.py`` checks the output against its own transcription of the table,
so a wrong row here or in the library shows up as a failing test.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.datadict import dictionary_VR

BASIC_EDITION = "dicomfields_2026c"
"""The edition of Table E.1-1 read from dicom-anonymizer (DICOM 2026c)."""


class Action(StrEnum):
    """A resolved action of Table E.1-1 (PS3.15 E.1.1)."""

    DUMMY = "D"  # replace with a non-zero length dummy value consistent with the VR
    ZERO = "Z"  # replace with a zero length value (or a dummy)
    REMOVE = "X"
    KEEP = "K"  # keep; a sequence's items are de-identified in turn
    CLEAN = "C"  # dates: shift by the patient's offset; text: scrub identifying values
    UID = "U"  # replace with a UID that is consistent within the set of instances


class DeidOption(StrEnum):
    """The Annex E options radlens applies (all four by default)."""

    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain-longitudinal-modified-dates"
    RETAIN_PATIENT_CHARACTERISTICS = "retain-patient-characteristics"
    RETAIN_DEVICE_IDENTITY = "retain-device-identity"
    CLEAN_DESCRIPTORS = "clean-descriptors"


ALL_OPTIONS = frozenset(DeidOption)

BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
"""CID 7050 code of the profile, for De-identification Method Code Sequence (0012,0064)."""

OPTION_CODES: dict[DeidOption, tuple[str, str]] = {
    DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    DeidOption.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    DeidOption.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    DeidOption.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
}

_RESOLVED = {
    "D_TAGS": Action.DUMMY,
    "Z_TAGS": Action.ZERO,
    "X_TAGS": Action.REMOVE,
    "U_TAGS": Action.UID,
    "Z_D_TAGS": Action.DUMMY,
    "X_Z_TAGS": Action.ZERO,
    "X_D_TAGS": Action.DUMMY,
    "X_Z_D_TAGS": Action.DUMMY,
    "X_Z_U_STAR_TAGS": Action.KEEP,
}

# Retain Patient Characteristics (E.3.4): K in the option column.
_PATIENT_CHARACTERISTICS = (
    0x00100040,  # Patient's Sex
    0x00101010,  # Patient's Age
    0x00101020,  # Patient's Size
    0x00101030,  # Patient's Weight
    0x00102160,  # Ethnic Group
    0x001021A0,  # Smoking Status
    0x001021C0,  # Pregnancy Status
    0x00102203,  # Patient's Sex Neutered
)

# Retain Device Identity (E.3.3): K in the option column.
_DEVICE_IDENTITY = (
    0x00081010,  # Station Name
    0x00181000,  # Device Serial Number
    0x00181002,  # Device UID
    0x00181004,  # Plate ID
    0x00181005,  # Generator ID
    0x00181007,  # Cassette ID
    0x00181008,  # Gantry ID
    0x0018700A,  # Detector ID
    0x00400001,  # Scheduled Station AE Title
    0x00400010,  # Scheduled Station Name
    0x00400241,  # Performed Station AE Title
    0x00400242,  # Performed Station Name
    0x300A00B2,  # Treatment Machine Name
    0x30080105,  # Source Serial Number
)

# Clean Descriptors (E.3.5): C in the option column.
_DESCRIPTORS = (
    0x00081030,  # Study Description
    0x0008103E,  # Series Description
    0x00081080,  # Admitting Diagnoses Description
    0x00082111,  # Derivation Description
    0x00102000,  # Medical Alerts
    0x00102110,  # Allergies
    0x001021B0,  # Additional Patient History
    0x00104000,  # Patient Comments
    0x00120051,  # Clinical Trial Time Point Description
    0x00180010,  # Contrast/Bolus Agent
    0x00181030,  # Protocol Name
    0x00181400,  # Acquisition Device Processing Description
    0x00184000,  # Acquisition Comments
    0x00204000,  # Image Comments
    0x00321030,  # Reason for Study
    0x00321060,  # Requested Procedure Description
    0x00321070,  # Requested Contrast Agent
    0x00324000,  # Study Comments
    0x00380040,  # Discharge Diagnosis Description
    0x00380050,  # Special Needs
    0x00380500,  # Patient State
    0x00384000,  # Visit Comments
    0x00400007,  # Scheduled Procedure Step Description
    0x00400254,  # Performed Procedure Step Description
    0x00400280,  # Comments on the Performed Procedure Step
    0x00401002,  # Reason for the Requested Procedure
    0x00401400,  # Requested Procedure Comments
    0x00402400,  # Imaging Service Request Comments
    0x30060028,  # ROI Description
    0x30060088,  # ROI Observation Description
    0x300A0016,  # Dose Reference Description
)

# Dates and times about the patient rather than the encounter: no option retains them.
_NOT_MODIFIED_DATES = frozenset({0x00100030, 0x00100032})  # Patient's Birth Date / Time

# Timezone Offset From UTC: C in the modified-dates column, but a time zone says where the
# patient was and shifting whole days leaves nothing to modify in it, so radlens removes it.
_TIMEZONE_OFFSET = 0x00080201

_DATE_VRS = frozenset({"DA", "DT", "TM"})


@dataclass(frozen=True)
class _Masked:
    group: int
    element: int
    group_mask: int
    element_mask: int
    action: Action

    def matches(self, tag: int) -> bool:
        return (tag >> 16) & self.group_mask == self.group and (
            tag & 0xFFFF
        ) & self.element_mask == self.element


@dataclass(frozen=True)
class _Table:
    exact: dict[int, Action]
    masked: tuple[_Masked, ...]


@cache
def _basic_table() -> _Table:
    exact: dict[int, Action] = {}
    masked: list[_Masked] = []
    lists = dicom_anonymization_database_selector(BASIC_EDITION)
    for category, action in _RESOLVED.items():
        for entry in lists[category]:
            if len(entry) == 2:
                exact[(entry[0] << 16) | entry[1]] = action
            else:
                group, element, group_mask, element_mask = entry
                masked.append(_Masked(group, element, group_mask, element_mask, action))
    return _Table(exact, tuple(masked))


def basic_action(tag: int) -> Action | None:
    """The resolved basic-profile action for a public tag, or None when not in the table.

    Example:
        >>> basic_action(0x00100010), basic_action(0x00280010)  # Patient's Name, Rows
        (<Action.ZERO: 'Z'>, None)
    """
    table = _basic_table()
    found = table.exact.get(tag)
    if found is not None:
        return found
    return next((m.action for m in table.masked if m.matches(tag)), None)


def action_for(tag: int, options: frozenset[DeidOption]) -> Action | None:
    """The action radlens applies to a public tag under the chosen options; None when
    the table does not list it (the attribute is kept, a sequence's items de-identified).

    Example:
        >>> action_for(0x00081030, frozenset()), action_for(0x00081030, ALL_OPTIONS)
        (<Action.REMOVE: 'X'>, <Action.CLEAN: 'C'>)
    """
    basic = basic_action(tag)
    if basic is None:
        return None
    if tag == _TIMEZONE_OFFSET:
        return Action.REMOVE
    if DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES in options and _is_date(tag):
        return Action.CLEAN
    if DeidOption.CLEAN_DESCRIPTORS in options and tag in _DESCRIPTORS:
        return Action.CLEAN
    if DeidOption.RETAIN_PATIENT_CHARACTERISTICS in options and tag in _PATIENT_CHARACTERISTICS:
        return Action.KEEP
    if DeidOption.RETAIN_DEVICE_IDENTITY in options and tag in _DEVICE_IDENTITY:
        return Action.KEEP
    return basic


def method_codes(options: frozenset[DeidOption]) -> list[tuple[str, str]]:
    """(code value, code meaning) of the profile and each option, in CID 7050 order."""
    return [BASIC_PROFILE_CODE, *(OPTION_CODES[o] for o in DeidOption if o in options)]


def _is_date(tag: int) -> bool:
    if tag in _NOT_MODIFIED_DATES:
        return False
    try:
        return dictionary_VR(tag) in _DATE_VRS
    except KeyError:
        return False
