// The findings panel: every AI finding with its probability, trust and provenance, the
// reader's decision on it (accept / reject / edit), and whatever the analysis could not do.
import { ApiError, api } from "./api";
import { fill, h } from "./dom";
import { AI_DRAFT, LOW_TRUST, UNLIKE_IN, dateTime, percent } from "./format";
import type { Decision, Finding, Measurement, ModelCard, Review, ReviewIn, Study } from "./types";

/** "176.4 mm" or "20.1 wk (18.9–21.3)"; "not given" with its reason when there is no value. */
export function measurementText(m: Measurement): string {
  if (m.value === null) return `not given: ${m.note}`;
  const value = `${m.value.toFixed(1)} ${m.unit}`;
  return m.low !== null && m.high !== null
    ? `${value} (${m.low.toFixed(1)}–${m.high.toFixed(1)})`
    : value;
}

/** The probability of every grade as a row of bars, the reported grade marked. */
function gradeDistribution(f: Finding): HTMLElement {
  return h(
    "div",
    {
      class: "grades",
      testid: "grade-distribution",
      title: "Calibrated probability of each grade",
    },
    ...(f.grade_probabilities ?? []).map(({ label, probability }) =>
      h(
        "div",
        {
          class: `grade-row${label === f.grade_label ? " top" : ""}`,
          testid: "grade-probability",
          "data-grade": label,
        },
        h("span", { class: "grade-name" }, label),
        h(
          "span",
          { class: "grade-bar" },
          h("span", { class: "grade-fill", style: `width: ${(probability * 100).toFixed(1)}%` }),
        ),
        h("span", { class: "grade-value" }, percent(probability)),
      ),
    ),
  );
}

/** One line for the image overlay: "HC 176.4 mm · GA 20.1 wk". */
export function measurementSummary(f: Finding): string {
  const short: Record<string, string> = { head_circumference: "HC", gestational_age: "GA" };
  const parts = f.measurements
    .filter((m) => m.value !== null)
    .map((m) => `${short[m.code] ?? m.label} ${m.value!.toFixed(1)} ${m.unit}`);
  return parts.length ? parts.join(" · ") : f.label;
}

export function allFindings(study: Study): Finding[] {
  return study.findings?.series.flatMap((series) => series.findings) ?? [];
}

/** The finding to show first: a positive one with a heatmap, else any with a heatmap. */
export function defaultFinding(study: Study): Finding | null {
  const findings = allFindings(study);
  return (
    findings.find((f) => f.positive && f.has_heatmap) ??
    findings.find((f) => f.positive) ??
    findings.find((f) => f.has_heatmap) ??
    findings[0] ??
    null
  );
}

/** Model cards fetched so far, by "name version" (a version's card does not change), or
 * the reason one could not be fetched. */
const modelCards = new Map<string, ModelCard | string>();

const VAL_FIGURES: [string, string][] = [
  ["auc", "AUC"],
  ["sensitivity_at_operating", "sensitivity"],
  ["specificity_at_operating", "specificity"],
  ["acc", "accuracy"],
  ["qwk", "weighted kappa"],
  ["mae", "mean grade error"],
  ["dice", "Dice"],
  ["hc_mad_mm", "HC median abs. error (mm)"],
  ["map50", "mAP@0.5"],
  ["precision_at_operating", "precision"],
  ["recall_at_operating", "recall"],
  ["ece", "ECE"],
];

/** "validation (n 194): AUC 0.903 · sensitivity 0.841 · … · ECE 0.056" (sensitivity and
 * specificity at the operating threshold). */
export function validationLine(card: ModelCard): string {
  const figures = VAL_FIGURES.filter(([key]) => key in card.val).map(
    ([key, name]) => `${name} ${card.val[key].toFixed(3)}`,
  );
  if (!figures.length) return "no validation figures on the card";
  const n = card.val.n !== undefined ? ` (n ${card.val.n})` : "";
  return `validation${n}: ${figures.join(" · ")}`;
}

/** What the reader needs to weigh the model's findings, from its card. */
function modelCardBody(card: ModelCard): HTMLElement {
  return h(
    "div",
    { class: "model-card-body", testid: "model-card" },
    h("p", { testid: "model-intended-use" }, card.intended_use),
    h("p", { class: "muted", testid: "model-validation" }, validationLine(card)),
    card.abstain_band
      ? h(
          "p",
          { class: "muted" },
          `Too close to call between ${percent(card.abstain_band[0])} and ${percent(card.abstain_band[1])}.`,
        )
      : null,
    card.limitations.length
      ? h(
          "div",
          {},
          h("strong", {}, "Limitations"),
          h(
            "ul",
            { class: "limitations", testid: "model-limitations" },
            card.limitations.map((text) => h("li", {}, text)),
          ),
        )
      : null,
    h(
      "p",
      { class: "muted" },
      `Trained on ${card.training_data} (${card.licence}); applies to ${card.modalities.join(", ")}` +
        (card.body_parts.length ? ` of ${card.body_parts.join(", ").toLowerCase()}` : "") +
        (card.population ? `; ${card.population}` : "") +
        ".",
    ),
  );
}

const DECISION_LABELS: Record<Decision, string> = {
  accepted: "Accepted",
  rejected: "Rejected",
  edited: "Edited",
};

export interface FindingsPanelHandlers {
  /** The reader picked a finding: show its image and heatmap. */
  onSelect: (finding: Finding) => void;
}

export class FindingsPanel {
  readonly root = h("section", { class: "panel findings-panel", testid: "findings-panel" });
  private editing: string | null = null;
  private readonly errors = new Map<string, string>();
  /** Findings whose model card the reader has opened (kept open across re-renders). */
  private readonly openCards = new Set<string>();

  constructor(
    private study: Study,
    private selected: string | null,
    private readonly handlers: FindingsPanelHandlers,
  ) {
    this.render();
  }

  update(study: Study): void {
    this.study = study;
    this.render();
  }

  select(findingId: string | null): void {
    this.selected = findingId;
    this.render();
  }

  private render(): void {
    const study = this.study;
    const document = study.findings;
    const parts: (Node | null)[] = [
      h("h2", {}, "AI findings"),
      h("div", { class: "ai-draft-banner", role: "note", testid: "ai-draft-banner" }, AI_DRAFT),
    ];
    if (!document) {
      const text =
        study.status === "failed"
          ? "The analysis failed: no AI result for this study."
          : `Not analyzed yet (${study.status}); the findings appear here when the analysis is done.`;
      parts.push(h("p", { class: "muted", testid: "findings-pending" }, text));
      fill(this.root, parts);
      return;
    }
    if (document.warnings.length) {
      parts.push(
        h(
          "ul",
          { class: "warnings", testid: "study-warnings" },
          document.warnings.map((w) => h("li", {}, w)),
        ),
      );
    }
    for (const rejected of document.rejected) {
      parts.push(
        h(
          "p",
          { class: "warning", testid: "rejected-input" },
          `Not read (${rejected.kind}): ${rejected.reason}`,
        ),
      );
    }
    for (const series of document.series) {
      const title = [series.modality, series.body_part].filter(Boolean).join(" · ") || "series";
      parts.push(
        h(
          "div",
          { class: "series-result", testid: "series-result" },
          h(
            "h3",
            {},
            title,
            h(
              "span",
              { class: "muted" },
              series.models.length ? ` — ${series.models.join(", ")}` : " — no model ran",
            ),
          ),
          series.skipped_reason
            ? h("p", { class: "skipped", testid: "skipped-reason" }, series.skipped_reason)
            : null,
          series.findings.length === 0 && !series.skipped_reason
            ? h("p", { class: "muted" }, "No findings.")
            : null,
          series.findings.map((finding) => this.card(finding)),
        ),
      );
    }
    parts.push(h("p", { class: "disclaimer muted", testid: "disclaimer" }, document.disclaimer));
    fill(this.root, parts);
  }

  /** The model line: a disclosure with the model's card (intended use, validation figures,
   * limitations), fetched the first time a reader opens it. */
  private modelCard(finding: Finding): HTMLElement {
    const key = `${finding.model_name} ${finding.model_version}`;
    const known = modelCards.get(key);
    const body =
      known === undefined
        ? h("p", { class: "muted" }, "Loading the model card…")
        : typeof known === "string"
          ? h("p", { class: "warning", testid: "model-card-error" }, known)
          : modelCardBody(known);
    return h(
      "details",
      {
        class: "model-details",
        open: this.openCards.has(finding.id),
        ontoggle: (event: Event) => {
          const open = (event.currentTarget as HTMLDetailsElement).open;
          if (open) this.openCards.add(finding.id);
          else this.openCards.delete(finding.id);
          if (open && !modelCards.has(key)) void this.fetchCard(finding, key);
        },
      },
      h(
        "summary",
        {
          class: "model muted",
          testid: "finding-model",
          title: "What this model is for, how it did on validation, and its limitations",
        },
        key,
      ),
      body,
    );
  }

  private async fetchCard(finding: Finding, key: string): Promise<void> {
    try {
      modelCards.set(key, await api.modelCard(finding.model_name, finding.model_version));
    } catch (error) {
      const reason = error instanceof ApiError ? error.message : String(error);
      modelCards.set(key, `No model card: ${reason}`);
    }
    this.render();
  }

  private card(finding: Finding): HTMLElement {
    const review = this.study.reviews[finding.id];
    const selected = finding.id === this.selected;
    const signed = this.study.status === "signed";
    const verdict = finding.positive
      ? h(
          "span",
          { class: "verdict positive", testid: "finding-verdict" },
          `positive (≥ ${percent(finding.threshold)})`,
        )
      : h(
          "span",
          { class: "verdict negative", testid: "finding-verdict" },
          `negative (< ${percent(finding.threshold)})`,
        );
    const error = this.errors.get(finding.id);
    const reasons = finding.ood_flag
      ? finding.warnings.find((w) => w.startsWith(UNLIKE_IN))
      : undefined;
    return h(
      "article",
      {
        class: `finding${selected ? " selected" : ""}${finding.positive ? " is-positive" : ""}`,
        testid: "finding",
        "data-finding-id": finding.id,
        "data-selected": String(selected),
      },
      h(
        "header",
        {},
        h(
          "button",
          {
            class: "finding-title link",
            title: "Show this finding on its image",
            testid: "finding-show",
            onclick: () => this.handlers.onSelect(finding),
          },
          h("span", { class: "finding-label", testid: "finding-label" }, finding.label),
        ),
        h(
          "span",
          { class: "probability", testid: "finding-probability" },
          percent(finding.probability),
        ),
      ),
      h(
        "div",
        { class: "finding-meta" },
        verdict,
        finding.grade_label
          ? h("span", { class: "grade", testid: "finding-grade" }, `grade: ${finding.grade_label}`)
          : null,
        finding.box_px
          ? h(
              "span",
              { class: "muted" },
              finding.detected && finding.counted ? "counted box" : "box",
            )
          : null,
        finding.outline_px ? h("span", { class: "muted" }, "outline") : null,
        finding.has_heatmap ? h("span", { class: "muted" }, "heatmap") : null,
      ),
      finding.grade_probabilities ? gradeDistribution(finding) : null,
      finding.measurements.length
        ? h(
            "dl",
            { class: "measurements", testid: "finding-measurements" },
            ...finding.measurements.flatMap((m) => [
              h("dt", {}, m.label),
              h(
                "dd",
                {
                  testid: `measurement-${m.code}`,
                  title: m.method + (m.note ? ` (${m.note})` : ""),
                },
                measurementText(m),
              ),
            ]),
          )
        : null,
      this.modelCard(finding),
      finding.ood_flag
        ? h(
            "div",
            { class: "ood-warning", testid: "ood-warning" },
            LOW_TRUST,
            finding.ood_score !== null ? ` (OOD score ${finding.ood_score.toFixed(2)})` : "",
            reasons
              ? h(
                  "div",
                  { class: "ood-reasons", testid: "ood-reasons" },
                  `Unlike its training images in: ${reasons.slice(UNLIKE_IN.length)}`,
                )
              : null,
          )
        : finding.ood_score !== null
          ? h(
              "div",
              { class: "muted", testid: "ood-score" },
              `OOD score ${finding.ood_score.toFixed(2)} (in range)`,
            )
          : null,
      this.concordanceLine(finding.id),
      this.readersLine(finding.id),
      finding.warnings.length
        ? h(
            "ul",
            { class: "warnings", testid: "finding-warnings" },
            // The low-trust line and its reasons are already shown above.
            finding.warnings
              .filter((w) => !finding.ood_flag || (w !== LOW_TRUST && w !== reasons))
              .map((w) => h("li", {}, w)),
          )
        : null,
      review ? this.decision(review) : null,
      this.editing === finding.id && !signed
        ? this.editForm(finding, review)
        : signed
          ? null
          : h(
              "div",
              { class: "review-buttons" },
              h(
                "button",
                {
                  testid: "review-accept",
                  onclick: () => this.save(finding, { decision: "accepted" }),
                },
                "Accept",
              ),
              h(
                "button",
                {
                  testid: "review-reject",
                  onclick: () => this.save(finding, { decision: "rejected" }),
                },
                "Reject",
              ),
              h(
                "button",
                {
                  testid: "review-edit",
                  onclick: () => {
                    this.editing = finding.id;
                    this.render();
                  },
                },
                "Edit",
              ),
            ),
      error ? h("p", { class: "form-error", role: "alert" }, error) : null,
    );
  }

  private decision(review: Review): HTMLElement {
    return h(
      "div",
      {
        class: `decision decision-${review.decision}`,
        testid: "review-decision",
        "data-decision": review.decision,
      },
      h("strong", {}, DECISION_LABELS[review.decision]),
      ` by ${review.username}, ${dateTime(review.at)}`,
      review.decision === "edited" && review.label
        ? h("div", { testid: "review-label" }, `label: ${review.label}`)
        : null,
      review.grade !== null ? h("div", {}, `grade: ${review.grade}`) : null,
      review.confidence !== null && review.confidence !== undefined
        ? h("div", { testid: "review-confidence" }, `confidence ${review.confidence} / 5`)
        : null,
      review.box_px
        ? h(
            "div",
            { testid: "review-box" },
            `box ${review.box_px.map((v) => Math.round(v)).join(", ")}`,
          )
        : null,
      review.note ? h("div", { class: "note", testid: "review-note" }, review.note) : null,
    );
  }

  private editForm(finding: Finding, review: Review | undefined): HTMLElement {
    const label = h("input", {
      value: review?.label || finding.label,
      maxLength: 128,
      required: true,
      testid: "edit-label",
    });
    const grade = h("input", {
      type: "number",
      min: 0,
      max: 20,
      value: review?.grade ?? finding.grade ?? "",
      testid: "edit-grade",
    });
    const confidence = h(
      "select",
      { testid: "edit-confidence" },
      h("option", { value: "" }, "not stated"),
      ...[1, 2, 3, 4, 5].map((c) =>
        h(
          "option",
          { value: String(c) },
          `${c}${c === 1 ? " (guess)" : c === 5 ? " (certain)" : ""}`,
        ),
      ),
    );
    confidence.value = review?.confidence ? String(review.confidence) : "";
    const start = review?.box_px ?? finding.box_px;
    const box = start
      ? h("input", {
          value: start.map((v) => Math.round(v)).join(", "),
          pattern: "\\s*\\d+(\\.\\d+)?\\s*(,\\s*\\d+(\\.\\d+)?\\s*){3}",
          title: "x0, y0, x1, y1 in image pixels",
          testid: "edit-box",
        })
      : null;
    const note = h("textarea", { rows: 3, maxLength: 10000, testid: "edit-note" });
    note.value = review?.note ?? "";
    const form = h(
      "form",
      { class: "edit-form", testid: "edit-form" },
      h("label", {}, "Label", label),
      finding.grade !== null || finding.grade_label ? h("label", {}, "Grade", grade) : null,
      h("label", {}, "Confidence", confidence),
      box ? h("label", {}, "Box (x0, y0, x1, y1)", box) : null,
      h("label", {}, "Note", note),
      h(
        "div",
        { class: "review-buttons" },
        h("button", { type: "submit", class: "primary", testid: "edit-save" }, "Save edit"),
        h(
          "button",
          {
            type: "button",
            testid: "edit-cancel",
            onclick: () => {
              this.editing = null;
              this.render();
            },
          },
          "Cancel",
        ),
      ),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body: ReviewIn = { decision: "edited", label: label.value.trim(), note: note.value };
      if (grade.isConnected && grade.value !== "") body.grade = Number(grade.value);
      if (confidence.value) body.confidence = Number(confidence.value);
      const corners = box?.value.split(",").map((v) => Number(v.trim()));
      const edited = corners?.join(",") !== start?.map((v) => Math.round(v)).join(",");
      if (box && corners && corners.length === 4 && edited) {
        body.box_px = corners as [number, number, number, number];
      }
      void this.save(finding, body);
    });
    return form;
  }

  /** How the readers' decisions combine, when more than one reader decided. */
  private readersLine(id: string): HTMLElement | null {
    const a = this.study.adjudications?.[id];
    if (!a || a.n_readers < 2) return null;
    return h(
      "div",
      {
        class: a.disagreement ? "readers disagreement" : "readers muted",
        testid: "readers",
        "data-disagreement": String(a.disagreement),
        title: a.votes.map((v) => `${v.reader}: ${v.call}`).join(", "),
      },
      a.summary,
    );
  }

  /** What the clinical notes say about this finding, when they say something. */
  private concordanceLine(id: string): HTMLElement | null {
    const c = this.study.concordance?.[id];
    if (!c || (c.concordance === "new" && !c.flagged)) return null;
    return h(
      "div",
      {
        class: c.flagged ? "concordance discordant" : "concordance muted",
        testid: "concordance",
        "data-concordance": c.concordance,
      },
      c.flagged ? `Discordant with the notes: ${c.sentence}` : `Notes: ${c.concordance}`,
    );
  }

  private async save(finding: Finding, body: ReviewIn): Promise<void> {
    this.errors.delete(finding.id);
    try {
      const review = await api.review(this.study.study_uid, finding.id, body);
      this.study.reviews[finding.id] = review;
      this.editing = null;
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 401) return;
      this.errors.set(finding.id, `Not saved: ${exc instanceof Error ? exc.message : String(exc)}`);
    }
    this.render();
  }
}
