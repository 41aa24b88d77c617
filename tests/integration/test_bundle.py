"""The offline bundle for real: ``build_bundle`` runs pip against the package index (network
allowed while building; pip's cache makes a rebuild quick), then a fresh virtual environment
installs ``radlens[serve,demo]`` from it as its README says (``--no-compile --no-index``,
no pip configuration), inside a network namespace with only loopback where ``unshare`` is
allowed, and ``radlens demo`` runs from that environment; so does an edge install of plain
``radlens`` (with only the demo samples added), which carries no result, NIfTI or service
library. One bundle serves the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from netns import offline_prefix

from radlens.edge.bundle import Bundle, build_bundle, verify_bundle
from radlens.models.registry import zoo_folder
from radlens.server.app import STATIC_DIR

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    folder = tmp_path_factory.mktemp("bundle") / "radlens-bundle"
    return build_bundle(folder, require_web=(STATIC_DIR / "index.html").is_file())


def _isolated_env() -> dict[str, str]:
    """No pip configuration or pip variables of this machine: only the bundle is seen."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _install(bundle: Bundle, venv: Path, spec: str) -> tuple[Path, list[str], dict[str, str]]:
    """A fresh venv with ``spec`` installed from the bundle as its README says, offline where
    ``unshare`` is allowed (``--no-index`` alone otherwise); (venv, offline prefix, env)."""
    prefix = offline_prefix()
    offline = prefix if isinstance(prefix, list) else []
    env = _isolated_env()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    install = subprocess.run(
        [*offline, str(venv / "bin" / "pip"), "install", "--no-compile", "--no-index"]
        + ["--find-links", str(bundle.folder), spec],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return venv, offline, env


def _demo(venv: Path, offline: list[str], env: dict[str, str], out: Path) -> list[Any]:
    """Run ``radlens demo`` from the venv; its studies, each with a findings.json."""
    demo = subprocess.run(
        [*offline, str(venv / "bin" / "radlens"), "demo", "-o", str(out), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    studies: list[Any] = json.loads(demo.stdout)["studies"]
    assert len(studies) >= 5
    assert all((Path(s["output"]) / "findings.json").is_file() for s in studies)
    return studies


def test_the_bundle_holds_radlens_with_its_models_and_ui_and_no_training_stack(
    bundle: Bundle,
) -> None:
    assert verify_bundle(bundle.folder).files == bundle.files
    names = {wheel.split("-")[0].lower() for wheel in bundle.wheels}
    assert {"radlens", "onnxruntime", "pydicom", "fastapi", "pynetdicom", "pydicom_data"} <= names
    assert not names & {"torch", "torchvision", "monai", "opentelemetry_sdk"}
    assert not [n for n in names if n.startswith(("nvidia", "opentelemetry_exporter"))]
    shipped = {p.parent.name for p in zoo_folder().glob("*/card.json")}
    assert {m.split()[0] for m in bundle.models} == shipped
    with zipfile.ZipFile(bundle.folder / bundle.radlens_wheel) as wheel:
        inside = set(wheel.namelist())
    assert {f"radlens/zoo/{name}/card.json" for name in shipped} <= inside
    if bundle.web_ui:
        assert "radlens/server/static/index.html" in inside


def test_the_bundle_installs_offline_in_a_fresh_venv_and_the_demo_runs(
    bundle: Bundle, tmp_path: Path
) -> None:
    venv, offline, env = _install(bundle, tmp_path / "venv", "radlens[serve,demo]")
    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.util as u, radlens.server.app as a; "
            "print(u.find_spec('torch') is None, (a.STATIC_DIR / 'index.html').is_file())",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert probe.stdout.split() == ["True", str(bundle.web_ui)]
    out = tmp_path / "demo"
    studies = _demo(venv, offline, env, out)
    models = {m for s in studies for series in s["series"] for m in series["models"]}
    assert "cxr_pneumonia" in models
    findings = json.loads((Path(studies[0]["output"]) / "findings.json").read_text())
    assert findings["schema"].startswith("radlens.findings/")


def test_the_edge_install_has_no_result_or_service_libraries_and_still_analyzes(
    bundle: Bundle, tmp_path: Path
) -> None:
    venv, offline, env = _install(bundle, tmp_path / "edge", "radlens[demo]")
    absent = ("highdicom", "fhir", "nibabel", "scipy", "skimage", "fastapi", "sqlalchemy")
    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.util as u; "
            f"print([m for m in {absent!r} if u.find_spec(m) is not None])",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert probe.stdout.strip() == "[]"
    out = tmp_path / "demo"
    _demo(venv, offline, env, out)
    fhir = subprocess.run(
        [
            *offline,
            str(venv / "bin" / "radlens"),
            "analyze",
            str(out),
            "-o",
            str(tmp_path / "x"),
            "--fhir",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert fhir.returncode != 0 and "radlens[reports]" in fhir.stderr
    assert "Traceback" not in fhir.stderr
