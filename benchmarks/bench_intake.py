"""Benchmark: DICOM intake of a real ``radlens serve`` (C-STORE, worklist, memory).

Starts ``radlens serve`` as a subprocess (temporary ``--home``, free ports, the default
SQLite database, the shipped models, a short ``--quiet-period``), logs in as a throwaway
account and measures:

1. **Latency**: C-STORE of the pydicom-data CR chest radiograph (RG1_J2KR, re-UIDed each
   time) until the study shows in ``GET /api/worklist`` as ``ready`` with a priority, split
   into "to C-STORE success" and "success to visible". The quiet period is part of it.
   Goal (issue): p95 <= 2 s.
2. **Throughput**: re-UIDed copies of pydicom's CT_small over 1 and 4 concurrent
   associations, in instances/s from the first send to the last success.
3. **Memory**: VmRSS of the server (and any children) sampled throughout; VmHWM at the end.
   Goal: <= 1 GiB.

The analysis workers stay on; each association sends its own study, so a study becomes due
only once its sender stops, and the queue is drained between phases. The benchmark's SCU is
pynetdicom with TCP_NODELAY on (as DCMTK-based modalities do); one extra single-association
run without it shows what Nagle's algorithm costs a pynetdicom sender.

Writes benchmarks/intake.json and benchmarks/intake.md; ``--quick`` is a smoke run. Run with
``make bench``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pynetdicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ComputedRadiographyImageStorage,
    CTImageStorage,
)

from radlens import __version__
from radlens.analyze import demo_inputs
from radlens.config import Settings
from radlens.models.registry import discover

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe import cpu_probe_ms  # noqa: E402
from probe import describe as describe_probe  # noqa: E402

HERE = Path(__file__).parent
USERNAME, PASSWORD = "bench", "bench-password-0"  # a throwaway account in a temporary home
AE_TITLE = "RADLENS"
GOAL_LATENCY_P95_S = 2.0
GOAL_RSS_MIB = 1024.0
POLL_EVERY_S = 0.02
RSS_EVERY_S = 0.05
SERVER_POLL_INTERVAL_S = float(Settings.model_fields["poll_interval_s"].default)  # not changed here
BUSY = ("received", "analyzing")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    repeats: int = 30
    warmups: int = 1
    instances: int = 200
    quiet_period_s: float = 0.5
    rounds: int = 3  # of each throughput run; the median is reported
    workers: int = 1
    quick: bool = False


QUICK = Plan(repeats=3, warmups=1, instances=12, rounds=1, quick=True)


# --- machine and statistics ---------------------------------------------------------------


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / MIB, 1)
    return 0.0


def machine() -> dict[str, Any]:
    import onnxruntime

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "ram_gib": ram_gib(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "pydicom": pydicom.__version__,
        "pynetdicom": pynetdicom.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / max / mean in seconds (percentiles interpolated linearly)."""
    data = np.asarray(values, dtype=float)
    return {
        "p50": round(float(np.percentile(data, 50)), 4),
        "p95": round(float(np.percentile(data, 95)), 4),
        "max": round(float(data.max()), 4),
        "mean": round(float(data.mean()), 4),
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def epoch_s(stamp: datetime) -> float:
    """Seconds since the epoch of a naive UTC datetime (as the store writes them)."""
    return stamp.replace(tzinfo=UTC).timestamp()


# --- the server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def radlens_command() -> str:
    return str(Path(sys.executable).with_name("radlens"))


def add_account(home: Path) -> None:
    subprocess.run(
        [radlens_command(), "users", "add", USERNAME, "--password-stdin", "--home", str(home)],
        input=f"{PASSWORD}\n".encode(),
        check=True,
        stdout=subprocess.DEVNULL,
    )


@dataclass
class Server:
    """A ``radlens serve`` subprocess on free loopback ports."""

    home: Path
    plan: Plan
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 120.0) -> float:
        """Start and wait for ``/readyz``; return the seconds it took."""
        started = time.monotonic()
        command = [
            radlens_command(), "serve", "--home", str(self.home),
            "--port", str(self.http_port), "--dicom-port", str(self.dicom_port),
            "--ae-title", AE_TITLE, "--quiet-period", str(self.plan.quiet_period_s),
            "--workers", str(self.plan.workers),
        ]  # fmt: skip
        with (self.home / "server.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"radlens serve did not become ready; see {self.log_tail()}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; by PID only."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log_tail(self, lines: int = 20) -> str:
        text = (self.home / "server.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@contextmanager
def running_server(home: Path, plan: Plan) -> Iterator[tuple[Server, float]]:
    server = Server(home, plan)
    startup_s = server.start()
    try:
        yield server, startup_s
    finally:
        server.stop()


# --- memory -------------------------------------------------------------------------------


def proc_status_kib(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/<pid>/task/*/children)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                pending.extend(int(c) for c in children.read_text().split())
            except (OSError, ValueError):
                continue
    return found


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process tree so far (/proc/<pid>/stat)."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """Samples the summed VmRSS of a process tree every ``RSS_EVERY_S``, per phase."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.phase = "startup"
        self.peak_kib: dict[str, int] = {}
        self.samples = 0
        self.pids_seen: set[int] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            tree = process_tree(self.pid)
            self.pids_seen.update(tree)
            total = sum(proc_status_kib(p, "VmRSS") for p in tree)
            self.peak_kib[self.phase] = max(self.peak_kib.get(self.phase, 0), total)
            self.samples += 1
            self._halt.wait(RSS_EVERY_S)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# --- the HTTP API ---------------------------------------------------------------------------


class Api:
    """A logged-in client of the worklist API; records how long each worklist read takes."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10)
        response = self.client.post(
            "/api/auth/login", json={"username": USERNAME, "password": PASSWORD}
        )
        response.raise_for_status()
        self.request_s: list[float] = []

    def worklist(self) -> dict[str, dict[str, Any]]:
        started = time.perf_counter()
        response = self.client.get("/api/worklist")
        self.request_s.append(time.perf_counter() - started)
        response.raise_for_status()
        return {entry["study_uid"]: entry for entry in response.json()}

    def wait_visible(self, study_uid: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Poll until the study is ``ready`` with a priority; return its entry."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            entry = self.worklist().get(study_uid)
            if entry is not None and entry["status"] == "ready" and entry["priority"]:
                return entry
            time.sleep(POLL_EVERY_S)
        raise TimeoutError(f"study not ready with a priority after {timeout_s:.0f} s")

    def drain(self, timeout_s: float = 300.0) -> float:
        """Wait until no study is received or analyzing; return the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if not any(e["status"] in BUSY for e in self.worklist().values()):
                return time.monotonic() - started
            time.sleep(0.1)
        raise TimeoutError(f"analysis queue not drained after {timeout_s:.0f} s")

    def close(self) -> None:
        self.client.close()


# --- the SCU ------------------------------------------------------------------------------


def storage_ae() -> AE:
    ae = AE(ae_title="RLBENCH")
    ae.add_requested_context(ComputedRadiographyImageStorage, JPEG2000Lossless)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    return ae


def _set_nodelay(event: Event) -> None:
    """On connect, before the A-ASSOCIATE-RQ: send each PDU at once (no Nagle)."""
    transport = event.assoc.dul.socket
    if transport is not None and transport.socket is not None:
        transport.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def associate(ae: AE, port: int, nodelay: bool) -> Association:
    handlers: list[EventHandlerType] = [(evt.EVT_CONN_OPEN, _set_nodelay)] if nodelay else []
    assoc = ae.associate("127.0.0.1", port, ae_title=AE_TITLE, evt_handlers=handlers)
    if not assoc.is_established:
        raise RuntimeError("association with radlens serve was not established")
    return assoc


def set_uids(ds: Dataset, study_uid: str, series_uid: str, sop_uid: str) -> None:
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)


def store(assoc: Association, ds: Dataset) -> None:
    status = assoc.send_c_store(ds)
    code = int(status.Status) if status and "Status" in status else None
    if code != 0:
        raise RuntimeError(f"C-STORE failed with status {code}")


# --- 1. latency -------------------------------------------------------------------------


def one_study(ae: AE, api: Api, port: int, sample: Dataset) -> dict[str, Any]:
    """Send one re-UIDed copy of ``sample`` and wait until the worklist shows it triaged."""
    study_uid = generate_uid()
    set_uids(sample, study_uid, generate_uid(), generate_uid())
    started = time.perf_counter()
    assoc = associate(ae, port, nodelay=True)
    associated = time.perf_counter()
    try:
        store(assoc, sample)
        stored = time.perf_counter()
        stored_wall = time.time()
    finally:
        assoc.release()
    entry = api.wait_visible(study_uid)
    visible = time.perf_counter()
    return {
        "study_uid": study_uid,
        "associate_s": associated - started,
        "store_s": stored - associated,
        "to_success_s": stored - started,
        "success_to_visible_s": visible - stored,
        "total_s": visible - started,
        "stored_wall": stored_wall,
        "visible_wall": stored_wall + (visible - stored),
        "priority": entry["priority"],
        "turnaround_s": entry["turnaround_s"],
    }


def measure_latency(api: Api, port: int, sample_path: Path, plan: Plan) -> list[dict[str, Any]]:
    """One study at a time. A random pause before each send (not timed) puts the arrival at
    a random point of the server's queue poll cycle, as independent arrivals would be;
    sending right after the previous result would lock onto one phase of it."""
    ae = storage_ae()
    sample = pydicom.dcmread(sample_path)
    pauses = random.Random(0)
    runs = []
    for _ in range(plan.warmups + plan.repeats):
        time.sleep(pauses.uniform(0.0, SERVER_POLL_INTERVAL_S))
        runs.append(one_study(ae, api, port, sample))
    return runs


def latency_result(runs: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    measured = runs[plan.warmups :]
    keys = ("associate_s", "store_s", "to_success_s", "success_to_visible_s", "total_s")
    priorities: dict[str, int] = {}
    for run in measured:
        priorities[run["priority"]] = priorities.get(run["priority"], 0) + 1
    total = summary([r["total_s"] for r in measured])
    return {
        "repeats": len(measured),
        "warmups": plan.warmups,
        **{key: summary([r[key] for r in measured]) for key in keys},
        "first_study_total_s": round(runs[0]["total_s"], 4) if plan.warmups else None,
        "priorities": priorities,
        "goal_p95_s": GOAL_LATENCY_P95_S,
        "goal": verdict(total["p95"] <= GOAL_LATENCY_P95_S),
    }


# --- 2. throughput ----------------------------------------------------------------------


@dataclass
class Sender:
    """One association sending its own study; fills in its own timings."""

    port: int
    template: Dataset
    count: int
    nodelay: bool
    study_uid: str = field(default_factory=generate_uid)
    first_send: float = 0.0
    last_success: float = 0.0
    store_s: list[float] = field(default_factory=list)
    error: str = ""

    def run(self, barrier: threading.Barrier) -> None:
        ds = copy.deepcopy(self.template)
        series_uid = generate_uid()
        sop_uids = [generate_uid() for _ in range(self.count)]
        try:
            assoc = associate(storage_ae(), self.port, self.nodelay)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            barrier.abort()  # the others must not wait for this one
            return
        try:
            barrier.wait(60)
            self.first_send = time.perf_counter()
            for number, sop_uid in enumerate(sop_uids, start=1):
                set_uids(ds, self.study_uid, series_uid, sop_uid)
                ds.InstanceNumber = number
                started = time.perf_counter()
                store(assoc, ds)
                self.last_success = time.perf_counter()
                self.store_s.append(self.last_success - started)
        except Exception as exc:  # reported in the results; the other senders go on
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            assoc.release()


def measure_throughput(
    server: Server, template: Dataset, instances: int, associations: int, nodelay: bool
) -> tuple[dict[str, Any], list[str], tuple[float, float]]:
    """Send ``instances`` over ``associations`` at once; return figures, studies, window.

    CPU time of the server and of this process (the client) is bracketed around the whole
    run, associations included, to show which side is busy.
    """
    port = server.dicom_port
    per = [instances // associations + (i < instances % associations) for i in range(associations)]
    senders = [Sender(port, template, n, nodelay) for n in per]
    barrier = threading.Barrier(associations)
    threads = [threading.Thread(target=s.run, args=(barrier,)) for s in senders]
    server_cpu, client_cpu = cpu_s(server.pid), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server_cpu, client_cpu = cpu_s(server.pid) - server_cpu, time.process_time() - client_cpu
    errors = [s.error for s in senders if s.error]
    if errors:
        raise RuntimeError(f"throughput run failed: {errors[0]}")
    start = min(s.first_send for s in senders)
    end = max(s.last_success for s in senders)
    elapsed = end - start
    offset = time.time() - time.perf_counter()
    result = {
        "associations": associations,
        "tcp_nodelay": nodelay,
        "instances": instances,
        "seconds": round(elapsed, 3),
        "instances_per_s": round(instances / elapsed, 1),
        "store_s": summary([t for s in senders for t in s.store_s]),
        "server_cpu_ms_per_instance": round(server_cpu * 1000 / instances, 2),
        "server_cores_busy": round(server_cpu / elapsed, 2),
        "client_cpu_ms_per_instance": round(client_cpu * 1000 / instances, 2),
    }
    return result, [s.study_uid for s in senders], (start + offset, end + offset)


def testdata_path(name: str) -> str:
    path = get_testdata_file(name)
    if not isinstance(path, str):
        raise FileNotFoundError(f"{name}: not among pydicom's test files")
    return path


# --- server-side timeline (read from the database after the server stopped) ---------------


def job_timeline(database_url: str) -> dict[str, dict[str, Any]]:
    """For each study: first receipt, last instance and its done job's times (epoch s)."""
    from sqlalchemy import select

    from radlens.store.db import open_database
    from radlens.store.models import JobRow, JobState, StudyRow

    db = open_database(database_url, migrate=False)
    studies: dict[str, dict[str, Any]] = {}
    try:
        with db.sessions() as session:
            # Only the timestamps: the encrypted columns stay sealed (no key needed here).
            times = select(StudyRow.study_uid, StudyRow.received_at, StudyRow.last_instance_at)
            for uid, received, last_instance in session.execute(times):
                studies[uid] = {
                    "received": epoch_s(received),
                    "last_instance": epoch_s(last_instance),
                    "jobs": [],
                }
            for job in session.scalars(select(JobRow).order_by(JobRow.id)):
                studies[job.study_uid]["jobs"].append(
                    {
                        "state": job.state,
                        "created": epoch_s(job.created_at),
                        "started": epoch_s(job.started_at) if job.started_at else None,
                        "finished": epoch_s(job.finished_at) if job.finished_at else None,
                        "done": job.state == JobState.DONE,
                    }
                )
    finally:
        db.close()
    return studies


def latency_split(
    runs: list[dict[str, Any]], timeline: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Where success-to-visible goes, from the server's own timestamps (same clock)."""
    parts: dict[str, list[float]] = {
        "stored_to_queued_s": [],
        "queued_to_started_s": [],
        "analysis_s": [],
        "finished_to_visible_s": [],
    }
    for run in runs:
        study = timeline[run["study_uid"]]
        job = next(j for j in study["jobs"] if j["done"])
        parts["stored_to_queued_s"].append(job["created"] - study["last_instance"])
        parts["queued_to_started_s"].append(job["started"] - job["created"])
        parts["analysis_s"].append(job["finished"] - job["started"])
        parts["finished_to_visible_s"].append(run["visible_wall"] - job["finished"])
    return {key: summary(values) for key, values in parts.items()}


def jobs_started_between(timeline: dict[str, dict[str, Any]], window: tuple[float, float]) -> int:
    start, end = window
    return sum(
        1
        for study in timeline.values()
        for job in study["jobs"]
        if job["started"] is not None and start <= job["started"] <= end
    )


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median instances/s, with every round's rate and totals."""
    ordered = sorted(rounds, key=lambda r: r["instances_per_s"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["rounds"] = len(rounds)
    median["instances_per_s_rounds"] = [r["instances_per_s"] for r in rounds]
    median["stored"] = sum(r["stored"] for r in rounds)
    median["sent"] = sum(r["instances"] for r in rounds)
    median["analysis_jobs_started_during_send"] = sum(
        r["analysis_jobs_started_during_send"] for r in rounds
    )
    return median


# --- the whole run ------------------------------------------------------------------------

THROUGHPUT_RUNS = ((1, True), (4, True), (1, False))  # (associations, TCP_NODELAY)


def run_phases(
    server: Server, sampler: RssSampler, plan: Plan, sample_path: Path
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]], float]:
    """Latency, then each throughput run (queue drained between); return what was measured."""
    api = Api(server.url)
    try:
        sampler.phase = "latency"
        runs = measure_latency(api, server.dicom_port, sample_path, plan)
        template = pydicom.dcmread(testdata_path("CT_small.dcm"))
        throughput = []
        for associations, nodelay in THROUGHPUT_RUNS:
            rounds = []
            for _ in range(plan.rounds):
                sampler.phase = f"throughput_{associations}{'' if nodelay else '_nagle'}"
                figures, studies, window = measure_throughput(
                    server, template, plan.instances, associations, nodelay
                )
                sampler.phase += "_drain"
                figures["drain_s"] = round(api.drain(), 3)
                listed = api.worklist()
                figures["stored"] = sum(listed[uid]["n_instances"] for uid in studies)
                figures["window"] = window
                rounds.append(figures)
            throughput.append(rounds)
        poll_p50 = float(np.percentile(api.request_s, 50))
    finally:
        api.close()
    return runs, throughput, poll_p50


def measure(plan: Plan, sample_path: Path) -> dict[str, Any]:
    load_start, probe_start = os.getloadavg(), cpu_probe_ms()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="radlens-bench-") as tmp:
        home = Path(tmp)
        add_account(home)
        with running_server(home, plan) as (server, startup_s):
            sampler = RssSampler(server.pid)
            sampler.start()
            try:
                runs, throughput, poll_p50 = run_phases(server, sampler, plan, sample_path)
                hwm_kib = sum(proc_status_kib(p, "VmHWM") for p in process_tree(server.pid))
            finally:
                sampler.stop()
        timeline = job_timeline(f"sqlite:///{home / 'radlens.sqlite'}")
    for rounds in throughput:
        for figures in rounds:
            window = figures.pop("window")
            figures["analysis_jobs_started_during_send"] = jobs_started_between(timeline, window)
    latency = latency_result(runs, plan)
    latency["server_split"] = latency_split(runs[plan.warmups :], timeline)
    latency["poll_request_p50_s"] = round(poll_p50, 4)
    peak_mib = max(sampler.peak_kib.values()) / 1024
    rss = {
        "peak_sampled_mib": round(peak_mib, 1),
        "vm_hwm_mib": round(hwm_kib / 1024, 1),
        "per_phase_peak_mib": {k: round(v / 1024, 1) for k, v in sampler.peak_kib.items()},
        "samples": sampler.samples,
        "sample_every_s": RSS_EVERY_S,
        "processes": len(sampler.pids_seen),
        "goal_mib": GOAL_RSS_MIB,
        "goal": verdict(max(peak_mib, hwm_kib / 1024) <= GOAL_RSS_MIB),
    }
    return {
        "startup_s": round(startup_s, 2),
        "latency": latency,
        "throughput": [median_round(rounds) for rounds in throughput],
        "rss": rss,
        "load_avg": {"start": list(load_start), "end": list(os.getloadavg())},
        "cpu_probe_ms": [probe_start, cpu_probe_ms()],
        "wall_s": round(time.monotonic() - began, 1),
    }


def settings_used(plan: Plan, sample_path: Path) -> dict[str, Any]:
    return {
        "database": "SQLite (the default: file in --home, WAL, synchronous=FULL)",
        "quiet_period_s": plan.quiet_period_s,
        "workers": plan.workers,
        "server_poll_interval_s": SERVER_POLL_INTERVAL_S,
        "models": [f"{m.card.name} {m.card.version}" for m in discover()],
        "latency_sample": sample_path.name,
        "latency_repeats": plan.repeats,
        "latency_warmups": plan.warmups,
        "throughput_sample": "CT_small.dcm (pydicom test file, 128x128, explicit VR LE)",
        "throughput_instances": plan.instances,
        "throughput_rounds": plan.rounds,
        "client_poll_every_s": POLL_EVERY_S,
        "scu": f"pynetdicom {pynetdicom.__version__}, in the benchmark process, same machine",
        "quick": plan.quick,
    }


def run(plan: Plan, out_dir: Path) -> dict[str, Any]:
    """Measure, then write ``intake.json`` and ``intake.md`` to ``out_dir``."""
    sample_path = next(p for p in demo_inputs() if p.name == "RG1_J2KR.dcm")
    figures = measure(plan, sample_path)
    result = {
        "benchmark": "radlens serve intake: C-STORE -> triaged worklist entry; throughput; RSS",
        "radlens_version": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "settings": settings_used(plan, sample_path),
        **figures,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "intake.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "intake.md").write_text(render_markdown(result))
    return result


# --- Markdown -----------------------------------------------------------------------------


def _ms(stats: dict[str, float]) -> str:
    return " | ".join(f"{stats[k] * 1000:.0f}" for k in ("p50", "p95", "max"))


def _probe(result: dict[str, Any]) -> str:
    """The CPU probe at start and end (``probe.cpu_probe_ms``), where the run kept it."""
    if "cpu_probe_ms" not in result:
        return ""
    return (
        f" {describe_probe(*result['cpu_probe_ms'])}: runs of different days compare only as "
        "far as their probes agree."
    )


def _load(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


THROUGHPUT_HEADER = (
    "| associations | TCP_NODELAY | instances | s | instances/s (rounds) "
    "| C-STORE ms p50 | p95 | max | server CPU ms/inst. | server cores busy "
    "| client CPU ms/inst. | analyses during send | drain s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _throughput_row(t: dict[str, Any]) -> str:
    rounds = ", ".join(f"{r:.0f}" for r in t["instances_per_s_rounds"])
    return (
        f"| {t['associations']} | {'on' if t['tcp_nodelay'] else 'off'} | {t['instances']} "
        f"| {t['seconds']:.2f} | **{t['instances_per_s']:.1f}** ({rounds}) | {_ms(t['store_s'])} "
        f"| {t['server_cpu_ms_per_instance']:.1f} | {t['server_cores_busy']:.2f} "
        f"| {t['client_cpu_ms_per_instance']:.1f} "
        f"| {t['analysis_jobs_started_during_send']} | {t['drain_s']:.1f} |"
    )


def _latency_rows(lat: dict[str, Any]) -> str:
    split = lat["server_split"]
    rows = [
        ("to C-STORE success", lat["to_success_s"]),
        ("- associate", lat["associate_s"]),
        ("- C-STORE of the 4.3 MB instance", lat["store_s"]),
        ("success to visible in the worklist", lat["success_to_visible_s"]),
        (
            "- last instance stored to job queued (quiet period + queue poll)",
            split["stored_to_queued_s"],
        ),
        ("- queued to analysis started", split["queued_to_started_s"]),
        ("- analysis (read, decode, models, commit)", split["analysis_s"]),
        ("- committed to seen by the poller", split["finished_to_visible_s"]),
        ("**total**", lat["total_s"]),
    ]
    return "\n".join(f"| {name} | {_ms(stats)} |" for name, stats in rows)


def render_markdown(result: dict[str, Any]) -> str:
    m, s, lat, rss = result["machine"], result["settings"], result["latency"], result["rss"]
    by_run = {(t["associations"], t["tcp_nodelay"]): t for t in result["throughput"]}
    one, four, nagle = by_run[(1, True)], by_run[(4, True)], by_run[(1, False)]
    queued = lat["server_split"]["stored_to_queued_s"]
    quiet = s["quiet_period_s"]
    phases = ", ".join(f"{k} {v:.0f}" for k, v in rss["per_phase_peak_mib"].items())
    stored = all(t["stored"] == t["sent"] for t in result["throughput"])
    stored_line = (
        "Every instance sent was listed in the worklist"
        if stored
        else "**Not every instance sent was listed in the worklist**"
    )
    quick = (
        "\n**Quick smoke run (`--quick`): too few repetitions to judge the goals.**\n"
        if s["quick"]
        else ""
    )
    return f"""# Benchmark: DICOM intake of `radlens serve`
{quick}
Measured {result["date"]} on {m["cpu"]} ({m["cores"]} cores, {m["ram_gib"]} GiB RAM);
Python {m["python"]}, pydicom {m["pydicom"]}, pynetdicom {m["pynetdicom"]},
onnxruntime {m["onnxruntime"]}; radlens {result["radlens_version"]}.
Load average (1 / 5 / 15 min): {_load(result["load_avg"]["start"])} at start,
{_load(result["load_avg"]["end"])} at the end.{_probe(result)}
The benchmark's client (DICOM sender and HTTP poller) runs on the same machine and shares its
cores with the server.

| figure | measured | goal | |
|---|---|---|---|
| C-STORE to prioritized result in the worklist, p95 | {lat["total_s"]["p95"]:.2f} s \
| <= {lat["goal_p95_s"]:g} s | **{lat["goal"]}** |
| server memory (RSS), peak | {max(rss["peak_sampled_mib"], rss["vm_hwm_mib"]):.0f} MiB \
| <= {rss["goal_mib"]:.0f} MiB | **{rss["goal"]}** |
| intake, 1 association | {one["instances_per_s"]:.0f} instances/s | none set | |
| intake, 4 associations | {four["instances_per_s"]:.0f} instances/s | none set | |

## Settings

- Server: a real `radlens serve` subprocess, temporary `--home`, free loopback ports,
  ready {result["startup_s"]} s after start.
  - database: {s["database"]}
  - `--quiet-period {quiet:g}`: **part of the latency below**
  - `--workers {s["workers"]}`; queue poll interval {s["server_poll_interval_s"]:g} s (the default)
  - models: the shipped ones, {", ".join(s["models"])}
- Login: an account made with `radlens users add --password-stdin`, then
  `POST /api/auth/login`; the session cookie does the rest.
- Client: {s["scu"]}. TCP_NODELAY is set when the connection opens, as DCMTK-based senders
  do, except in the one run marked "off".

## 1. C-STORE to prioritized result in the worklist

{s["latency_sample"]} from pydicom-data (CR chest, 1955x1841, JPEG 2000 lossless, 4.3 MB) with
new Study, Series and SOP Instance UIDs each time; one association per study, one study at a
time, after a random pause of 0 to {s["server_poll_interval_s"]:g} s (not timed) so that
arrivals fall at random points of the server's queue poll. `GET /api/worklist` is polled
every {s["client_poll_every_s"] * 1000:.0f} ms (one poll took
{lat["poll_request_p50_s"] * 1000:.1f} ms at the median) until the study is `ready` with a
priority. {lat["repeats"]} studies after {lat["warmups"]} warm-up (the first study took
{_opt_s(lat["first_study_total_s"])}). The "-" rows split the time by the server's own
timestamps (studies and jobs tables; same machine, same clock).

| ms | p50 | p95 | max |
|---|---|---|---|
{_latency_rows(lat)}

Priorities given: {", ".join(f"{k} {v}" for k, v in lat["priorities"].items())}.
From the last instance to the queued job takes {(queued["p50"] - quiet) * 1000:.0f} ms
(p50) to {(queued["max"] - quiet) * 1000:.0f} ms (max) more than the {quiet:g} s quiet
period: the worker looks for due studies only every {s["server_poll_interval_s"]:g} s.

## 2. Intake throughput

{s["throughput_instances"]} re-UIDed copies of {s["throughput_sample"]} per run, split over
the associations (each its own thread, association and study), timed from the first send to
the last success; the median of {s["throughput_rounds"]} round(s), every round's rate in
brackets. The analysis workers stay on, but a study becomes due only after its sender
stops and the queue is drained before the next round: "analyses during send" counts
analyses that started inside a timed window (0: a clean intake figure). CPU time is that
of the whole run, associations included; "server cores busy" is the server's CPU time over
the timed window (one Python process: about 1.0 means its threads together keep one core
busy). {stored_line}.

{THROUGHPUT_HEADER}
{_throughput_row(one)}
{_throughput_row(four)}
{_throughput_row(nagle)}

Without TCP_NODELAY a pynetdicom sender waits for the server's delayed ACK (Nagle's
algorithm) on every C-STORE: {nagle["instances_per_s"]:.0f} instead of
{one["instances_per_s"]:.0f} instances/s on one association.

## 3. Server memory

VmRSS of the server's process tree ({rss["processes"]} process(es)) summed and sampled every
{rss["sample_every_s"] * 1000:.0f} ms through all runs ({rss["samples"]} samples): peak
**{rss["peak_sampled_mib"]:.0f} MiB**; VmHWM at the end {rss["vm_hwm_mib"]:.0f} MiB.
Peak by phase (MiB): {phases}.

Made by `make bench` (`benchmarks/bench_intake.py`; `--quick` for a smoke run).
"""


def _opt_s(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f} s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run (tiny N)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for intake.json/.md")
    parser.add_argument("--repeats", type=int, help="latency repetitions (default 30)")
    parser.add_argument("--instances", type=int, help="instances per throughput run (200)")
    parser.add_argument("--quiet-period", type=float, help="server --quiet-period (0.5 s)")
    parser.add_argument("--rounds", type=int, help="rounds of each throughput run (3)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    changes = {
        "repeats": args.repeats,
        "instances": args.instances,
        "quiet_period_s": args.quiet_period,
        "rounds": args.rounds,
    }
    plan = dataclasses.replace(plan, **{k: v for k, v in changes.items() if v is not None})
    result = run(plan, args.out)
    print(json.dumps({k: result[k] for k in ("latency", "throughput", "rss")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
