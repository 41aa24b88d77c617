"""radlens.io.uids: deterministic 2.25 UIDs."""

from __future__ import annotations

import re

from radlens.io.uids import uid_from


def test_uid_is_deterministic_valid_and_distinct_per_name() -> None:
    uid = uid_from("study:abc")
    assert uid == uid_from("study:abc")
    assert uid != uid_from("series:abc")
    assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", uid)
    assert len(uid) <= 64  # PS3.5 9.1
