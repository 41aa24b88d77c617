"""Encryption at rest: AES-256-GCM (``cryptography``'s AESGCM) under a rotatable key ring.

Two envelopes, both carrying a version, the key id and their own randomness, so a key
ring with several keys reads everything written under any of them (rotation):

* **Values** (database fields, :func:`seal_value` / :func:`open_value`): text
  ``rl1:<key id>:<base64url(nonce 12 bytes | ciphertext | tag 16 bytes)>``, a random
  96-bit nonce per value. The key id stays readable so a query finds what a key still
  protects (``LIKE 'rl1:<id>:%'``).
* **Files** (stored DICOM instances, heatmaps, signed SRs; :func:`seal_file` /
  :func:`read_sealed`): the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár,
  CRYPTO 2015) over AES-GCM, as Tink's AES-GCM-HKDF streaming AEAD does it. A 48-byte
  header (magic ``RLENC01\\n``, key id, segment size, 32-byte random salt) is followed
  by segments of ``segment_bytes`` plaintext, each sealed with nonce
  ``0^7 | segment number (4 bytes) | last flag (1 byte)`` under a file key derived by
  HKDF-SHA256 from the master key and the salt, so no two files share a key and no
  nonce repeats within one. Cutting a file short, extending it, reordering, or editing a
  byte of the header or of any segment fails authentication. Memory stays one segment.

Every ciphertext is bound to where it belongs by associated data (``context``): a
stored file to its path under the storage folder (the sha256 of its SOP Instance UID), a
database value to its table and column; a ciphertext moved elsewhere does not open.

Keys: a key ring file (JSON, mode 0600) ``{"version": 1, "primary": id, "keys": {id:
base64url(32 bytes)}}``, or a key (or a whole ring) in an environment variable. A key's
id is derived from the key itself, so one key always has the same id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from radlens.errors import ConfigError, InputError

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits, the GCM nonce size (NIST SP 800-38D 8.2)
TAG_BYTES = 16
KEY_ID_BYTES = 4
VALUE_PREFIX = "rl1:"
FILE_MAGIC = b"RLENC01\n"
SALT_BYTES = 32
_HEADER = struct.Struct(f">{len(FILE_MAGIC)}s{KEY_ID_BYTES}sI{SALT_BYTES}s")
HEADER_BYTES = _HEADER.size  # 48
DEFAULT_SEGMENT_BYTES = 1024 * 1024
MIN_SEGMENT_BYTES = 64
_MAX_SEGMENTS = 2**32  # the segment number has 4 bytes
_FILE_INFO = b"radlens file key v1"


class DecryptionError(InputError):
    """A ciphertext that does not open: altered, cut short, moved, or under an unknown key."""


def key_id(key: bytes) -> str:
    """The id of a key: 8 hex characters of a hash of it (not enough to guess the key).

    Example:
        >>> key_id(bytes(32))
        '2b5c4ab5'
    """
    return hashlib.sha256(b"radlens key id\x00" + key).hexdigest()[: 2 * KEY_ID_BYTES]


@dataclass(frozen=True)
class KeyRing:
    """Encryption keys by id; new data is sealed under ``primary``.

    Attributes:
        keys: key id -> 32-byte key.
        primary: the id of the key that seals new data.
        source: the key file the ring came from (None: environment or memory); a key id
            not in the ring is looked up there again, so a rotation made by another
            process is picked up.
    """

    keys: dict[str, bytes] = field(repr=False)
    primary: str
    source: Path | None = None

    def __post_init__(self) -> None:
        if self.primary not in self.keys:
            raise ConfigError("key ring: its primary key is not in it")
        for kid, key in self.keys.items():
            if len(key) != KEY_BYTES or key_id(key) != kid:
                raise ConfigError(f"key ring: key {kid} is not a {KEY_BYTES}-byte key of that id")

    @classmethod
    def generate(cls, source: Path | None = None) -> KeyRing:
        """A ring with one new random key."""
        key = os.urandom(KEY_BYTES)
        return cls({key_id(key): key}, key_id(key), source)

    def with_new_primary(self) -> KeyRing:
        """This ring plus a new random key, which becomes the primary."""
        key = os.urandom(KEY_BYTES)
        return replace(self, keys={**self.keys, key_id(key): key}, primary=key_id(key))

    def without(self, retired: set[str]) -> KeyRing:
        """This ring without the ``retired`` keys (never the primary)."""
        if self.primary in retired:
            raise ConfigError("the primary key cannot be retired; rotate first")
        return replace(self, keys={k: v for k, v in self.keys.items() if k not in retired})

    def key(self, kid: str) -> bytes:
        """The key of id ``kid``.

        Raises:
            DecryptionError: no such key in the ring (nor in its file, read again).
        """
        found = self.keys.get(kid)
        if found is None and self.source is not None:
            try:
                found = read_key_file(self.source).keys.get(kid)
            except (ConfigError, OSError):
                found = None
            if found is not None:
                self.keys[kid] = found  # the dict is ours; later lookups need no read
        if found is None:
            raise DecryptionError(None, f"sealed under key {kid}, which is not in the key ring")
        return found

    def to_json(self) -> str:
        keys = {k: base64.urlsafe_b64encode(v).decode("ascii") for k, v in self.keys.items()}
        return json.dumps({"version": 1, "primary": self.primary, "keys": keys}, indent=2)


def parse_key_ring(text: str, source: Path | None = None) -> KeyRing:
    """A key ring from its JSON text, or from one key (64 hex digits or base64 of 32 bytes).

    Raises:
        ConfigError: neither.

    Example:
        >>> parse_key_ring("00" * 32).primary
        '2b5c4ab5'
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
            keys = {
                str(kid): base64.urlsafe_b64decode(str(value))
                for kid, value in dict(document["keys"]).items()
            }
            if document.get("version") != 1:
                raise ConfigError("key ring: unknown version")
            return KeyRing(keys, str(document["primary"]), source)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ConfigError(f"key ring is not valid: {type(exc).__name__}") from exc
    key = _one_key(stripped)
    return KeyRing({key_id(key): key}, key_id(key), source)


def _one_key(text: str) -> bytes:
    try:
        if len(text) == 2 * KEY_BYTES:
            return bytes.fromhex(text)
        key = base64.b64decode(text.replace("-", "+").replace("_", "/") + "==", validate=False)
    except ValueError as exc:
        raise ConfigError("encryption key is neither hex nor base64") from exc
    if len(key) != KEY_BYTES:
        raise ConfigError(f"encryption key must be {KEY_BYTES} bytes (openssl rand -hex 32)")
    return key


def read_key_file(path: Path) -> KeyRing:
    """The key ring kept in ``path``.

    Raises:
        ConfigError: missing, unreadable, readable by others than its owner, or invalid.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the key file: {exc.strerror or exc}") from exc
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(f"{path}: key file is readable by others; chmod 600 it")
    return parse_key_ring(text, path)


def write_key_file(path: Path, ring: KeyRing) -> None:
    """Write ``ring`` to ``path`` (mode 0600) durably and atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".keys-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fp:
            fp.write(ring.to_json() + "\n")
            fp.flush()
            os.fsync(fp.fileno())
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def load_key_ring(
    key_file: Path | None, env_key: str, default_file: Path | None, *, create: bool
) -> KeyRing:
    """The key ring from the configuration, in order: ``key_file``, ``env_key`` (a key or a
    ring), ``default_file``; made there (a new random key) when ``create`` and it is missing.

    Raises:
        ConfigError: nothing configured and ``create`` is off (production), or a key
            that cannot be used.
    """
    if key_file is not None:
        return read_key_file(key_file.expanduser())
    if env_key.strip():
        return parse_key_ring(env_key)
    if default_file is None:
        raise ConfigError("no encryption key configured")
    default_file = default_file.expanduser()
    if default_file.exists():
        return read_key_file(default_file)
    if not create:
        raise ConfigError(
            "no encryption key configured: set key_file (RADLENS_KEY_FILE) or "
            "RADLENS_ENCRYPTION_KEY; production mode never makes one for you"
        )
    ring = KeyRing.generate(default_file)
    try:
        # O_EXCL: two processes starting at once must not make two different keys.
        default_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(default_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_key_file(default_file)
    os.close(fd)
    write_key_file(default_file, ring)
    return ring


# --- values ------------------------------------------------------------------------------


def seal_value(ring: KeyRing, plaintext: bytes, context: str) -> str:
    """Encrypt one value under the primary key, bound to ``context``.

    Example:
        >>> ring = KeyRing.generate()
        >>> open_value(ring, seal_value(ring, b"Doe^Jane", "studies.notes"), "studies.notes")
        b'Doe^Jane'
    """
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(ring.key(ring.primary)).encrypt(
        nonce, plaintext, _value_ad(ring.primary, context)
    )
    body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
    return f"{VALUE_PREFIX}{ring.primary}:{body}"


def is_sealed_value(text: str) -> bool:
    return text.startswith(VALUE_PREFIX)


def value_key_id(text: str) -> str:
    """The id of the key a sealed value is under."""
    return text[len(VALUE_PREFIX) : len(VALUE_PREFIX) + 2 * KEY_ID_BYTES]


def open_value(ring: KeyRing, text: str, context: str) -> bytes:
    """Decrypt a value of :func:`seal_value`.

    Raises:
        DecryptionError: not such a value, altered, under another context, or an
            unknown key.
    """
    kid = value_key_id(text)
    head = f"{VALUE_PREFIX}{kid}:"
    if not text.startswith(head):
        raise DecryptionError(None, f"{context}: not an encrypted value")
    try:
        raw = base64.urlsafe_b64decode(text[len(head) :])
    except (ValueError, binascii.Error) as exc:
        raise DecryptionError(None, f"{context}: damaged encrypted value") from exc
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError(None, f"{context}: damaged encrypted value")
    try:
        return AESGCM(ring.key(kid)).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], _value_ad(kid, context)
        )
    except InvalidTag:
        raise DecryptionError(
            None, f"{context}: encrypted value does not authenticate (altered or moved)"
        ) from None


def _value_ad(kid: str, context: str) -> bytes:
    return f"{VALUE_PREFIX}{kid}\x00{context}".encode()


# --- files -------------------------------------------------------------------------------


def seal_stream(
    ring: KeyRing,
    chunks: Iterator[bytes] | list[bytes],
    out: BinaryIO,
    context: str,
    segment_bytes: int = DEFAULT_SEGMENT_BYTES,
) -> None:
    """Write the sealed form of the concatenated ``chunks`` to ``out``, one segment at a time."""
    if segment_bytes < MIN_SEGMENT_BYTES:
        raise ValueError(f"segments have at least {MIN_SEGMENT_BYTES} bytes")
    kid = ring.primary
    salt = os.urandom(SALT_BYTES)
    header = _HEADER.pack(FILE_MAGIC, bytes.fromhex(kid), segment_bytes, salt)
    aead = AESGCM(_file_key(ring.key(kid), salt))
    ad = header + context.encode()
    out.write(header)
    pending = bytearray()
    number = 0
    for chunk in chunks:
        pending += chunk
        # Keep at least one byte back: the last segment is only known at the end.
        while len(pending) > segment_bytes:
            out.write(aead.encrypt(_nonce(number, last=False), bytes(pending[:segment_bytes]), ad))
            del pending[:segment_bytes]
            number += 1
            if number >= _MAX_SEGMENTS:
                raise ValueError("too large for one sealed file")
    out.write(aead.encrypt(_nonce(number, last=True), bytes(pending), ad))


def seal_bytes(
    ring: KeyRing, data: bytes, context: str, segment_bytes: int = DEFAULT_SEGMENT_BYTES
) -> bytes:
    """The sealed form of ``data`` (see :func:`seal_stream`), in memory."""
    import io

    out = io.BytesIO()
    view = memoryview(data)
    seal_stream(
        ring,
        (bytes(view[i : i + segment_bytes]) for i in range(0, len(data), segment_bytes)),
        out,
        context,
        segment_bytes,
    )
    return out.getvalue()


def is_sealed_file(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) starts a sealed file."""
    return head.startswith(FILE_MAGIC)


def file_key_id(head: bytes) -> str:
    """The id of the key a sealed file is under, from its first :data:`HEADER_BYTES` bytes."""
    raw_kid: bytes = _HEADER.unpack(head[:HEADER_BYTES])[1]
    return raw_kid.hex()


def open_stream(ring: KeyRing, source: BinaryIO, context: str) -> Iterator[bytes]:
    """The plaintext of a sealed file, segment by segment, each authenticated before it
    is yielded; the end is checked too (a file cut short raises at the end).

    Raises:
        DecryptionError: not sealed, altered, cut short, extended, under another
            context, or under an unknown key.
    """
    header = source.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES or not header.startswith(FILE_MAGIC):
        raise DecryptionError(None, "not an encrypted radlens file")
    _, raw_kid, segment_bytes, salt = _HEADER.unpack(header)
    if segment_bytes < MIN_SEGMENT_BYTES:
        raise DecryptionError(None, "encrypted file header is damaged")
    aead = AESGCM(_file_key(ring.key(raw_kid.hex()), salt))
    ad = header + context.encode()
    size = segment_bytes + TAG_BYTES
    number = 0
    current = source.read(size)
    while True:
        following = source.read(size)
        last = not following
        if len(current) < TAG_BYTES or (not last and len(current) != size):
            raise DecryptionError(None, "encrypted file is cut short")
        try:
            yield aead.decrypt(_nonce(number, last), current, ad)
        except InvalidTag:
            raise DecryptionError(
                None, "encrypted file does not authenticate (altered, cut short or moved)"
            ) from None
        if last:
            return
        current, number = following, number + 1


def _file_key(master: bytes, salt: bytes) -> bytes:
    return HKDF(hashes.SHA256(), KEY_BYTES, salt, _FILE_INFO).derive(master)


def _nonce(number: int, last: bool) -> bytes:
    return bytes(7) + struct.pack(">IB", number, 1 if last else 0)
