"""The job function every engine runs: one study in, its result and output files out.

:func:`run_study` is what the local process pool and a Dask worker call, so a result is
the same whichever engine ran it. It finds the study's files where the
:class:`StudyJob` says they are (paths the driver scanned; a DICOMweb endpoint, retrieved
by WADO-RS on the worker; or bytes sent along by ``radlens serve``), runs
:func:`radlens.pipeline.process_study` and renders what ``radlens analyze`` writes per
study (``findings.json``, overlay PNGs, ``report.md``, optionally ``fhir.json`` and the
DICOM result objects) as bytes, which the driver writes. A task writes nothing outside its
own temporary folder, so one that runs twice (its first worker was lost) leaves nothing to
undo.

A typed radlens error (bad input, a PACS refusing) comes back as :class:`StudyFailed`;
anything else propagates, so Dask's ``retries=`` runs the task again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from radlens.domain.findings import RejectedInput, StudyResult
from radlens.domain.imaging import Study
from radlens.errors import InputError, RadlensError
from radlens.inference.backends import Backend
from radlens.io.raster import write_png
from radlens.io.scan import scan
from radlens.models.registry import InstalledModel, discover
from radlens.models.versions import active_folders
from radlens.pipeline import onnx_backends, process_study
from radlens.report.compose import compose_markdown
from radlens.report.findings_json import to_json


@dataclass(frozen=True)
class ModelSet:
    """The models of a run as ``name@version``, sorted; ``key`` names the set in results.

    Example:
        >>> ModelSet(("cxr_pneumonia@1.2.0",)).key
        '2cf9db464dc689f7'
    """

    names: tuple[str, ...]

    @property
    def text(self) -> str:
        return ",".join(self.names)

    @property
    def key(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]


def model_set(models: list[InstalledModel]) -> ModelSet:
    """The :class:`ModelSet` of installed models."""
    return ModelSet(tuple(sorted(f"{m.card.name}@{m.card.version}" for m in models)))


@dataclass(frozen=True)
class AnalysisSetup:
    """How every worker analyzes; hashable, so each worker process loads models once.

    Attributes:
        model_dirs: extra model folders (the zoo is always searched); a worker on another
            machine must see them at the same path.
        threads: ONNX Runtime threads per task (1: one core per worker).
        outputs: render the per-study files (False: the result only, for ``serve``).
        render: overlay PNGs (with ``outputs``).
        fhir: also ``fhir.json``; ``dicom_results``: also ``sr.dcm``, ``pm_*``, ``seg_*``.
        notes: clinical notes read for every study's ``report.md``.
        pixel_size_mm: pixel side of PNG/JPEG inputs, for measuring models.
        model_store: the site model store: its promoted versions run in place of the
            installed ones (``radlens models promote``); a worker must see it at the same
            path.
    """

    model_dirs: tuple[Path, ...] = ()
    threads: int = 1
    outputs: bool = True
    render: bool = True
    fhir: bool = False
    dicom_results: bool = False
    notes: str = field(default="", repr=False)
    pixel_size_mm: float | None = None
    model_store: Path | None = None


@dataclass(frozen=True)
class DicomWebStudy:
    """A study on a DICOMweb server, retrieved by the worker that analyzes it."""

    url: str
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class StudyJob:
    """One study to analyze, from exactly one place.

    Attributes:
        study_uid: Study Instance UID.
        study: the study as the driver scanned it; its files must be readable by the
            worker at the same paths (one machine, or a shared file system).
        dicomweb: the server to retrieve the study from (WADO-RS).
        files: the instances' (location, bytes), sent along with the task.
    """

    study_uid: str
    study: Study | None = None
    dicomweb: DicomWebStudy | None = None
    files: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        given = (self.study is not None) + (self.dicomweb is not None) + bool(self.files)
        if given != 1:
            raise ValueError("a StudyJob needs exactly one of study, dicomweb or files")


@dataclass(frozen=True)
class StudyDone:
    """A study analyzed by a worker.

    ``study`` carries the metadata (its paths may be a worker's temporary folder, gone
    now); ``files`` are the output files, named as in ``radlens analyze``'s folders.
    """

    study: Study
    result: StudyResult
    files: tuple[tuple[str, bytes], ...] = field(repr=False)
    notes: tuple[str, ...]
    models_key: str
    worker: str
    duration_s: float


@dataclass(frozen=True)
class StudyFailed:
    """A study a worker could not analyze, with the typed reason (no patient data)."""

    study_uid: str
    reason: str
    worker: str
    duration_s: float


def worker_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_study(job: StudyJob, setup: AnalysisSetup) -> StudyDone | StudyFailed:
    """Analyze one study; the function every engine runs.

    Example:
        >>> done = run_study(StudyJob(study.study_instance_uid, study=study), AnalysisSetup())
        ... # doctest: +SKIP
        >>> [name for name, _ in done.files]  # doctest: +SKIP
        ['findings.json', 'report.md']
    """
    clock = time.perf_counter()
    try:
        models, backend_for, models_used = _engine(
            setup.model_dirs, setup.threads, setup.model_store
        )
        with tempfile.TemporaryDirectory(prefix="radlens-task-") as scratch:
            folder = Path(scratch)
            with _study_of(job, folder / "in") as (study, extra_rejected, origin):
                analysis = process_study(
                    study,
                    models,
                    backend_for,
                    render=setup.outputs and setup.render,
                    pixel_size_mm=setup.pixel_size_mm,
                )
                result = analysis.result
                if extra_rejected or origin:
                    rejected = (*extra_rejected, *result.rejected)
                    result = replace(
                        result,
                        rejected=tuple(
                            replace(r, location=origin.get(r.location, r.location))
                            for r in rejected
                        ),
                    )
                files: list[tuple[str, bytes]] = []
                notes: list[str] = []
                if setup.outputs:
                    for overlay in analysis.overlays:
                        write_png(folder / overlay.name, overlay.rgb)
                        files.append((overlay.name, (folder / overlay.name).read_bytes()))
                    files.extend(_documents(study, result, setup))
                    if setup.dicom_results:
                        notes.extend(_dicom_results(study, result, files))
    except RadlensError as exc:
        return StudyFailed(
            job.study_uid, f"{type(exc).__name__}: {exc}", worker_name(), _since(clock)
        )
    return StudyDone(
        study,
        result,
        tuple(files),
        tuple(notes),
        models_used.key,
        worker_name(),
        _since(clock),
    )


def _since(clock: float) -> float:
    return time.perf_counter() - clock


def _engine(
    model_dirs: tuple[Path, ...], threads: int, model_store: Path | None = None
) -> tuple[list[InstalledModel], Callable[[InstalledModel], Backend], ModelSet]:
    """The models (weights verified once per process and active versions) and their
    backends: a promotion or rollback in the store reaches a long-lived worker at its next
    study, since the store's active versions are part of the cache key."""
    active = tuple(sorted((n, str(f)) for n, f in active_folders(model_store).items()))
    return _engine_for(model_dirs, threads, model_store, active)


@functools.cache
def _engine_for(
    model_dirs: tuple[Path, ...],
    threads: int,
    model_store: Path | None,
    active: tuple[tuple[str, str], ...],
) -> tuple[list[InstalledModel], Callable[[InstalledModel], Backend], ModelSet]:
    models = discover(list(model_dirs), store=model_store)
    return models, onnx_backends(threads), model_set(models)


def _documents(study: Study, result: StudyResult, setup: AnalysisSetup) -> list[tuple[str, bytes]]:
    """``findings.json`` and ``report.md`` (and ``fhir.json``) as ``radlens analyze``
    writes them; a batch report has no prior study (each study is its own task)."""
    document = to_json(result, study.modalities)
    text = compose_markdown(study, result, None, setup.notes)
    found = [
        ("findings.json", (json.dumps(document, indent=2) + "\n").encode("utf-8")),
        ("report.md", text.encode("utf-8")),
    ]
    if setup.fhir:
        from radlens.report.fhir import to_fhir

        bundle = to_fhir(study, result, draft=text)
        found.append(("fhir.json", (json.dumps(bundle, indent=2) + "\n").encode("utf-8")))
    return found


def _dicom_results(study: Study, result: StudyResult, files: list[tuple[str, bytes]]) -> list[str]:
    """Add the DICOM result objects to ``files``; return why any could not be made."""
    # Imported here: highdicom takes a quarter of a second to import, paid only when asked.
    from radlens.report.dicom_results import to_dicom_results
    from radlens.report.equipment import to_bytes

    made = to_dicom_results(study, result)
    files.extend((obj.name, to_bytes(obj.dataset)) for obj in made.objects)
    return list(made.skipped)


@contextmanager
def _study_of(
    job: StudyJob, folder: Path
) -> Iterator[tuple[Study, tuple[RejectedInput, ...], dict[str, str]]]:
    """The job's study, readable within the block; files of it that were rejected; and
    where each temporary file came from (to name rejected files in the result)."""
    if job.study is not None:
        yield job.study, (), {}
        return
    folder.mkdir(parents=True)
    names: dict[str, str] = {}  # temporary path -> where the instance came from
    if job.dicomweb is not None:
        from radlens.net.dicomweb import DicomWebClient

        source = job.dicomweb
        client = DicomWebClient(source.url, source.username, source.password)
        try:
            parts = client.retrieve_study(job.study_uid)
        finally:
            client.close()
        origin = f"{client.server}/studies/{job.study_uid}"
        items = [(f"{origin}#{i}", data) for i, data in enumerate(parts)]
    else:
        items = list(job.files)
    for index, (location, data) in enumerate(items):
        path = folder / f"{index:06d}.dcm"
        path.write_bytes(data)
        names[str(path)] = location
    if not items:
        raise InputError(None, "the study has no instances to analyze")
    found = scan([folder])
    study = next((s for s in found.studies if s.study_instance_uid == job.study_uid), None)
    if study is None:
        raise InputError(None, "the retrieved files do not hold the study")
    rejected = tuple(RejectedInput(e.path or "", e.kind, e.reason) for e in found.rejected)
    yield study, rejected, names
