"""What the browser tests need before they can run: Debian's Chromium, Playwright and the
built web UI. A developer without them gets a skip with the reason; CI (``.ci/run`` sets
``RADLENS_REQUIRE_BROWSER=1``) gets a failure instead."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

import radlens.server.app

CHROMIUM = Path("/usr/bin/chromium")
WEB_INDEX = radlens.server.app.STATIC_DIR / "index.html"
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "web"
RADLENS = Path(sys.executable).with_name("radlens")
TIMEOUT_MS = 30_000


def _missing(reason: str) -> None:
    if os.environ.get("RADLENS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_browser() -> ModuleType:
    """``playwright.sync_api``, or a module-level skip (a failure in CI) saying what is
    missing."""
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        _missing("playwright is missing (pip install -e '.[dev]')")
    if not WEB_INDEX.is_file():
        _missing(f"the web UI is not built ({WEB_INDEX}): run `make web`")
    return sync_api
