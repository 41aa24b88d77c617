"""ConText triggers and scopes."""

from __future__ import annotations

import re

import pytest

from radlens.nlp.context import (
    MAX_SCOPE_WORDS,
    MODIFIERS,
    STOPS,
    Category,
    Direction,
    Span,
    assert_targets,
    find_modifiers,
    scope,
)


def test_every_trigger_compiles_and_has_a_direction_that_fits_its_category() -> None:
    for pattern, (category, direction) in MODIFIERS.items():
        re.compile(pattern)
        passive = category in (Category.PSEUDO, Category.TERMINATE)
        assert passive == (direction is Direction.NONE), pattern
    assert set(STOPS) == set(MAX_SCOPE_WORDS)


def test_longer_trigger_wins_over_the_shorter_one_inside_it() -> None:
    (m,) = find_modifiers("pneumonia cannot be excluded")
    assert (m.category, m.direction, m.phrase) == (
        Category.POSSIBLE,
        Direction.BACKWARD,
        "cannot be excluded",
    )


@pytest.mark.parametrize("text", ["no change", "no significant interval change", "not only"])
def test_pseudo_triggers_hide_the_negation_they_contain(text: str) -> None:
    assert [m.category for m in find_modifiers(text)] == [Category.PSEUDO]


def test_triggers_match_whole_words_only() -> None:
    assert find_modifiers("nodule notable knowledge") == []


def test_forward_scope_ends_at_a_termination_term() -> None:
    sentence = "no effusion but cardiomegaly"
    modifiers = find_modifiers(sentence)
    (span,) = scope(sentence, modifiers[0], modifiers)
    assert sentence[span.start : span.end].strip() == "effusion"


def test_backward_scope_ends_at_the_sentence_start_or_a_terminator() -> None:
    sentence = "cardiomegaly, however effusion is not seen"
    modifiers = find_modifiers(sentence)
    trigger = next(m for m in modifiers if m.category is Category.NEGATED)
    (span,) = scope(sentence, trigger, modifiers)
    assert sentence[span.start : span.end].strip() == "effusion"


def test_scope_is_limited_in_words() -> None:
    sentence = "history of " + "word " * 20 + "pneumonia"
    modifiers = find_modifiers(sentence)
    (span,) = scope(sentence, modifiers[0], modifiers)
    assert len(sentence[span.start : span.end].split()) == MAX_SCOPE_WORDS[Category.HISTORICAL]


def test_bidirectional_trigger_covers_both_sides() -> None:
    sentence = "atelectasis versus pneumonia"
    verdicts = assert_targets(sentence, [Span(0, 11), Span(19, 28)])
    assert [v[0] for v in verdicts] == [{Category.POSSIBLE}, {Category.POSSIBLE}]


def test_a_trigger_inside_a_target_does_not_change_that_target() -> None:
    sentence = "no acute disease or effusion"
    verdicts = assert_targets(sentence, [Span(0, 16), Span(20, 28)])
    assert verdicts[0][0] == set()
    assert verdicts[1][0] == {Category.NEGATED}
