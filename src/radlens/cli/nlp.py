"""``radlens nlp``: finding mentions in clinical text, and their measurement on curated reports.

* ``radlens nlp extract TEXT`` / ``--file PATH``: the mentions of a note, a report or an
  HL7 v2 ORM/ORU message, with negation, uncertainty, history and the reason for the exam.
* ``radlens nlp evaluate FILE.csv``: per-finding precision, recall, F1 and the macro-F1
  against the curated labels of a reports CSV with the IU X-ray columns (``docs/nlp.md``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from radlens.cli.analyze import Json
from radlens.cli.render import out
from radlens.errors import InputError
from radlens.nlp.evaluate import evaluate_reports, read_reports, split_dev_check
from radlens.nlp.mentions import extract

nlp_app = typer.Typer(
    help="Clinical notes and prior reports: finding mentions, negation, uncertainty.",
    no_args_is_help=True,
)

PARTS = ("all", "dev", "check")


def extract_command(
    text: Annotated[str | None, typer.Argument(help="the text (or use --file)")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="read the text from a file")
    ] = None,
    as_json: Json = False,
) -> None:
    """Print the finding mentions of a note, a report or an HL7 v2 message."""
    if (text is None) == (file is None):
        raise InputError(None, "give the text or --file PATH, not both and not neither")
    if file is not None:
        if not file.is_file():
            raise InputError(file, "no such file")
        text = file.read_text(encoding="utf-8", errors="replace")
    assert text is not None
    extraction = extract(text)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "reasons": list(extraction.reasons),
                    "mentions": [
                        {
                            "label": m.label,
                            "assertion": m.assertion.value,
                            "text": m.text,
                            "start": m.start,
                            "end": m.end,
                            "section": m.section.value,
                            "negated": m.negated,
                            "uncertain": m.uncertain,
                            "historical": m.historical,
                            "reason": m.reason,
                            "triggers": list(m.triggers),
                        }
                        for m in extraction.mentions
                    ],
                }
            )
        )
        return
    table = Table(title="finding mentions")
    for col in ("label", "assertion", "text", "section", "because of"):
        table.add_column(col, overflow="fold")
    for m in extraction.mentions:
        table.add_row(
            m.label,
            m.assertion.value,
            escape(m.text),
            m.section.value,
            escape(", ".join(m.triggers)),
        )
    out.print(table)
    for reason in extraction.reasons:
        out.print(f"reason for exam: {escape(reason)}")


def evaluate_command(
    file: Annotated[Path, typer.Argument(help="reports CSV with the IU X-ray columns")],
    part: Annotated[
        str, typer.Option(help="all rows, or the seeded dev / check split (30% check)")
    ] = "all",
    as_json: Json = False,
) -> None:
    """Precision, recall, F1 per finding and macro-F1 against the curated labels."""
    if part not in PARTS:
        raise InputError(None, f"--part must be one of {', '.join(PARTS)}, got {part!r}")
    reports = read_reports(file)
    if part != "all":
        dev, check = split_dev_check(reports)
        reports = dev if part == "dev" else check
    result = evaluate_reports(reports)
    if as_json:
        out.print_json(json.dumps({"file": str(file), "part": part, **result.as_dict()}))
        return
    table = Table(
        title=escape(
            f"{file.name} [{part}]: {result.n_reports} reports "
            f"({result.n_excluded} not indexed, left out)"
        )
    )
    for col in ("finding", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "finding" else "right")
    for label, score in result.scores.items():
        mark = "" if label in result.macro_labels else " *"
        table.add_row(
            f"{label}{mark}",
            f"{score.precision:.3f}",
            f"{score.recall:.3f}",
            f"{score.f1:.3f}",
            str(score.support),
        )
    out.print(table)
    out.print(
        f"macro-F1 over {len(result.macro_labels)} findings: {result.macro_f1:.4f} "
        "(* not in the macro average)"
    )
