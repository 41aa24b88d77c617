"""What the store keeps of an analysis: stable finding ids and heatmap PNG files."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from radlens.domain.findings import Finding, SeriesResult, StudyResult
from radlens.domain.imaging import Instance, Series, Study
from radlens.errors import InputError, NotFoundError
from radlens.explain.overlay import heatmap_rgba
from radlens.report.findings_json import to_json
from radlens.store.results import annotate, finding_id, heatmap_path, heatmap_png, save_heatmaps
from serve_helpers import result_with_finding

STUDY = "1.2.826.0.1.3680043.8.498.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _finding(code: str = "pneumonia", heat: np.ndarray | None = None, **fields: object) -> Finding:
    values: dict[str, object] = {
        "code": code,
        "label": code.title(),
        "probability": 0.8,
        "threshold": 0.5,
        "model_name": "cxr",
        "model_version": "1.0.0",
        "sop_instance_uid": f"{STUDY}.1.1",
        "heatmap": heat,
    }
    return Finding(**(values | fields))  # type: ignore[arg-type]


def _ramp(rows: int = 8, columns: int = 12) -> np.ndarray:
    """A heatmap from 0 (left) to 1 (right), so every grey level is checked."""
    return np.tile(np.linspace(0, 1, columns, dtype=np.float32), (rows, 1))


def _result() -> StudyResult:
    """Two series: three findings with heatmaps (one per series differs by frame), one without."""
    first = SeriesResult(
        f"{STUDY}.1",
        "CR",
        "CHEST",
        1,
        models=("cxr",),
        findings=(
            _finding("pneumonia", _ramp()),
            _finding("effusion", None),
            _finding("pneumonia", _ramp()[::-1, ::-1].copy(), frame=1),
        ),
    )
    second = SeriesResult(
        f"{STUDY}.2",
        "CR",
        "CHEST",
        1,
        models=("cxr",),
        findings=(_finding("pneumonia", _ramp(4, 4), sop_instance_uid=f"{STUDY}.2.1"),),
    )
    empty = SeriesResult(f"{STUDY}.3", "SR", "", 1, skipped_reason="no image")
    return StudyResult(STUDY, (first, second, empty))


def _study() -> Study:
    instance = Instance(f"{STUDY}.1.1", CT_IMAGE_STORAGE, Path("unused.dcm"))
    return Study(STUDY, (Series(f"{STUDY}.1", "CT", (instance,)),))


# --- finding ids -------------------------------------------------------------------------


def test_finding_id_is_16_hex_digits_and_the_same_every_time() -> None:
    finding = _finding()
    fid = finding_id(f"{STUDY}.1", finding)
    assert re.fullmatch(r"[0-9a-f]{16}", fid)
    assert finding_id(f"{STUDY}.1", _finding()) == fid
    # a fixed value: ids are stored in the database, so the recipe must never change
    # (sha256 of "1.2||0|cxr|pneumonia": series, image, frame, model, code)
    assert finding_id("1.2", Finding("pneumonia", "Pneumonia", 0.9, 0.5, "cxr", "1.0.0")) == (
        "c55e877dd2b4fb2b"
    )


def test_finding_id_survives_a_new_analysis_of_the_same_image() -> None:
    fid = finding_id(f"{STUDY}.1", _finding())
    again = _finding(
        probability=0.3,
        threshold=0.4,
        model_version="1.1.0",
        label="Consolidation",
        heat=_ramp(),
        ood_score=3.0,
        ood_flag=True,
    )
    assert finding_id(f"{STUDY}.1", again) == fid


@pytest.mark.parametrize(
    "change",
    [
        {"series": f"{STUDY}.9"},
        {"sop_instance_uid": f"{STUDY}.1.2"},
        {"frame": 1},
        {"model_name": "cxr_128"},
        {"code": "effusion"},
    ],
    ids=["series", "sop", "frame", "model", "code"],
)
def test_finding_id_differs_for_another_series_image_frame_model_or_label(
    change: dict[str, object],
) -> None:
    base = finding_id(f"{STUDY}.1", _finding())
    fields = {k: v for k, v in change.items() if k != "series"}
    series = str(change.get("series", f"{STUDY}.1"))
    assert finding_id(series, _finding(**fields)) != base  # type: ignore[arg-type]


def test_finding_id_fields_cannot_run_into_each_other() -> None:
    # "1.2" + "3.4" and "1.23" + ".4" joined without a separator would collide
    a = finding_id("1.2", _finding(sop_instance_uid="3.4"))
    b = finding_id("1.23", _finding(sop_instance_uid=".4"))
    assert a != b


# --- annotate ----------------------------------------------------------------------------


def test_annotate_gives_each_finding_its_id_and_says_whether_it_has_a_heatmap() -> None:
    result = _result()
    document = annotate(to_json(result), result)
    first, second, empty = document["series"]
    assert [f["id"] for f in first["findings"]] == [
        finding_id(f"{STUDY}.1", f) for f in result.series[0].findings
    ]
    assert [f["has_heatmap"] for f in first["findings"]] == [True, False, True]
    assert second["findings"][0]["id"] == finding_id(f"{STUDY}.2", result.series[1].findings[0])
    assert second["findings"][0]["has_heatmap"] is True
    assert empty["findings"] == []
    ids = [f["id"] for s in document["series"] for f in s["findings"]]
    assert len(set(ids)) == len(ids) == 4
    # the rest of the document is untouched
    assert document["study_instance_uid"] == STUDY
    assert first["findings"][0]["probability"] == pytest.approx(0.8)


def test_annotate_refuses_a_document_of_another_result() -> None:
    result = _result()
    fewer = dataclasses.replace(result, series=result.series[:1])
    with pytest.raises(ValueError):
        annotate(to_json(fewer), result)


# --- heatmap files -----------------------------------------------------------------------


def test_save_heatmaps_writes_one_grayscale_png_per_heatmap(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    result = _result()
    assert save_heatmaps(storage, result) == 3
    written = sorted((storage / "results").rglob("*.png"))
    assert len(written) == 3
    for series in result.series:
        for finding in series.findings:
            path = heatmap_path(storage, STUDY, finding_id(series.series_instance_uid, finding))
            if finding.heatmap is None:
                assert not path.exists()
                continue
            assert path in written
            with PILImage.open(path) as image:
                assert (image.format, image.mode) == ("PNG", "L")
                gray = np.asarray(image)
            expected = np.rint(finding.heatmap * 255).astype(np.uint8)
            assert np.array_equal(gray, expected)
    # nothing else under storage, and no temporary file left behind
    assert {p for p in storage.rglob("*") if p.is_file()} == set(written)


def test_save_heatmaps_clips_values_outside_0_1(tmp_path: Path) -> None:
    heat = np.array([[-0.5, 0.0], [1.0, 1.7]], np.float32)
    result = StudyResult(
        STUDY, (SeriesResult(f"{STUDY}.1", "CR", "", 1, findings=(_finding(heat=heat),)),)
    )
    assert save_heatmaps(tmp_path, result) == 1
    (path,) = (tmp_path / "results").rglob("*.png")
    assert np.array_equal(np.asarray(PILImage.open(path)), [[0, 0], [255, 255]])


def test_save_heatmaps_again_overwrites_the_same_files(tmp_path: Path) -> None:
    result = _result()
    save_heatmaps(tmp_path, result)
    first = sorted((tmp_path / "results").rglob("*.png"))
    assert save_heatmaps(tmp_path, result) == 3
    assert sorted((tmp_path / "results").rglob("*.png")) == first


def test_a_result_without_heatmaps_writes_nothing(tmp_path: Path) -> None:
    result = StudyResult(STUDY, (SeriesResult(f"{STUDY}.1", "CR", "", 1, findings=(_finding(),)),))
    assert save_heatmaps(tmp_path, result) == 0
    assert not (tmp_path / "results").exists()


def test_heatmap_path_is_named_by_hashes_under_results(tmp_path: Path) -> None:
    fid = finding_id(f"{STUDY}.1", _finding())
    path = heatmap_path(tmp_path, STUDY, fid)
    relative = path.relative_to(tmp_path / "results")
    assert relative.name == f"{fid}.png"
    assert STUDY not in str(path)
    assert len(relative.parts) == 3 and relative.parts[1].startswith(relative.parts[0])
    other = heatmap_path(tmp_path, f"{STUDY}.7", fid)
    assert other.parent != path.parent


@pytest.mark.parametrize("fid", ["", "0" * 15, "0" * 17, "ABCDEF0123456789", "../../etc/passwd"])
def test_heatmap_path_refuses_what_is_not_a_finding_id(tmp_path: Path, fid: str) -> None:
    with pytest.raises(NotFoundError):
        heatmap_path(tmp_path, STUDY, fid)


@pytest.mark.parametrize("uid", ["", "../1.2", "1.2.abc", "1." + "2" * 70])
def test_heatmap_path_refuses_an_invalid_study_uid(tmp_path: Path, uid: str) -> None:
    with pytest.raises(InputError, match="Study Instance UID"):
        heatmap_path(tmp_path, uid, "0" * 16)


def test_heatmap_png_is_rgba_transparent_where_the_map_is_low(tmp_path: Path) -> None:
    result = result_with_finding(_study())
    save_heatmaps(tmp_path, result)
    (finding,) = result.findings
    png = heatmap_png(tmp_path, STUDY, finding_id(f"{STUDY}.1", finding))
    with PILImage.open(io.BytesIO(png)) as image:
        assert (image.format, image.mode) == ("PNG", "RGBA")
        rgba = np.asarray(image)
    assert finding.heatmap is not None
    assert rgba.shape == (*finding.heatmap.shape, 4)
    hot = finding.heatmap > 0.5
    assert rgba[..., 3][~hot].max() == 0
    assert rgba[..., 3][hot].min() > 100
    assert np.array_equal(rgba, heatmap_rgba(finding.heatmap))


def test_heatmap_png_alpha_grows_with_the_map(tmp_path: Path) -> None:
    result = _result()
    save_heatmaps(tmp_path, result)
    finding = result.series[0].findings[0]
    png = heatmap_png(tmp_path, STUDY, finding_id(f"{STUDY}.1", finding))
    alpha = np.asarray(PILImage.open(io.BytesIO(png)))[..., 3].astype(int)
    assert alpha[:, 0].max() == 0
    assert np.all(np.diff(alpha, axis=1) >= 0) and alpha[:, -1].min() > alpha[:, 1].max()


def test_heatmap_png_of_a_finding_without_one_is_not_found(tmp_path: Path) -> None:
    result = _result()
    save_heatmaps(tmp_path, result)
    without = result.series[0].findings[1]
    with pytest.raises(NotFoundError, match="no heatmap"):
        heatmap_png(tmp_path, STUDY, finding_id(f"{STUDY}.1", without))
    with pytest.raises(NotFoundError):
        heatmap_png(tmp_path, f"{STUDY}.7", finding_id(f"{STUDY}.1", result.findings[0]))
