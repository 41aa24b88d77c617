// Model monitoring (#/monitoring): per model version and per site/scanner, volume, positive
// rate, reader agreement, calibration on reviewed cases, and the OOD scores against the
// training set with drift alerts (GET /api/monitoring). Plots are inline SVG drawn here.
import { ApiError, feedbackApi } from "./api";
import { fill, h } from "./dom";
import type { BinTest, GroupStats, ModelMonitor, Monitoring } from "./types";

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 320;
const HEIGHT = 140;
const PAD = { left: 34, right: 8, top: 10, bottom: 26 };
const SPANS: Record<string, string> = { "": "all time", "7": "last 7 days", "30": "last 30 days" };

type SvgChild = SVGElement | null | false | undefined;

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number> = {},
  ...children: (SvgChild | string)[]
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children) {
    if (typeof child === "string") element.appendChild(document.createTextNode(child));
    else if (child) element.appendChild(child);
  }
  return element;
}

function share(value: number | null, digits = 1): string {
  return value === null ? "–" : `${(value * 100).toFixed(digits)}%`;
}

function chart(testid: string, title: string, ...children: SvgChild[]): SVGSVGElement {
  return svg(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-label": title,
      "data-testid": testid,
    },
    svg("title", {}, title),
    ...children,
  );
}

/** Bars of `values` (one per label), their heights scaled to the largest; `colours` per bar. */
function bars(
  values: number[],
  labels: string[],
  colours: string[],
  max = Math.max(1, ...values),
): SVGElement[] {
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const step = plotWidth / Math.max(values.length, 1);
  const out: SVGElement[] = [
    svg("line", {
      x1: PAD.left,
      y1: HEIGHT - PAD.bottom,
      x2: WIDTH - PAD.right,
      y2: HEIGHT - PAD.bottom,
      class: "axis",
    }),
    svg("text", { x: PAD.left - 4, y: PAD.top + 8, class: "tick", "text-anchor": "end" }, fmt(max)),
    svg(
      "text",
      { x: PAD.left - 4, y: HEIGHT - PAD.bottom, class: "tick", "text-anchor": "end" },
      "0",
    ),
  ];
  values.forEach((value, i) => {
    const height = (value / max) * plotHeight;
    out.push(
      svg(
        "rect",
        {
          x: PAD.left + i * step + step * 0.12,
          y: HEIGHT - PAD.bottom - height,
          width: step * 0.76,
          height: Math.max(height, 0),
          class: `bar ${colours[i] ?? ""}`,
          "data-value": value,
        },
        svg("title", {}, `${labels[i]}: ${fmt(value)}`),
      ),
    );
    if (labels.length <= 12 || i % Math.ceil(labels.length / 6) === 0)
      out.push(
        svg(
          "text",
          {
            x: PAD.left + i * step + step / 2,
            y: HEIGHT - PAD.bottom + 12,
            class: "tick",
            "text-anchor": "middle",
          },
          labels[i],
        ),
      );
  });
  return out;
}

function fmt(value: number): string {
  if (value === 0) return "0";
  if (Number.isInteger(value)) return String(value);
  return value < 1 ? value.toFixed(2) : value.toFixed(1);
}

function volumeChart(m: ModelMonitor): SVGSVGElement {
  const days = m.days.slice(-30);
  const labels = days.map((d) => d.day.slice(5));
  const max = Math.max(1, ...days.map((d) => d.n_images));
  const all = bars(
    days.map((d) => d.n_images),
    labels,
    days.map(() => "bar-volume"),
    max,
  );
  const positive = bars(
    days.map((d) => d.n_positive),
    labels,
    days.map(() => "bar-positive"),
    max,
  ).filter((e) => e.tagName === "rect");
  return chart("chart-volume", "Images per day (positive in colour)", ...all, ...positive);
}

function histogramChart(stats: GroupStats, edges: number[]): SVGSVGElement {
  const counts = stats.ood.histogram;
  const labels = counts.map((_, i) =>
    i === 0 ? `<${edges[0]}` : i === counts.length - 1 ? `≥${edges[i - 1]}` : `${edges[i - 1]}`,
  );
  const flagged = edges.indexOf(1) + 1; // bins from here on are at or past the flag
  const colours = counts.map((_, i) => (i >= flagged ? "bar-flagged" : "bar-volume"));
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const x = PAD.left + (plotWidth / counts.length) * flagged;
  return chart(
    "chart-ood",
    "OOD decision score per image (1 = flagged)",
    ...bars(counts, labels, colours),
    svg("line", { x1: x, y1: PAD.top, x2: x, y2: HEIGHT - PAD.bottom, class: "flag-line" }),
    svg("text", { x: x + 3, y: PAD.top + 8, class: "tick" }, "flag"),
  );
}

function driftChart(test: BinTest): SVGSVGElement {
  const n = Math.max(
    1,
    test.observed.reduce((a, b) => a + b, 0),
  );
  const values: number[] = [];
  const labels: string[] = [];
  const colours: string[] = [];
  test.expected.forEach((expected, i) => {
    const edge = i === 0 ? `<${fmt(test.edges[0])}` : `≥${fmt(test.edges[i - 1])}`;
    values.push(expected, test.observed[i] / n);
    labels.push(edge, "");
    colours.push("bar-expected", "bar-observed");
  });
  const name = test.statistic === "decision" ? "decision score" : `${test.statistic} distance`;
  return chart(
    `chart-drift-${test.statistic}`,
    `${name}: training share (grey) vs this stream (blue); PSI ${test.psi.toFixed(2)}`,
    ...bars(values, labels, colours, Math.max(...values, 0.01)),
  );
}

function figure(caption: string, plot: SVGSVGElement): HTMLElement {
  return h("figure", { class: "plot" }, plot, h("figcaption", { class: "muted" }, caption));
}

function kpis(stats: GroupStats): HTMLElement {
  const item = (label: string, value: string, note: string, testid: string): HTMLElement =>
    h(
      "div",
      { class: "kpi", testid },
      h("div", { class: "kpi-value" }, value),
      h("div", { class: "kpi-label" }, label),
      h("div", { class: "muted kpi-note" }, note),
    );
  return h(
    "div",
    { class: "kpis" },
    item("volume", String(stats.n_images), `images, ${stats.n_studies} studies`, "kpi-volume"),
    item(
      "positive rate",
      share(stats.positive_rate),
      `${stats.n_positive} findings`,
      "kpi-positive",
    ),
    item(
      "AI agreement",
      share(stats.ai_agreement),
      `of ${stats.n_resolved} adjudicated`,
      "kpi-agreement",
    ),
    item(
      "readers agree",
      share(stats.reader_agreement),
      `of ${stats.n_multi_read} read twice or more`,
      "kpi-readers",
    ),
    item(
      "ECE",
      stats.ece === null ? "–" : stats.ece.toFixed(3),
      `over ${stats.n_calibration} reviewed`,
      "kpi-ece",
    ),
    item(
      "OOD flagged",
      share(stats.ood.flag_rate),
      `training ${share(stats.ood.expected_flag_rate)}`,
      "kpi-ood",
    ),
  );
}

function driftBadge(stats: GroupStats): HTMLElement {
  const drift = stats.ood.drift;
  return h(
    "span",
    {
      class: drift.alert ? "badge drift-alert" : "badge drift-ok",
      title: drift.reason,
      testid: drift.alert ? "drift-alert" : "drift-ok",
    },
    drift.alert ? "drift" : "no drift",
  );
}

function strataTable(m: ModelMonitor): HTMLElement {
  const most = Math.max(1, ...m.strata.map((s) => s.stats.n_images));
  return h(
    "table",
    { class: "worklist strata", testid: "strata" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        [
          "Scanner @ station",
          "Images",
          "Positive",
          "OOD flagged",
          "AI agreement",
          "ECE",
          "Drift",
        ].map((name) => h("th", {}, name)),
      ),
    ),
    h(
      "tbody",
      {},
      m.strata.map((s) =>
        h(
          "tr",
          { testid: "stratum-row", "data-stratum": s.equipment.stratum },
          h("td", {}, s.equipment.stratum),
          h(
            "td",
            {},
            svg(
              "svg",
              { class: "inline-bar", viewBox: "0 0 60 8", width: 60, height: 8 },
              svg("rect", { x: 0, y: 0, width: (60 * s.stats.n_images) / most, height: 8 }),
            ),
            ` ${s.stats.n_images}`,
          ),
          h("td", {}, share(s.stats.positive_rate)),
          h("td", {}, share(s.stats.ood.flag_rate)),
          h("td", {}, share(s.stats.ai_agreement)),
          h("td", {}, s.stats.ece === null ? "–" : s.stats.ece.toFixed(3)),
          h(
            "td",
            {},
            driftBadge(s.stats),
            " ",
            h("span", { class: "muted" }, s.stats.ood.drift.reason),
          ),
        ),
      ),
    ),
  );
}

function modelSection(m: ModelMonitor, edges: number[]): HTMLElement {
  const stats = m.stats;
  return h(
    "section",
    {
      class: "model-monitor",
      testid: "model-monitor",
      "data-model": `${m.model_name} ${m.model_version}`,
    },
    h(
      "h3",
      {},
      `${m.model_name} ${m.model_version} `,
      driftBadge(stats),
      m.card_found ? null : h("span", { class: "muted" }, " card not installed: no drift test"),
    ),
    h("p", { class: "muted", testid: "drift-reason" }, stats.ood.drift.reason),
    kpis(stats),
    h(
      "div",
      { class: "plots" },
      figure("Images per day; positive ones in colour", volumeChart(m)),
      figure(
        `OOD decision score per image; flagged ${share(stats.ood.flag_rate)} ` +
          `(training ${share(stats.ood.expected_flag_rate)})`,
        histogramChart(stats, edges),
      ),
      stats.ood.drift.tests.map((t) =>
        figure(
          `${t.statistic === "decision" ? "Decision score" : `${t.statistic} distance`}: ` +
            `training share (grey) vs this stream (blue), PSI ${t.psi.toFixed(2)}`,
          driftChart(t),
        ),
      ),
    ),
    h("h3", {}, "Per site and scanner"),
    strataTable(m),
  );
}

function alertsBox(report: Monitoring): HTMLElement {
  if (!report.alerts.length)
    return h("p", { class: "alerts-none muted", testid: "alerts" }, "No drift alerts.");
  return h(
    "div",
    { class: "alerts", testid: "alerts" },
    h("strong", {}, `${report.alerts.length} drift alert${report.alerts.length > 1 ? "s" : ""}`),
    h(
      "ul",
      {},
      report.alerts.map((alert) => h("li", { testid: "alert" }, alert)),
    ),
  );
}

export function dashboardPage(root: HTMLElement, header: HTMLElement): () => void {
  const content = h("div", { testid: "dashboard-content" });
  const state = h("p", { class: "worklist-state muted", testid: "dashboard-state" }, "Loading…");
  const span = h(
    "select",
    { testid: "dashboard-since" },
    Object.entries(SPANS).map(([value, label]) => h("option", { value }, label)),
  );
  let stopped = false;

  async function refresh(): Promise<void> {
    const days = Number(span.value);
    const since = days ? new Date(Date.now() - days * 86_400_000).toISOString() : "";
    try {
      const report = await feedbackApi.monitoring("", since);
      if (stopped) return;
      fill(
        content,
        alertsBox(report),
        report.models.map((m) => modelSection(m, report.histogram_edges)),
      );
      state.textContent = report.models.length ? "" : "No analyzed study has findings yet.";
      state.classList.remove("error");
    } catch (exc) {
      if (stopped || (exc instanceof ApiError && exc.status === 401)) return;
      state.textContent =
        exc instanceof ApiError && exc.status === 403
          ? "Your role may not see model monitoring."
          : `Monitoring unavailable: ${exc instanceof Error ? exc.message : String(exc)}`;
      state.classList.add("error");
    }
  }

  span.addEventListener("change", () => void refresh());
  root.replaceChildren(
    header,
    h(
      "main",
      { class: "worklist-page dashboard", testid: "dashboard-page" },
      h(
        "div",
        { class: "worklist-toolbar" },
        h("h2", {}, "Model monitoring"),
        h("label", { class: "filter" }, "Studies analyzed", span),
        h(
          "button",
          { class: "ghost", testid: "dashboard-refresh", onclick: () => void refresh() },
          "Refresh",
        ),
      ),
      state,
      content,
    ),
  );
  void refresh();
  return () => {
    stopped = true;
  };
}
