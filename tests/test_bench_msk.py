"""benchmarks/bench_msk.py: where a fracture classifier's heatmap points (the pointing game
and the box around a fracture's centre), the ``--cam-compare`` argument, and the table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench_helpers import BENCHMARKS, load_benchmark
from fracatlas_helpers import fracatlas_like
from radlens.domain.findings import Box
from radlens.io.prepare import prepare
from radlens.models.registry import discover, get_model

bench = load_benchmark("bench_msk")


def test_a_point_is_near_a_box_inside_it_or_within_the_tolerance() -> None:
    truth = np.array([[10.0, 10.0, 20.0, 20.0], [100.0, 100.0, 110.0, 130.0]])
    assert bench._near(truth, 15, 15, 0.0).tolist() == [True, False]
    assert bench._near(truth, 29, 15, 10.0).tolist() == [True, False]  # 9 px right of box 1
    assert bench._near(truth, 31, 15, 10.0).tolist() == [False, False]  # 11 px
    assert bench._near(truth, 28, 28, 10.0).tolist() == [False, False]  # 8 px each way: 11.3
    assert bench._near(truth, 105, 140, 10.0).tolist() == [False, True]


def test_cam_compare_takes_the_last_equals_sign_as_the_separator() -> None:
    assert bench.cam_compare_arg("swapping p = 0.3=/tmp/m") == ("swapping p = 0.3", Path("/tmp/m"))
    for bad in ("no-separator", "=/tmp/m", "label="):
        with pytest.raises(argparse.ArgumentTypeError, match="LABEL=DIR"):
            bench.cam_compare_arg(bad)


def _view(tmp_path: Path) -> Path:
    """A prepared FracAtlas-layout view: 2 fractured val images with a box at x 4-14..16."""
    prepare("fracatlas", fracatlas_like(tmp_path / "src"), tmp_path / "view")
    return tmp_path / "view"


def _finding(heatmap: np.ndarray, box: Box) -> SimpleNamespace:
    return SimpleNamespace(heatmap=heatmap, box=box)


def test_the_peak_and_the_box_are_judged_in_source_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heatmap may be smaller than the image: its peak is mapped back before the
    distance to a labelled box is taken."""
    monkeypatch.setattr(bench, "VIEW", _view(tmp_path))
    # Val images are 32 x 40 with the box (4, 5)-(14..16, 20); a 16 x 20 heatmap peaking at
    # row 5, column 3 points at source (7, 11): inside the box.
    on = np.zeros((16, 20), np.float32)
    on[5, 3] = 1.0
    # Peak at the far corner: source (39, 31), 23 px right of the box and 11 below.
    off = np.zeros((16, 20), np.float32)
    off[15, 19] = 1.0
    answers = iter(
        [
            [_finding(on, Box(2.0, 2.0, 12.0, 14.0))],  # holds the centre (9..10, 12.5)
            [_finding(off, Box(30.0, 20.0, 40.0, 32.0))],  # does not
        ]
    )
    monkeypatch.setattr(bench, "predict", lambda *args, **kwargs: next(answers))
    model = get_model("fracture_xray", discover(include_disabled=True))
    got = bench.localization_figures(model, "shipped")
    assert got["fractured"] == 2
    assert got["peak_near_a_fracture_box"] == 1
    assert got["box_holds_a_fracture_centre"] == 1
    assert got["sha256"] == model.card.sha256


def test_the_real_model_scores_every_fractured_image_of_a_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through ONNX Runtime and ``predict``, with the operating threshold out of the way:
    every fractured image gets a box whatever its probability."""
    monkeypatch.setattr(bench, "VIEW", _view(tmp_path))
    model = get_model("fracture_xray", discover(include_disabled=True))
    got = bench.localization_figures(model, "shipped")
    assert got["fractured"] == 2
    assert 0 <= got["peak_near_a_fracture_box"] <= 2
    assert 0 <= got["box_holds_a_fracture_centre"] <= 2


def test_the_table_has_a_row_per_model_and_is_empty_without_rows() -> None:
    rows: list[dict[str, Any]] = [
        {
            "label": label,
            "model": "fracture_xray 9.9.9",
            "fractured": 82,
            "peak_near_a_fracture_box": peaks,
            "box_holds_a_fracture_centre": centred,
            "median_box_share_of_image": share,
            "point_tolerance_px": 15.0,
        }
        for label, peaks, centred, share in (("shipped", 13, 66, 0.171), ("tried", 6, 49, None))
    ]
    table = bench.localization_md(rows)
    assert "| fracture_xray 9.9.9 | shipped | 13 of 82 | 66 of 82 | 17% |" in table
    assert "| fracture_xray 9.9.9 | tried | 6 of 82 | 49 of 82 | — |" in table
    assert "within 15 px" in table
    assert bench.localization_md([]) == ""


def test_the_committed_results_measured_the_shipped_fracture_model() -> None:
    result = json.loads((BENCHMARKS / "msk.json").read_text())
    rows = result["fracture"]["localization"]
    shipped = [r for r in rows if r["label"] == "shipped"]
    assert len(shipped) == 1
    card = get_model("fracture_xray", discover(include_disabled=True)).card
    assert shipped[0]["sha256"] == card.sha256
    assert shipped[0]["model"] == f"fracture_xray {card.version}"
    for r in rows:
        assert 0 <= r["peak_near_a_fracture_box"] <= r["fractured"]
        assert 0 <= r["box_holds_a_fracture_centre"] <= r["fractured"]
