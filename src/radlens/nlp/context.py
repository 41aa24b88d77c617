"""ConText: is a mentioned finding negated, uncertain, historical, or the reason for the exam?

This follows the ConText algorithm (Harkema et al., J Biomed Inform 42(5):839-851, 2009),
which extends NegEx (Chapman et al., J Biomed Inform 34(5):301-310, 2001): trigger phrases
(``MODIFIERS``) each have a category and a direction; a trigger's scope runs from it to the
end of the sentence (forward), to its start (backward), or both, and stops early at a
termination term ("but", "however", "aside from"), at another trigger of a category listed
in ``STOPS``, or after ``MAX_SCOPE_WORDS``. A target inside the scope gets the category.
Pseudo-triggers ("no change", "not only", "gram negative") are matched like triggers and
then do nothing, so the shorter trigger they contain ("no", "not") is never seen. Where two
triggers overlap, the longer one wins: "cannot be excluded" is uncertainty, not negation.

Lists need no special rule: "no effusion or pneumothorax" negates both because both lie in
the scope of "no".

Example:
    >>> [m.category.value for m in find_modifiers("no pneumothorax but possible nodule")]
    ['negated', 'terminate', 'possible']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache


class Category(StrEnum):
    """What a trigger says about the findings in its scope."""

    NEGATED = "negated"
    POSSIBLE = "possible"
    HISTORICAL = "historical"
    RESOLVED = "resolved"
    """Was there, is gone ("has resolved", "interval resolution of"): negated and historical."""
    REASON = "reason"
    """Asked about ("rule out", "r/o", "evaluate for"): the reason for the exam."""
    PSEUDO = "pseudo"
    TERMINATE = "terminate"


class Direction(StrEnum):
    FORWARD = "forward"
    BACKWARD = "backward"
    BIDIRECTIONAL = "bidirectional"
    NONE = "none"


N, P, H, R, Q = (
    Category.NEGATED,
    Category.POSSIBLE,
    Category.HISTORICAL,
    Category.RESOLVED,
    Category.REASON,
)
FW, BW, BI = Direction.FORWARD, Direction.BACKWARD, Direction.BIDIRECTIONAL
_SEEN = (
    r"(?:seen|identified|present|demonstrated|visuali[sz]ed|appreciated|noted|evident|visible|"
    r"detected|apparent|observed|shown|found|suggested|elicited)"
)

MODIFIERS: dict[str, tuple[Category, Direction]] = {
    # Negation, forward.
    r"no": (N, FW),
    r"not": (N, FW),
    r"without": (N, FW),
    r"w/o": (N, FW),
    r"with no": (N, FW),
    r"nor": (N, FW),
    r"none": (N, FW),
    r"negative for": (N, FW),
    r"neg(?:\.)? for": (N, FW),
    r"free of": (N, FW),
    r"clear of": (N, FW),
    r"absence of": (N, FW),
    r"absent": (N, BI),
    r"denies": (N, FW),
    r"denied": (N, FW),
    r"no (?:\w+ )?evidence (?:of|for)": (N, FW),
    r"no (?:\w+ )?signs? of": (N, FW),
    r"no (?:prior |previous |known |past )?(?:medical )?(?:history|hx|h/o)(?: of)?": (N, FW),
    r"(?:there )?(?:is|are) no": (N, FW),
    r"(?:has|have|had) not been " + _SEEN: (N, BW),
    r"(?:is |are |was |were )?not (?:\w+[ -])?" + _SEEN: (N, BW),
    r"(?:is |are )?negative": (N, BW),
    r"ruled out": (N, BW),
    r"unlikely": (N, BI),
    r"rather than": (N, FW),
    r"instead of": (N, FW),
    r"no longer": (R, FW),
    r"(?:is |are )?no longer (?:\w+ )?" + _SEEN: (R, BW),
    # Resolved.
    r"(?:has |have )?(?:completely |largely |nearly |since |now )?resolved": (R, BW),
    r"(?:interval |complete )?resolution of": (R, FW),
    r"(?:has |have )?(?:since )?cleared": (R, BW),
    r"(?:has |have )?(?:been )?removed": (R, BW),
    # Uncertainty.
    r"possible": (P, FW),
    r"possibly": (P, FW),
    r"probable": (P, FW),
    r"probably": (P, FW),
    r"likely": (P, FW),
    r"most likely": (P, FW),
    r"(?:may|might|could|can) (?:represent|reflect|be|indicate|have|also|signify|relate)": (
        P,
        FW,
    ),
    r"(?:may|might|could)": (P, FW),
    r"(?:may|might|could|can|likely)(?: be)?(?: \w+)? (?:due|related|secondary) to": (P, FW),
    r"suggest(?:s|ive of|ing|ion of)?": (P, FW),
    r"to suggest": (P, FW),
    r"suspicious (?:for|of)": (P, FW),
    r"suspect(?:ed)?": (P, FW),
    r"concern(?:ing)? for": (P, FW),
    r"worrisome for": (P, FW),
    r"questionable": (P, FW),
    r"question(?:ed)?(?: of)?": (P, FW),
    r"suspicion (?:for|of)": (P, FW),
    r"(?:is |are )?(?:also )?in the differential(?: diagnosis)?": (P, BW),
    r"(?:would be |is |are )?(?:a |also a )?(?:consideration|possibility)": (P, BW),
    r"(?:cannot|can not|can't|could not|does not|doesn't|do not) (?:\w+ )?(?:exclude|"
    r"rule out)": (P, FW),
    r"difficult to (?:\w+ )?(?:exclude|rule out)": (P, BI),
    r"(?:cannot|can not|can't|could not) be (?:entirely |completely |totally )?"
    r"(?:excluded|ruled out)": (P, BW),
    r"(?:is |are )?not (?:entirely |completely |totally |definitely )?(?:excluded|ruled out)": (
        P,
        BW,
    ),
    r"(?:is |are )(?:also )?(?:possible|suspected|questioned|likely|probable|favou?red|"
    r"considered|not excluded)": (P, BW),
    r"differential (?:diagnos[ie]s )?(?:includ(?:es?|ing)|considerations?(?: include)?)": (
        P,
        FW,
    ),
    r"consider(?:ation of)?": (P, FW),
    r"equivocal": (P, FW),
    r"presum(?:ed|ably|ptive)": (P, FW),
    r"favou?r(?:ed|s)?": (P, FW),
    r"versus": (P, BI),
    r"vs\.?": (P, BI),
    r"\?": (P, BI),
    r"uncertain": (P, FW),
    r"indeterminate": (P, FW),
    # History.
    r"history of": (H, FW),
    r"hx(?: of)?": (H, FW),
    r"h/o": (H, FW),
    r"past (?:medical )?history(?: of)?": (H, FW),
    r"pmh(?:x)?": (H, FW),
    r"previous(?:ly)?(?: treated| diagnosed| known| seen)?": (H, FW),
    r"prior (?:history|episode|diagnosis|diagnoses|treatment)(?: of)?": (H, FW),
    r"known": (H, FW),
    r"status post": (H, FW),
    r"s/p": (H, FW),
    r"recent(?:ly)?(?: treated| diagnosed)?": (H, FW),
    r"remote": (H, FW),
    r"treated for": (H, FW),
    # Reason for the exam (a question, not an answer).
    r"rule out": (Q, FW),
    r"r/o": (Q, FW),
    r"rule-out": (Q, FW),
    r"to (?:exclude|rule out)": (Q, FW),
    r"eval(?:uate|uation)? (?:for|of)": (Q, FW),
    r"assess(?:ment)? (?:for|of)": (Q, FW),
    r"(?:screen|screening|check|look|looking|search) for": (Q, FW),
    r"query": (Q, FW),
    # Pseudo-triggers: look like a trigger, are not one.
    r"no (?:significant |appreciable |substantial |definite |acute |interval |apparent )*"
    r"(?:interval )?(?:change|changes|increase|decrease|progression|improvement)": (
        Category.PSEUDO,
        Direction.NONE,
    ),
    r"(?:not|without) (?:significantly |appreciably |substantially |much )?"
    r"(?:changed|change|increased|decreased|progressed)": (Category.PSEUDO, Direction.NONE),
    r"not only": (Category.PSEUDO, Direction.NONE),
    r"not necessarily": (Category.PSEUDO, Direction.NONE),
    r"gram[ -]negative": (Category.PSEUDO, Direction.NONE),
    r"no further": (Category.PSEUDO, Direction.NONE),
    r"not (?:well )?(?:assessed|evaluated|included|imaged)": (Category.PSEUDO, Direction.NONE),
    r"possible (?:to|that)": (Category.PSEUDO, Direction.NONE),
    r"(?:likely|probably) (?:chronic|stable|unchanged|related|secondary)": (
        Category.PSEUDO,
        Direction.NONE,
    ),
    # Termination: the scope of a trigger ends here.
    r"but": (Category.TERMINATE, Direction.NONE),
    r"however": (Category.TERMINATE, Direction.NONE),
    r"although": (Category.TERMINATE, Direction.NONE),
    r"though": (Category.TERMINATE, Direction.NONE),
    r"except(?: for)?": (Category.TERMINATE, Direction.NONE),
    r"aside from": (Category.TERMINATE, Direction.NONE),
    r"apart from": (Category.TERMINATE, Direction.NONE),
    r"with the exception of": (Category.TERMINATE, Direction.NONE),
    r"other than": (Category.TERMINATE, Direction.NONE),
    r"which": (Category.TERMINATE, Direction.NONE),
    r"whereas": (Category.TERMINATE, Direction.NONE),
    r"while": (Category.TERMINATE, Direction.NONE),
    r"yet": (Category.TERMINATE, Direction.NONE),
    r"nevertheless": (Category.TERMINATE, Direction.NONE),
    r"otherwise": (Category.TERMINATE, Direction.NONE),
    r"(?:secondary|due|related) to": (Category.TERMINATE, Direction.NONE),
    r"(?:cause|source|etiology) of": (Category.TERMINATE, Direction.NONE),
    r"presents? with": (Category.TERMINATE, Direction.NONE),
    r"complain(?:s|ing)? of": (Category.TERMINATE, Direction.NONE),
}
"""Trigger phrase (regular expression, lower case, on word boundaries) -> what and which way."""

STOPS: dict[Category, frozenset[Category]] = {
    # "no consolidation to suggest pneumonia": uncertainty inside a negation stays negated.
    N: frozenset({H, R, Q}),
    P: frozenset({N, H, R, Q}),
    H: frozenset({N, P, R, Q}),
    R: frozenset({N, P, H, Q}),
    Q: frozenset({N, H, R}),
}
"""A trigger's scope stops at the first trigger of these categories (besides terminators)."""

MAX_SCOPE_WORDS: dict[Category, int] = {N: 20, P: 20, H: 8, R: 8, Q: 20}
"""A scope covers at most this many words beside its trigger (bidirectional: each side)."""


@dataclass(frozen=True)
class Modifier:
    """A trigger found in a sentence; offsets are within the sentence."""

    category: Category
    direction: Direction
    start: int
    end: int
    phrase: str


@dataclass(frozen=True)
class Span:
    """Where a target lies in the sentence."""

    start: int
    end: int


@cache
def _modifier_res() -> tuple[tuple[re.Pattern[str], Category, Direction], ...]:
    def compile_one(pattern: str) -> re.Pattern[str]:
        # Word boundaries where the phrase starts or ends with a word character.
        left = r"(?<![\w/])" if re.match(r"[\w(]", pattern) else ""
        right = r"(?![\w/])" if not pattern.endswith(("\\?", "\\.?")) else ""
        return re.compile(f"{left}(?:{pattern}){right}")

    return tuple((compile_one(p), c, d) for p, (c, d) in MODIFIERS.items())


def _longest_first(found: Iterable[Modifier]) -> list[Modifier]:
    """Non-overlapping modifiers, longer ones first; ties go to the earlier one."""
    kept: list[Modifier] = []
    for m in sorted(found, key=lambda m: (-(m.end - m.start), m.start)):
        if all(m.end <= k.start or m.start >= k.end for k in kept):
            kept.append(m)
    return sorted(kept, key=lambda m: m.start)


def find_modifiers(sentence: str) -> list[Modifier]:
    """The triggers in a sentence, pseudo-triggers included, in order of position.

    A trigger inside a target phrase ("no acute cardiopulmonary abnormality", a normal
    statement) does not change that target, whose scope test fails (the target starts
    before the trigger's end), but still speaks about what follows: "no acute
    cardiopulmonary disease or effusion".
    """
    lowered = sentence.lower()
    found = [
        Modifier(category, direction, m.start(), m.end(), m.group())
        for regex, category, direction in _modifier_res()
        for m in regex.finditer(lowered)
    ]
    return _longest_first(found)


def _word_limit(sentence: str, start: int, words: int, forward: bool) -> int:
    """Offset ``words`` words after (or before) ``start``."""
    if forward:
        hits = list(re.finditer(r"\S+", sentence[start:]))
        return start + hits[words - 1].end() if len(hits) >= words else len(sentence)
    hits = list(re.finditer(r"\S+", sentence[:start]))
    return hits[-words].start() if len(hits) >= words else 0


def scope(sentence: str, modifier: Modifier, modifiers: Sequence[Modifier]) -> list[Span]:
    """The spans of the sentence a trigger speaks about."""
    stops = STOPS.get(modifier.category, frozenset())
    limit = MAX_SCOPE_WORDS.get(modifier.category, 20)

    def blocks(other: Modifier) -> bool:
        return other.category is Category.TERMINATE or other.category in stops

    spans = []
    if modifier.direction in (Direction.FORWARD, Direction.BIDIRECTIONAL):
        end = min(
            [o.start for o in modifiers if o.start >= modifier.end and blocks(o)]
            + [_word_limit(sentence, modifier.end, limit, forward=True)]
        )
        spans.append(Span(modifier.end, end))
    if modifier.direction in (Direction.BACKWARD, Direction.BIDIRECTIONAL):
        start = max(
            [o.end for o in modifiers if o.end <= modifier.start and blocks(o)]
            + [_word_limit(sentence, modifier.start, limit, forward=False)]
        )
        spans.append(Span(start, modifier.start))
    return spans


def assert_targets(sentence: str, targets: Sequence[Span]) -> list[tuple[set[Category], list[str]]]:
    """For each target, the categories whose scope covers it and the trigger phrases."""
    modifiers = find_modifiers(sentence)
    active = [m for m in modifiers if m.direction is not Direction.NONE]
    scopes = [(m, scope(sentence, m, modifiers)) for m in active]
    out = []
    for t in targets:
        categories: set[Category] = set()
        phrases: list[str] = []
        for m, spans in scopes:
            if any(s.start <= t.start and t.end <= s.end for s in spans):
                categories.add(m.category)
                phrases.append(m.phrase)
        out.append((categories, phrases))
    return out
