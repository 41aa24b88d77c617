"""radlens.io.archive: zip members in memory, unsafe names refused, bombs capped."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from radlens.errors import UnreadableArchiveError
from radlens.io.archive import (
    ArchiveMember,
    is_safe_member_name,
    is_skipped_member_name,
    is_zip,
    iter_members,
    read_member,
)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("a.dcm", True),
        ("study/series/IMG1.dcm", True),
        ("..a.dcm", True),
        ("../evil.dcm", False),
        ("a/../../evil.dcm", False),
        ("/etc/passwd", False),
        ("C:/windows/evil.dcm", False),
        ("a\\..\\..\\evil.dcm", False),
        ("", False),
    ],
)
def test_member_names_that_could_escape_are_unsafe(name: str, safe: bool) -> None:
    assert is_safe_member_name(name) is safe


@pytest.mark.parametrize(
    ("name", "skipped"),
    [
        ("a.dcm", False),
        ("dir/", True),
        ("__MACOSX/._a.dcm", True),
        (".DS_Store", True),
        ("study/DICOMDIR", True),
        ("study/.hidden/a.dcm", True),
    ],
)
def test_folders_hidden_files_and_dicomdir_are_skipped(name: str, skipped: bool) -> None:
    assert is_skipped_member_name(name) is skipped


def test_members_come_in_name_order_with_refusals_inline(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "a.zip", {"b.dcm": b"B", "a.dcm": b"A", "../x.dcm": b"X", ".hidden": b"H"}
    )
    items = list(iter_members(archive))
    assert isinstance(items[0], UnreadableArchiveError)  # "../x.dcm" sorts first
    assert items[1:] == [ArchiveMember("a.dcm", b"A"), ArchiveMember("b.dcm", b"B")]


def test_declared_size_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "big.zip", {"zeros": bytes(2_000_000)})
    with pytest.raises(UnreadableArchiveError, match="declares 2000000 bytes"):
        list(iter_members(archive, max_unzipped_bytes=1_000_000))


def test_member_lying_about_its_size_is_refused_not_inflated(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "liar.zip", {"zeros": bytes(3_000_000)})
    # Forge the central directory so the member claims to be 10 bytes.
    raw = bytearray(archive.read_bytes())
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    [item] = list(iter_members(archive, max_unzipped_bytes=1_000_000))
    assert isinstance(item, UnreadableArchiveError)
    assert str(item).startswith(f"{archive}!zeros: ")


def test_corrupt_archive_cannot_be_opened(tmp_path: Path) -> None:
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    assert is_zip(path)
    with pytest.raises(UnreadableArchiveError, match="cannot open zip") as caught:
        list(iter_members(path))
    assert isinstance(caught.value.__cause__, zipfile.BadZipFile)


def test_read_member_returns_bytes_and_refuses_unknown_or_unsafe_names(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"x/y.dcm": b"data"})
    assert read_member(archive, "x/y.dcm") == b"data"
    with pytest.raises(UnreadableArchiveError, match="no such member"):
        read_member(archive, "nope.dcm")
    with pytest.raises(UnreadableArchiveError, match="unsafe"):
        read_member(archive, "../x/y.dcm")


def _add_symlink(path: Path, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix
    info.external_attr = 0o120777 << 16  # S_IFLNK | rwxrwxrwx
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(info, target)


def test_symbolic_link_members_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "links.zip", {"a.dcm": b"A"})
    _add_symlink(archive, "b.dcm", "/etc/passwd")
    items = list(iter_members(archive))
    assert items[0] == ArchiveMember("a.dcm", b"A")
    assert isinstance(items[1], UnreadableArchiveError)
    assert "symbolic link" in items[1].reason and items[1].path == f"{archive}!b.dcm"
    with pytest.raises(UnreadableArchiveError, match="symbolic link"):
        read_member(archive, "b.dcm")


def test_an_archive_of_too_many_entries_is_refused_before_any_is_read(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "many.zip", {f"{i}.dcm": b"" for i in range(11)})
    with pytest.raises(UnreadableArchiveError, match="11 entries, over the cap of 10"):
        list(iter_members(archive, max_members=10))
    assert len(list(iter_members(archive, max_members=11))) == 11


def test_a_member_inflating_past_the_ratio_cap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("radlens.io.archive.RATIO_FREE_BYTES", 1024)
    archive = make_zip(tmp_path / "ratio.zip", {"zeros.dcm": bytes(2_000_000), "ok.dcm": b"ok"})
    items = list(iter_members(archive, max_ratio=100))
    assert items[0] == ArchiveMember("ok.dcm", b"ok")
    assert isinstance(items[1], UnreadableArchiveError)
    assert "more than 100 times" in items[1].reason
    with pytest.raises(UnreadableArchiveError, match="more than 100 times"):
        read_member(archive, "zeros.dcm", max_ratio=100)
    assert len(list(iter_members(archive))) == 2  # the default ratio lets a 2 MB blank pass


def test_path_traversal_names_are_refused_in_every_spelling(tmp_path: Path) -> None:
    names = ["../up.dcm", "/abs.dcm", "C:/drive.dcm", "a/../../up.dcm", "a\\..\\..\\up.dcm"]
    archive = make_zip(tmp_path / "escape.zip", dict.fromkeys(names, b"X"))
    items = list(iter_members(archive))
    assert len(items) == len(names)
    assert all(isinstance(i, UnreadableArchiveError) and "unsafe" in i.reason for i in items)
