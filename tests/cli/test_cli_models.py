"""``radlens models``: hash-verified models, as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from radlens.models.card import Training

Radlens = Callable[..., Result]


def test_models_json_lists_the_tiny_model(radlens: Radlens, tiny_onnx_model_dir: Path) -> None:
    result = radlens("models", "--json", "--models", tiny_onnx_model_dir)
    assert result.exit_code == 0, result.output
    models = {m["name"]: m for m in json.loads(result.stdout)}
    tiny = models["tiny_cxr"]
    assert tiny["folder"] == str(tiny_onnx_model_dir)
    assert tiny["applies_to"]["modalities"] == ["CR", "DX"]
    assert tiny["task"] == "binary"


def test_models_table_shows_what_a_model_applies_to(
    radlens: Radlens, tiny_onnx_model_dir: Path
) -> None:
    result = radlens("models", "--models", tiny_onnx_model_dir)
    assert result.exit_code == 0
    text = result.stdout
    assert "tiny_cxr" in text
    assert "CR/DX" in text and "CHEST" in text


def test_disabled_models_are_listed_and_marked_but_not_with_enabled(
    radlens: Radlens,
    write_model_folder,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    folder = write_model_folder(
        tmp_path / "nc",
        b"weights",
        name="nc_model",
        training=Training("t", "d", "CC BY-NC 4.0", commercial_use=False),
        enabled_by_default=False,
    )
    everything = json.loads(radlens("models", "--json", "--models", folder).stdout)
    enabled = json.loads(radlens("models", "--json", "--enabled", "--models", folder).stdout)
    assert "nc_model" not in [m["name"] for m in enabled]
    [listed] = [m for m in everything if m["name"] == "nc_model"]
    assert listed["enabled_by_default"] is False
    table = radlens("models", "--models", folder).stdout
    assert "nc_model" in table


def test_radlens_ood_needs_a_known_model(radlens: Radlens, tmp_path: Path) -> None:
    result = radlens("ood", "no_such_model", "--data", tmp_path / "x.npz")
    assert result.exit_code == 1
    assert "no model named 'no_such_model'" in result.stderr


# --- site versions: versions, promote, rollback, lock --------------------------------------


def learned_version(home: Path, zoo: Path, weights: bytes, passed: bool) -> int:
    """Store a learned version of the tiny model (other weights, a gate verdict)."""
    import shutil
    from dataclasses import replace

    from radlens.models.card import read_card, write_card
    from radlens.models.registry import load_model, sha256_of
    from radlens.models.versions import add_installed, add_version, next_version, write_gate

    store = home / "models"
    installed = load_model(zoo / "tiny_cxr")
    add_installed(store, installed)
    number = next_version(store, "tiny_cxr")
    folder = home / f"candidate{number}"
    shutil.copytree(installed.folder, folder)
    (folder / "model.onnx").write_bytes(weights)
    card = read_card(folder / "card.json")
    card = replace(card, version=f"0.0.1+site.{number}", sha256=sha256_of(folder / "model.onnx"))
    write_card(card, folder / "card.json")
    write_gate(folder, {"passed": passed})
    return add_version(store, folder, {"number": number, "parent": 1}).number


@pytest.fixture
def site(tmp_path: Path, write_model_folder):  # type: ignore[no-untyped-def]
    zoo = tmp_path / "zoo"
    write_model_folder(zoo / "tiny_cxr", b"installed weights\n")
    return zoo, tmp_path / "home"


def test_models_versions_promote_and_rollback_change_what_analysis_uses(
    radlens: Radlens,
    site,  # type: ignore[no-untyped-def]
) -> None:
    zoo, home = site
    two = learned_version(home, zoo, b"v2\n", passed=True)
    common = ["--models", zoo, "--home", home]

    def served() -> list[str]:
        listed = json.loads(radlens("models", "--json", *common).stdout)
        return [m["version"] for m in listed if m["name"] == "tiny_cxr"]

    assert served() == ["0.0.1"]
    table = radlens("models", "versions", "tiny_cxr", *common)
    assert table.exit_code == 0 and "0.0.1+site.2" in table.stdout and "passed" in table.stdout
    promoted = radlens("models", "promote", "tiny_cxr", str(two), "--by", "ana", *common)
    assert promoted.exit_code == 0, promoted.output
    assert "version 1 -> 2 (promote by ana; gate passed)" in promoted.stdout
    assert served() == ["0.0.1+site.2"]
    back = radlens("models", "rollback", "tiny_cxr", "--by", "ana", *common)
    assert back.exit_code == 0 and "version 2 -> 1 (rollback" in back.stdout
    assert served() == ["0.0.1"]
    history = json.loads(radlens("models", "versions", "tiny_cxr", "--json", *common).stdout)
    assert [c["action"] for c in history["history"]] == ["promote", "rollback"]


def test_promoting_a_version_that_failed_the_gate_needs_force_and_a_reason(
    radlens: Radlens,
    site,  # type: ignore[no-untyped-def]
) -> None:
    zoo, home = site
    bad = str(learned_version(home, zoo, b"worse\n", passed=False))
    common = ["--models", zoo, "--home", home, "--by", "ana"]
    refused = radlens("models", "promote", "tiny_cxr", bad, *common)
    assert refused.exit_code == 1 and "failed the evaluation gate" in refused.stderr
    no_reason = radlens("models", "promote", "tiny_cxr", bad, "--force", *common)
    assert no_reason.exit_code == 1 and "--force needs --reason" in no_reason.stderr
    forced = radlens(
        "models", "promote", "tiny_cxr", bad, "--force", "--reason", "reader study", *common
    )
    assert forced.exit_code == 0 and "forced: reader study" in forced.stdout


def test_promotion_writes_the_audit_event_and_needs_an_admin_when_there_is_a_database(
    radlens: Radlens,
    site,  # type: ignore[no-untyped-def]
) -> None:
    from radlens.config import Settings
    from radlens.privacy.audit import list_records, verify
    from radlens.store.accounts import add_user
    from radlens.store.db import open_database

    zoo, home = site
    two = str(learned_version(home, zoo, b"v2\n", passed=True))
    database = open_database(Settings(home=home).database_url)
    add_user(database, "ana", "a long password 1", "admin")
    add_user(database, "rad", "a long password 2", "radiologist")
    common = ["--models", zoo, "--home", home]
    try:
        refused = radlens("models", "promote", "tiny_cxr", two, "--by", "rad", *common)
        assert refused.exit_code == 1 and "not an active admin" in refused.stderr
        assert radlens("models", "promote", "tiny_cxr", two, "--by", "ana", *common).exit_code == 0
        assert radlens("models", "rollback", "tiny_cxr", "--by", "ana", *common).exit_code == 0
        records = [r for r in list_records(database) if r.event == "model-promoted"]
        assert [r.user_id for r in records] == ["ana", "ana"]
        described = [r.record["EventIdentification"]["EventOutcomeDescription"] for r in records]
        assert "version 1 -> 2 (promote by ana; gate passed)" in described[0]
        assert "version 2 -> 1 (rollback by ana" in described[1]
        assert verify(database).ok
    finally:
        database.close()


def test_models_lock_records_the_locked_set_once(
    radlens: Radlens,
    site,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    import numpy as np
    from PIL import Image as PILImage

    zoo, home = site
    data = tmp_path / "data"
    data.mkdir()
    rows = ["file,label,split,patient_id"]
    for i in range(8):
        PILImage.fromarray(np.full((12, 12), 20 * i, np.uint8)).save(data / f"{i}.png")
        rows.append(f"{i}.png,{'NORMAL' if i % 2 else 'PNEUMONIA'},val,P{i // 2}")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    common = ["--models", zoo, "--home", home, "--data", data]
    done = radlens("models", "lock", "tiny_cxr", *common)
    assert done.exit_code == 0, done.output
    assert "locked evaluation set of 8 items from 4 patients" in done.stdout
    locked = json.loads((home / "models" / "tiny_cxr" / "locked.json").read_text())
    assert len(locked["files"]) == 8 and len(locked["sha256"]) == 64
    again = radlens("models", "lock", "tiny_cxr", "--fraction", "0.5", *common)
    assert again.exit_code == 1 and "never changed" in again.stderr
