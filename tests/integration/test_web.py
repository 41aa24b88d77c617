"""The reading room in a real browser: ``radlens serve`` (subprocess) + the built web UI +
headless Chromium driven by Playwright.

One urgent study (the pydicom-data adult CR chest, sent by C-STORE; the test suite's tiny
brightness model, added with ``--models``, reads it as positive pneumonia, because the shipped
pneumonia model reads this adult film as negative, and flags its finding as low trust: an
adult, unlike its training data) and one routine study (a CT no model reads, sent by STOW-RS,
first). In the browser: log in, the urgent study is the first row with its low-trust badge,
the viewer renders it, the heatmap overlay shows, the flagged finding says "input unlike
training data — low trust", a finding is accepted, a report draft is saved, and both survive
a reload. Screenshots of every step go to ``test-artifacts/web/``.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from browser_helpers import ARTIFACTS, CHROMIUM, RADLENS, TIMEOUT_MS, require_browser
from PIL import Image
from pydicom import dcmread
from pynetdicom import AE

from radlens.models.card import read_card
from radlens.models.registry import zoo_folder
from serve_helpers import free_port, make_instance, stop_server

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READER, PASSWORD = "reader", "reader-password-1"
REPORT_TEXT = "Right lower zone opacity, AI pneumonia flag reviewed.\nFollow-up film advised."
ROUTINE_STUDY = "1.2.826.0.1.3680043.9.7777.9001"  # each test has its own server home


sync_api = require_browser()


@dataclass(frozen=True)
class Server:
    url: str
    dicom_port: int
    home: Path


@pytest.fixture
def server(tmp_path: Path, tiny_onnx_model_dir: Path) -> Iterator[Server]:
    """``radlens serve`` with one account and the tiny model as an extra model."""
    added = subprocess.run(
        [str(RADLENS), "users", "add", READER, "--home", str(tmp_path), "--password-stdin"],
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    port, dicom_port = free_port(), free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(RADLENS),
                "serve",
                "--home",
                str(tmp_path),
                "--port",
                str(port),
                "--dicom-port",
                str(dicom_port),
                "--quiet-period",
                "0.5",
                "--workers",
                "1",
                "--models",
                str(tiny_onnx_model_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path)
        yield Server(url, dicom_port, tmp_path)
    finally:
        stop_server(process)
        print(log_path.read_text(errors="replace")[-3000:])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"radlens serve exited: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"radlens serve did not become ready: {log_path.read_text()[-2000:]}")


def _c_store(port: int, raw: bytes) -> None:
    ds = dcmread(io.BytesIO(raw))
    ae = AE(ae_title="WEBTEST")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADLENS")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
        assert status and int(status.Status) == 0
    finally:
        assoc.release()


def _stow(url: str, raw: bytes) -> None:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + raw
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    response = httpx.post(
        f"{url}/dicomweb/studies",
        content=body,
        headers={"Content-Type": content_type},
        auth=(READER, PASSWORD),  # a DICOMweb sender: HTTP Basic
    )
    assert response.status_code == 200, response.text


def _analyzed(client: httpx.Client, studies: set[str]) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        items = {item["study_uid"]: item for item in client.get("/api/worklist").json()}
        if all(items.get(uid, {}).get("analyzed_at") for uid in studies):
            return items
        time.sleep(0.25)
    raise AssertionError("the studies were not analyzed in time")


def _pixels(png: bytes) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.uint8)


def _assert_not_blank(png: bytes) -> None:
    pixels = _pixels(png)
    distinct = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert pixels.std() > 10 and distinct > 50, (pixels.std(), distinct)


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float


def _box(locator: Locator) -> Rect:
    """The element's client rect (for an SVG shape without its stroke, unlike bounding_box)."""
    found = locator.evaluate("e => e.getBoundingClientRect().toJSON()")
    return Rect(found["x"], found["y"], found["width"], found["height"])


def _inside(inner: Rect, outer: Rect, slack_px: float = 2.0) -> bool:
    return (
        inner.x >= outer.x - slack_px
        and inner.y >= outer.y - slack_px
        and inner.x + inner.width <= outer.x + outer.width + slack_px
        and inner.y + inner.height <= outer.y + outer.height + slack_px
    )


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_reader_logs_in_opens_the_urgent_study_reviews_it_and_the_work_survives_a_reload(
    server: Server, pydicom_data_dir: Path
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    routine = ROUTINE_STUDY
    _stow(server.url, make_instance(routine, f"{routine}.1"))  # first: arrival order loses
    chest = (pydicom_data_dir / "RG1_J2KR.dcm").read_bytes()
    header = dcmread(io.BytesIO(chest), stop_before_pixels=True)
    urgent, columns, rows = str(header.StudyInstanceUID), int(header.Columns), int(header.Rows)
    _c_store(server.dicom_port, chest)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        login = api.post("/api/auth/login", json={"username": READER, "password": PASSWORD})
        assert login.status_code == 200
        items = _analyzed(api, {routine, urgent})
        assert items[urgent]["priority"] == "urgent" and items[routine]["priority"] == "routine"
        notes = api.put(f"/api/studies/{urgent}/notes", json={"text": "Cough. No pneumonia."})
        assert notes.status_code == 200
        study = api.get(f"/api/studies/{urgent}").json()
    finding = next(f for s in study["findings"]["series"] for f in s["findings"] if f["positive"])
    assert finding["box_px"] and finding["has_heatmap"]
    # The shipped chest model also reads this adult film: an input unlike its training data.
    flagged = next(
        f
        for s in study["findings"]["series"]
        for f in s["findings"]
        if f["model_name"] == "cxr_pneumonia"
    )
    assert flagged["ood_flag"] and items[urgent]["low_trust"]

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            expect = sync_api.expect

            # Log in (a wrong password first: the error shows, the page stays).
            page.goto(server.url)
            page.get_by_test_id("login-username").fill(READER)
            page.get_by_test_id("login-password").fill("not-the-password")
            page.get_by_test_id("login-submit").click()
            expect(page.get_by_test_id("login-error")).to_contain_text("Wrong username")
            _shot(page, "01-login-error.png")
            page.get_by_test_id("login-password").fill(PASSWORD)
            page.get_by_test_id("login-submit").click()

            # The worklist: the urgent study first although it arrived second.
            worklist = page.get_by_test_id("worklist-row")
            expect(worklist).to_have_count(2)
            first = worklist.first
            expect(first).to_have_attribute("data-study-uid", urgent)
            expect(first.get_by_test_id("priority-badge")).to_have_text("urgent")
            expect(first.get_by_test_id("top-finding")).to_contain_text(finding["label"])
            expect(first.get_by_test_id("low-trust-badge")).to_have_count(1)
            expect(worklist.nth(1).get_by_test_id("priority-badge")).to_have_text("routine")
            _shot(page, "02-worklist.png")

            # The viewer renders the radiograph.
            first.click()
            viewport = page.locator("[data-testid=viewport][data-rendered=true]")
            expect(viewport).to_have_count(1)
            expect(page.get_by_test_id("image-index")).to_have_text("Image 1 / 1")
            expect(page.get_by_test_id("ai-draft-banner")).to_have_text(
                "AI draft — requires physician review"
            )
            frame = page.get_by_test_id("viewport-frame")
            boxes = page.get_by_test_id("finding-box")
            expect(boxes).to_have_count(1)  # the positive finding's box, drawn by default
            page.get_by_test_id("toggle-boxes").click()  # the image alone for the pixel checks
            expect(boxes).to_have_count(0)
            page.wait_for_timeout(500)  # let the first frame settle
            before = frame.screenshot(path=str(ARTIFACTS / "03-viewport.png"))
            _assert_not_blank(before)
            _shot(page, "03-viewer.png")

            # The heatmap overlay: hidden until toggled on, then over the whole image.
            heatmap = page.get_by_test_id("heatmap-overlay")
            expect(heatmap).to_be_hidden()
            page.get_by_test_id("toggle-heatmap").click()
            expect(heatmap).to_be_visible()
            page.wait_for_timeout(300)
            after = frame.screenshot(path=str(ARTIFACTS / "04-viewport-heatmap.png"))
            change = np.abs(_pixels(after).astype(int) - _pixels(before).astype(int)).mean()
            assert change > 5, change
            fitted = _box(heatmap)
            assert fitted.width / fitted.height == pytest.approx(columns / rows, rel=0.02)
            assert _inside(fitted, _box(frame))
            page.get_by_test_id("toggle-boxes").click()
            expect(boxes).to_have_count(1)
            assert _inside(_box(boxes.first), fitted)
            _shot(page, "04-heatmap.png")

            # Zoom (right drag): the overlay follows the image.
            centre_x, centre_y = fitted.x + fitted.width / 2, fitted.y + fitted.height / 2
            page.mouse.move(centre_x, centre_y)
            page.mouse.down(button="right")
            page.mouse.move(centre_x, centre_y - 150, steps=8)
            page.mouse.up(button="right")
            page.wait_for_timeout(300)
            zoomed = _box(heatmap)
            assert abs(zoomed.width - fitted.width) > 0.1 * fitted.width, (zoomed, fitted)
            assert zoomed.width / zoomed.height == pytest.approx(columns / rows, rel=0.02)
            _shot(page, "04-zoomed.png")

            # The flagged finding says so, in the words of findings.json.
            low = page.locator(f"[data-testid=finding][data-finding-id='{flagged['id']}']")
            expect(low.get_by_test_id("ood-warning")).to_contain_text(
                "input unlike training data — low trust"
            )
            # ... and why, beside it, when its input statistics say (the statistics of this
            # film furthest from the training images, in the words of its warning, not
            # repeated in the list below); a flag from the features alone names none.
            why = [w for w in flagged["warnings"] if w.startswith("unlike training data in: ")]
            if why:
                expect(low.get_by_test_id("ood-reasons")).to_have_text(
                    "Unlike its training images in: "
                    + why[0].removeprefix("unlike training data in: ")
                )
                expect(low.get_by_test_id("finding-warnings")).not_to_contain_text(why[0])
            else:
                expect(low.get_by_test_id("ood-reasons")).to_have_count(0)
            # Its model's card, opened from the finding: intended use, validation figures and
            # limitations, read from the card of the version that made the finding.
            cxr = read_card(zoo_folder() / "cxr_pneumonia" / "card.json")
            assert flagged["model_version"] == cxr.version
            expect(low.get_by_test_id("model-card")).to_have_count(0)
            low.get_by_test_id("finding-model").click()
            expect(low.get_by_test_id("model-intended-use")).to_have_text(cxr.intended_use)
            expect(low.get_by_test_id("model-validation")).to_contain_text(
                f"AUC {cxr.metrics['val']['auc']:.3f}"
            )
            expect(low.get_by_test_id("model-limitations").locator("li")).to_have_count(
                len(cxr.limitations)
            )
            _shot(page, "04-model-card.png")

            # The notes deny what the AI found: the finding says so.
            positive = page.locator(f"[data-testid=finding][data-finding-id='{finding['id']}']")
            expect(positive.get_by_test_id("concordance")).to_have_attribute(
                "data-concordance", "discordant"
            )
            # The empty report starts from the AI draft.
            expect(page.get_by_test_id("report-text")).to_have_value(study["draft"])
            assert "## Impression" in study["draft"]

            # Accept the positive finding; write and save a report draft.
            card = page.locator(f"[data-testid=finding][data-finding-id='{finding['id']}']")
            card.get_by_test_id("review-accept").click()
            expect(card.get_by_test_id("review-decision")).to_have_attribute(
                "data-decision", "accepted"
            )
            # The panel re-rendered: the opened model card stays open.
            expect(low.get_by_test_id("model-card")).to_be_visible()
            page.get_by_test_id("report-text").fill(REPORT_TEXT)
            page.get_by_test_id("report-save").click()
            expect(page.get_by_test_id("report-status")).to_contain_text("Draft saved")
            _shot(page, "05-reviewed.png")

            # Reload: the decision and the report come back from the server.
            page.reload()
            expect(viewport).to_have_count(1)
            card = page.locator(f"[data-testid=finding][data-finding-id='{finding['id']}']")
            expect(card.get_by_test_id("review-decision")).to_contain_text("Accepted by reader")
            expect(page.get_by_test_id("report-text")).to_have_value(REPORT_TEXT)
            expect(page.get_by_test_id("study-status")).to_have_text("in review")
            _shot(page, "06-after-reload.png")

            # Sign: the report becomes read-only, signed by the reader.
            page.once("dialog", lambda dialog: dialog.accept())
            page.get_by_test_id("report-sign").click()
            expect(page.get_by_test_id("report-status")).to_contain_text(f"Signed by {READER}")
            _shot(page, "07-signed.png")

            # Log out: back to the login page, and the API says 401 again.
            page.get_by_test_id("logout").click()
            expect(page.get_by_test_id("login-form")).to_be_visible()
            assert errors == []
        finally:
            browser.close()
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/api/worklist").status_code == 401
    _assert_audited(server, urgent)


@pytest.mark.shared_data
def test_a_fetal_head_study_shows_its_hc_and_ga_and_the_measured_ellipse(
    server: Server, shared_data_dir: Path, tmp_path: Path
) -> None:
    from radlens.io.segmentation_sets import read_segmentation
    from us_helpers import write_us_dicom

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    val = read_segmentation(shared_data_dir / "seg" / "hc18_fetal_head_us", "val")
    ds = write_us_dicom(tmp_path / "head.dcm", val.images[0], float(val.pixel_size_mm[0]))
    _stow(server.url, (tmp_path / "head.dcm").read_bytes())
    study_uid = str(ds.StudyInstanceUID)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        login = api.post("/api/auth/login", json={"username": READER, "password": PASSWORD})
        assert login.status_code == 200
        _analyzed(api, {study_uid})
        study = api.get(f"/api/studies/{study_uid}").json()
    [finding] = [f for s in study["findings"]["series"] for f in s["findings"]]
    hc, ga = finding["measurements"]
    assert hc["code"] == "head_circumference" and finding["outline_px"]

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            expect = sync_api.expect
            page.goto(server.url)
            page.get_by_test_id("login-username").fill(READER)
            page.get_by_test_id("login-password").fill(PASSWORD)
            page.get_by_test_id("login-submit").click()
            page.locator(f"[data-testid=worklist-row][data-study-uid='{study_uid}']").click()
            expect(page.locator("[data-testid=viewport][data-rendered=true]")).to_have_count(1)
            card = page.locator(f"[data-testid=finding][data-finding-id='{finding['id']}']")
            expect(card.get_by_test_id("measurement-head_circumference")).to_have_text(
                f"{hc['value']:.1f} mm"
            )
            expected_ga = (
                f"{ga['value']:.1f} wk ({ga['low']:.1f}–{ga['high']:.1f})"
                if ga["value"] is not None
                else f"not given: {ga['note']}"
            )
            expect(card.get_by_test_id("measurement-gestational_age")).to_have_text(expected_ga)
            # The ellipse the HC was measured on lies over the image, labelled with the HC.
            outline = page.get_by_test_id("finding-outline")
            expect(outline).to_have_count(1)
            expect(page.locator("text.outline-label")).to_contain_text(f"HC {hc['value']:.1f} mm")
            frame = _box(page.get_by_test_id("viewport-frame"))
            drawn = _box(outline)
            assert _inside(drawn, frame)
            # Its size on screen matches the outline in image pixels at the viewport's scale.
            xs = [p[0] for p in finding["outline_px"]]
            image_w = int(ds.Columns)
            scale = (
                frame.width / image_w
                if frame.width / image_w < frame.height / int(ds.Rows)
                else frame.height / int(ds.Rows)
            )
            assert drawn.width == pytest.approx((max(xs) - min(xs)) * scale, rel=0.1)
            _shot(page, "10-fetal-head.png")
            page.get_by_test_id("toggle-boxes").click()
            expect(outline).to_have_count(0)

            # The reader edits the finding with a confidence and a tighter box.
            x0, y0, x1, y1 = (round(v) for v in finding["box_px"])
            card.get_by_test_id("review-edit").click()
            card.get_by_test_id("edit-confidence").select_option("4")
            card.get_by_test_id("edit-box").fill(f"{x0 + 5}, {y0 + 5}, {x1 - 5}, {y1 - 5}")
            card.get_by_test_id("edit-save").click()
            expect(card.get_by_test_id("review-confidence")).to_have_text("confidence 4 / 5")
            expect(card.get_by_test_id("review-box")).to_have_text(
                f"box {x0 + 5}, {y0 + 5}, {x1 - 5}, {y1 - 5}"
            )
            # A second reader rejects it: the card shows that the readers disagree.
            _second_reader_rejects(server, study_uid, finding["id"])
            page.reload()
            readers = card.get_by_test_id("readers")
            expect(readers).to_have_attribute("data-disagreement", "true")
            _shot(page, "11-two-readers.png")
            assert errors == []
        finally:
            browser.close()


def _second_reader_rejects(server: Server, study_uid: str, finding_id: str) -> None:
    name, password = "reader2", "reader2-password-1"
    added = subprocess.run(
        [str(RADLENS), "users", "add", name, "--home", str(server.home), "--password-stdin"],
        input=f"{password}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    with httpx.Client(base_url=server.url, timeout=30) as api:
        assert (
            api.post("/api/auth/login", json={"username": name, "password": password}).status_code
            == 200
        )
        decided = api.put(
            f"/api/studies/{study_uid}/findings/{finding_id}/review",
            json={"decision": "rejected", "confidence": 2},
        )
        assert decided.status_code == 200, decided.text


def _assert_audited(server: Server, urgent: str) -> None:
    """Each patient-data view of the reader in the browser left an audit record naming the
    reader and (where it is about one study) the study, with a success outcome."""
    from radlens.privacy.audit import list_records
    from radlens.store.db import open_database

    db = open_database(f"sqlite:///{server.home / 'radlens.sqlite'}", migrate=False)
    try:
        records = [r for r in list_records(db) if r.user_id == READER]
    finally:
        db.close()
    succeeded = {(r.event, r.study_uid) for r in records if r.outcome == 0}
    for event in (
        "study-opened",
        "images-viewed",
        "heatmap-viewed",
        "finding-reviewed",
        "report-saved",
        "report-signed",
    ):
        assert (event, urgent) in succeeded, event
    events = {event for event, _ in succeeded}
    assert {"login", "worklist-viewed", "logout"} <= events
    # the wrong password typed first is on record as a failed login of that name
    assert any(r.event == "login" and r.outcome == 4 for r in records)
