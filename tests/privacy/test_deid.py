"""De-identification over every real file: the independent Annex E checker passes for each
output, UIDs map one to one, dates keep their intervals, pixels stay byte-equal, burned-in
candidates are quarantined and malformed files refused with typed errors."""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest
from annex_e import check
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from radlens.errors import (
    BurnedInAnnotationError,
    ConfigError,
    DeidentificationError,
    InputError,
)
from radlens.io.dicom import decode_instance, read_instance
from radlens.privacy.deid import (
    DeidKey,
    DeidProfile,
    DeidRun,
    DeidState,
    burned_in_reason,
    deidentify_dataset,
    deidentify_tree,
    read_key,
)
from radlens.privacy.profile import ALL_OPTIONS, DeidOption
from radlens.warning_scopes import ignoring

KEY = DeidKey(b"radlens test key - not a secret", "test")
CHECKER_NAMES = {
    DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES: "dates",
    DeidOption.RETAIN_PATIENT_CHARACTERISTICS: "patient",
    DeidOption.RETAIN_DEVICE_IDENTITY: "device",
    DeidOption.CLEAN_DESCRIPTORS: "descriptors",
}
HEX_NAME = re.compile(r"^[0-9a-f]{16}/[0-9a-f]{16}/[0-9a-f]{32}\.dcm$")


@dataclass
class Outcome:
    """Every file of a folder de-identified alone, with one state (one run)."""

    state: DeidState
    out_dir: Path
    runs: dict[Path, DeidRun] = field(default_factory=dict)
    raised: dict[Path, InputError] = field(default_factory=dict)

    def written(self) -> list[tuple[Path, Path]]:
        return [(src, w.path) for src, run in self.runs.items() for w in run.written]

    @property
    def quarantined(self) -> dict[Path, BurnedInAnnotationError]:
        return {src: run.quarantined[0] for src, run in self.runs.items() if run.quarantined}


def deidentify_each(files: list[Path], out_dir: Path, state: DeidState) -> Outcome:
    outcome = Outcome(state, out_dir)
    for number, path in enumerate(files):
        try:
            outcome.runs[path] = deidentify_tree([path], out_dir / str(number), state)
        except InputError as exc:  # a single bad file given alone raises its typed error
            outcome.raised[path] = exc
    return outcome


def checker_options(profile: DeidProfile) -> frozenset[str]:
    return frozenset(CHECKER_NAMES[o] for o in profile.options)


def offset_of(state: DeidState, original: Dataset) -> int:
    issuer = str(original.get("IssuerOfPatientID", "") or "").strip()
    patient_id = str(original.get("PatientID", "") or "").strip()
    return state.offset_days(state.pseudonym(issuer, patient_id))


def read(path: Path) -> Dataset:
    """A source file as pydicom reads it, its invalid-value warnings silenced (some test
    files carry invalid UIDs on purpose; radlens reports them itself)."""
    with ignoring():
        ds = pydicom.dcmread(path, force=True)
        for _ in ds.iterall():  # convert every raw element while warnings are off
            pass
        return ds


def even(value: bytes) -> bytes:
    """A value as written: odd lengths gain one NUL pad byte (PS3.5 7.1.1)."""
    return value + b"\x00" if len(value) % 2 else value


def check_written(outcome: Outcome) -> tuple[list[str], list[tuple[str, str]]]:
    problems: list[str] = []
    pairs: list[tuple[str, str]] = []
    options = checker_options(outcome.state.profile)
    for source, output in outcome.written():
        original = read(source)
        report = check(original, read(output), options, offset_of(outcome.state, original))
        problems += [f"{source.name}: {p}" for p in report.problems]
        pairs += report.uid_pairs
    return problems, pairs


def assert_one_to_one(pairs: list[tuple[str, str]]) -> None:
    forward: dict[str, str] = {}
    for before, after in pairs:
        assert forward.setdefault(before, after) == after, f"{before} mapped two ways"
    backward: dict[str, str] = {}
    for before, after in forward.items():
        assert backward.setdefault(after, before) == before, f"{after} from two inputs"


@pytest.fixture(scope="module")
def pydicom_outcome(pydicom_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    files = sorted(pydicom_data_dir.glob("*.dcm"))
    return deidentify_each(files, tmp_path_factory.mktemp("deid_pydicom"), DeidState(KEY))


@pytest.fixture(scope="module")
def shared_outcome(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    files = sorted(
        p for p in (shared_data_dir / "dicom").rglob("*.dcm") if "malformed" not in p.parts
    )
    return deidentify_each(files, tmp_path_factory.mktemp("deid_shared"), DeidState(KEY))


@pytest.fixture
def ct_small() -> Dataset:
    """CT_small as shipped with pydicom itself (a clean CT image with a patient name)."""
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


# --- every real file ----------------------------------------------------------------------


def test_every_pydicom_data_output_passes_the_annex_e_checker(pydicom_outcome: Outcome) -> None:
    problems, pairs = check_written(pydicom_outcome)
    assert problems == []
    assert_one_to_one(pairs)
    assert len(pydicom_outcome.written()) >= 20


@pytest.mark.shared_data
def test_every_shared_output_passes_the_annex_e_checker(shared_outcome: Outcome) -> None:
    problems, pairs = check_written(shared_outcome)
    assert problems == []
    assert_one_to_one(pairs)
    assert len(shared_outcome.written()) >= 30


def test_every_output_reads_back_decodes_and_keeps_its_pixel_bytes(
    pydicom_outcome: Outcome,
) -> None:
    for source, output in pydicom_outcome.written():
        original, written = read(source), read(output)
        assert written.file_meta.TransferSyntaxUID == original.file_meta.get(
            "TransferSyntaxUID", written.file_meta.TransferSyntaxUID
        )
        if "PixelData" in original:
            assert written.PixelData == even(original.PixelData), source.name
            decode_instance(read_instance(output).instance)


@pytest.mark.shared_data
def test_every_shared_output_decodes_and_keeps_its_pixel_bytes(shared_outcome: Outcome) -> None:
    for source, output in shared_outcome.written():
        original, written = read(source), read(output)
        if "PixelData" in original:
            assert written.PixelData == even(original.PixelData), source.name
            decode_instance(read_instance(output).instance)


def test_output_files_are_named_by_hashes_only(pydicom_outcome: Outcome) -> None:
    for source, output in pydicom_outcome.written():
        relative = output.relative_to(pydicom_outcome.out_dir).as_posix().split("/", 1)[1]
        assert HEX_NAME.match(relative), relative
        assert source.stem not in output.as_posix()


def test_burned_in_candidates_are_quarantined_and_not_written(
    pydicom_outcome: Outcome, pydicom_data_dir: Path
) -> None:
    expected = {}
    for path in pydicom_data_dir.glob("*.dcm"):
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        image_type = [str(v).strip() for v in ds.get("ImageType", []) or []]
        if ds.get("Modality") == "US":
            expected[path] = "ultrasound"
        elif str(ds.get("SOPClassUID", "")).startswith("1.2.840.10008.5.1.4.1.1.7"):
            expected[path] = "secondary capture"
        elif image_type[:2] == ["DERIVED", "SECONDARY"]:
            expected[path] = "derived secondary"
    quarantined = pydicom_outcome.quarantined
    assert set(quarantined) == set(expected)
    for path, reason in expected.items():
        assert reason in quarantined[path].reason
        assert quarantined[path].kind == "burned_in_annotation"
        assert not pydicom_outcome.runs[path].written


@pytest.mark.parametrize(
    ("keyword", "value", "reason"),
    [
        ("BurnedInAnnotation", "YES", "Burned In Annotation"),
        ("RecognizableVisualFeatures", "YES", "Recognizable Visual Features"),
        ("ImageType", ["DERIVED", "SECONDARY", "SCREEN SAVE"], "screen save"),
        ("Modality", "US", "ultrasound"),
    ],
)
def test_burned_in_reason_names_the_rule(
    ct_small: Dataset, keyword: str, value: object, reason: str
) -> None:
    assert burned_in_reason(ct_small) is None
    setattr(ct_small, keyword, value)
    found = burned_in_reason(ct_small)
    assert found is not None and reason in found


def test_an_image_marked_burned_in_is_quarantined_with_the_file_named(
    ct_small: Dataset, tmp_path: Path
) -> None:
    ct_small.BurnedInAnnotation = "YES"
    ct_small.save_as(tmp_path / "in.dcm")
    run = deidentify_tree([tmp_path / "in.dcm"], tmp_path / "out", DeidState(KEY))
    assert run.written == () and run.exit_code == 2
    (error,) = run.quarantined
    assert error.path == str(tmp_path / "in.dcm") and "Burned In Annotation" in error.reason
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.dcm"))


# --- UIDs ------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_a_series_keeps_one_study_series_and_frame_of_reference_uid(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    folder = shared_data_dir / "dicom" / "ct" / "series_ct_head_17slices"
    state = DeidState(KEY)
    run = deidentify_tree([folder], tmp_path, state)
    assert len(run.written) == 17 and run.exit_code == 0
    originals = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    outputs = [pydicom.dcmread(w.path) for w in run.written]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        (before,) = {str(ds[keyword].value) for ds in originals}
        assert {str(ds[keyword].value) for ds in outputs} == {state.new_uid(before)}
    for ds in outputs:
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert len({ds.SOPInstanceUID for ds in outputs}) == 17
    assert len({w.path.parent for w in run.written}) == 1  # one study, one series folder


def test_references_to_another_instance_follow_its_new_uid(
    ct_small: Dataset, tmp_path: Path
) -> None:
    first = ct_small
    second = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    second.SOPInstanceUID = second.file_meta.MediaStorageSOPInstanceUID = (
        first.SOPInstanceUID + ".2"
    )
    reference = Dataset()
    reference.ReferencedSOPClassUID = first.SOPClassUID
    reference.ReferencedSOPInstanceUID = first.SOPInstanceUID
    second.SourceImageSequence = [reference]
    second.ReferencedImageSequence = [Dataset()]
    second.ReferencedImageSequence[0].ReferencedSOPInstanceUID = first.SOPInstanceUID
    second.ReferencedImageSequence[0].ReferencedSOPClassUID = first.SOPClassUID
    (tmp_path / "in").mkdir()
    first.save_as(tmp_path / "in" / "a.dcm")
    second.save_as(tmp_path / "in" / "b.dcm")
    run = deidentify_tree([tmp_path / "in"], tmp_path / "out", DeidState(KEY))
    assert run.exit_code == 0
    a, b = (pydicom.dcmread(w.path) for w in sorted(run.written, key=lambda w: w.source))
    new_first = a.SOPInstanceUID
    assert new_first != first.SOPInstanceUID
    assert b.SourceImageSequence[0].ReferencedSOPInstanceUID == new_first
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_first
    assert b.SourceImageSequence[0].ReferencedSOPClassUID == first.SOPClassUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID != first.FrameOfReferenceUID
    assert a.file_meta.MediaStorageSOPInstanceUID == new_first


def test_the_same_key_gives_the_same_output_and_another_key_does_not(
    ct_small: Dataset, tmp_path: Path
) -> None:
    ct_small.save_as(tmp_path / "in.dcm")
    outputs = []
    for number, key in enumerate((KEY, KEY, DeidKey(b"another key of enough bytes"))):
        run = deidentify_tree([tmp_path / "in.dcm"], tmp_path / f"o{number}", DeidState(key))
        outputs.append(pydicom.dcmread(run.written[0].path))
    fields = ("SOPInstanceUID", "StudyInstanceUID", "PatientID", "StudyDate")
    assert [outputs[0][f].value for f in fields] == [outputs[1][f].value for f in fields]
    assert all(outputs[0][f].value != outputs[2][f].value for f in fields)


# --- dates ----------------------------------------------------------------------------------


def test_two_studies_of_one_patient_keep_their_interval_and_another_patient_moves_apart(
    ct_small: Dataset, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    ct_small.StudyDate = "20040119"
    ct_small.save_as(tmp_path / "in" / "a.dcm")
    later = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    later.StudyDate = "20040826"
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        later[keyword].value = later[keyword].value + ".9"
    later.file_meta.MediaStorageSOPInstanceUID = later.SOPInstanceUID
    later.save_as(tmp_path / "in" / "b.dcm")
    other = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    other.PatientID = "someone else"
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        other[keyword].value = other[keyword].value + ".7"
    other.file_meta.MediaStorageSOPInstanceUID = other.SOPInstanceUID
    other.save_as(tmp_path / "in" / "c.dcm")
    state = DeidState(KEY)
    run = deidentify_tree([tmp_path / "in"], tmp_path / "out", state)
    dates = {Path(w.source).name: pydicom.dcmread(w.path).StudyDate for w in run.written}
    days = {k: _days(v) - _days(d) for k, v, d in _pairs(dates)}
    assert days["a.dcm"] == days["b.dcm"] < 0
    assert days["c.dcm"] != days["a.dcm"]
    assert len(set(state.offsets_days.values())) == 2


@pytest.mark.shared_data
def test_shared_studies_of_one_patient_keep_their_interval(shared_outcome: Outcome) -> None:
    # CT_small_explicitLE (2004-01-19) and CT1_jpegls_nearlossless (2004-08-26): patient 1CT1.
    dates = {}
    for source, output in shared_outcome.written():
        if source.name in ("CT_small_explicitLE.dcm", "CT1_jpegls_nearlossless.dcm"):
            dates[source.name] = (pydicom.dcmread(source).StudyDate, pydicom.dcmread(output))
    (a_in, a_out), (b_in, b_out) = dates.values()
    assert a_out.PatientID == b_out.PatientID
    assert _days(b_out.StudyDate) - _days(a_out.StudyDate) == _days(b_in) - _days(a_in)
    assert a_out.StudyDate != a_in


def _days(value: str) -> int:
    from datetime import date

    return date(int(value[:4]), int(value[4:6]), int(value[6:8])).toordinal()


def _pairs(dates: dict[str, str]) -> list[tuple[str, str, str]]:
    originals = {"a.dcm": "20040119", "b.dcm": "20040826", "c.dcm": "20040119"}
    return [(name, out, originals[name]) for name, out in dates.items()]


# --- options ---------------------------------------------------------------------------------


def test_the_basic_profile_alone_passes_the_checker_and_drops_what_options_keep(
    pydicom_data_dir: Path, tmp_path: Path
) -> None:
    files = [pydicom_data_dir / n for n in ("693_J2KR.dcm", "RG1_UNCR.dcm", "emri_small.dcm")]
    outcome = deidentify_each(files, tmp_path, DeidState(KEY, DeidProfile(frozenset())))
    problems, _ = check_written(outcome)
    assert problems == [] and len(outcome.written()) == 3
    for _, output in outcome.written():
        ds = pydicom.dcmread(output)
        assert not ds.get("StudyDate") and not ds.get("PatientSex")
        assert "SeriesDescription" not in ds and "StudyDescription" not in ds
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]


def test_clean_descriptors_removes_names_identifiers_and_dates(ct_small: Dataset) -> None:
    ct_small.PatientName = "Doe^Jane"
    ct_small.PatientID = "MRN778812"
    ct_small.StudyDescription = "CT HEAD Doe MRN778812 2004-01-19 follow-up"
    ct_small.SeriesDescription = "JANE axial 5mm 01/19/2004"
    deidentify_dataset(ct_small, DeidState(KEY))
    assert ct_small.StudyDescription == "CT HEAD follow-up"
    assert ct_small.SeriesDescription == "axial 5mm"
    assert ct_small.PatientName == ct_small.PatientID != "MRN778812"


def test_retained_patient_characteristics_and_device_identity_are_kept(
    ct_small: Dataset,
) -> None:
    ct_small.PatientSex, ct_small.PatientAge, ct_small.StationName = "F", "042Y", "CT01"
    ct_small.DeviceSerialNumber = "SN-1"
    ct_small.PatientBirthDate = "19620101"
    deidentify_dataset(ct_small, DeidState(KEY))
    assert (ct_small.PatientSex, ct_small.PatientAge) == ("F", "042Y")
    assert (ct_small.StationName, ct_small.DeviceSerialNumber) == ("CT01", "SN-1")
    assert not ct_small.PatientBirthDate
    assert ct_small.PatientIdentityRemoved == "YES"
    codes = [i.CodeValue for i in ct_small.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113108", "113109", "113105"]


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_malformed_files_are_refused_with_a_typed_error_or_written_compliant(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    files = sorted((shared_data_dir / "dicom" / "malformed").glob("*.dcm"))
    outcome = deidentify_each(files, tmp_path, DeidState(KEY))  # anything else would raise
    written = {src.name for src, _ in outcome.written()}
    quarantined = {src.name for src in outcome.quarantined}
    refused = {src.name for src in outcome.raised} | {
        src.name for src, run in outcome.runs.items() if run.refused
    }
    # Complete, parsable files (a missing preamble or a bad meta is repaired by the new
    # meta) are de-identified; everything else is refused with the reason.
    assert written == {"CT_bad_file_meta.dcm", "CT_bad_sequence_UN.dcm", "explicitLE_no_meta.dcm"}
    assert quarantined == {"j2k_embedded_sequence_delimiter.dcm"}
    assert refused == {p.name for p in files} - written - quarantined
    assert len(refused) == 7
    for error in [
        *outcome.raised.values(),
        *(r for run in outcome.runs.values() for r in run.refused),
    ]:
        assert error.path and error.reason and "\n" not in str(error)
    assert check_written(outcome)[0] == []


@pytest.mark.shared_data
def test_structured_reports_are_refused(shared_outcome: Outcome) -> None:
    refused = {src.name: run.refused[0] for src, run in shared_outcome.runs.items() if run.refused}
    for name in ("SR_dcmtk_nested.dcm", "SR_tid1500_measurements.dcm"):
        assert isinstance(refused[name], DeidentificationError)
        assert "structured report" in refused[name].reason


def test_a_data_set_with_an_uninterpretable_element_is_refused(ct_small: Dataset) -> None:
    from pydicom.dataelem import RawDataElement

    ct_small._dict[0x00091001] = RawDataElement(0x00091001, "LO", 2, b"ab", 0, False, True)
    ct_small._dict[0x00081030] = RawDataElement(0x00081030, "UN", 2, b"ab", 0, False, True)
    from pydicom import config

    previous = config.replace_un_with_known_vr
    config.replace_un_with_known_vr = False
    try:
        with pytest.raises(DeidentificationError, match=r"\(0008,1030\).*VR UN"):
            deidentify_dataset(ct_small, DeidState(KEY), "x.dcm")
    finally:
        config.replace_un_with_known_vr = previous


def test_a_zip_is_read_member_by_member_and_junk_is_refused(
    ct_small: Dataset, tmp_path: Path
) -> None:
    ct_small.save_as(tmp_path / "ct.dcm")
    with zipfile.ZipFile(tmp_path / "in.zip", "w") as archive:
        archive.write(tmp_path / "ct.dcm", "study/ct.dcm")
        archive.writestr("study/notes.txt", "not an image")
    run = deidentify_tree([tmp_path / "in.zip"], tmp_path / "out", DeidState(KEY))
    assert len(run.written) == 1 and len(run.refused) == 1
    assert run.refused[0].path.endswith("in.zip!study/notes.txt")
    assert run.written[0].source.endswith("in.zip!study/ct.dcm")


def test_a_missing_input_raises_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        deidentify_tree([tmp_path / "absent"], tmp_path / "out", DeidState(KEY))
    assert not (tmp_path / "out").exists()


# --- the key ---------------------------------------------------------------------------------


def test_read_key_prefers_the_key_file_then_the_environment(tmp_path: Path) -> None:
    (tmp_path / "k").write_bytes(b"  a key file of enough bytes\n")
    assert read_key(tmp_path / "k", {}).secret == b"a key file of enough bytes"
    assert read_key(tmp_path / "k", {"RADLENS_DEID_KEY": "x" * 20}).source == "key file"
    assert read_key(None, {"RADLENS_DEID_KEY": "x" * 20}).secret == b"x" * 20
    one_time = read_key(None, {})
    assert one_time.source == "one-time" and read_key(None, {}).secret != one_time.secret
    assert "secret" not in repr(one_time) or one_time.secret.hex() not in repr(one_time)


def test_a_short_or_unreadable_key_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "short").write_bytes(b"short")
    with pytest.raises(ConfigError, match="at least 16"):
        read_key(tmp_path / "short", {})
    with pytest.raises(ConfigError, match="cannot read"):
        read_key(tmp_path / "absent", {})


def test_the_profile_defaults_to_all_four_options() -> None:
    assert DeidProfile().options == ALL_OPTIONS
    assert DeidProfile(["clean-descriptors"]).options == {DeidOption.CLEAN_DESCRIPTORS}  # type: ignore[arg-type]


# --- the checker itself ----------------------------------------------------------------------


def test_the_checker_catches_what_it_is_meant_to_catch(ct_small: Dataset, tmp_path: Path) -> None:
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    state = DeidState(KEY)
    deidentify_dataset(ct_small, state)
    options = checker_options(state.profile)
    offset = offset_of(state, original)
    assert check(original, ct_small, options, offset).problems == []

    def problems_after(change) -> list[str]:  # type: ignore[no-untyped-def]
        broken = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        deidentify_dataset(broken, DeidState(KEY))
        change(broken)
        return check(original, broken, options, offset).problems

    assert problems_after(lambda ds: setattr(ds, "PatientName", original.PatientName))
    assert problems_after(lambda ds: ds.add_new(0x00091001, "LO", "private"))
    assert problems_after(lambda ds: setattr(ds, "StudyDate", original.StudyDate))
    assert problems_after(lambda ds: setattr(ds, "InstitutionAddress", "1 Main St"))
    assert problems_after(lambda ds: setattr(ds, "SeriesInstanceUID", original.SeriesInstanceUID))
    assert problems_after(lambda ds: setattr(ds, "PatientSex", "M"))
    assert problems_after(lambda ds: setattr(ds, "StudyDescription", "e+1 20040119"))
    assert problems_after(lambda ds: ds.DeidentificationMethodCodeSequence.pop())
    assert problems_after(lambda ds: setattr(ds, "ContrastBolusAgent", "CompressedSamples"))


def test_no_private_tag_is_kept_at_any_depth(ct_small: Dataset) -> None:
    item = Dataset()
    item.add_new(0x00291010, "LO", "private in an item")
    item.CodeValue = "T-D1100"
    ct_small.AnatomicRegionSequence = [item]
    ct_small.add_new(0x00090010, "LO", "ACME 1.0")
    deidentify_dataset(ct_small, DeidState(KEY))
    assert all(not elem.tag.is_private for elem in ct_small.iterall())
    assert ct_small.AnatomicRegionSequence[0].CodeValue == "T-D1100"


def test_copying_the_shared_folder_elsewhere_changes_nothing(
    pydicom_data_dir: Path, tmp_path: Path
) -> None:
    # Inputs are identified by content, so a renamed copy de-identifies to the same file name.
    source = pydicom_data_dir / "693_J2KR.dcm"
    shutil.copy(source, tmp_path / "renamed.dcm")
    a = deidentify_tree([source], tmp_path / "a", DeidState(KEY)).written[0].path
    b = deidentify_tree([tmp_path / "renamed.dcm"], tmp_path / "b", DeidState(KEY)).written[0].path
    assert a.relative_to(tmp_path / "a") == b.relative_to(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
