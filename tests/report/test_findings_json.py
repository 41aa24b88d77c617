"""``findings.json``: versioned schema, every field, and no patient identifiers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from radlens import __version__
from radlens.domain.findings import (
    Box,
    Finding,
    Priority,
    RejectedInput,
    SeriesResult,
    StudyResult,
)
from radlens.domain.imaging import Instance, Patient, Series, Study
from radlens.report.findings_json import (
    DISCLAIMER,
    SCHEMA,
    finding_to_dict,
    from_json,
    to_json,
)

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-0042"


def finding(**kw: object) -> Finding:
    fields: dict[str, object] = {
        "code": "pneumonia",
        "label": "Pneumonia",
        "probability": 0.8765432,
        "threshold": 0.5,
        "model_name": "tiny_cxr",
        "model_version": "0.0.1",
        "sop_instance_uid": "1.2.3.1.1",
    } | kw
    return Finding(**fields)  # type: ignore[arg-type]


def study_and_result() -> tuple[Study, StudyResult]:
    instance = Instance("1.2.3.1.1", "1.2.840.10008.5.1.4.1.1.1", Path("cr.dcm"))
    study = Study(
        "1.2.3",
        (Series("1.2.3.1", "CR", (instance,), body_part="CHEST"),),
        patient=Patient(patient_id=PATIENT_ID, name=PATIENT_NAME, birth_date="19600101"),
        accession_number="ACC-77",
    )
    result = StudyResult(
        "1.2.3",
        (
            SeriesResult(
                "1.2.3.1",
                "CR",
                "CHEST",
                1,
                ("tiny_cxr",),
                (finding(box=Box(10.04, 20.0, 30.0, 40.06), ood_flag=True, warnings=("w",)),),
                warnings=("w",),
            ),
            SeriesResult("1.2.3.2", "SR", "", 1, skipped_reason="SR without pixel data"),
        ),
        priority=Priority.URGENT,
        timings_s={"inference": 0.123456789},
        rejected=(RejectedInput("in/bad.dcm", "not_dicom", "no DICOM preamble"),),
    )
    return study, result


def test_document_has_schema_version_and_disclaimer() -> None:
    study, result = study_and_result()
    doc = to_json(result, study.modalities)
    assert doc["schema"] == SCHEMA == "radlens.findings/2"
    assert doc["radlens_version"] == __version__
    assert doc["disclaimer"] == DISCLAIMER
    assert "requires physician review" in doc["disclaimer"]
    assert doc["priority"] == "urgent"
    assert doc["modalities"] == ["CR"]
    assert doc["timings_s"] == {"inference": 0.1235}
    assert doc["rejected"] == [
        {"location": "in/bad.dcm", "kind": "not_dicom", "reason": "no DICOM preamble"}
    ]


def test_series_and_findings_are_serialized() -> None:
    _, result = study_and_result()
    analyzed, skipped = to_json(result)["series"]
    assert analyzed["models"] == ["tiny_cxr"]
    assert skipped["skipped_reason"] == "SR without pixel data"
    assert skipped["findings"] == []
    [f] = analyzed["findings"]
    assert f["probability"] == 0.876543
    assert f["positive"] is True
    assert f["box_px"] == [10.0, 20.0, 30.0, 40.1]
    assert f["trust"] == "low: input unlike training data"
    assert f["warnings"] == ["w"]


def test_finding_without_box_has_null_box_and_normal_trust() -> None:
    d = finding_to_dict(finding(probability=0.1))
    assert d["box_px"] is None
    assert d["positive"] is False
    assert d["trust"] == "normal"


def test_json_contains_no_patient_identifiers() -> None:
    study, result = study_and_result()
    text = json.dumps(to_json(result, study.modalities))
    for secret in (PATIENT_NAME, PATIENT_ID, "19600101", "ACC-77"):
        assert secret not in text


def test_the_ood_decision_and_its_two_parts_are_written() -> None:
    d = finding_to_dict(
        finding(ood_score=1.4, ood_flag=True, ood_feature_score=9.1, ood_input_score=31.5)
    )
    assert (d["ood_score"], d["ood_flag"], d["trust"]) == (
        1.4,
        True,
        "low: input unlike training data",
    )
    assert (d["ood_feature_score"], d["ood_input_score"]) == (9.1, 31.5)
    plain = finding_to_dict(finding())
    assert plain["ood_score"] is plain["ood_feature_score"] is plain["ood_input_score"] is None
    assert plain["ood_reasons"] == []


def test_the_reasons_for_a_flag_are_written_and_read_back() -> None:
    reasons = (("level_gaps_decoded", 14.2), ("mean", -3.4))
    study, result = study_and_result()
    series, *others = result.series
    flagged = replace(series.findings[0], ood_reasons=reasons)
    result = replace(result, series=(replace(series, findings=(flagged,)), *others))
    document = json.loads(json.dumps(to_json(result, study.modalities)))
    written = document["series"][0]["findings"][0]["ood_reasons"]
    assert written == [
        {"statistic": "level_gaps_decoded", "z": 14.2},
        {"statistic": "mean", "z": -3.4},
    ]
    assert from_json(document).series[0].findings[0].ood_reasons == reasons


def test_from_json_gives_back_the_result_that_was_written() -> None:
    study, result = study_and_result()
    document = to_json(result, study.modalities)
    back = from_json(json.loads(json.dumps(document)))
    assert to_json(back, study.modalities) == document
    [f] = back.series[0].findings
    assert (f.code, f.model_version, f.ood_flag, f.warnings) == ("pneumonia", "0.0.1", True, ("w",))
    assert f.box == Box(10.0, 20.0, 30.0, 40.1) and f.heatmap is None
    assert back.priority is Priority.URGENT and back.rejected == result.rejected


def test_a_counted_detector_box_is_written_and_read_back_as_counted() -> None:
    box = finding(box=Box(1.0, 2.0, 3.0, 4.0), detected=True, counted=True)
    d = finding_to_dict(box)
    assert (d["detected"], d["counted"]) == (True, True)
    assert finding_to_dict(finding())["counted"] is False


def test_from_json_ignores_store_keys_and_refuses_another_schema() -> None:
    _, result = study_and_result()
    document = to_json(result)
    document["series"][0]["findings"][0] |= {"id": "0123456789abcdef", "has_heatmap": True}
    assert from_json(document).series[0].findings[0].code == "pneumonia"
    with pytest.raises(ValueError, match="radlens.findings/2"):
        from_json(document | {"schema": "radlens.findings/1"})


def test_measurements_are_written_with_units_and_read_back() -> None:
    from radlens.domain.findings import Measurement

    hc = Measurement("head_circumference", "Head circumference", 181.2, "mm", method="ellipse")
    ga = Measurement("gestational_age", "Gestational age", None, "wk", note="out of range")
    doc = finding_to_dict(finding(measurements=(hc, ga)))
    assert doc["measurements"][0] == {
        "code": "head_circumference",
        "label": "Head circumference",
        "value": 181.2,
        "unit": "mm",
        "low": None,
        "high": None,
        "method": "ellipse",
        "note": "",
    }
    assert doc["measurements"][1]["value"] is None
    assert doc["measurements"][1]["note"] == "out of range"
    result = StudyResult(
        "1.2.3", (SeriesResult("1.2.3.1", "US", "", 1, findings=(finding(measurements=(hc, ga)),)),)
    )
    back = from_json(json.loads(json.dumps(to_json(result))))
    assert back.findings[0].measurements == (hc, ga)


def test_an_outline_is_written_as_at_most_64_points_and_read_back() -> None:
    t = np.linspace(0, 2 * np.pi, 256, endpoint=False)
    outline = np.stack([100 + 40 * np.cos(t), 80 + 30 * np.sin(t)], 1)
    doc = finding_to_dict(finding(outline_px=outline))
    assert len(doc["outline_px"]) == 64
    assert doc["outline_px"][0] == [140.0, 80.0]
    result = StudyResult(
        "1.2.3", (SeriesResult("1.2.3.1", "US", "", 1, findings=(finding(outline_px=outline),)),)
    )
    back = from_json(to_json(result)).findings[0].outline_px
    assert back is not None and back.shape == (64, 2)
    np.testing.assert_allclose(back, outline[::4], atol=0.05)
    assert finding_to_dict(finding())["outline_px"] is None


def test_an_ordinal_grade_distribution_is_written_with_labels_and_read_back() -> None:
    grades = (("KL 0", 0.1), ("KL 1", 0.2), ("KL 2", 0.7))
    graded = finding(grade=2, grade_label="KL 2", grade_probabilities=grades)
    doc = finding_to_dict(graded)
    assert doc["grade_probabilities"][2] == {"label": "KL 2", "probability": 0.7}
    result = StudyResult("1.2.3", (SeriesResult("1.2.3.1", "DX", "KNEE", 1, findings=(graded,)),))
    assert from_json(to_json(result)).findings[0].grade_probabilities == grades
    assert finding_to_dict(finding())["grade_probabilities"] is None
