"""Fixtures for the integration tests: a real Orthanc PACS.

``orthanc`` starts its own ``Orthanc`` process (Debian ``orthanc`` + ``orthanc-dicomweb``)
with a generated configuration: loopback clients only (``RemoteAccessAllowed`` false;
Orthanc 1.10 has no bind-address option), its DICOM server off, HTTP basic auth on,
storage in a temporary folder. It is stopped by its PID. ``pacs`` empties it, so each
test starts from an empty Orthanc.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from orthanc_helpers import AUTH, PASSWORD, PLUGIN, USER

from serve_helpers import free_port


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running Orthanc (REST at the root, DICOMweb under /dicom-web)."""
    binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not Path(binary).is_file() or not PLUGIN.is_file():
        pytest.skip("needs Orthanc and its DICOMweb plugin (apt-get install orthanc-dicomweb)")
    folder = tmp_path_factory.mktemp("orthanc")
    port = free_port()
    config = {
        "Name": "radlens-test",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "DicomServerEnabled": False,
        "DicomPort": free_port(),
        "DicomModalities": {},
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (folder / "orthanc.json").write_text(json.dumps(config), "utf-8")
    log_file = (folder / "orthanc.log").open("wb")
    process = subprocess.Popen(
        [binary, str(folder / "orthanc.json")], stdout=log_file, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/system", auth=AUTH, timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"Orthanc did not start: {(folder / 'orthanc.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


@pytest.fixture
def pacs(orthanc: str) -> str:
    """The module's Orthanc, emptied: a test sees only the studies it stored."""
    for study_id in httpx.get(f"{orthanc}/studies", auth=AUTH).json():
        httpx.delete(f"{orthanc}/studies/{study_id}", auth=AUTH).raise_for_status()
    return orthanc
