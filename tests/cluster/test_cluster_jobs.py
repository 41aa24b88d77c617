from __future__ import annotations

import json
from pathlib import Path

import pytest

from radlens.cluster.jobs import (
    AnalysisSetup,
    ModelSet,
    StudyDone,
    StudyFailed,
    StudyJob,
    model_set,
    run_study,
)
from radlens.io.scan import scan
from radlens.models.registry import discover
from radlens.report.findings_json import to_json


def test_model_set_is_sorted_and_keyed_by_names_and_versions() -> None:
    a = ModelSet(("a@1", "b@2"))
    assert a.text == "a@1,b@2" and len(a.key) == 16
    assert ModelSet(("a@1", "b@3")).key != a.key
    names = model_set(discover()).names
    assert list(names) == sorted(names) and all("@" in n for n in names)


def test_a_study_job_needs_exactly_one_source(chest_file: Path) -> None:
    study = scan([chest_file]).studies[0]
    with pytest.raises(ValueError, match="exactly one"):
        StudyJob(study.study_instance_uid)
    with pytest.raises(ValueError, match="exactly one"):
        StudyJob(study.study_instance_uid, study=study, files=(("x", b"x"),))


def test_run_study_returns_the_result_and_the_files_analyze_writes(chest_file: Path) -> None:
    study = scan([chest_file]).studies[0]
    done = run_study(StudyJob(study.study_instance_uid, study=study), AnalysisSetup())
    assert isinstance(done, StudyDone)
    names = [name for name, _ in done.files]
    assert names[-2:] == ["findings.json", "report.md"]
    document = json.loads(dict(done.files)["findings.json"])
    assert document["study_instance_uid"] == study.study_instance_uid
    assert [f.code for f in done.result.findings] == ["pneumonia"]
    assert done.models_key == model_set(discover()).key
    assert done.worker.endswith(f":{__import__('os').getpid()}")


def test_files_sent_along_give_the_same_findings_as_paths(chest_file: Path) -> None:
    study = scan([chest_file]).studies[0]
    setup = AnalysisSetup(outputs=False)
    by_path = run_study(StudyJob(study.study_instance_uid, study=study), setup)
    sent = StudyJob(study.study_instance_uid, files=((str(chest_file), chest_file.read_bytes()),))
    by_bytes = run_study(sent, setup)
    assert isinstance(by_path, StudyDone) and isinstance(by_bytes, StudyDone)
    assert by_bytes.files == ()
    assert _document(by_bytes) == _document(by_path) and by_path.result.findings


def _document(done: StudyDone) -> dict[str, object]:
    """The findings document without timings (arrays compared through it)."""
    return {k: v for k, v in to_json(done.result).items() if k != "timings_s"}


def test_unreadable_files_come_back_as_a_typed_failure() -> None:
    junk = StudyJob("1.2.3", files=(("junk.dcm", b"not dicom at all"),))
    failed = run_study(junk, AnalysisSetup())
    assert isinstance(failed, StudyFailed)
    assert failed.study_uid == "1.2.3"
    assert failed.reason.startswith("EmptyInputError")
