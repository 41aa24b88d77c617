"""The site model store: versions, the active pointer, promotion, rollback, discover."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from radlens.errors import ConflictError, ModelIntegrityError, NotFoundError
from radlens.models.card import read_card, write_card
from radlens.models.registry import InstalledModel, discover, load_model, sha256_of
from radlens.models.versions import (
    Promotion,
    active_folders,
    active_model,
    active_version,
    add_installed,
    add_version,
    history,
    list_versions,
    next_version,
    promote,
    rollback,
    write_gate,
)

NAME = "tiny_cxr"


@pytest.fixture
def zoo(tmp_path: Path, write_model_folder) -> Path:  # type: ignore[no-untyped-def]
    """An extra model folder holding the installed tiny model (version 0.0.1)."""
    write_model_folder(tmp_path / "zoo" / NAME, b"installed weights\n")
    return tmp_path / "zoo"


@pytest.fixture
def installed(zoo: Path) -> InstalledModel:
    return load_model(zoo / NAME)


def learned(store: Path, source: InstalledModel, work: Path, weights: bytes, passed: bool) -> int:
    """A learned version with other weights and a gate verdict, added to the store."""
    number = next_version(store, NAME)
    folder = work / f"candidate{number}"
    shutil.copytree(source.folder, folder)
    (folder / "model.onnx").write_bytes(weights)
    card = read_card(folder / "card.json")
    card = replace(card, version=f"0.0.1+site.{number}", sha256=sha256_of(folder / "model.onnx"))
    write_card(card, folder / "card.json")
    write_gate(folder, {"passed": passed})
    return add_version(store, folder, {"number": number, "parent": 1}).number


def test_the_installed_model_is_copied_in_once_as_version_1(
    tmp_path: Path, installed: InstalledModel
) -> None:
    store = tmp_path / "store"
    first = add_installed(store, installed)
    again = add_installed(store, installed)
    assert first.number == again.number == 1
    assert first.origin == "installed" and first.active and first.gate_passed is None
    assert (first.folder / "model.onnx").read_bytes() == b"installed weights\n"
    assert [v.number for v in list_versions(store, NAME)] == [1]
    assert active_version(store, NAME) is None  # nothing promoted: the installed one serves


def test_a_learned_version_is_stored_with_its_lineage_and_not_active(
    tmp_path: Path, installed: InstalledModel
) -> None:
    store = tmp_path / "store"
    add_installed(store, installed)
    number = learned(store, installed, tmp_path, b"v2\n", passed=True)
    [v1, v2] = list_versions(store, NAME)
    assert (v2.number, v2.origin, v2.parent, v2.gate_passed) == (2, "learned", 1, True)
    assert v2.card_version == "0.0.1+site.2"
    assert v1.active and not v2.active
    assert json.loads((v2.folder / "version.json").read_text())["number"] == number
    assert next_version(store, NAME) == 3


def test_add_version_refuses_weights_that_do_not_match_their_card(
    tmp_path: Path, installed: InstalledModel
) -> None:
    store = tmp_path / "store"
    folder = tmp_path / "tampered"
    shutil.copytree(installed.folder, folder)
    (folder / "model.onnx").write_bytes(b"other bytes")
    add_installed(store, installed)
    with pytest.raises(ModelIntegrityError):
        add_version(store, folder, {"parent": 1})
    assert [v.number for v in list_versions(store, NAME)] == [1]
    assert not [p for p in (store / NAME).iterdir() if p.name.endswith(".tmp")]


def test_promote_refuses_a_version_that_failed_the_gate_unless_forced_with_a_reason(
    tmp_path: Path, installed: InstalledModel
) -> None:
    store = tmp_path / "store"
    add_installed(store, installed)
    bad = learned(store, installed, tmp_path, b"worse\n", passed=False)
    with pytest.raises(ConflictError, match="failed the evaluation gate"):
        promote(store, NAME, bad, by="ana")
    with pytest.raises(ConflictError, match="needs --reason"):
        promote(store, NAME, bad, by="ana", force=True)
    with pytest.raises(ConflictError, match="failed the evaluation gate"):
        promote(store, NAME, bad, by="policy", force=True, forced_reason="x", automatic=True)
    assert active_version(store, NAME) is None
    change = promote(store, NAME, bad, by="ana", force=True, forced_reason="vendor recall test")
    assert change.forced_reason == "vendor recall test" and change.gate_passed is False
    assert active_version(store, NAME) == bad
    assert history(store, NAME) == [change]
    assert "forced: vendor recall test" in change.describe()


def test_rollback_restores_the_previous_active_version_and_discover_returns_it(
    tmp_path: Path, zoo: Path, installed: InstalledModel
) -> None:
    store = tmp_path / "store"
    add_installed(store, installed)
    two = learned(store, installed, tmp_path, b"v2\n", passed=True)
    three = learned(store, installed, tmp_path, b"v3\n", passed=True)
    promote(store, NAME, two, by="ana")
    promote(store, NAME, three, by="ana")

    def served() -> str:
        [model] = [m for m in discover([zoo], store=store) if m.card.name == NAME]
        return model.card.version

    assert served() == "0.0.1+site.3"
    change = rollback(store, NAME, by="ana", reason="worse sensitivity in the ED")
    assert (change.action, change.from_version, change.to_version) == ("rollback", 3, 2)
    assert served() == "0.0.1+site.2"
    rollback(store, NAME, by="ana")
    assert active_version(store, NAME) == 1
    assert served() == "0.0.1"  # version 1: the installed model's copy
    with pytest.raises(ConflictError, match="nothing to roll back to"):
        rollback(store, NAME, by="ana")
    assert [c.action for c in history(store, NAME)] == [
        "promote",
        "promote",
        "rollback",
        "rollback",
    ]


def test_discover_serves_the_active_version_once_in_place_of_the_installed_folder(
    tmp_path: Path, zoo: Path, installed: InstalledModel
) -> None:
    store = tmp_path / "store"
    without = [m.folder for m in discover([zoo], store=store) if m.card.name == NAME]
    assert without == [installed.folder]
    add_installed(store, installed)
    two = learned(store, installed, tmp_path, b"v2\n", passed=True)
    promote(store, NAME, two, by="ana")
    models = [m for m in discover([zoo, zoo / NAME], store=store) if m.card.name == NAME]
    assert [m.folder for m in models] == [store / NAME / "2"]
    assert active_folders(store) == {NAME: store / NAME / "2"}
    assert active_model(store, installed).folder == store / NAME / "2"


def test_the_active_pointer_is_replaced_whole_and_callbacks_see_each_change(
    tmp_path: Path, installed: InstalledModel
) -> None:
    store = tmp_path / "store"
    add_installed(store, installed)
    two = learned(store, installed, tmp_path, b"v2\n", passed=True)
    seen: list[Promotion] = []
    promote(store, NAME, two, by="ana", on_change=seen.append)
    rollback(store, NAME, by="ana", on_change=seen.append)
    assert [(c.from_version, c.to_version) for c in seen] == [(None, 2), (2, 1)]
    assert (store / NAME / "active").read_text() == "1\n"
    assert not [p for p in (store / NAME).iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ConflictError, match="active already"):
        promote(store, NAME, 1, by="ana")


def test_unknown_versions_and_names_are_refused(tmp_path: Path, installed: InstalledModel) -> None:
    store = tmp_path / "store"
    add_installed(store, installed)
    with pytest.raises(NotFoundError, match="no version 7"):
        promote(store, NAME, 7, by="ana")
    with pytest.raises(NotFoundError, match="not a model name"):
        list_versions(store, "../escape")
