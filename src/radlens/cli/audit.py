"""``radlens audit verify|list``: check and read the audit trail (``privacy.audit``).

``verify`` recomputes the hash chain: exit 0 when intact, 1 with one line naming the first
broken record. ``list`` prints records oldest first (tab-separated, or one JSON object a line
with ``--json``); ``--patient`` takes a Patient ID and looks up its keyed hash, so the ID
itself is never stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from radlens.cli.render import out

if TYPE_CHECKING:
    from radlens.config import Settings
    from radlens.store.db import Database

audit_app = typer.Typer(help="The audit trail of patient-data access.", no_args_is_help=True)

HomeOption = Annotated[Path | None, typer.Option(help="data folder (default ~/.radlens)")]
DbOption = Annotated[str | None, typer.Option(help="database URL (default: SQLite in home)")]
ConfigOption = Annotated[Path | None, typer.Option(help="TOML settings file")]
EXIT_TAMPERED = 1


def verify_command(
    home: HomeOption = None, db: DbOption = None, config: ConfigOption = None
) -> None:
    """Recompute the hash chain; exit 1 naming the first broken record."""
    from radlens.privacy.audit import verify

    with _database(home, db, config) as (database, _):
        result = verify(database)
    if not result.ok:
        typer.echo(f"audit trail tampered: {result.reason}", err=True)
        raise typer.Exit(EXIT_TAMPERED)
    out.print(f"audit trail intact: {result.n_records} records")


def list_command(
    study: Annotated[str | None, typer.Option(help="Study Instance UID")] = None,
    user: Annotated[str | None, typer.Option(help="user id (login name)")] = None,
    patient: Annotated[str | None, typer.Option(help="Patient ID (looked up by its key)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON record a line")] = False,
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """List audit records, oldest first."""
    from radlens.privacy.audit import list_records
    from radlens.store.drafts import patient_key, patient_secret

    with _database(home, db, config) as (database, settings):
        key = patient_key(patient_secret(settings.storage_dir), patient) if patient else None
        if patient and key is None:
            return
        records = list_records(database, study_uid=study, user_id=user, patient_key=key)
    for r in records:
        if as_json:
            typer.echo(json.dumps({"number": r.number, "sha256": r.sha256, "record": r.record}))
        else:
            ident = r.record["EventIdentification"]
            fields = [r.number, ident["EventDateTime"], r.event, ident["EventID"]["csd-code"]]
            fields += [ident["EventActionCode"], r.outcome, r.user_id, r.study_uid or "-"]
            typer.echo("\t".join(str(f) for f in fields))  # tab-separated


@contextmanager
def _database(
    home: Path | None, db: str | None, config: Path | None
) -> Iterator[tuple[Database, Settings]]:
    from radlens.config import load_settings
    from radlens.store.db import open_database

    settings = load_settings(home=home, db=db, config_file=config)
    database = open_database(settings.database_url)
    try:
        yield database, settings
    finally:
        database.close()
