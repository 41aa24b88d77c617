"""An independent checker of de-identified DICOM, written from PS3.15 Annex E Table E.1-1.

This file does not import radlens's profile or its table library (dicom-anonymizer). The
rows were transcribed by hand from Table E.1-1 as it stands in the editions 2023 to 2025
(the basic profile column and the four option columns radlens offers), for every
attribute of the table that occurs in the test files (pydicom-data and ../shared/data/dicom,
nested ones included; 143 tags) plus the core identity attributes. Where a later edition
changed a cell, the row says so. pydicom ships no copy of the table (only the CID 7050
codes), so nothing here comes from a library.

Columns: ``basic`` (Basic Prof.), ``dates`` (Rtn. Long. Modif. Dates), ``patient`` (Rtn.
Pat. Chars.), ``device`` (Rtn. Dev. Id.), ``descriptors`` (Clean Desc.). Conditional
actions keep the standard's spelling ("X/Z/D", "X/Z/U*").

What :func:`check` accepts for each action (the output at the same place as the input):

* X: absent.  Z: present, empty or a dummy (not the original).  D: present, not the
  original (a sequence may be emptied: radlens documents this).  U: a valid UID, not the
  original, the same for the same input everywhere (pairs returned for the caller).
  K: unchanged.  C: dates and date-times moved by exactly the patient's offset, times
  unchanged, text only losing words (no identifying word, nothing shaped like a date or a
  long number); absent or empty is accepted for C ("cleaned to nothing").
* A conditional action accepts any of its alternatives.
* When a chosen option has a cell for the row, that cell replaces the basic action.

Beyond single rows: no private or group length element anywhere; every date anywhere moved
by the offset (with the dates option); Patient Identity Removed YES; De-identification
Method present; the code sequence holds exactly DCM 113100 and the chosen options' codes;
Longitudinal Temporal Information Modified MODIFIED; file meta consistent with the data set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

EDITION = "PS3.15 2023-2025, Table E.1-1"

OPTION_CODES = {"dates": "113107", "patient": "113108", "device": "113109", "descriptors": "113105"}
BASIC_CODE = "113100"


@dataclass(frozen=True)
class Row:
    tag: int
    name: str
    basic: str
    dates: str = ""
    patient: str = ""
    device: str = ""
    descriptors: str = ""


def _r(group: int, element: int, name: str, basic: str, **options: str) -> Row:
    return Row((group << 16) | element, name, basic, **options)


# fmt: off
ROWS: tuple[Row, ...] = (
    _r(0x0002, 0x0003, "Media Storage SOP Instance UID", "U"),
    _r(0x0008, 0x0012, "Instance Creation Date", "X/D", dates="C"),
    _r(0x0008, 0x0013, "Instance Creation Time", "X/Z/D", dates="C"),
    _r(0x0008, 0x0014, "Instance Creator UID", "U"),
    _r(0x0008, 0x0018, "SOP Instance UID", "U"),
    _r(0x0008, 0x0020, "Study Date", "Z", dates="C"),
    _r(0x0008, 0x0021, "Series Date", "X/D", dates="C"),
    _r(0x0008, 0x0022, "Acquisition Date", "X/Z", dates="C"),
    _r(0x0008, 0x0023, "Content Date", "Z/D", dates="C"),
    _r(0x0008, 0x0024, "Overlay Date", "X", dates="C"),
    _r(0x0008, 0x0025, "Curve Date", "X", dates="C"),
    _r(0x0008, 0x002A, "Acquisition DateTime", "X/Z/D", dates="C"),
    _r(0x0008, 0x0030, "Study Time", "Z", dates="C"),
    _r(0x0008, 0x0031, "Series Time", "X/D", dates="C"),
    _r(0x0008, 0x0032, "Acquisition Time", "X/Z", dates="C"),
    _r(0x0008, 0x0033, "Content Time", "Z/D", dates="C"),
    _r(0x0008, 0x0034, "Overlay Time", "X", dates="C"),
    _r(0x0008, 0x0035, "Curve Time", "X", dates="C"),
    _r(0x0008, 0x0050, "Accession Number", "Z"),
    _r(0x0008, 0x0080, "Institution Name", "X/Z/D"),
    _r(0x0008, 0x0081, "Institution Address", "X"),
    _r(0x0008, 0x0082, "Institution Code Sequence", "X/Z/D"),
    _r(0x0008, 0x0090, "Referring Physician's Name", "Z"),
    _r(0x0008, 0x0092, "Referring Physician's Address", "X"),
    _r(0x0008, 0x0094, "Referring Physician's Telephone Numbers", "X"),
    _r(0x0008, 0x0096, "Referring Physician Identification Sequence", "X"),
    _r(0x0008, 0x0106, "Context Group Version", "D", dates="C"),
    _r(0x0008, 0x0201, "Timezone Offset From UTC", "X", dates="C"),
    _r(0x0008, 0x1010, "Station Name", "X/Z/D", device="K"),
    _r(0x0008, 0x1030, "Study Description", "X", descriptors="C"),
    _r(0x0008, 0x103E, "Series Description", "X", descriptors="C"),
    _r(0x0008, 0x1040, "Institutional Department Name", "X"),
    _r(0x0008, 0x1048, "Physician(s) of Record", "X"),
    _r(0x0008, 0x1049, "Physician(s) of Record Identification Sequence", "X"),
    _r(0x0008, 0x1050, "Performing Physicians' Name", "X"),
    _r(0x0008, 0x1052, "Performing Physician Identification Sequence", "X"),
    _r(0x0008, 0x1060, "Name of Physician(s) Reading Study", "X"),
    _r(0x0008, 0x1062, "Physician(s) Reading Study Identification Sequence", "X"),
    _r(0x0008, 0x1070, "Operators' Name", "X/Z/D"),
    _r(0x0008, 0x1072, "Operator Identification Sequence", "X/D"),
    _r(0x0008, 0x1080, "Admitting Diagnoses Description", "X", descriptors="C"),
    _r(0x0008, 0x1084, "Admitting Diagnoses Code Sequence", "X", descriptors="C"),
    _r(0x0008, 0x1110, "Referenced Study Sequence", "X/Z"),
    _r(0x0008, 0x1111, "Referenced Performed Procedure Step Sequence", "X/Z/D"),
    _r(0x0008, 0x1120, "Referenced Patient Sequence", "X"),
    _r(0x0008, 0x1140, "Referenced Image Sequence", "X/Z/U*"),
    _r(0x0008, 0x1155, "Referenced SOP Instance UID", "U"),
    _r(0x0008, 0x1195, "Transaction UID", "U"),
    _r(0x0008, 0x2111, "Derivation Description", "X", descriptors="C"),
    _r(0x0008, 0x2112, "Source Image Sequence", "X/Z/U*"),
    _r(0x0008, 0x3010, "Irradiation Event UID", "U"),
    _r(0x0008, 0x4000, "Identifying Comments", "X", descriptors="C"),
    _r(0x0010, 0x0010, "Patient's Name", "Z"),
    # Z/D from edition 2024b on; Z before. A keyed pseudonym satisfies both.
    _r(0x0010, 0x0020, "Patient ID", "Z"),
    _r(0x0010, 0x0021, "Issuer of Patient ID", "X"),
    _r(0x0010, 0x0030, "Patient's Birth Date", "Z"),
    _r(0x0010, 0x0032, "Patient's Birth Time", "X"),
    _r(0x0010, 0x0040, "Patient's Sex", "Z", patient="K"),
    _r(0x0010, 0x0050, "Patient's Insurance Plan Code Sequence", "X"),
    _r(0x0010, 0x1000, "Other Patient IDs", "X"),
    _r(0x0010, 0x1001, "Other Patient Names", "X"),
    _r(0x0010, 0x1002, "Other Patient IDs Sequence", "X"),
    _r(0x0010, 0x1005, "Patient's Birth Name", "X"),
    _r(0x0010, 0x1010, "Patient's Age", "X", patient="K"),
    _r(0x0010, 0x1020, "Patient's Size", "X", patient="K"),
    _r(0x0010, 0x1030, "Patient's Weight", "X", patient="K"),
    _r(0x0010, 0x1040, "Patient's Address", "X"),
    _r(0x0010, 0x1060, "Patient's Mother's Birth Name", "X"),
    _r(0x0010, 0x1080, "Military Rank", "X"),
    _r(0x0010, 0x1081, "Branch of Service", "X"),
    _r(0x0010, 0x1090, "Medical Record Locator", "X"),
    _r(0x0010, 0x2000, "Medical Alerts", "X", descriptors="C"),
    _r(0x0010, 0x2110, "Allergies", "X", descriptors="C"),
    _r(0x0010, 0x2150, "Country of Residence", "X"),
    _r(0x0010, 0x2152, "Region of Residence", "X"),
    _r(0x0010, 0x2154, "Patient's Telephone Numbers", "X"),
    _r(0x0010, 0x2160, "Ethnic Group", "X", patient="K"),
    _r(0x0010, 0x2180, "Occupation", "X", descriptors="C"),
    _r(0x0010, 0x21A0, "Smoking Status", "X", patient="K"),
    _r(0x0010, 0x21B0, "Additional Patient History", "X", descriptors="C"),
    _r(0x0010, 0x21C0, "Pregnancy Status", "X", patient="K"),
    _r(0x0010, 0x21D0, "Last Menstrual Date", "X", dates="C"),
    _r(0x0010, 0x21F0, "Patient's Religious Preference", "X"),
    _r(0x0010, 0x2203, "Patient's Sex Neutered", "X/Z", patient="K"),
    _r(0x0010, 0x4000, "Patient Comments", "X", descriptors="C"),
    _r(0x0012, 0x0050, "Clinical Trial Time Point ID", "Z"),
    _r(0x0012, 0x0051, "Clinical Trial Time Point Description", "X", descriptors="C"),
    _r(0x0012, 0x0060, "Clinical Trial Coordinating Center Name", "Z"),
    _r(0x0012, 0x0071, "Clinical Trial Series ID", "X"),
    _r(0x0018, 0x0010, "Contrast/Bolus Agent", "Z/D", descriptors="C"),
    _r(0x0018, 0x1000, "Device Serial Number", "X/Z/D", device="K"),
    _r(0x0018, 0x1002, "Device UID", "U", device="K"),
    _r(0x0018, 0x1004, "Plate ID", "X", device="K"),
    _r(0x0018, 0x1005, "Generator ID", "X", device="K"),
    _r(0x0018, 0x1007, "Cassette ID", "X", device="K"),
    _r(0x0018, 0x1008, "Gantry ID", "X", device="K"),
    _r(0x0018, 0x1030, "Protocol Name", "X/D", descriptors="C"),
    _r(0x0018, 0x1072, "Radiopharmaceutical Start Time", "X", dates="C"),
    _r(0x0018, 0x1200, "Date of Last Calibration", "X", dates="C"),
    _r(0x0018, 0x1201, "Time of Last Calibration", "X", dates="C"),
    _r(0x0018, 0x1400, "Acquisition Device Processing Description", "X/D", descriptors="C"),
    _r(0x0018, 0x4000, "Acquisition Comments", "X", descriptors="C"),
    _r(0x0018, 0x700A, "Detector ID", "X/D", device="K"),
    _r(0x0020, 0x000D, "Study Instance UID", "U"),
    _r(0x0020, 0x000E, "Series Instance UID", "U"),
    _r(0x0020, 0x0010, "Study ID", "Z"),
    _r(0x0020, 0x0052, "Frame of Reference UID", "U"),
    _r(0x0020, 0x0200, "Synchronization Frame of Reference UID", "U"),
    _r(0x0020, 0x4000, "Image Comments", "X", descriptors="C"),
    _r(0x0020, 0x9158, "Frame Comments", "X", descriptors="C"),
    _r(0x0020, 0x9161, "Concatenation UID", "U"),
    _r(0x0020, 0x9164, "Dimension Organization UID", "U"),
    _r(0x0028, 0x1199, "Palette Color Lookup Table UID", "U"),
    _r(0x0028, 0x1214, "Large Palette Color Lookup Table UID", "U"),
    _r(0x0032, 0x1030, "Reason for Study", "X", descriptors="C"),
    _r(0x0032, 0x1032, "Requesting Physician", "X"),
    _r(0x0032, 0x1033, "Requesting Service", "X"),
    _r(0x0032, 0x1060, "Requested Procedure Description", "X/Z", descriptors="C"),
    _r(0x0032, 0x1070, "Requested Contrast Agent", "X", descriptors="C"),
    _r(0x0032, 0x4000, "Study Comments", "X", descriptors="C"),
    _r(0x0038, 0x0010, "Admission ID", "X"),
    _r(0x0038, 0x0300, "Current Patient Location", "X"),
    _r(0x0038, 0x0400, "Patient's Institution Residence", "X"),
    _r(0x0038, 0x0500, "Patient State", "X", descriptors="C"),
    _r(0x0038, 0x4000, "Visit Comments", "X", descriptors="C"),
    _r(0x003A, 0x0020, "Multiplex Group Label", "X"),
    _r(0x0040, 0x0002, "Scheduled Procedure Step Start Date", "X", dates="C"),
    _r(0x0040, 0x0003, "Scheduled Procedure Step Start Time", "X", dates="C"),
    _r(0x0040, 0x0004, "Scheduled Procedure Step End Date", "X", dates="C"),
    _r(0x0040, 0x0005, "Scheduled Procedure Step End Time", "X", dates="C"),
    _r(0x0040, 0x0006, "Scheduled Performing Physician's Name", "X"),
    _r(0x0040, 0x0007, "Scheduled Procedure Step Description", "X", descriptors="C"),
    _r(0x0040, 0x0009, "Scheduled Procedure Step ID", "X"),
    _r(0x0040, 0x0241, "Performed Station AE Title", "X", device="K"),
    _r(0x0040, 0x0242, "Performed Station Name", "X", device="K"),
    _r(0x0040, 0x0243, "Performed Location", "X"),
    _r(0x0040, 0x0244, "Performed Procedure Step Start Date", "X", dates="C"),
    _r(0x0040, 0x0245, "Performed Procedure Step Start Time", "X", dates="C"),
    _r(0x0040, 0x0250, "Performed Procedure Step End Date", "X", dates="C"),
    _r(0x0040, 0x0251, "Performed Procedure Step End Time", "X", dates="C"),
    _r(0x0040, 0x0253, "Performed Procedure Step ID", "X"),
    _r(0x0040, 0x0254, "Performed Procedure Step Description", "X", descriptors="C"),
    _r(0x0040, 0x0275, "Request Attributes Sequence", "X"),
    _r(0x0040, 0x0280, "Comments on the Performed Procedure Step", "X", descriptors="C"),
    _r(0x0040, 0x0512, "Container Identifier", "D"),
    _r(0x0040, 0x0513, "Issuer of the Container Identifier Sequence", "Z"),
    _r(0x0040, 0x0551, "Specimen Identifier", "D"),
    _r(0x0040, 0x0554, "Specimen UID", "U"),
    # X in older editions; X/Z since the sequence became Type 2 in some IODs.
    _r(0x0040, 0x0555, "Acquisition Context Sequence", "X/Z"),
    _r(0x0040, 0x0562, "Issuer of the Specimen Identifier Sequence", "Z"),
    _r(0x0040, 0x0610, "Specimen Preparation Sequence", "Z"),
    _r(0x0040, 0x1001, "Requested Procedure ID", "X"),
    _r(0x0040, 0x1002, "Reason for the Requested Procedure", "X", descriptors="C"),
    _r(0x0040, 0x1400, "Requested Procedure Comments", "X", descriptors="C"),
    _r(0x0040, 0x2016, "Placer Order Number / Imaging Service Request", "Z"),
    _r(0x0040, 0x2017, "Filler Order Number / Imaging Service Request", "Z"),
    _r(0x0040, 0x2400, "Imaging Service Request Comments", "X", descriptors="C"),
    _r(0x0040, 0xA027, "Verifying Organization", "D"),
    _r(0x0040, 0xA030, "Verification DateTime", "D", dates="C"),
    _r(0x0040, 0xA032, "Observation DateTime", "X/D", dates="C"),
    _r(0x0040, 0xA073, "Verifying Observer Sequence", "D"),
    _r(0x0040, 0xA075, "Verifying Observer Name", "D"),
    _r(0x0040, 0xA088, "Verifying Observer Identification Code Sequence", "Z"),
    _r(0x0040, 0xA120, "DateTime", "D", dates="C"),
    _r(0x0040, 0xA121, "Date", "D", dates="C"),
    _r(0x0040, 0xA122, "Time", "D", dates="C"),
    _r(0x0040, 0xA123, "Person Name", "D"),
    _r(0x0040, 0xA124, "UID", "U"),
    # X (C with Clean Structured Content) as transcribed; dicom-anonymizer's 2023-2026c
    # lists read D. radlens refuses structured reports, so no output carries it.
    _r(0x0040, 0xA730, "Content Sequence", "X"),
    _r(0x0040, 0xB020, "Waveform Annotation Sequence", "X/D"),
    _r(0x0070, 0x0001, "Graphic Annotation Sequence", "D"),
    _r(0x0070, 0x0006, "Unformatted Text Value", "D"),
    _r(0x0070, 0x0082, "Presentation Creation Date", "X", dates="C"),
    _r(0x0070, 0x0083, "Presentation Creation Time", "X", dates="C"),
    _r(0x0070, 0x0084, "Content Creator's Name", "Z"),
    _r(0x0088, 0x0140, "Storage Media File-set UID", "U"),
    _r(0x0088, 0x0200, "Icon Image Sequence", "X"),
    _r(0x0400, 0x0561, "Original Attributes Sequence", "X"),
    _r(0x3006, 0x0002, "Structure Set Label", "D"),
    _r(0x3006, 0x0004, "Structure Set Name", "X"),
    _r(0x3006, 0x0006, "Structure Set Description", "X", descriptors="C"),
    _r(0x3006, 0x0008, "Structure Set Date", "Z", dates="C"),
    _r(0x3006, 0x0009, "Structure Set Time", "Z", dates="C"),
    _r(0x3006, 0x0024, "Referenced Frame of Reference UID", "U"),
    _r(0x3006, 0x0026, "ROI Name", "Z"),
    _r(0x3006, 0x0028, "ROI Description", "X", descriptors="C"),
    _r(0x3006, 0x0085, "ROI Observation Label", "X"),
    _r(0x3006, 0x0088, "ROI Observation Description", "X", descriptors="C"),
    _r(0x3006, 0x00A6, "ROI Interpreter", "Z"),
    _r(0x3008, 0x0105, "Source Serial Number", "X/Z", device="K"),
    _r(0x300A, 0x0002, "RT Plan Label", "D"),
    _r(0x300A, 0x0003, "RT Plan Name", "X"),
    _r(0x300A, 0x0004, "RT Plan Description", "X", descriptors="C"),
    _r(0x300A, 0x0006, "RT Plan Date", "X/D", dates="C"),
    _r(0x300A, 0x0007, "RT Plan Time", "X/D", dates="C"),
    _r(0x300A, 0x0016, "Dose Reference Description", "X", descriptors="C"),
    _r(0x300A, 0x00B2, "Treatment Machine Name", "X/Z", device="K"),
    _r(0x4000, 0x4000, "Text Comments", "X"),
    _r(0xFFFA, 0xFFFA, "Digital Signatures Sequence", "X"),
    _r(0xFFFC, 0xFFFC, "Data Set Trailing Padding", "X"),
)
# fmt: on

# Repeating groups: (50xx,xxxx) Curve Data, (60xx,3000) Overlay Data, (60xx,4000) Overlay
# Comments, all X.
_CURVE = Row(0x50000000, "Curve Data", "X")
_OVERLAY_DATA = Row(0x60003000, "Overlay Data", "X")
_OVERLAY_COMMENTS = Row(0x60004000, "Overlay Comments", "X")

BY_TAG = {row.tag: row for row in ROWS}

# Original values that identify: no word of these may survive in a cleaned descriptor.
_IDENTIFYING = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "IssuerOfPatientID",
    "AccessionNumber",
    "PatientBirthDate",
    "PatientAddress",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "NameOfPhysiciansReadingStudy",
    "RequestingPhysician",
    "PhysiciansOfRecord",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "AdmissionID",
)
_WORD = re.compile(r"[^\W_]+")
_DATE_OR_NUMBER = re.compile(
    r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}|\d{5,}"
)
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def row_for(tag: int) -> Row | None:
    """The table row of a public tag (repeating groups included), or None."""
    group, element = tag >> 16, tag & 0xFFFF
    if group & 0xFF00 == 0x5000:
        return _CURVE
    if group & 0xFF00 == 0x6000 and element == 0x3000:
        return _OVERLAY_DATA
    if group & 0xFF00 == 0x6000 and element == 0x4000:
        return _OVERLAY_COMMENTS
    return BY_TAG.get(tag)


def allowed(row: Row, options: frozenset[str]) -> set[str]:
    """The actions an output may show for ``row`` under the chosen option columns."""
    cells = {getattr(row, option) for option in options} - {""}
    if cells:
        return cells
    return set(row.basic.split("/"))


@dataclass
class Report:
    """What :func:`check` found: problems (empty when compliant) and the UID pairs seen."""

    problems: list[str] = field(default_factory=list)
    uid_pairs: list[tuple[str, str]] = field(default_factory=list)


def check(original: Dataset, output: Dataset, options: frozenset[str], offset_days: int) -> Report:
    """Check one de-identified ``output`` against its ``original`` (see module docstring)."""
    report = Report()
    context = _Context(options, timedelta(days=offset_days), _identifying_words(original), report)
    context.walk(original, output, "")
    _check_output_only(output, "", options, report)
    _check_markers(original, output, options, report)
    return report


@dataclass
class _Context:
    options: frozenset[str]
    offset: timedelta
    identifying: set[str]
    report: Report

    def problem(self, path: str, text: str) -> None:
        self.report.problems.append(f"{path}: {text}")

    def walk(self, original: Dataset, output: Dataset, path: str) -> None:
        for tag in list(original.keys()):
            if tag.is_private or tag.element == 0:
                continue
            elem = original[tag]
            here = f"{path}/{elem.keyword or tag}"
            out = output.get(tag)
            row = row_for(int(tag))
            if row is not None:
                self.check_row(row, elem, out, here)
            if out is None:
                continue
            if elem.VR == "UI" and out.VR == "UI":
                self.uids(elem.value, out.value, here)
            if elem.VR in ("DA", "DT") and "dates" in self.options and out.value:
                self.date(elem, out, here)
            if elem.VR == "SQ" and out.VR == "SQ" and len(out.value) == len(elem.value):
                for i, (a, b) in enumerate(zip(elem.value, out.value, strict=True)):
                    self.walk(a, b, f"{here}[{i}]")

    def check_row(self, row: Row, elem: object, out: object, path: str) -> None:
        ok = allowed(row, self.options)
        results = {action: self.satisfies(action, elem, out, path) for action in sorted(ok)}
        if not any(results.values()):
            self.problem(path, f"{row.name}: expected {'/'.join(sorted(ok))}")

    def satisfies(self, action: str, elem, out, path: str) -> bool:  # type: ignore[no-untyped-def]
        if action == "X":
            return out is None
        if out is None:
            return action == "C"
        original_values, values = _strings(elem.value), _strings(out.value)
        if action == "Z":
            return (not values) or (out.VR != "SQ" and values != original_values)
        if action == "D":
            if out.VR == "SQ":
                return True  # emptied, or items checked one by one by walk()
            return bool(values) and values != original_values
        if action in ("U", "U*"):
            if out.VR == "SQ":
                return True  # items checked by walk(), their UIDs as U rows
            return all(_UID.match(v) for v in values) and (
                not original_values or values != original_values
            )
        if action == "K":
            return _same(elem.value, out.value)
        if action == "C":
            return self.cleaned(elem, out, path)
        return False

    def cleaned(self, elem, out, path: str) -> bool:  # type: ignore[no-untyped-def]
        values = _strings(out.value)
        if not values or out.VR == "SQ":
            return True
        if out.VR in ("DA", "DT"):
            return _shifted(elem.VR, _strings(elem.value), values, self.offset)
        if out.VR == "TM":
            return values == _strings(elem.value)
        before = {w.lower() for v in _strings(elem.value) for w in _WORD.findall(v)}
        for value in values:
            words = {w.lower() for w in _WORD.findall(value)}
            if not words <= before:
                return False
            if words & self.identifying or _DATE_OR_NUMBER.search(value):
                return False
        return True

    def uids(self, before: object, after: object, path: str) -> None:
        for a, b in zip(_strings(before), _strings(after), strict=False):
            self.report.uid_pairs.append((a, b))
            if not _UID.match(b) or len(b) > 64:
                self.problem(path, "not a valid UID")

    def date(self, elem, out, path: str) -> None:  # type: ignore[no-untyped-def]
        if not _shifted(elem.VR, _strings(elem.value), _strings(out.value), self.offset):
            self.problem(path, f"date not moved by exactly {self.offset.days} days")


def _check_output_only(ds: Dataset, path: str, options: frozenset[str], report: Report) -> None:
    """What the output may not hold wherever it came from: private elements, group
    lengths, and any attribute whose only allowed action is X (added ones included)."""
    for tag in list(ds.keys()):
        elem = ds[tag]
        here = f"{path}/{elem.keyword or tag}"
        if tag.is_private:
            report.problems.append(f"{here}: private element left")
        if tag.element == 0:
            report.problems.append(f"{here}: group length left")
        row = row_for(int(tag))
        if row is not None and allowed(row, options) == {"X"}:
            report.problems.append(f"{here}: {row.name} must be removed")
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                _check_output_only(item, f"{here}[{i}]", options, report)


def _check_markers(
    original: Dataset, output: Dataset, options: frozenset[str], report: Report
) -> None:
    def problem(text: str) -> None:
        report.problems.append(text)

    if output.get("PatientIdentityRemoved") != "YES":
        problem("Patient Identity Removed (0012,0062) is not YES")
    if not output.get("DeidentificationMethod"):
        problem("no De-identification Method (0012,0063)")
    codes = {
        (str(item.get("CodeValue", "")), str(item.get("CodingSchemeDesignator", "")))
        for item in output.get("DeidentificationMethodCodeSequence", [])
    }
    expected = {(BASIC_CODE, "DCM")} | {(OPTION_CODES[o], "DCM") for o in options}
    if codes != expected:
        problem(f"De-identification Method Code Sequence {sorted(codes)} != {sorted(expected)}")
    if "dates" in options and output.get("LongitudinalTemporalInformationModified") != "MODIFIED":
        problem("Longitudinal Temporal Information Modified (0028,0303) is not MODIFIED")
    meta = output.file_meta
    if meta.get("MediaStorageSOPInstanceUID") != output.get("SOPInstanceUID"):
        problem("file meta Media Storage SOP Instance UID differs from the SOP Instance UID")
    if meta.get("MediaStorageSOPClassUID") != output.get("SOPClassUID"):
        problem("file meta Media Storage SOP Class UID differs from the SOP Class UID")
    before = getattr(original, "file_meta", None)
    # A source whose meta disagrees with its data set: the data set's UID is the one mapped.
    if before is not None and before.get("MediaStorageSOPInstanceUID") == original.get(
        "SOPInstanceUID"
    ):
        report.uid_pairs.append(
            (str(before.MediaStorageSOPInstanceUID), str(meta.MediaStorageSOPInstanceUID))
        )
    needles = {
        " ".join(v.replace("^", " ").split()).lower()
        for keyword in ("PatientID", "PatientName")
        for v in _strings(original.get(keyword))
    }
    _leaks(output, {n for n in needles if len(n) >= 4}, "", report)
    for keyword in ("PatientID", "PatientName"):
        if str(output.get(keyword, "")) and str(output.get(keyword)) == str(original.get(keyword)):
            problem(f"{keyword} unchanged")


def _identifying_words(ds: Dataset) -> set[str]:
    words: set[str] = set()
    for keyword in _IDENTIFYING:
        for value in _strings(ds.get(keyword)):
            words.update(w.lower() for w in _WORD.findall(value) if len(w) >= 3)
    return words


def _shifted(vr: str, before: list[str], after: list[str], offset: timedelta) -> bool:
    """True when every parseable date of ``before`` appears moved by ``offset`` in ``after``."""
    expected = []
    for value in before:
        moved = _move(vr, value, offset)
        if moved is not None:
            expected.append(moved)
    return after == expected


def _move(vr: str, value: str, offset: timedelta) -> str | None:
    text = value.strip()
    if vr == "DA":
        text = text.replace(".", "")
        if len(text) != 8 or not text.isdigit():
            return None
        try:
            return (date(int(text[:4]), int(text[4:6]), int(text[6:])) + offset).strftime("%Y%m%d")
        except ValueError:
            return None
    digits = len(text) - len(text.lstrip("0123456789"))
    width = 8 if digits >= 8 else 6 if digits >= 6 else 4 if digits >= 4 else 0
    if width == 0:
        return None
    full = text[:8] if width == 8 else text[:width] + "0101"[: 8 - width]
    try:
        moved = date(int(full[:4]), int(full[4:6]), int(full[6:8])) + offset
    except ValueError:
        return None
    return moved.strftime("%Y%m%d")[:width] + text[width:]


def _strings(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, Sequence):
        return ["<item>"] * len(value)
    if isinstance(value, MultiValue | list | tuple):
        return [str(v) for v in value]
    if isinstance(value, bytes):
        return [value.hex()]
    return [str(value)]


def _same(a: object, b: object) -> bool:
    """Equal values; for sequences the same number of items (walk() checks the items)."""
    if isinstance(a, Sequence) or isinstance(b, Sequence):
        return isinstance(a, Sequence) and isinstance(b, Sequence) and len(a) == len(b)
    return _strings(a) == _strings(b)


def _leaks(ds: Dataset, needles: set[str], path: str, report: Report) -> None:
    """Report any text element of ``ds`` (at any depth) that holds the patient's whole name
    or whole ID (parts of them are common words: "Test", "Breast")."""
    for tag in list(ds.keys()):
        elem = ds[tag]
        here = f"{path}/{elem.keyword or tag}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                _leaks(item, needles, f"{here}[{i}]", report)
        elif elem.VR in _TEXT_VRS:
            texts = [" ".join(v.replace("^", " ").split()).lower() for v in _strings(elem.value)]
            if any(needle in text for needle in needles for text in texts):
                report.problems.append(f"{here}: holds the original patient name or ID")
