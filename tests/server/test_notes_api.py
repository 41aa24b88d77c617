"""Clinical notes over HTTP: PUT /api/studies/{uid}/notes, and the study's draft,
concordance per finding id and prior study (``GET /api/studies/{uid}``)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from serve_helpers import dated_instance, make_instance, wait_until_ready

CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary=b'


def _stow(client: TestClient, *instances: bytes) -> None:
    body = b"".join(
        b"--b\r\nContent-Type: application/dicom\r\n\r\n" + i + b"\r\n" for i in instances
    )
    response = client.post(
        "/dicomweb/studies", content=body + b"--b--\r\n", headers={"content-type": CONTENT_TYPE}
    )
    assert response.status_code == 200, response.text


def _only_finding(study: dict[str, Any]) -> str:
    [series] = study["findings"]["series"]
    [finding] = series["findings"]
    fid: str = finding["id"]
    return fid


def _notes(client: TestClient, uid: str, text: str) -> dict[str, Any]:
    response = client.put(f"/api/studies/{uid}/notes", json={"text": text})
    assert response.status_code == 200, response.text
    study: dict[str, Any] = response.json()
    return study


def test_analyzed_study_has_a_draft_the_editor_starts_from(client: TestClient) -> None:
    _stow(client, make_instance("1.7.2", "1.7.2.1"))
    wait_until_ready(client, 1)
    study = client.get("/api/studies/1.7.2").json()
    assert study["report"]["text"] == ""  # nothing written yet: the editor shows the draft
    draft = study["draft"]
    for title in ("Indication", "Technique", "Comparison", "Findings", "Impression"):
        assert f"## {title}" in draft
    assert "requires physician review" in draft
    assert "- Pneumonia: very likely (calibrated probability 90%" in draft
    assert study["notes"] == {"text": "", "updated_at": None, "updated_by": ""}
    assert study["prior"] is None
    [entry] = study["concordance"].values()
    assert entry["concordance"] == "new" and entry["notes"] is None


def test_negated_and_uncertain_notes_give_the_right_concordance_flags(
    client: TestClient,
) -> None:
    # The stand-in analysis finds pneumonia at 0.9 for ...2 and at 0.1 for ...1.
    _stow(client, make_instance("1.8.2", "1.8.2.1"), make_instance("1.8.1", "1.8.1.1"))
    wait_until_ready(client, 2)

    negated = _notes(client, "1.8.2", "Findings: No pneumonia. No pneumothorax.")
    assert negated["notes"]["text"].startswith("Findings: No pneumonia")
    assert negated["notes"]["updated_by"] == "reader"
    entry = negated["concordance"][_only_finding(negated)]
    assert entry == {
        "concordance": "discordant",
        "flagged": True,
        "notes": "absent",
        "sentence": "notes: no pneumonia; AI: pneumonia likely (p=0.90)",
    }
    assert "**Discordant with the clinical notes: Pneumonia**" in negated["draft"]

    uncertain = _notes(client, "1.8.1", "Cough. Cannot exclude pneumonia.")
    entry = uncertain["concordance"][_only_finding(uncertain)]
    assert (entry["concordance"], entry["flagged"], entry["notes"]) == (
        "discordant",
        True,
        "possible",
    )
    assert (
        "- **Discordant (Pneumonia):** notes: possible pneumonia; AI: no evidence"
        in uncertain["draft"]
    )

    agreed = _notes(client, "1.8.1", "No pneumonia.")
    entry = agreed["concordance"][_only_finding(agreed)]
    assert (entry["concordance"], entry["flagged"], entry["notes"]) == (
        "concordant",
        False,
        "absent",
    )
    # The notes are stored: a later read has them, and the signed report stays apart.
    again = client.get("/api/studies/1.8.1").json()
    assert again["notes"]["text"] == "No pneumonia." and again["report"]["text"] == ""


def test_hl7_order_notes_give_the_reason_for_exam(client: TestClient) -> None:
    _stow(client, make_instance("1.9.1", "1.9.1.1"))
    wait_until_ready(client, 1)
    order = (
        "MSH|^~\\&|RIS|H|RL|H|202401011200||ORM^O01|1|P|2.5.1\r"
        "OBR|1|||71046^XR CHEST 2V|||||||||Cough||||||||||||||||||^r/o PNA"
    )
    study = _notes(client, "1.9.1", order)
    entry = study["concordance"][_only_finding(study)]
    assert (entry["concordance"], entry["notes"]) == ("discordant", "reason")
    indication = study["draft"].split("## Indication", 1)[1].split("## Technique", 1)[0]
    assert "- r/o PNA" in indication


def test_the_draft_compares_with_the_prior_study_of_the_same_patient(
    client: TestClient,
) -> None:
    _stow(
        client,
        dated_instance("1.10.1", "PID-P", "20240110", "XR CHEST"),  # pneumonia 0.1
        dated_instance("1.10.2", "PID-P", "20240301"),  # pneumonia 0.9
    )
    wait_until_ready(client, 2)
    study = client.get("/api/studies/1.10.2").json()
    assert study["prior"] == {
        "study_uid": "1.10.1",
        "study_date": "2024-01-10",
        "description": "XR CHEST",
    }
    assert "Prior study: 2024-01-10, XR CHEST." in study["draft"]
    assert (
        "- Pneumonia: new since 2024-01-10 (then not excluded, p=0.10; now very likely"
        in study["draft"]
    )
    assert client.get("/api/studies/1.10.1").json()["prior"] is None


def test_notes_need_a_login_and_a_known_study(client: TestClient) -> None:
    assert client.put("/api/studies/9.9.9/notes", json={"text": "x"}).status_code == 404
    assert client.put("/api/studies/9.9.9/notes", json={"text": "x" * 100_001}).status_code == 422
    client.post("/api/auth/logout")
    assert client.put("/api/studies/9.9.9/notes", json={"text": "x"}).status_code == 401
