// The worklist: most urgent first (the API's order), filters, refreshed every 3 s.
import { ApiError, api } from "./api";
import { fill, h } from "./dom";
import {
  LOW_TRUST,
  STATUS_LABELS,
  dateTime,
  duration,
  percent,
  priorityLabel,
  shortUid,
} from "./format";
import { PRIORITIES, STATUSES, type WorklistFilters, type WorklistItem } from "./types";

const POLL_INTERVAL_MS = 3000;
const MODALITIES = ["CR", "DX", "CT", "MR", "US", "NM", "PT", "MG", "XA", "OP", "XC", "SEG"];
const FILTERS_KEY = "radlens.worklist.filters";

function savedFilters(): WorklistFilters {
  try {
    const saved = JSON.parse(sessionStorage.getItem(FILTERS_KEY) ?? "{}") as WorklistFilters;
    return {
      modality: saved.modality ?? "",
      status: saved.status ?? "",
      priority: saved.priority ?? "",
    };
  } catch {
    return { modality: "", status: "", priority: "" };
  }
}

function select(
  name: keyof WorklistFilters,
  label: string,
  options: readonly string[],
  labels: Record<string, string>,
  filters: WorklistFilters,
  onChange: () => void,
): HTMLLabelElement {
  const element = h(
    "select",
    { name, testid: `filter-${name}` },
    h("option", { value: "" }, "all"),
    options.map((value) => h("option", { value }, labels[value] ?? value)),
  );
  element.value = filters[name];
  element.addEventListener("change", () => {
    (filters as unknown as Record<string, string>)[name] = element.value;
    sessionStorage.setItem(FILTERS_KEY, JSON.stringify(filters));
    onChange();
  });
  return h("label", { class: "filter" }, label, element);
}

export function priorityBadge(
  priority: WorklistItem["priority"],
  testid = "priority-badge",
): HTMLElement {
  return h(
    "span",
    { class: `badge priority-${priority ?? "pending"}`, testid },
    priorityLabel(priority),
  );
}

export function lowTrustBadge(): HTMLElement {
  return h(
    "span",
    { class: "badge low-trust", testid: "low-trust-badge", title: LOW_TRUST },
    LOW_TRUST,
  );
}

function row(item: WorklistItem, open: (uid: string) => void): HTMLTableRowElement {
  const top = item.top_finding;
  const finding = top
    ? h(
        "span",
        { class: "top-finding", testid: "top-finding" },
        `${top.label} ${percent(top.probability)}`,
        item.n_positive > 1 ? h("span", { class: "muted" }, ` +${item.n_positive - 1}`) : null,
      )
    : h(
        "span",
        { class: "muted" },
        item.status === "ready" || item.analyses ? "no positive finding" : "–",
      );
  const tr = h(
    "tr",
    {
      class: "worklist-row",
      tabIndex: 0,
      testid: "worklist-row",
      "data-study-uid": item.study_uid,
      "data-priority": item.priority ?? "",
      onclick: () => open(item.study_uid),
      onkeydown: (event: KeyboardEvent) => {
        if (event.key === "Enter") open(item.study_uid);
      },
    },
    h("td", {}, priorityBadge(item.priority)),
    h(
      "td",
      {},
      h(
        "span",
        { class: `status status-${item.status}`, testid: "status" },
        STATUS_LABELS[item.status],
      ),
    ),
    h("td", { testid: "modalities" }, item.modalities.join(", ") || "–"),
    h("td", { testid: "body-parts" }, item.body_parts.join(", ") || "–"),
    h("td", { testid: "received" }, dateTime(item.received_at)),
    h("td", { testid: "waiting" }, item.signed_at ? "–" : duration(item.waiting_s)),
    h("td", {}, finding),
    h("td", {}, item.low_trust ? lowTrustBadge() : null),
    h("td", { class: "uid", title: item.study_uid }, shortUid(item.study_uid)),
  );
  return tr;
}

export function worklistPage(
  root: HTMLElement,
  header: HTMLElement,
  open: (uid: string) => void,
): () => void {
  const filters = savedFilters();
  const body = h("tbody", { testid: "worklist-body" });
  const state = h("p", { class: "worklist-state muted", testid: "worklist-state" }, "Loading…");
  const updated = h("span", { class: "muted", testid: "worklist-updated" });
  let timer: number | undefined;
  let stopped = false;

  let shown = "";

  async function refresh(): Promise<void> {
    window.clearTimeout(timer);
    try {
      const items = await api.worklist(filters);
      if (stopped) return;
      // Redraw only when something visible changed, and keep the keyboard focus on its study.
      const view = JSON.stringify(
        items.map((item) => ({ ...item, score: 0, waiting_s: duration(item.waiting_s) })),
      );
      if (view !== shown) {
        shown = view;
        const focused = (document.activeElement as HTMLElement | null)?.dataset.studyUid;
        fill(
          body,
          items.map((item) => row(item, open)),
        );
        if (focused)
          body.querySelector<HTMLElement>(`[data-study-uid="${CSS.escape(focused)}"]`)?.focus();
      }
      state.textContent = items.length ? "" : "No studies match.";
      state.classList.remove("error");
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (exc) {
      if (stopped || (exc instanceof ApiError && exc.status === 401)) return;
      state.textContent = `Worklist unavailable: ${exc instanceof Error ? exc.message : String(exc)}`;
      state.classList.add("error");
    }
    if (!stopped) timer = window.setTimeout(refresh, POLL_INTERVAL_MS);
  }

  const statusLabels: Record<string, string> = { ...STATUS_LABELS };
  const toolbar = h(
    "div",
    { class: "worklist-toolbar" },
    h("h2", {}, "Worklist"),
    select("modality", "Modality", MODALITIES, {}, filters, refresh),
    select("status", "Status", STATUSES, statusLabels, filters, refresh),
    select("priority", "Priority", PRIORITIES, {}, filters, refresh),
    updated,
  );
  const table = h(
    "table",
    { class: "worklist", testid: "worklist" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        [
          "Priority",
          "Status",
          "Modality",
          "Body part",
          "Received",
          "Waiting",
          "Top finding",
          "Trust",
          "Study",
        ].map((name) => h("th", {}, name)),
      ),
    ),
    body,
  );
  root.replaceChildren(
    header,
    h("main", { class: "worklist-page", testid: "worklist-page" }, toolbar, table, state),
  );
  void refresh();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}
