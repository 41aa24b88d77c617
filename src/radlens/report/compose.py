"""The text draft of a report (Markdown), from findings and DICOM context.

Probabilities are put in words from calibrated bands, never as false certainty, and every
draft says it is an AI draft that requires physician review.
"""

from __future__ import annotations

from radlens.domain.findings import Finding, StudyResult
from radlens.domain.imaging import Study
from radlens.report.findings_json import DISCLAIMER

# Calibrated-probability bands -> words (upper bound exclusive).
BANDS: tuple[tuple[float, str], ...] = (
    (0.10, "unlikely"),
    (0.35, "not excluded"),
    (0.65, "possible"),
    (0.90, "likely"),
    (1.01, "very likely"),
)


def in_words(probability: float) -> str:
    """Words for a calibrated probability.

    Example:
        >>> in_words(0.93)
        'very likely'
    """
    return next(words for upper, words in BANDS if probability < upper)


def _finding_line(f: Finding) -> str:
    line = (
        f"- {f.label}: {in_words(f.probability)} (calibrated probability "
        f"{f.probability:.0%}; {'above' if f.positive else 'below'} the operating "
        f"threshold {f.threshold:.2f}; {f.model_name} {f.model_version})"
    )
    if f.ood_flag:
        line += " **Low trust: input unlike the model's training data.**"
    for w in f.warnings:
        line += f" Caution: {w}."
    return line


def compose_markdown(study: Study, result: StudyResult) -> str:
    """A draft report with Technique, Findings and Impression sections."""
    lines = ["# Draft report", "", f"> {DISCLAIMER}", "", "## Technique", ""]
    for s in study.series:
        parts = [s.modality or "unknown modality"]
        if s.body_part:
            parts.append(s.body_part.lower())
        if s.view_position:
            parts.append(f"{s.view_position} view")
        lines.append(f"- {', '.join(parts)}: {len(s.instances)} image(s)")
    lines += ["", "## Findings", ""]
    analyzed = [s for s in result.series if s.models]
    for analyzed_series in analyzed:
        lines.extend(_finding_line(f) for f in analyzed_series.findings)
    if not analyzed:
        lines.append("- No AI model applies to the images of this study.")
    skipped = [r for r in result.series if r.skipped_reason]
    if skipped:
        lines += ["", "Not analyzed by AI:"]
        for r in skipped:
            lines.append(f"- {r.modality or 'unknown'} series: {r.skipped_reason}")
            lines.extend(f"  - Warning: {w}" for w in r.warnings)
    lines += ["", "## Impression", ""]
    positives = [f for f in result.findings if f.positive]
    if positives:
        lines.extend(f"- {f.label} {in_words(f.probability)}." for f in positives)
    elif analyzed:
        lines.append("- No AI finding above its operating threshold.")
    else:
        lines.append("- No AI assessment.")
    lines += ["", f"Priority suggested by AI: {result.priority.name.lower()}.", ""]
    return "\n".join(lines)
