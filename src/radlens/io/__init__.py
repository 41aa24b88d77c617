"""Reading what hospitals send: files, folders and zips -> studies -> images.

Modules (import the one you need; this package imports nothing heavy by itself):

* :mod:`radlens.io.scan` -- :func:`~radlens.io.scan.scan` files, folders and zips into
  :class:`~radlens.domain.imaging.Study` objects, headers only.
* :mod:`radlens.io.load` -- :func:`~radlens.io.load.load_images`, series -> images.
* :mod:`radlens.io.dicom` -- DICOM headers and pixel decoding; pydicom's errors and
  warnings are converted there (pixel pipeline in :mod:`radlens.io.pixels`).
* :mod:`radlens.io.volume` -- slices -> ZYX volume, sorted by position.
* :mod:`radlens.io.nifti`, :mod:`radlens.io.raster` -- NIfTI and PNG/JPEG read/write.
* :mod:`radlens.io.archive`, :mod:`radlens.io.formats`, :mod:`radlens.io.uids` --
  safe zip members, format sniffing, deterministic UIDs.
"""
