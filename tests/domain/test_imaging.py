"""Images, geometry and windows validate themselves; patient identifiers stay out of repr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlens.domain.imaging import (
    Geometry,
    Image,
    ImageLayout,
    Instance,
    Patient,
    Series,
    Study,
    Window,
)

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-9876543"


def test_layout_properties() -> None:
    assert ImageLayout.YX.ndim == 2
    assert ImageLayout.FYXC.ndim == 4
    assert ImageLayout.YXC.is_color and not ImageLayout.YX.is_color
    assert ImageLayout.ZYX.is_volume and not ImageLayout.FYX.is_volume
    assert ImageLayout.FYX.is_multiframe and not ImageLayout.ZYX.is_multiframe


@pytest.mark.parametrize("spacing", [(), (0.0, 1.0), (1.0, -0.5)])
def test_geometry_rejects_missing_or_non_positive_spacing(spacing: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="spacing_mm"):
        Geometry(spacing)


def test_geometry_needs_three_direction_values_per_axis() -> None:
    Geometry((1.0, 1.0), direction_lps=(1, 0, 0, 0, 1, 0))
    with pytest.raises(ValueError, match="direction_lps needs 6"):
        Geometry((1.0, 1.0), direction_lps=(1, 0, 0))


@pytest.mark.parametrize("width", [0.0, -10.0])
def test_window_width_must_be_positive(width: float) -> None:
    with pytest.raises(ValueError, match="width"):
        Window(40, width)


def test_image_array_axes_must_match_layout() -> None:
    with pytest.raises(ValueError, match="layout yx needs 2"):
        Image(np.zeros((2, 4, 4), np.float32), ImageLayout.YX, Geometry((1.0, 1.0)))


def test_colour_image_needs_three_samples() -> None:
    with pytest.raises(ValueError, match="3 samples"):
        Image(np.zeros((4, 4, 4), np.uint8), ImageLayout.YXC, Geometry((1.0, 1.0)))


def test_volume_needs_three_spacings() -> None:
    with pytest.raises(ValueError, match="needs 3 spacings"):
        Image(np.zeros((3, 4, 4), np.float32), ImageLayout.ZYX, Geometry((1.0, 1.0)))


def test_image_frames_and_shape() -> None:
    single = Image(np.zeros((4, 5), np.float32), ImageLayout.YX, Geometry((1.0, 1.0)))
    cine = Image(np.zeros((7, 4, 5), np.float32), ImageLayout.FYX, Geometry((1.0, 1.0)))
    volume = Image(np.zeros((3, 4, 5), np.float32), ImageLayout.ZYX, Geometry((2.0, 1.0, 1.0)))
    assert (single.shape, single.n_frames) == ((4, 5), 1)
    assert cine.n_frames == 7
    assert volume.n_frames == 3


def test_image_repr_leaves_out_pixels() -> None:
    image = Image(np.full((4, 4), 1234.5, np.float32), ImageLayout.YX, Geometry((1.0, 1.0)))
    assert "1234.5" not in repr(image)


def test_patient_repr_hides_identifiers() -> None:
    patient = Patient(patient_id=PATIENT_ID, name=PATIENT_NAME, birth_date="19600101", age_years=64)
    text = repr(patient)
    assert PATIENT_ID not in text
    assert PATIENT_NAME not in text
    assert "19600101" not in text
    assert "64" in text


def test_study_repr_hides_patient_and_accession() -> None:
    study = Study(
        "1.2.3",
        (),
        patient=Patient(patient_id=PATIENT_ID, name=PATIENT_NAME),
        accession_number="ACC-555",
        referring_physician="Dr^Who",
    )
    text = repr(study)
    for secret in (PATIENT_ID, PATIENT_NAME, "ACC-555", "Dr^Who"):
        assert secret not in text


def test_series_has_pixels_and_study_counts() -> None:
    with_px = Instance("1.1", "1.2.840.10008.5.1.4.1.1.1", Path("a.dcm"), rows=8, columns=8)
    without = Instance("1.2", "1.2.840.10008.5.1.4.1.1.88.11", Path("b.dcm"), has_pixels=False)
    image_series = Series("2.1", "CR", (with_px,))
    sr_series = Series("2.2", "SR", (without,))
    assert image_series.has_pixels and not sr_series.has_pixels
    study = Study("3.1", (image_series, sr_series))
    assert study.modalities == ("CR", "SR")
    assert study.n_instances == 2


def test_instance_location_appends_zip_member() -> None:
    plain = Instance("1", "2", Path("in/a.dcm"))
    zipped = Instance("1", "2", Path("in/s.zip"), member="dir/a.dcm")
    assert plain.location == str(Path("in/a.dcm"))
    assert zipped.location == f"{Path('in/s.zip')}!dir/a.dcm"
