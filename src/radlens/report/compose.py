"""The text draft of a report (Markdown): Indication, Technique, Comparison, Findings,
Impression, from the AI findings, the DICOM context, an earlier study and clinical notes.

* **Words, never false certainty.** A calibrated probability is said in words from
  ``BANDS`` ("unlikely" ... "very likely"), the number beside it in parentheses. A finding in
  its card's abstain band (the ``inference.predict.INDETERMINATE`` warning) is
  "indeterminate"; one on input unlike the model's training data says
  ``LOW_TRUST``.
* **Indication**: patient age and sex, and the reasons for the exam: the order's DICOM
  context (Reason for the Requested Procedure, Admitting Diagnoses, Additional Patient
  History) and the reasons ``nlp.extract`` finds in the clinical notes.
* **Comparison** with the latest prior study of the same patient (``PriorStudy``): per
  finding code, new / resolved / persistent / increased / decreased (``Change``), with dates.
* **Clinical correlation** (within Findings): per finding, ``nlp.align`` of the notes with
  the AI (concordant / discordant / new / known); a discordance is called out at the top and
  in the Impression, because the radiologist must settle it.
* **Measurements** of a finding (a fetal head circumference in mm, a gestational age in
  weeks with its +/- 2 SD range) are listed under it in Findings and repeated in the
  Impression (:func:`measurement_words`); one that cannot be given says why.
* Every draft says ``DISCLAIMER``: an AI-generated draft that requires physician review.

Example:
    >>> from radlens.domain.findings import Finding, SeriesResult, StudyResult
    >>> from radlens.domain.imaging import Study
    >>> f = Finding("pneumonia", "Pneumonia", 0.08, 0.5, "cxr_pneumonia", "1.0")
    >>> r = StudyResult("1.2.3", (SeriesResult("1.2.3.1", "CR", "CHEST", 1, ("cxr",), (f,)),))
    >>> draft = compose(Study("1.2.3", ()), r, notes="Indication: rule out pneumonia.")
    >>> [a.concordance.value for a in draft.alignments]
    ['discordant']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from radlens.domain.findings import Finding, Measurement, StudyResult, is_detected_box
from radlens.domain.imaging import Patient, Study
from radlens.domain.reports import PriorStudy
from radlens.nlp import Alignment, Concordance, Extraction, align, extract
from radlens.report.findings_json import DISCLAIMER

# Calibrated-probability bands -> words (upper bound exclusive).
BANDS: tuple[tuple[float, str], ...] = (
    (0.10, "unlikely"),
    (0.35, "not excluded"),
    (0.65, "possible"),
    (0.90, "likely"),
    (1.01, "very likely"),
)
INDETERMINATE = "indeterminate"
"""The word for a finding in its card's abstain band (its warning starts with it)."""
LOW_TRUST = "input unlike training data — low trust"
"""What a finding on out-of-distribution input says (the words of ``inference.ood``)."""
_SEX = {"M": "male", "F": "female", "O": "other sex"}
_HIPAA_AGE_CAP_YEARS = 90  # ages of 90 and over are said as such (HIPAA Safe Harbor)


def in_words(probability: float) -> str:
    """Words for a calibrated probability.

    Example:
        >>> in_words(0.93)
        'very likely'
    """
    return next(words for upper, words in BANDS if probability < upper)


def band(probability: float) -> int:
    """Index of the probability's band in ``BANDS`` (0 = "unlikely")."""
    return next(i for i, (upper, _) in enumerate(BANDS) if probability < upper)


def is_indeterminate(finding: Finding) -> bool:
    """Whether the finding fell in its card's abstain band (too close to call)."""
    return any(w.startswith(INDETERMINATE) for w in finding.warnings)


def finding_words(finding: Finding) -> str:
    """ "indeterminate" in the abstain band, else the words of its probability band."""
    return INDETERMINATE if is_indeterminate(finding) else in_words(finding.probability)


# --- comparison with a prior study ------------------------------------------------------


class Change(StrEnum):
    """How a finding code changed since the prior study."""

    NEW = "new"
    """Negative on the prior, positive now."""
    RESOLVED = "resolved"
    """Positive on the prior, negative now."""
    PERSISTENT = "persistent"
    """Positive on both, same probability band."""
    INCREASED = "increased"
    """Same side of the threshold, higher probability band now."""
    DECREASED = "decreased"
    """Same side of the threshold, lower probability band now."""
    UNCHANGED = "unchanged"
    """Negative on both, same probability band."""
    NOT_COMPARED = "not compared"
    """Assessed on only one of the two studies."""


@dataclass(frozen=True, eq=False)
class Comparison:
    """One finding code on the prior study and now (the most probable finding of the code
    on each side, or None where the code was not assessed)."""

    code: str
    label: str
    change: Change
    prior: Finding | None
    current: Finding | None
    prior_date: str = ""

    @property
    def sentence(self) -> str:
        """E.g. "Pneumonia: new since 2024-01-10 (then unlikely, p=0.08; now likely, p=0.82)"."""
        since = f" since {self.prior_date}" if self.prior_date else " since the prior study"
        if self.current is None and self.prior is not None:
            return f"{self.label}: not assessed on this study (prior: {_said(self.prior)})"
        if self.prior is None and self.current is not None:
            return f"{self.label}: not assessed on the prior study (now: {_said(self.current)})"
        assert self.prior is not None and self.current is not None
        what = {
            Change.NEW: f"new{since}",
            Change.RESOLVED: f"resolved{since}",
            Change.PERSISTENT: f"persistent{since}",
            Change.INCREASED: f"increased probability{since}",
            Change.DECREASED: f"decreased probability{since}",
            Change.UNCHANGED: f"not seen, unchanged{since}",
        }[self.change]
        if self.change in (Change.INCREASED, Change.DECREASED) and not self.current.positive:
            what += ", still below the operating threshold"
        return f"{self.label}: {what} (then {_said(self.prior)}; now {_said(self.current)})"


def _said(f: Finding) -> str:
    return f"{finding_words(f)}, p={f.probability:.2f}"


def _by_code(findings: Iterable[Finding]) -> dict[str, Finding]:
    """The most probable finding of each code (positive when any of the code is)."""
    found: dict[str, Finding] = {}
    for f in findings:
        if f.code not in found or f.probability > found[f.code].probability:
            found[f.code] = f
    return found


def compare(findings: Iterable[Finding], prior: PriorStudy) -> tuple[Comparison, ...]:
    """Per finding code, how it changed since ``prior``: current codes first, in order.

    Example:
        >>> then = Finding("pneumonia", "Pneumonia", 0.08, 0.5, "cxr", "1.0")
        >>> now = Finding("pneumonia", "Pneumonia", 0.82, 0.5, "cxr", "1.0")
        >>> compare([now], PriorStudy("1.2", "2024-01-10", findings=(then,)))[0].sentence
        'Pneumonia: new since 2024-01-10 (then unlikely, p=0.08; now likely, p=0.82)'
    """
    current, before = _by_code(findings), _by_code(prior.findings)
    out = []
    for code in [*current, *(c for c in before if c not in current)]:
        now, then = current.get(code), before.get(code)
        label = now.label if now is not None else then.label if then is not None else code
        out.append(Comparison(code, label, _change(then, now), then, now, prior.study_date))
    return tuple(out)


def _change(then: Finding | None, now: Finding | None) -> Change:
    if then is None or now is None:
        return Change.NOT_COMPARED
    if now.positive != then.positive:
        return Change.NEW if now.positive else Change.RESOLVED
    step = band(now.probability) - band(then.probability)
    if step > 0:
        return Change.INCREASED
    if step < 0:
        return Change.DECREASED
    return Change.PERSISTENT if now.positive else Change.UNCHANGED


# --- clinical notes ---------------------------------------------------------------------


def _one_line(text: str) -> str:
    # DICOM multi-values come joined by backslashes; free text may hold line breaks.
    return " ".join(text.replace("\\", "; ").split())


def order_text(study: Study) -> str:
    """The study's clinical DICOM context as a sectioned note for ``nlp.extract``."""
    parts = (
        ("Reason for study", study.reason_for_study),
        ("Clinical information", study.admitting_diagnoses),
        ("Clinical history", study.patient_history),
    )
    return "\n".join(f"{header}: {_one_line(text)}" for header, text in parts if text.strip())


def read_notes(study: Study, notes: str = "") -> Extraction:
    """Mentions and reasons for the exam from the DICOM order context and the notes
    (free text, a prior report, or HL7 v2 ORM/ORU message text)."""
    found = [extract(text) for text in (order_text(study), notes) if text.strip()]
    return Extraction(
        tuple(m for e in found for m in e.mentions),
        tuple(dict.fromkeys(r for e in found for r in e.reasons)),
    )


def has_clinical_text(study: Study, notes: str = "") -> bool:
    return bool(order_text(study) or notes.strip())


# --- the draft --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Draft:
    """A composed draft: its Markdown text, and what it was decided from.

    Attributes:
        text: the Markdown draft.
        alignments: per AI finding (``result.findings`` order), the notes versus the AI.
        comparisons: per finding code, the change since the prior study (empty without one).
        prior: the prior study compared with, or None.
    """

    text: str = field(repr=False)  # clinical free text: kept out of logs
    alignments: tuple[Alignment, ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    prior: PriorStudy | None = None

    @property
    def discordant(self) -> tuple[Alignment, ...]:
        return tuple(a for a in self.alignments if a.flagged)


def compose(
    study: Study, result: StudyResult, prior: PriorStudy | None = None, notes: str = ""
) -> Draft:
    """The draft report of ``study`` with its sections, and the decisions behind it.

    Args:
        study: the DICOM context (procedure, reason for study, patient age and sex, series).
        result: the AI's findings.
        prior: the latest earlier study of the same patient, for the Comparison section.
        notes: clinical notes or a prior report (free text or HL7 v2 ORM/ORU).
    """
    extraction = read_notes(study, notes)
    alignments = align(extraction.mentions, result.findings)
    clinical = has_clinical_text(study, notes)
    comparisons = compare(result.findings, prior) if prior is not None else ()
    discordant = [a for a in alignments if a.flagged] if clinical else []
    lines = ["# Draft report", "", f"> {DISCLAIMER}", ""]
    if discordant:
        labels = ", ".join(dict.fromkeys(a.finding.label for a in discordant))
        alert = f"> **Discordant with the clinical notes: {labels}** (see Clinical correlation)."
        lines += [alert, ""]
    lines += _indication(study.patient, extraction.reasons)
    lines += _technique(study, result)
    lines += _comparison(prior, comparisons)
    lines += _findings(result, alignments if clinical else ())
    lines += _impression(result, comparisons, discordant)
    return Draft("\n".join(lines), alignments, comparisons, prior)


def compose_markdown(
    study: Study, result: StudyResult, prior: PriorStudy | None = None, notes: str = ""
) -> str:
    """The Markdown text of :func:`compose`."""
    return compose(study, result, prior, notes).text


def patient_words(patient: Patient) -> str:
    """Age and sex in words, e.g. "3-year-old male" ("" when neither is known).

    Example:
        >>> patient_words(Patient(sex="F", age_years=0.5)), patient_words(Patient(age_years=93))
        ('6-month-old female', 'patient aged 90 years or older')
    """
    sex = _SEX.get(patient.sex.upper(), "")
    age = patient.age_years
    if age is None:
        return f"{sex} patient" if sex else ""
    if age >= _HIPAA_AGE_CAP_YEARS:
        return f"{sex or 'patient'} aged {_HIPAA_AGE_CAP_YEARS} years or older"
    if age < 1:
        months = max(1, round(age * 12))
        who = f"{months}-month-old"
    else:
        who = f"{int(age)}-year-old"
    return f"{who} {sex or 'patient'}"


def _indication(patient: Patient, reasons: Sequence[str]) -> list[str]:
    lines = ["## Indication", ""]
    who = patient_words(patient)
    if who:
        lines.append(f"Patient: {who}.")
    lines.extend(f"- {reason}" for reason in reasons)
    if not reasons:
        lines.append("Reason for exam: not provided.")
    return [*lines, ""]


def _technique(study: Study, result: StudyResult) -> list[str]:
    lines = ["## Technique", ""]
    procedure = [p for p in dict.fromkeys((study.description, study.requested_procedure)) if p]
    if procedure:
        lines.append(f"Procedure: {'; '.join(_one_line(p) for p in procedure)}.")
    counts = {s.series_instance_uid: s.n_instances for s in result.series}
    rows = [
        (
            s.modality,
            s.body_part,
            s.view_position,
            counts.get(s.series_instance_uid) or len(s.instances),
        )
        for s in study.series
    ] or [(s.modality, s.body_part, "", s.n_instances) for s in result.series]
    for modality, body_part, view, n in rows:
        parts = [modality or "unknown modality"]
        if body_part:
            parts.append(body_part.lower())
        if view:
            parts.append(f"{view} view")
        lines.append(f"- {', '.join(parts)}: {n} image(s)")
    return [*lines, ""]


def _comparison(prior: PriorStudy | None, comparisons: Sequence[Comparison]) -> list[str]:
    lines = ["## Comparison", ""]
    if prior is None:
        return [*lines, "None available.", ""]
    what = ", ".join(p for p in (prior.study_date, _one_line(prior.description)) if p)
    lines.append(f"Prior study: {what or 'date unknown'}.")
    if not comparisons:
        lines.append("No AI findings on either study to compare.")
    lines.extend(f"- {c.sentence}." for c in comparisons)
    return [*lines, ""]


_UNIT_WORDS = {"mm": "mm", "wk": "weeks"}


def measurement_words(m: Measurement) -> str:
    """A measurement as said in the draft: value, unit and range, or why there is none.

    Example:
        >>> print(measurement_words(Measurement("gestational_age", "Gestational age", 20.2,
        ...     "wk", low=18.3, high=22.1)))
        Gestational age 20.2 weeks (range 18.3-22.1 weeks)
    """
    unit = _UNIT_WORDS.get(m.unit, m.unit)
    if m.value is None:
        return f"{m.label} not given: {m.note}"
    words = f"{m.label} {m.value:.1f} {unit}"
    if m.low is not None and m.high is not None:
        words += f" (range {m.low:.1f}-{m.high:.1f} {unit})"
    return words


def _measurement_lines(f: Finding) -> list[str]:
    """Sub-items of a finding's line: each measurement, with how it was obtained."""
    return [
        f"  - {measurement_words(m)}" + (f"; {m.method}." if m.method else ".")
        for m in f.measurements
    ]


def _finding_line(f: Finding) -> str:
    if f.detected:  # a detector's score is no probability: never said in words
        side = "above" if f.positive else "below"
        said = (
            f"best detector score {f.probability:.2f}, {side} the operating score {f.threshold:.2f}"
        )
    elif is_indeterminate(f):
        said = (
            f"{INDETERMINATE} (calibrated probability {f.probability:.0%}, too close to the "
            f"operating threshold {f.threshold:.2f} to call"
        )
    else:
        side = "above" if f.positive else "below"
        said = (
            f"{in_words(f.probability)} (calibrated probability {f.probability:.0%}; "
            f"{side} the operating threshold {f.threshold:.2f}"
        )
    line = f"- {f.label}: {said}; {f.model_name} {f.model_version})."
    if f.ood_flag:
        line += f" **{LOW_TRUST[0].upper()}{LOW_TRUST[1:]}.**"
    for w in f.warnings:
        if w != LOW_TRUST and not w.startswith(INDETERMINATE):
            line += f" Caution: {w}."
    return line


def box_lines(boxes: Sequence[Finding]) -> list[str]:
    """A detector's boxes counted per model and class, one line each (they are drawn one by
    one in the overlay and listed in findings.json and the SR).

    Example:
        >>> from radlens.domain.findings import Box
        >>> b = Finding("rbc", "RBC", 0.8, 0.3, "cells", "1", box=Box(0, 0, 9, 9), detected=True)
        >>> print(box_lines([b, b])[0])
        - RBC: 2 boxes (detector scores 0.80-0.80, each at least 0.30; cells 1); see the overlay.
    """
    groups: dict[tuple[str, str, str, float], list[float]] = {}
    low_trust: set[tuple[str, str, str, float]] = set()
    for f in boxes:
        key = (f.label, f.model_name, f.model_version, f.threshold)
        groups.setdefault(key, []).append(f.probability)
        if f.ood_flag:
            low_trust.add(key)
    return [
        f"- {label}: {len(scores)} box{'es' if len(scores) != 1 else ''} (detector scores "
        f"{min(scores):.2f}-{max(scores):.2f}, each at least {threshold:.2f}; {model} "
        f"{version}); see the overlay."
        + (
            f" **{LOW_TRUST[0].upper()}{LOW_TRUST[1:]}.**"
            if (label, model, version, threshold) in low_trust
            else ""
        )
        for (label, model, version, threshold), scores in groups.items()
    ]


_CONCORDANCE_WORDS = {
    Concordance.CONCORDANT: "Concordant",
    Concordance.DISCORDANT: "Discordant",
    Concordance.NEW: "New (not in the notes)",
    Concordance.KNOWN: "Known",
}


def _findings(result: StudyResult, alignments: Sequence[Alignment]) -> list[str]:
    lines = ["## Findings", ""]
    analyzed = [s for s in result.series if s.models]
    for series in analyzed:
        for f in series.findings:
            if not is_detected_box(f):
                lines += [_finding_line(f), *_measurement_lines(f)]
        lines.extend(box_lines([f for f in series.findings if is_detected_box(f)]))
    if not analyzed:
        lines.append("- No AI model applies to the images of this study.")
    skipped = [r for r in result.series if r.skipped_reason]
    if skipped:
        lines += ["", "Not analyzed by AI:"]
        for r in skipped:
            lines.append(f"- {r.modality or 'unknown'} series: {r.skipped_reason}")
            lines.extend(f"  - Warning: {w}" for w in r.warnings)
    if alignments:
        lines += ["", "### Clinical correlation", ""]
        for a in alignments:
            words = _CONCORDANCE_WORDS[a.concordance]
            if a.flagged:
                lines.append(f"- **{words} ({a.finding.label}):** {a.sentence}")
            else:
                lines.append(f"- {words} ({a.finding.label}): {a.sentence}")
    return [*lines, ""]


def _impression(
    result: StudyResult, comparisons: Sequence[Comparison], discordant: Sequence[Alignment]
) -> list[str]:
    lines = ["## Impression", ""]
    changes = {c.code: c for c in comparisons}
    boxes = [f for f in result.findings if is_detected_box(f)]
    listed = [f for f in result.findings if (f.positive or is_indeterminate(f)) and f not in boxes]
    for f in listed:
        line = f"- {f.label} {finding_words(f)}."
        if f.measurements:
            line += " " + "; ".join(measurement_words(m) for m in f.measurements) + "."
        if f.ood_flag:
            line += f" Low trust: {LOW_TRUST.split(' — ')[0]}."
        change = changes.get(f.code)
        if change is not None and change.change is not Change.NOT_COMPARED:
            line += f" {change.change.value.capitalize()} compared with the prior study."
        lines.append(line)
    lines += box_lines(boxes)
    for c in comparisons:
        if c.change is Change.RESOLVED:
            lines.append(f"- {c.label}: resolved compared with the prior study.")
    if not listed and not boxes:
        analyzed = any(s.models for s in result.series)
        lines.append(
            "- No AI finding above its operating threshold." if analyzed else "- No AI assessment."
        )
    for f in result.findings:
        # A negative on unfamiliar input reassures nobody. Boxes say it on their class line.
        if f.ood_flag and f not in listed and f not in boxes:
            said = ": no box reached the operating score" if f.detected else f" {finding_words(f)}"
            lines.append(
                f"- {f.label}{said}, but low trust: {LOW_TRUST.split(' — ')[0]}; "
                "this does not exclude it."
            )
    for a in discordant:
        lines.append(f"- **Discordant with the clinical notes ({a.finding.label}):** {a.sentence}.")
    lines += ["", f"Priority suggested by AI: {result.priority.name.lower()}.", ""]
    return lines
