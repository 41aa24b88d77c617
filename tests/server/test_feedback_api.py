"""Feedback over HTTP: confidence and box edits on reviews, several readers with the site's
adjudication rule and the disagreement on the study, the active-learning queue and the
monitoring document (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from radlens.config import Settings
from radlens.domain.findings import Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Study
from radlens.server.app import create_app
from serve_helpers import log_in, make_instance, wait_until_ready

CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary=b'
PROBABILITY = {"1.6.1": 0.52, "1.6.2": 0.95, "1.6.3": 0.3}  # uncertain, sure, sure negative


def analyze(study: Study) -> StudyResult:
    series = study.series[0]
    finding = Finding(
        "pneumonia",
        "Pneumonia",
        PROBABILITY[study.study_instance_uid],
        0.5,
        "stand-in",
        "0.0.1",
        sop_instance_uid=series.instances[0].sop_instance_uid,
        ood_score=0.3,
    )
    result = SeriesResult(series.series_instance_uid, "CT", "", 1, ("stand-in",), (finding,))
    return StudyResult(study.study_instance_uid, (result,))


def _app(tmp_path: Path, database_url: str, **settings: Any) -> TestClient:
    config = Settings(
        home=tmp_path,
        db=database_url,
        dicom_enabled=False,
        quiet_period_s=0,
        poll_interval_s=0.05,
        workers=1,
        **settings,
    )
    return TestClient(create_app(config, analyze=analyze))


@pytest.fixture
def clients(tmp_path: Path, database_url: str) -> Iterator[dict[str, TestClient]]:
    """Three radiologists (ann, bob, cy; bob is senior) on one app with three studies."""
    with _app(tmp_path, database_url, adjudication_rule="senior", senior_readers=("bob",)) as ann:
        log_in(ann, "ann", "ann-password-123")
        body = b"".join(
            b"--b\r\nContent-Type: application/dicom\r\n\r\n"
            + make_instance(uid, f"{uid}.1")
            + b"\r\n"
            for uid in PROBABILITY
        )
        response = ann.post(
            "/dicomweb/studies", content=body + b"--b--\r\n", headers={"content-type": CONTENT_TYPE}
        )
        assert response.status_code == 200, response.text
        wait_until_ready(ann, len(PROBABILITY))
        others = {}
        for name in ("bob", "cy"):
            other = TestClient(ann.app)
            log_in(other, name, f"{name}-password-123")
            others[name] = other
        yield {"ann": ann, **others}


def _fid(client: TestClient, uid: str) -> str:
    fid: str = client.get(f"/api/studies/{uid}").json()["findings"]["series"][0]["findings"][0][
        "id"
    ]
    return fid


def _review(client: TestClient, uid: str, fid: str, **body: Any) -> Any:
    return client.put(f"/api/studies/{uid}/findings/{fid}/review", json=body)


def test_a_review_keeps_the_readers_confidence_and_edited_box(
    clients: dict[str, TestClient],
) -> None:
    ann = clients["ann"]
    fid = _fid(ann, "1.6.1")
    response = _review(
        ann, "1.6.1", fid, decision="edited", label="Pneumonia", confidence=4, box_px=[2, 3, 40, 50]
    )
    assert response.status_code == 200, response.text
    assert response.json()["confidence"] == 4 and response.json()["box_px"] == [2, 3, 40, 50]
    review = ann.get("/api/studies/1.6.1").json()["reviews"][fid]
    assert review["confidence"] == 4 and review["box_px"] == [2.0, 3.0, 40.0, 50.0]
    assert _review(ann, "1.6.1", fid, decision="accepted", confidence=9).status_code == 422
    bad_box = _review(ann, "1.6.1", fid, decision="edited", box_px=[40, 3, 2, 50])
    assert bad_box.status_code == 400 and "x0 < x1" in bad_box.json()["detail"]


def test_several_readers_are_adjudicated_by_the_senior_and_the_disagreement_shows(
    clients: dict[str, TestClient],
) -> None:
    fid = _fid(clients["ann"], "1.6.2")
    assert _review(clients["ann"], "1.6.2", fid, decision="accepted").status_code == 200
    assert _review(clients["cy"], "1.6.2", fid, decision="accepted").status_code == 200
    assert _review(clients["bob"], "1.6.2", fid, decision="rejected").status_code == 200
    adjudication = clients["ann"].get("/api/studies/1.6.2").json()["adjudications"][fid]
    assert adjudication["rule"] == "senior" and adjudication["decided_by"] == "senior"
    assert adjudication["call"] == "absent" and adjudication["ai_agrees"] is False
    assert adjudication["disagreement"] is True and adjudication["n_readers"] == 3
    assert adjudication["agreement"] == pytest.approx(0.333)
    assert adjudication["summary"].startswith("3 readers disagree:")
    assert [v["reader"] for v in adjudication["votes"]] == ["ann", "cy", "bob"]
    assert [v["senior"] for v in adjudication["votes"]] == [False, False, True]
    # a study nobody reviewed has none
    assert clients["ann"].get("/api/studies/1.6.3").json()["adjudications"] == {}


def test_the_learning_queue_lists_what_would_teach_most_leaving_out_my_reviews(
    clients: dict[str, TestClient],
) -> None:
    ann, bob = clients["ann"], clients["bob"]
    items = ann.get("/api/learning/queue").json()
    assert [i["study_uid"] for i in items] == ["1.6.1"]
    (item,) = items
    assert item["reasons"] == ["uncertain"] and item["rank"] == 1
    assert item["stratum"] == "GE MEDICAL SYSTEMS RHAPSODE @ CT01_OC0"
    # ann disagrees with the AI on the sure one: it joins the queue for others
    _review(ann, "1.6.2", _fid(ann, "1.6.2"), decision="rejected")
    for_bob = [i["study_uid"] for i in bob.get("/api/learning/queue").json()]
    assert set(for_bob) == {"1.6.1", "1.6.2"}
    assert [i["study_uid"] for i in ann.get("/api/learning/queue").json()] == ["1.6.1"]
    assert ann.get("/api/learning/queue", params={"model": "other"}).json() == []
    assert ann.get("/api/learning/queue", params={"limit": 0}).status_code == 422


def test_monitoring_reports_each_model_version_and_scanner(
    clients: dict[str, TestClient],
) -> None:
    ann = clients["ann"]
    _review(ann, "1.6.2", _fid(ann, "1.6.2"), decision="accepted")
    document = ann.get("/api/monitoring").json()
    (model,) = document["models"]
    assert (model["model_name"], model["model_version"], model["card_found"]) == (
        "stand-in",
        "0.0.1",
        False,
    )
    stats = model["stats"]
    assert stats["n_studies"] == 3 and stats["n_positive"] == 2
    assert stats["n_reviewed"] == 1 and stats["ai_agreement"] == 1.0
    assert stats["ood"]["drift"]["alert"] is False
    assert model["strata"][0]["equipment"]["station_name"] == "CT01_OC0"
    assert len(stats["ood"]["histogram"]) == len(document["histogram_edges"]) + 1
    assert document["alerts"] == []
    later = ann.get("/api/monitoring", params={"since": "2100-01-01T00:00:00Z"}).json()
    assert later["models"] == []
