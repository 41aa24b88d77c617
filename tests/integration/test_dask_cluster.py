"""``radlens batch`` on a real Dask cluster on loopback.

The fixture starts a ``dask scheduler`` and two ``dask worker`` processes (one thread each,
``--resources radlens=1``, bound to 127.0.0.1, no dashboards) and stops them by PID. The
workers run without a nanny, so the PID a test kills is the worker itself. Every batch runs
as the ``radlens`` command in a subprocess, as a site would run it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pydicom
import pytest
from orthanc_helpers import PASSWORD, USER, upload
from pydicom.uid import generate_uid

from radlens.analyze import demo_inputs
from radlens.cluster.batch import DB_FILE, SUMMARY_FILE
from radlens.cluster.results import TIMING_COLUMNS
from radlens.store.batch import batch_records
from radlens.store.db import open_database
from radlens.warning_scopes import ignoring

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
CHEST = "RG1_J2KR.dcm"
SHARED_DICOM = Path(__file__).parents[3] / "shared" / "data" / "dicom"  # ../shared/data


@dataclass
class Cluster:
    folder: Path
    scheduler_file: Path
    scheduler: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return str(json.loads(self.scheduler_file.read_text())["address"])

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = (self.folder / f"worker-{len(self.workers)}.log").open("wb")
        worker = subprocess.Popen(
            [
                str(BIN / "dask"),
                "worker",
                "--scheduler-file",
                str(self.scheduler_file),
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                "--no-nanny",
                "--resources",
                "radlens=1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.workers.append(worker)
        return worker

    def wait_for_workers(self, count: int, timeout_s: float = 90.0) -> None:
        from distributed import Client

        # Dask's own deprecations are not ours to fail on
        with ignoring(), Client(self.address, timeout=timeout_s) as client:
            client.wait_for_workers(count, timeout=timeout_s)

    def stop(self) -> None:
        for process in [*self.workers, *([self.scheduler] if self.scheduler else [])]:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in [*self.workers, *([self.scheduler] if self.scheduler else [])]:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("dask")
    found = Cluster(folder, folder / "scheduler.json")
    log = (folder / "scheduler.log").open("wb")
    found.scheduler = subprocess.Popen(
        [
            str(BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(found.scheduler_file),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        deadline = time.monotonic() + 60
        while not found.scheduler_file.is_file():
            if found.scheduler.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dask scheduler did not start: {_tail(folder / 'scheduler.log')}")
            time.sleep(0.2)
        for _ in range(2):
            found.start_worker()
        found.wait_for_workers(2)
        yield found
    finally:
        found.stop()


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.is_file() else ""


def batch(*args: str, timeout_s: float = 240) -> tuple[int, dict[str, Any]]:
    """Run ``radlens batch ... --json``; its exit code and summary."""
    done = subprocess.run(
        [str(BIN / "radlens"), "batch", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode in (0, 2), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


def _findings_documents(out: Path) -> dict[str, dict[str, Any]]:
    documents = {}
    for path in sorted(out.glob("*/findings.json")):
        document = json.loads(path.read_text())
        document.pop("timings_s")
        documents[path.parent.name] = document
    return documents


def _studies(out: Path) -> list[dict[str, Any]]:
    rows = pq.read_table(out / "studies.parquet").to_pylist()
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def test_dask_and_local_engines_give_the_same_findings(cluster: Cluster, tmp_path: Path) -> None:
    inputs = [str(p) for p in demo_inputs()]
    shared = SHARED_DICOM
    if shared.is_dir():  # else only the pydicom-data samples (not in a user's clone)
        inputs.append(str(shared))
    listing = tmp_path / "inputs.txt"
    listing.write_text("\n".join(inputs) + "\n")
    local, dask = tmp_path / "local", tmp_path / "dask"
    code_local, summary_local = batch(str(listing), "-o", str(local), "--workers", "1")
    code_dask, summary_dask = batch(
        str(listing),
        "-o",
        str(dask),
        "--engine",
        "dask",
        "--address",
        cluster.address,
        "--resource",
        "radlens=1",
    )
    assert summary_dask["engine"].startswith("dask tcp://127.0.0.1:")
    assert summary_local["done"] == summary_dask["done"] >= len(demo_inputs())
    assert summary_local["failed"] == summary_dask["failed"] == 0
    rows_local = pq.read_table(local / "findings.parquet").to_pylist()
    rows_dask = pq.read_table(dask / "findings.parquet").to_pylist()
    differing = [
        (a["study_uid"], k, a[k], b[k])
        for a, b in zip(rows_local, rows_dask, strict=True)
        for k in a
        if a[k] != b[k]
    ]
    assert differing == []
    assert pq.read_table(dask / "findings.parquet").num_rows > 0
    assert _studies(local) == _studies(dask)
    assert _findings_documents(local) == _findings_documents(dask)
    assert summary_local["rejected"] == summary_dask["rejected"]
    if shared.is_dir():
        rejected = {r["location"] for r in summary_dask["rejected"]}
        assert code_local == code_dask == 2  # malformed files are reported, not a crash
        assert any("/malformed/" in location for location in rejected)
    else:
        assert code_local == code_dask == 0


def _copies(source: Path, folder: Path, count: int) -> list[str]:
    """``count`` copies of a study, each with new Study, Series and SOP Instance UIDs."""
    folder.mkdir()
    uids = []
    for index in range(count):
        dataset = pydicom.dcmread(source)
        dataset.StudyInstanceUID = generate_uid()
        dataset.SeriesInstanceUID = generate_uid()
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dataset.save_as(folder / f"copy-{index:03d}.dcm", enforce_file_format=True)
        uids.append(str(dataset.StudyInstanceUID))
    return uids


def test_a_worker_killed_mid_batch_loses_and_duplicates_no_study(
    cluster: Cluster, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    uids = _copies(pydicom_data_dir / CHEST, tmp_path / "in", 16)
    out = tmp_path / "out"
    command = [
        str(BIN / "radlens"),
        "batch",
        str(tmp_path / "in"),
        "-o",
        str(out),
        "--engine",
        "dask",
        "--address",
        cluster.address,
        "--no-overlays",
        "--json",
    ]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = cluster.workers[0]
    try:
        deadline = time.monotonic() + 180
        while len(list(out.glob("results/*/studies/*.parquet"))) < 3:
            assert driver.poll() is None, driver.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the batch did not start"
            time.sleep(0.1)
        os.kill(victim.pid, signal.SIGKILL)  # mid-batch: 13 studies are still to come
        victim.wait(10)
        stdout, stderr = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        cluster.workers.remove(victim)
        cluster.start_worker()  # later tests get two workers again
    assert driver.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert (summary["done"], summary["failed"]) == (16, 0)
    studies = pq.read_table(out / "studies.parquet").to_pylist()
    assert sorted(s["study_uid"] for s in studies) == sorted(uids)  # each exactly once
    assert {s["status"] for s in studies} == {"done"}
    workers = {s["worker"] for s in studies}
    assert len(workers) >= 2  # both workers took part before one was lost
    findings = pq.read_table(out / "findings.parquet").column("study_uid").to_pylist()
    assert sorted(findings) == sorted(uids)  # one chest finding per study, none twice
    db = open_database(f"sqlite:///{out / DB_FILE}")
    try:
        records = batch_records(db)
    finally:
        db.close()
    assert sorted(r.study_uid for r in records) == sorted(uids)
    assert {r.status for r in records} == {"done"}
    cluster.wait_for_workers(2)


def test_a_rerun_on_any_engine_skips_the_finished_studies(
    cluster: Cluster, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    inputs = str(pydicom_data_dir / CHEST)
    dask = ("--engine", "dask", "--address", cluster.address)
    _, first = batch(inputs, "-o", str(out), *dask)
    _, again = batch(inputs, "-o", str(out), *dask)
    _, local = batch(inputs, "-o", str(out), "--workers", "0")
    assert (first["done"], first["skipped"]) == (1, 0)
    assert (again["done"], again["skipped"]) == (0, 1)
    assert (local["done"], local["skipped"]) == (0, 1)
    assert json.loads((out / SUMMARY_FILE).read_text())["skipped"] == 1


def test_a_dicomweb_source_is_retrieved_by_the_workers(
    cluster: Cluster, pacs: str, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    study_uid = upload(pacs, (pydicom_data_dir / CHEST).read_bytes())
    url = f"{pacs}/dicom-web"
    credentials = ("--username", USER, "--password", PASSWORD)
    _, summary = batch(
        url,
        "-o",
        str(tmp_path / "web"),
        "--engine",
        "dask",
        "--address",
        cluster.address,
        *credentials,
    )
    assert (summary["done"], summary["failed"]) == (1, 0)
    _, local = batch(str(pydicom_data_dir / CHEST), "-o", str(tmp_path / "file"), "--workers", "0")
    web = _findings_documents(tmp_path / "web")
    assert list(web) == [study_uid] and web == _findings_documents(tmp_path / "file")


def test_serve_with_the_dask_engine_analyzes_stored_studies_on_the_cluster(
    cluster: Cluster, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    from radlens.cluster.remote import ClusterAnalyzer
    from radlens.config import Settings
    from radlens.server.app import start_services, stop_workers
    from radlens.store.models import StudyRow

    settings = Settings(
        home=tmp_path / "home",
        engine="dask",
        dask_address=cluster.address,
        dicom_enabled=False,
        quiet_period_s=0,
        poll_interval_s=0.1,
    )
    services, workers = start_services(settings, None)
    try:
        assert isinstance(workers.analyze, ClusterAnalyzer)
        received = services.intake.receive((pydicom_data_dir / CHEST).read_bytes(), "test")
        deadline = time.monotonic() + 120
        while True:
            with services.db.sessions() as session:
                study = session.get(StudyRow, received.study_instance_uid)
                assert study is not None
                if study.status == "ready" or time.monotonic() > deadline:
                    break
            time.sleep(0.2)
        assert study.status == "ready" and study.result is not None
        codes = [f["code"] for s in study.result["series"] for f in s["findings"]]
        assert codes == ["pneumonia"]  # stored sealed, analyzed on a Dask worker
    finally:
        stop_workers(workers)
        services.db.close()
