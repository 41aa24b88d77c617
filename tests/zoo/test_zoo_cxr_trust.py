"""The shipped chest model knows when it does not know (issue 5): given a knee radiograph, an
ultrasound, a blank image or a CT slice, each tagged as a chest radiograph (tags that lie), it
flags every finding as low trust; tagged truthfully, none of them reaches it. A real chest
radiograph of its own val split is the control, read with normal trust.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from pydicom import dcmread
from pydicom.data import get_testdata_file

from radlens.analyze import analyze
from radlens.domain.findings import SeriesResult
from radlens.models.registry import InstalledModel, discover, get_model

pytestmark = pytest.mark.shared_data
LOW_TRUST = "low: input unlike training data"


@pytest.fixture(scope="module")
def models() -> list[InstalledModel]:
    return [get_model("cxr_pneumonia", discover())]


def _read_as(
    path: Path,
    out: Path,
    models: list[InstalledModel],
    modality: str = "CR",
    body_part: str = "CHEST",
) -> SeriesResult:
    run = analyze([path], out, models, modality=modality, body_part=body_part)
    assert not run.rejected, run.rejected
    [series] = [s for o in run.outputs for s in o.result.series]
    return series


def _ct_file() -> Path:
    path = get_testdata_file("CT_small.dcm")
    assert isinstance(path, str), "pydicom's own test files are missing"
    return Path(path)


def _ct_slice_png(folder: Path) -> Path:
    """The pydicom-data CT slice in a soft-tissue window, as an 8-bit PNG."""
    ds = dcmread(_ct_file())
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    pixels = np.clip((hu + 160) / 400 * 255, 0, 255).astype(np.uint8)
    path = folder / "ct_slice.png"
    PILImage.fromarray(pixels).save(path)
    return path


def _not_chest(shared: Path, folder: Path) -> dict[str, Path]:
    knee = sorted((shared / "cls" / "knee_oa_kl_grade" / "train").rglob("*.png"))[0]
    ultrasound = sorted((shared / "seg" / "hc18_fetal_head_us" / "images").glob("*.png"))[0]
    blank = folder / "blank.png"
    PILImage.fromarray(np.full((512, 512), 128, np.uint8)).save(blank)
    return {"knee": knee, "ultrasound": ultrasound, "blank": blank, "ct": _ct_slice_png(folder)}


def test_a_chest_model_flags_a_knee_an_ultrasound_a_blank_image_and_a_ct_slice(
    tmp_path: Path, shared_data_dir: Path, models: list[InstalledModel]
) -> None:
    for name, path in _not_chest(shared_data_dir, tmp_path).items():
        series = _read_as(path, tmp_path / name, models)
        assert series.findings, f"{name}: tagged CR CHEST, the chest model should have run"
        for finding in series.findings:
            assert finding.ood_flag, f"{name}: not flagged (ood_score {finding.ood_score})"


def test_tagged_truthfully_none_of_them_reaches_the_chest_model(
    tmp_path: Path, shared_data_dir: Path, models: list[InstalledModel]
) -> None:
    inputs = _not_chest(shared_data_dir, tmp_path)
    truth = {"knee": ("CR", "KNEE"), "ultrasound": ("US", "HEAD"), "ct": ("CT", "HEAD")}
    for name, (modality, part) in truth.items():
        series = _read_as(inputs[name], tmp_path / name, models, modality, part)
        assert not series.findings and series.skipped_reason, name
    ct = _read_as(_ct_file(), tmp_path / "ct-dicom", models, "", "")
    assert not ct.findings and ct.skipped_reason


def test_the_control_a_val_chest_radiograph_is_read_with_normal_trust(
    tmp_path: Path, shared_data_dir: Path, models: list[InstalledModel]
) -> None:
    root = shared_data_dir / "cxr_pneumonia"
    with (root / "labels.csv").open() as f:
        first_val = next(row["file"] for row in csv.DictReader(f) if row["split"] == "val")
    series = _read_as(root / first_val, tmp_path / "control", models)
    [finding] = series.findings
    assert not finding.ood_flag and finding.ood_score is not None and finding.ood_score < 1
    assert finding.ood_reasons == ()


def test_the_flag_reaches_findings_json(
    tmp_path: Path, shared_data_dir: Path, models: list[InstalledModel]
) -> None:
    import json

    knee = _not_chest(shared_data_dir, tmp_path)["knee"]
    _read_as(knee, tmp_path / "out", models)
    [doc] = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("findings.json")]
    [finding] = [f for s in doc["series"] for f in s["findings"]]
    assert finding["ood_flag"] is True and finding["trust"] == LOW_TRUST


def test_a_gamma_stretched_chest_radiograph_is_flagged_and_told_why(
    tmp_path: Path, shared_data_dir: Path, models: list[InstalledModel]
) -> None:
    """MedMNIST-C's severity-5 gamma (1.6) on the control image, stored as 8-bit PNG: the
    model input looks like another exposure, but the stored levels have gaps (image2d/4);
    the finding is flagged, and findings.json and the warning say so in plain words."""
    import json

    root = shared_data_dir / "cxr_pneumonia"
    with (root / "labels.csv").open() as f:
        first_val = next(row["file"] for row in csv.DictReader(f) if row["split"] == "val")
    pixels = np.asarray(PILImage.open(root / first_val).convert("L"), np.float64)
    stretched = tmp_path / "gamma.png"
    PILImage.fromarray(np.floor(255.999 * (pixels / 255) ** 1.6).astype(np.uint8)).save(stretched)
    [finding] = _read_as(stretched, tmp_path / "out", models).findings
    assert finding.ood_flag
    assert finding.ood_reasons[0][0] == "level_gaps_decoded", finding.ood_reasons
    assert any("empty grey levels" in w for w in finding.warnings), finding.warnings
    [doc] = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("findings.json")]
    [written] = [f for s in doc["series"] for f in s["findings"]]
    assert written["ood_reasons"][0]["statistic"] == "level_gaps_decoded"
    assert written["ood_reasons"][0]["z"] > 3
