"""radlens.training.members: ensemble members trained in worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

TESTS = Path(__file__).parents[1]

# Trains two members two at a time; each member writes its pid and then sleeps far longer
# than the test waits, as a real member trains for an hour.
SCRIPT = f"""
import logging, os, sys, time
from pathlib import Path

sys.path.insert(0, {str(TESTS)!r})
import torch
from train_helpers import minimal_recipe
from radlens.training.members import run_members


def job(recipe, member, folder, log):
    Path(folder, f"member{{member}}.pid").write_text(str(os.getpid()))
    time.sleep(600)
    return torch.nn.Linear(1, 1)


if __name__ == "__main__":
    recipe = minimal_recipe("binary", ["a", "b"], ensemble=2, workers=2, threads=1)
    run_members(recipe, job, (sys.argv[1],), lambda: torch.nn.Linear(1, 1),
                logging.getLogger("t"))
"""


def children(pid: int) -> set[int]:
    """The processes ``pid`` started (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (in a container nothing may reap an orphan)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.train
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_workers_and_manager_exit_when_the_training_process_is_killed(tmp_path: Path) -> None:
    """SIGKILL to ``radlens train`` (a job manager's kill, an OOM kill) leaves no member
    training on: the worker processes and the manager exit on their own."""
    script = tmp_path / "train_two.py"
    script.write_text(SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while len(list(tmp_path.glob("member*.pid"))) < 2:
            assert parent.poll() is None, "the training process ended before its members ran"
            assert time.monotonic() < deadline, "the members did not start"
            time.sleep(0.2)
        members = {int(p.read_text()) for p in tmp_path.glob("member*.pid")}
        started = children(parent.pid)
        assert members <= started
        # the two workers, the manager (and the resource tracker, which ends with them)
        assert len(started) >= 3
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while any(running(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in started if running(pid)]
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in started:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
