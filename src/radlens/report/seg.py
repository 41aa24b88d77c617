"""``to_dicom_seg`` / ``read_dicom_seg``: a finding's mask as a DICOM Segmentation.

A Segmentation (PS3.3 A.51) made by ``highdicom.seg.Segmentation`` in the source study: a
new series, the source's Frame of Reference (when it has one), one segment whose
Segmented Property Type is the finding's concept (category "Morphologically abnormal
structure", CID 7150), Segment Algorithm Type AUTOMATIC with an Algorithm Identification
Sequence (model name and version, family "Artificial Intelligence"). A boolean mask makes
a BINARY segmentation, a float mask in [0, 1] a FRACTIONAL one of type PROBABILITY.

The fetal head model (``fetal_head_hc18``) outputs such masks; the functions take any mask
on the source grid: ``(rows, columns)`` for one single-frame image, ``(n, rows, columns)``
for ``n`` single-frame images of one series or the ``n`` frames of one multi-frame image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from highdicom import AlgorithmIdentificationSequence
from highdicom.seg import (
    SegmentAlgorithmTypeValues,
    SegmentationTypeValues,
    SegmentDescription,
)
from highdicom.seg import Segmentation as HdSegmentation
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radlens.domain.coding import (
    ARTIFICIAL_INTELLIGENCE,
    MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
    Concept,
)
from radlens.errors import InputError
from radlens.report.equipment import (
    AI_NOTICE,
    DEVICE_SERIAL_NUMBER,
    LOCAL_SCHEME,
    MANUFACTURER,
    MODEL_NAME,
    SERIES_SUFFIX,
    SOFTWARE_VERSIONS,
    clean_source,
    coded,
    complete_derived_image,
    concept_of,
)
from radlens.warning_scopes import ignoring

SERIES_DESCRIPTION = f"radlens segmentation - {SERIES_SUFFIX}"
SERIES_NUMBER = 9903
FRACTIONAL_LEVELS = 255
"""Stored values of a FRACTIONAL segment: probability = value / 255."""


@dataclass(frozen=True, eq=False)
class SegRecord:
    """The one segment of a radlens SEG, as read back, on the grid of its sources."""

    concept: Concept
    label: str
    model_name: str
    model_version: str
    fractional: bool
    mask: np.ndarray = field(repr=False)


def to_dicom_seg(
    sources: Sequence[Dataset],
    mask: np.ndarray,
    concept: Concept,
    model_name: str,
    model_version: str,
    label: str = "",
    series_uid: str = "",
    instance_number: int = 1,
) -> HdSegmentation:
    """A Segmentation of ``mask`` (bool: BINARY; float in [0, 1]: FRACTIONAL).

    Raises:
        InputError: the mask does not fit the sources, or highdicom cannot place it
            (e.g. several frames of a source without a Frame of Reference).

    Example:
        >>> ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # doctest: +SKIP
        >>> seg = to_dicom_seg([ct], ct.pixel_array > 1000, concept, "m", "1")  # doctest: +SKIP
        >>> seg.SegmentationType  # doctest: +SKIP
        'BINARY'
    """
    if not sources:
        raise InputError(None, "no source images for the segmentation")
    pixels, kind = _pixels(mask)
    planes = _check_grid(mask, sources)
    description = SegmentDescription(
        segment_number=1,
        segment_label=(label or concept.meaning)[:64],
        segmented_property_category=coded(MORPHOLOGICALLY_ABNORMAL_STRUCTURE),
        segmented_property_type=coded(concept),
        algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=AlgorithmIdentificationSequence(
            name=model_name,
            family=coded(ARTIFICIAL_INTELLIGENCE),
            version=model_version,
            source=MANUFACTURER,
        ),
        tracking_uid=generate_uid(),
        tracking_id=f"{model_name} {concept.meaning}"[:64],
    )
    clean = [clean_source(s) for s in sources]
    try:
        with ignoring():  # highdicom notes on source attributes it copies
            seg = HdSegmentation(
                source_images=clean,
                pixel_array=pixels,
                segmentation_type=kind,
                segment_descriptions=[description],
                series_instance_uid=series_uid or generate_uid(),
                series_number=SERIES_NUMBER,
                sop_instance_uid=generate_uid(),
                instance_number=instance_number,
                manufacturer=MANUFACTURER,
                manufacturer_model_name=MODEL_NAME,
                software_versions=SOFTWARE_VERSIONS,
                device_serial_number=DEVICE_SERIAL_NUMBER,
                max_fractional_value=FRACTIONAL_LEVELS,
                content_label="FINDING",
                content_description=AI_NOTICE,
                series_description=SERIES_DESCRIPTION,
                transfer_syntax_uid=ExplicitVRLittleEndian,
                omit_empty_frames=False,
                coding_schemes=[LOCAL_SCHEME],
            )
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(None, f"cannot make a DICOM SEG of this mask: {exc}") from exc
    if int(seg.NumberOfFrames) != planes:  # a source whose SOP class says single-frame
        raise InputError(None, f"the SEG kept {seg.NumberOfFrames} of the mask's {planes} frames")
    complete_derived_image(seg, clean[0])
    return seg


def read_dicom_seg(dataset: Dataset, sources: Sequence[Dataset]) -> SegRecord:
    """The segment of a radlens SEG, its mask on the grid of ``sources`` (as written).

    Raises:
        InputError: not a Segmentation, or not one made on these sources.
    """
    try:
        seg = HdSegmentation.from_dataset(dataset)
        description = seg.get_segment_description(1)
        fractional = seg.segmentation_type == SegmentationTypeValues.FRACTIONAL
        with ignoring():
            if len(sources) == 1 and int(sources[0].get("NumberOfFrames", 1) or 1) > 1:
                n = int(sources[0].NumberOfFrames)
                pixels = seg.get_pixels_by_source_frame(
                    str(sources[0].SOPInstanceUID),
                    list(range(1, n + 1)),
                    segment_numbers=[1],
                    rescale_fractional=fractional,
                )
            else:
                pixels = seg.get_pixels_by_source_instance(
                    [str(s.SOPInstanceUID) for s in sources],
                    segment_numbers=[1],
                    rescale_fractional=fractional,
                )
    except (AttributeError, KeyError, ValueError, IndexError) as exc:
        raise InputError(None, f"not a radlens segmentation of these sources: {exc}") from exc
    mask = pixels[..., 0]
    mask = mask.astype(np.float32) if fractional else mask.astype(bool)
    algorithm = description.algorithm_identification
    return SegRecord(
        concept=concept_of(description.segmented_property_type),
        label=str(description.segment_label),
        model_name=str(algorithm[0].AlgorithmName) if algorithm else "",
        model_version=str(algorithm[0].AlgorithmVersion) if algorithm else "",
        fractional=fractional,
        mask=mask[0] if mask.shape[0] == 1 else mask,
    )


def _check_grid(mask: np.ndarray, sources: Sequence[Dataset]) -> int:
    """The number of mask planes, which must be one per source image or frame."""
    frames = int(sources[0].get("NumberOfFrames", 1) or 1) if len(sources) == 1 else len(sources)
    planes = 1 if mask.ndim == 2 else int(mask.shape[0])
    grid = (int(sources[0].get("Rows", 0)), int(sources[0].get("Columns", 0)))
    if planes != frames or tuple(mask.shape[-2:]) != grid:
        raise InputError(
            None,
            f"mask of shape {mask.shape} does not fit the sources' grid of {frames} x "
            f"{grid[0]} x {grid[1]}",
        )
    return planes


def _pixels(mask: np.ndarray) -> tuple[np.ndarray, SegmentationTypeValues]:
    if mask.ndim not in (2, 3):
        raise InputError(
            None, f"mask must be (rows, columns) or (n, rows, columns), got {mask.shape}"
        )
    if mask.dtype == np.bool_:
        return mask.astype(np.uint8), SegmentationTypeValues.BINARY
    if mask.dtype.kind != "f":
        raise InputError(None, f"mask must be bool or float in [0, 1], got {mask.dtype}")
    values = np.asarray(mask, np.float32)
    if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
        raise InputError(None, "a fractional mask must hold values in [0, 1]")
    return values, SegmentationTypeValues.FRACTIONAL
