"""Run a command in a network namespace that has only loopback (``unshare -n``, or ``-rn``
when not root), for the tests of the offline appliance."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def offline_prefix() -> list[str] | str:
    """The command prefix that runs ``COMMAND...`` with no network but loopback (brought up),
    or, where that is not possible here, the reason as a string (for ``pytest.skip``)."""
    unshare = shutil.which("unshare")
    ip = shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip") if Path(p).is_file()), None
    )
    if unshare is None or ip is None:
        return "needs unshare (util-linux) and ip (iproute2) for a network namespace"
    flags = "-n" if os.geteuid() == 0 else "-rn"
    probe = subprocess.run(
        [unshare, flags, ip, "link", "set", "lo", "up"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"`unshare {flags}` is not permitted here: {probe.stderr.strip()}"
    return [unshare, flags, "sh", "-c", f'{ip} link set lo up && exec "$@"', "offline"]
