"""Key rotation for what the store keeps encrypted (``radlens keys``).

* :func:`rewrap` seals every encrypted database value and every stored file that is not
  under the primary key yet (written under an older key, or before encryption): open,
  seal under the primary, write back (a file atomically, rows in batches of
  :data:`BATCH_ROWS`, each batch committed). What is done stays done, so an interrupted
  run is resumed by running it again.
* :func:`key_usage` counts values and files per key id (``"plaintext"`` for those not
  sealed), which :func:`retire` checks before it drops a key from the ring.
* :func:`seal_plaintext_rows` is the part of :func:`rewrap` that ``radlens serve`` runs at
  start: rows written before migration 0007 get sealed.

Run these with the server stopped: a server keeps sealing new data under the primary key
it started with, and an analysis finishing during a rewrap may rewrite a heatmap.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Column, MetaData, Table, Text, select, update
from sqlalchemy.sql import ColumnElement

from radlens.errors import ConfigError
from radlens.privacy.crypto import (
    HEADER_BYTES,
    VALUE_PREFIX,
    KeyRing,
    file_key_id,
    is_sealed_file,
    is_sealed_value,
    open_value,
    seal_value,
    write_key_file,
)
from radlens.store.db import Database
from radlens.store.drafts import PATIENT_KEY_FILE
from radlens.store.files import TEMP_SUFFIX, read_stored, write_stored
from radlens.store.models import Base

log = logging.getLogger(__name__)

BATCH_ROWS = 200
PLAINTEXT = "plaintext"


@dataclass(frozen=True)
class EncryptedColumn:
    """A column of type ``EncryptedText``/``EncryptedJSON``, read raw (no decryption)."""

    table: str
    column: str
    key: str  # the primary key column, to write a row back

    @property
    def context(self) -> str:
        return f"{self.table}.{self.column}"


ENCRYPTED_COLUMNS = (
    EncryptedColumn("studies", "result", "study_uid"),
    EncryptedColumn("studies", "report_text", "study_uid"),
    EncryptedColumn("studies", "notes_text", "study_uid"),
    EncryptedColumn("finding_reviews", "note", "id"),
)
"""Every encrypted column (``tests/store/test_keys.py`` checks it against the models)."""


@dataclass
class Usage:
    """How many values and files each key id seals (``plaintext``: not sealed)."""

    rows: Counter[str] = field(default_factory=Counter)
    files: Counter[str] = field(default_factory=Counter)

    def uses(self, kid: str) -> int:
        return self.rows[kid] + self.files[kid]


@dataclass(frozen=True)
class Rewrapped:
    rows: int
    files: int


def rewrap(db: Database, storage_dir: Path, ring: KeyRing) -> Rewrapped:
    """Seal under ``ring.primary`` every value and stored file that is not yet."""
    rows = sum(_rewrap_column(db, column, ring, only_plaintext=False) for column in _columns())
    files = 0
    for path in stored_files(storage_dir):
        with path.open("rb") as fp:
            head = fp.read(HEADER_BYTES)
        if is_sealed_file(head) and file_key_id(head) == ring.primary:
            continue
        write_stored(storage_dir, path, read_stored(storage_dir, path, ring), ring)
        files += 1
    return Rewrapped(rows, files)


def seal_plaintext_rows(db: Database, ring: KeyRing) -> int:
    """Seal the encrypted columns' values that are plaintext; return how many."""
    return sum(_rewrap_column(db, column, ring, only_plaintext=True) for column in _columns())


def key_usage(db: Database, storage_dir: Path) -> Usage:
    """Count the sealed values and files per key id."""
    usage = Usage()
    with db.engine.connect() as connection:
        for column in _columns():
            value = _raw(column)
            for (text,) in connection.execute(select(value).where(_filled(value))):
                usage.rows[_value_kid(text)] += 1
    for path in stored_files(storage_dir):
        with path.open("rb") as fp:
            head = fp.read(HEADER_BYTES)
        usage.files[file_key_id(head) if is_sealed_file(head) else PLAINTEXT] += 1
    return usage


def rotate(db: Database, storage_dir: Path, ring: KeyRing) -> tuple[KeyRing, Rewrapped]:
    """Add a new primary key to the ring's file, then :func:`rewrap` everything under it.

    Raises:
        ConfigError: the ring does not come from a key file (it cannot be written).
    """
    if ring.source is None:
        raise ConfigError(
            "the key ring comes from RADLENS_ENCRYPTION_KEY; rotate with a key file "
            "(key_file), see docs/privacy.md"
        )
    rotated = ring.with_new_primary()
    write_key_file(ring.source, rotated)  # first: nothing is sealed under a key not kept
    log.info("new primary key %s", rotated.primary)
    return rotated, rewrap(db, storage_dir, rotated)


def retire(db: Database, storage_dir: Path, ring: KeyRing) -> tuple[KeyRing, list[str]]:
    """Drop from the ring's file every key that seals nothing any more.

    Raises:
        ConfigError: the ring has no file, or a value or file is still plaintext or
            under a key that is not the primary (run ``radlens keys rewrap`` first).
    """
    if ring.source is None:
        raise ConfigError("the key ring comes from RADLENS_ENCRYPTION_KEY; edit it there")
    usage = key_usage(db, storage_dir)
    pending = {kid for kid in [*usage.rows, *usage.files] if kid != ring.primary}
    if pending:
        raise ConfigError(
            f"data is still {', '.join(sorted(pending))}: run `radlens keys rewrap` first"
        )
    retired = sorted(set(ring.keys) - {ring.primary})
    kept = ring.without(set(retired))
    write_key_file(ring.source, kept)
    return kept, retired


def stored_files(storage_dir: Path) -> Iterator[Path]:
    """Every file the store seals: instances and results (not the patient key secret,
    not temporary files of a write under way)."""
    if not storage_dir.is_dir():
        return
    for path in sorted(storage_dir.rglob("*")):
        relative = path.relative_to(storage_dir)
        if not path.is_file() or path.is_symlink():
            continue
        if relative.as_posix() == PATIENT_KEY_FILE or path.name.startswith("."):
            continue
        if path.name.endswith(TEMP_SUFFIX):
            continue
        yield path


def _columns() -> tuple[EncryptedColumn, ...]:
    return ENCRYPTED_COLUMNS


def _table(column: EncryptedColumn) -> Table:
    # The value as raw text, so it is read and written as stored (no TypeDecorator).
    key_type = Base.metadata.tables[column.table].c[column.key].type
    return Table(
        column.table,
        MetaData(),
        Column(column.key, key_type, primary_key=True),
        Column(column.column, Text),
    )


def _raw(column: EncryptedColumn) -> Column[str]:
    return _table(column).c[column.column]


def _filled(value: Column[str]) -> ColumnElement[bool]:
    return value.is_not(None) & (value != "")


def _value_kid(text: str) -> str:
    return text[len(VALUE_PREFIX) :].split(":", 1)[0] if is_sealed_value(text) else PLAINTEXT


def _rewrap_column(
    db: Database, column: EncryptedColumn, ring: KeyRing, *, only_plaintext: bool
) -> int:
    table = _table(column)
    key, value = table.c[column.key], table.c[column.column]
    pending = (
        value.not_like(f"{VALUE_PREFIX}%")
        if only_plaintext
        else value.not_like(f"{VALUE_PREFIX}{ring.primary}:%")
    )
    done = 0
    while True:
        with db.engine.begin() as connection:
            batch = connection.execute(
                select(key, value).where(_filled(value), pending).order_by(key).limit(BATCH_ROWS)
            ).all()
            for row_key, text in batch:
                plain = (
                    open_value(ring, text, column.context)
                    if is_sealed_value(text)
                    else text.encode("utf-8")
                )
                sealed = seal_value(ring, plain, column.context)
                connection.execute(update(table).where(key == row_key).values({value: sealed}))
        done += len(batch)
        if len(batch) < BATCH_ROWS:
            return done


def model_columns() -> set[tuple[str, str]]:
    """(table, column) of every column of an encrypting type in the models."""
    from radlens.store.encrypted import EncryptedJSON, EncryptedText

    found = set()
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, EncryptedText | EncryptedJSON):
                found.add((table.name, column.name))
    return found
