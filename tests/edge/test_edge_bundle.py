"""``radlens.edge.bundle`` with a stand-in pip on a small source tree (the real pip, PyPI and
a fresh venv are in ``tests/integration/test_bundle.py``)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from radlens.edge.bundle import (
    build_bundle,
    find_source,
    run_pip,
    verify_bundle,
    write_installed_pins,
)
from radlens.errors import BundleError, ConfigError, ModelIntegrityError

NUMPY_WHEEL = "numpy-2.3.0-cp311-cp311-manylinux_2_28_x86_64.whl"
RADLENS_WHEEL = "radlens-0.1.0-py3-none-any.whl"


class FakePip:
    """Stands in for ``python -m pip``: ``wheel --no-deps TREE`` zips ``TREE/src`` as setuptools
    would (less any path containing a part of ``drop``; ``corrupt`` flips a byte of files
    with that suffix); ``wheel RADLENS.whl[extras]`` copies it and writes ``deps``."""

    def __init__(
        self,
        deps: Sequence[str] = (NUMPY_WHEEL,),
        drop: str = "",
        corrupt: str = "",
        copy_radlens: bool = True,
    ) -> None:
        self.deps, self.drop, self.corrupt, self.copy_radlens = deps, drop, corrupt, copy_radlens
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> None:
        self.calls.append(list(args))
        dest = Path(args[args.index("--wheel-dir") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        if "--no-deps" in args:
            tree = Path(args[-1]) / "src"
            with zipfile.ZipFile(dest / RADLENS_WHEEL, "w") as archive:
                for path in sorted(p for p in tree.rglob("*") if p.is_file()):
                    name = path.relative_to(tree).as_posix()
                    if self.drop and self.drop in name:
                        continue
                    data = path.read_bytes()
                    if self.corrupt and name.endswith(self.corrupt):
                        data = bytes([data[0] ^ 1]) + data[1:]
                    archive.writestr(name, data)
            return
        wheel = Path(args[-1].split("[")[0])
        if self.copy_radlens:
            shutil.copy2(wheel, dest / wheel.name)
        for name in self.deps:
            (dest / name).write_bytes(f"stand-in wheel {name}".encode())


@pytest.fixture
def source(tmp_path: Path, fake_model_dir: Path) -> Path:
    """A small radlens source tree: one model in the zoo and a built web UI."""
    root = tmp_path / "radlens-src"
    package = root / "src" / "radlens"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "0.1.0"\n')
    shutil.copytree(fake_model_dir, package / "zoo" / fake_model_dir.name)
    static = package / "server" / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text('<!doctype html><script src="./assets/a.js"></script>')
    (static / "assets" / "a.js").write_text("console.log('radlens')\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "radlens"\nversion = "0.1.0"\n'
        "[project.optional-dependencies]\n"
        'serve = ["fastapi>=0.115"]\ndemo = ["pydicom-data>=1.0"]\n'
        'train = ["torch==2.13.0", "monai>=1.4"]\n'
    )
    (root / "README.md").write_text("radlens\n")
    (root / "constraints.txt").write_text("torch==2.13.0\n")
    return root


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_bundle_writes_the_wheels_a_readme_a_manifest_and_sums(
    source: Path, tmp_path: Path
) -> None:
    pip = FakePip()
    bundle = build_bundle(tmp_path / "bundle", source=source, pip=pip, pin_installed=False)
    folder = tmp_path / "bundle"
    assert sorted(bundle.wheels) == [NUMPY_WHEEL, RADLENS_WHEEL]
    assert bundle.models == ("tiny_cxr 0.0.1",) and bundle.web_ui
    assert bundle.extras == ("serve", "demo")
    # pip was asked for radlens[serve,demo] under the source tree's constraints
    build, collect = pip.calls
    assert "--no-deps" in build and "--no-deps" not in collect
    assert collect[-1].endswith(f"{RADLENS_WHEEL}[serve,demo]")
    assert collect[collect.index("--constraint") + 1] == str(source / "constraints.txt")
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == {NUMPY_WHEEL, RADLENS_WHEEL, "README.txt"}
    assert all(listed[name] == _sha256(folder / name) for name in listed)
    assert manifest["radlens_wheel"] == RADLENS_WHEEL and manifest["models"] == ["tiny_cxr 0.0.1"]
    sums = dict(
        reversed(line.split("  ")) for line in (folder / "SHA256SUMS").read_text().splitlines()
    )
    assert set(sums) == {*listed, "manifest.json"}
    assert all(sums[name] == _sha256(folder / name) for name in sums)
    readme = (folder / "README.txt").read_text()
    assert "--no-compile --no-index" in readme and "--find-links" in readme
    assert "'radlens[serve,demo]'" in readme
    assert bundle.platform in readme and "No torch" in readme
    assert verify_bundle(folder).files == bundle.files


def test_the_radlens_wheel_is_in_the_bundle_even_where_pip_does_not_copy_it(
    source: Path, tmp_path: Path
) -> None:
    pip = FakePip(copy_radlens=False)
    bundle = build_bundle(tmp_path / "bundle", source=source, pip=pip, pin_installed=False)
    assert RADLENS_WHEEL in bundle.wheels
    assert verify_bundle(tmp_path / "bundle").radlens_wheel == RADLENS_WHEEL


def test_verify_bundle_refuses_a_changed_a_missing_or_an_unlisted_wheel(
    source: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "bundle"
    build_bundle(folder, source=source, pip=FakePip(), pin_installed=False)
    (folder / NUMPY_WHEEL).write_bytes(b"changed in transit")
    with pytest.raises(BundleError, match=f"{NUMPY_WHEEL}: sha256 .* differs"):
        verify_bundle(folder)
    (folder / NUMPY_WHEEL).unlink()
    with pytest.raises(BundleError, match="missing from the bundle"):
        verify_bundle(folder)
    folder.joinpath(NUMPY_WHEEL).write_bytes(b"stand-in wheel " + NUMPY_WHEEL.encode())
    (folder / "evil-1.0-py3-none-any.whl").write_bytes(b"x")
    with pytest.raises(BundleError, match="not in the manifest: evil-1.0"):
        verify_bundle(folder)


def test_a_wheel_without_a_shipped_model_or_with_changed_weights_is_refused(
    source: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelIntegrityError, match="zoo/tiny_cxr/model.onnx is not in the"):
        build_bundle(tmp_path / "a", source=source, pip=FakePip(drop="model.onnx"))
    with pytest.raises(ModelIntegrityError, match="differs from"):
        build_bundle(tmp_path / "b", source=source, pip=FakePip(corrupt="model.onnx"))


def test_a_wheel_without_the_web_ui_files_is_refused(source: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="server/static/assets/a.js is missing"):
        build_bundle(tmp_path / "a", source=source, pip=FakePip(drop="a.js"))


def test_the_bundle_never_carries_torch_or_a_telemetry_exporter(
    source: Path, tmp_path: Path
) -> None:
    torch = "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    with pytest.raises(BundleError, match="pulled in torch-2.13.0"):
        build_bundle(tmp_path / "a", source=source, pip=FakePip(deps=(NUMPY_WHEEL, torch)))
    with pytest.raises(BundleError, match="nvidia_cublas"):
        build_bundle(
            tmp_path / "b",
            source=source,
            pip=FakePip(deps=("nvidia_cublas_cu12-12.4-py3-none-manylinux1_x86_64.whl",)),
        )
    exporter = "opentelemetry_exporter_otlp_proto_http-1.45.0-py3-none-any.whl"
    with pytest.raises(BundleError, match="telemetry exporter"):
        build_bundle(tmp_path / "d", source=source, pip=FakePip(deps=(NUMPY_WHEEL, exporter)))
    with pytest.raises(ConfigError, match="extra 'train' needs torch"):
        build_bundle(tmp_path / "c", extras=("serve", "train"), source=source, pip=FakePip())


def test_unknown_extras_a_used_folder_and_an_unbuilt_web_ui_are_config_errors(
    source: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="unknown extra 'gpu'; radlens has demo, serve, train"):
        build_bundle(tmp_path / "a", extras=("gpu",), source=source, pip=FakePip())
    used = tmp_path / "used"
    used.mkdir()
    (used / "old.whl").write_bytes(b"")
    with pytest.raises(ConfigError, match="not empty"):
        build_bundle(used, source=source, pip=FakePip())
    shutil.rmtree(source / "src" / "radlens" / "server" / "static")
    with pytest.raises(ConfigError, match="make web"):
        build_bundle(tmp_path / "b", source=source, pip=FakePip())
    bundle = build_bundle(tmp_path / "c", source=source, pip=FakePip(), require_web=False)
    assert not bundle.web_ui
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["web_ui"] is False
    with pytest.raises(ConfigError, match="not the radlens source tree"):
        build_bundle(tmp_path / "d", source=tmp_path, pip=FakePip())


def test_installed_pins_name_the_versions_here_and_not_radlens(tmp_path: Path) -> None:
    pins = write_installed_pins(tmp_path / "pins.txt").read_text().splitlines()
    assert f"numpy=={importlib.metadata.version('numpy')}" in pins
    assert not [p for p in pins if p.startswith("radlens==")]


def test_find_source_is_the_checkout_this_radlens_runs_from() -> None:
    root = Path(__file__).parents[2]
    if not (root / "src" / "radlens" / "__init__.py").is_file():
        pytest.skip("tests run outside a radlens checkout")
    assert find_source() == root.resolve()


def test_a_failing_pip_is_a_bundle_error_with_its_output(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"(?s)pip wheel failed \(exit 1\).*no-such-radlens-dep"):
        run_pip(["wheel", "--no-index", "--wheel-dir", str(tmp_path), "no-such-radlens-dep"])
