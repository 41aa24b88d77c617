"""Model cards over HTTP (``/api/models``): what a reader sees of the model behind a
finding, also for a version the site no longer runs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from radlens.config import Settings
from radlens.domain.findings import StudyResult
from radlens.domain.imaging import Study
from radlens.models.card import read_card
from radlens.models.registry import zoo_folder
from radlens.server.app import create_app
from serve_helpers import log_in

ZOO_CARD = zoo_folder() / "fracture_xray" / "card.json"


def no_analysis(study: Study) -> StudyResult:
    return StudyResult(study.study_instance_uid, ())


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # A version the site once promoted: in its model store, no longer the installed one.
    stored = tmp_path / "home" / "models" / "fracture_xray" / "1"
    stored.mkdir(parents=True)
    card = json.loads(ZOO_CARD.read_text("utf-8"))
    card["version"] = "0.9.0"
    card["limitations"] = ["An older limitation."]
    (stored / "card.json").write_text(json.dumps(card), "utf-8")
    settings = Settings(home=tmp_path / "home", dicom_enabled=False, workers=1)
    with TestClient(create_app(settings, analyze=no_analysis)) as test_client:
        log_in(test_client)
        yield test_client


def test_a_finding_s_model_version_has_its_card(client: TestClient) -> None:
    zoo = read_card(ZOO_CARD)
    got = client.get(f"/api/models/fracture_xray/{zoo.version}")
    assert got.status_code == 200, got.text
    card = got.json()
    assert card["name"] == "fracture_xray" and card["version"] == zoo.version
    assert card["intended_use"] == zoo.intended_use
    assert card["limitations"] == list(zoo.limitations)
    assert card["val"]["auc"] == zoo.metrics["val"]["auc"]
    assert card["operating_threshold"] == zoo.thresholds["operating"]
    low, high = card["abstain_band"]
    assert low == zoo.thresholds["abstain_low"] and high == zoo.thresholds["abstain_high"]
    assert card["modalities"] == list(zoo.applies_to.modalities)
    assert card["ood"] is True
    assert card["licence"] == zoo.training.licence


def test_a_version_no_longer_installed_is_found_in_the_model_store(client: TestClient) -> None:
    got = client.get("/api/models/fracture_xray/0.9.0")
    assert got.status_code == 200, got.text
    assert got.json()["limitations"] == ["An older limitation."]
    listed = {(c["name"], c["version"]) for c in client.get("/api/models").json()}
    assert ("fracture_xray", "0.9.0") in listed
    assert ("fracture_xray", read_card(ZOO_CARD).version) in listed
    assert {name for name, _ in listed} >= {"cxr_pneumonia", "knee_oa_kl", "fetal_head_hc18"}


def test_an_empty_abstain_band_is_not_reported(client: TestClient) -> None:
    """cxr_pneumonia's band has equal edges (it always calls); fracture_xray's has width."""
    cxr = read_card(zoo_folder() / "cxr_pneumonia" / "card.json")
    assert cxr.thresholds["abstain_low"] == cxr.thresholds["abstain_high"]
    assert client.get(f"/api/models/cxr_pneumonia/{cxr.version}").json()["abstain_band"] is None


def test_an_unknown_model_or_version_is_404_with_the_reason(client: TestClient) -> None:
    for path in ("/api/models/fracture_xray/7.7.7", "/api/models/no_such_model/1.0.0"):
        got = client.get(path)
        assert got.status_code == 404
        assert "no model card" in got.text


def test_a_broken_card_in_the_store_is_left_out_not_a_server_error(
    client: TestClient, tmp_path: Path
) -> None:
    broken = tmp_path / "home" / "models" / "fracture_xray" / "2"
    broken.mkdir()
    (broken / "card.json").write_text("{not json", "utf-8")
    shutil.copy(ZOO_CARD, broken / "other.json")
    got = client.get("/api/models")
    assert got.status_code == 200
    assert len([c for c in got.json() if c["name"] == "fracture_xray"]) == 2
