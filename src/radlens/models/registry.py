"""Installed models: discover, verify, and route series to the models that apply.

Models are folders (``model.onnx`` + ``card.json``) under the shipped zoo
(``radlens/zoo``, package data) and any extra folders the site configures. The registry
refuses a model whose weights' sha256 differs from its card, and ``route`` says why a
series got no model.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from radlens.domain.imaging import Series
from radlens.errors import ModelIntegrityError, ModelNotFoundError
from radlens.io.volume import is_volume_series
from radlens.models.card import ModelCard, read_card

# BodyPartExamined values (PS3.16 CID 4031 code meanings and common vendor strings) that
# mean the same region for routing.
BODY_PART_SYNONYMS: dict[str, tuple[str, ...]] = {
    "CHEST": ("CHEST", "THORAX", "LUNG", "CHEST_LAT", "CHEST_PA", "CHEST_AP"),
    "KNEE": ("KNEE",),
    "BREAST": ("BREAST",),
    "ADRENAL": ("ADRENAL", "ADRENAL_GLAND"),
    "HEAD": ("HEAD", "BRAIN", "SKULL", "HEADNECK", "HEAD_NECK"),
    "BRAIN": ("BRAIN", "HEAD"),
    "EYE": ("EYE", "RETINA", "FUNDUS"),
    # Obstetric ultrasound of the fetal head; "FETUS" is what many OB presets send.
    "FETAL_HEAD": ("FETAL_HEAD", "FETUS", "FETAL_SKULL", "HEAD_FETAL"),
    # Peripheral blood smears (microscopy); "BLOOD" is the CID 4031 / SNOMED 87612001 term.
    "BLOOD": ("BLOOD", "PERIPHERAL_BLOOD", "BLOOD_SMEAR", "SMEAR"),
    # Limbs, as CID 4031 names their parts (and the EXTREMITY catch-all vendors send). The
    # knee is left out: knee films go to the knee model, and the fracture model, trained on
    # FracAtlas, flags knee radiographs like those as unlike its training data (all 128
    # kneeKL224 val knees) while calling 121 of them fractured.
    "EXTREMITY": (
        "EXTREMITY",
        "UPPER_EXTREMITY",
        "LOWER_EXTREMITY",
        "HAND",
        "FINGER",
        "THUMB",
        "WRIST",
        "FOREARM",
        "ELBOW",
        "ARM",
        "UPPER_ARM",
        "HUMERUS",
        "RADIUS",
        "ULNA",
        "LEG",
        "LOWER_LEG",
        "UPPER_LEG",
        "THIGH",
        "FEMUR",
        "TIBIA",
        "FIBULA",
        "ANKLE",
        "FOOT",
        "TOE",
        "HEEL",
        "CALCANEUS",
    ),
    "HIP": ("HIP", "PELVIS", "FEMUR", "ACETABULUM"),
    "SHOULDER": ("SHOULDER", "CLAVICLE", "SCAPULA", "HUMERUS", "ACROMIOCLAVICULAR_JOINT"),
}

# Words of a Series (or Study) Description that name a region when BodyPartExamined is
# empty, as many ultrasound presets and secondary-capture writers leave it. Matched as
# whole words (case-insensitive); a hint never overrides a stated body part.
DESCRIPTION_HINTS: dict[str, tuple[str, ...]] = {
    "CHEST": ("chest", "thorax", "thoracic", "cxr", "lung", "lungs"),
    "KNEE": ("knee", "knees"),
    "BREAST": ("breast", "mammary"),
    "ADRENAL": ("adrenal", "adrenals"),
    "EYE": ("fundus", "retina", "retinal"),
    "FETAL_HEAD": (
        "fetal head",
        "foetal head",
        "head circumference",
        "fetal biometry",
        "foetal biometry",
        "biparietal",
        "bpd",
        "transthalamic",
    ),
    "BLOOD": ("blood smear", "peripheral blood", "blood film", "smear"),
    "EXTREMITY": (
        "hand",
        "finger",
        "wrist",
        "forearm",
        "elbow",
        "humerus",
        "femur",
        "tibia",
        "fibula",
        "ankle",
        "foot",
        "toe",
        "calcaneus",
    ),
    "HIP": ("hip", "pelvis"),
    "SHOULDER": ("shoulder", "clavicle", "scapula"),
}

MODALITY_NAMES: dict[str, str] = {
    "CR": "computed radiography",
    "DX": "digital radiography",
    "CT": "CT",
    "MR": "MR",
    "US": "ultrasound",
    "NM": "nuclear medicine",
    "PT": "PET",
    "OT": "other (secondary capture)",
    "SEG": "segmentation object",
    "SR": "structured report",
    "OP": "ophthalmic photography",
    "XC": "external-camera photography",
    "SM": "slide microscopy",
}


@dataclass(frozen=True)
class InstalledModel:
    """A verified model folder."""

    card: ModelCard
    folder: Path

    @property
    def weights(self) -> Path:
        return self.folder / self.card.weights_file

    def runtime_weights(self, prefer_int8: bool = True) -> Path:
        """The weights to run: the INT8 variant when the card has one, else the fp32 weights.

        The INT8 file is verified against its sha256 in the card on every call, as
        :func:`load_model` verifies the fp32 weights.

        Example:
            >>> load_model(folder).runtime_weights().name  # doctest: +SKIP
            'model.int8.onnx'

        Raises:
            ModelIntegrityError: the card names an INT8 file that is missing or whose hash
                differs from the card.
        """
        variant = self.card.int8
        if not prefer_int8 or variant is None:
            return self.weights
        path = self.folder / variant.file
        if not path.exists():
            raise ModelIntegrityError(
                f"{self.card.name}: INT8 weights {variant.file} missing; rerun radlens quantize "
                "or run the fp32 weights"
            )
        actual = sha256_of(path)
        if actual != variant.sha256:
            raise ModelIntegrityError(
                f"{self.card.name}: sha256 of {variant.file} is {actual[:12]}..., card says "
                f"{variant.sha256[:12]}...; rerun radlens quantize"
            )
        return path


def zoo_folder() -> Path:
    """Where the shipped models are (inside the installed package)."""
    return Path(str(resources.files("radlens") / "zoo"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(folder: Path) -> InstalledModel:
    """Read a model folder and verify its weights.

    Raises:
        InvalidModelCardError: the card breaks the schema.
        ModelIntegrityError: the weights are missing or their hash differs from the card.
    """
    card = read_card(folder / "card.json")
    weights = folder / card.weights_file
    if not weights.exists():
        raise ModelIntegrityError(f"{folder.name}: weights file {card.weights_file} missing")
    actual = sha256_of(weights)
    if actual != card.sha256:
        raise ModelIntegrityError(
            f"{card.name}: sha256 of {card.weights_file} is {actual[:12]}..., card says "
            f"{card.sha256[:12]}...; reinstall the model or retrain it"
        )
    return InstalledModel(card, folder)


def discover(
    folders: list[Path] | None = None, include_disabled: bool = False, store: Path | None = None
) -> list[InstalledModel]:
    """All verified models in the zoo and in ``folders`` (each a model or a parent of models).

    Models disabled by default (for example trained on non-commercial data) are skipped
    unless ``include_disabled``. With a site model ``store`` (``Settings.model_store_dir``,
    see :mod:`radlens.models.versions`), a model that has an active version there is served
    from that version instead of its installed folder.
    """
    # Imported here: versions builds on load_model from this module.
    from radlens.models.versions import active_folders

    active = active_folders(store)
    folders_found: list[Path] = []
    for root in [zoo_folder(), *(folders or [])]:
        candidates = [root] if (root / "card.json").exists() else sorted(root.glob("*/"))
        for folder in candidates:
            if (folder / "card.json").exists():
                name = read_card(folder / "card.json").name
                # The site's active version takes the installed folder's place, once.
                chosen = active.get(name, folder)
                if chosen not in folders_found:
                    folders_found.append(chosen)
    leftover = [f for f in active.values() if f not in folders_found]  # no longer installed
    found: list[InstalledModel] = []
    for folder in [*folders_found, *leftover]:
        model = load_model(folder)
        if include_disabled or model.card.enabled_by_default:
            found.append(model)
    return found


def get_model(name: str, models: list[InstalledModel]) -> InstalledModel:
    for model in models:
        if model.card.name == name:
            return model
    known = ", ".join(m.card.name for m in models) or "none"
    raise ModelNotFoundError(f"no model named {name!r}; installed: {known}")


def body_part_matches(series_part: str, wanted: tuple[str, ...]) -> bool:
    part = series_part.upper().replace(" ", "_")
    return any(part in BODY_PART_SYNONYMS.get(w, (w,)) for w in wanted)


def body_part_hints(description: str) -> tuple[str, ...]:
    """The regions a free-text description names (keys of ``DESCRIPTION_HINTS``).

    Example:
        >>> body_part_hints("OB US fetal biometry (BPD/HC)")
        ('FETAL_HEAD',)
        >>> body_part_hints("Abdomen")
        ()
    """
    text = " " + re.sub(r"[^a-z0-9]+", " ", description.lower()) + " "
    return tuple(
        part
        for part, words in DESCRIPTION_HINTS.items()
        if any(f" {word} " in text for word in words)
    )


def hinted_body_part(series: Series, wanted: tuple[str, ...]) -> str:
    """The region of ``wanted`` that an untagged series' description names, or ""."""
    if series.body_part or not series.description:
        return ""
    hints = body_part_hints(series.description)
    # Only an unambiguous description routes: "chest and knee" names two regions.
    if len(hints) != 1:
        return ""
    return hints[0] if body_part_matches(hints[0], wanted) else ""


def applies(card: ModelCard, series: Series, dims: int, color: bool) -> str:
    """Empty string when ``card`` applies to the series, else the reason it does not.

    A series without BodyPartExamined applies when its Series Description names the
    card's region (``DESCRIPTION_HINTS``, see :func:`route_notes`).
    """
    rule = card.applies_to
    modality = series.modality.upper()
    if modality not in rule.modalities:
        return f"modality {modality or 'unknown'} not in {'/'.join(rule.modalities)}"
    if rule.body_parts:
        if not series.body_part:
            if hinted_body_part(series, rule.body_parts):
                pass
            elif series.description:
                return (
                    f"body part not stated and the series description "
                    f"{series.description!r} does not name {'/'.join(rule.body_parts)}"
                )
            else:
                return f"body part not stated (needs {'/'.join(rule.body_parts)})"
        elif not body_part_matches(series.body_part, rule.body_parts):
            return f"body part {series.body_part} is not {'/'.join(rule.body_parts)}"
    if rule.views and series.view_position and series.view_position.upper() not in rule.views:
        return f"view {series.view_position} is not {'/'.join(rule.views)}"
    if dims != rule.dims:
        return f"{dims}D images, model takes {rule.dims}D"
    if color and not rule.color:
        return "colour images, model takes grayscale"
    if rule.color and not color:
        return "grayscale images, model takes colour photographs"
    return ""


@dataclass(frozen=True)
class Route:
    """Which models a series gets, and why the others do not apply."""

    models: tuple[InstalledModel, ...]
    reason: str
    notes: tuple[str, ...] = ()


def route_notes(series: Series, models: tuple[InstalledModel, ...]) -> tuple[str, ...]:
    """Say where a chosen model's region came from when the tags did not state it."""
    notes = []
    for model in models:
        part = hinted_body_part(series, model.card.applies_to.body_parts)
        if part:
            notes.append(
                f"{model.card.name}: BodyPartExamined empty; region {part} taken from the "
                f"series description {series.description!r}: check the DICOM tags"
            )
    return tuple(notes)


def series_shape(series: Series) -> tuple[int, bool]:
    """(dims, colour) of a series from its headers, without decoding pixels."""
    dims = 3 if is_volume_series(series) or any(i.is_volume for i in series.instances) else 2
    color = any(i.samples_per_pixel == 3 for i in series.instances)
    return dims, color


def route(series: Series, models: list[InstalledModel]) -> Route:
    """Pick the models whose card applies to ``series``.

    Example:
        >>> route(series, discover()).reason  # doctest: +SKIP
        'US (ultrasound), body part not stated: no installed model applies'
    """
    if not series.has_pixels:
        return Route((), f"{series.modality or 'object'} without pixel data: nothing to analyze")
    dims, color = series_shape(series)
    chosen, near_misses = [], []
    for model in models:
        why = applies(model.card, series, dims, color)
        if not why:
            chosen.append(model)
        elif not why.startswith("modality "):
            # Only models that read this modality explain themselves; the rest are noise.
            near_misses.append(f"{model.card.name}: {why}")
    if chosen:
        return Route(tuple(chosen), "", route_notes(series, tuple(chosen)))
    modality = series.modality or "unknown modality"
    what = MODALITY_NAMES.get(series.modality, series.modality)
    part = series.body_part.lower() if series.body_part else "body part not stated"
    if near_misses:
        detail = "; ".join(near_misses)
    elif models:
        read = "/".join(sorted({m for model in models for m in model.card.applies_to.modalities}))
        detail = f"no model reads modality {modality}; installed models read {read}"
    else:
        detail = "no models installed"
    return Route((), f"{modality} ({what}, {part}): no installed model applies ({detail})")
