"""Coded concepts shared by every structured output (DICOM SR / SEG, FHIR).

A finding's ``code`` (a card's ``finding_code``, e.g. ``pneumonia``) maps to one concept;
DICOM Body Part Examined values map to anatomy. SNOMED CT where the concept is certain; the
local scheme ``99RADLENS`` (DICOM's convention for private schemes: "99" + a name) for
anything else, so nothing is ever coded with a guessed identifier.

Example:
    >>> finding_concept("pneumonia", "Pneumonia").value
    '233604007'
    >>> finding_concept("my_finding", "My finding").scheme
    '99RADLENS'
"""

from __future__ import annotations

from dataclasses import dataclass

SNOMED = "SCT"
DCM = "DCM"
LOINC = "LN"
UCUM = "UCUM"
LOCAL = "99RADLENS"

SCHEME_URIS = {
    SNOMED: "http://snomed.info/sct",
    DCM: "http://dicom.nema.org/resources/ontology/DCM",
    LOINC: "http://loinc.org",
    UCUM: "http://unitsofmeasure.org",
    LOCAL: "urn:radlens:finding",
}
"""FHIR ``system`` URIs of the schemes (SNOMED and DICOM as FHIR R4 names them)."""


@dataclass(frozen=True)
class Concept:
    """A coded concept: value, coding scheme designator (DICOM) and meaning."""

    value: str
    scheme: str
    meaning: str

    @property
    def system(self) -> str:
        """The FHIR ``Coding.system`` of the scheme."""
        return SCHEME_URIS[self.scheme]


FINDINGS: dict[str, Concept] = {
    "pneumonia": Concept("233604007", SNOMED, "Pneumonia"),
    "diabetic_retinopathy": Concept("4855003", SNOMED, "Diabetic retinopathy"),
    "breast_malignancy": Concept("254837009", SNOMED, "Malignant neoplasm of breast"),
    "intracranial_aneurysm": Concept("128609009", SNOMED, "Intracranial aneurysm"),
}
"""Finding codes of the shipped models with a SNOMED CT concept."""

BODY_PARTS: dict[str, Concept] = {
    "CHEST": Concept("51185008", SNOMED, "Thorax"),
    "BREAST": Concept("76752008", SNOMED, "Breast"),
    "HEAD": Concept("69536005", SNOMED, "Head"),
    "BRAIN": Concept("12738006", SNOMED, "Brain"),
    "ADRENAL": Concept("23451007", SNOMED, "Adrenal gland"),
    "EYE": Concept("81745001", SNOMED, "Eye"),
    "RETINA": Concept("5665001", SNOMED, "Retina"),
    "KNEE": Concept("72696002", SNOMED, "Knee"),
}
"""DICOM Body Part Examined -> anatomy (after CID 4031 where it defines the term)."""


# --- DICOM result objects (report/sr.py, seg.py, pm.py; docs/dicom-results.md says why) ---

PRESENT = Concept("52101004", SNOMED, "Present")
ABSENT = Concept("2667000", SNOMED, "Absent")
"""Presence of a finding at the card's operating point (SNOMED CT qualifier values)."""

YES = Concept("373066001", SNOMED, "Yes")
NO = Concept("373067005", SNOMED, "No")
"""CID 230 Yes-No."""

CERTAINTY_OF_FINDING = Concept("111012", DCM, "Certainty of Finding")
"""The calibrated probability: "the likelihood that the finding detected is in fact the
type of finding identified" (PS3.16 Annex D, CID 6048), recorded here as a fraction."""

SEVERITY = Concept("246112005", SNOMED, "Severity")
"""An ordinal model's grade (SNOMED CT ``Severity (attribute)``)."""

OOD_FLAG = Concept("ood_flag", LOCAL, "Input unlike training data - low trust")
OOD_SCORE = Concept("ood_score", LOCAL, "Out-of-distribution score")
OOD_REASON = Concept("ood_reason", LOCAL, "Unlike training data in")
OOD_REASON_LEANING = Concept("ood_reason_leaning", LOCAL, "Somewhat unlike training data in")
"""No standard concept says "input unlike the model's training data": local codes."""

CLASS_ACTIVATION = Concept("130402", DCM, "Class activation")
"""Quantity of a heatmap Parametric Map (CID 7180 / CID 218)."""

ARTIFICIAL_INTELLIGENCE = Concept("123110", DCM, "Artificial Intelligence")
"""Algorithm family of every radlens model (CID 7162)."""

MORPHOLOGICALLY_ABNORMAL_STRUCTURE = Concept(
    "49755003", SNOMED, "Morphologically abnormal structure"
)
"""Segmented property category of a finding's mask (CID 7150)."""

NO_UNITS = Concept("1", UCUM, "no units")
GRADE_UNITS = Concept("{grade}", UCUM, "grade")
"""UCUM units: ``1`` for probabilities, scores and activations; ``{grade}`` (an annotation
of the dimensionless unit) for ordinal grades."""

MEASUREMENTS: dict[str, Concept] = {
    # LOINC as used for fetal biometry in DICOM TID 5000 (OB-GYN ultrasound) and the HL7
    # International Birth and Child Model ("Fetal Head Circumference US").
    "head_circumference": Concept("11984-2", LOINC, "Fetal Head Circumference US"),
    "gestational_age": Concept("18185-9", LOINC, "Gestational age"),
}
"""A finding measurement's ``code`` -> its concept (others get the local scheme)."""

UNITS: dict[str, Concept] = {
    "mm": Concept("mm", UCUM, "millimeter"),
    "wk": Concept("wk", UCUM, "week"),
}


def measurement_concept(code: str, label: str) -> Concept:
    """The concept of a measurement code (``head_circumference`` -> LOINC 11984-2)."""
    return MEASUREMENTS.get(code) or Concept(code, LOCAL, label)


def unit_concept(unit: str) -> Concept:
    """The UCUM concept of a unit code."""
    return UNITS.get(unit) or Concept(unit, UCUM, unit)


IMAGING_PROCEDURE = Concept("363679005", SNOMED, "Imaging procedure")
PROCEDURES: dict[str, Concept] = {
    "CT": Concept("25045-6", LOINC, "CT unspecified body region"),
    "MR": Concept("25056-3", LOINC, "MRI unspecified body region"),
    "CR": Concept("43468-8", LOINC, "XR unspecified body region"),
    "DX": Concept("43468-8", LOINC, "XR unspecified body region"),
    "NM": Concept("49118-3", LOINC, "NM unspecified body region"),
    "PT": Concept("44136-0", LOINC, "PET unspecified body region"),
}
"""DICOM Modality -> procedure reported (CID 100); other modalities get
``IMAGING_PROCEDURE``."""

DIAGNOSTIC_IMAGING_STUDY = Concept("18748-4", LOINC, "Diagnostic imaging study")
"""The kind of report radlens drafts (FHIR ``DiagnosticReport.code``, report/fhir.py)."""


def procedure_concept(modality: str) -> Concept:
    """The procedure reported for a modality (CID 100), ``Imaging procedure`` if unmapped.

    Example:
        >>> procedure_concept("CR").meaning
        'XR unspecified body region'
    """
    return PROCEDURES.get(modality.strip().upper(), IMAGING_PROCEDURE)


def finding_concept(code: str, label: str) -> Concept:
    """The concept of a finding code; a local-scheme concept when none is known."""
    return FINDINGS.get(code) or Concept(code, LOCAL, label)


def body_site(body_part: str) -> Concept | None:
    """The anatomy of a DICOM Body Part Examined value, or None when not mapped."""
    return BODY_PARTS.get(body_part.strip().upper())
