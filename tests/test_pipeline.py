"""``process_study``: route, decode, predict, render and triage one study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlens.analyze import demo_inputs
from radlens.domain.findings import Priority
from radlens.domain.imaging import Instance, Series, Study
from radlens.inference.backends import Backend, FakeBackend, OnnxBackend
from radlens.io.scan import scan
from radlens.models.registry import InstalledModel, load_model
from radlens.pipeline import onnx_backends, process_study


def positive_backend() -> FakeBackend:
    """Confident logits and a CAM that peaks at cell (1, 5) of class 1."""

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        cam = np.zeros((len(batch), 2, 7, 7), np.float32)
        cam[:, 1, 1, 5] = 4.0
        logits = np.tile(np.array([[0.0, 3.0]], np.float32), (len(batch), 1))
        return {"logits": logits, "cam": cam}

    return FakeBackend(run)


@pytest.fixture(scope="module")
def model(fake_model_dir: Path) -> InstalledModel:
    return load_model(fake_model_dir)


@pytest.fixture(scope="module")
def chest_study(pydicom_data_dir: Path) -> Study:
    """RG1: a CR chest PA radiograph (adult) in JPEG 2000."""
    [study] = scan([pydicom_data_dir / "RG1_J2KR.dcm"]).studies
    return study


def test_chest_radiograph_gets_a_positive_finding_box_overlay_and_urgent_priority(
    chest_study: Study, model: InstalledModel
) -> None:
    used: list[InstalledModel] = []

    def backend_for(m: InstalledModel) -> Backend:
        used.append(m)
        return positive_backend()

    analysis = process_study(chest_study, [model], backend_for)
    [series] = analysis.result.series
    [finding] = series.findings
    assert used == [model]
    assert series.models == ("tiny_cxr",)
    assert series.skipped_reason == ""
    assert finding.positive and finding.box is not None
    # Cell (1, 5) of the 7 x 7 CAM covers input rows 32-64 and columns 160-192 of 224.
    instance = chest_study.series[0].instances[0]
    assert finding.box.y0 / instance.rows == pytest.approx(32 / 224, abs=0.01)
    assert finding.box.x0 / instance.columns == pytest.approx(160 / 224, abs=0.01)
    assert finding.box.x1 / instance.columns == pytest.approx(192 / 224, abs=0.01)
    assert finding.ood_flag  # RG1's patient is 64
    assert series.warnings == finding.warnings
    assert analysis.result.priority is Priority.URGENT
    assert analysis.result.timings_s["inference"] >= 0.0
    assert analysis.result.timings_s["decode"] > 0.0
    [overlay] = analysis.overlays
    assert overlay.name.startswith("overlay_") and overlay.name.endswith("_0.png")
    assert overlay.rgb.dtype == np.uint8 and overlay.rgb.ndim == 3


def test_render_false_gives_no_overlays(chest_study: Study, model: InstalledModel) -> None:
    analysis = process_study(chest_study, [model], lambda m: positive_backend(), render=False)
    assert analysis.overlays == ()
    assert analysis.result.findings


def test_no_models_means_every_series_skipped_with_a_reason(chest_study: Study) -> None:
    analysis = process_study(chest_study, [], lambda m: positive_backend())
    [series] = analysis.result.series
    assert not series.findings
    assert "no models installed" in series.skipped_reason
    assert analysis.result.priority is Priority.ROUTINE


def test_unreadable_and_pixel_less_series_are_reported_and_the_rest_analyzed(
    chest_study: Study, model: InstalledModel, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"garbage" * 10)
    broken = Series(
        "9.9.1",
        "CR",
        (Instance("9.9.1.1", "1.2.840.10008.5.1.4.1.1.1", junk, rows=64, columns=64, frames=1),),
        body_part="CHEST",
    )
    report = Series(
        "9.9.2",
        "SR",
        (Instance("9.9.2.1", "1.2.840.10008.5.1.4.1.1.88.11", junk, has_pixels=False),),
    )
    study = Study(chest_study.study_instance_uid, (broken, report, *chest_study.series))
    analysis = process_study(study, [model], lambda m: positive_backend(), render=False)
    by_uid = {s.series_instance_uid: s for s in analysis.result.series}
    assert by_uid["9.9.1"].skipped_reason.startswith("could not be read:")
    assert "without pixel data" in by_uid["9.9.2"].skipped_reason
    [rejected] = analysis.result.rejected
    assert rejected.location == str(junk)
    assert rejected.kind == "truncated_file"
    assert len(analysis.result.findings) == 1


def test_default_backends_are_onnx_runtime(tiny_onnx_model_dir: Path) -> None:
    model = load_model(tiny_onnx_model_dir)
    assert isinstance(onnx_backends(threads=1)(model), OnnxBackend)


def test_real_onnx_model_runs_through_the_pipeline(
    chest_study: Study, tiny_onnx_model_dir: Path
) -> None:
    analysis = process_study(chest_study, [load_model(tiny_onnx_model_dir)])
    [finding] = analysis.result.findings
    assert 0.0 <= finding.probability <= 1.0
    assert finding.heatmap is not None


def test_demo_inputs_exist_in_pydicom_data(pydicom_data_dir: Path) -> None:
    assert all(p.is_file() and p.parent == pydicom_data_dir for p in demo_inputs())


def test_read_warnings_while_decoding_are_kept_in_the_result_not_re_emitted(
    pydicom_data_dir: Path,
) -> None:
    # bad_sequence.dcm holds an invalid UI value: io reads it with a DicomReadWarning, in
    # scan and again in decoding. scan reports it; decoding must not raise it a second
    # time (pytest runs with -W error, where that would fail the whole study).
    found = scan([pydicom_data_dir / "bad_sequence.dcm"])
    assert any("invalid value for VR UI" in w for w in found.warnings)
    [study] = found.studies
    analysis = process_study(study, [], render=False)
    assert analysis.result.rejected == ()
    assert any("invalid value for VR UI" in w for w in analysis.result.warnings)
