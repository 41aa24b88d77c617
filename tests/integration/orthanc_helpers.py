"""Talking to the test Orthanc: its credentials, a radlens DICOMweb client, a REST upload."""

from __future__ import annotations

from pathlib import Path

import httpx

from radlens.net.dicomweb import DicomWebClient

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "radlens", "orthanc-test-secret-7731"
AUTH = (USER, PASSWORD)
DICOM_JSON = {"Accept": "application/dicom+json"}
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"


def orthanc_client(base: str, transport: httpx.BaseTransport | None = None) -> DicomWebClient:
    """radlens's DICOMweb client for the Orthanc at ``base``."""
    return DicomWebClient(f"{base}/dicom-web", USER, PASSWORD, timeout_s=30, transport=transport)


def upload(base: str, raw: bytes) -> str:
    """Store one instance through Orthanc's REST API; its Study Instance UID."""
    answer = httpx.post(f"{base}/instances", content=raw, auth=AUTH)
    answer.raise_for_status()
    study_id = answer.json()["ParentStudy"]
    study = httpx.get(f"{base}/studies/{study_id}", auth=AUTH).json()
    return str(study["MainDicomTags"]["StudyInstanceUID"])
