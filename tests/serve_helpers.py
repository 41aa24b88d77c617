"""Helpers for the service tests (store, net, server, integration): real DICOM bytes."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
from pydicom.data import get_testdata_file

from radlens.domain.findings import Box, Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Study
from radlens.store.accounts import add_user, list_users
from radlens.warning_scopes import ignoring

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


def make_instance(study_uid: str, sop_uid: str, series_uid: str = "") -> bytes:
    """A real CT instance (pydicom's CT_small) with the given UIDs, as PS3.10 bytes."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with ignoring():  # tests also build invalid UIDs on purpose
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid or f"{study_uid}.1"
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dated_instance(
    study_uid: str, patient_id: str, study_date: str, description: str = "CT CHEST"
) -> bytes:
    """``make_instance`` of this patient, made on ``study_date`` (DA; "" for no date)."""
    ds = pydicom.dcmread(io.BytesIO(make_instance(study_uid, f"{study_uid}.1")))
    ds.PatientID, ds.StudyDescription, ds.StudyTime = patient_id, description, "101500"
    if study_date:
        ds.StudyDate = study_date
    else:
        del ds.StudyDate
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def stop_server(process: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM a ``radlens serve`` subprocess; SIGKILL it after 20 s. Its exit code, or None
    when it had to be killed."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        return None


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def result_with_finding(
    study: Study, code: str = "pneumonia", probability: float = 0.9, ood: bool = False
) -> StudyResult:
    """A stand-in analysis: one finding (with a heatmap) on the study's first image.

    Under the default triage rules a positive "pneumonia" makes the study urgent and a
    positive "nodule" makes it priority; a probability under 0.5 leaves it routine.
    """
    series = study.series[0]
    instance = series.instances[0]
    heat = np.zeros((16, 16), np.float32)
    heat[4:9, 6:12] = 1.0
    finding = Finding(
        code,
        code.title(),
        probability,
        0.5,
        "stand-in",
        "0.0.1",
        sop_instance_uid=instance.sop_instance_uid,
        heatmap=heat,
        box=Box(6, 4, 12, 9),
        ood_score=12.0 if ood else 1.0,
        ood_flag=ood,
    )
    series_result = SeriesResult(
        series.series_instance_uid,
        series.modality,
        series.body_part,
        len(series.instances),
        models=("stand-in",),
        findings=(finding,),
    )
    return StudyResult(study.study_instance_uid, (series_result,))


READER, READER_PASSWORD = "reader", "reader-password-1"


def log_in(
    client: TestClient,
    username: str = READER,
    password: str = READER_PASSWORD,
    role: str = "radiologist",
) -> None:
    """Make the account (with ``role``) on the running app's database (once) and log the
    client in."""
    db = client.app.state.services.db  # type: ignore[attr-defined]
    if username not in {account.username for account in list_users(db)}:
        add_user(db, username, password, role)
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text


def wait_until_ready(client: TestClient, n: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Poll the worklist until ``n`` studies are ready; return them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items: list[dict[str, Any]] = client.get("/api/worklist", params={"status": "ready"}).json()
        if len(items) >= n:
            return items
        time.sleep(0.05)
    raise AssertionError("studies were not analyzed in time")


def chest_radiograph(image_path: Path, study_uid: str, age_years: int = 3) -> bytes:
    """A CR chest (PA) instance whose pixels are a real radiograph image file (PNG/JPEG).

    For tests that need a study the shipped pneumonia model reads as positive: the Kermany
    set in ``../shared/data`` has real pediatric pneumonia radiographs.
    """
    from PIL import Image as PILImage
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = np.asarray(PILImage.open(image_path).convert("L"), np.uint8)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = f"{study_uid}.1"
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "CR", "CHEST", "PA"
    ds.PatientID, ds.PatientName, ds.PatientAge = "TEST", "Test^Chest", f"{age_years:03d}Y"
    ds.InstanceNumber, ds.SeriesNumber = 1, 1
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
