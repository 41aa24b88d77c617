"""radlens.io.scan: files, folders and zips -> studies, with bad files rejected, not raised."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

from radlens.errors import (
    EmptyInputError,
    InputError,
    NotDicomError,
    TruncatedFileError,
    UnreadableArchiveError,
    UnsupportedFormatError,
)
from radlens.io.scan import scan

CT_SMALL = ("ct", "CT_small_explicitLE.dcm")


def copy_into(folder: Path, *files: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy(file, folder / file.name)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_folder_is_walked_recursively_in_sorted_order(ct_head_dir: Path, tmp_path: Path) -> None:
    slices = sorted(ct_head_dir.glob("IMG*.dcm"))
    copy_into(tmp_path / "a" / "deep", *slices[:9])
    copy_into(tmp_path / "b", *slices[9:])
    result = scan([tmp_path])
    [study] = result.studies
    [series] = study.series
    assert len(series.instances) == 17
    assert [i.instance_number for i in series.instances] == list(range(1, 18))
    assert result.rejected == ()


def test_hidden_files_and_dicomdir_are_skipped(dicom_dir: Path, tmp_path: Path) -> None:
    good = dicom_dir.joinpath(*CT_SMALL)
    copy_into(tmp_path, good)
    shutil.copy(good, tmp_path / ".hidden.dcm")
    (tmp_path / "DICOMDIR").write_bytes(b"an index, not an image")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "junk").write_bytes(b"junk")
    result = scan([tmp_path])
    assert result.n_instances == 1
    assert result.rejected == ()


def test_one_good_and_one_junk_file_give_one_study_and_one_rejection(
    dicom_dir: Path, tmp_path: Path
) -> None:
    copy_into(tmp_path, dicom_dir.joinpath(*CT_SMALL))
    (tmp_path / "readme.dcm").write_text("not an image\n")
    result = scan([tmp_path])
    assert len(result.studies) == 1
    [rejected] = result.rejected
    assert isinstance(rejected, UnsupportedFormatError)
    assert str(rejected).startswith(str(tmp_path / "readme.dcm"))


def test_broken_dicom_in_a_folder_is_rejected_with_its_typed_error(
    dicom_dir: Path, tmp_path: Path
) -> None:
    copy_into(
        tmp_path, dicom_dir.joinpath(*CT_SMALL), dicom_dir / "malformed" / "rtplan_truncated.dcm"
    )
    result = scan([tmp_path])
    assert [type(e) for e in result.rejected] == [TruncatedFileError]


def test_empty_folder_raises_empty_input(tmp_path: Path) -> None:
    with pytest.raises(EmptyInputError) as caught:
        scan([tmp_path])
    assert str(caught.value).startswith(str(tmp_path))


def test_folder_with_nothing_readable_raises_empty_input(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.bin").write_bytes(bytes(300))
    with pytest.raises(EmptyInputError, match="2 rejected"):
        scan([tmp_path])


def test_path_that_does_not_exist_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        scan([tmp_path / "nowhere"])


def test_single_bad_file_raises_its_own_error(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00")
    with pytest.raises(NotDicomError):
        scan([path])


def test_zip_of_real_files_scans_like_the_folder(ct_head_dir: Path, tmp_path: Path) -> None:
    slices = sorted(ct_head_dir.glob("IMG*.dcm"))
    archive = make_zip(tmp_path / "head.zip", {f"ct/{p.name}": p.read_bytes() for p in slices})
    [study] = scan([archive]).studies
    [series] = study.series
    assert len(series.instances) == 17
    first = series.instances[0]
    assert (first.path, first.member) == (archive, "ct/IMG0001.dcm")
    assert study == scan([ct_head_dir]).studies[0].__class__(
        **{**study.__dict__}
    )  # equal fields, only paths differ below
    folder_uids = [i.sop_instance_uid for i in scan([ct_head_dir]).studies[0].series[0].instances]
    assert [i.sop_instance_uid for i in series.instances] == folder_uids


def test_zip_member_escaping_the_archive_is_rejected(dicom_dir: Path, tmp_path: Path) -> None:
    good = dicom_dir.joinpath(*CT_SMALL).read_bytes()
    archive = make_zip(tmp_path / "evil.zip", {"ok.dcm": good, "../evil.dcm": good})
    result = scan([archive])
    assert result.n_instances == 1
    [rejected] = result.rejected
    assert isinstance(rejected, UnreadableArchiveError)
    assert "../evil.dcm" in str(rejected)
    assert "unsafe member name" in str(rejected)


def test_zip_with_only_unsafe_members_is_empty(dicom_dir: Path, tmp_path: Path) -> None:
    good = dicom_dir.joinpath(*CT_SMALL).read_bytes()
    archive = make_zip(tmp_path / "evil.zip", {"/abs.dcm": good, "a/../../b.dcm": good})
    with pytest.raises(EmptyInputError, match="2 rejected"):
        scan([archive])


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", {"zeros.dcm": bytes(8 * 1024 * 1024)})
    assert archive.stat().st_size < 100_000
    with pytest.raises(UnreadableArchiveError, match="zip bomb"):
        scan([archive], max_unzipped_bytes=1024 * 1024)


def test_unreadable_zip_alone_raises_but_in_a_folder_is_rejected(
    dicom_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "in" / "broken.zip"
    broken.parent.mkdir()
    broken.write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(UnreadableArchiveError):
        scan([broken])
    copy_into(tmp_path / "in", dicom_dir.joinpath(*CT_SMALL))
    result = scan([tmp_path / "in"])
    assert len(result.studies) == 1
    assert [type(e) for e in result.rejected] == [UnreadableArchiveError]


def test_zip_inside_a_zip_is_not_opened(dicom_dir: Path, tmp_path: Path) -> None:
    inner = make_zip(tmp_path / "inner.zip", {"a.dcm": dicom_dir.joinpath(*CT_SMALL).read_bytes()})
    outer = make_zip(tmp_path / "outer.zip", {"inner.zip": inner.read_bytes()})
    with pytest.raises(EmptyInputError, match="zip inside a zip"):
        scan([outer])


def test_duplicate_files_are_kept_once_with_a_warning(dicom_dir: Path, tmp_path: Path) -> None:
    source = dicom_dir.joinpath(*CT_SMALL)
    copy_into(tmp_path / "a", source)
    copy_into(tmp_path / "b", source)
    result = scan([tmp_path])
    assert result.n_instances == 1
    [warning] = result.warnings
    assert "same SOP Instance UID" in warning
    assert result.studies[0].series[0].instances[0].path == tmp_path / "a" / source.name


def test_read_warnings_are_collected_not_raised(dicom_dir: Path) -> None:
    result = scan([dicom_dir / "rt" / "RTSTRUCT.dcm"])  # filterwarnings=error would raise
    assert any("no DICOM file meta" in w for w in result.warnings)
    assert not result.studies[0].series[0].has_pixels


def test_scan_reads_no_pixel_data(dicom_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixel data decoded during a scan")

    monkeypatch.setattr("radlens.io.dicom.dataset_to_image", refuse)
    monkeypatch.setattr("radlens.io.raster.PILImage.Image.load", refuse)
    result = scan([dicom_dir])
    assert result.n_instances > 40


def test_shared_dicom_folder_rejects_exactly_the_broken_files(dicom_dir: Path) -> None:
    result = scan([dicom_dir])
    rejected = {Path(e.path or "").name: type(e).__name__ for e in result.rejected}
    assert rejected == {
        "CT_no_preamble_no_meta.dcm": "UnsupportedFormatError",
        "MR_truncated_pixeldata.dcm": "PixelDataError",
        "badVR_IS_value.dcm": "PixelDataError",
        "enhancedMR_j2k_too_short.dcm": "PixelDataError",
        "meta_missing_transfer_syntax.dcm": "NotDicomError",
        "rtplan_truncated.dcm": "TruncatedFileError",
        "manifest.csv": "UnsupportedFormatError",
    }
    modalities = {m for s in result.studies for m in s.modalities}
    assert {"CT", "MR", "CR", "DX", "US", "NM", "PT", "RF", "SEG", "SR"} <= modalities


def test_png_becomes_a_study_with_content_derived_uids(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (6, 7), dtype=np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "knee.png")
    shutil.copy(tmp_path / "knee.png", tmp_path / "copy.png")
    result = scan([tmp_path], modality="cr", body_part="knee")
    [study] = result.studies  # the copy has the same content, hence the same UIDs
    [series] = study.series
    [instance] = series.instances
    assert study.study_instance_uid.startswith("2.25.")
    assert (
        len({study.study_instance_uid, series.series_instance_uid, instance.sop_instance_uid}) == 3
    )
    assert (series.modality, series.body_part) == ("CR", "KNEE")
    assert (instance.rows, instance.columns, instance.samples_per_pixel) == (6, 7, 1)
    assert scan([tmp_path / "knee.png"]).studies[0].study_instance_uid == study.study_instance_uid


def test_png_modality_is_unknown_unless_given(tmp_path: Path) -> None:
    PILImage.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "x.png")
    assert scan([tmp_path]).studies[0].series[0].modality == ""


def test_content_decides_the_format_not_the_extension(dicom_dir: Path, tmp_path: Path) -> None:
    shutil.copy(dicom_dir.joinpath(*CT_SMALL), tmp_path / "looks_like.png")
    buffer = io.BytesIO()
    PILImage.fromarray(np.zeros((2, 2), np.uint8)).save(buffer, format="PNG")
    (tmp_path / "image.dcm").write_bytes(buffer.getvalue())
    result = scan([tmp_path])
    modalities = sorted(s.series[0].modality for s in result.studies)
    assert modalities == ["", "CT"]


def test_nifti_in_a_zip_becomes_a_study(tmp_path: Path) -> None:
    nifti = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4)), nifti)
    archive = make_zip(tmp_path / "v.zip", {"vol.nii.gz": nifti.read_bytes()})
    [instance] = scan([archive], modality="MR").studies[0].series[0].instances
    assert (instance.frames, instance.rows, instance.columns) == (6, 5, 4)
    assert instance.member == "vol.nii.gz"


def test_several_inputs_are_scanned_together(dicom_dir: Path) -> None:
    result = scan([dicom_dir / "ct" / "CT_small_explicitLE.dcm", dicom_dir / "sr"])
    # The TID 1500 report reuses the CT's study and series UIDs; it stays a series apart.
    assert sorted(s.modalities for s in result.studies) == [("CT", "SR"), ("SR",)]
    assert any("shared by another modality" in w for w in result.warnings)
