"""Library check for issue 6: the same targets, assertions by medspaCy's ConText.

Not part of ``make bench``: medspaCy is not a radlens dependency (``docs/nlp.md`` says why).
Run it in a separate environment::

    python3.11 -m venv /tmp/msp && /tmp/msp/bin/pip install medspacy==1.3.1
    /tmp/msp/bin/python benchmarks/compare_nlp_medspacy.py

It reads the IU reports with ``radlens.nlp`` (from ``src/``), finds the same sentences and
target terms, hands the target spans to medspaCy as entities, runs its ``ConText``
component with its default rules, and scores with the same evaluator. Writes
``benchmarks/nlp_medspacy.json``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "src"))

import medspacy  # noqa: E402
import spacy  # noqa: E402
from loguru import logger  # noqa: E402

import radlens.nlp.evaluate as evaluation  # noqa: E402
from radlens.nlp import mentions as radlens_mentions  # noqa: E402
from radlens.nlp.sections import Section, split_sentences  # noqa: E402

CSV = HERE.parents[1] / "shared" / "data" / "reports" / "iu_xray" / "reports_trainval.csv"
EXAMPLES = (
    "No pneumothorax.",
    "Cannot exclude pneumonia.",
    "Possible nodule.",
    "No change in pleural effusion.",
    "Effusion has resolved.",
    "Rule out pneumonia.",
)


def medspacy_extractor() -> Any:
    logger.remove()  # PyRuSH logs every token of the text at DEBUG level by default
    nlp = medspacy.load()
    nlp.remove_pipe("medspacy_target_matcher")
    context = nlp.get_pipe("medspacy_context")
    before = [nlp.get_pipe(n) for n in nlp.pipe_names if n != "medspacy_context"]

    def extract(text: str) -> radlens_mentions.Extraction:
        doc = nlp.make_doc(text)
        for pipe in before:
            doc = pipe(doc)
        spans, last_end = [], -1
        for s in split_sentences(text):
            for t in radlens_mentions.find_targets(s.text):
                span = doc.char_span(
                    s.start + t.start, s.start + t.end, label=t.label, alignment_mode="expand"
                )
                if span is not None and span.start >= last_end:  # spaCy entities never overlap
                    spans.append((span, t, s))
                    last_end = span.end
        doc.ents = [span for span, _, _ in spans]
        doc = context(doc)
        by_span = {(e.start, e.end): e for e in doc.ents}
        found = []
        for span, t, s in spans:
            e = by_span[(span.start, span.end)]
            found.append(
                radlens_mentions.Mention(
                    label=t.label,
                    text=e.text,
                    start=e.start_char,
                    end=e.end_char,
                    section=s.section,
                    negated=t.negated or e._.is_negated,
                    uncertain=e._.is_uncertain,
                    historical=e._.is_historical or s.section is Section.COMPARISON,
                    reason=e._.is_hypothetical or s.section is Section.REASON,
                    triggers=tuple(m.rule.literal for m in e._.modifiers),
                )
            )
        return radlens_mentions.Extraction(tuple(found))

    return extract


def main() -> int:
    reports = evaluation.read_reports(CSV)
    _, check = evaluation.split_dev_check(reports)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "medspacy_version": medspacy.__version__,
        "spacy_version": spacy.__version__,
    }
    engines = {"radlens": radlens_mentions.extract, "medspacy": medspacy_extractor()}
    for name, extract in engines.items():
        evaluation.extract = extract  # the evaluator's only call into the engine
        result[name] = {}
        for part, rows in (("whole", reports), ("check", check)):
            start = time.perf_counter()
            scores = evaluation.evaluate_reports(rows)
            result[name][part] = {
                "macro_f1": round(scores.macro_f1, 4),
                "seconds": round(time.perf_counter() - start, 1),
                "f1": {k: round(v.f1, 3) for k, v in scores.scores.items()},
            }
        result[name]["examples"] = {
            text: [(m.label, m.assertion.value) for m in extract(text).mentions]
            for text in EXAMPLES
        }
    (HERE / "nlp_medspacy.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("radlens", "medspacy")}, indent=1)[:3000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
