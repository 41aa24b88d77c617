"""No patient data in logs: intake (C-STORE, STOW-RS) and analysis of real files with PHI.

Real DICOM files (pydicom's CT_small and MR_small) are given distinctive patient data and
sent through the running service, good and malformed alike, then analyzed by the real
pipeline (a tiny ONNX model, ONNX Runtime). Every log record at DEBUG and up, from every
logger (radlens, pynetdicom, uvicorn, SQLAlchemy), is checked for each value.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file

from net.test_scp import send_files
from radlens.config import Settings
from radlens.privacy.logs import RedactQuotedValues, install_log_filters
from radlens.server.app import create_app
from radlens.warning_scopes import ignoring
from serve_helpers import log_in, wait_until_ready

PHI = {
    "PatientName": "Leakcheck^Philippa^Quinn",
    "PatientID": "PHI-7731-ZZ",
    "PatientBirthDate": "19371113",
    "AccessionNumber": "ACC99PHI",
    "ReferringPhysicianName": "Tellall^Doctor",
    "InstitutionName": "Saint Secretive Hospital",
    "OtherPatientIDs": "OTHER-PHI-4411",
}
NEEDLES = {"Leakcheck", "Philippa", "PHI-7731-ZZ", "19371113", "ACC99PHI", "Tellall", "Secretive"}


def with_phi(
    name: str, study: str, *, modality: str = "", cut: bool = False, invalid: bool = False
) -> bytes:
    ds = pydicom.dcmread(get_testdata_file(name))
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    with ignoring():  # invalid values on purpose
        if invalid:  # pydicom logs invalid values, quoted, when it reads them
            ds.PatientBirthDate = "1937-11-13 Philippa"
            ds.PatientAge = "Leakcheck"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, f"{study}.1"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{study}.1.1"
        if modality:
            ds.Modality, ds.BodyPartExamined, ds.ViewPosition = modality, "CHEST", "PA"
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    return data[: len(data) - 5000] if cut else data


def multipart(*parts: bytes) -> bytes:
    head = b"--phi\r\nContent-Type: application/dicom\r\n\r\n"
    return b"".join(head + p + b"\r\n" for p in parts) + b"--phi--\r\n"


@pytest.mark.slow
def test_intake_and_analysis_of_files_with_phi_log_none_of_it(
    tmp_path: Path, tiny_onnx_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        home=tmp_path,
        models=(tiny_onnx_model_dir,),
        dicom_port=0,
        quiet_period_s=0,
        poll_interval_s=0.05,
        workers=1,
    )
    cr = with_phi("CT_small.dcm", "1.2.826.0.1.3680043.10.9.1", modality="CR", invalid=True)
    resend = cr.replace(b"Saint Secretive Hospital", b"Saint Secretive Clinic\x20\x20")
    bad_uid = with_phi("MR_small.dcm", "1.2.826.0.1.3680043.10.9.x")
    cut = with_phi("MR_small.dcm", "1.2.826.0.1.3680043.10.9.3", cut=True)
    mr = tmp_path / "mr.dcm"
    mr.write_bytes(with_phi("MR_small.dcm", "1.2.826.0.1.3680043.10.9.2", invalid=True))
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(cut)
    caplog.clear()  # building the files above logged their invalid values
    caplog.set_level(logging.DEBUG)
    # A CLI test earlier in the run may have quietened pydicom (cli/main.py): let it speak.
    caplog.set_level(logging.DEBUG, logger="pydicom")
    with TestClient(create_app(settings)) as client:
        log_in(client)
        response = client.post(
            "/dicomweb/studies",
            content=multipart(cr, bad_uid, cut),
            headers={"content-type": 'multipart/related; type="application/dicom"; boundary=phi'},
        )
        assert response.status_code == 202
        port = client.app.state.services.scp.port  # type: ignore[attr-defined]
        send_files(port, [mr, broken])
        client.post(
            "/dicomweb/studies",
            content=multipart(resend),
            headers={"content-type": 'multipart/related; type="application/dicom"; boundary=phi'},
        )
        ready = wait_until_ready(client, 2, timeout_s=60)
        study = client.get(f"/api/studies/{ready[0]['study_uid']}").json()
    findings = [f for s in study["findings"]["series"] for f in s["findings"]]
    assert findings or any(r["findings"]["series"] for r in ready)  # the model really ran
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert any("different content" in r.getMessage() for r in caplog.records)
    assert any("<withheld>" in r.getMessage() for r in caplog.records if r.name == "pydicom")
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    leaked = {needle for needle in NEEDLES if needle.lower() in logged.lower()}
    assert leaked == set(), f"patient data in the logs: {sorted(leaked)}"


def test_the_pydicom_filter_withholds_quoted_values_and_is_installed_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_filters()
    install_log_filters()
    pydicom_logger = logging.getLogger("pydicom")
    assert sum(isinstance(f, RedactQuotedValues) for f in pydicom_logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="pydicom"):
        pydicom_logger.warning("Invalid value for VR PN: '%s'", "Leakcheck^Philippa")
    assert caplog.messages == ["Invalid value for VR PN: '<withheld>'"]
