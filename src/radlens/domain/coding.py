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
LOCAL = "99RADLENS"

SCHEME_URIS = {
    SNOMED: "http://snomed.info/sct",
    DCM: "http://dicom.nema.org/resources/ontology/DCM",
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


def finding_concept(code: str, label: str) -> Concept:
    """The concept of a finding code; a local-scheme concept when none is known."""
    return FINDINGS.get(code) or Concept(code, LOCAL, label)


def body_site(body_part: str) -> Concept | None:
    """The anatomy of a DICOM Body Part Examined value, or None when not mapped."""
    return BODY_PARTS.get(body_part.strip().upper())
