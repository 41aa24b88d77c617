// Cornerstone3D set up once per page load: core, the DICOM image loader (WADO-RS), tools.
import { init as initCore } from "@cornerstonejs/core";
import { init as initLoader } from "@cornerstonejs/dicom-image-loader";
import {
  PanTool,
  StackScrollTool,
  WindowLevelTool,
  ZoomTool,
  addTool,
  init as initTools,
} from "@cornerstonejs/tools";

let initialized = false;

/** Initialize Cornerstone3D (idempotent). Falls back to CPU rendering without WebGL. */
export function initCornerstone(): void {
  if (initialized) return;
  initCore();
  // One decode worker is plenty: frames arrive uncompressed, "decoding" is a copy.
  initLoader({ maxWebWorkers: 1 });
  initTools();
  for (const tool of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool]) addTool(tool);
  initialized = true;
}
