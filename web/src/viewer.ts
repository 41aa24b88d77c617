// The image viewer: one Cornerstone3D StackViewport fed by radlens's WADO-RS, with
// window/level, zoom, pan and scroll tools and the AI overlay on top.
import { Enums, RenderingEngine, type Types } from "@cornerstonejs/core";
import { wadors } from "@cornerstonejs/dicom-image-loader";
import {
  Enums as ToolEnums,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
} from "@cornerstonejs/tools";
import { api } from "./api";
import { initCornerstone } from "./cornerstone";
import { FindingOverlay } from "./overlay";
import type { DicomJson, SeriesListing } from "./types";

export type PrimaryTool = "WindowLevel" | "Pan" | "Zoom" | "StackScroll";

const TOOL_NAMES: Record<PrimaryTool, string> = {
  WindowLevel: WindowLevelTool.toolName,
  Pan: PanTool.toolName,
  Zoom: ZoomTool.toolName,
  StackScroll: StackScrollTool.toolName,
};
const { MouseBindings } = ToolEnums;
const SOP_INSTANCE_UID = "00080018";
// Spacing tags that must be positive to be used (PS3.3 C.7.6.2.1.1); some real files carry
// 0\0 (RG1 in pydicom-data does), which collapses the image to a point in world space.
const SPACING_TAGS = ["00280030", "00181164"];
const ORIENTATION = "00200037";
let viewers = 0;

/** The WADO-RS image id of one frame (numbered from 1). */
export function imageIdOf(study: string, series: string, sop: string, frame: number): string {
  return `wadors:/dicomweb/studies/${study}/series/${series}/instances/${sop}/frames/${frame}`;
}

/** Drop zero/negative spacings and a degenerate orientation, so Cornerstone falls back to
 * its defaults (1 mm, axial) instead of drawing nothing. */
export function withoutInvalidGeometry(metadata: DicomJson): DicomJson {
  for (const tag of SPACING_TAGS) {
    const values = metadata[tag]?.Value;
    if (values && !values.every((v) => Number(v) > 0)) delete metadata[tag];
  }
  const orientation = metadata[ORIENTATION]?.Value?.map(Number);
  if (orientation && (orientation.length !== 6 || orientation.every((v) => v === 0))) {
    delete metadata[ORIENTATION];
  }
  return metadata;
}

export class StackViewer {
  readonly overlay = new FindingOverlay();
  private readonly engine: RenderingEngine;
  private readonly viewport: Types.IStackViewport;
  private readonly toolGroupId: string;
  private readonly resizeObserver: ResizeObserver;
  private readonly imageIds = new Map<string, Promise<string[]>>();
  private primary: PrimaryTool = "WindowLevel";
  private showing: string | null = null;

  constructor(
    readonly element: HTMLDivElement,
    private readonly studyUid: string,
    private readonly onImageChange: (index: number, count: number) => void,
  ) {
    initCornerstone();
    const n = ++viewers;
    this.engine = new RenderingEngine(`radlens-engine-${n}`);
    const viewportId = `radlens-stack-${n}`;
    this.engine.enableElement({
      viewportId,
      type: Enums.ViewportType.STACK,
      element,
      defaultOptions: { background: [0, 0, 0] as Types.Point3 },
    });
    this.viewport = this.engine.getViewport(viewportId) as Types.IStackViewport;
    this.toolGroupId = `radlens-tools-${n}`;
    const tools = ToolGroupManager.createToolGroup(this.toolGroupId)!;
    for (const name of Object.values(TOOL_NAMES)) tools.addTool(name);
    tools.addViewport(viewportId, this.engine.id);
    this.bindTools();

    element.addEventListener("contextmenu", (event) => event.preventDefault());
    element.parentElement?.append(this.overlay.root);
    const place = (): void => this.overlay.place(this.viewport);
    element.addEventListener(Enums.Events.CAMERA_MODIFIED, place);
    element.addEventListener(Enums.Events.IMAGE_RENDERED, () => {
      element.dataset.rendered = "true";
      place();
    });
    element.addEventListener(Enums.Events.STACK_NEW_IMAGE, () => {
      const imageId = this.viewport.getCurrentImageId();
      element.dataset.imageId = imageId;
      this.onImageChange(
        this.viewport.getCurrentImageIdIndex(),
        this.viewport.getImageIds().length,
      );
      place();
    });
    this.overlay.root.addEventListener("overlaychange", place);
    this.resizeObserver = new ResizeObserver(() => {
      this.engine.resize(true, true);
      place();
    });
    this.resizeObserver.observe(element);
  }

  /** Image ids of a series in the API's instance order (metadata fetched and registered once). */
  seriesImageIds(series: SeriesListing): Promise<string[]> {
    let ids = this.imageIds.get(series.series_uid);
    if (!ids) {
      ids = this.registerSeries(series);
      ids.catch(() => this.imageIds.delete(series.series_uid));
      this.imageIds.set(series.series_uid, ids);
    }
    return ids;
  }

  private async registerSeries(series: SeriesListing): Promise<string[]> {
    const documents = await api.seriesMetadata(this.studyUid, series.series_uid);
    const bySop = new Map<string, DicomJson>();
    for (const document of documents) {
      const sop = document[SOP_INSTANCE_UID]?.Value?.[0];
      if (typeof sop === "string") bySop.set(sop, document);
    }
    const ids: string[] = [];
    for (const instance of series.instances) {
      const metadata = bySop.get(instance.sop_uid);
      if (!metadata) continue;
      withoutInvalidGeometry(metadata);
      const first = imageIdOf(this.studyUid, series.series_uid, instance.sop_uid, 1);
      // Frame 1 is enough: the loader derives the other frames of a multi-frame instance.
      wadors.metaDataManager.add(first, metadata as never);
      for (let frame = 1; frame <= Math.max(instance.frames, 1); frame++) {
        ids.push(
          frame === 1
            ? first
            : imageIdOf(this.studyUid, series.series_uid, instance.sop_uid, frame),
        );
      }
    }
    if (!ids.length) throw new Error("the series has no viewable image");
    return ids;
  }

  /** Show a series from image `index` (or a given image id of it). */
  async showSeries(series: SeriesListing, at: number | string = 0): Promise<void> {
    const ids = await this.seriesImageIds(series);
    const index =
      typeof at === "string"
        ? Math.max(ids.indexOf(at), 0)
        : Math.min(Math.max(at, 0), ids.length - 1);
    if (this.showing === series.series_uid) {
      await this.viewport.setImageIdIndex(index);
    } else {
      this.showing = series.series_uid;
      await this.viewport.setStack(ids, index);
      this.viewport.render();
    }
  }

  get currentImageId(): string | undefined {
    return this.showing ? this.viewport.getCurrentImageId() : undefined;
  }

  get shownSeries(): string | null {
    return this.showing;
  }

  scroll(delta: number): void {
    const count = this.viewport.getImageIds().length;
    if (!count) return;
    const next = Math.min(Math.max(this.viewport.getCurrentImageIdIndex() + delta, 0), count - 1);
    void this.viewport.setImageIdIndex(next);
  }

  setPrimaryTool(tool: PrimaryTool): void {
    this.primary = tool;
    this.bindTools();
  }

  reset(): void {
    this.viewport.resetCamera();
    this.viewport.resetProperties();
    this.viewport.render();
  }

  /** Re-place the overlay (after its content changed). */
  refreshOverlay(): void {
    this.overlay.place(this.viewport);
  }

  destroy(): void {
    this.resizeObserver.disconnect();
    ToolGroupManager.destroyToolGroup(this.toolGroupId);
    this.engine.destroy();
  }

  // Left button: the chosen tool; right: zoom; middle: pan; wheel: scroll.
  private bindTools(): void {
    const tools = ToolGroupManager.getToolGroup(this.toolGroupId);
    if (!tools) return;
    const bindings: Record<string, number[]> = {
      [TOOL_NAMES.WindowLevel]: [],
      [TOOL_NAMES.Pan]: [MouseBindings.Auxiliary],
      [TOOL_NAMES.Zoom]: [MouseBindings.Secondary],
      [TOOL_NAMES.StackScroll]: [MouseBindings.Wheel],
    };
    bindings[TOOL_NAMES[this.primary]].push(MouseBindings.Primary);
    for (const [name, buttons] of Object.entries(bindings)) {
      tools.setToolPassive(name, { removeAllBindings: true });
      if (buttons.length) {
        tools.setToolActive(name, { bindings: buttons.map((mouseButton) => ({ mouseButton })) });
      }
    }
  }
}
