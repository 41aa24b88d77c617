"""``radlens models``: hash-verified models, as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

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
