// Vite build of the radlens reading room. `npm run build` writes into the Python package
// (src/radlens/server/static), which `radlens serve` mounts at `/`; `npm run dev` proxies the
// API to a `radlens serve` on 127.0.0.1:8000.
import { defineConfig, type Plugin } from "vite";

const BACKEND = "http://127.0.0.1:8000";

function refuse(what: string): string {
  return `throw new Error(${JSON.stringify(`${what} is not bundled in the radlens web UI`)});`;
}

// Dependencies the reading room never runs, each replaced by a stub that throws if called.
// - radlens's WADO-RS sends every frame decoded (explicit VR little endian, docs/api.md), so
//   the DICOM image loader's codecs for compressed syntaxes (JPEG 2000, HTJ2K, JPEG-LS, JPEG XL,
//   libjpeg-turbo, lossless JPEG, deflate) are never called: without the stubs they put
//   megabytes of WASM and JS into the decode worker.
// - xmlbuilder2 (with its DOM, URL and YAML code) only serves vtk.js's XML mesh reader, which
//   Cornerstone's surface meshes use; the viewer shows images only.
const STUBS: [RegExp, string][] = [
  [
    /^@cornerstonejs\/(codec-|jpeg-lossless-decoder-js$)/,
    `export default function codec() { ${refuse("this DICOM codec")} }
export class Decoder { constructor() { ${refuse("the lossless JPEG decoder")} } }`,
  ],
  [
    /^pako$/,
    `export function inflate() { ${refuse("deflate")} }
export function inflateRaw() { ${refuse("deflate")} }
export default { inflate, inflateRaw };`,
  ],
  [/^xmlbuilder2$/, `export function create() { ${refuse("VTK XML (meshes)")} }`],
];
// The loader locates each codec's .wasm with `new URL("<package>/...", import.meta.url)`.
const CODEC_URL = /new URL\((["'])@cornerstonejs\/codec-[^"']+\1,\s*import\.meta\.url\)/g;

function stubUnusedDependencies(): Plugin {
  const prefix = "\0radlens-stub:";
  return {
    name: "radlens-stub-unused-dependencies",
    enforce: "pre",
    resolveId(source) {
      const index = STUBS.findIndex(([pattern]) => pattern.test(source));
      return index < 0 ? null : `${prefix}${index}`;
    },
    load(id) {
      return id.startsWith(prefix) ? STUBS[Number(id.slice(prefix.length))][1] : null;
    },
    transform(code, id) {
      if (!id.includes("dicom-image-loader") || !code.includes("@cornerstonejs/codec-")) {
        return null;
      }
      return { code: code.replace(CODEC_URL, '"radlens-no-codec.wasm"'), map: null };
    },
  };
}

export default defineConfig({
  base: "./",
  plugins: [stubUnusedDependencies()],
  worker: {
    format: "es",
    plugins: () => [stubUnusedDependencies()],
  },
  optimizeDeps: {
    // Pre-bundling would break the loader's `new URL("./decodeImageFrameWorker.js", ...)`.
    exclude: ["@cornerstonejs/dicom-image-loader"],
    include: ["dicom-parser"],
  },
  build: {
    outDir: "../src/radlens/server/static",
    emptyOutDir: true,
    target: "es2022",
    // The viewer chunk (Cornerstone3D: vtk.js, dcmjs) is ~3 MB, loaded when a study opens.
    chunkSizeWarningLimit: 4000,
    // Rolldown's plugin timing report (the worker URL transform) is noise in make's output.
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
  server: {
    proxy: {
      "/api": BACKEND,
      "/dicomweb": BACKEND,
    },
  },
});
