"""A short ``radlens serve`` session, run *inside* a network namespace that has only
loopback (``tests/integration/test_offline.py`` starts it with ``unshare -n``): the server and
this client share the namespace, so every request goes over its loopback.

    python offline_session.py HOME CR_CHEST.dcm REPORT.json

Makes an account with ``radlens users add``, starts ``radlens serve``, waits for
``/healthz`` and ``/readyz``, logs in, sends the CR chest by STOW-RS and a CT by C-STORE,
waits until both are analyzed, reads the CR result, fetches ``/`` and every asset the page
loads (following the module graph of the built web UI), and writes what it saw to
REPORT.json for the test to check. Not a test module itself.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from pydicom import dcmread
from pynetdicom import AE

from serve_helpers import free_port, make_instance, stop_server

RADLENS = Path(sys.executable).with_name("radlens")
USER, PASSWORD = "edge-reader", "edge-reader-password-1"
CT_STUDY = "1.2.826.0.1.3680043.9.7777.10001"
# A reference that makes a browser reach outside the site: an absolute or protocol-relative
# URL in src/href, a CSS url() or @import, or a script that imports or fetches one.
REMOTE_HTML = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.I)
REMOTE_CSS = re.compile(r"""(?:url\(\s*["']?|@import\s+["']?)\s*(?:https?:)?//""", re.I)
REMOTE_JS = re.compile(
    r"""(?:import\s*\(|importScripts\s*\(|fetch\s*\(|new\s+Worker\s*\()\s*[`'"](?:https?:)?//""",
    re.I,
)
ASSET = re.compile(r"""[`'"](?:\./|/?assets/)?([\w.-]+-[\w-]{8}\.(?:js|css))[`'"]""")


def main(home: Path, cr_chest: Path, report_path: Path) -> None:
    report: dict[str, Any] = {}
    added = subprocess.run(
        [str(RADLENS), "users", "add", USER, "--home", str(home), "--password-stdin"],
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    report["users_add_exit"] = added.returncode
    port, dicom_port = free_port(), free_port()
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(RADLENS), "serve", "--home", str(home), "--port", str(port)]
            + ["--dicom-port", str(dicom_port), "--quiet-period", "0.3", "--workers", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        report |= _session(url, dicom_port, cr_chest, server)
    except Exception as exc:  # the test prints the report and the server log
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        report["serve_exit"] = stop_server(server)
        report_path.write_text(json.dumps(report, indent=2), "utf-8")


def _session(
    url: str, dicom_port: int, cr_chest: Path, server: subprocess.Popen[bytes]
) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    started = time.monotonic()
    seen["healthz"], seen["readyz"] = _wait_ready(url, server)
    seen["ready_after_s"] = round(time.monotonic() - started, 2)
    with httpx.Client(base_url=url, timeout=30) as client:
        login = client.post("/api/auth/login", json={"username": USER, "password": PASSWORD})
        seen["login"] = login.status_code
        raw = cr_chest.read_bytes()
        cr_study = str(dcmread(io.BytesIO(raw), stop_before_pixels=True).StudyInstanceUID)
        seen["stow"] = _stow(url, raw)
        seen["c_store"] = _c_store(dicom_port, make_instance(CT_STUDY, f"{CT_STUDY}.1"))
        seen["analyzed"] = _wait_analyzed(client, {cr_study, CT_STUDY})
        study = client.get(f"/api/studies/{cr_study}").json()
        findings = study.get("findings") or {}
        seen["cr_models"] = sorted({m for s in findings.get("series", []) for m in s["models"]})
        seen["cr_findings"] = sorted(
            f["code"] for s in findings.get("series", []) for f in s["findings"]
        )
        seen |= _web(client)
        seen["docs_status"] = client.get("/docs").status_code
    return seen


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> tuple[int, int]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"radlens serve exited with {server.returncode}")
        try:
            ready = httpx.get(f"{url}/readyz", timeout=2)
            if ready.status_code == 200:
                return httpx.get(f"{url}/healthz", timeout=2).status_code, ready.status_code
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("radlens serve did not become ready in 120 s")


def _stow(url: str, raw: bytes) -> int:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + raw
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = httpx.post(
        f"{url}/dicomweb/studies",
        content=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        },
        auth=(USER, PASSWORD),
        timeout=60,
    )
    return response.status_code


def _c_store(port: int, raw: bytes) -> int:
    ds = dcmread(io.BytesIO(raw))
    ae = AE(ae_title="EDGETEST")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADLENS")
    if not assoc.is_established:
        return -1
    try:
        status = assoc.send_c_store(ds)
        return int(status.Status) if status else -1
    finally:
        assoc.release()


def _wait_analyzed(client: httpx.Client, studies: set[str]) -> list[str]:
    deadline = time.monotonic() + 180
    done: list[str] = []
    while time.monotonic() < deadline:
        items = {item["study_uid"]: item for item in client.get("/api/worklist").json()}
        done = sorted(uid for uid in studies if items.get(uid, {}).get("analyzed_at"))
        if len(done) == len(studies):
            break
        time.sleep(0.25)
    return done


def _web(client: httpx.Client) -> dict[str, Any]:
    """Fetch / and, transitively, every asset the page loads; note any remote reference."""
    page = client.get("/")
    seen: dict[str, Any] = {"index_status": page.status_code, "index_html": page.text[:4000]}
    remote = [m.group(0) for m in REMOTE_HTML.finditer(page.text)]
    queue = re.findall(r"""(?:src|href)\s*=\s*["']?\.?/?(assets/[^"'\s>]+)""", page.text)
    assets: dict[str, int] = {}
    while queue:
        path = queue.pop()
        if path in assets:
            continue
        response = client.get(f"/{path}")
        assets[path] = response.status_code if response.content else -1
        if response.status_code != 200:
            continue
        text = response.text
        pattern = REMOTE_CSS if path.endswith(".css") else REMOTE_JS
        remote += [f"{path}: {m.group(0)}" for m in pattern.finditer(text)]
        queue += [f"assets/{name}" for name in ASSET.findall(text)]
    seen["assets"] = assets
    seen["remote_references"] = remote
    return seen


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
