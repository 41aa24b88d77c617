"""A throwaway PostgreSQL cluster for tests: ``initdb`` in a tmp dir, ``postgres`` on loopback.

The server is started by the test session and stopped by its PID. As root (CI containers),
``initdb`` and ``postgres`` refuse to run, so they run as ``nobody`` via ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

MISSING = "PostgreSQL not installed: apt-get install postgresql"


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``: PATH first, then Debian's layout."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).parent
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        pytest.skip("running as root and runuser not found: PostgreSQL refuses root")
    return [runuser, "-u", "nobody", "--", *argv]


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a cluster in a new tmp dir; yield its server URL (no database); stop it by PID.

    The dir is made with ``tempfile`` rather than pytest's ``tmp_path`` because pytest's
    base dir is private to root, where ``nobody`` could not reach the cluster.
    """
    pg_bin = find_pg_bin()
    if pg_bin is None:
        pytest.skip(MISSING)
    pytest.importorskip("psycopg", reason="pip install 'radlens[postgres]'")
    with tempfile.TemporaryDirectory(prefix="radlens-pg-") as tmp:
        yield from _run_cluster(pg_bin, Path(tmp))


def _run_cluster(pg_bin: Path, base: Path) -> Iterator[str]:
    data = base / "pgdata"
    data.mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(base, "nobody")
        shutil.chown(data, "nobody")
    subprocess.run(
        _as_postgres_user(
            [str(pg_bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "radlens", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    log = (base / "postgres.log").open("wb")
    server = subprocess.Popen(
        _as_postgres_user(
            [str(pg_bin / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
            + ["-k", str(data), "-c", "fsync=off"]
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"postgresql+psycopg://radlens@127.0.0.1:{port}"
    try:
        _wait_ready(url, server, base / "postgres.log")
        yield url
    finally:
        server.terminate()  # runuser forwards SIGTERM: postgres "smart" shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait_ready(url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    import psycopg

    conninfo = url.replace("postgresql+psycopg", "postgresql") + "/postgres"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited: {log_path.read_text(errors='replace')}")
        try:
            psycopg.connect(conninfo, connect_timeout=1).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise RuntimeError(f"postgres did not start in 30 s: {log_path.read_text(errors='replace')}")


def create_database(server_url: str) -> str:
    """A fresh, empty database on the cluster; return its SQLAlchemy URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    conninfo = server_url.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"{server_url}/{name}"
