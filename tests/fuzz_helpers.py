"""The fuzz target of the intake path, shared by the hypothesis test and ``make fuzz``.

:func:`intake_once` runs one input the way a received instance goes: header parse
(``store.intake.parse_header``: ``io.dicom.read_instance`` + UID checks), routing
(``models.registry.route``) and pixel decoding (``io.dicom.decode_instance``). The
property every caller checks: an input either succeeds or raises an
:class:`~radlens.errors.InputError` subclass; any other exception is a crash, and a run
longer than the time budget is a hang.

Seeds are small real files: a few pydicom-data files (skipped when not installed) plus
tiny data sets built here in every encoding radlens reads (explicit/implicit little
endian, big endian, deflated, no file meta, with sequences).
"""

from __future__ import annotations

import importlib.util
import io
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from radlens.errors import InputError
from radlens.models.registry import InstalledModel, discover, route
from radlens.store.intake import parse_header
from radlens.warning_scopes import ignoring

PYDICOM_DATA_SEEDS = (
    "SC_rgb.dcm",  # uncompressed RGB
    "SC_rgb_dcmtk_ebcr_dcmd.dcm",  # JPEG baseline, YBR
    "emri_small_RLE.dcm",  # RLE, 10 frames
    "emri_small_jpeg_2k_lossless.dcm",  # JPEG 2000
    "emri_small_jpeg_ls_lossless.dcm",  # JPEG-LS
)
# Smaller files that ship inside pydicom itself (no download).
PYDICOM_TEST_SEEDS = (
    "JPEG-lossy.dcm",  # 12-bit JPEG extended: radlens's own GDCM route
    "SC_rgb_jpeg_gdcm.dcm",
    "MR_small_RLE.dcm",
    "JPEG2000.dcm",
    "rtplan.dcm",  # no pixels, nested sequences
)
REGRESSIONS_DIR = Path(__file__).parent / "io" / "fuzz_regressions"


class Hang(Exception):  # noqa: N818 - the name is the finding
    """An input that ran past its time budget."""


@cache
def fuzz_models() -> tuple[InstalledModel, ...]:
    """The shipped models, for routing (cards only; nothing is run)."""
    return tuple(discover())


def intake_once(data: bytes) -> str:
    """Parse, route and decode one received object. Returns what happened.

    Raises:
        InputError: the input is refused (the expected outcome for most mutations).
    """
    # Read warnings (DicomReadWarning, numpy overflow on absurd rescale values) are
    # expected for mutated data; only exceptions are findings.
    with ignoring():
        header = parse_header(data, "fuzz")
        chosen = route(header.series, list(fuzz_models()))
        if not header.instance.has_pixels:
            return "no pixels"
        from radlens.io.dicom import decode_instance

        image = decode_instance(header.instance, data)
    return f"decoded {image.array.shape}, {len(chosen.models)} model(s)"


def check_input(data: bytes, budget_s: float) -> str:
    """Run :func:`intake_once` under the property: success or an InputError, in time.

    Raises:
        Hang: the input ran past ``budget_s`` seconds.
        Exception: anything that is not an InputError (a crash).
    """
    with time_budget(budget_s):
        try:
            return intake_once(data)
        except InputError as exc:
            return f"refused: {exc.kind}"


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread when the block runs past ``seconds``."""

    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"ran past the {seconds:g} s budget")

    previous: Callable[..., Any] | int | None = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def find_pydicom_data() -> Path | None:
    """The pydicom-data folder (``data_store/data``), or None when not installed."""
    spec = importlib.util.find_spec("data_store")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


def seed_corpus(pydicom_data_dir: Path | None) -> list[bytes]:
    """Small real files to mutate, the tiny built ones first."""
    seeds = [_encode(ds, syntax) for ds, syntax in _built_seeds()]
    if pydicom_data_dir is not None:
        for name in PYDICOM_DATA_SEEDS:
            path = pydicom_data_dir / name
            if path.is_file():
                seeds.append(path.read_bytes())
    seeds += [Path(get_testdata_file(name)).read_bytes() for name in PYDICOM_TEST_SEEDS]
    return seeds


def _built_seeds() -> list[tuple[Dataset, str]]:
    rng = np.random.default_rng(7)
    ct = _image(rng.integers(0, 4096, (6, 5), dtype=np.uint16), "CT", "HEAD")
    ct.RescaleSlope, ct.RescaleIntercept = 1, -1024
    ct.WindowCenter, ct.WindowWidth = 40, 400
    cr = _image(rng.integers(0, 256, (8, 8), dtype=np.uint8), "CR", "CHEST")
    cr.PhotometricInterpretation = "MONOCHROME1"
    cr.ViewPosition = "PA"
    cr.ImagerPixelSpacing = [0.2, 0.2]
    cr.RequestAttributesSequence = Sequence([Dataset()])
    cr.RequestAttributesSequence[0].RequestedProcedureDescription = "CHEST PA"
    mf = _image(rng.integers(0, 1000, (3, 4, 4), dtype=np.int16), "MR", "BRAIN")
    mf.NumberOfFrames = 3
    mf.PixelRepresentation = 1
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = [0.5, 0.5]
    shared.PixelMeasuresSequence[0].SpacingBetweenSlices = 2.0
    mf.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for z in range(3):
        item = Dataset()
        item.PlanePositionSequence = Sequence([Dataset()])
        item.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, 2.0 * z]
        frames.append(item)
    mf.PerFrameFunctionalGroupsSequence = Sequence(frames)
    rgb = _image(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), "XC", "EYE")
    rgb.SamplesPerPixel, rgb.PhotometricInterpretation, rgb.PlanarConfiguration = 3, "RGB", 0
    return [
        (ct, ExplicitVRLittleEndian),
        (cr, ImplicitVRLittleEndian),
        (mf, ExplicitVRBigEndian),
        (rgb, DeflatedExplicitVRLittleEndian),
        (ct, ""),  # no file meta (old ACR-NEMA style, read with force)
    ]


def _image(pixels: np.ndarray, modality: str, body_part: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.7.{abs(hash(modality)) % 10_000}"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.7.1"
    ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.7.2.{len(modality)}"
    ds.Modality, ds.BodyPartExamined = modality, body_part
    ds.PatientName, ds.PatientID = "Fuzz^Seed", "FUZZ-1"
    ds.Rows, ds.Columns = pixels.shape[:2] if modality == "XC" else pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelSpacing = [0.7, 0.7]
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelData = pixels.tobytes()
    return ds


def _encode(ds: Dataset, syntax: str) -> bytes:
    ds = ds.copy()
    buffer = io.BytesIO()
    if not syntax:
        ds.save_as(buffer, implicit_vr=True, little_endian=True)
        return buffer.getvalue()
    if syntax == ExplicitVRBigEndian:
        ds.PixelData = np.frombuffer(ds.PixelData, dtype="<i2").astype(">i2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = syntax
    with ignoring():  # big endian is retired; pydicom says so
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
