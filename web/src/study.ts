// The reading page of one study: series list, viewer with the AI overlay, findings, report.
import { metaData } from "@cornerstonejs/core";
import { ApiError, api } from "./api";
import { fill, h } from "./dom";
import { FindingsPanel, allFindings, defaultFinding, measurementSummary } from "./findings";
import { STATUS_LABELS, shortUid } from "./format";
import type { OverlayContent } from "./overlay";
import { ReportBox } from "./report";
import {
  PRIORITIES,
  type Finding,
  type PriorityName,
  type SeriesListing,
  type Study,
} from "./types";
import { StackViewer, imageIdOf, type PrimaryTool } from "./viewer";
import { lowTrustBadge, priorityBadge } from "./worklist";

const POLL_INTERVAL_MS = 3000;
const TOOLS: [PrimaryTool, string, string][] = [
  ["WindowLevel", "W/L", "Window/level (left drag)"],
  ["Pan", "Pan", "Pan (left drag; middle drag always pans)"],
  ["Zoom", "Zoom", "Zoom (left drag; right drag always zooms)"],
  ["StackScroll", "Scroll", "Scroll through the series (left drag; the wheel always scrolls)"],
];

function toggle(
  label: string,
  testid: string,
  on: boolean,
  onChange: (on: boolean) => void,
): HTMLButtonElement {
  const button = h("button", { class: "toggle", testid, "aria-pressed": String(on) }, label);
  button.addEventListener("click", () => {
    const next = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(next));
    onChange(next);
  });
  return button;
}

export function studyPage(
  root: HTMLElement,
  makeHeader: (...middle: Node[]) => HTMLElement,
  studyUid: string,
): () => void {
  let stopped = false;
  let viewer: StackViewer | null = null;
  let poll: number | undefined;
  const cleanups: (() => void)[] = [];
  const main = h(
    "main",
    { class: "study-page", testid: "study-page" },
    h("p", { class: "muted" }, "Opening study…"),
  );
  const summary = h("div", { class: "study-summary", testid: "study-summary" });
  root.replaceChildren(
    makeHeader(
      h("a", { class: "back", href: "#/", testid: "back-to-worklist" }, "← Worklist"),
      summary,
    ),
    main,
  );

  // Opening stamps the first view and starts the review; a role that does not read
  // (technologist) is refused that (403) and views the study as it is.
  api
    .open(studyUid)
    .catch((exc: unknown) => {
      if (exc instanceof ApiError && exc.status === 403) return api.study(studyUid);
      throw exc;
    })
    .then(
      (study) => {
        if (!stopped) viewer = build(study);
      },
      (exc: unknown) => {
        if (stopped || (exc instanceof ApiError && exc.status === 401)) return;
        const text =
          exc instanceof ApiError && exc.status === 404
            ? "No such study."
            : `Could not open the study: ${exc instanceof Error ? exc.message : String(exc)}`;
        fill(main, h("p", { class: "form-error", testid: "study-error" }, text));
      },
    );

  function build(study: Study): StackViewer {
    let selected: Finding | null = defaultFinding(study);
    let heatmapOn = false;
    let boxesOn = true;

    const renderSummary = (): void => {
      const prioritySelect = h(
        "select",
        { testid: "priority-select", title: "Radiologist priority (the AI never lowers it)" },
        h("option", { value: "" }, `AI: ${study.ai_priority ?? "pending"}`),
        PRIORITIES.map((p) => h("option", { value: p }, p)),
      );
      prioritySelect.value = study.radiologist_priority ?? "";
      prioritySelect.disabled = study.status === "signed";
      prioritySelect.addEventListener("change", async () => {
        const value = (prioritySelect.value || null) as PriorityName | null;
        try {
          study = await api.setPriority(study.study_uid, value);
        } catch (exc) {
          if (!(exc instanceof ApiError && exc.status === 401))
            window.alert(`Priority not saved: ${String(exc)}`);
        }
        renderSummary();
      });
      fill(
        summary,
        priorityBadge(study.priority, "study-priority"),
        h(
          "span",
          { class: `status status-${study.status}`, testid: "study-status" },
          STATUS_LABELS[study.status],
        ),
        h(
          "span",
          {},
          [study.modalities.join(", "), study.body_parts.join(", ")].filter(Boolean).join(" · "),
        ),
        h("span", { class: "uid muted", title: study.study_uid }, shortUid(study.study_uid)),
        study.low_trust ? lowTrustBadge() : null,
        h("label", { class: "filter" }, "Priority", prioritySelect),
      );
    };
    renderSummary();

    // --- viewer -------------------------------------------------------------------------
    const element = h("div", { class: "viewport", testid: "viewport" });
    const frame = h(
      "div",
      { class: "viewport-frame", tabIndex: 0, testid: "viewport-frame" },
      element,
    );
    const imageIndex = h("span", { class: "muted", testid: "image-index" });
    const viewerStatus = h("span", { class: "viewer-status", testid: "viewer-status" });
    const elsewhere = h("div", { class: "elsewhere", testid: "overlay-elsewhere", hidden: true });
    const seriesList = h("ul", { class: "series-list", testid: "series-list" });

    const imageOfFinding = (
      finding: Finding,
    ): { series: SeriesListing; imageId: string } | null => {
      for (const series of study.series) {
        if (series.instances.some((i) => i.sop_uid === finding.sop_instance_uid)) {
          const imageId = imageIdOf(
            study.study_uid,
            series.series_uid,
            finding.sop_instance_uid,
            finding.frame + 1,
          );
          return { series, imageId };
        }
      }
      return null;
    };

    function updateOverlay(): void {
      const current = stack.currentImageId;
      let content: OverlayContent | null = null;
      if (current) {
        const pixels = metaData.get("imagePixelModule", current) as
          { columns?: number; rows?: number } | undefined;
        const here = allFindings(study).filter((f) => imageOfFinding(f)?.imageId === current);
        // By id: `study` is replaced by fresh copies from the server (priority, sign).
        const heat = here.find((f) => heatmapOn && f.has_heatmap && f.id === selected?.id);
        if (pixels?.columns && pixels.rows) {
          content = {
            imageId: current,
            width: pixels.columns,
            height: pixels.rows,
            heatmapUrl: heat ? api.heatmapUrl(study.study_uid, heat.id) : null,
            boxes: boxesOn
              ? here
                  .filter((f) => f.box_px)
                  .map((f) => ({
                    box: f.box_px!,
                    label: `${f.label} ${Math.round(f.probability * 100)}%`,
                    positive: f.positive,
                  }))
              : [],
            outlines: boxesOn
              ? here
                  .filter((f) => f.outline_px && f.outline_px.length > 2)
                  .map((f) => ({ points: f.outline_px!, label: measurementSummary(f) }))
              : [],
          };
        }
      }
      stack.overlay.set(content);
      stack.refreshOverlay();
      const target = selected ? imageOfFinding(selected) : null;
      const away = Boolean(
        heatmapOn && selected?.has_heatmap && target && target.imageId !== current,
      );
      elsewhere.hidden = !away;
      if (away && target && selected) {
        fill(
          elsewhere,
          `The heatmap of “${selected.label}” is on another image. `,
          h(
            "button",
            {
              class: "link",
              testid: "goto-finding",
              onclick: () => void show(target.series, target.imageId),
            },
            "Go to it",
          ),
        );
      }
    }

    async function show(series: SeriesListing, at: number | string = 0): Promise<void> {
      viewerStatus.textContent = "Loading…";
      viewerStatus.classList.remove("error");
      try {
        await stack.showSeries(series, at);
        viewerStatus.textContent = "";
      } catch (exc) {
        if (exc instanceof ApiError && exc.status === 401) return;
        viewerStatus.textContent = `Image not shown: ${exc instanceof Error ? exc.message : String(exc)}`;
        viewerStatus.classList.add("error");
      }
      renderSeriesList();
      updateOverlay();
    }

    function renderSeriesList(): void {
      const withFindings = new Set(
        allFindings(study).map((f) => imageOfFinding(f)?.series.series_uid),
      );
      fill(
        seriesList,
        study.series.map((series, i) => {
          const images = series.instances.reduce(
            (n, instance) => n + Math.max(instance.frames, 1),
            0,
          );
          return h(
            "li",
            {},
            h(
              "button",
              {
                class: `series-item${stack.shownSeries === series.series_uid ? " active" : ""}`,
                testid: "series-item",
                "data-series-uid": series.series_uid,
                onclick: () => void show(series),
              },
              h("strong", {}, `${i + 1}. ${series.modality || "?"}`),
              h("span", {}, series.body_part || "–"),
              h("span", { class: "muted" }, `${images} image${images === 1 ? "" : "s"}`),
              withFindings.has(series.series_uid) ? h("span", { class: "badge ai" }, "AI") : null,
            ),
          );
        }),
      );
    }

    const toolButtons = TOOLS.map(([tool, label, title]) =>
      h(
        "button",
        {
          class: "tool",
          title,
          testid: `tool-${tool}`,
          "aria-pressed": String(tool === "WindowLevel"),
          onclick: () => {
            stack.setPrimaryTool(tool);
            for (const b of toolButtons)
              b.setAttribute("aria-pressed", String(b.dataset.testid === `tool-${tool}`));
          },
        },
        label,
      ),
    );
    const heatmapToggle = toggle("Heatmap", "toggle-heatmap", heatmapOn, (on) => {
      heatmapOn = on;
      updateOverlay();
    });
    const updateHeatmapToggle = (): void => {
      const any = allFindings(study).some((f) => f.has_heatmap);
      heatmapToggle.disabled = !any;
      heatmapToggle.title = any
        ? "Show the selected finding's heatmap (click a finding to select it)"
        : "No finding has a heatmap";
    };
    updateHeatmapToggle();
    const toolbar = h(
      "div",
      { class: "toolbar", testid: "viewer-toolbar" },
      toolButtons,
      h(
        "button",
        {
          class: "tool",
          testid: "tool-reset",
          title: "Reset zoom, pan and window",
          onclick: () => stack.reset(),
        },
        "Reset",
      ),
      h("span", { class: "separator" }),
      heatmapToggle,
      toggle("Boxes", "toggle-boxes", boxesOn, (on) => {
        boxesOn = on;
        updateOverlay();
      }),
      h("span", { class: "spacer" }),
      viewerStatus,
      imageIndex,
    );
    frame.addEventListener("keydown", (event) => {
      const step = { ArrowUp: -1, ArrowDown: 1, PageUp: -5, PageDown: 5 }[event.key];
      if (step) {
        event.preventDefault();
        stack.scroll(step);
      }
    });

    // --- findings and report ------------------------------------------------------------
    const panel = new FindingsPanel(study, selected?.id ?? null, {
      onSelect: (finding) => {
        selected = finding;
        panel.select(finding.id);
        const target = imageOfFinding(finding);
        if (target) void show(target.series, target.imageId);
        else updateOverlay();
      },
    });
    const report = new ReportBox(study, (signed) => {
      study = signed;
      renderSummary();
      panel.update(study);
    });

    fill(
      main,
      h("aside", { class: "series-column" }, h("h2", {}, "Series"), seriesList),
      h("section", { class: "viewer-column" }, toolbar, frame, elsewhere),
      h("aside", { class: "side-column" }, panel.root, report.root),
    );
    // Cornerstone wants its element in the document (sized) when the viewport is enabled.
    const stack = new StackViewer(element, study.study_uid, (index, count) => {
      imageIndex.textContent = `Image ${index + 1} / ${count}`;
      element.dataset.imageIndex = String(index);
      renderSeriesList();
      updateOverlay();
    });

    const first = selected ? imageOfFinding(selected) : null;
    const start =
      first ??
      (study.series[0] ? { series: study.series[0], imageId: 0 as number | string } : null);
    if (start) void show(start.series, start.imageId);
    else viewerStatus.textContent = "No images.";

    // Not analyzed yet: poll until the findings arrive.
    const waitForAnalysis = async (): Promise<void> => {
      if (stopped || study.findings || study.status === "failed") return;
      try {
        const fresh = await api.study(study.study_uid);
        if (stopped) return;
        study = fresh;
        if (fresh.findings) {
          selected = defaultFinding(fresh);
          panel.update(fresh);
          panel.select(selected?.id ?? null);
          renderSummary();
          renderSeriesList();
          updateHeatmapToggle();
          updateOverlay();
          return;
        }
        renderSummary();
      } catch (exc) {
        if (exc instanceof ApiError && exc.status === 401) return;
      }
      poll = window.setTimeout(waitForAnalysis, POLL_INTERVAL_MS);
    };
    poll = window.setTimeout(waitForAnalysis, POLL_INTERVAL_MS);

    window.addEventListener("beforeunload", warnUnsaved);
    function warnUnsaved(event: BeforeUnloadEvent): void {
      if (report.dirty) event.preventDefault();
    }
    cleanups.push(() => {
      window.removeEventListener("beforeunload", warnUnsaved);
      report.saveIfChanged(); // leaving for another page keeps the typed text as the draft
    });
    return stack;
  }

  return () => {
    stopped = true;
    window.clearTimeout(poll);
    for (const cleanup of cleanups) cleanup();
    viewer?.destroy();
  };
}
