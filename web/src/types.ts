// The shapes of the radlens HTTP API (docs/api.md) that the reading room reads and writes.

export const PRIORITIES = ["critical", "urgent", "priority", "routine"] as const;
export type PriorityName = (typeof PRIORITIES)[number];

export const STATUSES = [
  "received",
  "analyzing",
  "ready",
  "in_review",
  "signed",
  "failed",
] as const;
export type StudyStatus = (typeof STATUSES)[number];

export type Decision = "accepted" | "rejected" | "edited";

export interface TopFinding {
  label: string;
  probability: number;
  ood_flag: boolean;
}

export interface WorklistItem {
  study_uid: string;
  status: StudyStatus;
  priority: PriorityName | null;
  ai_priority: PriorityName | null;
  radiologist_priority: PriorityName | null;
  score: number;
  modalities: string[];
  body_parts: string[];
  n_instances: number;
  received_at: string;
  analyzed_at: string | null;
  first_viewed_at: string | null;
  signed_at: string | null;
  turnaround_s: number | null;
  waiting_s: number;
  analyses: number;
  n_positive: number;
  low_trust: boolean;
  top_finding: TopFinding | null;
}

/** One finding of `radlens.findings/2` (docs/findings-json.md) plus the API's `id`. */
export interface Finding {
  id: string;
  code: string;
  label: string;
  probability: number;
  threshold: number;
  positive: boolean;
  model_name: string;
  model_version: string;
  sop_instance_uid: string;
  /** Index (from 0) of the frame of `sop_instance_uid` the finding is about. */
  frame: number;
  /** [x0, y0, x1, y1] in source pixels (column, then row); positive findings only. */
  box_px: [number, number, number, number] | null;
  grade: number | null;
  grade_label: string;
  ood_score: number | null;
  ood_flag: boolean;
  trust: string;
  warnings: string[];
  has_heatmap: boolean;
  /** What a measuring model measured (fetal head: head circumference, gestational age). */
  measurements: Measurement[];
  /** Closed outline `[x, y]` (source pixels) the measurements were made on, or null. */
  outline_px: [number, number][] | null;
  /** One box of a detector. */
  detected: boolean;
  /** A finding that never raises priority (a counted box, a measured structure, a low grade). */
  counted: boolean;
  /** Ordinal models: the calibrated probability of every grade, in order; else null. */
  grade_probabilities: { label: string; probability: number }[] | null;
}

/** A measurement of a finding (docs/findings-json.md, "Measurements of a finding"). */
export interface Measurement {
  code: string;
  label: string;
  value: number | null;
  unit: string;
  low: number | null;
  high: number | null;
  method: string;
  note: string;
}

export interface SeriesResult {
  series_instance_uid: string;
  modality: string;
  body_part: string;
  n_instances: number;
  models: string[];
  skipped_reason: string;
  warnings: string[];
  findings: Finding[];
}

export interface RejectedInput {
  location: string;
  kind: string;
  reason: string;
}

export interface FindingsDocument {
  schema: string;
  radlens_version: string;
  priority: PriorityName;
  series: SeriesResult[];
  rejected: RejectedInput[];
  warnings: string[];
  disclaimer: string;
}

export interface Review {
  decision: Decision;
  label: string;
  grade: number | null;
  note: string;
  username: string;
  at: string;
}

export interface ReviewIn {
  decision: Decision;
  label?: string;
  grade?: number;
  note?: string;
}

export interface Report {
  text: string;
  updated_at: string | null;
  updated_by: string;
  signed_at: string | null;
  signed_by: string;
}

export interface SeriesListing {
  series_uid: string;
  modality: string;
  body_part: string;
  instances: { sop_uid: string; frames: number }[];
}

/** The clinical notes versus one AI finding (docs/api.md, `concordance`). */
export interface Concordance {
  concordance: "concordant" | "discordant" | "new" | "known";
  flagged: boolean;
  notes: "present" | "absent" | "possible" | "historical" | "reason" | null;
  sentence: string;
}

export interface Study extends WorklistItem {
  findings: FindingsDocument | null;
  reviews: Record<string, Review>;
  report: Report;
  series: SeriesListing[];
  /** The AI draft report (Markdown), null until analyzed: the editor starts from it. */
  draft: string | null;
  concordance: Record<string, Concordance>;
}

export interface WorklistFilters {
  modality: string;
  status: StudyStatus | "";
  priority: PriorityName | "";
}

/** DICOM JSON (PS3.18 F.2) of one instance, as `.../metadata` answers it. */
export type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;
