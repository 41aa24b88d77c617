from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from radlens.cluster.batch import SUMMARY_FILE, run_batch
from radlens.cluster.executors import LocalExecutor
from radlens.cluster.jobs import AnalysisSetup


def test_a_batch_analyzes_every_study_and_a_rerun_skips_them(
    two_studies: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    progress: list[str] = []
    with LocalExecutor(workers=0) as pool:
        first = run_batch(
            str(two_studies),
            out,
            pool,
            AnalysisSetup(),
            on_study=lambda r: progress.append(r.status),
        )
        again = run_batch(str(two_studies), out, pool, AnalysisSetup())
    assert (first.total, first.done, first.skipped, first.failed) == (2, 2, 0, 0)
    assert progress == ["done", "done"] and first.exit_code == 0
    assert first.studies_per_minute > 0
    assert (again.done, again.skipped) == (0, 2)
    studies = pq.read_table(out / "studies.parquet").to_pylist()
    assert len(studies) == 2 and {s["status"] for s in studies} == {"done"}
    findings = pq.read_table(out / "findings.parquet").to_pylist()
    assert [f["code"] for f in findings] == ["pneumonia"]  # the MR image has no model
    for study in studies:
        assert (out / study["output"] / "findings.json").is_file()
        assert (out / study["output"] / "report.md").is_file()
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert (summary["done"], summary["skipped"]) == (0, 2)


def test_rejected_input_is_reported_and_sets_exit_code_2(two_studies: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 200)
    listing = tmp_path / "with-junk.txt"
    listing.write_text(two_studies.read_text() + f"{junk}\n")
    with LocalExecutor(workers=0) as pool:
        summary = run_batch(str(listing), tmp_path / "out", pool, AnalysisSetup(outputs=False))
    assert summary.done == 2 and summary.exit_code == 2
    assert [r.location for r in summary.rejected] == [str(junk)]


def test_shards_together_do_the_whole_batch(two_studies: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with LocalExecutor(workers=0) as pool:
        parts = [
            run_batch(str(two_studies), out, pool, AnalysisSetup(render=False), part=p, parts=2)
            for p in range(2)
        ]
    assert sum(p.done for p in parts) == 2
    assert pq.read_table(out / "studies.parquet").num_rows == 2


def test_a_batch_with_a_model_store_runs_the_promoted_version_and_redoes_after_rollback(
    two_studies: Path, tmp_path: Path
) -> None:
    import shutil
    from dataclasses import replace

    from radlens.models.card import read_card, write_card
    from radlens.models.registry import discover, get_model
    from radlens.models.versions import add_installed, add_version, promote, rollback, write_gate

    store = tmp_path / "models"
    installed = get_model("cxr_pneumonia", discover())
    add_installed(store, installed)
    candidate = Path(shutil.copytree(installed.folder, tmp_path / "candidate"))
    card = read_card(candidate / "card.json")
    write_card(replace(card, version=f"{card.version}+site.2"), candidate / "card.json")
    write_gate(candidate, {"passed": True})
    add_version(store, candidate, {"number": 2, "parent": 1})
    promote(store, "cxr_pneumonia", 2, by="ana")
    setup = AnalysisSetup(model_store=store)
    out = tmp_path / "out"
    with LocalExecutor(workers=0) as pool:
        first = run_batch(str(two_studies), out, pool, setup)
        [finding] = pq.read_table(out / "findings.parquet").to_pylist()
        assert finding["model_version"] == f"{card.version}+site.2"
        rollback(store, "cxr_pneumonia", by="ana")
        again = run_batch(str(two_studies), out, pool, setup)
    assert first.done == 2
    assert again.done == 2 and again.skipped == 0  # other model versions: done again
    versions = {f["model_version"] for f in pq.read_table(out / "findings.parquet").to_pylist()}
    assert card.version in versions
