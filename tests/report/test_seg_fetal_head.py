"""A segmentation model's mask on a DICOM ultrasound: SEG and SR through the pipeline."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest

from radlens.inference.backends import FakeBackend
from radlens.io.scan import scan
from radlens.models.registry import InstalledModel
from radlens.pipeline import process_study
from radlens.report.dicom_results import to_dicom_results
from radlens.report.equipment import to_bytes
from radlens.report.seg import read_dicom_seg
from radlens.report.sr import read_dicom_sr
from us_helpers import ellipse_logits, seg_card, write_us_dicom


def test_a_dicom_us_gives_a_seg_that_reads_back_to_the_same_mask_and_an_sr_with_hc(
    tmp_path: Path,
) -> None:
    pixels = np.random.default_rng(1).integers(0, 255, (270, 400), dtype=np.uint8)
    source = write_us_dicom(tmp_path / "us.dcm", pixels, pixel_size_mm=0.5)
    [study] = scan([tmp_path / "us.dcm"]).studies
    model = InstalledModel(seg_card(), tmp_path / "model")
    analysis = process_study(study, [model], lambda _: FakeBackend(ellipse_logits))
    [finding] = analysis.result.findings
    assert finding.mask is not None and finding.mask.any()
    hc = finding.measurements[0]
    assert hc.code == "head_circumference" and hc.unit == "mm" and hc.value is not None
    assert "pixel size 0.5 mm" in hc.method  # from the ultrasound region calibration

    made = to_dicom_results(study, analysis.result)
    objects = {o.name: o.dataset for o in made.objects}
    assert set(objects) == {"sr.dcm", "seg_1.dcm"}, made.skipped
    seg = pydicom.dcmread(io.BytesIO(to_bytes(objects["seg_1.dcm"])))
    record = read_dicom_seg(seg, [source])
    assert record.mask.dtype == np.bool_
    np.testing.assert_array_equal(record.mask, finding.mask)
    assert record.model_name == "tiny_head"

    [sr_finding] = read_dicom_sr(pydicom.dcmread(io.BytesIO(to_bytes(objects["sr.dcm"]))))
    measured = {c.value: (value, unit) for c, value, unit in sr_finding.measurements}
    assert measured["11984-2"] == (pytest.approx(hc.value), "mm")
    assert measured["18185-9"][1] == "wk"
