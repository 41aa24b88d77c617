from __future__ import annotations

from pathlib import Path

import pytest

from radlens.cluster.executors import LocalExecutor
from radlens.cluster.jobs import AnalysisSetup
from radlens.cluster.remote import ClusterAnalyzer
from radlens.domain.findings import StudyResult
from radlens.errors import InputError
from radlens.io.scan import scan
from radlens.models.registry import discover
from radlens.pipeline import onnx_backends
from radlens.report.findings_json import to_json
from radlens.store.jobs import pipeline_analyzer


def _document(result: StudyResult) -> dict[str, object]:
    return {k: v for k, v in to_json(result).items() if k != "timings_s"}


def test_the_cluster_analyzer_gives_what_the_local_workers_give(chest_file: Path) -> None:
    study = scan([chest_file]).studies[0]
    local = pipeline_analyzer(discover(), onnx_backends())(study)
    remote = ClusterAnalyzer(LocalExecutor(workers=0), AnalysisSetup(outputs=False))
    try:
        assert _document(remote(study)) == _document(local) and local.findings
    finally:
        remote.close()


def test_a_study_the_workers_cannot_read_raises_an_input_error(
    chest_file: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "chest.dcm"
    copy.write_bytes(chest_file.read_bytes())
    study = scan([copy]).studies[0]
    copy.write_bytes(b"gone")  # replaced after the scan: the worker gets junk
    remote = ClusterAnalyzer(LocalExecutor(workers=0), AnalysisSetup(outputs=False))
    with pytest.raises(InputError, match="EmptyInputError"):
        remote(study)
