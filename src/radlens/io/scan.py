"""Find the studies in files, folders and zips: :func:`scan` (headers only, no pixels).

Each file is recognized by content, not by name: ``DICM`` after the preamble is DICOM,
PNG/JPEG signatures are rasters, ``.nii``/``.nii.gz`` (or the NIfTI magic) is NIfTI, and
anything else is tried as DICOM written without file meta (accepted when a forced read
finds a SOP Instance UID). Folders are walked recursively in sorted order; hidden
entries, symlinked folders and ``DICOMDIR`` are skipped. Zips are read member by member
into memory (see :mod:`radlens.io.archive` for the path-traversal and zip-bomb guards);
zips inside zips are not opened.

DICOM instances are grouped Study -> Series -> Instance. A PNG, JPEG or NIfTI file becomes
a study of its own with one series and one instance, whose UIDs are derived from the
sha256 of its content (``2.25.<uuid>``), so the same image gets the same UIDs wherever it
is found. Its modality and body part are unknown ("") unless given to :func:`scan`.

Failure policy:

* a path that does not exist -> :class:`~radlens.errors.InputError`, before any reading;
* a bad file in a folder or zip -> listed in :attr:`ScanResult.rejected`, never raised;
* a zip given on its own that cannot be opened (or is a zip bomb) ->
  :class:`~radlens.errors.UnreadableArchiveError`; one met inside a folder, or given
  with other inputs, is rejected instead;
* a single file (not a zip) given on its own that cannot be read -> its own typed error;
* nothing readable at all (empty folder, only junk) ->
  :class:`~radlens.errors.EmptyInputError`;
* the same SOP Instance UID twice -> kept once, with a line in
  :attr:`ScanResult.warnings`. Warnings raised while reading (e.g.
  :class:`~radlens.io.dicom.DicomReadWarning`) are collected there too, not re-emitted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from radlens.domain.imaging import Instance, Series, Study
from radlens.errors import (
    EmptyInputError,
    InputError,
    NotDicomError,
    UnreadableArchiveError,
    UnsupportedFormatError,
)
from radlens.io.archive import (
    DEFAULT_MAX_UNZIPPED_BYTES,
    ArchiveMember,
    is_zip,
    iter_members,
)
from radlens.io.dicom import DicomHeader, read_instance
from radlens.io.formats import HEAD_BYTES, SourceFormat, read_head, sniff_format
from radlens.io.nifti import read_nifti_shape
from radlens.io.raster import read_raster_info
from radlens.io.uids import uid_from
from radlens.warning_scopes import recording

_HASH_CHUNK_BYTES = 1024 * 1024
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class ScanResult:
    """What :func:`scan` found.

    Attributes:
        studies: studies in order of first appearance, each with its series and
            instances (no pixel data read).
        rejected: one typed error per file that could not be used.
        warnings: one line per thing worth knowing that did not stop a file
            (duplicates, DICOM read warnings).
    """

    studies: tuple[Study, ...]
    rejected: tuple[InputError, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def n_instances(self) -> int:
        return sum(s.n_instances for s in self.studies)


def scan(
    paths: Sequence[Path],
    *,
    modality: str = "",
    body_part: str = "",
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
) -> ScanResult:
    """Find every study in the given files, folders and zips, reading headers only.

    Args:
        paths: files, folders or zip archives.
        modality: modality for PNG/JPEG/NIfTI inputs, which do not say (e.g. ``"CR"``).
        body_part: body part for PNG/JPEG/NIfTI inputs (e.g. ``"CHEST"``).
        max_unzipped_bytes: cap on what one zip may inflate to.

    Raises:
        InputError: a path does not exist.
        EmptyInputError: nothing readable in the inputs.
        UnreadableArchiveError: a zip given on its own cannot be opened.

    Example:
        >>> result = scan([Path("incoming/")])  # doctest: +SKIP
        >>> [s.modalities for s in result.studies], len(result.rejected)
        ([('CT',)], 0)
    """
    inputs = [Path(p) for p in paths]
    if not inputs:
        raise EmptyInputError(None, "no input paths given")
    for path in inputs:
        if not path.exists():
            raise InputError(path, "no such file or directory")
    collector = _Collector(modality.upper(), body_part.upper())
    with recording() as caught:
        for path in inputs:
            _scan_path(path, collector, max_unzipped_bytes, alone=len(inputs) == 1)
    found = collector.result([" ".join(str(w.message).split()) for w in caught])
    if found.studies:
        return found
    if len(inputs) == 1 and inputs[0].is_file() and not is_zip(inputs[0]) and found.rejected:
        raise found.rejected[0]
    first = f"; first: {found.rejected[0]}" if found.rejected else ""
    raise EmptyInputError(
        inputs[0] if len(inputs) == 1 else None,
        f"no readable DICOM, NIfTI, PNG or JPEG file ({len(found.rejected)} rejected{first})",
    )


def _scan_path(path: Path, collector: _Collector, max_unzipped_bytes: int, alone: bool) -> None:
    if path.is_dir():
        for file in _walk(path):
            _scan_path(file, collector, max_unzipped_bytes, alone=False)
    elif is_zip(path):
        try:
            for item in iter_members(path, max_unzipped_bytes=max_unzipped_bytes):
                if isinstance(item, ArchiveMember):
                    collector.add(path, item.data, item.name)
                else:
                    collector.rejected.append(item)
        except UnreadableArchiveError as exc:
            if alone:
                raise
            collector.rejected.append(exc)
    else:
        collector.add(path, None, "")


def _walk(folder: Path) -> Iterator[Path]:
    """Files under ``folder`` in sorted order; hidden entries, symlinked dirs and DICOMDIR out."""
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name.upper() == "DICOMDIR":
            continue
        if entry.is_dir():
            if not entry.is_symlink():
                yield from _walk(entry)
        elif entry.is_file():
            yield entry


@dataclass
class _Collector:
    """Accumulates headers and rejections, then groups them into studies."""

    modality: str
    body_part: str
    rejected: list[InputError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    studies: dict[str, Study] = field(default_factory=dict)
    series: dict[tuple[str, str, str], Series] = field(default_factory=dict)
    instances: dict[tuple[str, str, str], list[Instance]] = field(default_factory=dict)
    seen: dict[str, Instance] = field(default_factory=dict)

    def add(self, path: Path, data: bytes | None, member: str) -> None:
        location = f"{path}!{member}" if member else str(path)
        try:
            head = data[:HEAD_BYTES] if data is not None else read_head(path)
            kind = sniff_format(member or path.name, head)
            if member and head.startswith(_ZIP_MAGICS):
                raise UnsupportedFormatError(location, "zip inside a zip; not opened")
            if kind in (SourceFormat.RASTER, SourceFormat.NIFTI):
                study, series, instance = self._synthetic(path, data, member, kind)
            else:
                header = _read_dicom(path, data, member, known=kind is SourceFormat.DICOM)
                study, series, instance = header.study, header.series, header.instance
        except InputError as exc:
            self.rejected.append(exc)
            return
        except OSError as exc:
            self.rejected.append(InputError(location, f"cannot read file: {exc.strerror or exc}"))
            return
        self._keep(study, series, instance)

    def _synthetic(
        self, path: Path, data: bytes | None, member: str, kind: SourceFormat
    ) -> tuple[Study, Series, Instance]:
        shown = Path(f"{path}!{member}") if member else path
        if kind is SourceFormat.RASTER:
            info = read_raster_info(shown, data)
            rows, columns, frames, samples = info.rows, info.columns, 1, info.samples_per_pixel
        else:
            shape = read_nifti_shape(shown, data)
            frames = shape[0] if len(shape) == 3 else 1
            rows, columns, samples = shape[-2], shape[-1], 1
        digest = _sha256(path, data)
        instance = Instance(
            sop_instance_uid=uid_from(f"instance:{digest}"),
            sop_class_uid="",
            path=path,
            rows=rows,
            columns=columns,
            frames=frames,
            samples_per_pixel=samples,
            photometric="RGB" if samples == 3 else "MONOCHROME2",
            member=member,
            is_volume=kind is SourceFormat.NIFTI and frames > 1,
        )
        series = Series(
            series_instance_uid=uid_from(f"series:{digest}"),
            modality=self.modality,
            instances=(instance,),
            body_part=self.body_part,
            description=Path(member).name if member else path.name,
        )
        return Study(uid_from(f"study:{digest}"), (series,)), series, instance

    def _keep(self, study: Study, series: Series, instance: Instance) -> None:
        first = self.seen.get(instance.sop_instance_uid)
        if first is not None:
            self.notes.append(
                f"{instance.location}: same SOP Instance UID as {first.location}; kept the first"
            )
            return
        self.seen[instance.sop_instance_uid] = instance
        self.studies.setdefault(study.study_instance_uid, study)
        # Modality is part of the key: a series holds one modality (PS3.3 C.7.3.1.1.1),
        # and a report filed under its images' Series UID must not be routed as images.
        key = (study.study_instance_uid, series.series_instance_uid, series.modality)
        if key not in self.series and key[:2] in {k[:2] for k in self.series}:
            self.notes.append(
                f"{instance.location}: Series Instance UID shared by another modality; "
                f"kept as a separate {series.modality or 'unknown-modality'} series"
            )
        self.series.setdefault(key, series)
        self.instances.setdefault(key, []).append(instance)

    def result(self, caught: list[str]) -> ScanResult:
        grouped: dict[str, list[Series]] = {uid: [] for uid in self.studies}
        for key, series in self.series.items():
            instances = sorted(self.instances[key], key=_instance_order)
            grouped[key[0]].append(replace(series, instances=tuple(instances)))
        studies = tuple(
            replace(study, series=tuple(sorted(grouped[uid], key=_series_order)))
            for uid, study in self.studies.items()
        )
        return ScanResult(studies, tuple(self.rejected), tuple([*self.notes, *caught]))


def _read_dicom(path: Path, data: bytes | None, member: str, *, known: bool) -> DicomHeader:
    """Read a DICOM header; a file that is not DICOM and has no other known format is
    reported as an unsupported format rather than as bad DICOM."""
    try:
        return read_instance(path, data, member)
    except NotDicomError as exc:
        if known:
            raise
        location = f"{path}!{member}" if member else str(path)
        raise UnsupportedFormatError(location, "not DICOM, NIfTI, PNG or JPEG") from exc


def _instance_order(instance: Instance) -> tuple[int, int, str]:
    number = instance.instance_number
    return (number is None, number or 0, instance.location)


def _series_order(series: Series) -> tuple[bool, int]:
    return (series.series_number is None, series.series_number or 0)


def _sha256(path: Path, data: bytes | None) -> str:
    if data is not None:
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as fp:
        while chunk := fp.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
