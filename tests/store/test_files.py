from __future__ import annotations

from pathlib import Path

import pytest

from radlens.errors import InputError
from radlens.store.files import (
    instance_path,
    remove_partial_files,
    validate_uid,
    write_durably,
)


def test_instance_path_is_a_hash_of_the_uid_never_the_uid(tmp_path: Path) -> None:
    path = instance_path(tmp_path, "1.2.840.113619.2.1")
    assert path.parent.parent.parent == tmp_path
    assert "1.2.840" not in str(path.relative_to(tmp_path))
    assert len(path.stem) == 64 and path.suffix == ".dcm"
    assert instance_path(tmp_path, "1.2.840.113619.2.1") == path


@pytest.mark.parametrize("uid", ["", "../../etc/passwd", "1.2.a", "1." + "2" * 70, "1..2", "/1.2"])
def test_validate_uid_refuses_what_is_not_a_dicom_uid(uid: str) -> None:
    with pytest.raises(InputError, match="not a valid DICOM UID"):
        validate_uid(uid)
    with pytest.raises(InputError):
        instance_path(Path("/s"), uid)


def test_write_durably_writes_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.dcm"
    write_durably(target, b"abc" * 1000)
    assert target.read_bytes() == b"abc" * 1000
    write_durably(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["x.dcm"]


def test_remove_partial_files_clears_temp_files_of_a_crashed_write(tmp_path: Path) -> None:
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / ".tmpxyz.tmp").write_bytes(b"half")
    (tmp_path / "ab" / "kept.dcm").write_bytes(b"whole")
    assert remove_partial_files(tmp_path) == 1
    assert [p.name for p in (tmp_path / "ab").iterdir()] == ["kept.dcm"]
    assert remove_partial_files(tmp_path / "missing") == 0
