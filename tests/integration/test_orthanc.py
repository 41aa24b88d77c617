"""PACS round trip with a real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``).

The fixture starts its own ``Orthanc`` process with a generated configuration: loopback
clients only (``RemoteAccessAllowed`` false; Orthanc 1.10 has no bind-address option),
its DICOM server off, HTTP basic auth on, storage in a temporary folder. It is stopped
by its PID.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from radlens.domain.findings import Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Study
from radlens.net.dicomweb import DicomWebClient
from radlens.net.pacs import PacsPoller, overlay_pusher
from radlens.store.db import Database, open_database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from serve_helpers import free_port

pytestmark = pytest.mark.integration

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "radlens", "orthanc-test-secret-7731"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"


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
                if httpx.get(f"{base}/system", auth=(USER, PASSWORD), timeout=2).is_success:
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
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'radlens.sqlite'}")
    yield database
    database.close()


def _client(base: str) -> DicomWebClient:
    return DicomWebClient(f"{base}/dicom-web", USER, PASSWORD, timeout_s=30)


def _upload(base: str, path: Path) -> str:
    answer = httpx.post(f"{base}/instances", content=path.read_bytes(), auth=(USER, PASSWORD))
    answer.raise_for_status()
    study_id = answer.json()["ParentStudy"]
    study = httpx.get(f"{base}/studies/{study_id}", auth=(USER, PASSWORD)).json()
    return str(study["MainDicomTags"]["StudyInstanceUID"])


def _finding(card_name: str) -> Finding:
    return Finding(
        code="pneumonia",
        label="Pneumonia",
        probability=0.8,
        threshold=0.5,
        model_name=card_name,
        model_version="0.0.1",
    )


def test_study_is_pulled_analyzed_and_overlay_lands_in_same_study(
    orthanc: str,
    db: Database,
    tmp_path: Path,
    pydicom_data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    study_uid = _upload(orthanc, pydicom_data_dir / "RG1_J2KR.dcm")
    intake = Intake(db, tmp_path / "storage")
    client = _client(orthanc)
    poller = PacsPoller(client, intake, interval_s=60)

    assert poller.poll_once() == 1
    assert poller.poll_once() == 0  # idempotent: the study is already stored

    def analyze(study: Study) -> StudyResult:
        series = tuple(
            SeriesResult(
                s.series_instance_uid,
                s.modality,
                s.body_part,
                len(s.instances),
                ("tiny_cxr",),
                (_finding("tiny_cxr"),),
            )
            for s in study.series
        )
        return StudyResult(study.study_instance_uid, series)

    queue = JobQueue(db, tmp_path / "storage", 0.0, on_complete=overlay_pusher(client))
    assert queue.run_one(analyze)

    series = client.search_series(study_uid)
    modalities = sorted(s["00080060"]["Value"][0] for s in series)
    assert modalities == ["CR", "OT"]
    found = httpx.get(
        f"{orthanc}/dicom-web/studies/{study_uid}/instances",
        params={"Modality": "OT", "includefield": "00080016"},
        auth=(USER, PASSWORD),
        headers={"Accept": "application/dicom+json"},
    ).json()
    assert [i["00080016"]["Value"][0] for i in found] == [SC_CLASS]
    assert PASSWORD not in caplog.text
    client.close()


def test_poller_logs_one_line_and_survives_when_pacs_is_down(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = DicomWebClient(
        f"http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/dicom-web", timeout_s=2
    )
    poller = PacsPoller(client, Intake(db, tmp_path / "storage"))
    with caplog.at_level(logging.ERROR):
        assert poller.poll_once() == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0].getMessage()
    assert PASSWORD not in caplog.text and "127.0.0.1" in caplog.text
    client.close()


def test_serve_polls_pacs_only_when_configured(
    orthanc: str, db: Database, tmp_path: Path, pydicom_data_dir: Path
) -> None:
    from radlens.config import Settings
    from radlens.server.app import start_pacs_poller

    intake = Intake(db, tmp_path / "storage")
    assert start_pacs_poller(Settings(home=tmp_path), intake) is None
    settings = Settings(
        home=tmp_path,
        pacs_url=f"{orthanc}/dicom-web",
        pacs_username=USER,
        pacs_password=PASSWORD,
        pacs_poll_seconds=0.2,
    )
    assert PASSWORD not in repr(settings)
    study_uid = _upload(orthanc, pydicom_data_dir / "RG1_J2KR.dcm")
    poller = start_pacs_poller(settings, intake)
    assert poller is not None
    try:
        deadline = time.monotonic() + 20
        while not poller._stored(study_uid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert poller._stored(study_uid)
    finally:
        poller.stop()
