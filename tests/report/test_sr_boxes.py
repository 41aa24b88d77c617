"""A detector's boxes in a TID 1500 SR: one TID 1410 planar ROI per box, class and score.

The boxes come from ``detect_findings`` (a fake detector backend) on a real colour image
header (pydicom-data's ultrasound frame stands in for a microscopy secondary capture: the
SR only needs the source's identity and geometry).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from highdicom.sr import Comprehensive3DSR, MeasurementReport
from pydicom.dataset import Dataset

from det_helpers import detector_card
from dicom3tools import dciodvfy
from radlens.domain.imaging import Geometry, Image, ImageLayout
from radlens.inference.backends import FakeBackend
from radlens.inference.detection import detect_findings
from radlens.report.equipment import to_bytes
from radlens.report.sr import read_dicom_sr, to_dicom_sr


def two_cells() -> FakeBackend:
    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        n, _, rows, cols = batch.shape
        heat = np.zeros((n, 3, rows // 4, cols // 4), np.float32)
        heat[:, 2, 4, 4] = 0.95  # WBC
        heat[:, 1, 10, 12] = 0.6  # RBC
        return {"heatmap": heat, "ltrb": np.full((n, 4, rows // 4, cols // 4), 6.0, np.float32)}

    return FakeBackend(run)


def test_each_box_is_a_planar_roi_on_the_source_with_its_class_and_score(
    us_image: Dataset, tmp_path: Path
) -> None:
    image = Image(
        np.zeros((int(us_image.Rows), int(us_image.Columns), 3), np.uint8),
        ImageLayout.YXC,
        Geometry((1.0, 1.0)),
        source_uids=(str(us_image.SOPInstanceUID),),
    )
    findings = detect_findings(image, detector_card(), two_cells())
    assert [f.label for f in findings] == ["WBC", "RBC"]
    sr = to_dicom_sr([us_image], findings)

    records = read_dicom_sr(pydicom.dcmread(io.BytesIO(to_bytes(sr))))
    assert [r.concept.meaning for r in records] == ["WBC", "RBC"]
    for record, finding in zip(records, findings, strict=True):
        assert record.present and record.probability == pytest.approx(finding.probability)
        assert record.sop_instance_uid == us_image.SOPInstanceUID
        assert record.box is not None and finding.box is not None
        got = (record.box.x0, record.box.y0, record.box.x1, record.box.y1)
        want = (finding.box.x0, finding.box.y0, finding.box.x1, finding.box.y1)
        assert got == pytest.approx(want, abs=1e-2)
    report = MeasurementReport.from_sequence([Comprehensive3DSR.from_dataset(sr)])
    assert len(report.get_planar_roi_measurement_groups()) == 2
    dciodvfy(sr, tmp_path)
