"""``radlens analyze INPUT... -o OUT``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from radlens.analyze import AnalyzeRun, StudyOutput, analyze
from radlens.cli.main import configure_logging
from radlens.cli.render import out, print_run
from radlens.models.registry import discover, get_model
from radlens.pipeline import onnx_backends
from radlens.report.findings_json import to_json

Inputs = Annotated[list[Path], typer.Argument(help="DICOM/NIfTI/PNG files, folders or zips")]
Output = Annotated[Path, typer.Option("-o", "--output", help="output folder")]
Json = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose")]
ModelsDir = Annotated[list[Path] | None, typer.Option("--models", help="extra model folders")]
Threads = Annotated[int, typer.Option("--threads", help="ONNX Runtime threads")]
Fhir = Annotated[
    bool, typer.Option("--fhir", help="also write fhir.json (FHIR R4 Bundle) per study")
]
DicomResults = Annotated[
    bool,
    typer.Option(
        "--dicom-results",
        help="also write DICOM objects per study: sr.dcm (TID 1500), pm_*.dcm, seg_*.dcm",
    ),
]

Notes = Annotated[
    Path | None,
    typer.Option(
        "--notes",
        help="clinical notes or a prior report for the draft (text, or HL7 v2 ORM/ORU), "
        "read for every study of the run",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]


def model_folder(model: str, models_dir: list[Path] | None) -> Path:
    """The folder of ``model``: a model folder given as a path, or an installed model's
    (disabled ones too) by name."""
    folder = Path(model)
    if (folder / "card.json").exists():
        return folder
    return get_model(model, discover(models_dir, include_disabled=True)).folder


def run_analysis(
    inputs: list[Path],
    output: Path,
    as_json: bool,
    quiet: bool,
    models_dir: list[Path] | None,
    threads: int,
    modality: str = "",
    body_part: str = "",
    fhir: bool = False,
    dicom_results: bool = False,
    notes: Path | None = None,
    pixel_size_mm: float | None = None,
    enable: list[str] | None = None,
    model_store: Path | None = None,
) -> AnalyzeRun:
    # One discovery (every weight hashed once); --enable adds models disabled by default.
    every = discover(models_dir, include_disabled=bool(enable), store=model_store)
    wanted = {get_model(n, every).card.name for n in enable or ()}
    models = [m for m in every if m.card.enabled_by_default or m.card.name in wanted]
    clinical_notes = "" if notes is None else notes.read_bytes().decode("utf-8", "replace")
    show_progress = not (quiet or as_json)
    with Progress(transient=True, disable=not show_progress) as progress:
        task = progress.add_task("analyzing", total=None)

        def advance(_: StudyOutput) -> None:
            progress.advance(task)

        run = analyze(
            inputs,
            output,
            models,
            onnx_backends(threads),
            advance,
            modality=modality,
            body_part=body_part,
            fhir=fhir,
            dicom_results=dicom_results,
            clinical_notes=clinical_notes,
            pixel_size_mm=pixel_size_mm,
        )
    if as_json:
        doc = {
            "studies": [
                to_json(o.result, o.study.modalities) | {"output": str(o.folder)}
                for o in run.outputs
            ],
            "rejected": [r.__dict__ for r in run.rejected],
            "exit_code": run.exit_code,
        }
        out.print_json(json.dumps(doc))
    else:
        print_run(run, quiet)
    return run


def analyze_command(
    inputs: Inputs,
    output: Output = Path("radlens-out"),
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    models_dir: ModelsDir = None,
    threads: Threads = 1,
    modality: Annotated[str, typer.Option(help="modality for non-DICOM input, e.g. CR")] = "",
    body_part: Annotated[str, typer.Option(help="body part for non-DICOM input")] = "",
    fhir: Fhir = False,
    dicom_results: DicomResults = False,
    notes: Notes = None,
    pixel_size_mm: Annotated[
        float | None,
        typer.Option(
            "--pixel-size-mm",
            min=1e-6,
            help="pixel side in mm of PNG/JPEG input, for measurements such as the fetal "
            "head circumference (DICOM input states its own)",
        ),
    ] = None,
    enable: Annotated[
        list[str] | None,
        typer.Option(
            "--enable",
            help="also run this model, disabled by default (see `radlens models`); repeatable",
        ),
    ] = None,
    model_store: Annotated[
        Path | None,
        typer.Option(
            "--model-store",
            help="a site model store (~/.radlens/models): run its promoted versions "
            "(radlens models promote / rollback) instead of the installed ones",
        ),
    ] = None,
) -> None:
    """Analyze studies; write findings.json, overlays and a draft report per study."""
    configure_logging(verbose, quiet)
    run = run_analysis(
        inputs,
        output,
        as_json,
        quiet,
        models_dir,
        threads,
        modality,
        body_part,
        fhir=fhir,
        dicom_results=dicom_results,
        notes=notes,
        pixel_size_mm=pixel_size_mm,
        enable=enable,
        model_store=model_store,
    )
    raise typer.Exit(run.exit_code)
