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
  /** The reader's confidence, 1 (a guess) .. 5 (certain), when given. */
  confidence: number | null;
  /** The reader's edited box [x0, y0, x1, y1] in source pixels, when edited. */
  box_px: [number, number, number, number] | null;
}

export interface ReviewIn {
  decision: Decision;
  label?: string;
  grade?: number;
  note?: string;
  confidence?: number;
  box_px?: [number, number, number, number];
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
  /** Per finding id: the readers' votes and the label they give (several readers). */
  adjudications: Record<string, Adjudication>;
}

export interface WorklistFilters {
  modality: string;
  status: StudyStatus | "";
  priority: PriorityName | "";
}

/** DICOM JSON (PS3.18 F.2) of one instance, as `.../metadata` answers it. */
export type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;

// --- feedback: several readers, the learning queue, monitoring (docs/feedback.md) ---------

/** One reader's newest decision on a finding, as a vote (`Study.adjudications`). */
export interface Vote {
  reader: string;
  call: string;
  present: boolean;
  grade: number | null;
  label: string;
  confidence: number | null;
  senior: boolean;
  decision: Decision;
  at: string;
}

/** The readers' votes on one finding and the label they give (null `call`: unresolved). */
export interface Adjudication {
  n_readers: number;
  rule: "majority" | "senior";
  call: string | null;
  present: boolean | null;
  grade: number | null;
  decided_by: string;
  agreement: number;
  disagreement: boolean;
  ai_agrees: boolean | null;
  summary: string;
  votes: Vote[];
}

/** One case of the active-learning queue (`GET /api/learning/queue`). */
export interface QueueItem {
  rank: number;
  study_uid: string;
  finding_id: string;
  score: number;
  reasons: string[];
  code: string;
  label: string;
  probability: number;
  threshold: number;
  positive: boolean;
  ood_score: number | null;
  ood_flag: boolean;
  model_name: string;
  model_version: string;
  scanner: string;
  site: string;
  stratum: string;
  received_at: string;
  n_findings: number;
  adjudication: Adjudication | null;
}

export interface Equipment {
  manufacturer: string;
  manufacturer_model: string;
  station_name: string;
  scanner: string;
  site: string;
  stratum: string;
}

export interface BinTest {
  statistic: "feature" | "input" | "decision";
  edges: number[];
  expected: number[];
  observed: number[];
  psi: number;
  p_value: number;
}

export interface Drift {
  n: number;
  alert: boolean;
  reason: string;
  psi: number | null;
  tests: BinTest[];
}

export interface GroupStats {
  n_studies: number;
  n_images: number;
  n_findings: number;
  n_positive: number;
  positive_rate: number | null;
  n_reviewed: number;
  n_resolved: number;
  ai_agreement: number | null;
  n_multi_read: number;
  reader_agreement: number | null;
  n_calibration: number;
  ece: number | null;
  ood: {
    n: number;
    flag_rate: number | null;
    expected_flag_rate: number | null;
    histogram: number[];
    drift: Drift;
  };
}

export interface ModelMonitor {
  model_name: string;
  model_version: string;
  card_found: boolean;
  stats: GroupStats;
  strata: { equipment: Equipment; stats: GroupStats }[];
  days: { day: string; n_images: number; n_positive: number; n_flagged: number }[];
}

/** `GET /api/monitoring`: per model version and site/scanner. */
export interface Monitoring {
  since: string | null;
  histogram_edges: number[];
  alerts: string[];
  models: ModelMonitor[];
}

/** A model's card as a reader sees it (`GET /api/models/{name}/{version}`). */
export interface ModelCard {
  name: string;
  version: string;
  task: string;
  finding_label: string;
  intended_use: string;
  limitations: string[];
  modalities: string[];
  body_parts: string[];
  population: string;
  val: Record<string, number>;
  operating_threshold: number | null;
  abstain_band: [number, number] | null;
  calibration: string;
  ood: boolean;
  training_data: string;
  licence: string;
  citation: string;
}
