"""DICOM result objects into a real Orthanc: SR, Parametric Map and SEG by STOW-RS.

Objects made for real pydicom-data studies (CR chest RG1, CT_small) must be accepted into
the source study, be retrievable by WADO-RS and read back to the same findings; a study
pulled from the PACS and analyzed by the shipped model gets its SR and overlay pushed,
and neither comes back as an instance to analyze; a report signed in the reading room
lands in the source study as a verified SR.
"""

from __future__ import annotations

import gc
import io
import time
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from orthanc_helpers import AUTH, DICOM_JSON, PASSWORD, USER, orthanc_client, upload
from pydicom.data import get_testdata_file
from pydicom.uid import (
    Comprehensive3DSRStorage,
    EnhancedSRStorage,
    ParametricMapStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)
from sqlalchemy import select

from radlens.config import Settings
from radlens.domain.findings import Box, Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Study
from radlens.io.scan import scan
from radlens.models.registry import load_model, zoo_folder
from radlens.net.dicomweb import DicomWebClient
from radlens.net.pacs import PacsPoller, push_results, results_pusher
from radlens.pipeline import onnx_backends, process_study
from radlens.report.pm import LEVELS, read_parametric_map, resample_heatmap
from radlens.report.seg import read_dicom_seg
from radlens.report.signed_sr import read_signed_sr
from radlens.report.sr import read_dicom_sr
from radlens.server.app import create_app
from radlens.store.db import open_database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.models import InstanceRow
from serve_helpers import READER, log_in, result_with_finding

pytestmark = pytest.mark.integration


def with_finding(study: Study, **fields: object) -> StudyResult:
    series = study.series[0]
    finding = Finding(
        "pneumonia",
        "Pneumonia",
        0.875,
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


def stored_by_class(client: DicomWebClient, study_uid: str) -> dict[str, pydicom.Dataset]:
    """Every instance of the study on the PACS, retrieved by WADO-RS, by SOP Class UID."""
    found: dict[str, pydicom.Dataset] = {}
    for series in client.search_series(study_uid):
        series_uid = series["0020000E"]["Value"][0]
        for raw in client.retrieve_series(study_uid, series_uid):
            dataset = pydicom.dcmread(io.BytesIO(raw))
            found[str(dataset.SOPClassUID)] = dataset
    return found


def studies_on(base: str) -> list[str]:
    listed = httpx.get(f"{base}/dicom-web/studies", auth=AUTH, headers=DICOM_JSON).json()
    return [s["0020000D"]["Value"][0] for s in listed]


def test_cr_chest_sr_and_overlay_are_stored_into_the_source_study_and_read_back(
    pacs: str, pydicom_data_dir: Path
) -> None:
    source_path = pydicom_data_dir / "RG1_J2KR.dcm"
    study_uid = upload(pacs, source_path.read_bytes())
    [study] = scan([source_path]).studies
    heatmap = np.zeros((512, 482), np.float32)
    heatmap[60:150, 80:230] = 1.0
    result = with_finding(
        study, box=Box(300.5, 200, 900, 600.25), heatmap=heatmap, ood_score=1.4, ood_flag=True
    )
    client = orthanc_client(pacs)

    # overlay + SR + Parametric Map (in a frame of its own: a CR has none)
    assert push_results(client, study, result) == 3
    assert studies_on(pacs) == [study_uid]
    stored = stored_by_class(client, study_uid)
    assert set(stored) == {
        str(study.series[0].instances[0].sop_class_uid),
        SecondaryCaptureImageStorage,
        Comprehensive3DSRStorage,
        ParametricMapStorage,
    }
    pm = read_parametric_map(stored[ParametricMapStorage])
    assert pm.sop_instance_uid == study.series[0].instances[0].sop_instance_uid
    assert np.abs(pm.heatmap - resample_heatmap(heatmap, 1955, 1841)).max() <= 0.5 / LEVELS + 1e-6
    [record] = read_dicom_sr(stored[Comprehensive3DSRStorage])
    assert record.present and record.probability == pytest.approx(0.875)
    assert record.box == Box(300.5, 200, 900, 600.25)
    assert record.ood_flag and record.ood_score == pytest.approx(1.4)
    assert (record.model_name, record.model_version) == ("tiny_cxr", "0.0.1")
    assert record.sop_instance_uid == study.series[0].instances[0].sop_instance_uid
    client.close()


def test_ct_sr_parametric_map_and_seg_are_stored_into_the_source_study_and_read_back(
    pacs: str, tmp_path: Path
) -> None:
    source_path = tmp_path / "ct.dcm"
    source_path.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    study_uid = upload(pacs, source_path.read_bytes())
    [study] = scan([source_path]).studies
    source = pydicom.dcmread(source_path)
    mask = np.asarray(source.pixel_array > np.quantile(source.pixel_array, 0.8))
    heatmap = np.linspace(0, 1, 40 * 40, dtype=np.float32).reshape(40, 40)
    client = orthanc_client(pacs)

    assert push_results(client, study, with_finding(study, heatmap=heatmap, mask=mask)) == 3
    assert studies_on(pacs) == [study_uid]
    stored = stored_by_class(client, study_uid)
    assert {Comprehensive3DSRStorage, ParametricMapStorage, SegmentationStorage} <= set(stored)
    for dataset in stored.values():
        assert dataset.StudyInstanceUID == study_uid
    [record] = read_dicom_sr(stored[Comprehensive3DSRStorage])
    assert record.concept.value == "233604007" and record.present
    pm = read_parametric_map(stored[ParametricMapStorage])
    expected = resample_heatmap(heatmap, source.Rows, source.Columns)
    assert np.abs(pm.heatmap - expected).max() <= 0.5 / LEVELS + 1e-6
    seg = read_dicom_seg(stored[SegmentationStorage], [source])
    assert np.array_equal(seg.mask, mask)
    client.close()


def test_pulled_study_analyzed_by_the_shipped_model_gets_its_sr_pushed_and_not_pulled_back(
    pacs: str, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    study_uid = upload(pacs, (pydicom_data_dir / "RG1_J2KR.dcm").read_bytes())
    db = open_database(f"sqlite:///{tmp_path / 'radlens.sqlite'}")
    storage = tmp_path / "storage"
    client = orthanc_client(pacs)
    poller = PacsPoller(client, Intake(db, storage), interval_s=60)
    assert poller.poll_once() == 1
    model = load_model(zoo_folder() / "cxr_pneumonia")

    def analyze(study: Study) -> StudyResult:
        return process_study(study, [model], onnx_backends(), render=False).result

    queue = JobQueue(db, storage, 0.0, on_complete=results_pusher(client))
    assert queue.run_one(analyze)

    stored = stored_by_class(client, study_uid)
    assert {SecondaryCaptureImageStorage, Comprehensive3DSRStorage} <= set(stored)
    [record] = read_dicom_sr(stored[Comprehensive3DSRStorage])
    assert (record.model_name, record.concept.meaning) == ("cxr_pneumonia", "Pneumonia")
    assert record.ood_flag  # RG1 is an adult; the model was trained on children
    assert poller.poll_once() == 0  # radlens's own objects are not pulled back
    with db.sessions() as session:
        assert len(session.scalars(select(InstanceRow.sop_uid)).all()) == 1
    client.close()
    db.close()


def test_report_signed_in_the_reading_room_lands_in_the_source_study_as_a_verified_sr(
    pacs: str, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    """Stored into Orthanc -> pulled -> analyzed -> report signed -> SR in Orthanc's study."""
    study_uid = upload(pacs, (pydicom_data_dir / "RG1_J2KR.dcm").read_bytes())
    settings = Settings(
        home=tmp_path,
        dicom_enabled=False,
        quiet_period_s=0.2,
        poll_interval_s=0.05,
        workers=1,
        pacs_url=f"{pacs}/dicom-web",
        pacs_username=USER,
        pacs_password=PASSWORD,
        pacs_poll_seconds=0.2,
        pacs_push_results=True,
        pacs_lookback_days=0,  # RG1's StudyDate is decades old
        site_name="St. Elsewhere Radiology",
    )
    text = "FINDINGS:\nRight basal opacity.\n\nIMPRESSION: Right lower lobe pneumonia."
    with TestClient(create_app(settings, analyze=result_with_finding)) as app:
        log_in(app)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = app.get(f"/api/studies/{study_uid}")
            if status.status_code == 200 and status.json()["status"] == "ready":
                break
            time.sleep(0.2)
        assert app.put(f"/api/studies/{study_uid}/report", json={"text": text}).is_success
        assert app.post(f"/api/studies/{study_uid}/sign").is_success
        served = app.get(f"/api/studies/{study_uid}/report.dcm").content
        client = orthanc_client(pacs)
        stored = stored_by_class(client, study_uid)
        client.close()
    gc.collect()  # a connection the app left open warns here, not in a later test
    assert studies_on(pacs) == [study_uid]
    signed = stored[EnhancedSRStorage]
    assert signed.StudyInstanceUID == study_uid
    assert signed.SOPInstanceUID == pydicom.dcmread(io.BytesIO(served)).SOPInstanceUID
    record = read_signed_sr(signed)
    assert [(s.heading, s.text) for s in record.sections] == [
        ("Findings", "Right basal opacity."),
        ("Impressions", "Right lower lobe pneumonia."),
    ]
    assert (record.verification, record.completion) == ("VERIFIED", "COMPLETE")
    assert record.verifying_observer_name == READER
    assert record.verifying_organization == "St. Elsewhere Radiology"
    assert record.evidence == (
        str(
            pydicom.dcmread(
                pydicom_data_dir / "RG1_J2KR.dcm", stop_before_pixels=True
            ).SOPInstanceUID
        ),
    )
