"""One entry point from a series to its images: :func:`load_images`.

This is what the pipeline calls after :func:`radlens.io.scan.scan`. It chooses the
reader for each instance from the file's content (DICOM, NIfTI, PNG/JPEG), so a series
from any source loads the same way.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from radlens.domain.imaging import Image, Instance, Series
from radlens.errors import IncompatibleInputError, NotAnImageError
from radlens.io.dicom import decode_instance
from radlens.io.formats import SourceFormat, instance_bytes, instance_format
from radlens.io.nifti import read_nifti
from radlens.io.raster import read_raster
from radlens.io.volume import is_volume_series, load_volume


def load_images(series: Series) -> list[Image]:
    """Load the images of a series.

    A CT/MR/PT series of slices with positions (see
    :func:`~radlens.io.volume.is_volume_series`) gives one ZYX volume. Otherwise each
    instance with pixels gives one image (YX/YXC, FYX/FYXC for multi-frame DICOM, ZYX for
    NIfTI). An enhanced multi-frame object whose frames do not form a regular stack
    (e.g. a cine at one position) falls back to its frames; a stack of single-frame
    slices with gaps or duplicates raises, because a silently wrong volume is worse.

    Raises:
        NotAnImageError: no instance of the series holds pixel data.
        IncompatibleInputError: slices that should form a volume do not (missing slices).
        PixelDataError, UnsupportedTransferSyntaxError, UnsupportedFormatError: an
            instance cannot be decoded.

    Example:
        >>> result = scan([Path("incoming/")])  # doctest: +SKIP
        >>> [image.layout.value for image in load_images(result.studies[0].series[0])]
        ['zyx']
    """
    with_pixels = [i for i in series.instances if i.has_pixels]
    if not with_pixels:
        where = series.instances[0].location if series.instances else series.series_instance_uid
        raise NotAnImageError(where, f"series has no image (modality {series.modality or '?'})")
    if is_volume_series(series):
        try:
            return [load_volume(series)]
        except IncompatibleInputError:
            if len(with_pixels) > 1:
                raise
    return [load_instance(i) for i in with_pixels]


def load_instance(instance: Instance) -> Image:
    """Load one instance with the reader its content calls for.

    Example:
        >>> load_instance(series.instances[0]).layout.value  # doctest: +SKIP
        'yx'
    """
    data = instance_bytes(instance)
    kind = instance_format(instance, data)
    shown = Path(instance.location)
    if kind is SourceFormat.RASTER:
        image = read_raster(shown, data)
    elif kind is SourceFormat.NIFTI:
        image = read_nifti(shown, data)
    else:
        return decode_instance(instance, data)
    return replace(image, source_uids=(instance.sop_instance_uid,))
