// The active-learning queue (#/learning): open studies whose review would teach the models
// most (uncertain, out of distribution, disagreements), taken in turn across scanners. Studies
// the reader already judged are left out by the API; disagreements are spelled out per case.
import { ApiError, feedbackApi } from "./api";
import { fill, h } from "./dom";
import { LOW_TRUST, dateTime, percent, shortUid } from "./format";
import type { QueueItem } from "./types";

const POLL_INTERVAL_MS = 10_000;

function reasons(item: QueueItem): HTMLElement {
  return h(
    "span",
    { class: "reasons", testid: "queue-reasons" },
    item.reasons.map((reason) =>
      h("span", { class: `chip reason-${reason.replace(/[^a-z]+/g, "-")}` }, reason),
    ),
  );
}

function readers(item: QueueItem): HTMLElement {
  const a = item.adjudication;
  if (!a) return h("span", { class: "muted" }, "not reviewed yet");
  return h(
    "span",
    {
      class: a.disagreement ? "disagreement" : "muted",
      testid: a.disagreement ? "queue-disagreement" : "queue-readers",
    },
    a.summary,
  );
}

function row(item: QueueItem, open: (uid: string) => void): HTMLTableRowElement {
  return h(
    "tr",
    {
      class: "worklist-row",
      tabIndex: 0,
      testid: "queue-row",
      "data-study-uid": item.study_uid,
      "data-stratum": item.stratum,
      onclick: () => open(item.study_uid),
      onkeydown: (event: KeyboardEvent) => {
        if (event.key === "Enter") open(item.study_uid);
      },
    },
    h("td", { testid: "queue-rank" }, String(item.rank)),
    h("td", {}, reasons(item)),
    h(
      "td",
      { testid: "queue-finding" },
      `${item.label} ${percent(item.probability)}`,
      h("span", { class: "muted" }, ` (threshold ${percent(item.threshold)})`),
      item.ood_flag ? h("span", { class: "badge low-trust", title: LOW_TRUST }, "OOD") : null,
      item.n_findings > 1 ? h("span", { class: "muted" }, ` +${item.n_findings - 1}`) : null,
    ),
    h("td", {}, `${item.model_name} ${item.model_version}`),
    h("td", { testid: "queue-stratum" }, item.stratum),
    h("td", {}, readers(item)),
    h("td", {}, dateTime(item.received_at)),
    h("td", { class: "uid", title: item.study_uid }, shortUid(item.study_uid)),
  );
}

export function learningPage(
  root: HTMLElement,
  header: HTMLElement,
  open: (uid: string) => void,
): () => void {
  const body = h("tbody", { testid: "queue-body" });
  const state = h("p", { class: "worklist-state muted", testid: "queue-state" }, "Loading…");
  let timer: number | undefined;
  let stopped = false;

  async function refresh(): Promise<void> {
    window.clearTimeout(timer);
    try {
      const items = await feedbackApi.learningQueue();
      if (stopped) return;
      fill(
        body,
        items.map((item) => row(item, open)),
      );
      state.textContent = items.length
        ? ""
        : "Nothing to learn from right now: no open study is uncertain, unlike the training " +
          "data or disputed.";
      state.classList.remove("error");
    } catch (exc) {
      if (stopped || (exc instanceof ApiError && exc.status === 401)) return;
      state.textContent =
        exc instanceof ApiError && exc.status === 403
          ? "Your role does not review findings, so it has no learning queue."
          : `Learning queue unavailable: ${exc instanceof Error ? exc.message : String(exc)}`;
      state.classList.add("error");
    }
    if (!stopped) timer = window.setTimeout(refresh, POLL_INTERVAL_MS);
  }

  const table = h(
    "table",
    { class: "worklist", testid: "learning-queue" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["#", "Why", "Finding", "Model", "Scanner @ station", "Readers", "Received", "Study"].map(
          (name) => h("th", {}, name),
        ),
      ),
    ),
    body,
  );
  root.replaceChildren(
    header,
    h(
      "main",
      { class: "worklist-page", testid: "learning-page" },
      h(
        "div",
        { class: "worklist-toolbar" },
        h("h2", {}, "Learning queue"),
        h(
          "span",
          { class: "muted" },
          "Reviews of these studies teach the models most; scanners take turns.",
        ),
      ),
      table,
      state,
    ),
  );
  void refresh();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}
