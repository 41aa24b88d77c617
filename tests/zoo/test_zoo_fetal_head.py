"""The shipped fetal head model (HC18): card, routing, HC of a real image, DICOM SEG."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from radlens.analyze import analyze
from radlens.domain.imaging import Instance, Series
from radlens.evaluation.segmentation import evaluate_segmentation
from radlens.inference.backends import OnnxBackend
from radlens.io.segmentation_sets import read_segmentation
from radlens.models.card import Measure, Task
from radlens.models.registry import discover, get_model, route, zoo_folder
from radlens.report.seg import read_dicom_seg
from radlens.report.sr import read_dicom_sr
from us_helpers import write_us_dicom

NAME = "fetal_head_hc18"
DATA = "seg/hc18_fetal_head_us"
HC_TOLERANCE_MM = 6.0  # about three times the val mean absolute difference


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return get_model(NAME, discover(include_disabled=True))


def test_the_card_says_what_the_model_is_and_how_it_was_measured(model) -> None:  # type: ignore[no-untyped-def]
    card = model.card
    assert card.task is Task.SEGMENTATION and card.outputs == ("mask_logits",)
    assert card.segmentation is not None
    assert card.segmentation.measure is Measure.HEAD_CIRCUMFERENCE
    assert 1.0 < card.segmentation.edge_offset_px < 2.0  # half the HC18 annotation line
    assert "recipes/fetal_head_hc18.toml" in card.training.command
    assert (zoo_folder() / NAME / "train.log").exists()
    val = card.metrics["val"]
    assert val["n"] == 40 and {"dice", "hd_mm", "hd95_mm", "hc_mad_mm"} <= set(val)
    assert model.weights.stat().st_size < 3_000_000


def _series(modality: str, body_part: str) -> Series:
    instance = Instance("1.2.3.1", "", Path("in.png"), rows=540, columns=800, frames=1)
    return Series("1.2.3.2", modality, (instance,), body_part=body_part)


@pytest.mark.parametrize(
    ("body_part", "expected"),
    [("FETAL_HEAD", {NAME}), ("FETUS", {NAME}), ("BREAST", {"breast_us_malignancy"}), ("", set())],
)
def test_fetal_head_ultrasound_routes_to_the_model(body_part: str, expected: set[str]) -> None:
    chosen = route(_series("US", body_part), discover())
    assert {m.card.name for m in chosen.models} == expected, chosen.reason


def _first_val(shared_data_dir: Path) -> tuple[np.ndarray, float, float]:
    val = read_segmentation(shared_data_dir / DATA, "val")
    return val.images[0], float(val.pixel_size_mm[0]), float(val.reference_mm[0])


@pytest.mark.shared_data
def test_a_png_with_its_pixel_size_gives_the_labelled_hc(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    from PIL import Image as PILImage

    image, pixel_mm, reference_mm = _first_val(shared_data_dir)
    PILImage.fromarray(image).save(tmp_path / "head.png")
    run = analyze(
        [tmp_path / "head.png"],
        tmp_path / "out",
        discover(),
        modality="US",
        body_part="FETAL_HEAD",
        pixel_size_mm=pixel_mm,
    )
    [finding] = [f for o in run.outputs for f in o.result.findings]
    assert finding.model_name == NAME and finding.positive
    hc, ga = finding.measurements
    assert hc.value == pytest.approx(reference_mm, abs=HC_TOLERANCE_MM)
    assert ga.unit == "wk" and (ga.value is not None or "outside" in ga.note)
    doc = json.loads(next((tmp_path / "out").rglob("findings.json")).read_text())
    written = doc["series"][0]["findings"][0]["measurements"][0]
    assert written["code"] == "head_circumference" and written["unit"] == "mm"
    assert list((tmp_path / "out").rglob("overlay_*.png"))


@pytest.mark.shared_data
def test_a_dicom_us_yields_a_seg_that_reads_back_to_the_same_mask(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    image, pixel_mm, reference_mm = _first_val(shared_data_dir)
    (tmp_path / "in").mkdir()
    source = write_us_dicom(tmp_path / "in" / "head.dcm", image, pixel_mm)
    run = analyze([tmp_path / "in"], tmp_path / "out", discover(), dicom_results=True)
    [output] = run.outputs
    [finding] = output.result.findings
    assert finding.mask is not None
    seg = pydicom.dcmread(output.folder / "seg_1.dcm")
    np.testing.assert_array_equal(read_dicom_seg(seg, [source]).mask, finding.mask)
    [reported] = read_dicom_sr(pydicom.dcmread(io.BytesIO((output.folder / "sr.dcm").read_bytes())))
    hc = {c.value: v for c, v, _ in reported.measurements}["11984-2"]
    assert hc == pytest.approx(reference_mm, abs=HC_TOLERANCE_MM)


@pytest.mark.shared_data
def test_an_untagged_us_named_fetal_biometry_is_measured_and_says_why(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    image, pixel_mm, _ = _first_val(shared_data_dir)
    (tmp_path / "in").mkdir()
    write_us_dicom(tmp_path / "in" / "a.dcm", image, pixel_mm, "", "OB fetal biometry HC")
    run = analyze([tmp_path / "in"], tmp_path / "out", discover())
    [series] = [s for o in run.outputs for s in o.result.series]
    assert series.models == (NAME,)
    assert any("taken from the series description" in w for w in series.warnings)
    # Without BodyPartExamined and without a telling description nothing is measured.
    (tmp_path / "in2").mkdir()
    write_us_dicom(tmp_path / "in2" / "b.dcm", image, pixel_mm, "", "ABDOMEN")
    run = analyze([tmp_path / "in2"], tmp_path / "out2", discover())
    [series] = [s for o in run.outputs for s in o.result.series]
    assert not series.findings and "'ABDOMEN'" in series.skipped_reason


@pytest.mark.shared_data
@pytest.mark.slow
def test_evaluate_reproduces_the_card(model, shared_data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    val = read_segmentation(shared_data_dir / DATA, "val")
    evaluation, _ = evaluate_segmentation(model.card, OnnxBackend(model.weights, threads=2), val)
    for key, value in model.card.metrics["val"].items():
        assert evaluation.metrics[key] == pytest.approx(value, abs=0.002), key
