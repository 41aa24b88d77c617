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

The IOD's Frame of Reference module and its Plane Position (Patient), Plane Orientation
(Patient) and Pixel Measures functional groups are mandatory (PS3.3 A.75, Table A.75-2).
A single-frame source in no frame of reference (a CR, DX or ultrasound image) gets a map
in a frame of reference of its own (:func:`frame_of_reference`): a new Frame of Reference
UID, the map's first pixel at its origin, Image Orientation (Patient) read from the
source's Patient Orientation (PS3.3 C.7.6.1.1.1), which must name two orthogonal patient
axes (``L\\F`` for a PA chest); Pixel Spacing only when the source states a valid one, no
Slice Thickness (a projection has none). The map stays pixel for pixel on its source
(Derivation Image: Source Image Sequence, Spatial Locations Preserved ``YES``). A source
with neither a frame of reference nor such a Patient Orientation (most ultrasound) gets
no map: its orientation in the patient would have to be invented, and a viewer would
draw orientation markers from it. Its heatmap stays in the Secondary Capture overlay
(``report/sc.py``), which is also the extra for viewers that show no Parametric Maps.
"""

from __future__ import annotations

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
from radlens.warning_scopes import ignoring

SERIES_DESCRIPTION = f"radlens heatmap - {SERIES_SUFFIX}"
SERIES_NUMBER = 9904
LEVELS = 65535
LUT_LABEL = "CAM"
PROJECTION_FRAME = "radlens frame of a projection image"
"""Entropy of :func:`frame_of_reference` for a source without a frame of reference."""

# Patient-based coordinate system (PS3.3 C.7.6.2.1.1): +x left, +y posterior, +z head.
_PATIENT_AXES: dict[str, tuple[float, float, float]] = {
    "L": (1.0, 0.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "A": (0.0, -1.0, 0.0),
    "H": (0.0, 0.0, 1.0),
    "F": (0.0, 0.0, -1.0),
}


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
            frame of ``source`` (a 3D model's slice), or ``source`` has no plane geometry
            for its frame: no Frame of Reference and no Patient Orientation naming two
            orthogonal axes, or several frames without a Frame of Reference.

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
    placed = source if "FrameOfReferenceUID" in source else _in_own_frame(source)
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
    clean = clean_source(placed)
    try:
        with ignoring():  # highdicom notes on source attributes it copies
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
    if placed is not source:
        _projection_measures(pm, source)
    complete_derived_image(pm, clean, laterality=True)
    return pm


def frame_of_reference(source: Dataset) -> str:
    """The Frame of Reference UID of a Parametric Map of ``source``.

    The source's own, else the frame radlens defines for that one image: a UID derived
    from its SOP Instance UID, so every map of the image is in the same frame (and one
    series, PS3.3 C.7.4.1.1.1) and no map claims a spatial relation to another image.

    Example:
        >>> from pydicom import Dataset
        >>> cr = Dataset()
        >>> cr.SOPInstanceUID = "1.2.3.4"
        >>> frame_of_reference(cr) == frame_of_reference(cr)
        True
    """
    if "FrameOfReferenceUID" in source:
        return str(source.FrameOfReferenceUID)
    return str(generate_uid(entropy_srcs=[PROJECTION_FRAME, str(source.SOPInstanceUID)]))


def _in_own_frame(source: Dataset) -> Dataset:
    """A copy of a single-frame header in no frame of reference, placed in its own frame.

    highdicom derives a Parametric Map only from a source in a frame of reference (a
    source without one passes its check in ``Image._init_multiframe_image``, which asks
    the source's IOD, then fails building the frame index), so the copy is given one:
    the frame's UID, the first pixel at its origin, the orientation that the Patient
    Orientation states. Pixel Spacing and Slice Thickness are placeholders highdicom
    needs; :func:`_projection_measures` keeps only what the source states.
    """
    modality = source.get("Modality", "the")
    if "NumberOfFrames" in source:
        raise InputError(
            None,
            f"{modality} multi-frame image has no Frame of Reference; a Parametric Map is "
            "made only for a single-frame image without one; its heatmap is in the overlay",
        )
    orientation = _orientation(source)
    copy = Dataset(dict(source.items()))  # a new element dict: the caller's header stays
    meta = getattr(source, "file_meta", None)
    if meta is not None:
        copy.file_meta = meta
    placed = {
        "FrameOfReferenceUID": frame_of_reference(source),
        "ImageOrientationPatient": orientation,
        "ImagePositionPatient": [0.0, 0.0, 0.0],
        "PixelSpacing": _pixel_spacing(source) or [1.0, 1.0],
        "SliceThickness": 1.0,
    }
    for keyword, value in placed.items():
        if keyword in copy:
            del copy[keyword]  # a new element: setting the shared one would change the source
        setattr(copy, keyword, value)
    return copy


def _orientation(source: Dataset) -> list[float]:
    """Image Orientation (Patient) from Patient Orientation: row, then column direction.

    Only two single-letter values naming orthogonal axes of the patient-based coordinate
    system (PS3.3 C.7.6.1.1.1: L, R, A, P, H, F) say the direction exactly; an oblique
    value (``LP``) is only the nearest axes, and an empty one says nothing.
    """
    values = [str(v).strip().upper() for v in (source.get("PatientOrientation") or [])]
    if len(values) == 2 and all(v in _PATIENT_AXES for v in values):
        row, column = (_PATIENT_AXES[v] for v in values)
        if abs(float(np.dot(row, column))) < 0.5:  # orthogonal: not L\R or L\L
            return [float(x) for x in (*row, *column)]
    raise InputError(
        None,
        f"{source.get('Modality', 'the')} image has no Frame of Reference and no Patient "
        "Orientation naming two orthogonal patient axes; a Parametric Map needs its plane "
        "orientation in the patient (PS3.3 A.75, C.7.6.2.1.1), which radlens does not "
        "invent; its heatmap is in the overlay",
    )


def _pixel_spacing(source: Dataset) -> list[float] | None:
    """The source's Pixel Spacing when it states a positive one (RG1's ``0\\0`` does not)."""
    try:
        values = [float(v) for v in source.get("PixelSpacing") or []]
    except (TypeError, ValueError):
        return None
    return values if len(values) == 2 and all(v > 0 for v in values) else None


def _projection_measures(pm: ParametricMap, source: Dataset) -> None:
    """Pixel Measures of a map in its own frame: only the spacing the source states.

    Slice Thickness and Spacing Between Slices (which highdicom adds for one plane) are
    for tomographic images (PS3.3 C.7.6.16.2.1: Slice Thickness is required only when
    Volumetric Properties is VOLUME or SAMPLED, which a Parametric Map does not carry),
    and a Pixel Spacing radlens does not know is left out rather than made up.
    """
    measures = pm.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    for keyword in ("SliceThickness", "SpacingBetweenSlices"):
        if keyword in measures:
            delattr(measures, keyword)
    if _pixel_spacing(source) is None and "PixelSpacing" in measures:
        del measures.PixelSpacing


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
