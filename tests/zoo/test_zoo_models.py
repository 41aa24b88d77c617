"""Every shipped model: integrity, its card, routing, reproducible metrics, end-to-end use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from radlens.analyze import analyze
from radlens.domain.imaging import Geometry, Image, ImageLayout, Instance, Series
from radlens.evaluation.evaluate import evaluate
from radlens.inference.backends import OnnxBackend
from radlens.io.datasets import read_labelled
from radlens.io.nifti import write_nifti
from radlens.io.raster import write_png
from radlens.models.registry import discover, get_model, route, zoo_folder

# name -> (data under ../shared/data, val size)
SHIPPED = {
    "cxr_pneumonia": ("cxr_pneumonia", 522),
    "cxr_pneumonia_128": ("cxr_pneumonia", 522),
    "breast_us_malignancy": ("medmnist/breastmnist.npz", 78),
    "retina_dr_grade": ("medmnist/retinamnist.npz", 120),
    "adrenal_ct_3d_64": ("medmnist/adrenalmnist3d_64.npz", 98),
    "vessel_mra_3d": ("medmnist/vesselmnist3d.npz", 191),
    "knee_oa_kl": ("cls/knee_oa_kl_grade", 128),
}
RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture(scope="module")
def installed():  # type: ignore[no-untyped-def]
    return discover(include_disabled=True)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_has_a_complete_card_and_its_recipe(name: str, installed) -> None:  # type: ignore[no-untyped-def]
    card = get_model(name, installed).card
    assert (zoo_folder() / name / "train.log").exists()
    assert (RECIPES / f"{name}.toml").exists()
    assert f"recipes/{name}.toml" in card.training.command
    assert card.training.licence and card.training.citation and card.training.machine
    assert card.training.duration_min is not None and card.training.duration_min <= 90
    assert card.calibration.ece_before is not None and card.calibration.ece_after is not None
    assert card.metrics["val"]["n"] == SHIPPED[name][1]
    assert {"auc", "acc", "ece"} <= set(card.metrics["val"])
    if card.task.value == "binary":
        assert card.thresholds["high_sensitivity"] <= card.thresholds["operating"]
    if card.task.value == "ordinal":
        assert {"qwk", "mae"} <= set(card.metrics["val"])


def test_shipped_weights_fit_the_budget() -> None:
    total = sum(f.stat().st_size for f in zoo_folder().glob("*/*.onnx"))
    assert total <= 40_000_000  # the budget: 40 MB for all shipped weights


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_evaluate_reproduces_every_card(name: str, installed, shared_data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    model = get_model(name, installed)
    card = model.card
    val = read_labelled(shared_data_dir / SHIPPED[name][0], "val", card.labels)
    result = evaluate(card, OnnxBackend(model.weights, threads=2), val)
    for key, value in card.metrics["val"].items():
        if key != "n":
            assert result.metrics[key] == pytest.approx(value, abs=0.002), key
    assert result.n == SHIPPED[name][1]


def series(
    modality: str, body_part: str = "", *, color: bool = False, volume: bool = False
) -> Series:
    instance = Instance(
        "1.2.826.0.1.3680043.8.498.1",
        "",
        Path("input.nii.gz" if volume else "input.png"),
        rows=64,
        columns=64,
        frames=40 if volume else 1,
        samples_per_pixel=3 if color else 1,
        is_volume=volume,
    )
    return Series("1.2.826.0.1.3680043.8.498.2", modality, (instance,), body_part=body_part)


@pytest.mark.parametrize(
    ("what", "kind", "expected"),
    [
        ("CR chest", series("CR", "CHEST"), {"cxr_pneumonia"}),
        ("DX chest", series("DX", "THORAX"), {"cxr_pneumonia"}),
        ("US breast", series("US", "BREAST"), {"breast_us_malignancy"}),
        ("US breast, colour Doppler", series("US", "BREAST", color=True), set()),
        ("US abdomen", series("US", "ABDOMEN"), set()),
        ("US, no body part", series("US"), set()),
        ("fundus photograph", series("OP", color=True), {"retina_dr_grade"}),
        ("external-camera fundus", series("XC", "EYE", color=True), {"retina_dr_grade"}),
        ("red-free fundus (gray)", series("OP"), set()),
        ("adrenal mask volume", series("SEG", "ADRENAL", volume=True), {"adrenal_ct_3d_64"}),
        ("vessel mask volume", series("SEG", "HEAD", volume=True), {"vessel_mra_3d"}),
        ("adrenal mask, one slice", series("SEG", "ADRENAL"), set()),
        ("raw CT volume", series("CT", "ABDOMEN", volume=True), set()),
        ("raw MR volume", series("MR", "HEAD", volume=True), set()),
        ("CR hand", series("CR", "HAND"), {"fracture_xray"}),
        ("blood smear", series("SM", "BLOOD", color=True), {"bccd_cells"}),
        ("smear picture as secondary capture", series("OT", "BLOOD", color=True), {"bccd_cells"}),
        ("colour secondary capture, no body part", series("OT", color=True), set()),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_routing_sends_each_input_to_its_models_and_nothing_else(
    what: str, kind: Series, expected: set[str]
) -> None:
    chosen = route(kind, discover())
    assert {m.card.name for m in chosen.models} == expected, chosen.reason
    if not expected:
        assert "no installed model applies" in chosen.reason


@pytest.mark.shared_data
@pytest.mark.slow
def test_analyze_a_mask_volume_a_fundus_photo_and_a_breast_image(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    medmnist = shared_data_dir / "medmnist"
    with np.load(medmnist / "adrenalmnist3d_64.npz") as npz:
        mask = npz["val_images"][int(np.argmax(npz["val_labels"][:, 0]))]
    volume = tmp_path / "in" / "adrenal_mask.nii.gz"
    volume.parent.mkdir()
    write_nifti(Image(mask.astype(np.float32), ImageLayout.ZYX, Geometry((1.0, 1.0, 1.0))), volume)
    run = analyze([volume], tmp_path / "out3d", discover(), modality="SEG", body_part="ADRENAL")
    assert run.exit_code == 0
    [finding] = [f for o in run.outputs for s in o.result.series for f in s.findings]
    assert finding.model_name == "adrenal_ct_3d_64" and finding.heatmap is not None
    assert 0 <= finding.frame < 64

    with np.load(medmnist / "retinamnist.npz") as npz:
        photo = npz["val_images"][0]
    write_png(tmp_path / "fundus.png", photo)
    run = analyze([tmp_path / "fundus.png"], tmp_path / "outop", discover(), modality="OP")
    [finding] = [f for o in run.outputs for s in o.result.series for f in s.findings]
    assert finding.model_name == "retina_dr_grade"
    assert finding.grade is not None and finding.grade_label.startswith("grade")

    with np.load(medmnist / "breastmnist.npz") as npz:
        lesion = npz["val_images"][0]
    write_png(tmp_path / "breast.png", lesion)
    run = analyze(
        [tmp_path / "breast.png"], tmp_path / "outus", discover(), modality="US", body_part="BREAST"
    )
    [finding] = [f for o in run.outputs for s in o.result.series for f in s.findings]
    assert finding.model_name == "breast_us_malignancy"
    doc = json.loads(next((tmp_path / "outus").rglob("findings.json")).read_text())
    assert doc["series"][0]["findings"][0]["code"] == "breast_malignancy"


@pytest.mark.shared_data
def test_a_dicom_segmentation_routes_to_the_mask_model_of_its_body_part(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    import pydicom

    seg = pydicom.dcmread(shared_data_dir / "dicom" / "seg" / "SEG_liver_3frame.dcm")
    untagged = analyze(
        [shared_data_dir / "dicom" / "seg" / "SEG_liver_3frame.dcm"], tmp_path / "a", discover()
    )
    [series_result] = [s for o in untagged.outputs for s in o.result.series]
    assert not series_result.findings and "body part not stated" in series_result.skipped_reason

    seg.BodyPartExamined = "ADRENAL"
    seg.save_as(tmp_path / "adrenal_seg.dcm", enforce_file_format=True)
    run = analyze([tmp_path / "adrenal_seg.dcm"], tmp_path / "b", discover())
    assert run.exit_code == 0
    [finding] = [f for o in run.outputs for s in o.result.series for f in s.findings]
    assert finding.model_name == "adrenal_ct_3d_64"
    assert 0 <= finding.frame < 3 and finding.heatmap is not None
    assert finding.heatmap.shape == (512, 512)
    assert list((tmp_path / "b").rglob("overlay_*.png"))


@pytest.mark.shared_data
def test_a_chest_radiograph_tagged_as_head_ct_is_called_out(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    radiograph = sorted((shared_data_dir / "cxr_pneumonia").rglob("*.jpeg"))[0]
    run = analyze([radiograph], tmp_path / "out", discover(), modality="CT", body_part="HEAD")
    [series] = [s for o in run.outputs for s in o.result.series]
    assert not series.findings and "no installed model applies" in series.skipped_reason
    [warning] = [w for w in series.warnings if "resembles the training data of" in w]
    assert "cxr_pneumonia" in warning and "modality CT not in" in warning
    assert "series tagged CT HEAD" in warning


def test_the_demo_series_raise_no_tag_warnings(tmp_path: Path) -> None:
    from radlens.analyze import demo_inputs

    run = analyze(demo_inputs(), tmp_path, discover())
    assert not [
        w for o in run.outputs for s in o.result.series for w in s.warnings if "resembles" in w
    ]
