"""Helpers for the service tests (store, net, server, integration): real DICOM bytes."""

from __future__ import annotations

import io
import socket
import warnings

import pydicom
from pydicom.data import get_testdata_file


def make_instance(study_uid: str, sop_uid: str, series_uid: str = "") -> bytes:
    """A real CT instance (pydicom's CT_small) with the given UIDs, as PS3.10 bytes."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tests also build invalid UIDs on purpose
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid or f"{study_uid}.1"
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
