"""Column types that encrypt: ``EncryptedText`` and ``EncryptedJSON``.

Application code reads and writes plain ``str`` and ``dict`` values; what reaches the
database is ``privacy.crypto.seal_value`` text (``rl1:<key id>:<base64>``, AES-256-GCM,
bound to the table and column). The key ring is the engine's: :func:`attach_keys` puts
it on the engine's dialect (one per engine, so two databases with two rings never mix),
which is where a ``TypeDecorator`` is handed it.

Without a ring (tests, tools that never touch these columns) values are written as they
are. A value without the ``rl1:`` prefix is read as it is: it was written before
migration 0007 or without a key, and ``radlens keys rewrap`` seals it. Empty text stays
empty (it says nothing, and ``report_text.strip()`` tests keep working).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import TypeCompiler
from sqlalchemy.types import TypeDecorator

from radlens.privacy.crypto import DecryptionError, KeyRing, is_sealed_value, open_value, seal_value

_ATTRIBUTE = "radlens_keys"


def attach_keys(engine: Engine, keys: KeyRing | None) -> None:
    """Let the encrypted columns of ``engine`` seal and open values with ``keys``."""
    setattr(engine.dialect, _ATTRIBUTE, keys)


def dialect_keys(dialect: Dialect) -> KeyRing | None:
    keys = getattr(dialect, _ATTRIBUTE, None)
    return keys if isinstance(keys, KeyRing) else None


class EncryptedText(TypeDecorator[str]):
    """Text sealed under the engine's key ring, bound to ``context`` (``table.column``)."""

    impl = Text
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        keys = dialect_keys(dialect)
        if value is None or value == "" or keys is None:
            return value
        return seal_value(keys, value.encode("utf-8"), self.context)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or not is_sealed_value(value):
            return value
        return _open(value, dialect, self.context).decode("utf-8")


class _SealedText(Text):
    """Text, declared ``JSON`` on SQLite: the column's type before migration 0007, kept
    there because SQLite cannot change a type without rebuilding the table (which its
    foreign keys forbid inside a migration); a JSON column keeps text as text."""


@compiles(_SealedText, "sqlite")
def _sqlite_declared_json(type_: _SealedText, compiler: TypeCompiler, **kw: Any) -> str:
    return "JSON"


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document sealed under the engine's key ring (stored as text)."""

    impl = _SealedText
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        keys = dialect_keys(dialect)
        return text if keys is None else seal_value(keys, text.encode("utf-8"), self.context)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            return value  # a JSON column a driver already decoded (before migration 0007)
        if is_sealed_value(value):
            value = _open(value, dialect, self.context).decode("utf-8")
        return json.loads(value)


def _open(value: str, dialect: Dialect, context: str) -> bytes:
    keys = dialect_keys(dialect)
    if keys is None:
        raise DecryptionError(None, f"{context} is encrypted and no key is configured")
    return open_value(keys, value, context)
