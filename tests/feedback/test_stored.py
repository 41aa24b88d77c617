"""The feedback package's reads of the store: findings of the current results, and each
series' equipment read from its (encrypted) file once and kept."""

from __future__ import annotations

from feedback_helpers import Spec
from sqlalchemy import select

from radlens.feedback.equipment import Equipment
from radlens.feedback.stored import series_equipment, stored_findings
from radlens.store.db import Database
from radlens.store.models import SeriesRow

WARD = Equipment("Other", "Portable 2", "WARD7")


def _row(db: Database, series_uid: str) -> SeriesRow:
    with db.sessions() as session:
        row = session.scalars(select(SeriesRow).where(SeriesRow.series_uid == series_uid)).one()
    return row


def test_equipment_is_read_from_the_stored_file_once_and_kept(db, site, add_study) -> None:  # type: ignore[no-untyped-def]
    add_study("1.4.1", [Spec()], equipment=WARD)
    assert _row(db, "1.4.1.1").manufacturer is None  # not read at intake
    assert series_equipment(db, site.storage, ["1.4.1.1", "9.9"]) == {"1.4.1.1": WARD}
    row = _row(db, "1.4.1.1")
    assert (row.manufacturer, row.manufacturer_model, row.station_name) == (
        "Other",
        "Portable 2",
        "WARD7",
    )
    # kept: found without the files
    (site.storage).rename(site.storage.with_name("moved"))
    assert series_equipment(db, site.storage, ["1.4.1.1"]) == {"1.4.1.1": WARD}


def test_an_unreadable_file_leaves_the_equipment_unknown_and_is_tried_again(
    db,  # type: ignore[no-untyped-def]
    site,
    add_study,
) -> None:
    add_study("1.4.2", [Spec()], equipment=WARD)
    moved = site.storage.with_name("elsewhere")
    site.storage.rename(moved)
    assert series_equipment(db, site.storage, ["1.4.2.1"]) == {"1.4.2.1": Equipment()}
    assert _row(db, "1.4.2.1").manufacturer is None
    moved.rename(site.storage)
    assert series_equipment(db, site.storage, ["1.4.2.1"]) == {"1.4.2.1": WARD}


def test_stored_findings_of_one_model_and_of_open_studies(db, add_study) -> None:  # type: ignore[no-untyped-def]
    add_study("1.4.3", [Spec(), Spec(model="other", code="nodule", label="Nodule")])
    found = stored_findings(db)
    assert sorted(f.shown.model_name for f in found) == ["cxr_pneumonia", "other"]
    (only,) = stored_findings(db, "other")
    assert only.series_uid == "1.4.3.1" and only.shown.code == "nodule"
    assert len(stored_findings(db, open_only=True)) == 2
