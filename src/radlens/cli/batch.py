"""``radlens batch SOURCE -o DEST --engine local|dask``: see docs/cli.md and docs/scaling.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from radlens.cli.main import configure_logging
from radlens.cli.render import out
from radlens.errors import ConfigError

Engine = Annotated[str, typer.Option("--engine", help="local (process pool) or dask")]


def _resources(pairs: list[str] | None) -> dict[str, float]:
    found: dict[str, float] = {}
    for pair in pairs or []:
        name, _, amount = pair.partition("=")
        try:
            found[name.strip()] = float(amount)
        except ValueError:
            raise ConfigError(
                f"--resource wants NAME=AMOUNT, e.g. radlens=1; got {pair!r}"
            ) from None
        if not name.strip():
            raise ConfigError(f"--resource wants NAME=AMOUNT, got {pair!r}")
    return found


def batch_command(
    source: Annotated[
        str, typer.Argument(help="folder, list file (*.txt: one path per line) or DICOMweb URL")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="output folder")] = Path(
        "radlens-batch"
    ),
    engine: Engine = "local",
    address: Annotated[
        str, typer.Option("--address", help="Dask scheduler, e.g. tcp://10.0.0.5:8786")
    ] = "",
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            help="local processes (0: in this process), or the workers "
            "of a Dask cluster started here when no --address is given",
        ),
    ] = 1,
    resource: Annotated[
        list[str] | None,
        typer.Option(
            "--resource", help="Dask worker resource each study holds, NAME=AMOUNT (repeatable)"
        ),
    ] = None,
    models_dir: Annotated[
        list[Path] | None, typer.Option("--models", help="extra model folders")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="ONNX Runtime threads")] = 1,
    db: Annotated[
        str, typer.Option("--db", help="database URL (default: DEST/radlens-batch.sqlite)")
    ] = "",
    part: Annotated[int, typer.Option("--part", min=0, help="this shard (0-based)")] = 0,
    parts: Annotated[int, typer.Option("--parts", min=1, help="number of shards")] = 1,
    username: Annotated[str, typer.Option("--username", help="DICOMweb user")] = "",
    password: Annotated[
        str,
        typer.Option("--password", envvar="RADLENS_DICOMWEB_PASSWORD", help="DICOMweb password"),
    ] = "",
    fhir: Annotated[bool, typer.Option("--fhir", help="also fhir.json per study")] = False,
    dicom_results: Annotated[
        bool, typer.Option("--dicom-results", help="also sr.dcm, pm_*.dcm, seg_*.dcm")
    ] = False,
    no_overlays: Annotated[
        bool, typer.Option("--no-overlays", help="no overlay PNGs (faster)")
    ] = False,
    notes: Annotated[
        Path | None,
        typer.Option("--notes", exists=True, dir_okay=False, help="clinical notes for reports"),
    ] = None,
    modality: Annotated[str, typer.Option(help="modality for non-DICOM input")] = "",
    body_part: Annotated[str, typer.Option(help="body part for non-DICOM input")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
    model_store: Annotated[
        Path | None,
        typer.Option(
            "--model-store",
            help="a site model store: run its promoted versions (every worker must see it "
            "at this path)",
        ),
    ] = None,
) -> None:
    """Analyze many studies in parallel, locally or on a Dask cluster; resumable."""
    # Imported here: the [cluster] extra (dask, pyarrow) is needed only by this command.
    from radlens.cluster.batch import run_batch
    from radlens.cluster.executors import make_executor, quiet_dask_logs
    from radlens.cluster.jobs import AnalysisSetup

    configure_logging(verbose, quiet or as_json)
    quiet_dask_logs("debug" if verbose else "warning")
    setup = AnalysisSetup(
        model_dirs=tuple(models_dir or ()),
        threads=threads,
        render=not no_overlays,
        fhir=fhir,
        dicom_results=dicom_results,
        notes="" if notes is None else notes.read_bytes().decode("utf-8", "replace"),
        model_store=model_store,
    )
    show = not (quiet or as_json)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with (
        make_executor(engine, workers, address, _resources(resource)) as executor,
        Progress(*columns, TimeElapsedColumn(), transient=True, disable=not show) as progress,
    ):
        task = progress.add_task("listing", total=None)

        def started(todo: int, skipped: int) -> None:
            progress.update(task, description=f"analyzing ({skipped} done before)", total=todo)

        summary = run_batch(
            source,
            output,
            executor,
            setup,
            db_url=db,
            part=part,
            parts=parts,
            username=username,
            password=password,
            modality=modality,
            body_part=body_part,
            on_start=started,
            on_study=lambda _: progress.advance(task),
        )
    if as_json:
        out.print_json(json.dumps(summary.to_dict()))
    else:
        for r in summary.rejected:
            out.print(f"[red]rejected[/red] {r.location}: {r.kind}: {r.reason}", soft_wrap=True)
        for f in summary.failures:
            out.print(
                f"[red]failed[/red] {f.output or f.study_uid[-12:]}: {f.error}", soft_wrap=True
            )
        if not quiet:
            for w in summary.warnings:
                out.print(f"[yellow]warning[/yellow] {w}", soft_wrap=True)
            out.print(
                f"{summary.done} studies analyzed, {summary.skipped} skipped (done before), "
                f"{summary.failed} failed, {len(summary.rejected)} inputs rejected in "
                f"{summary.elapsed_s:.1f} s ({summary.studies_per_minute:.1f} studies/min, "
                f"{summary.engine}); outputs in {output}",
                soft_wrap=True,
            )
    raise typer.Exit(summary.exit_code)
