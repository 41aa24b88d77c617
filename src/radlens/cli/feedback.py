"""``radlens feedback export MODEL -o DIR``: the adjudicated reader feedback on one model as
de-identified images + ``DIR/cases.csv``, the input of ``radlens learn`` (docs/feedback.md).

Reads the database and storage of ``radlens serve`` (the same settings and key ring);
labels come from the site's adjudication rule (``Settings.adjudication_rule``, or
``--rule``). Each study exported leaves a ``deidentified-exported`` audit record.
"""

from __future__ import annotations

import getpass
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from radlens.cli.render import out

feedback_app = typer.Typer(help="Reader feedback: export it for learning.", no_args_is_help=True)

HomeOption = Annotated[Path | None, typer.Option(help="data folder (default ~/.radlens)")]
DbOption = Annotated[str | None, typer.Option(help="database URL (default: SQLite in home)")]
ConfigOption = Annotated[Path | None, typer.Option(help="TOML settings file")]
KeyFileOption = Annotated[Path | None, typer.Option(help="key ring file (default: settings)")]


def export_command(
    model: Annotated[str, typer.Argument(help="the model's name (every version's feedback)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder to write")],
    rule: Annotated[
        str | None, typer.Option(help="majority or senior (default: the settings' rule)")
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    key_file: KeyFileOption = None,
) -> None:
    """Write de-identified images and cases.csv of the adjudicated feedback on MODEL."""
    from radlens.config import load_settings
    from radlens.errors import ConfigError
    from radlens.feedback.cards import card_named, known_cards
    from radlens.feedback.cases import CASES_FILE, export_cases
    from radlens.privacy.audit import audit_trail
    from radlens.server.app import encryption_keys
    from radlens.store.db import open_database

    settings = load_settings(home=home, db=db, config_file=config, key_file=key_file)
    chosen = rule or settings.adjudication_rule
    if chosen not in ("majority", "senior"):
        raise ConfigError(f"--rule must be majority or senior, got {chosen!r}")
    card = card_named(model, known_cards(settings.card_folders))
    database = open_database(settings.database_url, keys=encryption_keys(settings))
    try:
        trail = audit_trail(
            database,
            settings.audit_site_id,
            settings.audit_syslog,
            settings.audit_syslog_protocol,
        )
        result = export_cases(
            database,
            settings.storage_dir,
            card,
            output,
            chosen,
            settings.senior_readers,
            audit=trail,
            user=getpass.getuser(),
        )
    finally:
        database.close()
    out.print(
        f"{len(result.cases)} cases ({result.n_images} de-identified images) of {card.name} "
        f"written to {output / CASES_FILE}; labels: {', '.join(card.labels)} (by index)",
        highlight=False,
        soft_wrap=True,
    )
    for reason, n in Counter(result.skipped.values()).most_common():
        out.print(f"  skipped {n}: {reason}", highlight=False, soft_wrap=True)
