"""Encryption at rest, end to end: after a real ``radlens serve`` (subprocess) received real
DICOM files by C-STORE and STOW-RS, analyzed them, and a reader viewed, reviewed, annotated,
reported and signed them through the API, no patient name, ID or birth date of those
files is found in plain text in any byte of the storage folder, the SQLite database (with
its WAL), or the server's log; and on PostgreSQL, in a dump of every table.

Negative control: the same scan finds the values in the files as sent, and in the
storage once a stored file is opened with the key (so a scan that finds nothing found
nothing because the data are sealed, not because it looks in the wrong place).
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest
from pynetdicom import AE

from serve_helpers import free_port, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RADLENS = Path(sys.executable).with_name("radlens")
READER, PASSWORD = "reader", "reader-password-1"
# A patient of our own, written into one of the files: distinctive values in every form.
OWN_NAME, OWN_ID, OWN_BIRTH = "Doe^Jane^Quincy", "RLPID-4711-XZ", "19710203"
GENERIC = {"anonymous", "anonymized", "test", "patient", "unknown", "none", "name"}
SHARED_FILES = ("cr_dx/CR_RG3_j2k_lossy.dcm", "ct/CT_small_explicitLE.dcm", "mr")


@dataclass(frozen=True)
class Server:
    url: str
    dicom_port: int
    home: Path
    log: Path


def _start(home: Path, model_dir: Path, db_url: str = "") -> tuple[subprocess.Popen[bytes], Server]:
    added = subprocess.run(
        [str(RADLENS), "users", "add", READER, "--home", str(home), "--password-stdin"]
        + (["--db", db_url] if db_url else []),
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    port, dicom_port = free_port(), free_port()
    log_path = home / "server.log"
    command = [
        str(RADLENS),
        "serve",
        "--home",
        str(home),
        "--port",
        str(port),
        "--dicom-port",
        str(dicom_port),
        "--quiet-period",
        "0.5",
        "--workers",
        "1",
        "--models",
        str(model_dir),
        "--verbose",  # the most the logs can say
    ] + (["--db", db_url] if db_url else [])
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", dicom_port, home, log_path)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"radlens serve exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return process, server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(process)
    raise AssertionError(f"radlens serve did not become ready: {log_path.read_text()[-3000:]}")


def _inputs(pydicom_data_dir: Path) -> list[bytes]:
    """Real DICOM files: pydicom-data's CR chest (with our own patient written in), CT_small,
    and files of ``../shared/data/dicom`` when present."""
    chest = pydicom.dcmread(pydicom_data_dir / "RG1_J2KR.dcm")
    chest.PatientName, chest.PatientID, chest.PatientBirthDate = OWN_NAME, OWN_ID, OWN_BIRTH
    buffer = io.BytesIO()
    chest.save_as(buffer, enforce_file_format=True)
    files = [buffer.getvalue(), Path(pydicom.data.get_testdata_file("CT_small.dcm")).read_bytes()]
    shared = Path(__file__).parents[2].parent / "shared" / "data" / "dicom"
    for name in SHARED_FILES:
        path = shared / name
        if path.is_dir():
            files += [p.read_bytes() for p in sorted(path.glob("*.dcm"))[:2]]
        elif path.is_file():
            files.append(path.read_bytes())
    return files


def _identifiers(raw: bytes, variants: bool = True) -> set[bytes]:
    """A file's patient name (DICOM form and, with ``variants``, other forms), ID and birth
    date, as the bytes a scan looks for; values shorter than 4 characters or generic ones
    are left out."""
    ds = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)
    found: set[str] = set()
    name = str(ds.get("PatientName", "") or "").strip()
    found.add(name)
    if name and variants:
        parts = [p for p in name.split("^") if p.strip()]
        found |= {name, name.replace("^", " ").strip(), " ".join(reversed(parts[:2]))}
        found |= {p.strip() for p in parts if len(p.strip()) >= 5}
    found.add(str(ds.get("PatientID", "") or "").strip())
    found.add(str(ds.get("PatientBirthDate", "") or "").strip())
    return {
        v.encode("utf-8")
        for v in found
        if len(v) >= 4 and v.lower() not in GENERIC and not set(v) <= {"0", " "}
    }


def _c_store(port: int, raw: bytes) -> None:
    ds = pydicom.dcmread(io.BytesIO(raw))
    ae = AE(ae_title="ENCTEST")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADLENS")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
        assert status and int(status.Status) == 0
    finally:
        assoc.release()


def _stow(url: str, raws: list[bytes]) -> None:
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + raw + b"\r\n"
            for raw in raws
        )
        + f"--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    with httpx.Client(base_url=url, timeout=60) as api:
        login = api.post("/api/auth/login", json={"username": READER, "password": PASSWORD})
        assert login.status_code == 200
        response = api.post(
            "/dicomweb/studies", content=body, headers={"content-type": content_type}
        )
    assert response.status_code == 200, response.text


def _exercise(server: Server, raws: list[bytes], names: list[str]) -> None:
    """Send, wait for the analyses, and use every route that reads or writes patient data."""
    _c_store(server.dicom_port, raws[0])
    _stow(server.url, raws[1:])
    studies = {
        str(pydicom.dcmread(io.BytesIO(r), stop_before_pixels=True).StudyInstanceUID) for r in raws
    }
    with httpx.Client(base_url=server.url, timeout=60) as api:
        assert api.post(
            "/api/auth/login", json={"username": READER, "password": PASSWORD}
        ).is_success
        deadline = time.monotonic() + 240
        while True:
            items = api.get("/api/worklist").json()
            done = {i["study_uid"] for i in items if i["status"] in ("ready", "failed")}
            if studies <= done:
                break
            assert time.monotonic() < deadline, f"not analyzed in time: {items}"
            time.sleep(0.5)
        for uid in sorted(studies):
            # Free text that names the patient: notes, a review note, the report.
            text = f"Patient {' and '.join(names)} seen; cough."
            assert api.put(f"/api/studies/{uid}/notes", json={"text": text}).is_success
            assert api.post(f"/api/studies/{uid}/open").is_success
            study = api.get(f"/api/studies/{uid}").json()
            for series in (study.get("findings") or {}).get("series", []):
                for finding in series["findings"]:
                    if finding.get("has_heatmap"):
                        heat = api.get(f"/api/studies/{uid}/findings/{finding['id']}/heatmap.png")
                        assert heat.status_code == 200
                    review = api.put(
                        f"/api/studies/{uid}/findings/{finding['id']}/review",
                        json={"decision": "accepted", "note": text},
                    )
                    assert review.is_success, review.text
            for series in api.get(f"/dicomweb/studies/{uid}/series").json():
                series_uid = series["0020000E"]["Value"][0]
                assert api.get(f"/dicomweb/studies/{uid}/series/{series_uid}/metadata").is_success
                for inst in api.get(
                    f"/dicomweb/studies/{uid}/series/{series_uid}/instances"
                ).json():
                    sop = inst["00080018"]["Value"][0]
                    base = f"/dicomweb/studies/{uid}/series/{series_uid}/instances/{sop}"
                    assert api.get(base).status_code == 200
                    api.get(f"{base}/frames/1")  # some objects have no decodable frame
            assert api.put(f"/api/studies/{uid}/report", json={"text": text}).is_success
            signed = api.post(f"/api/studies/{uid}/sign")
            assert signed.is_success, signed.text
            report = api.get(f"/api/studies/{uid}/report.dcm")
            assert report.status_code == 200 and names[0].encode() in report.content
            assert api.get("/fhir/DiagnosticReport", params={"study": uid}).is_success
            assert api.get(f"/fhir/Bundle/{uid}").is_success


def _found(blob: bytes, needles: set[bytes]) -> set[bytes]:
    lowered = blob.lower()
    return {n for n in needles if n.lower() in lowered}


def _scan_folder(folder: Path, needles: set[bytes]) -> dict[str, set[bytes]]:
    hits = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and (found := _found(path.read_bytes(), needles)):
            hits[str(path.relative_to(folder))] = found
    return hits


@pytest.fixture
def raws(pydicom_data_dir: Path) -> list[bytes]:
    return _inputs(pydicom_data_dir)


def _needles(raws: list[bytes]) -> set[bytes]:
    needles = set().union(*(_identifiers(r) for r in raws))
    assert {OWN_NAME.encode(), OWN_ID.encode(), OWN_BIRTH.encode()} <= needles
    for raw in raws:  # the control: each value is in the file as sent
        assert _identifiers(raw, variants=False) <= _found(raw, needles)
    return needles


def test_no_patient_identifier_in_storage_database_or_log_sqlite(
    tmp_path: Path, tiny_onnx_model_dir: Path, raws: list[bytes]
) -> None:
    needles = _needles(raws)
    process, server = _start(tmp_path, tiny_onnx_model_dir)
    try:
        _exercise(server, raws, [OWN_NAME, OWN_ID, OWN_BIRTH])
    finally:
        stop_server(process)
    storage = tmp_path / "storage"
    assert len([p for p in storage.rglob("*.dcm")]) >= len(raws)
    hits = _scan_folder(storage, needles)
    for name in ("radlens.sqlite", "radlens.sqlite-wal", "radlens.sqlite-shm"):
        path = tmp_path / name
        if path.is_file() and (found := _found(path.read_bytes(), needles)):
            hits[name] = found
    if found := _found(server.log.read_bytes(), needles):
        hits["server.log"] = found
    assert hits == {}, f"patient identifiers in plain text: {hits}"
    # The control: opened with the key, the stored files do hold them.
    direct = set().union(*(_identifiers(r, variants=False) for r in raws))
    _assert_sealed_files_hold_them(tmp_path, storage, direct)


def _assert_sealed_files_hold_them(home: Path, storage: Path, needles: set[bytes]) -> None:
    from radlens.privacy.crypto import read_key_file
    from radlens.store.files import read_stored
    from radlens.store.keys import stored_files

    ring = read_key_file(home / "keys" / "radlens.keys")
    opened = b"".join(read_stored(storage, p, ring) for p in stored_files(storage))
    assert _found(opened, needles) == needles


def test_no_patient_identifier_in_a_postgresql_dump(
    tmp_path: Path, tiny_onnx_model_dir: Path, raws: list[bytes], postgres_server: str
) -> None:
    from pg import create_database

    url = create_database(postgres_server)
    needles = _needles(raws)
    process, server = _start(tmp_path, tiny_onnx_model_dir, url)
    try:
        _exercise(server, raws, [OWN_NAME, OWN_ID, OWN_BIRTH])
    finally:
        stop_server(process)
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url

    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    dump = bytearray()
    try:
        with engine.connect() as connection:
            for table in inspect(connection).get_table_names():
                for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                    dump += repr(tuple(row)).encode("utf-8", "replace")
    finally:
        engine.dispose()
    assert b"rl1:" in dump  # sealed values are there
    hits = {"database": _found(bytes(dump), needles)} if _found(bytes(dump), needles) else {}
    hits |= _scan_folder(tmp_path / "storage", needles)
    if found := _found(server.log.read_bytes(), needles):
        hits["server.log"] = found
    assert hits == {}, f"patient identifiers in plain text: {hits}"
