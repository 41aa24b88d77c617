"""A series of slices -> one volume :class:`~radlens.domain.imaging.Image` (layout ZYX).

Slices are ordered by their position projected on the slice normal
``n = row_dir x col_dir`` (the cross product of the two Image Orientation cosines,
PS3.3 C.7.6.2.1.1), never by Instance Number or file name, which scanners and exports
do not keep consistent.

Geometry convention of the volume (LPS millimetres, axes in array order ``z, y, x``):

* ``origin_lps_mm`` is Image Position (Patient) of the first slice after sorting, i.e.
  the centre of voxel ``[0, 0, 0]``;
* ``spacing_mm = (slice_mm, row_mm, col_mm)``; ``slice_mm`` is the median distance
  between consecutive slice positions, ``(row_mm, col_mm)`` is Pixel Spacing;
* ``direction_lps`` is 9 numbers, three unit vectors in array order:
  ``[0:3]`` axis z, the step from one slice to the next (``+n`` unless the gantry
  was tilted, when it follows the actual stack); ``[3:6]`` axis y, increasing row
  index = DICOM's column direction ``IOP[3:6]``; ``[6:9]`` axis x, increasing column
  index = DICOM's row direction ``IOP[0:3]``.

So voxel ``[k, j, i]`` sits at
``origin + k*slice_mm*d[0:3] + j*row_mm*d[3:6] + i*col_mm*d[6:9]``.

An enhanced multi-frame CT/MR object (one instance, per-frame Plane Position) is
assembled the same way from its frames.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from radlens.domain.imaging import Geometry, Image, ImageLayout, Instance, Series
from radlens.errors import IncompatibleInputError
from radlens.io.dicom import decode_instance, read_frame_positions, read_slice_spacing

VOLUME_MODALITIES = frozenset({"CT", "MR", "PT", "SEG"})
"""Modalities whose slice stacks are assembled into volumes."""

MAX_GAP_DEVIATION = 0.10
"""Largest relative deviation of one slice gap from the median gap."""

_ORIENTATION_TOLERANCE = 1e-3
_SHEAR_TOLERANCE = 1e-3


def is_volume_series(series: Series) -> bool:
    """True when the series' images can form one volume (no pixel data read).

    That is: a CT, MR or PT series whose pixel instances are either at least two
    single-frame grayscale slices on the same grid (same rows, columns and orientation,
    all with a position), or one multi-frame grayscale object with plane positions.

    Example:
        >>> is_volume_series(series)  # doctest: +SKIP
        True
    """
    if series.modality.upper() not in VOLUME_MODALITIES:
        return False
    slices = [i for i in series.instances if i.has_pixels]
    if not slices or any(i.samples_per_pixel != 1 or not _has_plane(i) for i in slices):
        return False
    if len(slices) == 1:
        return slices[0].frames > 1
    first = slices[0]
    return all(
        i.frames == 1
        and (i.rows, i.columns) == (first.rows, first.columns)
        and _same_orientation(i, first)
        for i in slices
    )


def load_volume(series: Series) -> Image:
    """Decode and stack the slices of a series into one ZYX volume, sorted by position.

    Raises:
        IncompatibleInputError: fewer than two slices, slices on different grids or
            orientations, two slices at one position, or gaps that differ from the
            median gap by more than 10% (missing slices).
        PixelDataError, UnsupportedTransferSyntaxError: a slice cannot be decoded.

    Example:
        >>> volume = load_volume(series)  # doctest: +SKIP
        >>> volume.layout.value, volume.geometry.spacing_mm
        ('zyx', (2.0, 2.0, 2.0))
    """
    slices = [i for i in series.instances if i.has_pixels]
    if len(slices) == 1 and slices[0].frames > 1:
        if series.modality.upper() == "SEG":
            return _segmentation_volume(slices[0])
        return _multiframe_volume(slices[0])
    where = slices[0].location if slices else series.series_instance_uid
    if len(slices) < 2:
        raise IncompatibleInputError(where, "a volume needs at least two slices")
    for instance in slices:
        if not _has_plane(instance) or not _same_orientation(instance, slices[0]):
            raise IncompatibleInputError(
                instance.location,
                "slice has no position/orientation or a different orientation from "
                f"{slices[0].location}; not one volume",
            )
    normal = _normal(slices[0])
    slices.sort(key=lambda i: float(np.dot(_position(i), normal)))
    images = [decode_instance(i) for i in slices]
    for instance, image in zip(slices, images, strict=True):
        if image.layout is not ImageLayout.YX or image.shape != images[0].shape:
            raise IncompatibleInputError(
                instance.location,
                f"slice is {image.layout.value} {image.shape}, expected yx {images[0].shape}",
            )
    positions = np.array([_position(i) for i in slices])
    array = np.stack([image.array for image in images]).astype(np.float32, copy=False)
    uids = tuple(i.sop_instance_uid for i in slices)
    return _volume(array, positions, slices[0], images[0], uids)


def _frames_and_positions(instance: Instance, what: str) -> tuple[Image, npt.NDArray[np.float64]]:
    """The decoded frames of a multi-frame object and each frame's position."""
    if not _has_plane(instance):
        raise IncompatibleInputError(instance.location, f"{what} frames have no plane positions")
    frames = decode_instance(instance)
    positions = np.array(read_frame_positions(instance))
    if frames.layout is not ImageLayout.FYX or len(positions) != frames.n_frames:
        raise IncompatibleInputError(
            instance.location, f"not a grayscale {what} with a position for every frame"
        )
    return frames, positions


def _multiframe_volume(instance: Instance) -> Image:
    frames, positions = _frames_and_positions(instance, "multi-frame")
    order = np.argsort(positions @ _normal(instance), kind="stable")
    array = frames.array[order]
    return _volume(array, positions[order], instance, frames, frames.source_uids)


def _segmentation_volume(instance: Instance) -> Image:
    """A DICOM Segmentation as one mask volume: the union of its segments.

    A SEG stores one frame per segment and position and usually leaves out empty frames.
    Frames at one position are merged (maximum, so BINARY and FRACTIONAL both work), and
    positions missing from the regular grid of the smallest gap become empty slices.
    """
    frames, positions = _frames_and_positions(instance, "segmentation")
    normal = _normal(instance)
    depth = positions @ normal
    levels, index = np.unique(np.round(depth, 3), return_inverse=True)
    merged = np.zeros((len(levels), *frames.array.shape[1:]), np.float32)
    np.maximum.at(merged, index, frames.array.astype(np.float32, copy=False))
    firsts = np.array([positions[np.flatnonzero(index == k)[0]] for k in range(len(levels))])
    spacing = read_slice_spacing(instance)
    if len(levels) > 2 or (spacing and len(levels) > 1):
        step = spacing or float(np.min(np.diff(levels)))
        slots = np.round((levels - levels[0]) / step).astype(np.int64)
        if np.allclose(levels - levels[0], slots * step, atol=0.1 * step):
            full = np.zeros((int(slots[-1]) + 1, *merged.shape[1:]), np.float32)
            full[slots] = merged
            grid = firsts[0] + np.outer(np.arange(len(full)), (firsts[-1] - firsts[0]) / slots[-1])
            merged, firsts = full, grid
    if len(merged) < 2:
        raise IncompatibleInputError(instance.location, "segmentation covers a single plane")
    return _volume(merged, firsts, instance, frames, frames.source_uids)


def _volume(
    array: npt.NDArray[np.float32],
    positions: npt.NDArray[np.float64],
    first: Instance,
    first_image: Image,
    uids: tuple[str, ...],
) -> Image:
    """Check the gaps between sorted positions and build the ZYX image."""
    normal = _normal(first)
    gaps = np.diff(positions @ normal)
    if np.any(gaps <= 1e-3):
        raise IncompatibleInputError(first.location, "two slices share one position")
    median_gap = float(np.median(gaps))
    deviation = float(np.max(np.abs(gaps - median_gap)) / median_gap)
    if deviation > MAX_GAP_DEVIATION:
        raise IncompatibleInputError(
            first.location,
            f"slice gaps range {gaps.min():.3g}-{gaps.max():.3g} mm around a median of "
            f"{median_gap:.3g} mm (more than {MAX_GAP_DEVIATION:.0%} apart); "
            "slices are missing or the series mixes stacks",
        )
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    slice_axis = step / np.linalg.norm(step)
    if np.linalg.norm(slice_axis - normal) < _SHEAR_TOLERANCE:
        slice_axis = normal
    slice_mm = median_gap / float(np.dot(slice_axis, normal))
    assert first.orientation_lps is not None  # checked by _has_plane
    row_dir, col_dir = first.orientation_lps[:3], first.orientation_lps[3:]
    row_mm, col_mm = first_image.geometry.spacing_mm
    geometry = Geometry(
        spacing_mm=(slice_mm, row_mm, col_mm),
        origin_lps_mm=(float(positions[0][0]), float(positions[0][1]), float(positions[0][2])),
        direction_lps=(*(float(v) for v in slice_axis), *col_dir, *row_dir),
        spacing_known=first_image.geometry.spacing_known,
    )
    return Image(
        array,
        ImageLayout.ZYX,
        geometry,
        units=first_image.units,
        window=first_image.window,
        source_uids=uids,
    )


def _has_plane(instance: Instance) -> bool:
    return instance.position_lps_mm is not None and instance.orientation_lps is not None


def _same_orientation(a: Instance, b: Instance) -> bool:
    if a.orientation_lps is None or b.orientation_lps is None:
        return False
    difference = np.subtract(a.orientation_lps, b.orientation_lps)
    return bool(np.max(np.abs(difference)) < _ORIENTATION_TOLERANCE)


def _position(instance: Instance) -> npt.NDArray[np.float64]:
    return np.asarray(instance.position_lps_mm, dtype=np.float64)


def _normal(instance: Instance) -> npt.NDArray[np.float64]:
    orientation = np.asarray(instance.orientation_lps, dtype=np.float64)
    normal = np.cross(orientation[:3], orientation[3:])
    return normal / np.linalg.norm(normal)
