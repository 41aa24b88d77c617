// The report box: a draft saved with PUT /report, then signed (read-only from then on).
import { ApiError, api } from "./api";
import { fill, h } from "./dom";
import { dateTime } from "./format";
import type { Report, Study } from "./types";

export class ReportBox {
  readonly root = h("section", { class: "panel report-box", testid: "report-box" });
  private readonly text = h("textarea", {
    rows: 10,
    maxLength: 100000,
    placeholder: "Findings and impression…",
    testid: "report-text",
  });
  private readonly status = h("p", { class: "muted", testid: "report-status" });
  private readonly error = h("p", { class: "form-error", role: "alert", testid: "report-error" });
  private readonly saveButton = h("button", { testid: "report-save" }, "Save draft");
  private readonly signButton = h("button", { class: "primary", testid: "report-sign" }, "Sign");
  private fromDraft = false;
  private saved = "";

  constructor(
    private study: Study,
    private readonly onSigned: (study: Study) => void,
  ) {
    // An empty, unsigned report starts from the AI draft; it is saved only once edited.
    const start =
      !study.report.text && study.report.signed_at === null && study.draft
        ? study.draft
        : study.report.text;
    this.text.value = start;
    this.saved = start;
    this.fromDraft = start !== study.report.text;
    this.text.addEventListener("input", () => this.showStatus());
    this.saveButton.addEventListener("click", () => void this.save());
    this.signButton.addEventListener("click", () => void this.sign());
    fill(
      this.root,
      h("h2", {}, "Report"),
      this.text,
      h("div", { class: "report-buttons" }, this.saveButton, this.signButton),
      this.status,
      this.error,
    );
    this.showStatus();
  }

  get dirty(): boolean {
    return this.text.value !== this.saved;
  }

  /** Save unsaved text as the draft, in the background (the page is being left). */
  saveIfChanged(): void {
    if (this.dirty && this.study.report.signed_at === null) {
      api.saveReport(this.study.study_uid, this.text.value).catch(() => undefined);
    }
  }

  private showStatus(): void {
    const report: Report = this.study.report;
    const signed = report.signed_at !== null;
    this.text.readOnly = signed;
    this.saveButton.hidden = signed;
    this.signButton.hidden = signed;
    this.root.dataset.signed = String(signed);
    if (signed) {
      this.status.textContent = `Signed by ${report.signed_by}, ${dateTime(report.signed_at)}. Read-only.`;
    } else if (this.dirty) {
      this.status.textContent = "Unsaved changes.";
    } else if (report.updated_at) {
      this.status.textContent = `Draft saved by ${report.updated_by}, ${dateTime(report.updated_at)}.`;
    } else {
      this.status.textContent = this.fromDraft
        ? "AI-generated draft — edit, save and sign; requires physician review."
        : "No report yet.";
    }
  }

  private async save(): Promise<boolean> {
    this.error.textContent = "";
    this.saveButton.disabled = true;
    try {
      const text = this.text.value;
      this.study.report = await api.saveReport(this.study.study_uid, text);
      this.saved = text;
      this.fromDraft = false;
      return true;
    } catch (exc) {
      this.fail("Not saved", exc);
      return false;
    } finally {
      this.saveButton.disabled = false;
      this.showStatus();
    }
  }

  private async sign(): Promise<void> {
    this.error.textContent = "";
    if (!this.text.value.trim()) {
      this.error.textContent = "Write the report before signing.";
      return;
    }
    if (!window.confirm("Sign this report? It cannot be changed afterwards.")) return;
    // The unedited AI draft is saved first, as the reader's own text, once they sign it.
    if ((this.dirty || this.fromDraft) && !(await this.save())) return;
    this.signButton.disabled = true;
    try {
      this.study = await api.sign(this.study.study_uid);
      this.onSigned(this.study);
    } catch (exc) {
      this.fail("Not signed", exc);
    } finally {
      this.signButton.disabled = false;
      this.showStatus();
    }
  }

  private fail(what: string, exc: unknown): void {
    if (exc instanceof ApiError && exc.status === 401) return;
    this.error.textContent = `${what}: ${exc instanceof Error ? exc.message : String(exc)}`;
  }
}
