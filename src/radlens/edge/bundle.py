"""``build_bundle``: a wheelhouse from which an air-gapped machine installs radlens.

The folder holds the radlens wheel (the shipped models under ``radlens/zoo`` and the built
web UI under ``radlens/server/static`` travel inside it as package data), a wheel of every
run-time dependency of the base install plus the chosen extras (``serve`` and ``demo`` by
default; never torch), ``README.txt`` (how to install), ``manifest.json`` (what was built,
for which Python and platform, and the sha256 of every file) and ``SHA256SUMS`` (the same
hashes for ``sha256sum -c``). On the target::

    python3.11 -m venv /opt/radlens
    /opt/radlens/bin/pip install --no-compile --no-index --find-links DIR 'radlens[serve,demo]'

``--no-compile`` leaves Python to write the ``.pyc`` of each module when radlens first imports
it, instead of compiling every module of every dependency at install (numpy's tests, ONNX
Runtime's transformer tools): about 40 MB less on an edge box (``benchmarks/bench_edge.py``).

The wheels are made by pip itself (``sys.executable -m pip wheel``) with the repository's
``constraints.txt``, for the Python and platform that run the build: a bundle built on
CPython 3.11 / linux-x86_64 installs on CPython 3.11 / linux-x86_64. By default every
dependency is pinned to the version installed where the bundle is built (the one the
tests ran against). Building needs the package index; installing needs nothing.

Example:
    >>> bundle = build_bundle(Path("radlens-bundle"))  # doctest: +SKIP
    >>> verify_bundle(bundle.folder).radlens_wheel  # doctest: +SKIP
    'radlens-0.1.0-py3-none-any.whl'
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import radlens
from radlens.errors import BundleError, ConfigError, ModelIntegrityError
from radlens.models.registry import load_model

DEFAULT_EXTRAS = ("serve", "demo")
FORMAT = "radlens.bundle/1"
MANIFEST, SUMS, README = "manifest.json", "SHA256SUMS", "README.txt"
# Never in the bundle: the training stack (a hospital runs radlens without torch), and any
# telemetry SDK or exporter (FastAPI requires opentelemetry-api, which without an SDK
# records and sends nothing; docs/edge.md).
FORBIDDEN = (
    "torch",
    "torchvision",
    "torchaudio",
    "triton",
    "nvidia-*",
    "opentelemetry-sdk",
    "opentelemetry-exporter-*",
)
# Copied into the build tree; everything the wheel needs (src/ holds the package data).
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE", "LICENSE.txt", "NOTICE")

Pip = Callable[[Sequence[str]], None]
"""Runs ``python -m pip ARGS``; raises ``BundleError`` when pip fails."""


@dataclass(frozen=True)
class BundleFile:
    """One file of the bundle."""

    name: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class Bundle:
    """A built (or verified) bundle folder."""

    folder: Path
    radlens_wheel: str
    extras: tuple[str, ...]
    python: str
    platform: str
    models: tuple[str, ...]
    web_ui: bool
    files: tuple[BundleFile, ...]

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def wheels(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files if f.name.endswith(".whl"))

    @property
    def install_command(self) -> str:
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"pip install --no-compile --no-index --find-links {self.folder} 'radlens{extras}'"


def run_pip(args: Sequence[str]) -> None:
    """``sys.executable -m pip ARGS``, its output kept for the error message."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-15:])
        raise BundleError(
            f"pip {args[0]} failed (exit {done.returncode}); building a bundle needs the "
            f"package index (network or a local mirror):\n{tail}"
        )


def find_source() -> Path:
    """The radlens source tree this installation runs from (an editable install).

    Raises:
        ConfigError: radlens was installed from a wheel; pass the source tree explicitly.
    """
    candidate = Path(radlens.__file__).resolve().parents[2]
    if _is_radlens_source(candidate):
        return candidate
    raise ConfigError(
        "radlens bundle builds the radlens wheel from its source tree, and this radlens is "
        "not installed from one: run it from a clone (pip install -e .) or pass --source"
    )


def build_bundle(
    out_dir: Path,
    extras: Sequence[str] = DEFAULT_EXTRAS,
    source: Path | None = None,
    pin_installed: bool = True,
    require_web: bool = True,
    pip: Pip = run_pip,
    progress: Callable[[str], None] | None = None,
) -> Bundle:
    """Write the wheelhouse of radlens with ``extras`` into the new folder ``out_dir``.

    Args:
        out_dir: a folder that does not exist yet or is empty.
        extras: optional dependency groups of radlens to include (never ``train``).
        source: the radlens source tree (default: :func:`find_source`).
        pin_installed: pin every dependency to the version installed here.
        require_web: refuse a source tree whose web UI is not built (``make web``).
        pip: runs pip (tests pass a fake).
        progress: told each step, for the command line.

    Raises:
        ConfigError: unknown or forbidden extras, no source tree, a non-empty ``out_dir``,
            or an unbuilt web UI.
        ModelIntegrityError: a shipped model is missing from the wheel or fails its hash.
        BundleError: pip failed, or the dependencies pulled in torch.
    """
    say = progress or (lambda _: None)
    source = (source or find_source()).resolve()
    if not _is_radlens_source(source):
        raise ConfigError(f"{source}: not the radlens source tree (no pyproject.toml of radlens)")
    extras = _check_extras(tuple(extras), source)
    static = source / "src" / "radlens" / "server" / "static"
    web_ui = (static / "index.html").is_file()
    if require_web and not web_ui:
        raise ConfigError(
            f"{static}: the web UI is not built; run `make web` first (or bundle without it)"
        )
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir}: not empty; give radlens bundle a new folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="radlens-bundle-") as tmp:
        work = Path(tmp)
        say("building the radlens wheel (models and web UI as package data)")
        wheel = build_radlens_wheel(source, work / "wheel", pip)
        models = check_wheel(wheel, source / "src" / "radlens", web_ui)
        say(f"collecting the wheels of radlens[{','.join(extras)}] and its dependencies")
        constraints = [source / "constraints.txt"] if (source / "constraints.txt").is_file() else []
        if pin_installed:
            constraints.append(write_installed_pins(work / "installed.txt"))
        args = ["wheel", "--wheel-dir", str(out_dir), "--progress-bar", "off"]
        for path in constraints:
            args += ["--constraint", str(path)]
        pip([*args, f"{wheel}[{','.join(extras)}]" if extras else str(wheel)])
        if not (out_dir / wheel.name).is_file():  # pip copies the requirement's own wheel
            shutil.copy2(wheel, out_dir / wheel.name)
    forbidden = [p.name for p in sorted(out_dir.glob("*.whl")) if _forbidden(p.name)]
    if forbidden:
        raise BundleError(
            f"{out_dir}: the dependencies pulled in {', '.join(forbidden)}; the run-time "
            "bundle never carries the training stack or a telemetry exporter (check the "
            "extras and constraints)"
        )
    sdists = sorted(p.name for p in out_dir.iterdir() if not p.name.endswith(".whl"))
    if sdists:
        raise BundleError(f"{out_dir}: pip left files that are not wheels: {', '.join(sdists)}")
    say("writing README.txt, manifest.json and SHA256SUMS")
    return write_manifest(out_dir, wheel.name, extras, models, web_ui, pin_installed)


def build_radlens_wheel(source: Path, dest: Path, pip: Pip) -> Path:
    """Build the radlens wheel from a clean copy of ``source`` (no stale build/ folders, and
    nothing written into the working tree)."""
    tree = dest.parent / "source"
    shutil.copytree(
        source / "src",
        tree / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*"),
    )
    for name in SOURCE_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, tree / name)
    args = ["wheel", "--no-deps", "--wheel-dir", str(dest), "--progress-bar", "off"]
    if _setuptools_here():  # no download of the build backend when one is installed
        args.append("--no-build-isolation")
    pip([*args, str(tree)])
    wheels = sorted(dest.glob("radlens-*.whl"))
    if len(wheels) != 1:
        raise BundleError(f"{dest}: pip wheel made {len(wheels)} radlens wheels, expected one")
    return wheels[0]


def check_wheel(wheel: Path, package: Path, web_ui: bool) -> tuple[str, ...]:
    """Check that every shipped model (and the web UI) of ``package`` is in ``wheel`` byte for
    byte, and that each model passes its card's hash checks; return "name version" each.

    Raises:
        ModelIntegrityError: a model file is missing from the wheel, differs, or fails its
            card's sha256 (fp32 or INT8 weights).
        BundleError: the web UI files are missing from the wheel.
    """
    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory() as tmp:
        inside = {n: archive.getinfo(n) for n in archive.namelist()}
        zoo = package / "zoo"
        for path in sorted(p for p in zoo.rglob("*") if _is_model_file(p)):
            _same_file(archive, inside, path, f"radlens/{path.relative_to(package).as_posix()}")
        models = []
        for card in sorted(zoo.glob("*/card.json")):
            folder = Path(tmp) / card.parent.name
            folder.mkdir()
            for name in [n for n in inside if n.startswith(f"radlens/zoo/{folder.name}/")]:
                (folder / Path(name).name).write_bytes(archive.read(name))
            model = load_model(folder)  # the card's sha256 of the weights, as at run time
            model.runtime_weights()  # and of the INT8 variant, when the card records one
            models.append(f"{model.card.name} {model.card.version}")
        if web_ui:
            static = package / "server" / "static"
            for path in sorted(p for p in static.rglob("*") if p.is_file()):
                name = f"radlens/{path.relative_to(package).as_posix()}"
                if name not in inside:
                    raise BundleError(
                        f"{wheel.name}: {name} is missing; check the package-data patterns "
                        "of pyproject.toml"
                    )
    return tuple(models)


def write_installed_pins(path: Path) -> Path:
    """A constraints file pinning every distribution installed here (not radlens itself,
    nor anything installed from a path or URL), so the bundle has the tested versions."""
    pins = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name or _normalize(name) == "radlens" or dist.read_text("direct_url.json"):
            continue
        pins.add(f"{_normalize(name)}=={dist.version}")
    path.write_text("\n".join(sorted(pins)) + "\n", "utf-8")
    return path


def write_manifest(
    folder: Path,
    radlens_wheel: str,
    extras: tuple[str, ...],
    models: tuple[str, ...],
    web_ui: bool,
    pinned: bool,
) -> Bundle:
    """Write ``README.txt``, ``manifest.json`` and ``SHA256SUMS`` beside the wheels."""
    bundle = Bundle(
        folder, radlens_wheel, extras, _python(), sysconfig.get_platform(), models, web_ui, ()
    )
    (folder / README).write_text(_readme(bundle), "utf-8")
    files = tuple(_describe(p) for p in sorted(folder.iterdir()) if p.name not in (MANIFEST, SUMS))
    bundle = Bundle(
        folder, radlens_wheel, extras, bundle.python, bundle.platform, models, web_ui, files
    )
    manifest = {
        "format": FORMAT,
        "radlens_version": radlens.__version__,
        "radlens_wheel": radlens_wheel,
        "extras": list(extras),
        "python": bundle.python,
        "platform": bundle.platform,
        "libc": " ".join(platform.libc_ver()).strip(),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pinned_to_installed_versions": pinned,
        "models": list(models),
        "web_ui": web_ui,
        "install": "pip install --no-compile --no-index --find-links DIR "
        f"'radlens[{','.join(extras)}]'",
        "files": [{"name": f.name, "size_bytes": f.size_bytes, "sha256": f.sha256} for f in files],
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    sums = [*files, _describe(folder / MANIFEST)]
    (folder / SUMS).write_text("".join(f"{f.sha256}  {f.name}\n" for f in sums), "utf-8")
    return bundle


def verify_bundle(folder: Path) -> Bundle:
    """Check every file of a bundle against its manifest (as the target machine should
    before installing); wheels the manifest does not list are refused too.

    Raises:
        BundleError: no manifest, a missing, changed or unlisted file.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{folder / MANIFEST}: cannot read the manifest: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{folder / MANIFEST}: not a {FORMAT} manifest")
    listed = {entry["name"]: entry for entry in manifest["files"]}
    for name, entry in listed.items():
        path = folder / name
        if not path.is_file():
            raise BundleError(f"{path}: missing from the bundle; copy the whole folder again")
        found = _describe(path)
        if found.sha256 != entry["sha256"]:
            raise BundleError(
                f"{path}: sha256 {found.sha256[:12]}... differs from the manifest "
                f"({entry['sha256'][:12]}...); the file was changed or damaged in transit"
            )
    extra = sorted(p.name for p in folder.glob("*.whl") if p.name not in listed)
    if extra:
        raise BundleError(f"{folder}: wheels not in the manifest: {', '.join(extra)}")
    return Bundle(
        folder,
        manifest["radlens_wheel"],
        tuple(manifest["extras"]),
        manifest["python"],
        manifest["platform"],
        tuple(manifest["models"]),
        bool(manifest["web_ui"]),
        tuple(BundleFile(e["name"], e["size_bytes"], e["sha256"]) for e in listed.values()),
    )


def _check_extras(extras: tuple[str, ...], source: Path) -> tuple[str, ...]:
    project = tomllib.loads((source / "pyproject.toml").read_text("utf-8"))["project"]
    known = set(project.get("optional-dependencies", {}))
    for extra in extras:
        if extra not in known:
            raise ConfigError(f"unknown extra {extra!r}; radlens has {', '.join(sorted(known))}")
        names = [
            re.split(r"[^A-Za-z0-9._-]", r.strip(), maxsplit=1)[0]
            for r in project["optional-dependencies"][extra]
        ]
        if bad := [name for name in names if _forbidden(name)]:
            raise ConfigError(
                f"extra {extra!r} needs {', '.join(bad)}; the offline bundle carries the "
                "run-time install only (train where the package index is reachable)"
            )
    return tuple(dict.fromkeys(extras))


def _is_radlens_source(folder: Path) -> bool:
    try:
        project = tomllib.loads((folder / "pyproject.toml").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return bool(
        project.get("project", {}).get("name") == "radlens"
        and (folder / "src" / "radlens" / "__init__.py").is_file()
    )


def _same_file(
    archive: zipfile.ZipFile, inside: dict[str, zipfile.ZipInfo], path: Path, name: str
) -> None:
    if name not in inside:
        raise ModelIntegrityError(
            f"{name} is not in the radlens wheel; check the package-data patterns of pyproject.toml"
        )
    if hashlib.sha256(archive.read(name)).hexdigest() != _describe(path).sha256:
        raise ModelIntegrityError(f"{name} in the radlens wheel differs from {path}")


def _is_model_file(path: Path) -> bool:
    return path.is_file() and path.suffix in {".json", ".onnx", ".npz", ".log"}


def _forbidden(file_or_project: str) -> bool:
    """Is a wheel file name (``torch-2.13.0-...whl``) or a project name in ``FORBIDDEN``?"""
    name = _normalize(
        file_or_project.split("-")[0] if ".whl" in file_or_project else file_or_project
    )
    return any(
        name.startswith(bad.rstrip("*")) if bad.endswith("*") else name == bad for bad in FORBIDDEN
    )


def _normalize(name: str) -> str:
    """PEP 503 normal form (wheel file names use ``_`` where the project has ``-``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _setuptools_here() -> bool:
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    return (major, minor) >= (70, 1)  # bdist_wheel built in


def _describe(path: Path) -> BundleFile:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return BundleFile(path.name, path.stat().st_size, digest.hexdigest())


def _python() -> str:
    return f"{sys.implementation.name} {sys.version_info.major}.{sys.version_info.minor}"


def _readme(bundle: Bundle) -> str:
    extras = ",".join(bundle.extras)
    spec = f"radlens[{extras}]" if extras else "radlens"
    models = "\n".join(f"  - {m}" for m in bundle.models) or "  (none)"
    web = "built in (served at / by radlens serve)" if bundle.web_ui else "NOT included"
    return f"""radlens {radlens.__version__} offline bundle
{"=" * (len(radlens.__version__) + 24)}

An air-gapped installation of radlens, an AI second reader for medical imaging. Every
result is an AI draft that requires physician review.

Built for {bundle.python} on {bundle.platform} ({" ".join(platform.libc_ver()).strip()}).
The wheels here install only on the same Python version and platform: check with
    python3 -c "import sys, sysconfig; print(sys.version_info[:2], sysconfig.get_platform())"

Contents: {bundle.radlens_wheel} (with the models and the web UI as package data) and a
wheel for every run-time dependency of {spec}. No torch: training needs the
radlens[train] extra, installed where the package index is reachable.
  models:
{models}
  web UI: {web}

1. Check the files (they may have been copied through removable media):
       sha256sum -c SHA256SUMS
2. Install into a new virtual environment, with no package index:
       python3 -m venv /opt/radlens
       /opt/radlens/bin/pip install --no-compile --no-index \\
           --find-links /path/to/this/folder '{spec}'
   --no-compile: Python writes the .pyc of each module radlens imports the first time it
   runs (as a user who can write to /opt/radlens, so run step 3 as the installing user),
   instead of compiling every module of every dependency now; about 40 MB less on disk.
   The edge install is plain 'radlens' (findings.json, report.md, overlays); the extras
   add: reports (DICOM SR/SEG/PM/SC and FHIR results), nifti (NIfTI input), serve (the
   server, with reports and nifti), demo (the pydicom-data samples).
3. Try it:
       /opt/radlens/bin/radlens demo -o radlens-demo       (needs the demo extra)
       /opt/radlens/bin/radlens analyze STUDY_FOLDER -o out
       /opt/radlens/bin/radlens serve                      (needs the serve extra)

radlens analyze and radlens serve make no network connection of their own; serve
connects out only to what its settings name (a PACS, an OIDC provider, a syslog
collector). See docs/edge.md of the radlens repository.
"""
