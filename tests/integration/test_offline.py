"""The edge appliance works with no network at all, and reaches for none.

``radlens analyze`` and a short ``radlens serve`` session (``offline_session.py``: account,
health and readiness, login, STOW-RS and C-STORE on loopback, analysis, the web page and
every asset it loads) run inside a network namespace that has only loopback (``unshare -n``;
``-rn`` when not root). Every Python process there carries an audit hook
(``sitecustomize.py`` on ``PYTHONPATH``) that writes down each DNS lookup, connect and
sendto aimed at a non-loopback address, so an attempt that fails quietly (a swallowed
"network unreachable") is still caught; a control run shows the hook does catch one.
Also here: a plain ``radlens analyze`` imports none of the service or result libraries,
and the pipeline loads only the ONNX sessions it uses, lazily, the INT8 weights where the
card records them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from netns import offline_prefix

import radlens.server.app
from radlens.analyze import demo_inputs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RADLENS = Path(sys.executable).with_name("radlens")
HERE = Path(__file__).parent
CR_CHEST = "RG1_J2KR.dcm"  # pydicom-data: CR chest PA, JPEG 2000 lossless
# Written by a process that tried to reach the network (any log of either command).
NETWORK_ERRORS = (
    "Network is unreachable",
    "Name or service not known",
    "Temporary failure in name resolution",
    "No address associated with hostname",
    "getaddrinfo failed",
    "ConnectError",
    "ConnectTimeout",
    "MaxRetryError",
)
# A plain `radlens analyze` of a radiograph needs none of these (docs/edge.md).
NOT_FOR_ANALYZE = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "pynetdicom",
    "highdicom",
    "fhir",
    "torch",
    "monai",
    "onnx",
    "skimage",
    "httpx",
    "cryptography",
)

GUARD = '''
"""Test-only: write down every attempt to reach a non-loopback address (audit hook)."""
import os
import sys

_LOG = os.environ.get("RADLENS_NET_GUARD_LOG", "")
_MODULES = os.environ.get("RADLENS_MODULES_LOG", "")
_EVENTS = {
    "socket.connect": 1, "socket.sendto": 1, "socket.sendmsg": 1,
    "socket.getaddrinfo": 0, "socket.gethostbyname": 0, "socket.gethostbyname_ex": 0,
    "socket.gethostbyaddr": 0, "socket.getnameinfo": 0,
}


def _loopback(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").lower()
    return host in ("", "localhost", "::1", "0:0:0:0:0:0:0:1") or host.startswith(
        ("127.", "::ffff:127.")
    )


def _hook(event, args):
    where = _EVENTS.get(event)
    if where is None or not _LOG or len(args) <= where:
        return
    target = args[where]
    if where == 1 and not isinstance(target, tuple):
        return  # an AF_UNIX path, or no address
    if isinstance(target, tuple):
        target = target[0] if target else None
    if target is not None and not _loopback(target):
        line = f"{os.getpid()} {event} {target!r} {' '.join(sys.argv)[:200]}\\n"
        fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)


sys.addaudithook(_hook)

if _MODULES:
    import atexit

    def _dump():
        with open(_MODULES, "w", encoding="utf-8") as fh:
            fh.write("\\n".join(sorted({m.split(".")[0] for m in sys.modules})))

    atexit.register(_dump)
'''


@pytest.fixture(scope="module")
def offline() -> list[str]:
    """The command prefix that runs a command in a namespace with only loopback, up."""
    prefix = offline_prefix()
    if isinstance(prefix, str):
        pytest.skip(prefix)
    return prefix


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the audit-hook ``sitecustomize.py``."""
    folder = tmp_path_factory.mktemp("net-guard")
    (folder / "sitecustomize.py").write_text(GUARD, "utf-8")
    return folder


def _env(guard: Path, net_log: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    }
    paths = [str(guard), str(HERE.parent), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["RADLENS_NET_GUARD_LOG"] = str(net_log)
    env["RES_OPTIONS"] = "attempts:1 timeout:1"  # a DNS attempt fails fast, never hangs
    env.pop("RADLENS_HOME", None)
    return env | extra


def _attempts(net_log: Path) -> list[str]:
    return net_log.read_text("utf-8").splitlines() if net_log.exists() else []


def test_the_namespace_has_no_network_and_the_guard_catches_an_attempt(
    offline: list[str], guard: Path, tmp_path: Path
) -> None:
    net_log = tmp_path / "net.log"
    code = (
        "import socket\n"
        "for target in (('192.0.2.1', 80), ('pypi.org', 443)):\n"
        "    try:\n"
        "        socket.create_connection(target, timeout=2).close()\n"
        "        print('reached', target)\n"
        "    except OSError as exc:\n"
        "        print('refused', target, type(exc).__name__)\n"
    )
    done = subprocess.run(
        [*offline, sys.executable, "-c", code],
        env=_env(guard, net_log),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "reached" not in done.stdout and done.stdout.count("refused") == 2, done.stdout
    attempts = _attempts(net_log)
    assert any("192.0.2.1" in a for a in attempts), attempts
    assert any("pypi.org" in a for a in attempts), attempts


def test_analyze_works_offline_and_reaches_for_nothing(
    offline: list[str], guard: Path, tmp_path: Path
) -> None:
    inputs = demo_inputs()
    if not all(p.is_file() for p in inputs):
        pytest.skip("needs pydicom-data (pip install 'radlens[demo]')")
    net_log, out = tmp_path / "net.log", tmp_path / "out"
    done = subprocess.run(
        [*offline, str(RADLENS), "analyze", *map(str, inputs), "-o", str(out), "--json"],
        env=_env(guard, net_log),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    studies = json.loads(done.stdout)["studies"]
    assert len(studies) >= 5
    for study in studies:
        assert (Path(study["output"]) / "findings.json").is_file()
        assert (Path(study["output"]) / "report.md").is_file()
    models = {m for s in studies for series in s["series"] for m in series["models"]}
    assert "cxr_pneumonia" in models  # the CR chest was read by the pneumonia model
    assert _attempts(net_log) == []
    assert not [e for e in NETWORK_ERRORS if e in done.stderr], done.stderr[-3000:]


def test_plain_analyze_imports_no_service_or_result_library(
    offline: list[str], guard: Path, tmp_path: Path
) -> None:
    sample = next(p for p in demo_inputs() if p.name == CR_CHEST)
    if not sample.is_file():
        pytest.skip("needs pydicom-data (pip install 'radlens[demo]')")
    net_log, modules = tmp_path / "net.log", tmp_path / "modules.txt"
    done = subprocess.run(
        [*offline, str(RADLENS), "analyze", str(sample), "-o", str(tmp_path / "out"), "-q"],
        env=_env(guard, net_log, RADLENS_MODULES_LOG=str(modules)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(modules.read_text("utf-8").split())
    assert {"radlens", "onnxruntime", "pydicom"} <= loaded  # the dump is real
    assert sorted(loaded & set(NOT_FOR_ANALYZE)) == []
    assert _attempts(net_log) == []


def test_sessions_load_lazily_and_run_the_int8_weights_the_card_records() -> None:
    sample = next(p for p in demo_inputs() if p.name == CR_CHEST)
    if not sample.is_file():
        pytest.skip("needs pydicom-data (pip install 'radlens[demo]')")
    code = f"""
import json, sys
from pathlib import Path
from radlens.inference.backends import OnnxBackend
from radlens.io.scan import scan
from radlens.models.registry import discover
from radlens.pipeline import onnx_backends, process_study
models = discover()
make = onnx_backends()
before = len(OnnxBackend._sessions), "onnxruntime" in sys.modules
process_study(scan([Path({str(sample)!r})]).studies[0], models, make, render=False)
loaded = sorted(Path(k[0]).parent.name + "/" + Path(k[0]).name for k in OnnxBackend._sessions)
card = next(m.card for m in models if m.card.name == "cxr_pneumonia")
print(json.dumps({{"before": before, "loaded": loaded, "models": len(models),
                  "int8": card.int8.file if card.int8 else None}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["before"] == [0, False]  # nothing loaded by discover() or the factory
    assert seen["models"] > 3
    weights = seen["int8"] or "model.onnx"
    assert seen["loaded"] == [f"cxr_pneumonia/{weights}"]  # only what the radiograph needs


def test_serve_session_works_offline_and_reaches_for_nothing(
    offline: list[str], guard: Path, tmp_path: Path
) -> None:
    sample = next(p for p in demo_inputs() if p.name == CR_CHEST)
    if not sample.is_file():
        pytest.skip("needs pydicom-data (pip install 'radlens[demo]')")
    home, net_log, report_path = tmp_path / "home", tmp_path / "net.log", tmp_path / "seen.json"
    home.mkdir()
    done = subprocess.run(
        [*offline, sys.executable, str(HERE / "offline_session.py")]
        + [str(home), str(sample), str(report_path)],
        env=_env(guard, net_log),
        capture_output=True,
        text=True,
        timeout=600,
    )
    server_log = (home / "server.log").read_text("utf-8", "replace")
    assert done.returncode == 0 and report_path.is_file(), done.stderr[-3000:]
    seen = json.loads(report_path.read_text("utf-8"))
    context = json.dumps(seen, indent=1)[:3000] + "\n" + server_log[-3000:]
    assert "error" not in seen, context
    assert seen["users_add_exit"] == 0, context
    assert (seen["healthz"], seen["readyz"], seen["login"]) == (200, 200, 200), context
    assert seen["stow"] == 200 and seen["c_store"] == 0, context
    assert len(seen["analyzed"]) == 2, context
    assert seen["cr_models"] == ["cxr_pneumonia"] and "pneumonia" in seen["cr_findings"], context
    assert seen["index_status"] == 200, context
    assert seen["docs_status"] == 404, context  # FastAPI's /docs loads Swagger UI from a CDN
    assert seen["remote_references"] == [], context
    # SIGTERM shuts it down cleanly (uvicorn re-raises the signal once it has finished).
    assert seen["serve_exit"] in (0, -signal.SIGTERM), context
    assert "Application shutdown complete" in server_log
    assert _attempts(net_log) == [], context
    assert not [e for e in NETWORK_ERRORS if e in server_log], server_log[-3000:]
    if (radlens.server.app.STATIC_DIR / "index.html").is_file():
        assets = seen["assets"]
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
        assert {path: status for path, status in assets.items() if status != 200} == {}, context
    else:
        assert "make web" in seen["index_html"]  # the page that says how to build the UI
