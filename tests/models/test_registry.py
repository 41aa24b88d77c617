"""The registry verifies weights, discovers model folders and routes series to models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from radlens.domain.imaging import Instance, Series
from radlens.errors import InvalidModelCardError, ModelIntegrityError, ModelNotFoundError
from radlens.models.card import Training
from radlens.models.registry import (
    InstalledModel,
    body_part_hints,
    body_part_matches,
    discover,
    get_model,
    load_model,
    route,
    sha256_of,
)

CR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1"


def series(
    modality: str = "CR",
    body_part: str = "CHEST",
    view: str = "PA",
    *,
    has_pixels: bool = True,
    samples: int = 1,
    description: str = "",
) -> Series:
    instance = Instance(
        "1.2.3.4.1",
        CR_SOP_CLASS,
        Path("image.dcm"),
        rows=256 if has_pixels else 0,
        columns=256 if has_pixels else 0,
        frames=1 if has_pixels else 0,
        samples_per_pixel=samples,
        has_pixels=has_pixels,
    )
    return Series(
        "1.2.3.4",
        modality,
        (instance,),
        body_part=body_part,
        view_position=view,
        description=description,
    )


@pytest.fixture
def model_dir(fake_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the fake model folder, free to be damaged."""
    return Path(shutil.copytree(fake_model_dir, tmp_path / fake_model_dir.name))


@pytest.fixture
def model(fake_model_dir: Path) -> InstalledModel:
    return load_model(fake_model_dir)


def test_sha256_of_matches_hashlib(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_of(tmp_path / "f") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_load_model_verifies_and_exposes_weights(model_dir: Path) -> None:
    installed = load_model(model_dir)
    assert installed.card.name == "tiny_cxr"
    assert installed.weights == model_dir / "model.onnx"


def test_changed_weights_raise_model_integrity_error(model_dir: Path) -> None:
    (model_dir / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelIntegrityError, match="sha256 of model.onnx"):
        load_model(model_dir)


def test_missing_weights_raise_model_integrity_error(model_dir: Path) -> None:
    (model_dir / "model.onnx").unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        load_model(model_dir)


def test_broken_card_raises_invalid_model_card_error(model_dir: Path) -> None:
    (model_dir / "card.json").write_text("[]", "utf-8")
    with pytest.raises(InvalidModelCardError):
        load_model(model_dir)


def test_discover_finds_a_model_folder_and_a_parent_of_models(
    fake_model_dir: Path, tmp_path: Path
) -> None:
    parent = tmp_path / "site_models"
    shutil.copytree(fake_model_dir, parent / "a")
    (parent / "not_a_model").mkdir()
    as_folder = [m for m in discover([fake_model_dir]) if m.card.name == "tiny_cxr"]
    as_parent = [m for m in discover([parent]) if m.card.name == "tiny_cxr"]
    assert [m.folder for m in as_folder] == [fake_model_dir]
    assert [m.folder.name for m in as_parent] == ["a"]


def test_discover_skips_disabled_models_unless_asked(write_model_folder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    card_training = Training("t", "d", "CC BY-NC 4.0", commercial_use=False)
    folder = write_model_folder(
        tmp_path / "nc",
        b"weights",
        name="nc_model",
        training=card_training,
        enabled_by_default=False,
    )
    assert "nc_model" not in [m.card.name for m in discover([folder])]
    assert "nc_model" in [m.card.name for m in discover([folder], include_disabled=True)]


def test_get_model_by_name_or_model_not_found(model: InstalledModel) -> None:
    assert get_model("tiny_cxr", [model]) is model
    with pytest.raises(ModelNotFoundError, match="installed: tiny_cxr"):
        get_model("nope", [model])
    with pytest.raises(LookupError, match="installed: none"):
        get_model("nope", [])


@pytest.mark.parametrize("part", ["CHEST", "chest", "THORAX", "Lung", "CHEST PA"])
def test_body_part_synonyms_match_chest(part: str) -> None:
    assert body_part_matches(part, ("CHEST",))


def test_route_picks_the_chest_model_for_a_cr_chest_series(model: InstalledModel) -> None:
    chosen = route(series("CR", "CHEST", "PA"), [model])
    assert chosen.models == (model,)
    assert chosen.reason == ""


def test_route_accepts_dx_and_unstated_view(model: InstalledModel) -> None:
    assert route(series("DX", "THORAX", ""), [model]).models == (model,)


@pytest.mark.parametrize(
    ("modality", "body_part", "expected"),
    [
        ("CT", "CHEST", "modality CT"),
        ("US", "", "modality US"),
        ("NM", "CHEST", "modality NM"),
        ("CR", "EXTREMITY", "body part EXTREMITY"),
        ("CR", "", "body part not stated"),
    ],
)
def test_route_refuses_other_modalities_and_body_parts_with_a_reason(
    model: InstalledModel, modality: str, body_part: str, expected: str
) -> None:
    chosen = route(series(modality, body_part), [model])
    assert chosen.models == ()
    assert expected in chosen.reason
    assert "no installed model applies" in chosen.reason
    if expected.startswith("modality"):
        # No model reads the modality: say which modalities the installed models read.
        assert "installed models read CR/DX" in chosen.reason
    else:
        # Models that read the modality say why they did not apply.
        assert "tiny_cxr" in chosen.reason


def test_route_refuses_lateral_view_and_colour(model: InstalledModel) -> None:
    assert "view LL" in route(series(view="LL"), [model]).reason
    assert "colour" in route(series(samples=3), [model]).reason


def test_route_gives_a_reason_for_a_series_without_pixels(model: InstalledModel) -> None:
    chosen = route(series("SR", "", "", has_pixels=False), [model])
    assert chosen.models == ()
    assert "without pixel data" in chosen.reason


def test_route_says_when_no_models_are_installed() -> None:
    assert "no models installed" in route(series(), []).reason


def test_blood_smear_detector_needs_colour_microscopy_of_blood() -> None:
    from det_helpers import detector_card

    cells = InstalledModel(detector_card(), Path("unused"))
    assert route(series("SM", "BLOOD", "", samples=3), [cells]).models == (cells,)
    assert route(series("OT", "PERIPHERAL_BLOOD", "", samples=3), [cells]).models == (cells,)
    assert "body part not stated" in route(series("OT", "", "", samples=3), [cells]).reason
    assert "grayscale" in route(series("SM", "BLOOD", "", samples=1), [cells]).reason
    assert not route(series("CR", "CHEST", "PA", samples=3), [cells]).models


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("PA CHEST", ("CHEST",)),
        ("Thorax p.a.", ("CHEST",)),
        ("OB US fetal biometry (BPD/HC)", ("FETAL_HEAD",)),
        ("Foetal head - transthalamic plane", ("FETAL_HEAD",)),
        ("Peripheral blood smear x100", ("BLOOD",)),
        ("KNEE AP STANDING", ("KNEE",)),
        ("Abdomen", ()),
        ("Chestnut", ()),  # whole words only
        ("Chest and knee", ("CHEST", "KNEE")),
    ],
)
def test_body_part_hints_read_whole_words_of_a_description(
    description: str, expected: tuple[str, ...]
) -> None:
    assert body_part_hints(description) == expected


def test_an_untagged_series_is_routed_by_its_description_and_the_result_says_so(
    model: InstalledModel,
) -> None:
    chosen = route(series("CR", "", "PA", description="CHEST PA ERECT"), [model])
    assert chosen.models == (model,)
    assert chosen.reason == ""
    assert len(chosen.notes) == 1
    assert "BodyPartExamined empty" in chosen.notes[0] and "CHEST PA ERECT" in chosen.notes[0]
    # Tagged series route by their tags alone, without a note.
    assert route(series("CR", "CHEST", "PA", description="CHEST"), [model]).notes == ()


def test_a_description_never_overrides_a_stated_body_part_nor_routes_when_ambiguous(
    model: InstalledModel,
) -> None:
    refused = route(series("CR", "KNEE", "PA", description="chest"), [model])
    assert refused.models == () and "body part KNEE" in refused.reason
    ambiguous = route(series("CR", "", "PA", description="chest and knee"), [model])
    assert ambiguous.models == ()
    assert "does not name CHEST" in ambiguous.reason
    unrelated = route(series("CR", "", "PA", description="ABDOMEN"), [model])
    assert unrelated.models == () and "'ABDOMEN'" in unrelated.reason
