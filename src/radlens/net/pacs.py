"""Pull studies from a PACS by QIDO-RS/WADO-RS and push overlays back by STOW-RS.

:class:`PacsPoller` lists the PACS's studies, retrieves those radlens has not stored yet
and hands each instance to :meth:`radlens.store.intake.Intake.receive`, so durability,
duplicates and analysis jobs work exactly as for a C-STORE. :func:`push_overlay` turns a
finished analysis into Secondary Capture overlays in the same study on the PACS.
A PACS that is down costs one log line per poll, never a crash.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable

import pydicom
from sqlalchemy import select

from radlens.domain.findings import StudyResult
from radlens.domain.imaging import ImageLayout, Study
from radlens.errors import DicomWebError, InputError
from radlens.explain.overlay import render_overlay
from radlens.io.load import load_images
from radlens.net.dicomweb import DicomWebClient
from radlens.report.sc import to_secondary_capture, write_secondary_capture
from radlens.store.intake import Intake
from radlens.store.models import StudyRow

log = logging.getLogger(__name__)
STUDY_INSTANCE_UID = "0020000D"


class PacsPoller:
    """Every ``interval_s``, fetch the PACS's studies that are not in the store yet.

    Example:
        >>> poller = PacsPoller(DicomWebClient(url), intake, interval_s=30)  # doctest: +SKIP
        >>> poller.poll_once()  # number of instances received
        1
    """

    def __init__(self, client: DicomWebClient, intake: Intake, interval_s: float = 30.0) -> None:
        self.client = client
        self.intake = intake
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> int:
        """One round: the number of instances newly stored (0 when the PACS is down)."""
        try:
            listed = self.client.search_studies()
        except DicomWebError as exc:
            log.error("PACS poll failed: %s", exc)
            return 0
        uids = [_first_value(study, STUDY_INSTANCE_UID) for study in listed]
        new = [uid for uid in uids if uid and not self._stored(uid)]
        stored = 0
        for uid in new:
            stored += self._fetch(uid)
        return stored

    def _stored(self, study_uid: str) -> bool:
        with self.intake.db.sessions() as session:
            return (
                session.scalar(select(StudyRow.study_uid).where(StudyRow.study_uid == study_uid))
                is not None
            )

    def _fetch(self, study_uid: str) -> int:
        try:
            instances = self.client.retrieve_study(study_uid)
        except DicomWebError as exc:
            log.error("PACS retrieve failed: %s", exc)
            return 0
        stored = 0
        for raw in instances:
            try:
                received = self.intake.receive(raw, f"pacs:{self.client.server}")
            except InputError as exc:
                log.warning("PACS instance refused: %s", exc.reason)
                continue
            stored += not received.duplicate
        return stored

    def start(self) -> None:
        """Poll in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._loop, name="radlens-pacs-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the thread boundary: a bug must not stop polling for good
                log.exception("PACS poller error; retrying")
            self._stop.wait(self.interval_s)


def push_overlay(client: DicomWebClient, study: Study, result: StudyResult) -> int:
    """STOW-RS one Secondary Capture overlay per analyzed 2D image; return how many.

    Only series with findings get an overlay; volumes wait for the SEG objects.
    """
    sent = 0
    findings_by_series = {s.series_instance_uid: s.findings for s in result.series}
    for series in study.series:
        findings = list(findings_by_series.get(series.series_instance_uid, ()))
        if not findings or not series.instances:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # intake already accepted these files
            images = load_images(series)
            source = pydicom.dcmread(series.instances[0].path, stop_before_pixels=True)
        series_uid = pydicom.uid.generate_uid()
        payload: list[bytes] = []
        for number, image in enumerate(images, start=1):
            if image.layout is ImageLayout.ZYX:
                continue
            array = image.array[0] if image.layout.is_multiframe else image.array
            rgb = render_overlay(array, image.window, findings)
            try:
                sc = to_secondary_capture(source, rgb, series_uid, number)
            except ValueError as exc:
                log.warning("no overlay for a series: %s", exc)
                continue
            payload.append(write_secondary_capture(sc))
        if payload:
            client.store_instances(payload, study.study_instance_uid)
            sent += len(payload)
    return sent


def overlay_pusher(client: DicomWebClient) -> Callable[[Study, StudyResult], None]:
    """A job completion hook that pushes overlays, logging (not raising) PACS errors."""

    def push(study: Study, result: StudyResult) -> None:
        try:
            pushed = push_overlay(client, study, result)
        except DicomWebError as exc:
            log.error("PACS overlay push failed: %s", exc)
            return
        if pushed:
            log.info("pushed %d overlay(s) to %s", pushed, client.server)

    return push


def _first_value(obj: dict[str, object], tag: str) -> str:
    element = obj.get(tag)
    if isinstance(element, dict):
        values = element.get("Value")
        if isinstance(values, list) and values:
            return str(values[0])
    return ""
