"""``radlens learn`` end to end on tiny data: train, learn from a feedback export, promote,
learn again from the learned version; cases of locked-set patients refused."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import Result

pytestmark = [pytest.mark.train, pytest.mark.slow]

Radlens = Callable[..., Result]
LABELS = ("NORMAL", "PNEUMONIA")


def image(label: int, rng: np.random.Generator, shifted: bool) -> np.ndarray:
    """16 x 16: noise, plus a bright blob for PNEUMONIA; the site's images are framed in
    black and have their contrast inverted around the mean (a different processing)."""
    pixels = rng.normal(90, 20, (16, 16))
    if label:
        pixels[5:11, 5:11] += 90
    if shifted:
        pixels = 2 * pixels.mean() - pixels
        pixels[:2], pixels[-2:] = 0, 0
    return np.clip(pixels, 0, 255).astype(np.uint8)


def dataset(root: Path) -> Path:
    """labels.csv (file,label,split,patient_id): 48 train and 24 val images, 2 per patient."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for split, patients in (("train", range(24)), ("val", range(100, 112))):
        for p in patients:
            for k in range(2):
                label = (p + k) % 2
                name = f"{split}_p{p}_{k}.png"
                PILImage.fromarray(image(label, rng, shifted=False)).save(root / name)
                rows.append([name, LABELS[label], split, f"P{p}"])
    with (root / "labels.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["file", "label", "split", "patient_id"], *rows])
    return root


def recipe(path: Path, data: Path) -> Path:
    path.write_text(
        f"""
name = "tiny_learn"
version = "0.1.0"
task = "binary"
data = "{data}"
labels = ["NORMAL", "PNEUMONIA"]
finding_code = "pneumonia"
finding_label = "Pneumonia"
licence = "CC0-1.0"
commercial_use = true
citation = ""
intended_use = "tests"
[input]
size = [16, 16]
use_window = false
percentile_low = 0.0
percentile_high = 100.0
[applies_to]
modalities = ["CR"]
[net]
arch = "resnet-tiny"
stem_kernel = 3
stem_stride = 1
max_pool = false
[schedule]
epochs = 2
batch_size = 8
threads = 1
"""
    )
    return path


def export(folder: Path, home: Path, patients: list[str], seed: int) -> Path:
    """A feedback export of shifted site images with the site's patient pseudonyms."""
    from radlens.cli.models import site_key_of
    from radlens.config import Settings

    key_of = site_key_of(Settings(home=home))
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = []
    for n, patient in enumerate(patients):
        for k in range(2):
            label = (n + k) % 2
            name = f"case_{n}_{k}.png"
            PILImage.fromarray(image(label, rng, shifted=True)).save(folder / name)
            rows.append([name, label, "site-B", "unit", key_of(patient), 2, 1.0])
    header = ["file", "label", "site", "scanner", "patient_key", "n_readers", "agreement"]
    with (folder / "cases.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return folder


@pytest.fixture
def trained(radlens: Radlens, tmp_path: Path) -> tuple[Path, Path]:
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    data = dataset(tmp_path / "data")
    zoo = tmp_path / "zoo"
    done = radlens("train", recipe(tmp_path / "tiny.toml", data), "-o", zoo / "tiny_learn")
    assert done.exit_code == 0, done.output
    return zoo, tmp_path / "home"


LEARN = ["--replay-items", "0", "--set", "schedule.threads=1", "--set", "schedule.epochs=2"]


def test_learn_stores_a_gated_candidate_that_an_admin_promotes_and_learns_from_again(
    radlens: Radlens, trained: tuple[Path, Path], tmp_path: Path
) -> None:
    zoo, home = trained
    cases = export(tmp_path / "export", home, [f"S{i}" for i in range(24)], seed=1)
    common = ["--models", zoo, "--home", home]
    done = radlens(
        "learn", "tiny_learn", "--cases", cases, "-o", tmp_path / "cand", *LEARN, *common
    )
    assert done.exit_code == 0, done.output
    assert "tiny_learn 0.1.0+site.2 (version 2, from 0.1.0)" in done.stdout
    for name in ("model.onnx", "card.json", "gate.json", "gate.md", "learn.log", "state_dict.pt"):
        assert (tmp_path / "cand" / name).is_file(), name
    gate = json.loads((tmp_path / "cand" / "gate.json").read_text())
    assert [c["name"] for c in gate["checks"]] == [
        "locked AUC",
        "locked ECE",
        "held-back AUC",
        "feedback vs current version",
    ]
    lineage = json.loads((home / "models" / "tiny_learn" / "2" / "version.json").read_text())
    assert lineage["parent"] == 1 and lineage["origin"] == "learned"
    assert lineage["counts"]["locked"] == 24  # the whole val split, recorded now
    assert lineage["cases"][0]["n"] == 48
    card = json.loads((tmp_path / "cand" / "card.json").read_text())
    assert "adjudicated cases" in card["training"]["data"]
    assert set(card["metrics"]) >= {"locked", "locked_parent", "heldback", "diff_locked"}
    assert "warm start from ONNX initializers" in (tmp_path / "cand" / "learn.log").read_text()

    listed = json.loads(radlens("models", "versions", "tiny_learn", "--json", *common).stdout)
    assert [(v["number"], v["active"]) for v in listed["versions"]] == [(1, True), (2, False)]
    # Nothing changed what analysis uses.
    served = json.loads(radlens("models", "--json", *common).stdout)
    assert [m["version"] for m in served if m["name"] == "tiny_learn"] == ["0.1.0"]

    promoted = radlens("models", "promote", "tiny_learn", "2", "--by", "ana", *common)
    if not gate["passed"]:
        assert promoted.exit_code == 1 and "failed the evaluation gate" in promoted.stderr
        promoted = radlens(
            "models", "promote", "tiny_learn", "2", "--force", "--reason", "test", *common
        )
    assert promoted.exit_code == 0, promoted.output
    served = json.loads(radlens("models", "--json", *common).stdout)
    assert [m["version"] for m in served if m["name"] == "tiny_learn"] == ["0.1.0+site.2"]

    more = export(tmp_path / "export2", home, [f"T{i}" for i in range(24)], seed=2)
    again = radlens(
        "learn", "tiny_learn", "--cases", more, "-o", tmp_path / "cand3", *LEARN, *common
    )
    assert again.exit_code == 0, again.output
    assert "(version 3, from 0.1.0+site.2)" in again.stdout
    log = (tmp_path / "cand3" / "learn.log").read_text()
    assert "warm start from state_dict.pt of version 0.1.0+site.2" in log
    assert json.loads((tmp_path / "cand3" / "version.json").read_text())["parent"] == 2

    back = radlens("models", "rollback", "tiny_learn", "--reason", "test", *common)
    assert back.exit_code == 0 and "version 2 -> 1 (rollback" in back.stdout


def test_learn_refuses_cases_of_locked_set_patients(
    radlens: Radlens, trained: tuple[Path, Path], tmp_path: Path
) -> None:
    zoo, home = trained
    patients = [f"S{i}" for i in range(10)] + ["P103"]  # P103 is a val (locked) patient
    cases = export(tmp_path / "export", home, patients, seed=1)
    common = ["--models", zoo, "--home", home]
    done = radlens(
        "learn", "tiny_learn", "--cases", cases, "-o", tmp_path / "cand", *LEARN, *common
    )
    assert done.exit_code == 2
    assert "1 patient(s) and 0 image(s)" in done.stderr
    assert "locked evaluation set of tiny_learn" in done.stderr
    assert not (home / "models" / "tiny_learn" / "2").exists()
