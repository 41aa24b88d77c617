"""``radlens keys status|rotate|rewrap|retire``: the keys of encryption at rest.

The key ring is the one ``radlens serve`` uses (``key_file``, ``RADLENS_ENCRYPTION_KEY``,
or ``home/keys/radlens.keys``; see docs/privacy.md). Run ``rotate``, ``rewrap`` and
``retire`` with the server stopped.

* ``status``: the keys (the primary marked), and how many database values and stored
  files each seals (``plaintext``: not sealed yet).
* ``rotate``: a new primary key, then everything sealed again under it.
* ``rewrap``: seal again under the primary what is not yet (resumes an interrupted
  rotation; seals data stored before encryption was turned on).
* ``retire``: drop the keys nothing is sealed under any more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from radlens.cli.render import out

if TYPE_CHECKING:
    from radlens.config import Settings
    from radlens.privacy.crypto import KeyRing
    from radlens.store.db import Database

keys_app = typer.Typer(help="The keys of encryption at rest.", no_args_is_help=True)

HomeOption = Annotated[Path | None, typer.Option(help="data folder (default ~/.radlens)")]
DbOption = Annotated[str | None, typer.Option(help="database URL (default: SQLite in home)")]
ConfigOption = Annotated[Path | None, typer.Option(help="TOML settings file")]
KeyFileOption = Annotated[Path | None, typer.Option(help="key ring file (default: settings)")]


def status_command(
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    key_file: KeyFileOption = None,
) -> None:
    """List the keys and what each one seals."""
    from radlens.store.keys import key_usage

    with _opened(home, db, config, key_file) as (database, settings, ring):
        usage = key_usage(database, settings.storage_dir)
    for kid in sorted(set(ring.keys) | set(usage.rows) | set(usage.files)):
        mark = "primary" if kid == ring.primary else "in ring" if kid in ring.keys else "MISSING"
        typer.echo(f"{kid}\t{mark}\t{usage.rows[kid]} values\t{usage.files[kid]} files")


def rotate_command(
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    key_file: KeyFileOption = None,
) -> None:
    """Add a new primary key and seal everything again under it."""
    from radlens.store.keys import rotate

    with _opened(home, db, config, key_file) as (database, settings, ring):
        rotated, done = rotate(database, settings.storage_dir, ring)
    out.print(
        f"new primary key {rotated.primary}; sealed again {done.rows} values and "
        f"{done.files} files; old keys stay until `radlens keys retire`"
    )


def rewrap_command(
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    key_file: KeyFileOption = None,
) -> None:
    """Seal under the primary key whatever is not yet (idempotent, resumable)."""
    from radlens.store.keys import rewrap

    with _opened(home, db, config, key_file) as (database, settings, ring):
        done = rewrap(database, settings.storage_dir, ring)
    out.print(f"sealed under {ring.primary}: {done.rows} values and {done.files} files")


def retire_command(
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    key_file: KeyFileOption = None,
) -> None:
    """Remove the keys that nothing is sealed under any more."""
    from radlens.store.keys import retire

    with _opened(home, db, config, key_file) as (database, settings, ring):
        kept, retired = retire(database, settings.storage_dir, ring)
    out.print(f"retired {', '.join(retired) or 'no key'}; the ring holds {len(kept.keys)}")


@contextmanager
def _opened(
    home: Path | None, db: str | None, config: Path | None, key_file: Path | None
) -> Iterator[tuple[Database, Settings, KeyRing]]:
    from radlens.config import load_settings
    from radlens.server.app import encryption_keys
    from radlens.store.db import open_database

    settings = load_settings(home=home, db=db, config_file=config, key_file=key_file)
    ring = encryption_keys(settings)
    database = open_database(settings.database_url, keys=ring)
    try:
        yield database, settings, ring
    finally:
        database.close()
