"""NIfTI-1/2 volumes (nibabel): :func:`read_nifti` / :func:`write_nifti`.

NIfTI stores voxels as ``data[i, j, k]`` with an affine to RAS+ millimetres; radlens
uses DICOM's LPS frame and ``array[z, y, x]``. Reading therefore transposes the data to
``(k, j, i)`` and flips the first two affine rows (``LPS = diag(-1, -1, 1) @ RAS``). No
resampling: an oblique or flipped affine is kept exactly, as direction vectors. The
geometry convention is the one of :mod:`radlens.io.volume`: ``spacing_mm`` and
``direction_lps`` list the axes in array order (z = k, y = j, x = i), and
``origin_lps_mm`` is the centre of voxel ``[0, 0, 0]``.

A 2D file reads as layout YX; 3D as ZYX; 4D and more (time series) are refused.

nibabel comes with ``radlens[nifti]`` (and with the serve and cluster extras), not with
the base install: hospitals send DICOM, and an edge install stays small (docs/edge.md).
Without it a NIfTI file is refused like any unreadable input, with the command to install.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from radlens.domain.imaging import Geometry, Image, ImageLayout
from radlens.errors import (
    IncompatibleInputError,
    PixelDataError,
    TruncatedFileError,
    UnsupportedFormatError,
)

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
_NIFTI2_HEADER_BYTES = 540
_READ_ERRORS = (ValueError, OSError, EOFError, zlib.error, gzip.BadGzipFile)
NIFTI_EXTRA = "pip install 'radlens[nifti]'"

if TYPE_CHECKING:
    import nibabel as nib


def _require_nibabel(path: Path) -> None:
    """Import nibabel on first use (about 0.1 s), or say why NIfTI cannot be read."""
    try:
        import nibabel  # noqa: F401
    except ModuleNotFoundError as exc:
        raise UnsupportedFormatError(
            path, f"NIfTI input needs nibabel, not installed: {NIFTI_EXTRA}"
        ) from exc


def read_nifti_shape(path: Path, data: bytes | None = None) -> tuple[int, ...]:
    """Shape of the data in radlens array order (``(z, y, x)`` or ``(y, x)``), header only.

    Raises:
        UnsupportedFormatError: not a NIfTI file, or more than three dimensions.
    """
    image = _load(path, data)
    return _radlens_shape(path, image.shape)


def read_nifti(path: Path, data: bytes | None = None) -> Image:
    """Read a NIfTI file as a float32 :class:`Image` in LPS (scaling slope applied).

    Args:
        path: ``.nii`` or ``.nii.gz`` file (for a zip member, the name shown in errors).
        data: the file's bytes, when already in memory.

    Raises:
        UnsupportedFormatError: not NIfTI, or 4D and more.
        TruncatedFileError: the file ends before its data do.

    Example:
        >>> volume = read_nifti(Path("ct.nii.gz"))  # doctest: +SKIP
        >>> volume.layout.value
        'zyx'
    """
    image = _load(path, data)
    shape = _radlens_shape(path, image.shape)
    try:
        voxels = np.asarray(image.get_fdata(dtype=np.float32), dtype=np.float32)
    except (EOFError, OSError, ValueError, zlib.error) as exc:
        if "Expected" in str(exc) or isinstance(exc, EOFError):
            raise TruncatedFileError(path, f"NIfTI data cut short: {exc}") from exc
        raise PixelDataError(path, f"cannot read NIfTI data: {exc}") from exc
    voxels = voxels.reshape(voxels.shape[: len(shape)])
    array = np.ascontiguousarray(voxels.T)  # (i, j, k) -> (k, j, i)
    affine = np.asarray(image.affine, dtype=np.float64)
    layout = ImageLayout.ZYX if array.ndim == 3 else ImageLayout.YX
    return Image(array, layout, _geometry(affine, array.ndim))


def write_nifti(image: Image, path: Path) -> None:
    """Write a grayscale YX or ZYX :class:`Image` as NIfTI-1 (``.nii`` or ``.nii.gz``).

    The affine is built from the image geometry (LPS converted to RAS); an unknown
    direction is taken as DICOM axial (x = L, y = P, z = S), an unknown origin as 0.

    Raises:
        IncompatibleInputError: a colour or multi-frame image.

    Example:
        >>> write_nifti(volume, Path("ct.nii.gz"))  # doctest: +SKIP
    """
    if image.layout not in (ImageLayout.YX, ImageLayout.ZYX):
        raise IncompatibleInputError(
            path, f"NIfTI output needs a yx or zyx grayscale image, got {image.layout.value}"
        )
    geometry = image.geometry
    axes = image.array.ndim
    if geometry.direction_lps is not None:
        directions = np.asarray(geometry.direction_lps, dtype=np.float64).reshape(axes, 3)
    else:
        directions = np.eye(3)[::-1][-axes:]  # rows in array order: (z,) y, x
    affine = np.eye(4)
    for column, axis in enumerate(reversed(range(axes))):  # i = last array axis
        affine[:3, column] = _RAS_TO_LPS @ directions[axis] * geometry.spacing_mm[axis]
    if axes == 2:
        affine[:3, 2] = np.cross(affine[:3, 0], affine[:3, 1])
        affine[:3, 2] /= np.linalg.norm(affine[:3, 2])
    origin = geometry.origin_lps_mm or (0.0, 0.0, 0.0)
    affine[:3, 3] = _RAS_TO_LPS @ np.asarray(origin, dtype=np.float64)
    _require_nibabel(path)
    import nibabel as nib

    # nibabel is not fully annotated; these four calls are its documented API.
    voxels = np.asarray(image.array, dtype=np.float32).T  # (k, j, i) -> (i, j, k)
    nifti = nib.Nifti1Image(voxels, affine)  # type: ignore[no-untyped-call]
    nifti.set_qform(affine, code=1)  # type: ignore[no-untyped-call]
    nifti.set_sform(affine, code=1)  # type: ignore[no-untyped-call]
    nifti.header.set_xyzt_units("mm")  # type: ignore[no-untyped-call]
    nib.save(nifti, path)


def _load(path: Path, data: bytes | None) -> nib.Nifti1Image:
    _require_nibabel(path)
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        if data is None:
            image = nib.load(path)
        else:
            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            nifti2 = int.from_bytes(raw[:4], "little") == _NIFTI2_HEADER_BYTES
            klass = nib.Nifti2Image if nifti2 else nib.Nifti1Image
            image = klass.from_stream(io.BytesIO(raw))
    except EOFError as exc:
        raise TruncatedFileError(path, f"NIfTI file cut short: {exc}") from exc
    except (ImageFileError, *_READ_ERRORS) as exc:
        raise UnsupportedFormatError(path, f"not a readable NIfTI file: {exc}") from exc
    if not isinstance(image, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise UnsupportedFormatError(path, f"not a NIfTI file ({type(image).__name__})")
    return image


def _radlens_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, ...]:
    spatial = list(shape)
    while len(spatial) > 3 and spatial[-1] == 1:
        spatial.pop()
    if len(spatial) not in (2, 3):
        raise UnsupportedFormatError(
            path, f"NIfTI with shape {shape} is not 2D or 3D (time series are not supported)"
        )
    return tuple(reversed(spatial))


def _geometry(affine: npt.NDArray[np.float64], axes: int) -> Geometry:
    lps = _RAS_TO_LPS @ affine[:3, :axes]  # columns: i, j(, k)
    spacing = np.linalg.norm(lps, axis=0)
    origin = _RAS_TO_LPS @ affine[:3, 3]
    origin_mm = (float(origin[0]), float(origin[1]), float(origin[2]))
    if np.any(spacing <= 0) or not np.all(np.isfinite(lps)):
        return Geometry((1.0,) * axes, origin_mm, spacing_known=False)
    directions = (lps / spacing).T[::-1]  # rows in array order: (k,) j, i
    return Geometry(
        spacing_mm=tuple(float(s) for s in spacing[::-1]),
        origin_lps_mm=origin_mm,
        direction_lps=tuple(float(v) for v in directions.ravel()),
    )
