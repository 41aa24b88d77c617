"""``radlens feedback export`` and ``radlens monitor`` on a server home (SQLite, its key
ring, encrypted storage), as an operator runs them."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from feedback_helpers import make_instance
from typer.testing import CliRunner

from radlens.cli.main import app
from radlens.cli.monitor import parse_since
from radlens.config import Settings
from radlens.domain.findings import Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Study
from radlens.errors import ConfigError
from radlens.feedback.cases import read_cases
from radlens.server.app import encryption_keys
from radlens.store.db import open_database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.review import Decision, review_finding
from radlens.store.worklist import get_study


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A server home with two analyzed studies of cxr_pneumonia 1.1.0, one reviewed."""
    settings = Settings(home=tmp_path)
    db = open_database(settings.database_url, keys=encryption_keys(settings))
    intake = Intake(db, settings.storage_dir)
    queue = JobQueue(db, settings.storage_dir, quiet_period_s=0.0)
    for uid, probability in (("1.5.1", 0.9), ("1.5.2", 0.3)):
        intake.receive(make_instance(uid, f"{uid}.1.1"), "test")

        def analyze(study: Study, p: float = probability) -> StudyResult:
            series = study.series[0]
            finding = Finding(
                "pneumonia",
                "Pneumonia",
                p,
                0.5,
                "cxr_pneumonia",
                "1.1.0",
                sop_instance_uid=series.instances[0].sop_instance_uid,
                ood_score=0.4,
            )
            result = SeriesResult(
                series.series_instance_uid, "CT", "", 1, ("cxr_pneumonia",), (finding,)
            )
            return StudyResult(study.study_instance_uid, (result,))

        assert queue.run_one(analyze)
    document = get_study(db, "1.5.1").result
    assert document is not None
    fid = document["series"][0]["findings"][0]["id"]
    review_finding(db, "1.5.1", fid, Decision.ACCEPTED, "ann")
    review_finding(db, "1.5.1", fid, Decision.ACCEPTED, "bob")
    db.close()
    return tmp_path


def test_feedback_export_writes_cases_for_radlens_learn(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "cases"
    result = CliRunner().invoke(
        app, ["feedback", "export", "cxr_pneumonia", "-o", str(out), "--home", str(home)]
    )
    assert result.exit_code == 0, result.output
    assert "1 cases (1 de-identified images) of cxr_pneumonia" in result.output
    assert "labels: NORMAL, PNEUMONIA" in result.output
    (case,) = read_cases(out / "cases.csv")
    assert case.label == 1 and case.n_readers == 2 and case.agreement == 1.0
    assert (out / case.file).is_file()


def test_feedback_export_names_an_unknown_model_and_rule(home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(
        app, ["feedback", "export", "nope", "-o", str(tmp_path / "x"), "--home", str(home)]
    )
    assert unknown.exit_code == 1 and "no model named 'nope'" in unknown.output
    bad_rule = runner.invoke(
        app,
        ["feedback", "export", "cxr_pneumonia", "-o", str(tmp_path / "x"), "--home", str(home)]
        + ["--rule", "loudest"],
    )
    assert bad_rule.exit_code == 1 and "majority or senior" in bad_rule.output


def test_monitor_prints_a_summary_and_json(home: Path) -> None:
    runner = CliRunner()
    text = runner.invoke(app, ["monitor", "--home", str(home)])
    assert text.exit_code == 0, text.output
    assert "cxr_pneumonia 1.1.0" in text.output
    assert "volume       2 studies, 2 images, 2 findings" in text.output
    assert "positive     50.0% (1)" in text.output
    assert "AI agreement 100.0% of 1 adjudicated" in text.output
    assert "ACME Scan 1 @ CT01" in text.output and "no alerts" in text.output
    as_json = runner.invoke(
        app, ["monitor", "--json", "--model", "cxr_pneumonia", "--home", str(home)]
    )
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.output)
    (model,) = document["models"]
    assert model["stats"]["n_studies"] == 2 and model["strata"][0]["equipment"]["site"] == "CT01"
    empty = runner.invoke(app, ["monitor", "--since", "2100-01-01", "--home", str(home)])
    assert "0 model version(s)" in empty.output


def test_since_takes_dates_times_and_spans() -> None:
    now = datetime(2025, 3, 5, 12, 0)
    assert parse_since("12h", now) == datetime(2025, 3, 5, 0, 0)
    assert parse_since("2025-03-01") == datetime(2025, 3, 1)
    assert parse_since("2025-03-01T10:00+02:00") == datetime(2025, 3, 1, 8, 0)
    assert parse_since(None) is None
    with pytest.raises(ConfigError, match="--since"):
        parse_since("last week")
