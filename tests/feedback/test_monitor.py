"""Monitoring per model version and site/scanner: volume, positive rate, agreement,
calibration on reviewed cases, OOD scores and drift alerts; pure and on stored studies."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from feedback_helpers import Spec

from radlens.evaluation.metrics import ece_binary
from radlens.feedback.adjudication import adjudicate_all
from radlens.feedback.cards import card_named, known_cards
from radlens.feedback.equipment import Equipment
from radlens.feedback.monitor import HISTOGRAM_EDGES, Observed, monitor
from radlens.feedback.records import FeedbackRecord, ShownFinding
from radlens.feedback.views import FeedbackPolicy, monitoring
from radlens.models.card import ModelCard, read_card
from radlens.models.registry import zoo_folder
from radlens.store.review import Decision, review_finding

T0 = datetime(2025, 3, 1, 8, 0)
CT01 = Equipment("ACME", "Scan 1", "CT01")
WARD = Equipment("Other", "Portable 2", "WARD7")


@pytest.fixture
def card() -> ModelCard:
    """The shipped pneumonia card, renamed so the tests own its name and version."""
    shipped = read_card(zoo_folder() / "cxr_pneumonia" / "card.json")
    return replace(shipped, name="cxr", version="1.0.0")


def _observed(
    i: int,
    p: float,
    ood: float,
    equipment: Equipment = CT01,
    version: str = "1.0.0",
    day: int = 0,
) -> Observed:
    shown = ShownFinding(
        "pneumonia",
        "Pneumonia",
        p,
        0.5,
        p >= 0.5,
        "cxr",
        version,
        ood_score=ood,
        ood_flag=ood >= 1,
        sop_instance_uid=f"1.{i}.1",
    )
    return Observed(f"1.{i}", f"f{i}", shown, equipment, T0 + timedelta(days=day))


def test_volume_positive_rate_agreement_and_calibration(card: ModelCard) -> None:
    observed = [_observed(i, p, 0.5) for i, p in enumerate([0.9, 0.8, 0.2, 0.1, 0.6])]
    records = []
    # readers: finding 0 confirmed by two, 1 rejected, 2 accepted, 4 split between two
    for i, reader, decision in [
        (0, "ann", "accepted"),
        (0, "bob", "accepted"),
        (1, "ann", "rejected"),
        (2, "ann", "accepted"),
        (4, "ann", "accepted"),
        (4, "bob", "rejected"),
    ]:
        shown = observed[i].shown
        records.append(FeedbackRecord(len(records), f"1.{i}", f"f{i}", reader, T0, decision, shown))
    report = monitor(observed, adjudicate_all(records), {("cxr", "1.0.0"): card})
    (m,) = report.models
    st = m.stats
    assert (m.model_name, m.model_version, m.card_found) == ("cxr", "1.0.0", True)
    assert (st.n_studies, st.n_images, st.n_findings, st.n_positive) == (5, 5, 5, 3)
    assert st.positive_rate == 0.6
    assert (st.n_reviewed, st.n_resolved) == (4, 3)  # finding 4 is a tie
    assert st.ai_agreement == pytest.approx(2 / 3)  # 0 and 2 agree, 1 does not
    assert (st.n_multi_read, st.reader_agreement) == (2, 0.5)
    expected = ece_binary(np.array([1, 0, 0]), np.array([0.9, 0.8, 0.2]))
    assert st.n_calibration == 3 and st.ece == pytest.approx(expected, abs=1e-6)
    assert len(st.ood.histogram) == len(HISTOGRAM_EDGES) + 1 and sum(st.ood.histogram) == 5
    assert "judged from 30" in st.ood.drift.reason and report.alerts == ()


def test_drift_alerts_per_model_version_and_per_scanner(card: ModelCard) -> None:
    """One station sends images far from the training data; the other does not."""
    assert card.ood is not None and card.ood.inputs is not None
    rng = np.random.default_rng(0)
    clean = [_observed(i, 0.3, float(rng.uniform(0.1, 0.9))) for i in range(60)]
    clean += [_observed(100 + i, 0.3, 1.2) for i in range(3)]  # the usual ~5% flagged
    shifted = [_observed(200 + i, 0.3, float(rng.uniform(1.0, 3.0)), WARD) for i in range(40)]
    report = monitor(clean + shifted, {}, {("cxr", "1.0.0"): card})
    (m,) = report.models
    by_station = {s.equipment.station_name: s.stats for s in m.strata}
    assert by_station["WARD7"].ood.drift.alert and by_station["WARD7"].ood.flag_rate == 1.0
    assert not by_station["CT01"].ood.drift.alert
    assert any("WARD7" in alert for alert in report.alerts)
    assert not any("CT01" in alert for alert in report.alerts)
    assert m.stats.ood.expected_flag_rate == card.ood.inputs.val_flag_rate


def test_versions_are_apart_and_an_unknown_version_has_no_drift_test(card: ModelCard) -> None:
    observed = [_observed(1, 0.9, 0.5), _observed(2, 0.9, 0.5, version="2.0.0", day=1)]
    report = monitor(observed, {}, {("cxr", "1.0.0"): card})
    assert [(m.model_version, m.card_found) for m in report.models] == [
        ("1.0.0", True),
        ("2.0.0", False),
    ]
    assert "not installed" in report.models[1].stats.ood.drift.reason
    assert [(d.day.isoformat(), d.n_images) for d in report.models[1].days] == [("2025-03-02", 1)]


def test_known_cards_reads_every_version_and_card_named_takes_the_highest(
    tmp_path: Path,
) -> None:
    source = json.loads((zoo_folder() / "cxr_pneumonia" / "card.json").read_text())
    for number, version in ((1, "1.0.0"), (2, "1.10.0"), (3, "1.9.0")):
        folder = tmp_path / "store" / "site_cxr" / str(number)
        folder.mkdir(parents=True)
        card = {**source, "name": "site_cxr", "version": version}
        (folder / "card.json").write_text(json.dumps(card))
    (tmp_path / "store" / "broken").mkdir()
    (tmp_path / "store" / "broken" / "card.json").write_text("{")
    cards = known_cards([tmp_path / "store"])
    assert {v for n, v in cards if n == "site_cxr"} == {"1.0.0", "1.10.0", "1.9.0"}
    assert card_named("site_cxr", cards).version == "1.10.0"
    with pytest.raises(LookupError, match="no model named"):
        card_named("nothing", cards)


def test_stored_studies_are_monitored_with_their_equipment(
    db,  # type: ignore[no-untyped-def]
    site,
    add_study,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "models" / "cxr"
    folder.mkdir(parents=True)
    source = json.loads((zoo_folder() / "cxr_pneumonia" / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**source, "name": "cxr", "version": "1.0.0"}))
    spec = Spec(model="cxr", version="1.0.0")
    (a,) = add_study("1.3.1", [replace(spec, probability=0.9)])
    add_study("1.3.2", [replace(spec, probability=0.2)], equipment=WARD)
    add_study("1.3.3", [replace(spec, probability=0.7, ood_score=1.5)], equipment=WARD)
    review_finding(db, "1.3.1", a, Decision.REJECTED, "ann")
    report = monitoring(db, site.storage, [tmp_path / "models"], FeedbackPolicy())
    (m,) = report.models
    assert m.card_found and (m.stats.n_studies, m.stats.n_positive) == (3, 2)
    assert m.stats.ai_agreement == 0.0 and m.stats.ood.flag_rate == pytest.approx(1 / 3)
    strata = {s.equipment: s.stats for s in m.strata}
    assert set(strata) == {Equipment("ACME", "Scan 1", "CT01"), WARD}
    assert strata[WARD].n_studies == 2 and strata[WARD].ood.flag_rate == 0.5
    # the equipment was read from the stored (encrypted) files once and kept
    later = monitoring(db, site.storage, [tmp_path / "models"], since=datetime(2100, 1, 1))
    assert later.models == ()
    assert monitoring(db, site.storage, model_name="other").models == ()


def test_a_detector_is_monitored_for_drift_on_its_input_distance() -> None:
    shipped = read_card(zoo_folder() / "bccd_cells" / "card.json")
    detector = replace(shipped, name="cxr", version="1.0.0")  # the names _observed uses
    spec = detector.input_ood
    assert detector.ood is None and spec is not None
    rng = np.random.default_rng(1)

    def seen(i: int, distance: float, equipment: Equipment = CT01) -> Observed:
        item = _observed(i, 0.3, distance / spec.threshold, equipment)
        shown = replace(item.shown, ood_input_score=distance)
        return replace(item, shown=shown)

    # Like its val images: half below the median, about 5% above the threshold.
    med, top = spec.median, spec.threshold
    typical = [float(v) for v in rng.uniform(0.3 * med, med, 30)]
    typical += [float(v) for v in rng.uniform(med, top, 27)]
    typical += [float(v) for v in rng.uniform(top, 1.3 * top, 3)]
    clean = [seen(i, d) for i, d in enumerate(typical)]
    far = [seen(200 + i, float(rng.uniform(1.2, 3.0)) * spec.threshold, WARD) for i in range(40)]
    report = monitor(clean + far, {}, {("cxr", "1.0.0"): detector})
    (m,) = report.models
    by_station = {s.equipment.station_name: s.stats for s in m.strata}
    assert by_station["WARD7"].ood.drift.alert and not by_station["CT01"].ood.drift.alert
    assert m.stats.ood.expected_flag_rate == spec.val_flag_rate
