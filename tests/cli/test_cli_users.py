"""``radlens users add|passwd|disable|enable|list|set-role``: accounts and their roles from the
command line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from radlens.cli.main import app
from radlens.errors import AuthError
from radlens.store.accounts import list_users, login, session_user
from radlens.store.db import open_database

PASSWORD, NEW_PASSWORD = "reader-password-1", "another-password-2"

Users = Callable[..., Result]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder of its own; settings from the environment must not leak in."""
    for name in ("RADLENS_HOME", "RADLENS_DB", "RADLENS_CONFIG_FILE", "RADLENS_PRODUCTION"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.fixture
def users(home: Path) -> Users:
    """``users(*args, stdin="")``: ``radlens users ARGS --home HOME`` with standard input."""
    runner = CliRunner()

    def invoke(*args: str, stdin: str = "") -> Result:
        return runner.invoke(app, ["users", *args, "--home", str(home)], input=stdin)

    return invoke


def _accounts(home: Path) -> list[tuple[str, bool]]:
    db = open_database(f"sqlite:///{home / 'radlens.sqlite'}")
    try:
        return [(a.username, a.active) for a in list_users(db)]
    finally:
        db.close()


def _can_log_in(home: Path, name: str, password: str) -> bool:
    db = open_database(f"sqlite:///{home / 'radlens.sqlite'}")
    try:
        return session_user(db, login(db, name, password, hours=1)).username == name
    except AuthError:
        return False
    finally:
        db.close()


def _one_line_error(result: Result, *words: str) -> None:
    """A failed command: non-zero exit, one line on stderr naming the problem, no traceback."""
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error")
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_users_help_lists_the_subcommands() -> None:
    result = CliRunner().invoke(app, ["users", "--help"])
    assert result.exit_code == 0
    for name in ("add", "passwd", "disable", "enable", "list", "set-role"):
        assert name in result.output


def test_add_reads_the_password_from_stdin_and_makes_the_account(users: Users, home: Path) -> None:
    result = users("add", "ann", "--password-stdin", stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "account ann made (radiologist)"
    assert PASSWORD not in result.output
    assert _accounts(home) == [("ann", True)]
    assert _can_log_in(home, "ann", PASSWORD)


def test_add_takes_the_password_without_its_line_ending(users: Users, home: Path) -> None:
    assert users("add", "ann", "--password-stdin", stdin=PASSWORD + "\r\n").exit_code == 0
    assert _can_log_in(home, "ann", PASSWORD)
    assert not _can_log_in(home, "ann", PASSWORD + "\r")


def test_add_prompts_twice_without_echo(users: Users, home: Path) -> None:
    result = users("add", "ann", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert _can_log_in(home, "ann", PASSWORD)


def test_add_refuses_two_different_passwords_at_the_prompt(users: Users, home: Path) -> None:
    result = users("add", "ann", stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
    _one_line_error(result, "passwords differ")
    assert _accounts(home) == []


@pytest.mark.parametrize("password", ["", "short", "123456789"])
def test_add_refuses_a_password_under_10_characters(
    users: Users, home: Path, password: str
) -> None:
    result = users("add", "ann", "--password-stdin", stdin=password + "\n")
    _one_line_error(result, "at least 10 characters")
    assert _accounts(home) == []


def test_add_refuses_a_taken_name(users: Users, home: Path) -> None:
    assert users("add", "ann", "--password-stdin", stdin=PASSWORD).exit_code == 0
    result = users("add", "ann", "--password-stdin", stdin=NEW_PASSWORD)
    _one_line_error(result, "'ann'", "exists")
    assert _can_log_in(home, "ann", PASSWORD)  # the first account is untouched


@pytest.mark.parametrize("name", ["ann smith", ".ann", "../ann", "ann!"])
def test_add_refuses_an_invalid_name(users: Users, home: Path, name: str) -> None:
    result = users("add", name, "--password-stdin", stdin=PASSWORD)
    _one_line_error(result, "account name")
    assert _accounts(home) == []


def test_add_without_a_name_is_a_usage_error(users: Users) -> None:
    result = users("add", "--password-stdin", stdin=PASSWORD)
    assert result.exit_code == 2
    assert "Missing argument" in result.output and "Traceback" not in result.output


def test_passwd_changes_the_password(users: Users, home: Path) -> None:
    users("add", "ann", "--password-stdin", stdin=PASSWORD)
    result = users("passwd", "ann", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "password of ann changed"
    assert _can_log_in(home, "ann", NEW_PASSWORD)
    assert not _can_log_in(home, "ann", PASSWORD)


def test_passwd_ends_the_sessions_of_the_account(users: Users, home: Path) -> None:
    users("add", "ann", "--password-stdin", stdin=PASSWORD)
    db = open_database(f"sqlite:///{home / 'radlens.sqlite'}")
    try:
        token = login(db, "ann", PASSWORD, hours=1)
        assert users("passwd", "ann", "--password-stdin", stdin=NEW_PASSWORD).exit_code == 0
        with pytest.raises(AuthError):
            session_user(db, token)
    finally:
        db.close()


def test_passwd_of_an_unknown_account_fails(users: Users) -> None:
    result = users("passwd", "nobody", "--password-stdin", stdin=PASSWORD)
    _one_line_error(result, "no account", "'nobody'")


def test_passwd_refuses_a_short_password(users: Users, home: Path) -> None:
    users("add", "ann", "--password-stdin", stdin=PASSWORD)
    _one_line_error(users("passwd", "ann", "--password-stdin", stdin="short"), "at least 10")
    assert _can_log_in(home, "ann", PASSWORD)


def test_disable_and_enable_an_account(users: Users, home: Path) -> None:
    users("add", "ann", "--password-stdin", stdin=PASSWORD)
    db = open_database(f"sqlite:///{home / 'radlens.sqlite'}")
    try:
        token = login(db, "ann", PASSWORD, hours=1)
        result = users("disable", "ann")
        assert result.exit_code == 0 and result.stdout.strip() == "account ann disabled"
        with pytest.raises(AuthError):
            session_user(db, token)
    finally:
        db.close()
    assert _accounts(home) == [("ann", False)]
    assert not _can_log_in(home, "ann", PASSWORD)

    result = users("enable", "ann")
    assert result.exit_code == 0 and result.stdout.strip() == "account ann enabled"
    assert _accounts(home) == [("ann", True)]
    assert _can_log_in(home, "ann", PASSWORD)


@pytest.mark.parametrize("command", ["disable", "enable"])
def test_disable_or_enable_of_an_unknown_account_fails(users: Users, command: str) -> None:
    _one_line_error(users(command, "nobody"), "no account", "'nobody'")


def test_list_shows_each_account_and_whether_it_is_active(users: Users) -> None:
    assert users("list").stdout == ""
    for name in ("zoe", "ann"):
        users("add", name, "--password-stdin", stdin=PASSWORD)
    users("disable", "zoe")
    result = users("list")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "ann\tradiologist\tactive",
        "zoe\tradiologist\tdisabled",
    ]  # cut -f1 works
    assert PASSWORD not in result.output


def test_add_with_a_role_and_set_role_change_what_list_shows(users: Users, home: Path) -> None:
    result = users("add", "boss", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    assert result.exit_code == 0 and result.stdout.strip() == "account boss made (admin)"
    users("add", "tom", "--role", "technologist", "--password-stdin", stdin=PASSWORD)
    assert users("list").stdout.splitlines() == ["boss\tadmin\tactive", "tom\ttechnologist\tactive"]
    result = users("set-role", "tom", "researcher")
    assert result.exit_code == 0 and result.stdout.strip() == "account tom is now researcher"
    assert "tom\tresearcher\tactive" in users("list").stdout.splitlines()
    db = open_database(f"sqlite:///{home / 'radlens.sqlite'}")
    try:
        assert session_user(db, login(db, "tom", PASSWORD, hours=1)).role.value == "researcher"
    finally:
        db.close()


def test_an_unknown_role_is_a_one_line_error(users: Users, home: Path) -> None:
    _one_line_error(
        users("add", "ann", "--role", "superuser", "--password-stdin", stdin=PASSWORD),
        "unknown role",
    )
    users("add", "ann", "--password-stdin", stdin=PASSWORD)
    _one_line_error(users("set-role", "ann", "superuser"), "unknown role")
    _one_line_error(users("set-role", "nobody", "admin"), "no account")


def test_set_role_keeps_the_last_admin(users: Users) -> None:
    users("add", "boss", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    _one_line_error(users("set-role", "boss", "radiologist"), "last active admin")
    _one_line_error(users("disable", "boss"), "last active admin")


def test_commands_use_the_database_given_with_db(
    tmp_path: Path, home: Path, database_url: str
) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["users", "add", "ann", "--password-stdin", "--home", str(home), "--db", database_url],
        input=PASSWORD,
    )
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["users", "list", "--home", str(home), "--db", database_url])
    assert listed.stdout.split() == ["ann", "radiologist", "active"]
    assert not (home / "radlens.sqlite").exists()  # not the default database in home
    db = open_database(database_url)
    try:
        assert [(a.username, a.active) for a in list_users(db)] == [("ann", True)]
    finally:
        db.close()


def test_database_from_a_settings_file(tmp_path: Path, home: Path) -> None:
    other = tmp_path / "elsewhere.sqlite"
    config = tmp_path / "radlens.toml"
    config.write_text(f'db = "sqlite:///{other}"\n')
    result = CliRunner().invoke(
        app,
        ["users", "add", "ann", "--password-stdin", "--home", str(home), "--config", str(config)],
        input=PASSWORD,
    )
    assert result.exit_code == 0, result.output
    assert not (home / "radlens.sqlite").exists()
    db = open_database(f"sqlite:///{other}")
    try:
        assert [(a.username, a.active) for a in list_users(db)] == [("ann", True)]
    finally:
        db.close()


def test_a_missing_settings_file_is_a_one_line_error(tmp_path: Path, home: Path) -> None:
    result = CliRunner().invoke(
        app, ["users", "list", "--home", str(home), "--config", str(tmp_path / "nope.toml")]
    )
    _one_line_error(result, "not found")
