"""radlens.io.dicom: headers, typed errors and warnings, on real and on built DICOM files."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, UID, ExplicitVRLittleEndian, generate_uid

from radlens.errors import (
    InputError,
    NotAnImageError,
    NotDicomError,
    PixelDataError,
    TruncatedFileError,
    UnsupportedTransferSyntaxError,
)
from radlens.io.dicom import (
    DicomReadWarning,
    decode_instance,
    patient_age_years,
    read_dataset,
    read_frame_positions,
    read_instance,
)
from radlens.warning_scopes import ignoring

# Files that load but are not as written: no file meta, or an invalid UI value.
WARNS_ON_READ = {
    "OT-PAL-8-face.dcm",
    "bad_sequence.dcm",
    "rt/RTSTRUCT.dcm",
}
# pydicom-data files that are broken on purpose (tested with the malformed ones).
BROKEN_PYDICOM_DATA = {"emri_small_jpeg_2k_lossless_too_short.dcm": PixelDataError}
COLOUR = ("RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT")

# ../shared/data/dicom/malformed: expected error per file, from the manifest's notes.
# None = the manifest says it decodes; it must load (a DicomReadWarning is allowed).
MALFORMED: dict[str, type[InputError] | None] = {
    "badVR_IS_value.dcm": PixelDataError,  # Number of Frames '1A': undecodable
    "MR_truncated_pixeldata.dcm": PixelDataError,  # 8130 of 8192 bytes
    "CT_no_preamble_no_meta.dcm": NotDicomError,  # starts one byte into an element
    "explicitLE_no_meta.dcm": NotAnImageError,  # forced read works; an RT plan
    "rtplan_truncated.dcm": TruncatedFileError,  # ends inside the Beam Sequence
    "meta_missing_transfer_syntax.dcm": NotDicomError,  # no SOP Instance UID at all
    "j2k_embedded_sequence_delimiter.dcm": PixelDataError,  # broken J2K codestream
    "enhancedMR_j2k_too_short.dcm": PixelDataError,  # no sequence delimiter
    "CR_RG2_jpeg_extended_broken_stream.dcm": PixelDataError,  # SOS Se=0
    "CT_bad_sequence_UN.dcm": None,
    "CT_bad_file_meta.dcm": None,
}
MALFORMED_WARNINGS = {"explicitLE_no_meta.dcm", "CT_bad_sequence_UN.dcm"}


def _maybe_warns(name: str) -> AbstractContextManager[object]:
    return pytest.warns(DicomReadWarning) if name in WARNS_ON_READ else nullcontext()


def _expected_from_pydicom(path: Path) -> tuple[tuple[int, ...], bool]:
    """Shape and colour of a file's image according to pydicom's own header read."""
    with ignoring():
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    colour = ds.PhotometricInterpretation in COLOUR
    shape = ((frames,) if frames > 1 else ()) + (ds.Rows, ds.Columns) + ((3,) if colour else ())
    return shape, colour


def _manifest(dicom_dir: Path) -> dict[str, dict[str, str]]:
    with (dicom_dir / "manifest.csv").open(newline="") as fp:
        return {row["file"]: row for row in csv.DictReader(fp)}


def _assert_decodes_as(path: Path, name: str, shape: tuple[int, ...], colour: bool) -> None:
    with _maybe_warns(name):
        header = read_instance(path)
        image = decode_instance(header.instance)
    assert header.instance.has_pixels
    assert image.shape == shape
    assert image.array.dtype == (np.uint8 if colour else np.float32)
    assert image.layout.is_color == colour
    assert image.layout.is_multiframe == (len(shape) - colour == 3)


def test_every_pydicom_data_file_decodes_to_its_shape_and_dtype(
    pydicom_data_dir: Path, pydicom_name: str
) -> None:
    path = pydicom_data_dir / pydicom_name
    if pydicom_name in BROKEN_PYDICOM_DATA:
        with pytest.raises(BROKEN_PYDICOM_DATA[pydicom_name]):
            read_instance(path)
        return
    shape, colour = _expected_from_pydicom(path)
    _assert_decodes_as(path, pydicom_name, shape, colour)


def test_every_shared_dicom_file_decodes_or_is_listed_without_pixels(
    dicom_dir: Path, shared_dicom_name: str
) -> None:
    row = _manifest(dicom_dir)[shared_dicom_name]
    path = dicom_dir / shared_dicom_name
    if int(row["frames"]) == 0:
        with _maybe_warns(shared_dicom_name):
            header = read_instance(path)
        assert not header.instance.has_pixels
        assert (header.instance.rows, header.instance.frames) == (0, 0)
        with pytest.raises(NotAnImageError, match="no pixel data"):
            decode_instance(header.instance)
        return
    frames, colour = int(row["frames"]), row["photometric"] in COLOUR
    shape = ((frames,) if frames > 1 else ()) + (int(row["rows"]), int(row["cols"]))
    _assert_decodes_as(path, shared_dicom_name, shape + ((3,) if colour else ()), colour)


def test_malformed_table_covers_every_malformed_file(dicom_dir: Path) -> None:
    on_disk = {p.name for p in (dicom_dir / "malformed").glob("*.dcm")}
    assert on_disk == set(MALFORMED)


def test_malformed_file_yields_its_typed_error_naming_the_file(
    dicom_dir: Path, malformed_name: str
) -> None:
    path = dicom_dir / "malformed" / malformed_name
    expected = MALFORMED[malformed_name]
    warns = malformed_name in MALFORMED_WARNINGS
    with pytest.warns(DicomReadWarning) if warns else nullcontext():
        if expected is None:
            image = decode_instance(read_instance(path).instance)
            assert image.array.size > 0
            return
        with pytest.raises(expected) as caught:
            decode_instance(read_instance(path).instance)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert caught.value.path == str(path)


def test_too_short_encapsulated_pixel_data_is_a_pixel_data_error(pydicom_data_dir: Path) -> None:
    path = pydicom_data_dir / "emri_small_jpeg_2k_lossless_too_short.dcm"
    with pytest.raises(PixelDataError, match="sequence delimiter"):
        read_instance(path)


def test_undecodable_codestream_is_refused_before_the_decoder_allocates(dicom_dir: Path) -> None:
    path = dicom_dir / "malformed" / "j2k_embedded_sequence_delimiter.dcm"
    header = read_instance(path)  # the header is fine; only the pixels are broken
    # Its codestream header (SIZ) claims an image billions of pixels wide: radlens.io.pixels
    # refuses it before the JPEG 2000 decoder sizes its buffers by it.
    with pytest.raises(PixelDataError, match="codestream of 3722445056 x 1024 x 1 is larger"):
        decode_instance(header.instance)


def test_file_without_meta_is_forced_and_warns_once(pydicom_data_dir: Path) -> None:
    path = pydicom_data_dir / "OT-PAL-8-face.dcm"
    with pytest.warns(DicomReadWarning, match="no DICOM file meta") as record:
        header = read_instance(path)
    assert len(record) == 1
    assert str(record[0].message).startswith(str(path))
    assert header.instance.transfer_syntax_uid == ""
    image = decode_instance(header.instance)  # the encoding is guessed from the data set
    assert image.shape == (480, 640, 3)


def test_non_dicom_file_is_not_dicom(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_bytes(b"these are not the pixels you are looking for\n" * 20)
    with pytest.raises(NotDicomError) as caught:
        read_instance(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open file"):
        read_instance(tmp_path / "absent.dcm")


def test_header_read_does_not_decode_pixels(
    dicom_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixel data decoded during a header read")

    monkeypatch.setattr("radlens.io.dicom.dataset_to_image", refuse)
    header = read_instance(dicom_dir / "cr_dx" / "CR_RG2_jpegls_nearlossless.dcm")
    assert (header.instance.rows, header.instance.columns) == (2140, 1760)


def test_header_holds_series_and_study_fields(dicom_dir: Path) -> None:
    path = dicom_dir / "mr" / "MR_siemens_with_overlay.dcm"
    header = read_instance(path)
    instance, series, study = header.instance, header.series, header.study
    assert series.instances == (instance,)
    assert study.series == (series,)
    assert series.modality == "MR"
    assert series.body_part == "ABDOMEN"
    assert instance.position_lps_mm == pytest.approx(
        (-159.82565509386, -175.32202350207, 28.426151275635)
    )
    assert instance.orientation_lps == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert study.patient.age_years == 58.0
    assert study.study_date == "20051130"


def test_header_repr_carries_no_patient_identifiers(dicom_dir: Path) -> None:
    header = read_instance(dicom_dir / "ct" / "CT_rando_phantom_implicitLE.dcm")
    assert header.study.patient.name  # the file has one ...
    assert header.study.patient.name not in repr(header)  # ... which never reaches a log


def test_header_reads_the_clinical_context_of_the_order(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyDescription, ds.StudyTime = "CT CHEST", "093000"
    ds.AdmittingDiagnosesDescription = ["Fever", "Cough"]
    ds.AdditionalPatientHistory = "Smoker, Jane Doe's brother"
    request = Dataset()  # images made from a worklist carry the order in this sequence
    request.RequestedProcedureDescription = "CT chest without contrast"
    request.ReasonForTheRequestedProcedure = "r/o pneumonia"
    ds.RequestAttributesSequence = [request]
    path = tmp_path / "ordered.dcm"
    ds.save_as(path)
    study = read_instance(path).study
    assert study.requested_procedure == "CT chest without contrast"
    assert study.reason_for_study == "r/o pneumonia"
    assert study.admitting_diagnoses == "Fever\\Cough"
    assert study.patient_history == "Smoker, Jane Doe's brother"
    assert study.when == f"{ds.StudyDate}093000.000000"
    assert "Jane" not in repr(study) and "pneumonia" not in repr(study)  # free text stays out
    ds.ReasonForTheRequestedProcedure = "top-level reason"  # the top level wins
    ds.save_as(path)
    assert read_instance(path).study.reason_for_study == "top-level reason"


@pytest.mark.parametrize(
    ("age", "birth", "seen", "years"),
    [
        ("058Y", "", "", 58.0),
        ("006M", "", "", 0.5),
        ("026W", "", "", 0.5),
        ("022Y", "19000101", "20000101", 22.0),
        ("22Y", "", "", 22.0),
        ("", "19910615", "20140101", 22.0),
        ("", "1950.07.04", "2006.12.19", 56.0),
        ("", "11111111", "20051130", None),  # placeholder birth date: no age
        ("", "20100101", "20000101", None),  # born after the study
        ("", "", "20000101", None),
    ],
)
def test_patient_age_from_age_string_else_from_dates(
    age: str, birth: str, seen: str, years: float | None
) -> None:
    assert patient_age_years(age, birth, seen) == years


def test_zip_member_reads_from_bytes_and_keeps_zip_and_member(
    dicom_dir: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "study.zip"
    source = dicom_dir / "ct" / "CT_small_explicitLE.dcm"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(source, "a/ct.dcm")
    data = zipfile.ZipFile(archive).read("a/ct.dcm")
    header = read_instance(archive, data=data, member="a/ct.dcm")
    assert header.instance.path == archive
    assert header.instance.member == "a/ct.dcm"
    assert header.instance.location == f"{archive}!a/ct.dcm"
    image = decode_instance(header.instance)  # reads the member from the zip itself
    expected = decode_instance(read_instance(source).instance)
    assert np.array_equal(image.array, expected.array)


def test_error_in_zip_member_names_archive_and_member(dicom_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(dicom_dir / "malformed" / "rtplan_truncated.dcm", "plan.dcm")
    data = zipfile.ZipFile(archive).read("plan.dcm")
    with pytest.raises(TruncatedFileError) as caught:
        read_instance(archive, data=data, member="plan.dcm")
    assert str(caught.value).startswith(f"{archive}!plan.dcm: ")


def _tiny_dataset(transfer_syntax: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    uid = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 4, 4, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def test_syntax_without_decoder_is_unsupported(tmp_path: Path) -> None:
    ds = _tiny_dataset(MPEG2MPML)
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "video.dcm"
    ds.save_as(path, enforce_file_format=True)
    header = read_instance(path)
    assert header.instance.has_pixels
    with pytest.raises(UnsupportedTransferSyntaxError, match="MPEG2") as caught:
        decode_instance(header.instance)
    assert isinstance(caught.value.__cause__, NotImplementedError)


def test_built_uncompressed_dataset_round_trips(tmp_path: Path) -> None:
    ds = _tiny_dataset(ExplicitVRLittleEndian)
    pixels = np.arange(16, dtype=np.uint8).reshape(4, 4)
    ds.PixelData = pixels.tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = 2, -10
    path = tmp_path / "tiny.dcm"
    ds.save_as(path, enforce_file_format=True)
    image = decode_instance(read_instance(path).instance)
    assert np.array_equal(image.array, pixels * 2.0 - 10)
    assert not image.geometry.spacing_known


def test_frame_positions_of_enhanced_ct_are_read_per_frame(pydicom_data_dir: Path) -> None:
    header = read_instance(pydicom_data_dir / "eCT_Supplemental.dcm")
    positions = read_frame_positions(header.instance)
    assert positions == ((99.5, -301.5, -159.0), (99.5, -301.5, -149.0))
    assert header.instance.position_lps_mm == positions[0]


def test_copy_under_another_name_reads_the_same(dicom_dir: Path, tmp_path: Path) -> None:
    source = dicom_dir / "us" / "US_prostate_oncentra.dcm"
    copy = tmp_path / "no_extension"
    shutil.copy(source, copy)
    assert read_instance(copy).instance.sop_instance_uid == (
        read_instance(source).instance.sop_instance_uid
    )


def test_in_memory_bytes_equal_file_read(dicom_dir: Path) -> None:
    path = dicom_dir / "other" / "SC_deflated_explicitLE.dcm"
    from_bytes = read_instance(path, data=io.BytesIO(path.read_bytes()).getvalue())
    assert from_bytes.instance.has_pixels
    assert from_bytes == read_instance(path)


@pytest.mark.parametrize("relative", ["../eCT_Supplemental.dcm", "malformed/rtplan_truncated.dcm"])
def test_deferred_values_read_the_same_from_a_path_as_from_bytes(
    pydicom_data_dir: Path, dicom_dir: Path, relative: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("radlens.io.dicom._HEADER_DEFER_BYTES", 16)  # defer nearly all
    name = relative.removeprefix("../")
    path = pydicom_data_dir / name if relative.startswith("../") else dicom_dir / relative
    try:
        from_path: object = read_instance(path)
    except TruncatedFileError as exc:
        from_path = str(exc)
    try:
        from_bytes: object = read_instance(path, data=path.read_bytes())
    except TruncatedFileError as exc:
        from_bytes = str(exc)
    assert from_path == from_bytes


def test_read_dataset_gives_the_header_of_a_file_or_a_zip_member_without_pixels(
    tmp_path: Path,
) -> None:
    source = Path(get_testdata_file("CT_small.dcm"))
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(source, "ct/slice.dcm")
    plain = read_instance(source).instance
    member = read_instance(archive, source.read_bytes(), "ct/slice.dcm").instance
    for instance in (plain, member):
        dataset = read_dataset(instance)
        assert dataset.SOPInstanceUID == instance.sop_instance_uid
        assert dataset.StudyInstanceUID and "PixelData" not in dataset
    with pytest.raises(InputError):
        read_dataset(replace(plain, path=tmp_path / "gone.dcm"))
