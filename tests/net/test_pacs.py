"""The PACS poller's QIDO-RS window and the result push against httpx's MockTransport (the
poller and the push run against a real Orthanc in tests/integration/)."""

from __future__ import annotations

import io
import logging
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import (
    Comprehensive3DSRStorage,
    ParametricMapStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)

from radlens.domain.findings import Box, Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Study
from radlens.io.scan import scan
from radlens.net.dicomweb import DicomWebClient, parse_multipart
from radlens.net.pacs import push_results, results_pusher, study_date_range


def test_study_date_range_starts_lookback_days_before_today_and_stays_open() -> None:
    assert study_date_range(2, date(2024, 3, 1)) == "20240228-"  # across a leap day
    assert study_date_range(1, date(2025, 1, 1)) == "20241231-"
    assert study_date_range(0, date(2025, 1, 1)) == "20250101-"


def test_study_date_range_refuses_a_negative_lookback() -> None:
    with pytest.raises(ValueError, match="lookback_days"):
        study_date_range(-1, date(2025, 1, 1))


# --- push_results: overlays and DICOM result objects, STOW-RS into the source study --------


def recording_client(
    answer: dict[str, object] | None = None, status: int = 200
) -> tuple[DicomWebClient, list[tuple[str, list[bytes]]]]:
    """A client whose PACS (httpx MockTransport) notes each STOW-RS: path and parts."""
    stored: list[tuple[str, list[bytes]]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        parts = parse_multipart(request.headers["content-type"], request.content)
        stored.append((request.url.path, parts))
        return httpx.Response(status, json=answer or {})

    return DicomWebClient(
        "http://pacs.test/dicom-web", transport=httpx.MockTransport(handle)
    ), stored


def sop_classes(parts: list[bytes]) -> list[str]:
    return [
        str(pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True).SOPClassUID) for raw in parts
    ]


def one_finding(study: Study, **fields: object) -> StudyResult:
    series = study.series[0]
    heat = np.zeros((32, 32), np.float32)
    heat[8:16, 10:20] = 1.0
    finding = Finding(
        "pneumonia",
        "Pneumonia",
        0.9,
        0.5,
        "tiny_cxr",
        "0.0.1",
        sop_instance_uid=series.instances[0].sop_instance_uid,
        heatmap=heat,
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


def test_push_results_sends_overlay_then_sr_and_parametric_map_into_the_cr_study(
    pydicom_data_dir: Path,
) -> None:
    [study] = scan([pydicom_data_dir / "RG1_J2KR.dcm"]).studies
    client, stored = recording_client()
    sent = push_results(client, study, one_finding(study, box=Box(300, 200, 900, 600)))
    assert sent == 3
    path = f"/dicom-web/studies/{study.study_instance_uid}"
    assert [p for p, _ in stored] == [path, path]
    assert sop_classes(stored[0][1]) == [SecondaryCaptureImageStorage]
    # A CR is in no frame of reference; its map is in a frame of its own (report/pm.py).
    assert sop_classes(stored[1][1]) == [Comprehensive3DSRStorage, ParametricMapStorage]
    client.close()


def test_push_results_sends_sr_parametric_map_and_seg_for_a_ct(tmp_path: Path) -> None:
    source = tmp_path / "ct.dcm"
    source.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    [study] = scan([source]).studies
    client, stored = recording_client()
    mask = np.zeros((128, 128), bool)
    mask[40:80, 30:90] = True
    assert push_results(client, study, one_finding(study, mask=mask)) == 3
    [(_, parts)] = stored  # CT_small has no Patient Orientation, so no overlay
    assert sop_classes(parts) == [
        Comprehensive3DSRStorage,
        ParametricMapStorage,
        SegmentationStorage,
    ]
    client.close()


def test_push_results_counts_only_what_the_pacs_accepted(
    pydicom_data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    [study] = scan([pydicom_data_dir / "RG1_J2KR.dcm"]).studies
    refused = {"00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2"]}}]}}
    client, _ = recording_client(refused)
    with caplog.at_level(logging.ERROR):
        # overlay + SR + Parametric Map, less the one refused
        assert push_results(client, study, one_finding(study)) == 2
    assert "refused 1 of 2" in caplog.text
    client.close()


def test_results_pusher_logs_a_pacs_error_instead_of_raising(
    pydicom_data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    [study] = scan([pydicom_data_dir / "RG1_J2KR.dcm"]).studies
    client, _ = recording_client(status=503)
    with caplog.at_level(logging.ERROR):
        results_pusher(client)(study, one_finding(study))
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "result push failed" in record.getMessage() and "503" in record.getMessage()
    client.close()
