"""The lexicon: every label named, every phrase valid, the required labels present."""

from __future__ import annotations

import json
import re
from pathlib import Path

import radlens
from radlens.domain.coding import FINDINGS
from radlens.nlp.lexicon import (
    ABNORMAL_LABELS,
    CHEST_FINDINGS,
    LABELS,
    MODEL_CODES,
    NEGATIVE_TERMS,
    NORMAL,
    TERMS,
)
from radlens.nlp.mentions import extract


def test_every_term_label_has_words_and_every_phrase_compiles() -> None:
    for label, phrases in {**TERMS, **NEGATIVE_TERMS}.items():
        assert label in LABELS, label
        for phrase in phrases:
            assert not re.compile(phrase).match(""), (label, phrase)  # never empty


def test_required_labels_have_terms() -> None:
    assert len(CHEST_FINDINGS) == 9
    for label in (*CHEST_FINDINGS, *MODEL_CODES):
        assert TERMS.get(label), label


def test_model_codes_are_the_shipped_models_finding_codes() -> None:
    zoo = Path(radlens.__file__).parent / "zoo"
    cards = [json.loads(card.read_text()) for card in zoo.glob("*/card.json")]
    # Measuring and counting models (fetal head biometry, cell boxes) state no diagnosis
    # that notes could agree or disagree with: only classifiers' codes are note labels.
    codes = {c["finding_code"] for c in cards if c["task"] not in {"segmentation", "detection"}}
    assert len(codes) < len(cards)  # the filter above is not vacuous
    assert codes == set(MODEL_CODES)
    assert set(FINDINGS) <= set(MODEL_CODES)


def test_normal_is_the_only_label_that_is_not_abnormal_besides_technical() -> None:
    assert set(LABELS) - ABNORMAL_LABELS == {NORMAL, "technical"}


def test_a_phrase_under_two_labels_makes_a_mention_of_each() -> None:
    assert {m.label for m in extract("Calcified granuloma.").mentions} == {
        "granuloma",
        "calcification",
    }


def test_curated_conventions_calcified_nodule_and_nodular_density() -> None:
    # "calcified nodule" is a nodule; "nodular density" and "nodular opacity" are not.
    assert {m.label for m in extract("Calcified nodule.").mentions} == {"nodule"}
    assert {m.label for m in extract("Nodular density.").mentions} == {"density"}
    assert {m.label for m in extract("Nodular opacity.").mentions} == {"opacity"}
