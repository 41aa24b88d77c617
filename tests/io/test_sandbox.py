"""radlens.io.sandbox: a decoder that aborts or hangs in a child cannot take radlens down."""

from __future__ import annotations

import os
import time

import pytest

from radlens.errors import NotDicomError, PixelDataError
from radlens.io.sandbox import run_isolated


def _raise_not_dicom(path: str) -> None:
    raise NotDicomError(path, "not DICOM at all")


def _raise_key_error() -> None:
    raise KeyError("a decoder bug")


def test_the_result_comes_back() -> None:
    assert run_isolated(divmod, 7, 2, location="x.dcm") == (3, 1)


def test_a_child_that_aborts_is_a_pixel_data_error_and_the_caller_lives_on() -> None:
    with pytest.raises(PixelDataError, match=r"x\.dcm: the decoder crashed \(exit code -6\)"):
        run_isolated(os.abort, location="x.dcm")
    assert run_isolated(divmod, 9, 4, location="x.dcm") == (2, 1)


def test_a_child_past_its_time_budget_is_stopped() -> None:
    started = time.monotonic()
    with pytest.raises(PixelDataError, match="ran past 0.5 s"):
        run_isolated(time.sleep, 30, location="x.dcm", timeout_s=0.5)
    assert time.monotonic() - started < 10


def test_typed_errors_keep_their_type_and_others_become_pixel_data_errors() -> None:
    with pytest.raises(NotDicomError, match="y.dcm: not DICOM at all"):
        run_isolated(_raise_not_dicom, "y.dcm", location="x.dcm")
    with pytest.raises(PixelDataError, match="KeyError: 'a decoder bug'"):
        run_isolated(_raise_key_error, location="x.dcm")
