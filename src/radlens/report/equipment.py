"""What every DICOM object radlens writes says about its maker, shared by ``report/``.

General Equipment (PS3.3 C.7.5.1) and Enhanced General Equipment (C.7.5.2) name
``radlens`` as manufacturer and model and its version as Software Versions; the
private coding scheme ``99RADLENS`` is identified in the Coding Scheme Identification
Sequence (C.12.1.1.4) of any object that uses it; the file bytes come from one place.
"""

from __future__ import annotations

import io

from highdicom import UID
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from radlens import __version__
from radlens.domain.coding import LOCAL, Concept

MANUFACTURER = "radlens"
MODEL_NAME = "radlens"
SOFTWARE_VERSIONS = __version__
DEVICE_SERIAL_NUMBER = "radlens-software"
"""Enhanced General Equipment needs a serial number (type 1); software has none."""

AI_NOTICE = "AI generated - not for primary diagnosis without review"
SERIES_SUFFIX = "AI draft, requires physician review"

DEVICE_UID = UID(generate_uid(entropy_srcs=[MANUFACTURER, __version__]))
"""Device Observer UID (TID 1004): derived from the version, so the same for every object
one radlens version writes."""

LOCAL_SCHEME = CodingSchemeIdentificationItem(
    designator=LOCAL,
    name="radlens local codes",
    responsible_organization="radlens",
)


def coded(concept: Concept) -> CodedConcept:
    """A domain ``Concept`` as highdicom's ``CodedConcept``."""
    return CodedConcept(concept.value, concept.scheme, concept.meaning)


def concept_of(code: CodedConcept) -> Concept:
    """highdicom's ``CodedConcept`` back as a domain ``Concept``."""
    return Concept(str(code.value), str(code.scheme_designator), str(code.meaning))


def clean_source(source: Dataset) -> Dataset:
    """A source header that highdicom can derive a valid image from.

    A Pixel Spacing with a zero or negative value (RG1 of pydicom-data has ``0\\0``) is
    invalid (PS3.3 10.7.1.3); it is left out of a copy rather than copied into the new
    object. The caller's data set is never changed.
    """
    spacing = source.get("PixelSpacing")
    if spacing is None or (len(spacing) == 2 and all(float(v) > 0 for v in spacing)):
        return source
    copy = Dataset(dict(source.items()))  # a new element dict: ``del`` leaves the source
    meta = getattr(source, "file_meta", None)
    if meta is not None:
        copy.file_meta = meta
    del copy.PixelSpacing
    return copy


def complete_derived_image(derived: Dataset, source: Dataset, laterality: bool = False) -> None:
    """Type 2C attributes highdicom 0.28 leaves out of SEG and Parametric Map.

    - Patient Orientation (General Image, PS3.3 C.7.6.1.1.1): an image in no frame of
      reference needs it; a pixel-aligned derived image has the source's.
    - Laterality (General Series, C.7.3.1), with ``laterality``: needed for a paired body
      part unless Image or Frame Laterality is sent, which highdicom's Parametric Map does
      not; the source's, else empty (unknown).
    """
    if "FrameOfReferenceUID" not in derived and "PatientOrientation" not in derived:
        derived.PatientOrientation = list(source.get("PatientOrientation", []) or [])
    if laterality and "Laterality" not in derived:
        derived.Laterality = str(source.get("Laterality", "") or "")


def to_bytes(dataset: Dataset) -> bytes:
    """``dataset`` as PS3.10 file bytes (preamble, file meta, data set)."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
