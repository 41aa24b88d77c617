"""``analyze``: the real pydicom-data demo files in, one output folder per study out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage

from radlens.analyze import AnalyzeRun, StudyOutput, analyze, demo_inputs, prior_uids
from radlens.domain.imaging import Patient, Study
from radlens.errors import EmptyInputError, InputError
from radlens.inference.backends import FakeBackend
from radlens.models.registry import InstalledModel, load_model

RG1_PATIENT_NAME = "CompressedSamples^RG1"
RG1_PATIENT_ID = "9RG1"


def fake_backend(_: InstalledModel) -> FakeBackend:
    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        cam = np.zeros((len(batch), 2, 7, 7), np.float32)
        cam[:, 1, 3, 3] = 1.0
        return {"logits": np.tile(np.float32([[0.0, 2.0]]), (len(batch), 1)), "cam": cam}

    return FakeBackend(run)


@pytest.fixture(scope="module")
def model(fake_model_dir: Path) -> InstalledModel:
    return load_model(fake_model_dir)


@pytest.fixture(scope="module")
def demo_run(
    pydicom_data_dir: Path, model: InstalledModel, tmp_path_factory: pytest.TempPathFactory
) -> AnalyzeRun:
    seen: list[StudyOutput] = []
    run = analyze(
        demo_inputs(), tmp_path_factory.mktemp("demo"), [model], fake_backend, seen.append
    )
    assert seen == list(run.outputs)
    return run


def chest_output(run: AnalyzeRun) -> StudyOutput:
    [chest] = [
        o
        for o in run.outputs
        if any(s.modality == "CR" and s.body_part == "CHEST" for s in o.result.series)
    ]
    return chest


def test_demo_analyzes_everything_with_exit_0(demo_run: AnalyzeRun) -> None:
    assert demo_run.exit_code == 0
    assert demo_run.rejected == ()
    assert len(demo_run.outputs) == 7


def test_cr_chest_gets_a_finding_and_an_overlay_png(demo_run: AnalyzeRun) -> None:
    chest = chest_output(demo_run)
    [series] = chest.result.series
    assert series.models == ("tiny_cxr",)
    [finding] = series.findings
    assert finding.positive and finding.box is not None
    assert any("outside the training population" in w for w in finding.warnings)
    [png] = chest.folder.glob("overlay_*.png")
    with PILImage.open(png) as overlay:
        assert overlay.mode == "RGB"
        assert max(overlay.size) <= 1024
    doc = json.loads((chest.folder / "findings.json").read_text())
    assert doc["schema"] == "radlens.findings/2"
    assert doc["priority"] == "urgent"
    assert doc["series"][0]["findings"][0]["positive"] is True


def test_every_other_series_has_a_reason_and_no_finding(demo_run: AnalyzeRun) -> None:
    chest = chest_output(demo_run)
    others = [s for o in demo_run.outputs if o is not chest for s in o.result.series]
    assert len(others) >= 6
    assert {s.modality for s in others} >= {"CR", "CT", "MR", "US", "NM"}
    for s in others:
        assert s.skipped_reason, s
        assert not s.findings
    extremity = [s for s in others if s.body_part == "EXTREMITY"]
    assert extremity and "body part EXTREMITY" in extremity[0].skipped_reason


def test_every_study_folder_has_findings_json_and_report(demo_run: AnalyzeRun) -> None:
    for output in demo_run.outputs:
        assert (output.folder / "findings.json").is_file()
        report = (output.folder / "report.md").read_text()
        assert "requires physician review" in report
    non_chest = [o for o in demo_run.outputs if o is not chest_output(demo_run)]
    assert all(not list(o.folder.glob("overlay_*.png")) for o in non_chest)


def test_outputs_hold_no_patient_identifiers(demo_run: AnalyzeRun) -> None:
    chest = chest_output(demo_run)
    assert chest.study.patient.name  # the file has one ...
    for name in ("findings.json", "report.md"):
        text = (chest.folder / name).read_text()
        assert RG1_PATIENT_NAME not in text and RG1_PATIENT_ID not in text  # ... never written


def test_junk_file_is_rejected_and_the_good_study_still_written(
    pydicom_data_dir: Path, model: InstalledModel, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(pydicom_data_dir / "RG1_J2KR.dcm", inbox / "good.dcm")
    (inbox / "junk.dcm").write_bytes(b"this is not DICOM" * 20)
    run = analyze([inbox], tmp_path / "out", [model], fake_backend)
    assert run.exit_code == 2
    [rejected] = run.rejected
    assert rejected.location.endswith("junk.dcm") and rejected.reason
    assert len(list((tmp_path / "out").glob("*/findings.json"))) == 1


def test_empty_folder_raises_empty_input(model: InstalledModel, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyInputError):
        analyze([tmp_path / "empty"], tmp_path / "out", [model], fake_backend)


def test_missing_path_raises_input_error(model: InstalledModel, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        analyze([tmp_path / "nope.dcm"], tmp_path / "out", [model], fake_backend)


def test_png_with_stated_modality_and_body_part_is_routed(
    model: InstalledModel, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    PILImage.fromarray(rng.integers(0, 256, (300, 260), dtype=np.uint8)).save(tmp_path / "cxr.png")
    routed = analyze(
        [tmp_path / "cxr.png"],
        tmp_path / "a",
        [model],
        fake_backend,
        modality="CR",
        body_part="CHEST",
    )
    unrouted = analyze([tmp_path / "cxr.png"], tmp_path / "b", [model], fake_backend)
    assert len(routed.outputs[0].result.findings) == 1
    assert unrouted.outputs[0].result.findings == ()
    assert unrouted.outputs[0].result.series[0].skipped_reason


def _study_of(uid: str, patient_id: str, day: str) -> Study:
    return Study(uid, (), patient=Patient(patient_id=patient_id), study_date=day)


def test_prior_uids_pair_each_study_with_the_latest_earlier_one_of_its_patient() -> None:
    studies = [
        _study_of("3", "A", "20240301"),
        _study_of("1", "A", "20240110"),
        _study_of("2", "A", "20240201"),
        _study_of("9", "B", "20240215"),  # another patient, between them
        _study_of("4", "A", ""),  # undated: neither a prior nor compared
        _study_of("5", "", "20240401"),  # no Patient ID
        _study_of("6", "A", "20240301"),  # same day and time as "3": not earlier
    ]
    assert prior_uids(studies) == {"2": "1", "3": "2", "6": "2"}


def _copy_of_rg1(source: Path, target: Path, study_uid: str, day: str) -> Path:
    ds = pydicom.dcmread(source)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, f"{study_uid}.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{study_uid}.1.1"
    ds.StudyDate, ds.StudyTime, ds.StudyDescription = day, "120000", "XR CHEST"
    ds.save_as(target)
    return target


def test_report_compares_with_the_prior_study_of_the_same_patient_in_the_run(
    pydicom_data_dir: Path, model: InstalledModel, tmp_path: Path
) -> None:
    source = pydicom_data_dir / "RG1_J2KR.dcm"
    later = _copy_of_rg1(source, tmp_path / "later.dcm", "1.2.826.0.1.3680043.99.2", "20240301")
    earlier = _copy_of_rg1(source, tmp_path / "earlier.dcm", "1.2.826.0.1.3680043.99.1", "20240110")
    # The later study comes first: its report waits for its prior's findings.
    run = analyze([later, earlier], tmp_path / "out", [model], fake_backend)
    by_uid = {o.study.study_instance_uid: o for o in run.outputs}
    report = (by_uid["1.2.826.0.1.3680043.99.2"].folder / "report.md").read_text("utf-8")
    assert "Prior study: 2024-01-10, XR CHEST." in report
    assert "- Pneumonia: persistent since 2024-01-10 (then " in report
    first = (by_uid["1.2.826.0.1.3680043.99.1"].folder / "report.md").read_text("utf-8")
    assert "## Comparison\n\nNone available." in first
    assert RG1_PATIENT_ID not in report
