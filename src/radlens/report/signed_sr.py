"""``to_signed_sr`` / ``read_signed_sr``: a radiologist's signed report as a DICOM SR.

The document is an Enhanced SR (PS3.3 A.35.2), the least capable SR class that holds a
narrative report, so more archives accept it. Its content is a Basic Diagnostic Imaging
Report (PS3.16 TID 2000):

- the title "Diagnostic Imaging Report" (LOINC 18748-4, CID 7000), the generic title that
  TID 2000 names for reports whose title does not say the procedure; "Procedure reported"
  says it (the study's Procedure Code Sequence, else per modality, as in ``report/sr.py``);
- language English; observation context (TID 1001): a Person observer (TID 1003) named
  after the signing account, with its login name and the site as organization;
- one section per heading of the signed text (:func:`split_sections`), a CONTAINER with a
  CID 7001 heading holding one TEXT item with a CID 7002 concept (TID 2002): "Findings" /
  "Finding", "Impressions" / "Impression", and the others in :data:`HEADINGS`. Text before
  the first heading, or a text with no heading at all, is a "Findings" section.

The SR Document General module says the report is signed: Completion Flag ``COMPLETE``,
Verification Flag ``VERIFIED``, Preliminary Flag ``FINAL``, and a Verifying Observer
Sequence with the signer's name, the site and Verification DateTime = the signing time
(with its UTC offset). Content Date and Time are the signing time too (server local time,
as DICOM dates without an offset are). The study's stored instances are its evidence
(Current Requested Procedure Evidence Sequence); patient and study attributes come from
them (highdicom copies them); it gets a new series, General Equipment from
``report/equipment.py``. Text is UTF-8 (ISO_IR 192): a signed text may hold any character.

Its UIDs derive from the study and the signing time (:func:`signed_report_uids`), so a
document made again for the same signature is the same instance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from highdicom.sr import (
    CodeContentItem,
    CodedConcept,
    ContainerContentItem,
    ContentSequence,
    EnhancedSR,
    LanguageOfContentItemAndDescendants,
    ObservationContext,
    ObserverContext,
    PersonObserverIdentifyingAttributes,
    RelationshipTypeValues,
    TextContentItem,
    ValueTypeValues,
)
from highdicom.sr.utils import find_content_items
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid
from pydicom.valuerep import DT, PersonName

from radlens.domain.reports import SignedReport
from radlens.errors import InputError
from radlens.report.equipment import (
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    MODEL_NAME,
    SOFTWARE_VERSIONS,
)
from radlens.report.sr import procedures_reported
from radlens.warning_scopes import ignoring

SERIES_DESCRIPTION = "radlens signed report"
SERIES_NUMBER = 9905
DEFAULT_ORGANIZATION = "radlens site"
REPORT_TITLE = CodedConcept("18748-4", "LN", "Diagnostic Imaging Report")
ENGLISH = CodedConcept("en-US", "RFC5646", "English (United States)")
UTF8 = "ISO_IR 192"
_PERSON_OBSERVER_NAME = CodedConcept("121008", "DCM", "Person Observer Name")
_UID_ENTROPY = "radlens signed report"
_COPIED_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)


@dataclass(frozen=True)
class Heading:
    """A report heading: the section container's concept (CID 7001) and its text's (CID 7002)."""

    section: CodedConcept
    element: CodedConcept


_FINDINGS = Heading(
    CodedConcept("59776-5", "LN", "Findings"), CodedConcept("121071", "DCM", "Finding")
)
_INDICATIONS = Heading(
    CodedConcept("18785-6", "LN", "Indications for Procedure"),
    CodedConcept("55115-0", "LN", "Request"),
)
_CLINICAL = Heading(
    CodedConcept("55752-0", "LN", "Clinical Information"), CodedConcept("11329-0", "LN", "History")
)
_PROCEDURE = Heading(
    CodedConcept("55111-9", "LN", "Current Procedure Descriptions"),
    CodedConcept("121065", "DCM", "Procedure Description"),
)
_COMPARISON = Heading(
    CodedConcept("18834-2", "LN", "Previous Findings"),
    CodedConcept("121069", "DCM", "Previous Finding"),
)
_IMPRESSIONS = Heading(
    CodedConcept("19005-8", "LN", "Impressions"), CodedConcept("121073", "DCM", "Impression")
)
_CONCLUSIONS = Heading(
    CodedConcept("55110-1", "LN", "Conclusions"), CodedConcept("121077", "DCM", "Conclusion")
)
_RECOMMENDATIONS = Heading(
    CodedConcept("18783-1", "LN", "Recommendations"),
    CodedConcept("121075", "DCM", "Recommendation"),
)
_SUMMARY = Heading(
    CodedConcept("55112-7", "LN", "Summary"), CodedConcept("55112-7", "LN", "Summary")
)

HEADINGS: dict[str, Heading] = {
    "indication": _INDICATIONS,
    "indications": _INDICATIONS,
    "clinical indication": _INDICATIONS,
    "indications for procedure": _INDICATIONS,
    "reason for exam": _INDICATIONS,
    "reason for examination": _INDICATIONS,
    "reason for study": _INDICATIONS,
    "history": _CLINICAL,
    "clinical history": _CLINICAL,
    "clinical information": _CLINICAL,
    "technique": _PROCEDURE,
    "procedure": _PROCEDURE,
    "examination": _PROCEDURE,
    "comparison": _COMPARISON,
    "comparisons": _COMPARISON,
    "previous findings": _COMPARISON,
    "finding": _FINDINGS,
    "findings": _FINDINGS,
    "impression": _IMPRESSIONS,
    "impressions": _IMPRESSIONS,
    "conclusion": _CONCLUSIONS,
    "conclusions": _CONCLUSIONS,
    "recommendation": _RECOMMENDATIONS,
    "recommendations": _RECOMMENDATIONS,
    "summary": _SUMMARY,
}
"""Heading words (lower case) -> section. The draft's (``report/compose.py``) and the
usual dictation headings; any other heading line stays text of its section."""

# "## Findings" (Markdown, any level), "FINDINGS:" or "Findings:" alone on its line, or
# "IMPRESSION: text" in capitals with the text on the same line.
_MARKDOWN = re.compile(r"^ {0,3}#{1,6}\s+(?P<title>[^#\n]+?)\s*:?\s*#*\s*$")
_LABEL = re.compile(r"^\s*(?P<title>[A-Za-z][A-Za-z ]{0,40}?)\s*:\s*(?P<rest>.*?)\s*$")


@dataclass(frozen=True)
class ReportSection:
    """One section of a report: its heading (a CID 7001 meaning) and its text."""

    heading: str
    text: str

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a report section has text")


@dataclass(frozen=True)
class SignedSrRecord:
    """A radlens signed-report SR, as read back.

    Attributes:
        sections: the report's sections in document order.
        observer_name: the Person Observer Name of the content (the signer's account).
        verifying_observer_name: the Verifying Observer Name (the same account).
        verifying_organization: the Verifying Organization (the site).
        verified_at: the Verification DateTime, time-zone aware.
        completion: the Completion Flag (``COMPLETE``).
        verification: the Verification Flag (``VERIFIED``).
        evidence: SOP Instance UIDs of the Current Requested Procedure Evidence Sequence.
    """

    sections: tuple[ReportSection, ...]
    observer_name: str
    verifying_observer_name: str
    verifying_organization: str
    verified_at: datetime
    completion: str
    verification: str
    evidence: tuple[str, ...]

    @property
    def text(self) -> str:
        """The report as Markdown: each section under its heading."""
        return "\n\n".join(f"## {s.heading}\n\n{s.text}" for s in self.sections)


def split_sections(text: str) -> list[ReportSection]:
    """The sections of a report text, in order, under the headings of :data:`HEADINGS`.

    A heading is a Markdown heading (``## Findings``), a heading word alone on its line
    with a colon (``Findings:``), or one in capitals followed by its text
    (``IMPRESSION: No acute disease.``). Other lines, other headings included, are the
    text of the section they are in; text before the first heading, or a text without
    one, is "Findings". Sections without text are left out.

    Example:
        >>> text = "FINDINGS:\\nClear.\\nIMPRESSION: Normal."
        >>> [(s.heading, s.text) for s in split_sections(text)]
        [('Findings', 'Clear.'), ('Impressions', 'Normal.')]
        >>> [(s.heading, s.text) for s in split_sections("No acute disease.")]
        [('Findings', 'No acute disease.')]
    """
    chunks: list[tuple[Heading, list[str]]] = [(_FINDINGS, [])]
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        found = _heading(line)
        if found is None:
            chunks[-1][1].append(line)
        else:
            heading, rest = found
            chunks.append((heading, [rest] if rest else []))
    sections = [
        ReportSection(str(heading.section.meaning), body)
        for heading, lines in chunks
        if (body := _body(lines))
    ]
    if not sections and text.strip():  # headings only: keep the text as it is
        sections = [ReportSection(str(_FINDINGS.section.meaning), text.strip())]
    return sections


def signed_report_uids(study_uid: str, signed_at: datetime) -> tuple[str, str]:
    """Series and SOP Instance UIDs of the SR of the report signed at ``signed_at``.

    Derived from both, so the same signature always gives the same instance.

    Example:
        >>> at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
        >>> signed_report_uids("1.2.3", at) == signed_report_uids("1.2.3", at)
        True
    """
    when = signed_at.astimezone(UTC).isoformat()
    return (
        str(generate_uid(entropy_srcs=[_UID_ENTROPY, "series", study_uid, when])),
        str(generate_uid(entropy_srcs=[_UID_ENTROPY, "instance", study_uid, when])),
    )


def to_signed_sr(
    sources: Sequence[Dataset],
    report: SignedReport,
    organization: str = DEFAULT_ORGANIZATION,
) -> EnhancedSR:
    """An Enhanced SR (TID 2000) of ``report``, signed, in the study of ``sources``.

    ``sources`` are the study's instances (headers are enough): the evidence, and where
    the patient and study attributes come from.

    Raises:
        InputError: no sources, sources from several studies, a report without a signer,
            or sources lacking what the SR copies.

    Example:
        >>> report = SignedReport("IMPRESSION: Normal.", datetime.now(UTC), "reader")
        >>> read_signed_sr(to_signed_sr([cr], report)).sections[0].text  # doctest: +SKIP
        'Normal.'
    """
    if not sources:
        raise InputError(None, "no source images: a signed report SR joins their study")
    studies = {str(s.get("StudyInstanceUID", "")) for s in sources}
    if len(studies) != 1 or "" in studies:
        raise InputError(None, "source images must all belong to one study")
    if not report.signed_by:
        raise InputError(None, "a signed report SR needs the signer's account name")
    [study_uid] = studies
    series_uid, sop_uid = signed_report_uids(study_uid, report.signed_at)
    signer = _person_name(report.signed_by)
    local = report.signed_at.astimezone()
    procedures = procedures_reported(sources)
    try:
        content = _content(report.text, signer, report.signed_by, organization, procedures)
        with ignoring():  # highdicom notes on source attributes it copies
            sr = EnhancedSR(
                evidence=[_with_type2(sources[0]), *sources[1:]],
                content=content,
                series_instance_uid=series_uid,
                series_number=SERIES_NUMBER,
                sop_instance_uid=sop_uid,
                instance_number=1,
                manufacturer=MANUFACTURER,
                manufacturer_model_name=MODEL_NAME,
                software_versions=SOFTWARE_VERSIONS,
                device_serial_number=DEVICE_SERIAL_NUMBER,
                series_description=SERIES_DESCRIPTION,
                is_complete=True,
                is_final=True,
                is_verified=True,
                verifying_observer_name=signer,
                verifying_organization=organization,
                performed_procedure_codes=procedures,
                content_date=local.date(),
                content_time=local.time(),
                specific_character_set=UTF8,
            )
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(None, f"cannot make a signed report SR from these sources: {exc}") from exc
    # highdicom stamps the verification with the time it runs; the signature is older.
    sr.VerifyingObserverSequence[0].VerificationDateTime = DT(report.signed_at.astimezone(UTC))
    return sr


def read_signed_sr(dataset: Dataset) -> SignedSrRecord:
    """The sections, signer and verification of a radlens signed-report SR.

    Raises:
        InputError: ``dataset`` is not a TID 2000 Diagnostic Imaging Report with a
            verifying observer.
    """
    try:
        sr = EnhancedSR.from_dataset(dataset)
        title = sr.ConceptNameCodeSequence[0]
        if (str(title.CodeValue), str(title.CodingSchemeDesignator)) != (
            REPORT_TITLE.value,
            REPORT_TITLE.scheme_designator,
        ):
            raise ValueError(f"the title is {title.CodeMeaning!r}")
        verifier = sr.VerifyingObserverSequence[0]
        sections = tuple(
            ReportSection(
                str(container.ConceptNameCodeSequence[0].CodeMeaning), str(item.TextValue)
            )
            for container in find_content_items(sr, value_type=ValueTypeValues.CONTAINER)
            for item in find_content_items(container, value_type=ValueTypeValues.TEXT)
        )
        [observer] = find_content_items(
            sr, name=_PERSON_OBSERVER_NAME, value_type=ValueTypeValues.PNAME
        )
        record = SignedSrRecord(
            sections=sections,
            observer_name=_account(observer.PersonName),
            verifying_observer_name=_account(verifier.VerifyingObserverName),
            verifying_organization=str(verifier.VerifyingOrganization),
            verified_at=_aware(DT(verifier.VerificationDateTime)),
            completion=str(sr.CompletionFlag),
            verification=str(sr.VerificationFlag),
            evidence=tuple(str(uids[2]) for uids in sr.get_evidence(current_procedure_only=True)),
        )
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise InputError(None, f"not a radlens signed report SR: {exc}") from exc
    return record


def _heading(line: str) -> tuple[Heading, str] | None:
    """The heading a line opens and the text after it on the line, or None."""
    markdown = _MARKDOWN.match(line)
    if markdown:
        heading = HEADINGS.get(_words(markdown.group("title")))
        return None if heading is None else (heading, "")
    bare = line.strip()
    if bare.isupper() and _words(bare) in HEADINGS:  # "FINDINGS" alone on its line
        return HEADINGS[_words(bare)], ""
    label = _LABEL.match(line)
    if label:
        title, rest = label.group("title"), label.group("rest")
        heading = HEADINGS.get(_words(title))
        if heading is not None and (not rest or title.isupper()):
            return heading, rest
    return None


def _body(lines: list[str]) -> str:
    """The lines without the blank ones around them; "" when all are blank."""
    kept = [i for i, line in enumerate(lines) if line.strip()]
    return "\n".join(lines[kept[0] : kept[-1] + 1]).rstrip() if kept else ""


def _words(title: str) -> str:
    return " ".join(title.lower().replace("*", "").split())


def _content(
    text: str,
    signer: str,
    login: str,
    organization: str,
    procedures: Sequence[CodedConcept],
) -> ContainerContentItem:
    """The TID 2000 content tree, rows in the template's order (it is significant):
    procedures reported, language, observation context, then the sections."""
    root = ContainerContentItem(name=REPORT_TITLE, template_id="2000")
    root.ContentSequence = ContentSequence(
        [
            CodeContentItem(
                name=codes.DCM.ProcedureReported,
                value=procedure,
                relationship_type=RelationshipTypeValues.HAS_CONCEPT_MOD,
            )
            for procedure in procedures
        ]
    )
    root.ContentSequence.extend(LanguageOfContentItemAndDescendants(ENGLISH))
    root.ContentSequence.extend(
        ObservationContext(
            observer_person_context=ObserverContext(
                observer_type=codes.cid270.Person,
                observer_identifying_attributes=PersonObserverIdentifyingAttributes(
                    name=signer, login_name=login, organization_name=organization
                ),
            )
        )
    )
    by_meaning = {str(h.section.meaning): h for h in HEADINGS.values()}
    for section in split_sections(text):
        heading = by_meaning[section.heading]
        container = ContainerContentItem(
            name=heading.section, relationship_type=RelationshipTypeValues.CONTAINS
        )
        container.ContentSequence = ContentSequence(
            [
                TextContentItem(
                    name=heading.element,
                    value=section.text,
                    relationship_type=RelationshipTypeValues.CONTAINS,
                )
            ]
        )
        root.ContentSequence.append(container)
    return root


def _with_type2(source: Dataset) -> Dataset:
    """``source``, or a copy with the Type 2 patient and study attributes highdicom reads
    from it and the source lacks, empty (PS3.3 C.7.1.1, C.7.2.1: empty means unknown)."""
    missing = [k for k in _COPIED_TYPE2 if k not in source]
    if not missing:
        return source
    copy = Dataset(dict(source.items()))  # a new element dict: the caller's stays
    for keyword in missing:
        setattr(copy, keyword, None)
    return copy


def _person_name(username: str) -> str:
    """A PN for an account: the account name as the family name component.

    Accounts have no real names; the trailing ``^`` says the value is one family name
    (PS3.5 6.2), not an unparsed whole name.
    """
    return f"{username}^"


def _account(name: object) -> str:
    return str(PersonName(str(name)).family_name)


def _aware(value: datetime) -> datetime:
    """A plain, time-zone aware ``datetime`` (a DT without an offset is taken as UTC)."""
    plain = datetime.combine(value.date(), value.timetz())
    return plain if plain.utcoffset() is not None else plain.replace(tzinfo=UTC)
