// The AI overlay over the viewport: a finding's heatmap stretched over its whole image and the
// findings' boxes, kept in place on zoom, pan and resize by mapping image corners through the
// viewport's camera (worldToCanvas).
import type { Types } from "@cornerstonejs/core";

export interface OverlayBox {
  box: [number, number, number, number];
  label: string;
  positive: boolean;
}

export interface OverlayContent {
  imageId: string;
  /** Columns and rows of the image. */
  width: number;
  height: number;
  heatmapUrl: string | null;
  boxes: OverlayBox[];
  /** Outlines a measurement was made on (the fetal head ellipse), in image pixels. */
  outlines: OverlayOutline[];
}

export interface OverlayOutline {
  points: [number, number][];
  label: string;
}

type Point = [number, number];
const SVG = "http://www.w3.org/2000/svg";

export class FindingOverlay {
  readonly root: HTMLDivElement;
  private readonly heatmap: HTMLImageElement;
  private readonly svg: SVGSVGElement;
  private content: OverlayContent | null = null;
  private heatmapLoaded = false;

  constructor() {
    this.root = document.createElement("div");
    this.root.className = "finding-overlay";
    this.heatmap = document.createElement("img");
    this.heatmap.className = "heatmap-overlay";
    this.heatmap.dataset.testid = "heatmap-overlay";
    this.heatmap.alt = "AI heatmap";
    this.heatmap.hidden = true;
    this.heatmap.addEventListener("load", () => {
      this.heatmapLoaded = true;
      this.root.dispatchEvent(new Event("overlaychange"));
    });
    this.heatmap.addEventListener("error", () => {
      this.heatmapLoaded = false;
      this.heatmap.hidden = true;
    });
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.classList.add("box-overlay");
    this.svg.dataset.testid = "box-overlay";
    this.root.append(this.heatmap, this.svg);
  }

  /** What to draw (null: nothing); `place` then puts it on the viewport. */
  set(content: OverlayContent | null): void {
    const url = content?.heatmapUrl ?? null;
    if (url !== (this.content?.heatmapUrl ?? null)) {
      this.heatmapLoaded = false;
      if (url) this.heatmap.src = url;
      else this.heatmap.removeAttribute("src");
    }
    this.content = content;
  }

  /** Map the content onto the viewport's current image, or hide it if that is another image. */
  place(viewport: Types.IStackViewport): void {
    const content = this.content;
    const current = viewport.getCurrentImageId();
    const map = content && current === content.imageId ? pixelToCanvas(viewport) : null;
    const showHeatmap = Boolean(map && content?.heatmapUrl && this.heatmapLoaded);
    this.heatmap.hidden = !showHeatmap;
    this.root.dataset.heatmapVisible = String(showHeatmap);
    if (map && content && showHeatmap) {
      const [origin, right, down] = [
        map([0, 0]),
        map([content.width, 0]),
        map([0, content.height]),
      ];
      const a = (right[0] - origin[0]) / content.width;
      const b = (right[1] - origin[1]) / content.width;
      const c = (down[0] - origin[0]) / content.height;
      const d = (down[1] - origin[1]) / content.height;
      this.heatmap.style.width = `${content.width}px`;
      this.heatmap.style.height = `${content.height}px`;
      this.heatmap.style.transform = `matrix(${a}, ${b}, ${c}, ${d}, ${origin[0]}, ${origin[1]})`;
    }
    this.svg.replaceChildren();
    const boxes = map && content ? content.boxes : [];
    this.root.dataset.boxes = String(boxes.length);
    for (const { box, label, positive } of boxes) {
      const [x0, y0, x1, y1] = box;
      const corners = (
        [
          [x0, y0],
          [x1, y0],
          [x1, y1],
          [x0, y1],
        ] as Point[]
      ).map(map!);
      const polygon = document.createElementNS(SVG, "polygon");
      polygon.setAttribute("points", corners.map((p) => p.join(",")).join(" "));
      polygon.setAttribute("class", positive ? "box positive" : "box");
      polygon.dataset.testid = "finding-box";
      const text = document.createElementNS(SVG, "text");
      const top = corners.reduce((best, p) => (p[1] < best[1] ? p : best));
      text.setAttribute("x", String(top[0] + 4));
      text.setAttribute("y", String(Math.max(top[1] - 6, 12)));
      text.textContent = label;
      this.svg.append(polygon, text);
    }
    const outlines = map && content ? content.outlines : [];
    this.root.dataset.outlines = String(outlines.length);
    for (const { points, label } of outlines) {
      // Outline points are pixel centres; map() takes pixel edges (centre of (i, j) = i + 0.5).
      const canvas = points.map(([x, y]) => map!([x + 0.5, y + 0.5]));
      const polygon = document.createElementNS(SVG, "polygon");
      polygon.setAttribute("points", canvas.map((p) => p.join(",")).join(" "));
      polygon.setAttribute("class", "outline");
      polygon.dataset.testid = "finding-outline";
      const text = document.createElementNS(SVG, "text");
      const top = canvas.reduce((best, p) => (p[1] < best[1] ? p : best));
      text.setAttribute("x", String(top[0] + 4));
      text.setAttribute("y", String(Math.max(top[1] - 6, 12)));
      text.setAttribute("class", "outline-label");
      text.textContent = label;
      this.svg.append(polygon, text);
    }
  }
}

/**
 * Image pixel coordinates (edges: pixel (i, j) covers [i, i+1] x [j, j+1], as in box_px)
 * to canvas coordinates (CSS pixels) for the image the viewport shows now.
 */
function pixelToCanvas(viewport: Types.IStackViewport): ((p: Point) => Point) | null {
  const data = viewport.getImageData();
  if (!data) return null;
  const { origin, direction, spacing } = data;
  // The origin is the centre of the first pixel; the direction rows are the i and j axes.
  return ([x, y]) => {
    const i = (x - 0.5) * spacing[0];
    const j = (y - 0.5) * spacing[1];
    const world: Types.Point3 = [
      origin[0] + direction[0] * i + direction[3] * j,
      origin[1] + direction[1] * i + direction[4] * j,
      origin[2] + direction[2] * i + direction[5] * j,
    ];
    const canvas = viewport.worldToCanvas(world);
    return [canvas[0], canvas[1]];
  };
}
