"""De-identify DICOM: one data set (:func:`deidentify_dataset`) or files, folders and zips
(:func:`deidentify_tree`), by the PS3.15 Annex E Basic Application Level Confidentiality
Profile with four options (see :mod:`radlens.privacy.profile` for the per-attribute actions).

What one data set goes through, in order:

* private tags, group lengths, overlay planes (60xx) and public tags unknown to the data
  dictionary are removed, at every depth;
* every other attribute gets its Table E.1-1 action (X remove, Z empty, D dummy, K keep,
  C clean, U new UID), inside sequences too;
* UIDs (U rows, and every other UID that is not a class, transfer syntax or well-known UID)
  become ``2.25.<keyed hash>``: the same input UID gives the same output UID in file meta,
  data set and nested references, across the run and across runs with the same key;
* dates move back by one whole-day offset per patient (keyed hash of Issuer of Patient ID +
  Patient ID), so intervals between a patient's studies survive and times do not change;
* descriptors (Clean Descriptors option) lose every word that names the patient, a
  physician, an identifier or the institution, and anything shaped like a date or a long
  number;
* Patient ID and Patient's Name become a keyed pseudonym (``RL`` + 14 base32 characters);
* Patient Identity Removed (0012,0062) = YES, Longitudinal Temporal Information Modified
  (0028,0303), De-identification Method (0012,0063) and its Code Sequence (0012,0064) with
  DCM 113100 and one code per option are written; the file meta is made anew.

The key (the secret of every keyed hash) comes from :func:`read_key`: a key file, else the
``RADLENS_DEID_KEY`` environment variable, else a one-time random key (pseudonyms then match
no other run). Without the key nobody can map pseudonyms or UIDs back, or recompute them.

Refused, never written (typed errors, ``"<file>: <reason>"``, no patient data):

* images whose pixels may show patient data (:class:`~radlens.errors.BurnedInAnnotationError`,
  quarantined): Burned In Annotation YES, Recognizable Visual Features YES, ultrasound,
  secondary capture, screen saves and derived secondary images (:func:`burned_in_reason`);
* structured reports and encapsulated documents, whose free text this profile does not
  clean, elements that cannot be interpreted, and pixel data that cannot be decoded
  (:class:`~radlens.errors.DeidentificationError` or the reader's own typed error).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from radlens import __version__
from radlens.domain.imaging import Instance, Study
from radlens.errors import (
    BurnedInAnnotationError,
    ConfigError,
    DeidentificationError,
    InputError,
    UnsupportedFormatError,
)
from radlens.io.archive import DEFAULT_MAX_UNZIPPED_BYTES
from radlens.io.dicom import decode_instance, read_dataset
from radlens.io.scan import scan
from radlens.privacy.actions import (
    ELEMENT_ERRORS,
    Walker,
    identifying_values,
    scrubber,
    values,
)
from radlens.privacy.profile import ALL_OPTIONS, DeidOption, method_codes
from radlens.warning_scopes import recording

KEY_ENV = "RADLENS_DEID_KEY"
"""Environment variable holding the de-identification key (when no key file is given)."""

MIN_KEY_BYTES = 16
_SHIFT_DAYS = (366, 3652)  # each patient's dates move back by 1 to 10 years
_PSEUDONYM_PREFIX = "RL"
_PSEUDONYM_CHARS = 14

# Ultrasound and secondary capture SOP classes (PS3.4 B.5), current and retired.
_ULTRASOUND = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",
        "1.2.840.10008.5.1.4.1.1.6.2",
        "1.2.840.10008.5.1.4.1.1.6",
        "1.2.840.10008.5.1.4.1.1.3.1",
        "1.2.840.10008.5.1.4.1.1.3",
    }
)
_SECONDARY_CAPTURE = frozenset(
    {f"1.2.840.10008.5.1.4.1.1.7{suffix}" for suffix in ("", ".1", ".2", ".3", ".4")}
)
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# pydicom quotes the offending value, which may be a name or a date: keep it out.
_INVALID_VALUE = re.compile(r"Invalid value for VR (\w+):.*?(?:for each VR\.|$)", re.DOTALL)


@dataclass(frozen=True)
class DeidKey:
    """The secret behind every pseudonym, UID and date offset of a run.

    Attributes:
        secret: the key bytes (never shown).
        source: where it came from: ``"key file"``, ``"RADLENS_DEID_KEY"``, ``"one-time"``
            (random; pseudonyms match no other run) or ``"given"`` (made in code).
    """

    secret: bytes = field(repr=False)
    source: str = "given"

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise ConfigError(
                f"de-identification key from {self.source} is {len(self.secret)} bytes; "
                f"use at least {MIN_KEY_BYTES} (e.g. `openssl rand -hex 32 > deid.key`)"
            )

    def digest(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value`` for one ``purpose`` (so purposes never collide)."""
        message = f"{purpose}\x00{value}".encode("utf-8", "surrogateescape")
        return hmac.new(self.secret, message, hashlib.sha256).digest()


def read_key(key_file: Path | None = None, environ: Mapping[str, str] | None = None) -> DeidKey:
    """The de-identification key: the key file, else ``$RADLENS_DEID_KEY``, else one-time.

    The key file's bytes are the key (surrounding whitespace stripped); keep it out of the
    data it protects. The same key gives the same pseudonyms, UIDs and date offsets.

    Raises:
        ConfigError: the key file cannot be read, or the key is shorter than 16 bytes.

    Example:
        >>> read_key(environ={"RADLENS_DEID_KEY": "0123456789abcdef0123"}).source
        'RADLENS_DEID_KEY'
    """
    if key_file is not None:
        try:
            secret = Path(key_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(
                f"{key_file}: cannot read the key file: {exc.strerror or exc}"
            ) from exc
        return DeidKey(secret, "key file")
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        return DeidKey(env[KEY_ENV].strip().encode(), KEY_ENV)
    return DeidKey(secrets.token_bytes(32), "one-time")


@dataclass(frozen=True)
class DeidProfile:
    """Which Annex E options apply (all four by default)."""

    options: frozenset[DeidOption] = ALL_OPTIONS

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", frozenset(DeidOption(o) for o in self.options))


@dataclass
class DeidState:
    """What one run remembers: the key, the profile, the UID map and each patient's offset.

    Attributes:
        key: the run's key.
        profile: the options applied.
        uids: input UID -> output UID, for every UID replaced so far.
        offsets_days: pseudonymous Patient ID -> the (negative) whole-day date shift.
    """

    key: DeidKey
    profile: DeidProfile = field(default_factory=DeidProfile)
    uids: dict[str, str] = field(default_factory=dict, repr=False)
    offsets_days: dict[str, int] = field(default_factory=dict, repr=False)

    def new_uid(self, uid: str) -> str:
        """The output UID for an input UID: ``2.25.`` + a keyed hash as a version-8 UUID.

        Example:
            >>> state = DeidState(DeidKey(b"k" * 16))
            >>> state.new_uid("1.2.3") == state.new_uid("1.2.3") != "1.2.3"
            True
        """
        uid = uid.strip().rstrip("\x00")
        if uid not in self.uids:
            number = int.from_bytes(self.key.digest("uid", uid)[:16], "big")
            # RFC 9562: version 8 (custom), variant 10 - a valid UUID for the 2.25 root.
            number = (number & ~(0xF << 76)) | (0x8 << 76)
            number = (number & ~(0x3 << 62)) | (0x2 << 62)
            self.uids[uid] = f"2.25.{number}"
        return self.uids[uid]

    def pseudonym(self, issuer: str, patient_id: str) -> str:
        """The pseudonymous Patient ID of (Issuer of Patient ID, Patient ID)."""
        digest = self.key.digest("patient", f"{issuer.strip()}\x00{patient_id.strip()}")
        return _PSEUDONYM_PREFIX + base64.b32encode(digest).decode()[:_PSEUDONYM_CHARS]

    def offset_days(self, pseudonym: str) -> int:
        """The patient's date shift in days (negative: back in time)."""
        if pseudonym not in self.offsets_days:
            low, high = _SHIFT_DAYS
            number = int.from_bytes(self.key.digest("date-offset", pseudonym)[:8], "big")
            self.offsets_days[pseudonym] = -(low + number % (high - low + 1))
        return self.offsets_days[pseudonym]

    def dummy(self, value: str) -> str:
        """A short keyed stand-in for an identifier, the same for the same value."""
        digest = self.key.digest("dummy", value.strip())
        return _PSEUDONYM_PREFIX + base64.b32encode(digest).decode()[:12]


def burned_in_reason(ds: Dataset) -> str | None:
    """Why an image's pixels may show patient data, or None (PS3.15 E.1.1, 7).

    Objects without pixel data are never caught. An explicit Burned In Annotation NO does
    not release an image of a kind that usually carries text in its pixels.

    Example:
        >>> ds = Dataset(); ds.PixelData = b"\\0\\0"; ds.Modality = "US"
        >>> burned_in_reason(ds)
        'ultrasound image: text is usually burned into its pixels'
    """
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        return None
    if _text(ds, "BurnedInAnnotation").upper() == "YES":
        return "Burned In Annotation (0028,0301) is YES"
    if _text(ds, "RecognizableVisualFeatures").upper() == "YES":
        return "Recognizable Visual Features (0028,0302) is YES: the image may show a face"
    sop_class = _text(ds, "SOPClassUID")
    if _text(ds, "Modality").upper() == "US" or sop_class in _ULTRASOUND:
        return "ultrasound image: text is usually burned into its pixels"
    if sop_class in _SECONDARY_CAPTURE:
        return "secondary capture: a captured screen or document may show patient data"
    image_type = [str(v).strip().upper() for v in values(ds.get("ImageType", None))]
    if any("SCREEN" in v or v == "SAVE" for v in image_type):
        return "screen save (Image Type): a captured screen may show patient data"
    if image_type[:2] == ["DERIVED", "SECONDARY"]:
        return "derived secondary image (Image Type DERIVED\\SECONDARY): may carry annotations"
    return None


def deidentify_dataset(ds: Dataset, state: DeidState, location: str = "") -> None:
    """De-identify one data set in place (file meta made anew); pixel data are untouched.

    Burned-in annotation is not looked at here: call :func:`burned_in_reason` first (as
    :func:`deidentify_tree` does).

    Args:
        ds: the data set, read with its pixel data when it is to be written.
        state: the run's key, options, UID map and date offsets.
        location: the file, for error messages.

    Raises:
        DeidentificationError: a structured report or encapsulated document, an element
            that cannot be interpreted, or no SOP Class / Instance UID.

    Example:
        >>> ds = Dataset(); ds.PatientName = "Doe^Jane"; ds.PatientID = "123"
        >>> ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"; ds.SOPInstanceUID = "1.2.3"
        >>> deidentify_dataset(ds, DeidState(DeidKey(b"k" * 16)))
        >>> ds.PatientIdentityRemoved, str(ds.PatientName) == ds.PatientID != "123"
        ('YES', True)
    """
    _refuse_unsupported(ds, location)
    options = state.profile.options
    issuer, patient_id = _text(ds, "IssuerOfPatientID"), _text(ds, "PatientID")
    pseudonym = state.pseudonym(issuer, patient_id)
    walker = Walker(
        new_uid=state.new_uid,
        dummy=state.dummy,
        options=options,
        offset=timedelta(days=state.offset_days(pseudonym)),
        scrub=scrubber(identifying_values(ds, location)),
        location=location,
    )
    syntax = _transfer_syntax(ds)
    walker.walk(ds)
    ds.PatientID = pseudonym
    ds.PatientName = pseudonym
    _mark(ds, options)
    _new_file_meta(ds, syntax, location)


@dataclass(frozen=True)
class DeidOutput:
    """One file written: where it came from (operator's eyes only) and where it went."""

    source: str
    path: Path


@dataclass(frozen=True)
class DeidRun:
    """What :func:`deidentify_tree` did.

    Attributes:
        written: one entry per de-identified file.
        quarantined: images held back because their pixels may show patient data.
        refused: inputs that could not be read or de-identified safely.
        warnings: read and write notes that did not stop a file.
        key_source: where the key came from (``"one-time"``: pseudonyms match no other run).
    """

    written: tuple[DeidOutput, ...]
    quarantined: tuple[BurnedInAnnotationError, ...] = ()
    refused: tuple[InputError, ...] = ()
    warnings: tuple[str, ...] = ()
    key_source: str = ""

    @property
    def exit_code(self) -> int:
        """0 when every input was written, 2 when any was quarantined or refused."""
        return 2 if self.quarantined or self.refused else 0


def deidentify_tree(
    inputs: Sequence[Path],
    out_dir: Path,
    state: DeidState,
    *,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
) -> DeidRun:
    """De-identify every DICOM file in files, folders and zips into ``out_dir``.

    Files are written as ``<study>/<series>/<instance>.dcm``, each name a hash of the new
    UID, so no name comes from an input value. Nothing written holds an input path or the
    UID map; the returned run lists the inputs for the operator.

    Raises:
        InputError: an input path does not exist, nothing readable was found, or a single
            file given alone cannot be read (as :func:`radlens.io.scan.scan`).

    Example:
        >>> state = DeidState(read_key(Path("deid.key")))  # doctest: +SKIP
        >>> run = deidentify_tree([Path("incoming/")], Path("deid/"), state)  # doctest: +SKIP
        >>> len(run.written), [q.reason for q in run.quarantined]  # doctest: +SKIP
        (17, ['quarantined, not written: ultrasound image: text is usually burned into its pixels'])
    """
    written: list[DeidOutput] = []
    quarantined: list[BurnedInAnnotationError] = []
    refused: list[InputError] = []
    with recording() as caught:
        found = scan(inputs, max_unzipped_bytes=max_unzipped_bytes)
        refused.extend(found.rejected)
        for instance in _instances(found.studies):
            try:
                path = _deidentify_instance(instance, Path(out_dir), state)
            except BurnedInAnnotationError as exc:
                quarantined.append(exc)
            except InputError as exc:
                refused.append(exc)
            else:
                written.append(DeidOutput(instance.location, path))
    notes = [*found.warnings, *(_withheld(str(w.message)) for w in caught)]
    return DeidRun(
        tuple(written),
        tuple(quarantined),
        tuple(refused),
        tuple(dict.fromkeys(notes)),
        state.key.source,
    )


def _instances(studies: Sequence[Study]) -> Iterator[Instance]:
    for study in studies:
        for series in study.series:
            yield from series.instances


def _deidentify_instance(instance: Instance, out_dir: Path, state: DeidState) -> Path:
    location = instance.location
    if not instance.sop_class_uid:
        raise UnsupportedFormatError(
            location, "only DICOM objects with a SOP Class UID are de-identified"
        )
    ds = read_dataset(instance, pixels=True)
    reason = burned_in_reason(ds)
    if reason is not None:
        raise BurnedInAnnotationError(location, f"quarantined, not written: {reason}")
    _refuse_unsupported(ds, location)
    if instance.has_pixels:
        decode_instance(instance)  # a file nobody can view cannot be checked either
    deidentify_dataset(ds, state, location)
    return _write(ds, out_dir, location)


def _write(ds: Dataset, out_dir: Path, location: str) -> Path:
    names = [
        hashlib.sha256(str(ds.get(keyword, "")).encode()).hexdigest()
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    ]
    folder = out_dir / names[0][:16] / names[1][:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{names[2][:32]}.dcm"
    partial = path.with_suffix(".dcm.partial")
    try:
        ds.save_as(partial, enforce_file_format=True)
    except ELEMENT_ERRORS as exc:
        partial.unlink(missing_ok=True)
        raise DeidentificationError(
            location, f"cannot write the de-identified file ({type(exc).__name__})"
        ) from exc
    partial.replace(path)
    return path


def _refuse_unsupported(ds: Dataset, location: str) -> None:
    if "ContentSequence" in ds:
        raise DeidentificationError(
            location,
            "structured report: the free text of its content tree is not de-identified "
            "(the Clean Structured Content option is not implemented)",
        )
    if "EncapsulatedDocument" in ds:
        raise DeidentificationError(
            location, "encapsulated document (PDF, CDA, ...): its content is not de-identified"
        )
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        if not _text(ds, keyword):
            raise DeidentificationError(location, f"no {keyword}; cannot write a valid file")


def _mark(ds: Dataset, options: frozenset[DeidOption]) -> None:
    """Patient Identity Removed, the method and its codes (PS3.15 E.1.1, 8 and E.1.2)."""
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES in options else "REMOVED"
    )
    codes = method_codes(options)
    ds.DeidentificationMethod = [f"radlens {__version__}", *(meaning for _, meaning in codes)]
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = DicomSequence(items)


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID", "") if meta is not None else ""
    if syntax:
        return UID(str(syntax))
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


def _new_file_meta(ds: Dataset, syntax: UID, location: str) -> None:
    """Made anew, so nothing from the source's meta (AE titles, old UIDs) survives."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"RADLENS_{__version__}"[:16]
    ds.file_meta = meta
    if not syntax.is_transfer_syntax:
        raise DeidentificationError(location, "file meta names no known transfer syntax")


def _withheld(message: str) -> str:
    """One line, without the values pydicom quotes (they may be patient data)."""
    message = _INVALID_VALUE.sub(r"invalid value for VR \1 (value withheld)", message)
    return " ".join(message.split())


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()
