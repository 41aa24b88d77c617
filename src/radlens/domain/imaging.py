"""Studies, series, instances and images: what radlens reads, with no I/O of its own.

Patient identifiers live in one :class:`Patient` object whose identifying fields are
``repr=False``, so they never reach a log line or an exception message.

Coordinates follow DICOM: the patient-based LPS frame (PS3.3 C.7.6.2.1.1), millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np


class ImageLayout(StrEnum):
    """Axis order of :attr:`Image.array`.

    ``y`` is rows, ``x`` columns, ``c`` colour samples (RGB), ``f`` frames in time (cine),
    ``z`` slices in space (a volume, sorted along the slice normal).
    """

    YX = "yx"
    YXC = "yxc"
    FYX = "fyx"
    FYXC = "fyxc"
    ZYX = "zyx"

    @property
    def ndim(self) -> int:
        return len(self.value)

    @property
    def is_color(self) -> bool:
        return self.value.endswith("c")

    @property
    def is_volume(self) -> bool:
        return self.value.startswith("z")

    @property
    def is_multiframe(self) -> bool:
        return self.value.startswith("f")


@dataclass(frozen=True)
class Geometry:
    """Where pixels are in the patient.

    Attributes:
        spacing_mm: spacing along each spatial axis of the array, in array order
            (``(row_mm, col_mm)`` for 2D, ``(slice_mm, row_mm, col_mm)`` for volumes).
        origin_lps_mm: centre of the first pixel (voxel) in LPS millimetres, if known.
        direction_lps: unit vectors of the array axes in LPS as a flat row-major tuple,
            one vector per spatial axis in array order (2D: row and column directions
            as 2x3; 3D: 3x3), if known.
        spacing_known: False when no spacing tag was present and 1 mm was assumed.
    """

    spacing_mm: tuple[float, ...]
    origin_lps_mm: tuple[float, float, float] | None = None
    direction_lps: tuple[float, ...] | None = None
    spacing_known: bool = True

    def __post_init__(self) -> None:
        if not self.spacing_mm or any(s <= 0 for s in self.spacing_mm):
            raise ValueError(f"spacing_mm must be positive, got {self.spacing_mm}")
        if self.direction_lps is not None and len(self.direction_lps) != 3 * len(self.spacing_mm):
            raise ValueError(
                f"direction_lps needs {3 * len(self.spacing_mm)} values for "
                f"{len(self.spacing_mm)} axes, got {len(self.direction_lps)}"
            )


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2) in the units of the image."""

    center: float
    width: float

    def __post_init__(self) -> None:
        if self.width <= 0:
            raise ValueError(f"window width must be positive, got {self.width}")


@dataclass(frozen=True, eq=False)
class Image:
    """Pixel array in physical units plus its geometry.

    Attributes:
        array: float32 for grayscale (HU for CT, modality-LUT output otherwise, with
            MONOCHROME1 already inverted so that higher means brighter), uint8 for RGB.
        layout: axis order of ``array``.
        geometry: spacing, origin and direction; spatial axes only.
        units: ``"HU"`` for CT, ``"RGB"`` for colour, otherwise ``"modality"``.
        window: the default display window from the file (after any inversion), if any.
        source_uids: SOP Instance UIDs the pixels came from, in array order.
    """

    array: np.ndarray = field(repr=False)
    layout: ImageLayout
    geometry: Geometry
    units: str = "modality"
    window: Window | None = None
    source_uids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.array.ndim != self.layout.ndim:
            raise ValueError(
                f"array has {self.array.ndim} axes but layout {self.layout.value} needs "
                f"{self.layout.ndim}"
            )
        if self.layout.is_color and self.array.shape[-1] != 3:
            raise ValueError(f"colour layout needs 3 samples, got {self.array.shape[-1]}")
        spatial = 3 if self.layout.is_volume else 2
        if len(self.geometry.spacing_mm) != spatial:
            raise ValueError(
                f"layout {self.layout.value} needs {spatial} spacings, "
                f"got {self.geometry.spacing_mm}"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def n_frames(self) -> int:
        """Number of 2D frames (1 for a single image, slices for a volume)."""
        return 1 if self.layout in (ImageLayout.YX, ImageLayout.YXC) else self.array.shape[0]


@dataclass(frozen=True)
class Patient:
    """Who the study belongs to. Identifying fields never appear in ``repr``."""

    patient_id: str = field(default="", repr=False)
    name: str = field(default="", repr=False)
    birth_date: str = field(default="", repr=False)
    sex: str = ""
    age_years: float | None = None


@dataclass(frozen=True)
class Instance:
    """One DICOM object (SOP instance) as found on disk.

    Attributes:
        sop_instance_uid: SOP Instance UID.
        sop_class_uid: SOP Class UID.
        path: where the file is (inside a zip: ``archive.zip/member``, see ``member``).
        transfer_syntax_uid: transfer syntax of the file ("" when the meta was missing).
        rows, columns, frames: image size (0 for objects without pixels).
        samples_per_pixel: 1 for grayscale, 3 for colour.
        photometric: Photometric Interpretation as stored.
        instance_number: Instance Number, or None.
        position_lps_mm: Image Position (Patient), or None.
        orientation_lps: Image Orientation (Patient), six direction cosines, or None.
        acquisition: other acquisition facts used by routing (e.g. ``PixelSpacing``), as
            (keyword, value-as-string) pairs.
        member: name inside a zip archive, or "".
        is_volume: the file holds one whole 3D volume (a NIfTI file), as opposed to
            frames in time.
    """

    sop_instance_uid: str
    sop_class_uid: str
    path: Path
    transfer_syntax_uid: str = ""
    rows: int = 0
    columns: int = 0
    frames: int = 0
    samples_per_pixel: int = 1
    photometric: str = ""
    instance_number: int | None = None
    position_lps_mm: tuple[float, float, float] | None = None
    orientation_lps: tuple[float, float, float, float, float, float] | None = None
    member: str = ""
    has_pixels: bool = True
    is_volume: bool = False

    @property
    def location(self) -> str:
        """File path, with the zip member appended when there is one."""
        return f"{self.path}!{self.member}" if self.member else str(self.path)


@dataclass(frozen=True)
class Series:
    """Instances that share a Series Instance UID."""

    series_instance_uid: str
    modality: str
    instances: tuple[Instance, ...]
    body_part: str = ""
    view_position: str = ""
    description: str = ""
    series_number: int | None = None
    manufacturer: str = ""
    manufacturer_model: str = ""
    station_name: str = field(default="", repr=False)
    frame_of_reference_uid: str = ""

    @property
    def has_pixels(self) -> bool:
        return any(i.has_pixels for i in self.instances)


@dataclass(frozen=True)
class Study:
    """Series that share a Study Instance UID, and the patient they belong to.

    Attributes:
        study_date, study_time: Study Date and Time as written (DA ``YYYYMMDD``, TM).
        description: Study Description.
        requested_procedure: Requested Procedure Description (0032,1060).
        reason_for_study: Reason for the Requested Procedure (0040,1002), else the
            retired Reason for Study (0032,1030).
        admitting_diagnoses: Admitting Diagnoses Description (0008,1080).
        patient_history: Additional Patient History (0010,21B0).

    The clinical free text may name people, so it stays out of ``repr`` like the dates.
    """

    study_instance_uid: str
    series: tuple[Series, ...]
    patient: Patient = field(default_factory=Patient, repr=False)
    study_date: str = field(default="", repr=False)
    description: str = ""
    accession_number: str = field(default="", repr=False)
    referring_physician: str = field(default="", repr=False)
    study_time: str = field(default="", repr=False)
    requested_procedure: str = ""
    reason_for_study: str = field(default="", repr=False)
    admitting_diagnoses: str = field(default="", repr=False)
    patient_history: str = field(default="", repr=False)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted({s.modality for s in self.series}))

    @property
    def when(self) -> str:
        """Study Date and Time as one sortable ``YYYYMMDDHHMMSS.ffffff``; "" without a date.

        Example:
            >>> Study("1.2", (), study_date="20240110", study_time="0930").when
            '20240110093000.000000'
        """
        day = "".join(c for c in self.study_date if c.isdigit())
        if len(day) != 8:
            return ""
        time = "".join(c for c in self.study_time if c.isdigit() or c == ".")
        clock, _, fraction = time.partition(".")
        return f"{day}{clock[:6].ljust(6, '0')}.{fraction[:6].ljust(6, '0')}"

    @property
    def n_instances(self) -> int:
        return sum(len(s.instances) for s in self.series)
