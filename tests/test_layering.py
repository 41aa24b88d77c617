"""Architecture rules, read from the import statements of every module under src/radlens."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import radlens

PACKAGE = Path(radlens.__file__).parent
SRC = PACKAGE.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (also inside functions), made absolute."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    package = (
        _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # ``from radlens.cli import analyze`` imports the submodule radlens.cli.analyze.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES: dict[str, set[str]] = {
    p.relative_to(PACKAGE).as_posix(): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))
}


def _importers(*roots: str) -> set[str]:
    return {
        rel
        for rel, imported in MODULES.items()
        if any(m == r or m.startswith(f"{r}.") for m in imported for r in roots)
    }


def test_modules_were_found() -> None:
    assert "pipeline.py" in MODULES and "domain/imaging.py" in MODULES
    assert len(MODULES) > 40


def test_only_training_imports_torch_or_monai() -> None:
    offenders = {m for m in _importers("torch", "monai") if not m.startswith("training/")}
    assert offenders == set()


def test_only_the_backend_and_export_import_onnxruntime() -> None:
    assert _importers("onnxruntime") <= {
        "inference/backends.py",
        "training/export.py",
        "training/quantize.py",
    }
    assert "inference/backends.py" in _importers("onnxruntime")


def test_domain_imports_only_stdlib_numpy_and_itself() -> None:
    allowed_third_party = {"numpy"}
    for rel, imported in MODULES.items():
        if not rel.startswith("domain/"):
            continue
        for module in imported:
            top = module.split(".")[0]
            if top == "radlens":
                assert module.startswith("radlens.domain"), (rel, module)
            else:
                assert top in sys.stdlib_module_names or top in allowed_third_party, (rel, module)


@pytest.mark.parametrize("layer", ["models", "inference", "pipeline", "cli", "analyze"])
def test_io_does_not_import_higher_layers(layer: str) -> None:
    offenders = {m for m in _importers(f"radlens.{layer}") if m.startswith("io/")}
    assert offenders == set()


def test_only_report_imports_highdicom() -> None:
    offenders = {m for m in _importers("highdicom") if not m.startswith("report/")}
    assert offenders == set()
    assert {"report/sr.py", "report/seg.py", "report/pm.py"} <= _importers("highdicom")


def test_only_cli_imports_typer() -> None:
    offenders = {m for m in _importers("typer") if not m.startswith("cli/")}
    assert offenders == set()
    assert "cli/main.py" in _importers("typer")


def test_cli_and_pipeline_load_without_torch() -> None:
    code = (
        "import sys, radlens.cli.main, radlens.pipeline, radlens.analyze; "
        "heavy = sorted(m for m in ('torch', 'monai') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == ""


def test_only_report_fhir_imports_the_fhir_library() -> None:
    assert _importers("fhir", "fhir_core") == {"report/fhir.py"}


def test_nlp_imports_only_stdlib_domain_errors_and_itself() -> None:
    found = False
    for rel, imported in MODULES.items():
        if not rel.startswith("nlp/"):
            continue
        found = True
        for module in imported:
            top = module.split(".")[0]
            if top == "radlens":
                assert module.startswith(("radlens.nlp", "radlens.domain", "radlens.errors")), (
                    rel,
                    module,
                )
            else:
                assert top in sys.stdlib_module_names, (rel, module)
    assert found


@pytest.mark.parametrize(
    "layer", ["domain", "io", "models", "inference", "explain", "evaluation", "triage"]
)
def test_layers_below_nlp_do_not_import_it(layer: str) -> None:
    offenders = {m for m in _importers("radlens.nlp") if m.startswith(f"{layer}/")}
    assert offenders == set()


def test_only_the_privacy_profile_imports_the_annex_e_table_library() -> None:
    assert _importers("dicomanonymizer") == {"privacy/profile.py"}


@pytest.mark.parametrize("layer", ["domain", "io", "models", "inference", "pipeline", "report"])
def test_lower_layers_do_not_import_privacy_deidentification(layer: str) -> None:
    deid = {"radlens.privacy.deid", "radlens.privacy.actions", "radlens.privacy.profile"}
    offenders = {m for m in _importers(*deid) if m.startswith(f"{layer}/") or m == f"{layer}.py"}
    assert offenders == set()


def test_only_the_oidc_module_imports_authlib_and_only_accounts_argon2() -> None:
    assert _importers("authlib", "joserfc") == {"server/oidc.py"}
    assert _importers("argon2") == {"store/accounts.py"}


def test_the_permission_table_imports_nothing_of_radlens() -> None:
    assert {m for m in MODULES["privacy/roles.py"] if m.startswith("radlens")} == set()


def test_only_the_bundle_command_imports_edge_and_edge_sits_on_models_and_errors() -> None:
    assert {m for m in _importers("radlens.edge") if not m.startswith("edge/")} == {"cli/bundle.py"}
    found = False
    for rel, imported in MODULES.items():
        if not rel.startswith("edge/"):
            continue
        found = True
        for module in imported:
            top = module.split(".")[0]
            if top == "radlens":
                assert module == "radlens" or module.startswith(
                    ("radlens.edge", "radlens.models", "radlens.errors")
                ), (rel, module)
            else:
                assert top in sys.stdlib_module_names, (rel, module)
    assert found


def test_the_cli_and_analyze_load_without_service_or_result_libraries() -> None:
    # What makes `radlens analyze` start fast on an edge box (docs/edge.md): these load
    # only when a command or an option needs them (serve, --fhir, --dicom-results, ...).
    heavy = (
        "fastapi",
        "uvicorn",
        "sqlalchemy",
        "pynetdicom",
        "highdicom",
        "fhir",
        "skimage",
        "httpx",
        "onnxruntime",
        "torch",
    )
    code = (
        "import sys, radlens.cli.main, radlens.analyze, radlens.pipeline; "
        f"print(','.join(sorted(m for m in {heavy!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == ""


def test_only_the_executors_import_dask_and_only_results_pyarrow() -> None:
    assert _importers("dask", "distributed") == {"cluster/executors.py"}
    assert _importers("pyarrow") == {"cluster/results.py"}


@pytest.mark.parametrize(
    "layer", ["domain", "io", "models", "inference", "pipeline", "report", "store", "net"]
)
def test_lower_layers_do_not_import_the_cluster(layer: str) -> None:
    offenders = {
        m for m in _importers("radlens.cluster") if m.startswith(f"{layer}/") or m == f"{layer}.py"
    }
    assert offenders == set()


FEEDBACK_PURE = (
    "feedback/records.py",
    "feedback/adjudication.py",
    "feedback/equipment.py",
    "feedback/queue.py",
    "feedback/drift.py",
    "feedback/monitor.py",
)


def test_feedback_reads_the_store_in_one_module_and_its_logic_is_pure() -> None:
    assert {m for m in _importers("sqlalchemy") if m.startswith("feedback/")} == {
        "feedback/stored.py"
    }
    for rel in FEEDBACK_PURE:
        impure = {m for m in MODULES[rel] if m.startswith(("radlens.store", "sqlalchemy"))}
        assert impure == set(), rel


@pytest.mark.parametrize(
    "layer",
    ["domain", "io", "models", "inference", "explain", "evaluation", "triage", "report", "nlp"]
    + ["store", "privacy", "training"],
)
def test_lower_layers_do_not_import_feedback(layer: str) -> None:
    offenders = {m for m in _importers("radlens.feedback") if m.startswith(f"{layer}/")}
    assert offenders == set()
