"""``to_parametric_map`` / ``read_parametric_map``: a finding's heatmap as a Parametric Map.

A Parametric Map (PS3.3 A.75) made by ``highdicom.pm.ParametricMap`` in the source study,
pixel for pixel on the source image (or on the one frame of a multi-frame source the
finding was made on): a new series, the source's Frame of Reference, one frame. The
heatmap (class activation in [0, 1], radlens keeps it at most 512 px on a side) is
resampled bilinearly onto the source grid and stored as 16-bit unsigned integers (the
IOD allows 16-bit integers or floats), uncompressed (Explicit VR Little Endian: every
viewer reads it, and python-gdcm's RLE encoder aborts the process on some image widths).
The Real World Value Mapping says what they mean: stored 0..65535 -> 0..1 (slope
1/65535), unit UCUM ``1``, quantity "Class activation" (DCM 130402, CID 7180), LUT label
``CAM``. So the map is within half a step (1/131070) of the heatmap on the source grid.

The IOD's Frame of Reference module is mandatory, so a source in no frame of reference
(a CR, DX or ultrasound image) gets no Parametric Map: its heatmap stays in the Secondary
Capture overlay (``report/sc.py``), which is also the extra for viewers that show no
Parametric Maps.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from highdicom import (
    PixelMeasuresSequence,
    PlaneOrientationSequence,
    PlanePositionSequence,
    VOILUTTransformation,
)
from highdicom.pm import ParametricMap, RealWorldValueMapping
from PIL import Image as PILImage
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radlens.domain.coding import CLASS_ACTIVATION, NO_UNITS, Concept
from radlens.domain.findings import Finding
from radlens.errors import InputError
from radlens.report.equipment import (
    AI_NOTICE,
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    MODEL_NAME,
    SERIES_SUFFIX,
    SOFTWARE_VERSIONS,
    clean_source,
    coded,
    complete_derived_image,
)
from radlens.report.sr import is_2d_reference

SERIES_DESCRIPTION = f"radlens heatmap - {SERIES_SUFFIX}"
SERIES_NUMBER = 9904
LEVELS = 65535
LUT_LABEL = "CAM"


@dataclass(frozen=True, eq=False)
class HeatmapRecord:
    """A radlens Parametric Map, as read back: the activation on the source grid."""

    quantity: Concept
    unit: Concept
    sop_instance_uid: str
    content_label: str
    heatmap: np.ndarray = field(repr=False)


def to_parametric_map(
    source: Dataset, finding: Finding, series_uid: str = "", instance_number: int = 1
) -> ParametricMap:
    """A Parametric Map of ``finding.heatmap`` on ``source`` (the image it was made on).

    Raises:
        InputError: the finding has no heatmap, names another image, is not about one 2D
            frame of ``source`` (a 3D model's slice), or ``source`` has no Frame of
            Reference (a Parametric Map needs one) or no plane geometry for its frame.

    Example:
        >>> ct = pydicom.dcmread("ct.dcm", stop_before_pixels=True)  # doctest: +SKIP
        >>> pm = to_parametric_map(ct, finding)  # doctest: +SKIP
        >>> read_parametric_map(pm).heatmap.shape == (pm.Rows, pm.Columns)  # doctest: +SKIP
        True
    """
    if finding.heatmap is None:
        raise InputError(None, f"finding {finding.code!r} has no heatmap")
    if finding.sop_instance_uid != str(source.get("SOPInstanceUID", "")):
        raise InputError(None, f"finding {finding.code!r} is about another image")
    if not is_2d_reference(source, finding.frame):
        raise InputError(None, f"heatmap of {finding.code!r} is not on a 2D frame of its image")
    if "FrameOfReferenceUID" not in source:
        raise InputError(
            None,
            f"{source.get('Modality', 'the')} image has no Frame of Reference, which a "
            "Parametric Map needs (PS3.3 A.75); its heatmap is in the overlay",
        )
    rows, columns = int(source.Rows), int(source.Columns)
    stored = np.round(resample_heatmap(finding.heatmap, rows, columns) * LEVELS).astype(np.uint16)
    mapping = RealWorldValueMapping(
        lut_label=LUT_LABEL,
        lut_explanation=f"{finding.label} class activation, {finding.model_name}"[:64],
        unit=coded(NO_UNITS),
        value_range=(0, LEVELS),
        slope=1.0 / LEVELS,
        intercept=0.0,
        quantity_definition=coded(CLASS_ACTIVATION),
    )
    clean = clean_source(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # highdicom notes on source attributes it copies
            pm = ParametricMap(
                source_images=[clean],
                pixel_array=stored,
                series_instance_uid=series_uid or generate_uid(),
                series_number=SERIES_NUMBER,
                sop_instance_uid=generate_uid(),
                instance_number=instance_number,
                manufacturer=MANUFACTURER,
                manufacturer_model_name=MODEL_NAME,
                software_versions=SOFTWARE_VERSIONS,
                device_serial_number=DEVICE_SERIAL_NUMBER,
                contains_recognizable_visual_features=False,
                real_world_value_mappings=[mapping],
                voi_lut_transformations=[
                    VOILUTTransformation(window_center=LEVELS / 2, window_width=LEVELS + 1)
                ],
                transfer_syntax_uid=ExplicitVRLittleEndian,
                content_label=LUT_LABEL,
                content_description=AI_NOTICE,
                series_description=SERIES_DESCRIPTION,
                **_frame_geometry(source, finding.frame),
            )
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(None, f"cannot make a Parametric Map of this heatmap: {exc}") from exc
    complete_derived_image(pm, clean, laterality=True)
    return pm


def _frame_geometry(source: Dataset, frame: int) -> dict[str, Any]:
    """Plane position, orientation and pixel measures of one frame of a multi-frame image.

    A single-frame source needs none: highdicom takes them from it. A multi-frame one
    would otherwise give its every frame, and the map has one.
    """
    if "NumberOfFrames" not in source:
        return {}
    try:
        per_frame = source.PerFrameFunctionalGroupsSequence[frame]
        shared = source.SharedFunctionalGroupsSequence[0]
    except (AttributeError, IndexError) as exc:
        raise InputError(None, "multi-frame image without functional groups") from exc

    def group(keyword: str) -> Any:
        holder = per_frame if keyword in per_frame else shared
        if keyword not in holder:
            raise InputError(None, f"multi-frame image without {keyword} for frame {frame + 1}")
        return getattr(holder, keyword)

    return {
        "plane_positions": [PlanePositionSequence.from_sequence(group("PlanePositionSequence"))],
        "plane_orientation": PlaneOrientationSequence.from_sequence(
            group("PlaneOrientationSequence")
        ),
        "pixel_measures": PixelMeasuresSequence.from_sequence(group("PixelMeasuresSequence")),
    }


def read_parametric_map(dataset: Dataset) -> HeatmapRecord:
    """The activation of a radlens Parametric Map as floats in [0, 1] on the source grid.

    Raises:
        InputError: not a Parametric Map with one frame and a linear mapping.
    """
    try:
        pm = ParametricMap.from_dataset(dataset)
        mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
        slope = float(mapping.RealWorldValueSlope)
        intercept = float(mapping.RealWorldValueIntercept)
        quantity = mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0]
        unit = mapping.MeasurementUnitsCodeSequence[0]
        source = pm.SharedFunctionalGroupsSequence[0].get("DerivationImageSequence") or (
            pm.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence
        )
        sop_uid = str(source[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        stored = pm.pixel_array
    except (AttributeError, KeyError, IndexError, ValueError) as exc:
        raise InputError(None, f"not a radlens Parametric Map: {exc}") from exc
    values = stored.astype(np.float32) * slope + intercept
    return HeatmapRecord(
        quantity=Concept(
            str(quantity.CodeValue), str(quantity.CodingSchemeDesignator), str(quantity.CodeMeaning)
        ),
        unit=Concept(str(unit.CodeValue), str(unit.CodingSchemeDesignator), str(unit.CodeMeaning)),
        sop_instance_uid=sop_uid,
        content_label=str(pm.get("ContentLabel", "")),
        heatmap=values[0] if values.ndim == 3 else values,
    )


def resample_heatmap(heatmap: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``heatmap`` on a ``rows`` x ``columns`` grid (bilinear), clipped to [0, 1]."""
    values = np.asarray(heatmap, np.float32)
    if values.ndim != 2:
        raise InputError(None, f"a heatmap is 2D, got shape {values.shape}")
    if values.shape != (rows, columns):
        values = np.asarray(
            PILImage.fromarray(values, mode="F").resize(
                (columns, rows), PILImage.Resampling.BILINEAR
            ),
            np.float32,
        )
    return np.clip(values, 0.0, 1.0)
