"""Feedback records: what one reader decided about one AI finding, and what that says.

A record is one row of ``finding_reviews`` (``store.review.review_finding``): the reader, the
time, the study and finding, the finding as the reader saw it (model name and version,
probability, threshold, OOD score), the decision (accepted, rejected, edited) with the
edited label, grade or box, and the reader's confidence (1-5).

Each record says one thing about the image, its :class:`ReaderCall`, relative to the
finding's code (what the model looks for):

| decision | the call |
|---|---|
| accepted (or edited with only a note) | the AI's call: present when the finding was positive |
| rejected | the opposite of the AI's call |
| edited, label = the finding's own label or code | present (with the edited box, grade) |
| edited, another label (relabel) | absent, and the reader names that class |
| edited, grade on a graded finding | that grade; grade 0 is absent |
| edited, box only | present, at the reader's box |

Example:
    >>> shown = ShownFinding("pneumonia", "Pneumonia", 0.8, 0.5, True, "cxr", "1.0.0")
    >>> FeedbackRecord(1, "1.2", "f1", "ann", datetime(2025, 1, 1), "rejected", shown).call
    ReaderCall(present=False, grade=None, label='')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EditKind(StrEnum):
    """What a reader did to a finding (a record may do several at once)."""

    ACCEPT = "accept"
    REJECT = "reject"
    RELABEL = "relabel"
    BOX_EDIT = "box edit"
    GRADE_CHANGE = "grade change"
    NOTE = "note"


@dataclass(frozen=True)
class ShownFinding:
    """The AI finding as a reader saw it (from the stored ``radlens.findings/2`` entry).

    Attributes:
        code, label: what the model looks for (``pneumonia``, ``Pneumonia``).
        probability, threshold, positive: the calibrated probability, the operating
            threshold and the call (``probability >= threshold``).
        model_name, model_version: which model said so.
        grade: the model's grade, for models that grade; None otherwise.
        box_px: the model's box ``(x0, y0, x1, y1)`` in source pixels, or None.
        ood_score, ood_flag: the out-of-distribution decision score (a multiple of its
            threshold) and flag; ood_feature_score, ood_input_score: its two distances.
        sop_instance_uid, frame: the image it is on.
        warnings: what the finding warned about (indeterminate, low trust, ...).
        counted: a detected box of a class the model does not triage.
    """

    code: str
    label: str
    probability: float
    threshold: float
    positive: bool
    model_name: str
    model_version: str
    grade: int | None = None
    box_px: tuple[float, float, float, float] | None = None
    ood_score: float | None = None
    ood_flag: bool = False
    ood_feature_score: float | None = None
    ood_input_score: float | None = None
    sop_instance_uid: str = field(default="", repr=False)
    frame: int = 0
    warnings: tuple[str, ...] = ()
    counted: bool = False

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ShownFinding:
        """From a finding of a stored findings document (or a review's ``finding``)."""
        box = doc.get("box_px")
        return cls(
            code=str(doc.get("code", "")),
            label=str(doc.get("label", "")),
            probability=float(doc.get("probability", 0.0)),
            threshold=float(doc.get("threshold", 0.5)),
            positive=bool(doc.get("positive", False)),
            model_name=str(doc.get("model_name", "")),
            model_version=str(doc.get("model_version", "")),
            grade=_int_or_none(doc.get("grade")),
            box_px=None if box is None else box_tuple(box),
            ood_score=_float_or_none(doc.get("ood_score")),
            ood_flag=bool(doc.get("ood_flag", False)),
            ood_feature_score=_float_or_none(doc.get("ood_feature_score")),
            ood_input_score=_float_or_none(doc.get("ood_input_score")),
            sop_instance_uid=str(doc.get("sop_instance_uid", "")),
            frame=int(doc.get("frame", 0) or 0),
            warnings=tuple(str(w) for w in doc.get("warnings", ()) or ()),
            counted=bool(doc.get("counted", False)),
        )

    @property
    def graded(self) -> bool:
        """Whether the model grades this finding (an ordinal model)."""
        return self.grade is not None

    def names(self, text: str) -> bool:
        """Whether ``text`` names this finding (its label or code, any case)."""
        wanted = text.strip().casefold()
        return wanted in (self.label.casefold(), self.code.casefold())


@dataclass(frozen=True)
class ReaderCall:
    """What a decision says about the image, relative to the finding's code.

    Attributes:
        present: the finding is there.
        grade: its grade, for graded findings (0 when absent); None when not graded.
        label: the class a reader named instead (a relabel), case-folded; "" otherwise.
    """

    present: bool
    grade: int | None = None
    label: str = ""

    @property
    def key(self) -> tuple[bool, int | None]:
        """What votes are counted on: presence and grade (a relabel is an absent vote)."""
        return (self.present, self.grade)

    def describe(self) -> str:
        """``present``, ``absent``, ``grade 2``, ``absent (NORMAL)``."""
        if self.grade is not None:
            text = f"grade {self.grade}"
        else:
            text = "present" if self.present else "absent"
        return f"{text} ({self.label})" if self.label else text


def ai_call(shown: ShownFinding) -> ReaderCall:
    """The AI's own call on its finding."""
    if shown.graded:
        return ReaderCall(bool(shown.grade), shown.grade)
    return ReaderCall(shown.positive)


@dataclass(frozen=True)
class FeedbackRecord:
    """One reader's decision on one finding (a ``finding_reviews`` row).

    Attributes:
        id: the row id (later rows of the same reader supersede earlier ones).
        study_uid, finding_id: the finding (``radlens.domain.findings.finding_id``).
        reader: the account name; at: when (UTC).
        decision: ``accepted``, ``rejected`` or ``edited`` (``store.review.Decision``).
        shown: the finding as the reader saw it.
        label, grade, box_px: what an edit set ("" / None when not set).
        confidence: the reader's confidence 1 (guess) .. 5 (certain), or None.
        note: the reader's free text (kept out of repr: it may name the patient).
    """

    id: int
    study_uid: str
    finding_id: str
    reader: str
    at: datetime
    decision: str
    shown: ShownFinding
    label: str = ""
    grade: int | None = None
    confidence: int | None = None
    box_px: tuple[float, float, float, float] | None = None
    note: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.decision not in ("accepted", "rejected", "edited"):
            raise ValueError(f"unknown decision {self.decision!r}")
        if self.confidence is not None and not 1 <= self.confidence <= 5:
            raise ValueError(f"confidence must be 1-5, got {self.confidence}")

    @property
    def kinds(self) -> tuple[EditKind, ...]:
        """What the reader did: accept, reject, or the edits (relabel, box, grade, note)."""
        if self.decision == "accepted":
            return (EditKind.ACCEPT,)
        if self.decision == "rejected":
            return (EditKind.REJECT,)
        kinds = []
        if self.label and not self.shown.names(self.label):
            kinds.append(EditKind.RELABEL)
        if self.box_px is not None:
            kinds.append(EditKind.BOX_EDIT)
        if self.grade is not None and self.grade != self.shown.grade:
            kinds.append(EditKind.GRADE_CHANGE)
        return tuple(kinds) or (EditKind.NOTE,)

    @property
    def call(self) -> ReaderCall:
        """What this decision says about the image (see the module's table)."""
        shown = self.shown
        if self.decision == "accepted":
            return ai_call(shown)
        if self.decision == "rejected":
            if shown.graded:
                return ReaderCall(not shown.grade, 0 if shown.grade else None)
            return ReaderCall(not shown.positive)
        if self.label and not shown.names(self.label):
            return ReaderCall(False, 0 if shown.graded else None, self.label.strip().casefold())
        if shown.graded and self.grade is not None:
            return ReaderCall(self.grade > 0, self.grade)
        if self.label or self.box_px is not None or self.grade is not None:
            return ReaderCall(True, shown.grade if shown.graded else None)
        return ai_call(shown)


def box_tuple(values: Any) -> tuple[float, float, float, float]:
    """``[x0, y0, x1, y1]`` as a tuple of four floats."""
    x0, y0, x1, y1 = (float(v) for v in values)
    return (x0, y0, x1, y1)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
