"""The exception tree: machine-readable kinds, "path: reason" messages, builtin bases."""

from __future__ import annotations

from pathlib import Path

import pytest

from radlens import errors


@pytest.mark.parametrize(
    ("cls", "kind"),
    [
        (errors.NotDicomError, "not_dicom"),
        (errors.TruncatedFileError, "truncated_file"),
        (errors.MissingFileMetaError, "missing_file_meta"),
        (errors.UnsupportedTransferSyntaxError, "unsupported_transfer_syntax"),
        (errors.PixelDataError, "pixel_data"),
        (errors.NotAnImageError, "not_an_image"),
        (errors.EmptyInputError, "empty_input"),
        (errors.UnreadableArchiveError, "unreadable_archive"),
        (errors.IncompatibleInputError, "incompatible_input"),
        (errors.InputError, "input"),
    ],
)
def test_input_error_kind_is_snake_case_class_name_without_error(
    cls: type[errors.InputError], kind: str
) -> None:
    assert cls("a.dcm", "why").kind == kind


def test_input_error_message_is_path_colon_reason() -> None:
    exc = errors.TruncatedFileError(Path("in/a.dcm"), "file ends at byte 12")
    assert str(exc) == "in/a.dcm: file ends at byte 12"
    assert exc.path == "in/a.dcm"
    assert exc.reason == "file ends at byte 12"


def test_input_error_without_path_is_just_the_reason() -> None:
    exc = errors.EmptyInputError(None, "no input paths given")
    assert str(exc) == "no input paths given"
    assert exc.path is None


def test_errors_subclass_the_matching_builtins() -> None:
    assert issubclass(errors.InputError, ValueError)
    assert issubclass(errors.ModelNotFoundError, LookupError)
    assert issubclass(errors.InvalidModelCardError, ValueError)
    assert issubclass(errors.InferenceError, RuntimeError)
    assert issubclass(errors.ConfigError, ValueError)
    for cls in (errors.PixelDataError, errors.ModelIntegrityError, errors.ConfigError):
        assert issubclass(cls, errors.RadlensError)


def test_value_error_handler_catches_input_errors() -> None:
    with pytest.raises(ValueError, match="bad.dcm: not DICOM"):
        raise errors.NotDicomError("bad.dcm", "not DICOM")
