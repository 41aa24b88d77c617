from __future__ import annotations

from pathlib import Path

import pytest

from radlens.cluster.jobs import StudyJob
from radlens.cluster.sources import is_dicomweb, list_source, read_list_file, shard
from radlens.errors import ConfigError, InputError


def test_list_file_skips_comments_and_blank_lines_and_resolves_relative_paths(
    tmp_path: Path,
) -> None:
    listing = tmp_path / "in.txt"
    listing.write_text("# studies\n\na.dcm\n/abs/b\n  sub/c  \n")
    assert read_list_file(listing) == [tmp_path / "a.dcm", Path("/abs/b"), tmp_path / "sub/c"]


def test_an_empty_list_file_is_an_input_error(tmp_path: Path) -> None:
    listing = tmp_path / "in.txt"
    listing.write_text("# nothing\n")
    with pytest.raises(InputError, match="names no file"):
        read_list_file(listing)


def test_list_source_scans_a_list_file_into_one_job_per_study(two_studies: Path) -> None:
    found = list_source(str(two_studies))
    assert len(found.jobs) == 2
    for job in found.jobs:
        assert job.study is not None and job.study.study_instance_uid == job.study_uid


def test_list_source_reports_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list_source(str(tmp_path / "missing"))


def test_urls_are_dicomweb_sources() -> None:
    assert is_dicomweb("http://pacs:8042/dicom-web") and is_dicomweb("https://x/y")
    assert not is_dicomweb("/data/http")


def _jobs(n: int) -> list[StudyJob]:
    return [StudyJob(f"1.2.{i}", files=(("f", b"x"),)) for i in range(n)]


def test_shards_are_disjoint_complete_and_stable() -> None:
    jobs = _jobs(50)
    parts = [shard(jobs, p, 3) for p in range(3)]
    uids = [j.study_uid for part in parts for j in part]
    assert sorted(uids) == sorted(j.study_uid for j in jobs)
    assert all(parts) and parts == [shard(jobs, p, 3) for p in range(3)]
    assert shard(jobs, 0, 1) == jobs


@pytest.mark.parametrize(("part", "parts"), [(3, 3), (-1, 2), (0, 0)])
def test_a_bad_shard_is_a_config_error(part: int, parts: int) -> None:
    with pytest.raises(ConfigError):
        shard(_jobs(2), part, parts)
