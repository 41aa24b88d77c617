"""benchmarks/bench_models.py and benchmarks/sweep.py: pure functions, and one whole run."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench_helpers import BENCHMARKS, load_benchmark
from radlens.models.card import InputSpec
from radlens.models.registry import load_model

bench = load_benchmark("bench_models")
sweep = load_benchmark("sweep")


def _ref(model: str | None, dataset: str = "Tiny", resolution: str = "224") -> dict[str, Any]:
    return {
        "dataset": dataset,
        "data_file": "tiny.npz",
        "resolution": resolution,
        "model": model,
        "auc": 0.95,
        "acc": 0.9,
        "auc_source": "Paper A | table 2",
        "acc_source": "Paper B",
        "split": "test",
        "note": "A note.",
    }


# --- pure functions ---------------------------------------------------------------------


def test_markdown_table_has_one_separator_cell_per_column_and_escapes_pipes() -> None:
    table = bench.markdown_table(["a", "b"], [["x|y", 1]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]


@pytest.mark.parametrize(
    ("size", "budget"),
    [((28, 28), 5.0), ((64, 64), 5.0), ((224, 224), 30.0), ((28, 28, 28), 20.0)],
)
def test_inference_budget_follows_the_issue_by_input_size(
    size: tuple[int, ...], budget: float
) -> None:
    assert bench.inference_budget_ms(InputSpec(size=size)) == budget


def test_inference_budget_is_none_where_the_issue_sets_none() -> None:
    assert bench.inference_budget_ms(InputSpec(size=(64, 64, 64))) is None
    assert bench.inference_budget_ms(InputSpec(size=(512, 512))) is None


def test_budget_verdict_says_met_not_met_or_why_not_judged() -> None:
    assert bench.budget_verdict(4.9, 5.0) == "met"
    assert bench.budget_verdict(5.1, 5.0) == "NOT met"
    assert bench.budget_verdict(None, 5.0) == "not measured"
    assert bench.budget_verdict(3.0, None) == "no budget set"


def test_resolution_of_names_images_and_volumes() -> None:
    assert bench.resolution_of(InputSpec(size=(224, 224))) == "224"
    assert bench.resolution_of(InputSpec(size=(28, 28, 28))) == "28^3"
    assert bench.resolution_of(InputSpec(size=(32, 64))) == "32x64"


def test_reference_for_returns_the_rows_a_model_serves_in_file_order() -> None:
    rows = [_ref("a", resolution="28"), _ref(None), _ref("b"), _ref("a", resolution="64")]
    assert [r["resolution"] for r in bench.reference_for("a", rows)] == ["28", "64"]
    assert bench.reference_for("c", rows) == []


def test_shipped_reference_file_names_a_model_or_null_and_cites_its_sources() -> None:
    data = bench.read_references(BENCHMARKS / "reference.json")
    assert len(data["sources"]) >= 3
    for row in data["rows"]:
        assert row["split"] == "test"
        for key, low in (("auc", 0.5), ("acc", 0.0)):
            if row[key] is None:  # no published figure: the note says why
                assert row["note"] and row[f"{key}_source"] is None
            else:
                assert low < row[key] <= 1 and row[f"{key}_source"]
    assert bench.reference_for("cxr_pneumonia", data["rows"])[0]["resolution"] == "224"


def test_card_check_flags_only_differences_over_the_tolerance(make_card: Any) -> None:
    card = make_card()  # val auc 0.9, acc 0.8, ece 0.05
    assert bench.card_check(card, {"auc": 0.901, "acc": 0.8, "ece": 0.05}) == []
    [line] = bench.card_check(card, {"auc": 0.95, "acc": 0.8, "qwk": 0.3})
    assert "auc measured 0.9500, card says 0.9000" in line


def test_results_table_shows_the_gap_as_val_minus_test_and_ordinal_columns() -> None:
    row = {
        "model": "grader",
        "version": "1.0.0",
        "task": "ordinal",
        "installed": True,
        "val": {"n": 10, "auc": 0.8, "acc": 0.6, "ece": 0.05, "qwk": 0.7, "mae": 0.5},
        "reference": {"auc": 0.75, "acc": 0.55},
        "gap_val_minus_test": {"auc": 0.05, "acc": 0.05},
        "train_min": 2.0,
        "ms_fp32": 1.234,
        "ms_int8": None,
        "mb_fp32": 1.0,
        "mb_int8": 0.3,
        "budget_ms": 5.0,
        "budget_fp32": "met",
        "budget_int8": None,
    }
    header, _, line = bench.results_table([row]).splitlines()
    assert "val QWK" in header and "gap AUC (val − test)" in header
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:8] == ["grader 1.0.0", "10", "0.800", "0.600", "0.050", "0.700", "0.500", "0.750"]
    assert "+0.050" in cells and "1.0 + 0.3 int8" in cells and "≤ 5 ms: met" in cells


def test_results_table_of_a_reference_without_model_says_so() -> None:
    row = bench.reference_only_row(_ref(None), installed=False)
    table = bench.results_table([row])
    assert "no model yet" in table and "val QWK" not in table


def test_render_experiments_groups_by_dataset_and_adds_qwk_for_ordinal_only() -> None:
    records = [
        {"dataset": "breast", "variant": "base", "sets": {}, "seed": 0, "minutes": 1.0,
         "val": {"auc": 0.9, "acc": 0.85, "ece": 0.04}, "shipped": True, "note": "recipe"},
        {"dataset": "retina", "variant": "emd", "sets": {"schedule.loss": "ce+emd"}, "seed": 0,
         "val": {"auc": 0.7, "acc": 0.5, "ece": 0.1, "qwk": 0.6}, "minutes": 2.5,
         "shipped": False, "note": "EMD loss"},
        {"dataset": "breast", "variant": "stem3", "sets": {"net.stem_kernel": 3}, "seed": 1,
         "val": {"auc": 0.91, "acc": 0.86, "ece": 0.03}, "minutes": 1.2, "shipped": False,
         "note": "small stem"},
    ]  # fmt: skip
    text = bench.render_experiments(records)
    breast, retina = text.split("### ")[1:]
    assert breast.startswith("breast") and "stem3" in breast and "net.stem_kernel=3" in breast
    assert "val QWK" not in breast and "recipe as is" in breast and "| yes |" in breast
    assert 'schedule.loss="ce+emd"' in retina and "val QWK" in retina and "0.600" in retina


def test_render_experiments_without_records_says_how_to_make_them() -> None:
    assert "benchmarks/sweep.py" in bench.render_experiments([])


def test_read_experiments_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert bench.read_experiments(tmp_path / "none.jsonl") == []
    (tmp_path / "e.jsonl").write_text('{"variant": "a"}\n\n{"variant": "b"}\n')
    assert [r["variant"] for r in bench.read_experiments(tmp_path / "e.jsonl")] == ["a", "b"]


# --- the whole bench on a tiny model -----------------------------------------------------


def _tiny_npz(path: Path) -> None:
    """Four 224-px images; the positives are mostly bright, which the tiny model scores up."""
    images = np.zeros((4, 224, 224), np.uint8)
    images[:, :, :40] = 200
    images[2:, :, :160] = 200
    labels = np.array([[0], [0], [1], [1]])
    np.savez(path, val_images=images, val_labels=labels, train_images=images, train_labels=labels)


def _references() -> dict[str, Any]:
    rows = [_ref("tiny_cxr"), _ref(None, resolution="128"), _ref("absent", "Other", "28")]
    return {"sources": [{"citation": "Someone. A paper. 2024.", "doi": "10/x"}], "rows": rows}


def test_run_benchmarks_a_tiny_model_and_writes_json_and_markdown(
    tiny_onnx_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _tiny_npz(tmp_path / "tiny.npz")
    experiments = tmp_path / "experiments.jsonl"
    experiments.write_text(
        json.dumps({"dataset": "tiny_cxr", "variant": "base", "val": {"auc": 0.9}}) + "\n"
    )
    model = load_model(tiny_onnx_model_dir)
    result = bench.run(
        [model], _references(), tmp_path, tmp_path / "out", experiments, runs=3, warmups=1
    )

    saved = json.loads((tmp_path / "out" / "models.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    assert {"cpu", "cores", "onnxruntime", "numpy"} <= set(saved["machine"])
    # How busy and how fast the machine was, so runs of different days can be compared.
    probe = saved["machine"]["cpu_probe_ms"]
    assert len(probe) == 2 and all(ms > 0 for ms in probe)
    assert len(saved["machine"]["load_avg_1min"]) == 2
    tiny = saved["rows"][0]
    assert (tiny["model"], tiny["dataset"], tiny["resolution"]) == ("tiny_cxr", "Tiny", "224")
    assert tiny["val"]["n"] == 4 and tiny["val"]["auc"] == 1.0
    assert tiny["gap_val_minus_test"] == {"auc": 0.05, "acc": round(tiny["val"]["acc"] - 0.9, 4)}
    assert tiny["ms_fp32"] > 0 and tiny["budget_fp32"] in ("met", "NOT met")
    assert tiny["mb_fp32"] == round(model.weights.stat().st_size / 1e6, 2)
    assert tiny["card_mismatch"]  # the tiny card claims val auc 0.9
    assert [r["model"] for r in saved["rows"][1:]] == [None, "absent"]

    markdown = (tmp_path / "out" / "models.md").read_text()
    assert "held-out official test split" in markdown
    probe_text = "CPU probe (`benchmarks/probe.py`: a fixed pure-Python loop, median of 7)"
    assert f"{probe_text} {probe[0]:.1f} ms" in markdown
    assert "| tiny_cxr 0.0.1 | 4 | 1.000 |" in markdown
    assert "no model yet" in markdown and "absent (not installed)" in markdown
    assert "of the 40 MB budget (met)" in markdown
    assert "### tiny_cxr" in markdown and "Someone. A paper. 2024. doi:10/x" in markdown
    printed = capsys.readouterr().out
    assert "WARNING tiny_cxr: val auc measured 1.0000, card says 0.9000" in printed
    assert "skip Kermany" not in printed and "skip Other 28: absent not installed" in printed


def test_render_only_rewrites_markdown_from_the_stored_run_and_the_new_records(
    tiny_onnx_model_dir: Path, tmp_path: Path
) -> None:
    _tiny_npz(tmp_path / "tiny.npz")
    experiments = tmp_path / "experiments.jsonl"
    record = {"dataset": "tiny_cxr", "variant": "base", "val": {"auc": 0.9}}
    experiments.write_text(json.dumps(record) + "\n")
    out = tmp_path / "out"
    model = load_model(tiny_onnx_model_dir)
    bench.run([model], _references(), tmp_path, out, experiments, runs=3, warmups=1)
    stored = (out / "models.json").read_text()
    assert "later-variant" not in (out / "models.md").read_text()

    experiments.write_text(
        experiments.read_text() + json.dumps({**record, "variant": "later-variant"}) + "\n"
    )
    (tmp_path / "experiments-findings.md").write_text("- **A finding in words.**\n")
    assert (
        bench.main(["--render-only", "--out-dir", str(out), "--experiments", str(experiments)]) == 0
    )

    markdown = (out / "models.md").read_text()
    assert "later-variant" in markdown and "A finding in words." in markdown
    assert "| tiny_cxr 0.0.1 | 4 | 1.000 |" in markdown  # the measured figures, kept
    assert (out / "models.json").read_text() == stored


def test_a_run_from_before_the_machine_state_was_kept_renders_without_it() -> None:
    machine = {"cpu": "x", "cores": 2, "onnxruntime": "1", "numpy": "2"}
    assert bench._machine_state(machine) == ""
    state = bench._machine_state(machine | {"load_avg_1min": [0.5, 1.25], "cpu_probe_ms": [9, 11]})
    assert "Load average (1 min) 0.50 at start, 1.25 at the end" in state
    assert "9.0 ms at start, 11.0 ms at the end" in state


def test_render_only_without_a_measured_run_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--render-only", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "models.json: no measured run to render" in err
    assert not (tmp_path / "models.md").exists()


def test_run_without_data_still_times_the_model_and_marks_val_missing(
    tiny_onnx_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = bench.run(
        [load_model(tiny_onnx_model_dir)],
        _references(),
        tmp_path / "no-data",
        tmp_path,
        tmp_path / "none.jsonl",
        runs=2,
        warmups=0,
    )
    tiny = result["rows"][0]
    assert tiny["val"] is None and tiny["ms_fp32"] > 0 and tiny["gap_val_minus_test"] is None
    assert tiny["timing_input"].startswith("zeros")
    assert "val figures missing" in (tmp_path / "models.md").read_text()
    assert "not found (set RADLENS_DATA" in capsys.readouterr().out


def test_run_times_the_int8_file_a_card_names(tiny_onnx_model_dir: Path, tmp_path: Path) -> None:
    _tiny_npz(tmp_path / "tiny.npz")
    folder = shutil.copytree(tiny_onnx_model_dir, tmp_path / "zoo" / "tiny_cxr")
    shutil.copy(folder / "model.onnx", folder / "model_int8.onnx")  # stands in for int8 weights
    model = load_model(folder)
    # Set the attribute directly: the bench reads ``int8`` with getattr, whether or not
    # ModelCard has the field, and needs only its file and auc.
    object.__setattr__(model.card, "int8", {"file": "model_int8.onnx", "auc": 1.0})
    result = bench.run([model], _references(), tmp_path, tmp_path, tmp_path / "x", 2, 0)
    tiny = result["rows"][0]
    assert tiny["ms_int8"] > 0 and tiny["mb_int8"] == tiny["mb_fp32"]
    assert tiny["int8_val"]["auc"] == 1.0 and tiny["budget_int8"] in ("met", "NOT met")
    assert result["weights_mb_total"] == round(2 * tiny["mb_fp32"], 2)


# --- sweep.py ---------------------------------------------------------------------------


def test_build_command_passes_sets_seed_and_epochs_to_radlens_train() -> None:
    command = sweep.build_command(
        "radlens", Path("recipes/r.toml"), Path("/tmp/o"), ["net.arch=resnet10"], 3, 5
    )
    assert command == [
        "radlens", "train", "recipes/r.toml", "-o", "/tmp/o",
        "--set", "net.arch=resnet10", "--seed", "3", "--epochs", "5",
    ]  # fmt: skip


def test_experiment_record_takes_val_seed_and_minutes_from_the_card() -> None:
    card = {
        "metrics": {"val": {"auc": 0.71234, "acc": 0.5, "ece": 0.1, "qwk": 0.6, "nll": 1.0}},
        "training": {"seed": 2, "duration_min": 3.5},
    }
    record = sweep.experiment_record(
        card, recipe="recipes/r.toml", dataset="r", variant="v", note="n",
        sets={"schedule.loss": "ce+emd"}, out_dir=Path("/tmp/o"), shipped=False, wall_min=9.0,
        date="2026-01-01",
    )  # fmt: skip
    assert record["val"] == {"auc": 0.7123, "acc": 0.5, "ece": 0.1, "qwk": 0.6}
    assert (record["seed"], record["minutes"], record["shipped"]) == (2, 3.5, False)


FAKE_RADLENS = """\
import json, sys
from pathlib import Path
out = Path(sys.argv[sys.argv.index("-o") + 1])
out.mkdir(parents=True)
card = {"metrics": {"val": {"auc": 0.9, "acc": 0.8, "ece": 0.02}},
        "training": {"seed": 7, "duration_min": None}}
(out / "card.json").write_text(json.dumps(card))
"""


def _fake_radlens(tmp_path: Path) -> str:
    script = tmp_path / "fake_radlens"
    script.write_text(f"#!{sys.executable}\n{FAKE_RADLENS}")
    script.chmod(0o755)
    return str(script)


def _recipe(tmp_path: Path) -> Path:
    recipe = tmp_path / "toy.toml"
    recipe.write_text('name = "toy_model"\n')
    return recipe


def test_sweep_dry_run_prints_the_command_and_records_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "experiments.jsonl"
    argv = [str(_recipe(tmp_path)), "--variant", "a", "--note", "n", "--set", "seed=1"]
    code = sweep.main([*argv, "--dry-run", "--log", str(log), "--root", str(tmp_path)])
    assert code == 0 and not log.exists()
    assert f"-o {tmp_path}/toy/a --set seed=1" in capsys.readouterr().out


def test_sweep_trains_then_appends_one_line_and_refuses_to_overwrite(tmp_path: Path) -> None:
    log = tmp_path / "experiments.jsonl"
    argv = [
        str(_recipe(tmp_path)), "--variant", "stem3", "--note", "small stem",
        "--set", "net.stem_kernel=3", "--ship", "--log", str(log), "--root", str(tmp_path / "runs"),
        "--radlens", _fake_radlens(tmp_path),
    ]  # fmt: skip
    assert sweep.main(argv) == 0
    [line] = log.read_text().splitlines()
    record = json.loads(line)
    assert (record["dataset"], record["variant"], record["seed"]) == ("toy_model", "stem3", 7)
    assert record["sets"] == {"net.stem_kernel": 3} and record["shipped"] is True
    assert record["val"] == {"auc": 0.9, "acc": 0.8, "ece": 0.02}
    assert record["minutes"] is not None  # the wall time, as the card gives none
    assert sweep.main(argv) == 2  # the out dir holds a model now
    assert len(log.read_text().splitlines()) == 1


def test_sweep_records_a_model_trained_elsewhere_from_its_own_card(tmp_path: Path) -> None:
    log = tmp_path / "experiments.jsonl"
    folder = tmp_path / "trained"
    folder.mkdir()
    card = {
        "name": "toy_model",
        "metrics": {"val": {"auc": 0.84, "acc": 0.77, "ece": 0.05}},
        "training": {
            "seed": 1,
            "duration_min": 19.1,
            "command": "radlens train recipes/toy.toml --seed 1 --set schedule.box_loss=1.0 "
            "--set 'input.size=[320,320]' -o /tmp/x",
        },
    }
    (folder / "card.json").write_text(json.dumps(card))
    argv = [str(_recipe(tmp_path)), "--variant", "box", "--note", "n", "--log", str(log)]
    assert sweep.main([*argv, "--from-dir", str(folder)]) == 0
    record = json.loads(log.read_text())
    assert record["sets"] == {"schedule.box_loss": 1.0, "input.size": [320, 320], "seed": 1}
    assert (record["seed"], record["minutes"], record["out_dir"]) == (1, 19.1, str(folder))
    # A folder of another model, or no model at all, is refused and records nothing.
    card["name"] = "other"
    (folder / "card.json").write_text(json.dumps(card))
    assert sweep.main([*argv, "--from-dir", str(folder)]) == 2
    assert sweep.main([*argv, "--from-dir", str(tmp_path / "nothing")]) == 2
    assert len(log.read_text().splitlines()) == 1


def test_a_reference_without_a_published_figure_says_so() -> None:
    ref = {"split": "test", "auc": None, "auc_source": None, "acc": 0.697, "acc_source": "Chen"}
    row = {"model": "m", "reference": ref | {"note": "Why."}, "installed": True, "val": {}}
    [note] = bench._group_notes([row])
    assert note.startswith("Reference (test split): AUC: no published figure; ACC 0.697 from Chen.")
    assert note.endswith("Why.") and "None" not in note
