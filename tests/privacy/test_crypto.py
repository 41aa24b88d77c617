"""AES-256-GCM envelopes of encryption at rest: round trips, tampering, truncation, keys."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from radlens.errors import ConfigError
from radlens.privacy.crypto import (
    HEADER_BYTES,
    TAG_BYTES,
    DecryptionError,
    KeyRing,
    file_key_id,
    load_key_ring,
    open_stream,
    open_value,
    parse_key_ring,
    read_key_file,
    seal_bytes,
    seal_value,
    write_key_file,
)

SEGMENT = 64
CONTEXT = "storage/ab/cd/abcd.dcm"


def _open(ring: KeyRing, sealed: bytes, context: str = CONTEXT) -> bytes:
    return b"".join(open_stream(ring, io.BytesIO(sealed), context))


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 5 * SEGMENT, 1000])
def test_file_round_trip_for_every_segment_boundary(size: int) -> None:
    ring = KeyRing.generate()
    data = os.urandom(size)
    sealed = seal_bytes(ring, data, CONTEXT, SEGMENT)
    segments = max(1, -(-size // SEGMENT))
    assert len(sealed) == HEADER_BYTES + size + segments * TAG_BYTES
    assert _open(ring, sealed) == data
    assert file_key_id(sealed) == ring.primary


def test_same_plaintext_seals_differently_each_time() -> None:
    ring = KeyRing.generate()
    assert seal_bytes(ring, b"Doe^Jane", CONTEXT) != seal_bytes(ring, b"Doe^Jane", CONTEXT)
    assert b"Doe^Jane" not in seal_bytes(ring, b"Doe^Jane" * 100, CONTEXT)


def test_any_flipped_byte_of_a_file_fails() -> None:
    ring = KeyRing.generate()
    sealed = seal_bytes(ring, os.urandom(3 * SEGMENT + 7), CONTEXT, SEGMENT)
    # magic, key id, segment size, salt, first ciphertext byte, a later segment, the last tag
    for position in (0, 9, 13, 20, HEADER_BYTES, HEADER_BYTES + SEGMENT + 20, len(sealed) - 1):
        altered = bytearray(sealed)
        altered[position] ^= 0x01
        with pytest.raises(DecryptionError):
            _open(ring, bytes(altered))


@pytest.mark.parametrize("segments_kept", [1, 2, 3])
def test_a_file_cut_at_a_segment_boundary_fails(segments_kept: int) -> None:
    ring = KeyRing.generate()
    sealed = seal_bytes(ring, os.urandom(4 * SEGMENT), CONTEXT, SEGMENT)
    cut = sealed[: HEADER_BYTES + segments_kept * (SEGMENT + TAG_BYTES)]
    with pytest.raises(DecryptionError):
        _open(ring, cut)


def test_a_file_cut_mid_segment_extended_or_reordered_fails() -> None:
    ring = KeyRing.generate()
    sealed = seal_bytes(ring, os.urandom(3 * SEGMENT), CONTEXT, SEGMENT)
    size = SEGMENT + TAG_BYTES
    first, second = sealed[HEADER_BYTES : HEADER_BYTES + size], sealed[HEADER_BYTES + size :][:size]
    swapped = sealed[:HEADER_BYTES] + second + first + sealed[HEADER_BYTES + 2 * size :]
    for bad in (sealed[:-5], sealed + os.urandom(size), swapped, sealed[:HEADER_BYTES]):
        with pytest.raises(DecryptionError):
            _open(ring, bad)


def test_a_file_moved_to_another_place_or_opened_with_another_key_fails() -> None:
    ring = KeyRing.generate()
    sealed = seal_bytes(ring, b"pixels", CONTEXT)
    with pytest.raises(DecryptionError):
        _open(ring, sealed, "storage/ff/ff/ffff.dcm")
    with pytest.raises(DecryptionError, match="not in the key ring"):
        _open(KeyRing.generate(), sealed)


def test_value_round_trip_and_binding_to_its_column() -> None:
    ring = KeyRing.generate()
    sealed = seal_value(ring, b"Doe^Jane", "studies.notes_text")
    assert sealed.startswith(f"rl1:{ring.primary}:") and "Doe" not in sealed
    assert open_value(ring, sealed, "studies.notes_text") == b"Doe^Jane"
    with pytest.raises(DecryptionError):
        open_value(ring, sealed, "studies.report_text")  # moved to another column


def test_tampered_value_fails_in_nonce_ciphertext_tag_and_key_id() -> None:
    import base64

    ring = KeyRing.generate()
    sealed = seal_value(ring, b"Doe^Jane 19710203", "t.c")
    head, body = sealed.rsplit(":", 1)
    raw = base64.urlsafe_b64decode(body)
    for position in (0, 11, 12, len(raw) - 1):  # nonce, nonce end, ciphertext, tag
        altered = bytearray(raw)
        altered[position] ^= 0x80
        with pytest.raises(DecryptionError):
            open_value(ring, f"{head}:{base64.urlsafe_b64encode(bytes(altered)).decode()}", "t.c")
    other = ring.with_new_primary()
    swapped = sealed.replace(ring.primary, other.primary, 1)
    with pytest.raises(DecryptionError):
        open_value(other, swapped, "t.c")


def test_rotation_keeps_old_values_readable_and_seals_new_ones_under_the_new_key() -> None:
    ring = KeyRing.generate()
    old = seal_value(ring, b"old", "t.c")
    old_file = seal_bytes(ring, b"old file", CONTEXT)
    rotated = ring.with_new_primary()
    assert rotated.primary != ring.primary and set(rotated.keys) > set(ring.keys)
    assert open_value(rotated, old, "t.c") == b"old" and _open(rotated, old_file) == b"old file"
    assert seal_value(rotated, b"new", "t.c").startswith(f"rl1:{rotated.primary}:")
    retired = rotated.without({ring.primary})
    with pytest.raises(DecryptionError):
        open_value(retired, old, "t.c")
    with pytest.raises(ConfigError):
        rotated.without({rotated.primary})


def test_key_file_is_owner_only_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "radlens.keys"
    ring = KeyRing.generate().with_new_primary()
    write_key_file(path, ring)
    assert path.stat().st_mode & 0o777 == 0o600
    again = read_key_file(path)
    assert again.keys == ring.keys and again.primary == ring.primary and again.source == path
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_key_file(path)


def test_load_key_ring_creates_one_only_when_allowed(tmp_path: Path) -> None:
    default = tmp_path / "keys" / "radlens.keys"
    with pytest.raises(ConfigError, match="production"):
        load_key_ring(None, "", default, create=False)
    made = load_key_ring(None, "", default, create=True)
    assert default.is_file() and load_key_ring(None, "", default, create=False).keys == made.keys
    from_env = load_key_ring(None, "11" * 32, default, create=False)
    assert from_env.keys == {from_env.primary: bytes([0x11]) * 32} and from_env.source is None


def test_a_reader_finds_a_key_added_to_its_file_by_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "radlens.keys"
    write_key_file(path, KeyRing.generate())
    running = read_key_file(path)
    rotated = running.with_new_primary()
    write_key_file(path, rotated)
    assert open_value(running, seal_value(rotated, b"x", "t.c"), "t.c") == b"x"


@pytest.mark.parametrize(
    "text", ["", "abc", "00" * 31, '{"version": 1, "primary": "x", "keys": {}}']
)
def test_unusable_keys_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_key_ring(text)
