from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from radlens.errors import InputError
from radlens.net.scp import ReceiveGuard, StorageSCP, StoreStatus, start_scp
from radlens.store.db import Database, open_database
from radlens.store.intake import Intake, parse_header
from radlens.store.worklist import list_worklist
from radlens.warning_scopes import ignoring
from serve_helpers import make_instance

MALFORMED_DIR = Path(__file__).parents[2].parent / "shared" / "data" / "dicom" / "malformed"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """SQLite and PostgreSQL."""
    database = open_database(database_url)
    yield database
    database.close()


@pytest.fixture
def scp(db: Database, tmp_path: Path) -> Iterator[StorageSCP]:
    running = start_scp(Intake(db, tmp_path / "storage"), "RADLENS", "127.0.0.1", 0)
    yield running
    running.stop()


def _file_meta(path: Path) -> tuple[str, str] | None:
    """(SOP class, transfer syntax) a file would be sent with, or None if unsendable."""
    with ignoring():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:
            return None
    meta = ds.file_meta
    sop_class = meta.get("MediaStorageSOPClassUID") or ds.get("SOPClassUID")
    syntax = meta.get("TransferSyntaxUID") or (ImplicitVRLittleEndian if sop_class else None)
    return (str(sop_class), str(syntax)) if sop_class and syntax else None


def _dataset_or_path(path: Path) -> Path | Dataset:
    """The path, or for a file without file meta (old ACR-NEMA style) its forced read."""
    if path.read_bytes()[128:132] == b"DICM":
        return path
    ds = pydicom.dcmread(path, force=True)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def send_files(port: int, files: list[Path]) -> dict[Path, int | None]:
    """C-STORE each file over one association; None where the SCU could not send it.

    Files are sent as their bytes are (pynetdicom's chunked mode), not decoded and
    re-encoded by the SCU, so malformed data sets reach the SCP as they are.
    """
    _config.STORE_SEND_CHUNKED_DATASET = True
    ae = AE(ae_title="TESTSCU")
    contexts = sorted({m for f in files if (m := _file_meta(f))})
    assert len(contexts) <= 127
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, syntax)
    ae.add_requested_context(Verification)
    statuses: dict[Path, int | None] = {}
    assoc = ae.associate("127.0.0.1", port, ae_title="RADLENS")
    assert assoc.is_established
    try:
        for path in files:
            try:
                status = assoc.send_c_store(_dataset_or_path(path))
            except Exception:  # the SCU itself cannot encode or send this file
                statuses[path] = None
                continue
            statuses[path] = int(status.Status) if status else None
    finally:
        assoc.release()
    return statuses


def echo(port: int) -> int:
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADLENS")
    assert assoc.is_established
    status = assoc.send_c_echo()
    assoc.release()
    return int(status.Status)


def _refused_locally(path: Path) -> bool:
    try:
        parse_header(path.read_bytes(), "local")
    except InputError:
        return True
    return False


def test_c_echo_answers_success(scp: StorageSCP) -> None:
    assert echo(scp.port) == StoreStatus.SUCCESS


def test_pydicom_data_files_over_c_store_all_reach_the_worklist(
    scp: StorageSCP, db: Database, pydicom_data_dir: Path
) -> None:
    files = sorted(pydicom_data_dir.glob("*.dcm"))
    statuses = send_files(scp.port, files)
    refused = {p.name for p, s in statuses.items() if s == StoreStatus.CANNOT_UNDERSTAND}
    stored = [p for p, s in statuses.items() if s == StoreStatus.SUCCESS]
    malformed = {p.name for p in files if _refused_locally(p)}
    # Every well-formed file is stored; only malformed ones (invalid UIDs, cut-short pixel
    # data) are refused, or never leave the SCU (pynetdicom will not send a cut file).
    assert {p.name for p in stored} == {p.name for p in files} - malformed
    assert refused <= malformed and "bad_sequence.dcm" in refused
    assert all(statuses[p] is None for p in files if p.name in malformed - refused)
    with ignoring():
        expected = {
            str(pydicom.dcmread(p, stop_before_pixels=True, force=True).StudyInstanceUID)
            for p in stored
        }
    assert {e.study_uid for e in list_worklist(db)} == expected


def test_the_shared_real_dicom_files_over_c_store_all_reach_the_worklist(
    scp: StorageSCP, db: Database, shared_data_dir: Path
) -> None:
    """The 58 real files of ``../shared/data/dicom`` (every modality and transfer syntax)."""
    files = sorted(
        p for p in (shared_data_dir / "dicom").rglob("*.dcm") if "malformed" not in p.parts
    )
    assert len(files) >= 50
    statuses = send_files(scp.port, files)
    assert {p.name: s for p, s in statuses.items() if s != StoreStatus.SUCCESS} == {}
    with ignoring():
        expected = {
            str(pydicom.dcmread(p, stop_before_pixels=True, force=True).StudyInstanceUID)
            for p in files
        }
    assert {e.study_uid for e in list_worklist(db)} == expected


def test_malformed_objects_are_refused_and_the_scp_keeps_serving(
    scp: StorageSCP, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = make_instance("1.2.9", "1.2.9.1")
    garbage = tmp_path / "garbage.dcm"
    header_end = good.index(b"\x08\x00\x05\x00")  # first data set element after file meta
    garbage.write_bytes(good[:header_end] + b"\xde\xad\xbe\xef" * 64)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(good[: len(good) // 2])
    files = [garbage, cut]
    if MALFORMED_DIR.is_dir():
        files += sorted(MALFORMED_DIR.glob("*.dcm"))
    with caplog.at_level(logging.WARNING, logger="radlens.net.scp"):
        statuses = send_files(scp.port, files)
    assert statuses[garbage] == StoreStatus.CANNOT_UNDERSTAND
    assert statuses[cut] == StoreStatus.CANNOT_UNDERSTAND
    for path, status in statuses.items():
        if status is not None and _refused_locally(path):
            assert status == StoreStatus.CANNOT_UNDERSTAND, path.name
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == sum(s == StoreStatus.CANNOT_UNDERSTAND for s in statuses.values())
    assert all("TESTSCU" in line for line in refusals)
    assert echo(scp.port) == StoreStatus.SUCCESS
    ok = tmp_path / "ok.dcm"
    ok.write_bytes(good)
    assert send_files(scp.port, [ok]) == {ok: StoreStatus.SUCCESS}


@pytest.mark.skipif(not MALFORMED_DIR.is_dir(), reason="needs ../shared/data/dicom/malformed")
@pytest.mark.shared_data
def test_the_eleven_malformed_files_are_all_answered(scp: StorageSCP) -> None:
    files = sorted(MALFORMED_DIR.glob("*.dcm"))
    assert len(files) == 11
    statuses = send_files(scp.port, files)
    sent = {p.name: s for p, s in statuses.items() if s is not None}
    assert sent, "the SCU could send none of them"
    assert all(s in (StoreStatus.SUCCESS, StoreStatus.CANNOT_UNDERSTAND) for s in sent.values())


def _padded_instance(tmp_path: Path, name: str, padding: int) -> Path:
    """CT_small (~39 KB) with ``padding`` bytes of private data added."""
    ds = pydicom.dcmread(io.BytesIO(make_instance("1.2.11", f"1.2.11.{padding}")))
    ds.add_new(0x00091010, "OB", bytes(padding))
    path = tmp_path / name
    ds.save_as(path)
    return path


@pytest.fixture
def capped_scp(db: Database, tmp_path: Path) -> Iterator[StorageSCP]:
    intake = Intake(db, tmp_path / "storage", max_instance_bytes=60_000)
    running = start_scp(intake, "RADLENS", "127.0.0.1", 0, max_pdu_bytes=32_768)
    yield running
    running.stop()


def test_an_instance_over_the_cap_is_refused_with_out_of_resources_and_not_stored(
    capped_scp: StorageSCP, db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = _padded_instance(tmp_path, "big.dcm", 40_000)  # ~79 KB: over 60 KB, under 120 KB
    with caplog.at_level(logging.WARNING, logger="radlens.net.scp"):
        statuses = send_files(capped_scp.port, [big])
    assert statuses == {big: StoreStatus.OUT_OF_RESOURCES}
    assert "refused (too_large)" in caplog.text and "over the cap of 60000" in caplog.text
    assert list_worklist(db) == []
    assert not list((tmp_path / "storage").rglob("*.dcm"))
    ok = tmp_path / "ok.dcm"
    ok.write_bytes(make_instance("1.2.12", "1.2.12.1"))
    assert send_files(capped_scp.port, [ok]) == {ok: StoreStatus.SUCCESS}


def test_a_data_set_growing_past_twice_the_cap_aborts_the_association(
    capped_scp: StorageSCP, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    huge = _padded_instance(tmp_path, "huge.dcm", 400_000)
    with caplog.at_level(logging.WARNING, logger="radlens.net.scp"):
        statuses = send_files(capped_scp.port, [huge])
    assert statuses == {huge: None}  # no response: the association was aborted
    assert "aborted: data set past 120000 bytes while arriving" in caplog.text
    assert echo(capped_scp.port) == StoreStatus.SUCCESS  # the SCP keeps serving


def test_the_scp_proposes_its_maximum_pdu_length(capped_scp: StorageSCP) -> None:
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", capped_scp.port, ae_title="RADLENS")
    assert assoc.is_established
    assert assoc.acceptor.maximum_length == 32_768
    assoc.release()


class _FakeAssoc:
    def __init__(self) -> None:
        self.aborted = False
        self.requestor = type("Requestor", (), {"ae_title": "PEER"})()

    def abort(self, block: bool = True) -> None:
        self.aborted = True


def _p_data(*pdvs: tuple[bytes, int]) -> bytes:
    items = b"".join(
        struct.pack(">LBB", len(fragment) + 2, 1, control) + fragment for fragment, control in pdvs
    )
    return struct.pack(">BBL", 0x04, 0, len(items)) + items


def test_receive_guard_counts_data_set_fragments_and_aborts_an_oversized_pdu() -> None:
    guard = ReceiveGuard(max_pdu_bytes=1000, max_dataset_bytes=500)
    assoc = _FakeAssoc()
    event = type("Event", (), {"assoc": assoc, "data": b""})()
    for pdu in (_p_data((b"c" * 50, 0x03)), _p_data((b"d" * 300, 0x00))):
        event.data = pdu
        guard.on_data(event)  # a command, then 300 bytes of data set: under the cap
    assert not assoc.aborted
    event.data = _p_data((b"d" * 300, 0x00))
    guard.on_data(event)  # 600 bytes of one data set
    assert assoc.aborted
    assoc.aborted = False
    guard.on_close(event)
    event.data = _p_data((b"d" * 400, 0x02), (b"d" * 400, 0x02))  # two complete data sets
    guard.on_data(event)
    assert not assoc.aborted
    event.data = _p_data((b"d" * 1200, 0x02))  # a PDU longer than agreed
    guard.on_data(event)
    assert assoc.aborted
