"""Pull studies from a PACS by QIDO-RS/WADO-RS and push overlays back by STOW-RS.

:class:`PacsPoller` lists the PACS's recent studies (QIDO-RS, ``StudyDate`` no older than
``lookback_days``) and fetches what radlens does not have yet: a new study, and the
instances a known study gained since it was pulled. What radlens has is what the intake
stored (the SOP Instance UIDs in its database), so it survives a restart; only the missing
series or instances are retrieved. Each instance goes through
:meth:`radlens.store.intake.Intake.receive`, so durability, duplicates and analysis jobs
(a study that gains instances is analyzed again) work exactly as for a C-STORE.
radlens's own output on the PACS (series whose Manufacturer is ``radlens``) is never
pulled back. :func:`push_overlay` turns a finished analysis into Secondary Capture
overlays in the same study on the PACS; :func:`push_results` sends them together with the
DICOM result objects (TID 1500 SR, Parametric Maps, SEGs; ``report.dicom_results``), and
:func:`push_signed_report` the radiologist's signed report SR. A PACS that is down costs
one log line per poll or push, never a crash.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta

import pydicom
from sqlalchemy import func, select

from radlens.domain.findings import StudyResult
from radlens.domain.imaging import ImageLayout, Study
from radlens.errors import DicomWebError, InputError
from radlens.explain.overlay import render_overlay
from radlens.io.dicom import read_dataset
from radlens.io.load import load_images
from radlens.net.dicomweb import DicomWebClient
from radlens.report.dicom_results import to_dicom_results
from radlens.report.equipment import to_bytes
from radlens.report.sc import to_secondary_capture, write_secondary_capture
from radlens.store.intake import Intake
from radlens.store.models import InstanceRow
from radlens.warning_scopes import ignoring

log = logging.getLogger(__name__)

# DICOM JSON keys (PS3.18 F.2): the tags' group and element in hex.
MANUFACTURER = "00080070"
STUDY_INSTANCE_UID = "0020000D"
SERIES_INSTANCE_UID = "0020000E"
SOP_INSTANCE_UID = "00080018"
NUMBER_OF_STUDY_RELATED_INSTANCES = "00201208"
NUMBER_OF_SERIES_RELATED_INSTANCES = "00201209"
FAILED_SOP_SEQUENCE = "00081198"
RADLENS_MANUFACTURER = "radlens"  # what radlens.report writes into the objects it makes
_IN_CLAUSE_CHUNK = 500


def study_date_range(lookback_days: int, today: date) -> str:
    """The QIDO-RS ``StudyDate`` range (PS3.4 C.2.2.2.5) from ``lookback_days`` ago on.

    The range is open at the end, so a study dated after ``today`` (a modality clock
    ahead, another time zone) is still listed.

    Example:
        >>> study_date_range(2, date(2024, 3, 1))
        '20240228-'
    """
    if lookback_days < 0:
        raise ValueError("lookback_days must be 0 (no bound) or more")
    return f"{today - timedelta(days=lookback_days):%Y%m%d}-"


class PacsPoller:
    """Every ``interval_s``, fetch what the PACS has and the store does not.

    ``lookback_days`` bounds the QIDO-RS search by ``StudyDate`` (0 = every study on the
    PACS). The PACS's instance counts are compared with the store's first, so a poll that
    finds nothing new costs one QIDO-RS request and one database query.

    Example:
        >>> poller = PacsPoller(DicomWebClient(url), intake, 30, lookback_days=2)  # doctest: +SKIP
        >>> poller.poll_once()  # number of instances newly stored  # doctest: +SKIP
        1
    """

    def __init__(
        self,
        client: DicomWebClient,
        intake: Intake,
        interval_s: float = 30.0,
        lookback_days: int = 0,
    ) -> None:
        if lookback_days < 0:
            raise ValueError("lookback_days must be 0 (no bound) or more")
        self.client = client
        self.intake = intake
        self.interval_s = interval_s
        self.lookback_days = lookback_days
        # Study UID -> the PACS's instance count when the study was last compared in full.
        # Only saves QIDO-RS requests: on a restart each study is compared once again.
        self._compared: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> int:
        """One round: the number of instances newly stored (0 when the PACS is down)."""
        params = {"includefield": NUMBER_OF_STUDY_RELATED_INSTANCES}
        if self.lookback_days:
            params["StudyDate"] = study_date_range(self.lookback_days, date.today())
        try:
            listed = self.client.search_studies(params)
        except DicomWebError as exc:
            log.error("PACS poll failed: %s", exc)
            return 0
        on_pacs = {
            uid: _int_value(study, NUMBER_OF_STUDY_RELATED_INSTANCES)
            for study in listed
            if (uid := _first_value(study, STUDY_INSTANCE_UID))
        }
        self._compared = {u: n for u, n in self._compared.items() if u in on_pacs}
        stored = self._stored_counts(on_pacs)
        received, failed, first_error = 0, 0, ""
        for uid, count in on_pacs.items():
            if count is not None and (
                stored.get(uid, 0) >= count or self._compared.get(uid) == count
            ):
                continue
            try:
                received += self._fetch_missing(uid)
            except DicomWebError as exc:
                failed, first_error = failed + 1, first_error or str(exc)
                continue
            if count is not None:
                self._compared[uid] = count
        if failed:
            log.error("PACS retrieve failed for %d stud(ies); first: %s", failed, first_error)
        return received

    def _fetch_missing(self, study_uid: str) -> int:
        """Retrieve the series and instances of one study that the store lacks."""
        stored = self._stored_instances(study_uid)
        received = 0
        for series in self.client.search_series(study_uid, {"includefield": MANUFACTURER}):
            series_uid = _first_value(series, SERIES_INSTANCE_UID)
            if not series_uid or _first_value(series, MANUFACTURER) == RADLENS_MANUFACTURER:
                continue
            have = stored.get(series_uid, set())
            count = _int_value(series, NUMBER_OF_SERIES_RELATED_INSTANCES)
            if count is not None and len(have) >= count:
                continue
            if not have:
                received += self._receive(self.client.retrieve_series(study_uid, series_uid))
                continue
            listed = self.client.search_instances(study_uid, series_uid)
            missing = [
                sop
                for sop in (_first_value(instance, SOP_INSTANCE_UID) for instance in listed)
                if sop and sop not in have
            ]
            for sop in missing:
                received += self._receive(self.client.retrieve_instance(study_uid, series_uid, sop))
        return received

    def _receive(self, instances: Iterable[bytes]) -> int:
        received = 0
        for raw in instances:
            try:
                done = self.intake.receive(raw, f"pacs:{self.client.server}")
            except InputError as exc:
                log.warning("PACS instance refused: %s", exc.reason)
                continue
            received += not done.duplicate
        return received

    def _stored_counts(self, study_uids: Iterable[str]) -> dict[str, int]:
        """How many instances the store holds per study (absent: none)."""
        uids = list(study_uids)
        counts: dict[str, int] = {}
        with self.intake.db.sessions() as session:
            for start in range(0, len(uids), _IN_CLAUSE_CHUNK):
                rows = session.execute(
                    select(InstanceRow.study_uid, func.count())
                    .where(InstanceRow.study_uid.in_(uids[start : start + _IN_CLAUSE_CHUNK]))
                    .group_by(InstanceRow.study_uid)
                ).all()
                counts.update({uid: int(n) for uid, n in rows})
        return counts

    def _stored_instances(self, study_uid: str) -> dict[str, set[str]]:
        """The stored SOP Instance UIDs of a study, by series."""
        by_series: dict[str, set[str]] = {}
        with self.intake.db.sessions() as session:
            rows = session.execute(
                select(InstanceRow.series_uid, InstanceRow.sop_uid).where(
                    InstanceRow.study_uid == study_uid
                )
            ).all()
        for series_uid, sop_uid in rows:
            by_series.setdefault(series_uid, set()).add(sop_uid)
        return by_series

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

    Only series with findings get an overlay; volumes wait for the SEG objects. A series
    whose images cannot be loaded again is skipped with a warning; the others still go.
    """
    sent = 0
    findings_by_series = {s.series_instance_uid: s.findings for s in result.series}
    for series in study.series:
        findings = list(findings_by_series.get(series.series_instance_uid, ()))
        if not findings or not series.instances:
            continue
        try:
            with ignoring():  # intake already accepted these files
                images = load_images(series)
                source = read_dataset(series.instances[0])
        except InputError as exc:
            log.warning("no overlay for a series: %s", exc.reason)
            continue
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


def push_results(client: DicomWebClient, study: Study, result: StudyResult) -> int:
    """STOW-RS the overlays and the DICOM result objects into the study; return how many
    instances the PACS accepted.

    The SR, Parametric Maps and SEGs of :func:`radlens.report.dicom_results.to_dicom_results`
    go in one STOW-RS request after the overlays; an object that could not be made is
    logged with its reason, and one the PACS refuses (listed in its Failed SOP Sequence) is
    logged and not counted.
    """
    sent = push_overlay(client, study, result)
    made = to_dicom_results(study, result)
    for reason in made.skipped:
        log.info("not pushed: %s", reason)
    if not made.objects:
        return sent
    answer = client.store_instances(
        [to_bytes(o.dataset) for o in made.objects], study.study_instance_uid
    )
    refused = _refused(answer)
    if refused:
        log.error("PACS refused %d of %d result object(s)", refused, len(made.objects))
    return sent + len(made.objects) - refused


def results_pusher(client: DicomWebClient) -> Callable[[Study, StudyResult], None]:
    """A job completion hook that pushes overlays and DICOM result objects, logging (not
    raising) PACS errors."""

    def push(study: Study, result: StudyResult) -> None:
        try:
            pushed = push_results(client, study, result)
        except DicomWebError as exc:
            log.error("PACS result push failed: %s", exc)
            return
        if pushed:
            log.info("pushed %d result instance(s) to %s", pushed, client.server)

    return push


def push_signed_report(client: DicomWebClient, study_uid: str, data: bytes) -> bool:
    """STOW-RS the DICOM SR of a signed report (``store.signed``) into its study; whether
    the PACS accepted it."""
    if _refused(client.store_instances([data], study_uid)):
        log.error("PACS refused the signed report SR")
        return False
    return True


def signed_report_pusher(client: DicomWebClient) -> Callable[[str, bytes], None]:
    """A sign hook that pushes the signed report SR, logging (not raising) PACS errors."""

    def push(study_uid: str, data: bytes) -> None:
        try:
            accepted = push_signed_report(client, study_uid, data)
        except DicomWebError as exc:
            log.error("PACS signed report push failed: %s", exc)
            return
        if accepted:
            log.info("pushed a signed report SR to %s", client.server)

    return push


def _refused(answer: Mapping[str, object]) -> int:
    """How many instances a STOW-RS answer lists in its Failed SOP Sequence."""
    failed = answer.get(FAILED_SOP_SEQUENCE, {})
    values = failed.get("Value", []) if isinstance(failed, dict) else []
    return len(values) if isinstance(values, list) else 0


def _first_value(obj: Mapping[str, object], tag: str) -> str:
    element = obj.get(tag)
    if isinstance(element, dict):
        values = element.get("Value")
        if isinstance(values, list) and values:
            return str(values[0])
    return ""


def _int_value(obj: Mapping[str, object], tag: str) -> int | None:
    """An IS/US value as an int; None when absent or not a number (the PACS did not say)."""
    try:
        return int(_first_value(obj, tag))
    except ValueError:
        return None
