"""``radlens users``: accounts of the reading room (``radlens serve``) and their roles
(admin, radiologist, technologist, researcher; see docs/privacy.md).

Passwords are read from a prompt (not echoed) or from standard input with
``--password-stdin``; never from a command-line argument, which other users of the
machine can see in the process list.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from radlens.cli.render import out
from radlens.errors import ConfigError

if TYPE_CHECKING:
    from radlens.store.db import Database

users_app = typer.Typer(help="Accounts of the reading room.", no_args_is_help=True)

HomeOption = Annotated[Path | None, typer.Option(help="data folder (default ~/.radlens)")]
DbOption = Annotated[str | None, typer.Option(help="database URL (default: SQLite in home)")]
ConfigOption = Annotated[Path | None, typer.Option(help="TOML settings file")]
RoleOption = Annotated[str, typer.Option(help="admin, radiologist, technologist or researcher")]
StdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from standard input")
]


def add_command(
    name: str,
    role: RoleOption = "radiologist",
    password_stdin: StdinOption = False,
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Make an account with a role (radiologist unless --role says otherwise)."""
    from radlens.privacy.roles import Role
    from radlens.store.accounts import add_user

    if role not in {r.value for r in Role}:
        raise ConfigError(f"unknown role {role!r}; choose one of {', '.join(Role)}")
    password = _password(password_stdin)
    with _database(home, db, config) as database:
        add_user(database, name, password, role)
    out.print(f"account {name} made ({role})", highlight=False)


def set_role_command(
    name: str,
    role: Annotated[str, typer.Argument(help="admin, radiologist, technologist or researcher")],
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Give an account another role (ends its sessions; the last admin keeps the role)."""
    from radlens.store.accounts import set_role

    with _database(home, db, config) as database:
        set_role(database, name, role)
    out.print(f"account {name} is now {role}", highlight=False)


def passwd_command(
    name: str,
    password_stdin: StdinOption = False,
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Change a password (ends the account's sessions)."""
    from radlens.store.accounts import set_password

    password = _password(password_stdin)
    with _database(home, db, config) as database:
        set_password(database, name, password)
    out.print(f"password of {name} changed", highlight=False)


def disable_command(
    name: str, home: HomeOption = None, db: DbOption = None, config: ConfigOption = None
) -> None:
    """Disable an account (ends its sessions; its decisions are kept)."""
    from radlens.store.accounts import set_active

    with _database(home, db, config) as database:
        set_active(database, name, active=False)
    out.print(f"account {name} disabled", highlight=False)


def enable_command(
    name: str, home: HomeOption = None, db: DbOption = None, config: ConfigOption = None
) -> None:
    """Enable a disabled account."""
    from radlens.store.accounts import set_active

    with _database(home, db, config) as database:
        set_active(database, name, active=True)
    out.print(f"account {name} enabled", highlight=False)


def list_command(home: HomeOption = None, db: DbOption = None, config: ConfigOption = None) -> None:
    """List the accounts: name, role, state (and "oidc" for accounts an identity
    provider made), tab-separated."""
    from radlens.store.accounts import list_users

    with _database(home, db, config) as database:
        for account in list_users(database):
            fields = [account.username, account.role.value]
            fields.append("active" if account.active else "disabled")
            if account.sso:
                fields.append("oidc")
            typer.echo("\t".join(fields))


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = typer.prompt("password", hide_input=True)
    if typer.prompt("again", hide_input=True) != first:
        raise ConfigError("the passwords differ")
    return str(first)


@contextmanager
def _database(home: Path | None, db: str | None, config: Path | None) -> Iterator[Database]:
    """The settings' database, opened (and migrated) for one command."""
    from radlens.config import load_settings
    from radlens.store.db import open_database

    database = open_database(load_settings(home=home, db=db, config_file=config).database_url)
    try:
        yield database
    finally:
        database.close()
