"""``radlens deidentify IN... -o OUT [--key-file F]``: PS3.15 Annex E de-identification."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from radlens.cli.main import configure_logging
from radlens.cli.render import out
from radlens.errors import InputError
from radlens.privacy.deid import DeidProfile, DeidRun, DeidState, deidentify_tree, read_key
from radlens.privacy.profile import ALL_OPTIONS, DeidOption

Inputs = Annotated[list[Path], typer.Argument(help="DICOM files, folders or zips")]
Output = Annotated[Path, typer.Option("-o", "--output", help="output folder")]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="file whose bytes are the secret key (else $RADLENS_DEID_KEY, else a one-time "
        "key): the same key gives the same pseudonyms, UIDs and date shifts",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]
Without = Annotated[
    list[DeidOption] | None,
    typer.Option("--without", help="leave out an Annex E option (repeatable)"),
]
Json = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose")]


def deidentify_command(
    inputs: Inputs,
    output: Output,
    key_file: KeyFile = None,
    without: Without = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """De-identify DICOM (PS3.15 Annex E basic profile + options) into OUT, hashed names."""
    configure_logging(verbose, quiet)
    profile = DeidProfile(ALL_OPTIONS - frozenset(without or ()))
    state = DeidState(read_key(key_file, os.environ), profile)
    run = deidentify_tree(inputs, output, state)
    if as_json:
        out.print_json(json.dumps(_as_json(run)))
    else:
        _print(run, output, quiet)
    raise typer.Exit(run.exit_code)


def _print(run: DeidRun, output: Path, quiet: bool) -> None:
    for q in run.quarantined:
        _line("quarantined", q)
    for r in run.refused:
        _line("refused", r)
    if quiet:
        return
    for w in run.warnings:
        out.print(f"[yellow]warning[/yellow] {escape(w)}", soft_wrap=True)
    if run.key_source == "one-time":
        out.print(
            "[yellow]warning[/yellow] no --key-file and no RADLENS_DEID_KEY: a one-time key "
            "was used, so pseudonyms, UIDs and date shifts match no other run",
            soft_wrap=True,
        )
    out.print(
        f"{len(run.written)} files de-identified into {escape(str(output))}, "
        f"{len(run.quarantined)} quarantined, {len(run.refused)} refused "
        f"(key: {run.key_source})"
    )


def _line(verb: str, error: InputError) -> None:
    out.print(
        f"[red]{verb}[/red] {escape(str(error.path))}: {error.kind}: {escape(error.reason)}",
        soft_wrap=True,
    )


def _as_json(run: DeidRun) -> dict[str, object]:
    def entry(e: InputError) -> dict[str, str]:
        return {"path": str(e.path), "kind": e.kind, "reason": e.reason}

    return {
        "written": [{"source": w.source, "output": str(w.path)} for w in run.written],
        "quarantined": [entry(q) for q in run.quarantined],
        "refused": [entry(r) for r in run.refused],
        "warnings": list(run.warnings),
        "key_source": run.key_source,
        "exit_code": run.exit_code,
    }
