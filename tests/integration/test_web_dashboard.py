"""Model monitoring and the learning queue in a real browser: ``radlens serve`` (subprocess)
+ the built web UI + headless Chromium driven by Playwright.

The server's home is filled first through the library, as the analysis workers would have:
studies from two CT scanners (ACME "Scan 1" at CT01, Other "Portable 2" at WARD7) read by
the shipped pneumonia model's card (name and version), with OOD scores like its training
data at CT01 and far from it at WARD7, some uncertain findings, and three readers'
decisions (one finding disputed). In the browser: the monitoring page shows the model, its
figures, the SVG plots, one row per scanner and a drift alert for WARD7 only; the learning
queue alternates the two scanners and spells out the readers' disagreement. Screenshots go to
``test-artifacts/web/``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import ARTIFACTS, CHROMIUM, RADLENS, TIMEOUT_MS, require_browser

from radlens.config import Settings
from radlens.domain.findings import Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Study
from radlens.feedback.drift import reference_bins
from radlens.feedback.monitor import HISTOGRAM_EDGES
from radlens.models.card import read_card
from radlens.models.registry import zoo_folder
from radlens.server.app import encryption_keys
from radlens.store.db import open_database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.review import Decision, review_finding
from radlens.store.worklist import get_study
from radlens.warning_scopes import ignoring
from serve_helpers import free_port, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "reader-password-1"
CARD = read_card(zoo_folder() / "cxr_pneumonia" / "card.json")
STATIONS = {"CT01": ("ACME", "Scan 1"), "WARD7": ("Other", "Portable 2")}


sync_api = require_browser()


@dataclass(frozen=True)
class Server:
    url: str
    disputed: str  # the study whose finding two readers disagree on


def _instance(uid: str, station: str) -> bytes:
    import io

    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with ignoring():
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uid, f"{uid}.1"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{uid}.1.1"
        ds.Manufacturer, ds.ManufacturerModelName = STATIONS[station]
        ds.StationName = station
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _populate(home: Path) -> str:
    """40 studies per station analyzed (OOD like training at CT01, far from it at WARD7),
    with reviews; returns the disputed study."""
    assert CARD.ood is not None
    bins = {b.statistic: b for b in reference_bins(CARD.ood)}
    rng = np.random.default_rng(0)

    def draw(statistic: str, scale: float) -> float:
        b = bins[statistic]
        edges = np.array([0.0, *b.edges, b.edges[-1] * 1.5])
        i = rng.choice(len(b.expected), p=np.array(b.expected))
        return float(rng.uniform(edges[i], edges[i + 1]) * scale)

    settings = Settings(home=home)
    db = open_database(settings.database_url, keys=encryption_keys(settings))
    intake = Intake(db, settings.storage_dir)
    queue = JobQueue(db, settings.storage_dir, quiet_period_s=0.0)
    uids: dict[str, list[str]] = {station: [] for station in STATIONS}
    for n in range(80):
        station = "CT01" if n % 2 == 0 else "WARD7"
        uid = f"1.2.826.0.1.3680043.9.7780.{n + 1}"
        scale = 1.0 if station == "CT01" else 2.5
        probability = 0.9 if n == 0 else float(rng.uniform(0.05, 0.95))  # n 0: disputed
        intake.receive(_instance(uid, station), "test")

        def analyze(study: Study, p: float = probability, s: float = scale) -> StudyResult:
            series = study.series[0]
            decision = draw("decision", s)
            finding = Finding(
                CARD.finding_code,
                CARD.finding_label,
                p,
                CARD.thresholds["operating"],
                CARD.name,
                CARD.version,
                sop_instance_uid=series.instances[0].sop_instance_uid,
                ood_score=decision,
                ood_flag=decision >= 1.0,
                ood_feature_score=draw("feature", s),
                ood_input_score=draw("input", s),
            )
            result = SeriesResult(series.series_instance_uid, "CT", "", 1, (CARD.name,), (finding,))
            return StudyResult(study.study_instance_uid, (result,))

        assert queue.run_one(analyze)
        uids[station].append(uid)
    disputed = uids["CT01"][0]
    for uid, readers in ((disputed, ("ann", "bob")), (uids["CT01"][1], ("ann",))):
        document = get_study(db, uid).result
        assert document is not None
        fid = document["series"][0]["findings"][0]["id"]
        decisions = (Decision.ACCEPTED, Decision.REJECTED)
        for reader, decision in zip(readers, decisions, strict=False):
            review_finding(db, uid, fid, decision, reader, confidence=3)
    db.close()
    return disputed


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    disputed = _populate(tmp_path)
    for name in ("reader", "ann"):
        added = subprocess.run(
            [str(RADLENS), "users", "add", name, "--home", str(tmp_path), "--password-stdin"],
            input=f"{PASSWORD}\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stdout + added.stderr
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(RADLENS), "serve", "--home", str(tmp_path), "--port", str(port)]
            + ["--no-dicom", "--workers", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path)
        yield Server(url, disputed)
    finally:
        stop_server(process)
        print(log_path.read_text(errors="replace")[-3000:])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    import contextlib
    import time

    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"radlens serve exited: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"radlens serve did not become ready: {log_path.read_text()[-2000:]}")


def test_monitoring_shows_the_drifting_scanner_and_the_queue_takes_scanners_in_turn(
    server: Server,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            expect = sync_api.expect

            page.goto(server.url)
            page.get_by_test_id("login-username").fill("reader")
            page.get_by_test_id("login-password").fill(PASSWORD)
            page.get_by_test_id("login-submit").click()
            expect(page.get_by_test_id("worklist-row")).to_have_count(80)

            # Monitoring: one model version, its figures, plots, two scanners, one alert.
            page.get_by_test_id("nav-monitoring").click()
            section = page.get_by_test_id("model-monitor")
            expect(section).to_have_count(1)
            expect(section).to_have_attribute("data-model", f"{CARD.name} {CARD.version}")
            expect(page.get_by_test_id("kpi-volume")).to_contain_text("80")
            expect(page.get_by_test_id("kpi-readers")).to_contain_text("0.0%")  # 1 of 1 split
            alerts = page.get_by_test_id("alert")
            expect(alerts).to_have_count(2)  # the model version overall, and WARD7
            expect(alerts.nth(1)).to_contain_text("WARD7")
            for alert in alerts.all():
                expect(alert).not_to_contain_text("CT01")
            rows = page.get_by_test_id("stratum-row")
            expect(rows).to_have_count(2)
            ct01 = page.locator('[data-testid=stratum-row][data-stratum="ACME Scan 1 @ CT01"]')
            ward = page.locator(
                '[data-testid=stratum-row][data-stratum="Other Portable 2 @ WARD7"]'
            )
            expect(ct01.get_by_test_id("drift-ok")).to_have_count(1)
            expect(ward.get_by_test_id("drift-alert")).to_have_count(1)
            ood = page.get_by_test_id("chart-ood")
            expect(ood).to_be_visible()
            bars = ood.locator("rect.bar")
            expect(bars).to_have_count(len(HISTOGRAM_EDGES) + 1)
            heights = [float(b.get_attribute("height") or 0) for b in bars.all()]
            assert max(heights) > 0 and sum(h > 0 for h in heights) >= 3
            for statistic in ("feature", "input", "decision"):
                expect(page.get_by_test_id(f"chart-drift-{statistic}")).to_be_visible()
            expect(page.get_by_test_id("chart-volume").locator("rect.bar-volume")).to_have_count(1)
            page.get_by_test_id("model-monitor").screenshot(
                path=str(ARTIFACTS / "dashboard-01-model.png")
            )
            page.screenshot(path=str(ARTIFACTS / "dashboard-02-page.png"), full_page=True)

            # The learning queue: scanners take turns, the disputed case says who said what.
            page.get_by_test_id("nav-learning").click()
            queue = page.get_by_test_id("queue-row")
            expect(queue.first).to_be_visible()
            strata = [r.get_attribute("data-stratum") for r in queue.all()[:4]]
            assert strata[0] != strata[1] and strata[2] != strata[3], strata
            disputed = page.locator(f'[data-testid=queue-row][data-study-uid="{server.disputed}"]')
            expect(disputed.get_by_test_id("queue-disagreement")).to_contain_text(
                "2 readers disagree: ann present, bob absent (unresolved)"
            )
            expect(disputed.get_by_test_id("queue-reasons")).to_contain_text("readers disagree")
            page.screenshot(path=str(ARTIFACTS / "dashboard-03-learning.png"), full_page=True)
            disputed.click()
            expect(page).to_have_url(f"{server.url}/#/study/{server.disputed}")
            assert errors == []
        finally:
            browser.close()
