"""Server fixtures: the app with a stand-in analysis, on SQLite and PostgreSQL, logged in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from radlens.config import Settings
from radlens.domain.findings import StudyResult
from radlens.domain.imaging import Study
from radlens.server.app import create_app
from serve_helpers import log_in, result_with_finding


def fake_analyze(study: Study) -> StudyResult:
    urgent = study.study_instance_uid.endswith(".2")
    return result_with_finding(study, "pneumonia", 0.9 if urgent else 0.1)


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        home=tmp_path,
        db=database_url,
        dicom_enabled=False,
        quiet_period_s=0,
        poll_interval_s=0.05,
        workers=1,
    )
    with TestClient(create_app(settings, analyze=fake_analyze)) as test_client:
        log_in(test_client)
        yield test_client
