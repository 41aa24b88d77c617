"""Measure extraction against curated report labels (IU chest X-ray / Open-i CSV form).

The file has one report per row with the columns ``uid, MeSH, Problems, indication,
comparison, findings, impression`` (others ignored). Each row is read as a report
("INDICATION: ... COMPARISON: ... FINDINGS: ... IMPRESSION: ..."), and a label is predicted
present when a mention of it in the findings or impression is present, possible or
historical (or possible only as one alternative of a differential, "A versus B"); negated
mentions count as absent, and mentions in the indication (the question)
or the comparison do not count.

Curated labels come from the ``MeSH`` column (``;``-separated terms, qualifiers after
``/``): a label is present when a term equals one of its ``GOLD_TERMS`` or continues it after
a ``/`` ("Opacity/lung/base/left/mild" -> opacity). ``normal`` is the row whose MeSH is
exactly "normal"; a report is predicted normal when it asserts no abnormality of any label
(``lexicon.ABNORMAL_LABELS``). Rows indexed "No Indexing" carry no labels at all and are left
out of the scores (counted in ``n_excluded``).

Example:
    >>> sorted(gold_labels("Opacity/lung/base/left/mild;Cardiac Shadow/enlarged"))
    ['cardiomegaly', 'opacity']
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from radlens.errors import InputError, UnsupportedFormatError
from radlens.nlp.lexicon import ABNORMAL_LABELS, CHEST_FINDINGS, NORMAL
from radlens.nlp.mentions import Assertion, Extraction, Mention, extract
from radlens.nlp.sections import Section

REQUIRED_COLUMNS = ("uid", "MeSH", "findings", "impression")
"""Columns ``read_reports`` needs; ``indication`` and ``comparison`` are read when present."""

GOLD_TERMS: dict[str, tuple[str, ...]] = {
    "cardiomegaly": ("Cardiomegaly", "Cardiac Shadow/enlarged"),
    "effusion": ("Pleural Effusion",),
    "opacity": ("Opacity", "Airspace Disease", "Consolidation", "Infiltrate"),
    "atelectasis": ("Pulmonary Atelectasis",),
    "nodule": ("Nodule",),
    "emphysema": ("Emphysema", "Pulmonary Emphysema", "Bullous Emphysema"),
    "pneumothorax": ("Pneumothorax",),
    "edema": ("Pulmonary Edema",),
    "pneumonia": ("Pneumonia",),
}
"""Radlens label -> the MeSH headings (with qualifiers, when given) that mean it."""

SCORED_LABELS = CHEST_FINDINGS + ("pneumonia",)
"""Labels scored; the macro-F1 is over ``CHEST_FINDINGS`` only."""

COUNTED = frozenset({Assertion.PRESENT, Assertion.HISTORICAL})
"""Assertions that count as "the report says it is there"."""

DIFFERENTIAL_TRIGGERS = frozenset({"versus", "vs", "vs."})
"""A possible mention made uncertain only by these ("atelectasis versus scarring") counts:
the curators index each alternative of a differential, but not a hedge ("possible
pneumonia", "may represent")."""

REPORT_SECTIONS = frozenset({Section.FINDINGS, Section.IMPRESSION, Section.BODY})

NOT_INDEXED = "No Indexing"


@dataclass(frozen=True)
class Report:
    """One row of a curated reports file (clinical text: kept out of ``repr``)."""

    uid: str
    mesh: str
    indication: str = field(default="", repr=False)
    comparison: str = field(default="", repr=False)
    findings: str = field(default="", repr=False)
    impression: str = field(default="", repr=False)

    @property
    def text(self) -> str:
        return (
            f"INDICATION: {self.indication}\nCOMPARISON: {self.comparison}\n"
            f"FINDINGS: {self.findings}\nIMPRESSION: {self.impression}"
        )


@dataclass(frozen=True)
class LabelScore:
    """Counts and figures of one label."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "support": self.support,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }


@dataclass(frozen=True)
class NlpEvaluation:
    """Per-label scores and the macro-F1 over ``macro_labels``."""

    n_reports: int
    n_excluded: int
    scores: dict[str, LabelScore]
    macro_labels: tuple[str, ...] = CHEST_FINDINGS

    @property
    def macro_f1(self) -> float:
        return sum(self.scores[k].f1 for k in self.macro_labels) / len(self.macro_labels)

    def as_dict(self) -> dict[str, object]:
        return {
            "n_reports": self.n_reports,
            "n_excluded": self.n_excluded,
            "macro_f1": round(self.macro_f1, 4),
            "macro_labels": list(self.macro_labels),
            "labels": {k: v.as_dict() for k, v in self.scores.items()},
        }


def read_reports(path: str | Path) -> list[Report]:
    """Rows of a reports CSV with the IU X-ray columns.

    Raises:
        InputError: the file does not exist.
        UnsupportedFormatError: the file lacks one of ``REQUIRED_COLUMNS``.
    """
    if not Path(path).is_file():
        raise InputError(path, "no such file")
    with Path(path).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UnsupportedFormatError(
                path, f"not a reports CSV: missing column(s) {', '.join(missing)}"
            )
        return [
            Report(
                uid=row["uid"],
                mesh=row["MeSH"] or "",
                indication=row.get("indication") or "",
                comparison=row.get("comparison") or "",
                findings=row["findings"] or "",
                impression=row["impression"] or "",
            )
            for row in reader
        ]


def gold_labels(mesh: str) -> set[str]:
    """Labels a MeSH cell means (``GOLD_TERMS``; "normal" for exactly "normal")."""
    terms = [t.strip() for t in mesh.split(";") if t.strip()]
    if [t.lower() for t in terms] == [NORMAL]:
        return {NORMAL}
    return {
        label
        for label, heads in GOLD_TERMS.items()
        for t in terms
        if any(t == h or t.startswith(f"{h}/") for h in heads)
    }


def predicted_labels(extraction: Extraction) -> set[str]:
    """Labels a report asserts (``COUNTED``, in ``REPORT_SECTIONS``); normal if none is abnormal."""
    found = {m.label for m in extraction.mentions if m.section in REPORT_SECTIONS and _counted(m)}
    return found - {NORMAL} if found & ABNORMAL_LABELS else {NORMAL}


def _counted(mention: Mention) -> bool:
    if mention.assertion in COUNTED:
        return True
    differential = set(mention.triggers) <= DIFFERENTIAL_TRIGGERS
    return mention.assertion is Assertion.POSSIBLE and differential


def split_dev_check(
    reports: Sequence[Report], check_fraction: float = 0.3, seed: int = 20240607
) -> tuple[list[Report], list[Report]]:
    """A seeded split into a development part and a check part left untouched by rule-writing."""
    order = list(range(len(reports)))
    random.Random(seed).shuffle(order)
    check = set(order[: round(len(reports) * check_fraction)])
    return (
        [r for i, r in enumerate(reports) if i not in check],
        [r for i, r in enumerate(reports) if i in check],
    )


def evaluate_reports(
    reports: Iterable[Report], labels: Sequence[str] = SCORED_LABELS
) -> NlpEvaluation:
    """Per-label precision, recall, F1 of ``extract`` against the curated labels."""
    counts = {k: [0, 0, 0, 0] for k in labels}  # tp, fp, fn, tn
    n = excluded = 0
    for report in reports:
        if report.mesh.strip().startswith(NOT_INDEXED):
            excluded += 1
            continue
        n += 1
        gold = gold_labels(report.mesh)
        predicted = predicted_labels(extract(report.text))
        for k in labels:
            index = {(True, True): 0, (False, True): 1, (True, False): 2, (False, False): 3}
            counts[k][index[(k in gold, k in predicted)]] += 1
    scores = {k: LabelScore(*c) for k, c in counts.items()}
    macro = tuple(k for k in CHEST_FINDINGS if k in scores)
    return NlpEvaluation(n, excluded, scores, macro)
