"""Terminal rendering shared by subcommands (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from radlens.analyze import AnalyzeRun
from radlens.report.compose import in_words

out = Console(highlight=False)


def summary_table(run: AnalyzeRun) -> Table:
    """One row per series: what ran on it and what it found, or why nothing ran."""
    table = Table(title="radlens analysis (AI draft - requires physician review)")
    for col in ("study", "series", "modality", "body part", "model", "result"):
        table.add_column(col, overflow="fold")
    for number, output in enumerate(run.outputs, start=1):
        for s in output.result.series:
            result = (
                "; ".join(
                    f"{f.label} {f.probability:.0%} ({in_words(f.probability)}"
                    f"{', positive' if f.positive else ''}){' LOW TRUST' if f.ood_flag else ''}"
                    for f in s.findings
                )
                or s.skipped_reason
            )
            table.add_row(
                str(number),
                s.series_instance_uid[-12:],
                s.modality,
                s.body_part or "-",
                ", ".join(s.models) or "-",
                result,
            )
    return table


def print_run(run: AnalyzeRun, quiet: bool) -> None:
    if not quiet:
        out.print(summary_table(run))
        for w in run.warnings:
            out.print(f"[yellow]warning[/yellow] {w}", soft_wrap=True)
    for r in run.rejected:
        out.print(f"[red]rejected[/red] {r.location}: {r.kind}: {r.reason}", soft_wrap=True)
    if not quiet:
        out.print(
            f"{len(run.outputs)} studies analyzed, {len(run.rejected)} inputs rejected; "
            f"outputs in {run.outputs[0].folder.parent if run.outputs else '-'}"
        )
