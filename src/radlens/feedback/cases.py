"""Curation into cases: adjudicated feedback of one model -> de-identified images + ``cases.csv``.

``export_cases`` (``radlens feedback export MODEL -o DIR``) writes, for every finding of
the model (any version) whose readers' votes adjudicate to a label
(:mod:`radlens.feedback.adjudication`), a de-identified copy of its image
(``DIR/images/<hash>.dcm``, PS3.15 Annex E Basic Profile with radlens's four options,
:func:`radlens.privacy.deid.deidentify_dataset`) and one row of ``DIR/cases.csv``:

| column | what |
|---|---|
| ``file`` | the de-identified DICOM, relative to ``DIR`` (``images/<hash>.dcm``) |
| ``label`` | the adjudicated class: an index into the model card's ``labels`` (below) |
| ``site`` | a keyed pseudonym of the Station Name ("" when the file has none) [1] |
| ``scanner`` | Manufacturer and Manufacturer's Model Name ("" when absent) |
| ``patient_key`` | the patient's keyed pseudonym, the de-identified file's Patient ID |
| ``n_readers`` | readers who reviewed the finding |
| ``agreement`` | the share of them who voted the adjudicated label (3 decimals) |
| ``study_key`` | the de-identified Study Instance UID |
| ``finding_id`` | the finding's id in radlens (``/api/studies/{uid}`` lists it) |

[1] The CSV never names the station; the image itself keeps it when the de-identification
profile keeps device identity (radlens's default options do: Retain Device Identity).

**Label indices.** ``label`` indexes the card's ``labels``, the order of the model's logits
and of :mod:`radlens.io.datasets` class indices:

* binary: the finding present -> ``positive_index``; absent -> the other index. For a card
  with labels ``["malignant", "normal or benign"]`` and ``positive_index`` 0 (BreastMNIST),
  0 = the finding present, 1 = absent; for ``["NORMAL", "PNEUMONIA"]``, 1 = present. A
  relabel that names one of the card's labels gives that label's index;
* ordinal: the adjudicated grade (absent -> 0); a "present" without a grade is skipped;
* multiclass: the class the finding names when present, or the class a relabel names;
  an "absent" that names no class is skipped.

Multi-label, segmentation and detection models, 3D models and multi-frame images are not
exported (a row is one 2D image with one class). Unresolved findings (a tie), images no
longer stored and images withheld from de-identification (pixels that may show patient
data: ultrasound, secondary capture, burned-in annotation) are skipped, each with its
reason in the :class:`ExportResult`. Pseudonyms come from the storage folder's research key
(``store.research.research_key``), so the same patient, study and station keep theirs across
exports (and match ``/api/research``). The key never leaves the storage folder.

Example:
    >>> from radlens.feedback.records import ReaderCall
    >>> binary_index(ReaderCall(True), positive_index=0), binary_index(ReaderCall(False), 0)
    (0, 1)
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from radlens.errors import ConfigError, InputError
from radlens.feedback.adjudication import Adjudication, AdjudicationRule, adjudicate_all
from radlens.feedback.records import ReaderCall
from radlens.feedback.stored import feedback_records, instance_file
from radlens.models.card import ModelCard, Task
from radlens.privacy.audit import AuditEvent, AuditTrail
from radlens.privacy.deid import DeidKey, DeidState, burned_in_reason, deidentify_dataset
from radlens.store.db import Database
from radlens.store.files import read_stored
from radlens.store.research import research_key
from radlens.warning_scopes import ignoring

CASES_FILE = "cases.csv"
IMAGES_DIR = "images"
EXPORTED_TASKS = (Task.BINARY, Task.MULTICLASS, Task.ORDINAL)


@dataclass(frozen=True)
class Case:
    """One row of ``cases.csv`` (the columns in this order; see the module docstring)."""

    file: str
    label: int
    site: str
    scanner: str
    patient_key: str
    n_readers: int
    agreement: float
    study_key: str
    finding_id: str

    def __post_init__(self) -> None:
        if Path(self.file).is_absolute() or ".." in Path(self.file).parts:
            raise ValueError(f"file must be relative to the export folder: {self.file}")
        if self.label < 0 or self.n_readers < 1 or not 0 <= self.agreement <= 1:
            raise ValueError(f"invalid case row {self.finding_id}")


CASES_COLUMNS = tuple(f.name for f in fields(Case))
"""``file,label,site,scanner,patient_key,n_readers,agreement,study_key,finding_id``."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and what it left out (finding id -> reason)."""

    out_dir: Path
    cases: tuple[Case, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    n_images: int = 0


def write_cases(path: Path, cases: Iterable[Case]) -> None:
    """Write ``cases.csv`` (header + rows), atomically."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(CASES_COLUMNS)
        for case in cases:
            writer.writerow(astuple(case))
    partial.replace(path)


def read_cases(path: Path) -> list[Case]:
    """Read a ``cases.csv`` written by :func:`write_cases`.

    Raises:
        InputError: not that format (other columns, a value that does not parse).
    """
    try:
        with path.open(newline="", encoding="utf-8") as fp:
            reader = csv.DictReader(fp)
            if tuple(reader.fieldnames or ()) != CASES_COLUMNS:
                raise InputError(path, f"columns must be {','.join(CASES_COLUMNS)}")
            return [
                Case(
                    row["file"],
                    int(row["label"]),
                    row["site"],
                    row["scanner"],
                    row["patient_key"],
                    int(row["n_readers"]),
                    float(row["agreement"]),
                    row["study_key"],
                    row["finding_id"],
                )
                for row in reader
            ]
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(path, f"not a cases.csv: {type(exc).__name__}") from exc
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc


def binary_index(call: ReaderCall, positive_index: int) -> int:
    """The class index of a present/absent call for a binary model."""
    return positive_index if call.present else 1 - positive_index


def class_index(card: ModelCard, adjudication: Adjudication) -> tuple[int | None, str]:
    """The adjudicated label as an index into ``card.labels``, or None and why not."""
    call = adjudication.call
    if call is None:
        return None, "unresolved: the readers' votes tie"
    named = _label_index(card, call.label) if call.label else None
    if named is not None:
        return named, ""
    if card.task is Task.BINARY:
        return binary_index(call, card.positive_index), ""
    if card.task is Task.ORDINAL:
        grade = call.grade if call.grade is not None else (None if call.present else 0)
        if grade is None:
            return None, "present, but no reader gave a grade"
        if not 0 <= grade < len(card.labels):
            return None, f"grade {grade} is not one of the card's {len(card.labels)} grades"
        return grade, ""
    if card.task is Task.MULTICLASS:
        if not call.present:
            return None, "absent, and no reader named the class instead"
        shown = adjudication.shown
        index = _label_index(card, shown.label)
        if index is None:
            index = _label_index(card, shown.code)
        if index is None:
            return None, f"the finding's class {shown.label!r} is not in the card"
        return index, ""
    return None, f"{card.task} models are not exported"


def export_cases(
    db: Database,
    storage_dir: Path,
    card: ModelCard,
    out_dir: Path,
    rule: AdjudicationRule | str = AdjudicationRule.MAJORITY,
    senior_readers: Sequence[str] = (),
    key: DeidKey | None = None,
    audit: AuditTrail | None = None,
    user: str = "",
) -> ExportResult:
    """De-identified images and ``cases.csv`` of the adjudicated feedback on ``card``'s
    model (every version), in ``out_dir`` (see the module docstring).

    Args:
        key: the de-identification key; by default the storage folder's research key.
        audit: when given, one ``deidentified-exported`` record per study exported, for
            ``user``.

    Raises:
        ConfigError: a model that is not a 2D classifier (binary, multiclass, ordinal).

    Example:
        >>> export_cases(db, storage, card, Path("cases"))  # doctest: +SKIP
    """
    if card.task not in EXPORTED_TASKS or card.applies_to.dims != 2:
        raise ConfigError(
            f"{card.name}: a {card.applies_to.dims}D {card.task} model; feedback export "
            "supports 2D classification models (binary, multiclass, ordinal)"
        )
    state = DeidState(key or research_key(storage_dir))
    judged = adjudicate_all(feedback_records(db, card.name), rule, frozenset(senior_readers))
    (out_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    written: dict[str, _Image | str] = {}  # SOP Instance UID -> the image, or why not
    cases: list[Case] = []
    skipped: dict[str, str] = {}
    exported: set[str] = set()
    for (study_uid, finding_id), adjudication in sorted(judged.items()):
        index, reason = class_index(card, adjudication)
        if index is None:
            skipped[finding_id] = reason
            continue
        sop = adjudication.shown.sop_instance_uid
        if sop not in written:
            written[sop] = _export_image(db, storage_dir, sop, out_dir, state)
        image = written[sop]
        if isinstance(image, str):
            skipped[finding_id] = image
            continue
        cases.append(
            Case(
                image.file,
                index,
                image.site,
                image.scanner,
                image.patient_key,
                adjudication.n_readers,
                round(adjudication.agreement, 3),
                image.study_key,
                finding_id,
            )
        )
        exported.add(study_uid)
    cases.sort(key=lambda c: (c.study_key, c.file, c.finding_id))
    write_cases(out_dir / CASES_FILE, cases)
    if audit is not None:
        for study_uid in sorted(exported):
            audit.record(AuditEvent.DEIDENTIFIED_EXPORTED, user_id=user, study_uid=study_uid)
    n_images = sum(1 for image in written.values() if not isinstance(image, str))
    return ExportResult(out_dir, tuple(cases), skipped, n_images)


@dataclass(frozen=True)
class _Image:
    file: str
    site: str
    scanner: str
    patient_key: str
    study_key: str


def _export_image(
    db: Database, storage_dir: Path, sop_uid: str, out_dir: Path, state: DeidState
) -> _Image | str:
    """Write the de-identified copy of one stored image; a reason when it is not written."""
    stored = instance_file(db, sop_uid) if sop_uid else None
    if stored is None:
        return "the image is no longer stored"
    _, path, frames = stored
    if frames > 1:
        return "a multi-frame image; cases.csv holds single images"
    location = f"instance {hashlib.sha256(sop_uid.encode()).hexdigest()[:12]}"
    try:
        data = read_stored(storage_dir, storage_dir / path, db.keys)
        with ignoring():  # intake accepted it; values are not judged here
            ds = dcmread(io.BytesIO(data))
    except (InputError, OSError, InvalidDicomError) as exc:
        return f"the stored image cannot be read ({type(exc).__name__})"
    if (reason := burned_in_reason(ds)) is not None:
        return f"withheld from de-identified export: {reason}"
    site, scanner = _equipment(ds, state)
    try:
        deidentify_dataset(ds, state, location)
    except InputError as exc:
        return f"withheld from de-identified export: {exc.reason}"
    name = hashlib.sha256(str(ds.SOPInstanceUID).encode()).hexdigest()[:32]
    relative = f"{IMAGES_DIR}/{name}.dcm"
    target = out_dir / relative
    partial = target.with_name(f".{target.name}.partial")
    try:
        ds.save_as(partial, enforce_file_format=True)
        partial.replace(target)
    except (OSError, ValueError, TypeError) as exc:
        partial.unlink(missing_ok=True)
        return f"the de-identified image cannot be written ({type(exc).__name__})"
    return _Image(relative, site, scanner, str(ds.PatientID), str(ds.StudyInstanceUID))


def _equipment(ds: Dataset, state: DeidState) -> tuple[str, str]:
    """(site pseudonym, scanner) from the header before de-identification removes them."""
    station = str(ds.get("StationName", "") or "").strip()
    scanner = " ".join(
        str(ds.get(k, "") or "").strip() for k in ("Manufacturer", "ManufacturerModelName")
    ).strip()
    return (state.dummy(station) if station else "", scanner)


def _label_index(card: ModelCard, text: str) -> int | None:
    wanted = text.strip().casefold()
    for index, label in enumerate(card.labels):
        if label.casefold() == wanted or label.casefold().replace(" ", "_") == wanted:
            return index
    return None
