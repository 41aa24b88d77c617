"""Feedback fixtures: a migrated database with encryption at rest (SQLite, then PostgreSQL),
a storage folder, and a factory of analyzed studies with chosen findings and equipment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from feedback_helpers import ACME, PATIENT_ID, Site, Spec, make_instance

from radlens.domain.findings import Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Study
from radlens.feedback.equipment import Equipment
from radlens.privacy.crypto import KeyRing
from radlens.store.db import Database, open_database
from radlens.store.intake import Intake
from radlens.store.jobs import JobQueue
from radlens.store.worklist import get_study


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
def db(database_url: str, keys: KeyRing) -> Iterator[Database]:
    database = open_database(database_url, keys=keys)
    yield database
    database.close()


@pytest.fixture
def site(db: Database, tmp_path: Path) -> Site:
    return Site(db, tmp_path / "storage")


StudyFactory = Callable[..., list[str]]


@pytest.fixture
def add_study(site: Site) -> StudyFactory:
    """``add_study(uid, [Spec(...)], equipment=..., patient_id=...)`` -> finding ids: the
    study stored (encrypted at rest) and analyzed with exactly those findings."""
    intake = Intake(site.db, site.storage)
    queue = JobQueue(site.db, site.storage, quiet_period_s=0.0)

    def make(
        uid: str,
        specs: list[Spec] | None = None,
        equipment: Equipment = ACME,
        patient_id: str = PATIENT_ID,
        frames: int = 1,
        burned_in: bool = False,
    ) -> list[str]:
        specs = specs if specs is not None else [Spec()]
        raw = make_instance(uid, f"{uid}.1.1", equipment, patient_id, frames, burned_in)
        intake.receive(raw, "test")

        def analyze(study: Study) -> StudyResult:
            series = study.series[0]
            sop = series.instances[0].sop_instance_uid
            findings = tuple(
                Finding(
                    s.code,
                    s.label,
                    s.probability,
                    s.threshold,
                    s.model,
                    s.version,
                    sop_instance_uid=sop,
                    grade=s.grade,
                    ood_score=s.ood_score,
                    ood_flag=s.ood_score is not None and s.ood_score >= 1.0,
                    ood_feature_score=s.ood_feature,
                    ood_input_score=s.ood_input,
                    warnings=s.warnings,
                )
                for s in specs
            )
            result = SeriesResult(
                series.series_instance_uid,
                series.modality,
                series.body_part,
                len(series.instances),
                models=tuple({s.model for s in specs}),
                findings=findings,
            )
            return StudyResult(study.study_instance_uid, (result,))

        assert queue.run_one(analyze)
        document = get_study(site.db, uid).result
        assert document is not None
        ids = [str(f["id"]) for s in document["series"] for f in s["findings"]]
        site.findings[uid] = ids
        return ids

    return make
