"""Deterministic UIDs for objects that arrive without one (PS3.5 B.2, the 2.25 root)."""

from __future__ import annotations

import uuid

# A fixed namespace, so the same name always gives the same UID, on any machine.
_NAMESPACE = uuid.UUID("6c4f5f0e-2b1a-5d3e-9a8c-7e6d5c4b3a29")


def uid_from(name: str) -> str:
    """Return a ``2.25.<decimal UUID>`` UID derived (UUID v5) from ``name``.

    Example:
        >>> uid_from("study:abc") == uid_from("study:abc"), uid_from("x").startswith("2.25.")
        (True, True)
    """
    return f"2.25.{uuid.uuid5(_NAMESPACE, name).int}"
