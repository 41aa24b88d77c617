// The one place that talks HTTP to `radlens serve`. Any 401 (except a failed login) calls
// the handler main.ts installs, which sends the reader back to the login page.
import type {
  DicomJson,
  ModelCard,
  Monitoring,
  PriorityName,
  QueueItem,
  Report,
  Review,
  ReviewIn,
  Study,
  WorklistFilters,
  WorklistItem,
} from "./types";

/** An error answer of the API: `{"error": kind, "detail": one line}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    readonly detail: string,
  ) {
    super(detail || kind || `HTTP ${status}`);
    this.name = "ApiError";
  }
}

let onUnauthorized: () => void = () => undefined;

export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  options: { quiet401?: boolean } = {},
): Promise<T> {
  const init: RequestInit = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let kind = "";
    let detail = response.statusText;
    try {
      const error = (await response.json()) as { error?: string; detail?: unknown };
      kind = error.error ?? "";
      detail = typeof error.detail === "string" ? error.detail : JSON.stringify(error.detail);
    } catch {
      // not JSON (a proxy's error page): keep the status text
    }
    if (response.status === 401 && !options.quiet401) onUnauthorized();
    throw new ApiError(response.status, kind, detail);
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

const studyPath = (uid: string): string => `/api/studies/${encodeURIComponent(uid)}`;

export const api = {
  login: (username: string, password: string) =>
    request<{ username: string }>(
      "POST",
      "/api/auth/login",
      { username, password },
      {
        quiet401: true,
      },
    ),
  logout: () => request<void>("POST", "/api/auth/logout", undefined, { quiet401: true }),
  me: () => request<{ username: string }>("GET", "/api/auth/me", undefined, { quiet401: true }),
  providers: () =>
    request<{ password: boolean; oidc: boolean; oidc_login_url: string | null }>(
      "GET",
      "/api/auth/providers",
    ),

  worklist(filters: WorklistFilters): Promise<WorklistItem[]> {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
    const text = query.toString();
    const suffix = text ? `?${text}` : "";
    return request<WorklistItem[]>("GET", `/api/worklist${suffix}`);
  },

  study: (uid: string) => request<Study>("GET", studyPath(uid)),
  open: (uid: string) => request<Study>("POST", `${studyPath(uid)}/open`),
  review: (uid: string, findingId: string, body: ReviewIn) =>
    request<Review>(
      "PUT",
      `${studyPath(uid)}/findings/${encodeURIComponent(findingId)}/review`,
      body,
    ),
  saveReport: (uid: string, text: string) =>
    request<Report>("PUT", `${studyPath(uid)}/report`, { text }),
  sign: (uid: string) => request<Study>("POST", `${studyPath(uid)}/sign`),
  setPriority: (uid: string, priority: PriorityName | null) =>
    request<Study>("PUT", `${studyPath(uid)}/priority`, { priority }),

  heatmapUrl: (uid: string, findingId: string) =>
    `${studyPath(uid)}/findings/${encodeURIComponent(findingId)}/heatmap.png`,

  seriesMetadata: (study: string, series: string) =>
    request<DicomJson[]>("GET", `/dicomweb/studies/${study}/series/${series}/metadata`),

  modelCard: (name: string, version: string) =>
    request<ModelCard>(
      "GET",
      `/api/models/${encodeURIComponent(name)}/${encodeURIComponent(version)}`,
    ),
};

/** Feedback: the active-learning queue and the monitoring document (docs/feedback.md). */
export const feedbackApi = {
  learningQueue(model = "", limit = 50): Promise<QueueItem[]> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (model) query.set("model", model);
    return request<QueueItem[]>("GET", `/api/learning/queue?${query.toString()}`);
  },
  monitoring(model = "", since = ""): Promise<Monitoring> {
    const query = new URLSearchParams();
    if (model) query.set("model", model);
    if (since) query.set("since", since);
    const text = query.toString();
    return request<Monitoring>("GET", `/api/monitoring${text ? `?${text}` : ""}`);
  },
};
