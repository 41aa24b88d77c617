"""The element-level steps of de-identification: walk a data set and apply each action.

:class:`Walker` applies :func:`radlens.privacy.profile.action_for` to every element, depth
first; the helpers shift dates by whole days, scrub identifying words out of descriptors
and tell which elements are dropped outright. :mod:`radlens.privacy.deid` drives it per
data set and owns the key, pseudonyms and UID map (passed in as functions).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from pydicom.datadict import get_entry
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag
from pydicom.uid import UID

from radlens.errors import DeidentificationError
from radlens.privacy.profile import Action, DeidOption, action_for

DUMMY = "ANONYMIZED"
_WORD = re.compile(r"[^\W_]+")  # letters and digits, any script
_DATE_LIKE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}|\d{5,}")

# Values that name the patient, a person, an identifier or the institution: scrubbed out of
# descriptors by the Clean Descriptors option (with every person name in the data set).
_IDENTIFYING_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "IssuerOfPatientID",
    "AccessionNumber",
    "StudyID",
    "AdmissionID",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MedicalRecordLocator",
    "MilitaryRank",
    "BranchOfService",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianAddress",
    "RequestedProcedureID",
    "PerformedProcedureStepID",
    "ScheduledProcedureStepID",
    "CountryOfResidence",
    "RegionOfResidence",
)

_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(.*)$")
# What pydicom may raise while converting a raw element or writing a file.
ELEMENT_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    NotImplementedError,
    EOFError,
    OSError,
    struct.error,
    UnicodeDecodeError,
)


@dataclass
class Walker:
    """Applies the profile to every element of a data set, depth first."""

    new_uid: Callable[[str], str]
    dummy: Callable[[str], str]
    options: frozenset[DeidOption]
    offset: timedelta
    scrub: Callable[[str], str]
    location: str

    def walk(self, ds: Dataset) -> None:
        for tag in list(ds.keys()):
            if dropped(tag):
                del ds[tag]
                continue
            elem = element(ds, tag, self.location)
            action = action_for(int(tag), self.options)
            if action is None:
                self._unlisted(ds, elem)
            else:
                self._apply(ds, elem, action)

    def _apply(self, ds: Dataset, elem: DataElement, action: Action) -> None:
        if action is Action.REMOVE:
            del ds[elem.tag]
        elif action is Action.ZERO:
            elem.value = DicomSequence() if elem.VR == "SQ" else None
        elif action is Action.DUMMY:
            self._dummy(elem)
        elif action is Action.UID:
            self._uids(elem)
        elif elem.VR == "SQ":  # K and C on a sequence: de-identify its items
            self._items(elem)
        elif action is Action.CLEAN:
            self._clean(elem)

    def _unlisted(self, ds: Dataset, elem: DataElement) -> None:
        """Not in Table E.1-1: kept, except that UIDs are replaced and dates shifted like
        the table's (emptied when dates are not retained): the table cannot list them all."""
        if elem.VR == "SQ":
            self._items(elem)
        elif elem.VR == "UI" and not _is_fixed_uid(elem):
            self._uids(elem)
        elif elem.VR in ("DA", "DT") and (
            DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES in self.options
        ):
            self._clean(elem)
        elif elem.VR in ("DA", "DT"):
            elem.value = None

    def _items(self, elem: DataElement) -> None:
        for item in elem.value:
            self.walk(item)

    def _uids(self, elem: DataElement) -> None:
        if elem.VR != "UI":
            if elem.VR == "SQ":
                self._items(elem)
            return
        elem.value = mapped(elem.value, lambda v: self.new_uid(v) if v.strip() else v)

    def _dummy(self, elem: DataElement) -> None:
        vr = elem.VR
        if vr == "SQ":
            elem.value = DicomSequence()  # a dummy item would carry nothing; none leaks less
        elif vr == "UI":
            self._uids(elem)
        elif vr in ("LO", "SH"):
            elem.value = mapped(elem.value, self.dummy) if elem.value else DUMMY
        elif vr in _DUMMY_BY_VR:
            elem.value = _DUMMY_BY_VR[vr]
        else:
            elem.value = DUMMY

    def _clean(self, elem: DataElement) -> None:
        if elem.VR in ("DA", "DT"):
            shift = shift_date if elem.VR == "DA" else shift_datetime
            shifted = [shift(str(v), self.offset) for v in values(elem.value)]
            kept = [v for v in shifted if v is not None]
            elem.value = None if not kept else kept[0] if len(kept) == 1 else kept
        elif elem.VR == "TM":
            return  # whole-day shifts leave times as they were
        elif elem.VR in _TEXT_VRS:
            cleaned = [self.scrub(str(v)) for v in values(elem.value)]
            kept = [v for v in cleaned if v]
            elem.value = None if not kept else kept[0] if len(kept) == 1 else kept
        else:
            elem.value = None


_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "CS", "PN"})
_DUMMY_BY_VR: dict[str, object] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
    "OB": b"\x00\x00",
    "OW": b"\x00\x00",
    "OF": b"\x00\x00\x00\x00",
    "OD": b"\x00" * 8,
    "OL": b"\x00\x00\x00\x00",
    "OV": b"\x00" * 8,
    "UN": b"\x00\x00",
}


def dropped(tag: BaseTag) -> bool:
    """Private tags, group lengths, overlay planes, meta or command groups in the data
    set, and tags the dictionary does not know: removed before any action.

    Example:
        >>> from pydicom.tag import Tag
        >>> dropped(Tag(0x0029, 0x1010)), dropped(Tag(0x6000, 0x3000)), dropped(Tag(0x0028, 0x0010))
        (True, True, False)
    """
    group, element = tag.group, tag.element
    if tag.is_private or element == 0 or group in (0x0000, 0x0002) or 0x6000 <= group <= 0x601E:
        return True
    try:
        get_entry(int(tag))
    except KeyError:
        return True
    return False


def element(ds: Dataset, tag: BaseTag, location: str) -> DataElement:
    """The element at ``tag``, converted; refused when it cannot be read or stays VR UN.

    Raises:
        DeidentificationError: the element cannot be interpreted, so it cannot be checked.
    """
    try:
        elem = ds[tag]
    except ELEMENT_ERRORS as exc:
        raise DeidentificationError(
            location,
            f"element {tag} cannot be interpreted ({type(exc).__name__}), so it cannot be checked",
        ) from exc
    if elem.VR == "UN":
        raise DeidentificationError(
            location,
            f"element {tag} has an unknown encoding (VR UN), so it cannot be checked",
        )
    return elem


def _is_fixed_uid(elem: DataElement) -> bool:
    """Class, transfer syntax, coding scheme and well-known UIDs name no patient: kept."""
    keyword = elem.keyword
    if keyword.endswith(("ClassUID", "TransferSyntaxUID")) or keyword == "CodingSchemeUID":
        return True
    return all(UID(str(v).strip()).keyword for v in values(elem.value))


def identifying_values(ds: Dataset, location: str) -> list[str]:
    """Every person name in the data set and the values of the identifying attributes."""
    found: list[str] = []

    def visit(item: Dataset) -> None:
        for tag in list(item.keys()):
            if dropped(tag):
                continue
            elem = element(item, tag, location)
            if elem.VR == "PN" or elem.keyword in _IDENTIFYING_KEYWORDS:
                found.extend(str(v) for v in values(elem.value))
            elif elem.VR == "SQ":
                for child in elem.value:
                    visit(child)

    visit(ds)
    return [v for v in found if v.strip()]


def scrubber(identifying: list[str]) -> Callable[[str], str]:
    """A function that removes the given values and their words from a text, with
    anything shaped like a date and any run of five or more digits.

    Example:
        >>> scrubber(["Doe^Jane", "MRN-77881"])("CT head Jane Doe 2004-01-19 mrn 77881 f/u")
        'CT head f/u'
    """
    words: set[str] = set()
    for value in identifying:
        words.add(value.strip())
        words.update(_WORD.findall(value))
    words = {w for w in words if len(w) >= 2}
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    pattern = (
        re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", re.IGNORECASE)
        if alternatives
        else None
    )

    def scrub(text: str) -> str:
        if pattern is not None:
            text = pattern.sub(" ", text)
        text = _DATE_LIKE.sub(" ", text)
        return " ".join(text.split()).strip(" -_/,;:.^")

    return scrub


def shift_date(value: str, offset: timedelta) -> str | None:
    """``YYYYMMDD`` (or ACR-NEMA ``YYYY.MM.DD``) moved by ``offset``; None if not a date.

    Example:
        >>> shift_date("1995.05.01", timedelta(days=-31)), shift_date("19951301", timedelta())
        ('19950331', None)
    """
    digits = value.strip().replace(".", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        moved = date(int(digits[:4]), int(digits[4:6]), int(digits[6:])) + offset
    except (ValueError, OverflowError):
        return None
    return moved.strftime("%Y%m%d")


def shift_datetime(value: str, offset: timedelta) -> str | None:
    """A DT value with its date part moved by ``offset``, keeping its precision and the
    time, fraction and UTC offset after it; None if it does not start with a year.

    Example:
        >>> shift_datetime("20040119083000.5+0100", timedelta(days=-18))
        '20040101083000.5+0100'
    """
    match = _DT.match(value.strip())
    if match is None:
        return None
    year, month, day, rest = match.groups()
    moved = shift_date(f"{year}{month or '01'}{day or '01'}", offset)
    if moved is None:
        return None
    width = 4 + (2 if month else 0) + (2 if day else 0)
    return moved[:width] + rest


def mapped(value: object, fn: Callable[[str], str]) -> object:
    """``fn`` applied to a value, or to each value of a multi-valued one."""
    if isinstance(value, MultiValue | list | tuple):
        return [fn(str(v)) for v in value]
    return fn(str(value)) if value is not None else value


def values(value: object) -> list[object]:
    """The values of an element value as a list (empty for an empty value)."""
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]
