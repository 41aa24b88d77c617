"""PACS round trip with a real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``).

The ``orthanc`` and ``pacs`` fixtures (``conftest.py``) start a loopback-only Orthanc of
its own; each test starts from an empty one.
"""

from __future__ import annotations

import gc
import io
import logging
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pydicom
import pytest
from orthanc_helpers import (
    AUTH,
    DICOM_JSON,
    PASSWORD,
    SC_CLASS,
    USER,
    orthanc_client,
    upload,
)
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from radlens.domain.findings import Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Study
from radlens.net.dicomweb import DicomWebClient
from radlens.net.pacs import PacsPoller, overlay_pusher
from radlens.store.db import Database, open_database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.models import InstanceRow, StudyRow, StudyStatus
from serve_helpers import free_port, make_instance, result_with_finding

pytestmark = pytest.mark.integration


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """SQLite and PostgreSQL: every test that takes it runs on both."""
    database = open_database(database_url)
    yield database
    database.close()


class RecordingTransport(httpx.BaseTransport):
    """httpx's real HTTP transport, noting each request: which routes a poll used."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        kind = "WADO" if request.headers.get("accept", "").startswith("multipart/") else "QIDO"
        if request.method == "POST":
            kind = "STOW"
        self.requests.append((kind, request.url.path.removeprefix("/dicom-web")))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()

    def wado(self) -> list[str]:
        return [path for kind, path in self.requests if kind == "WADO"]


def _instance(study_uid: str, series_uid: str, sop_uid: str, study_date: date | None) -> bytes:
    """A real 2D image (pydicom's CT_small pixels, as DX) with these UIDs and StudyDate.

    DX, so that a series of several is a set of images (one overlay each), not a volume.
    ``study_date`` None: no StudyDate at all.
    """
    ds = pydicom.dcmread(io.BytesIO(make_instance(study_uid, sop_uid, series_uid)))
    ds.Modality, ds.PatientOrientation = "DX", ["L", "F"]
    if study_date is None:
        del ds.StudyDate
    else:
        ds.StudyDate = f"{study_date:%Y%m%d}"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _stored_sops(db: Database, study_uid: str) -> set[str]:
    with db.sessions() as session:
        return set(
            session.scalars(
                select(InstanceRow.sop_uid).where(InstanceRow.study_uid == study_uid)
            ).all()
        )


def _status(db: Database, study_uid: str) -> str | None:
    with db.sessions() as session:
        return session.scalar(select(StudyRow.status).where(StudyRow.study_uid == study_uid))


def _overlays(base: str, study_uid: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = httpx.get(
        f"{base}/dicom-web/studies/{study_uid}/instances",
        params={"Modality": "OT", "includefield": "00080016"},
        auth=AUTH,
        headers=DICOM_JSON,
    ).json()
    return found


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
    pacs: str,
    db: Database,
    tmp_path: Path,
    pydicom_data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    study_uid = upload(pacs, (pydicom_data_dir / "RG1_J2KR.dcm").read_bytes())
    intake = Intake(db, tmp_path / "storage")
    client = orthanc_client(pacs)
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
    assert [i["00080016"]["Value"][0] for i in _overlays(pacs, study_uid)] == [SC_CLASS]  # type: ignore[index]
    # radlens's own overlay is not pulled back: no new instance, no re-analysis.
    assert poller.poll_once() == 0
    assert len(_stored_sops(db, study_uid)) == 1 and _status(db, study_uid) == StudyStatus.READY
    assert PASSWORD not in caplog.text
    client.close()


def test_real_pipeline_on_a_pulled_study_pushes_its_overlay_into_the_same_study(
    pacs: str,
    tmp_path: Path,
    database_url: str,
    pydicom_data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Acceptance: stored into Orthanc -> pulled -> shipped ONNX models -> overlay in Orthanc."""
    from fastapi.testclient import TestClient

    from radlens.config import Settings
    from radlens.server.app import create_app

    caplog.set_level(logging.INFO)
    study_uid = upload(pacs, (pydicom_data_dir / "RG1_J2KR.dcm").read_bytes())
    settings = Settings(
        home=tmp_path,
        db=database_url,
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
    )
    with TestClient(create_app(settings)) as app_client:
        db: Database = app_client.app.state.services.db  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60
        while not _overlays(pacs, study_uid) and time.monotonic() < deadline:
            time.sleep(0.2)
        overlays = _overlays(pacs, study_uid)
        with db.sessions() as session:
            study = session.get(StudyRow, study_uid)
        time.sleep(1.0)  # a few poll rounds: the overlay must not come back as an instance
        assert len(_stored_sops(db, study_uid)) == 1
        assert _status(db, study_uid) == StudyStatus.READY
    gc.collect()  # a connection the app left open warns here, not in a later test
    classes = [i["00080016"]["Value"][0] for i in overlays]  # type: ignore[index]
    assert classes.count(SC_CLASS) == 1  # the CR's Parametric Map is Modality OT too
    assert study is not None and study.result is not None
    (chest,) = [s for s in study.result["series"] if s["modality"] == "CR"]
    assert chest["models"] == ["cxr_pneumonia"]
    assert [f["model_name"] for f in chest["findings"]] == ["cxr_pneumonia"]
    assert PASSWORD not in caplog.text


def test_study_that_gains_instances_is_fetched_again_missing_ones_only(
    pacs: str, tmp_path: Path, database_url: str
) -> None:
    today = date.today()
    study_uid = generate_uid(prefix=None)
    first, second = f"{study_uid}.1", f"{study_uid}.2"
    sop = [generate_uid(prefix=None) for _ in range(4)]
    for uid in sop[:2]:
        upload(pacs, _instance(study_uid, first, uid, today))
    storage = tmp_path / "storage"
    db = open_database(database_url)
    transport = RecordingTransport()
    client = orthanc_client(pacs, transport)
    assert PacsPoller(client, Intake(db, storage), lookback_days=2).poll_once() == 2
    assert transport.wado() == [f"/studies/{study_uid}/series/{first}"]

    seen: list[int] = []

    def analyze(study: Study) -> StudyResult:
        seen.append(study.n_instances)
        return result_with_finding(study)

    queue = JobQueue(db, storage, 0.0, on_complete=overlay_pusher(client))
    assert queue.run_one(analyze) and seen == [2]
    assert len(_overlays(pacs, study_uid)) == 2  # one per image; the PACS now has 4
    db.close()

    # While radlens is down, the modality sends one more image and a new series.
    upload(pacs, _instance(study_uid, first, sop[2], today))
    upload(pacs, _instance(study_uid, second, sop[3], today))
    db = open_database(database_url)
    transport.requests.clear()
    poller = PacsPoller(client, Intake(db, storage), lookback_days=2)  # a restarted radlens
    assert poller.poll_once() == 2
    assert sorted(transport.wado()) == [
        f"/studies/{study_uid}/series/{first}/instances/{sop[2]}",
        f"/studies/{study_uid}/series/{second}",
    ]
    assert _stored_sops(db, study_uid) == set(sop)
    assert _status(db, study_uid) == StudyStatus.RECEIVED  # reopened for analysis

    transport.requests.clear()
    assert poller.poll_once() == 0
    assert transport.requests == [("QIDO", "/studies")]  # counts match: nothing else asked
    queue = JobQueue(db, storage, 0.0, on_complete=overlay_pusher(client))
    assert queue.run_one(analyze) and seen == [2, 4]
    assert _status(db, study_uid) == StudyStatus.READY
    transport.requests.clear()
    assert poller.poll_once() == 0  # the new overlays are the PACS's only new instances
    assert transport.wado() == []
    with db.sessions() as session:
        total = session.scalar(select(func.count()).select_from(InstanceRow))
    assert total == 4
    client.close()
    db.close()


def test_qido_window_is_bounded_by_study_date_and_undated_studies_need_no_bound(
    pacs: str, db: Database, tmp_path: Path
) -> None:
    today = date.today()
    recent, old, undated = (
        generate_uid(prefix=None),
        generate_uid(prefix=None),
        generate_uid(prefix=None),
    )
    upload(
        pacs, _instance(recent, f"{recent}.1", generate_uid(prefix=None), today - timedelta(days=1))
    )
    upload(pacs, _instance(old, f"{old}.1", generate_uid(prefix=None), today - timedelta(days=30)))
    upload(pacs, _instance(undated, f"{undated}.1", generate_uid(prefix=None), None))
    intake = Intake(db, tmp_path / "storage")
    transport = RecordingTransport()
    client = orthanc_client(pacs, transport)

    assert PacsPoller(client, intake, lookback_days=2).poll_once() == 1
    assert _stored_sops(db, recent) and not _stored_sops(db, old)
    # Orthanc 1.10 does not match a study without StudyDate against a date range.
    assert not _stored_sops(db, undated)
    assert PacsPoller(client, intake, lookback_days=0).poll_once() == 2
    assert _stored_sops(db, old) and _stored_sops(db, undated)
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


def test_serve_polls_pacs_only_when_configured_within_its_lookback(
    pacs: str, db: Database, tmp_path: Path
) -> None:
    from radlens.config import Settings
    from radlens.server.app import start_pacs_poller

    intake = Intake(db, tmp_path / "storage")
    assert start_pacs_poller(Settings(home=tmp_path), intake) is None
    settings = Settings(
        home=tmp_path,
        pacs_url=f"{pacs}/dicom-web",
        pacs_username=USER,
        pacs_password=PASSWORD,
        pacs_poll_seconds=0.2,
        pacs_lookback_days=1,
    )
    assert PASSWORD not in repr(settings)
    today, recent, old = date.today(), generate_uid(prefix=None), generate_uid(prefix=None)
    upload(pacs, _instance(recent, f"{recent}.1", generate_uid(prefix=None), today))
    upload(pacs, _instance(old, f"{old}.1", generate_uid(prefix=None), today - timedelta(days=3)))
    poller = start_pacs_poller(settings, intake)
    assert poller is not None
    try:
        deadline = time.monotonic() + 20
        while not _stored_sops(db, recent) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _stored_sops(db, recent)
        time.sleep(1.0)  # several more rounds: the old study stays outside the window
        assert not _stored_sops(db, old)
    finally:
        poller.stop()
