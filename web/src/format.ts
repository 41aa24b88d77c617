// Display helpers: percentages, durations, times, labels.
import type { PriorityName, StudyStatus } from "./types";

export const LOW_TRUST = "input unlike training data — low trust";
/** The warning that names what makes a flagged input unlike the training images
 * (``radlens.inference.ood.UNLIKE_IN``). */
export const UNLIKE_IN = "unlike training data in: ";
export const AI_DRAFT = "AI draft — requires physician review";

export function percent(probability: number): string {
  return `${(probability * 100).toFixed(probability >= 0.995 || probability < 0.005 ? 1 : 0)}%`;
}

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** The API's datetimes are UTC without an offset: show them in local time. */
export function dateTime(iso: string | null): string {
  if (!iso) return "–";
  const hasOffset = /(Z|[+-]\d\d:?\d\d)$/.test(iso);
  const when = new Date(hasOffset ? iso : `${iso}Z`);
  if (Number.isNaN(when.getTime())) return iso;
  const pad = (n: number): string => String(n).padStart(2, "0");
  return (
    `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())} ` +
    `${pad(when.getHours())}:${pad(when.getMinutes())}`
  );
}

export const STATUS_LABELS: Record<StudyStatus, string> = {
  received: "received",
  analyzing: "analyzing",
  ready: "ready",
  in_review: "in review",
  signed: "signed",
  failed: "failed",
};

export function priorityLabel(priority: PriorityName | null): string {
  return priority ?? "pending";
}

/** The end of a UID, enough to tell studies apart on screen. */
export function shortUid(uid: string): string {
  return uid.length > 22 ? `…${uid.slice(-20)}` : uid;
}
