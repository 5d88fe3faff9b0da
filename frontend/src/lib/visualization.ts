/**
 * The live visualization's state, folded from the server's aggregated updates (one per
 * interval, never one per prediction), and the check of a pasted Kafka-ML configuration.
 */
import type { Schemas } from "../api/client";

export type VisualizationConfig = Schemas["VisualizationRequest"];
export type Label = Schemas["LabelRequest"];

/** One server-sent `update` (backend/apps/visualization/live.py). */
export type LiveUpdate = {
  count: number;
  skipped: number;
  classes: Record<string, number>;
  last_class: number | null;
  last: number[];
  mean: number[];
};

export type LiveState = {
  total: number;
  skipped: number;
  updates: number;
  /** Predictions per class since the page opened. */
  counts: number[];
  /** Per-update class counts still inside the averaging window, oldest first. */
  window: { count: number; classes: Record<string, number> }[];
  /** The class shown in the status box, and the ones shown before it (newest first). */
  current: number | null;
  history: number[];
  /** Regression: [update number, mean value] per output position, last MAX_POINTS. */
  series: [number, number][][];
};

export const MAX_POINTS = 300;
export const HISTORY = 4;

export const EMPTY_STATE: LiveState = { total: 0, skipped: 0, updates: 0, counts: [], window: [], current: null, history: [], series: [] };

function argmax(counts: Record<string, number>): number | null {
  let best: number | null = null;
  let bestCount = -1;
  for (const [key, count] of Object.entries(counts)) {
    if (count > bestCount) {
      best = Number(key);
      bestCount = count;
    }
  }
  return best;
}

/** Fold one update into the state (pure: returns a new state). */
export function applyUpdate(state: LiveState, update: LiveUpdate, config: Pick<VisualizationConfig, "average_updated" | "average_window">): LiveState {
  const counts = [...state.counts];
  for (const [key, n] of Object.entries(update.classes)) {
    const index = Number(key);
    while (counts.length <= index) counts.push(0);
    counts[index] = (counts[index] ?? 0) + n;
  }
  const limit = config.average_window ?? 10_000;
  const window = [...state.window, { count: update.count, classes: update.classes }];
  let inWindow = window.reduce((sum, bucket) => sum + bucket.count, 0);
  while (window.length > 1 && inWindow - window[0]!.count >= limit) inWindow -= window.shift()!.count;
  const windowed: Record<string, number> = {};
  for (const bucket of window) for (const [key, n] of Object.entries(bucket.classes)) windowed[key] = (windowed[key] ?? 0) + n;
  const shown = config.average_updated ? argmax(windowed) : update.last_class;
  const history = shown !== null && shown !== state.current && state.current !== null ? [state.current, ...state.history].slice(0, HISTORY) : state.history;
  const updates = state.updates + 1;
  const series = update.mean.map((value, index) => [...(state.series[index] ?? []), [updates, value] as [number, number]].slice(-MAX_POINTS));
  return { total: state.total + update.count, skipped: state.skipped + update.skipped, updates, counts, window, current: shown ?? state.current, history, series };
}

/** A Kafka-ML visualization configuration from pasted JSON, or what is wrong with it. */
export function parseVisualizationConfig(text: string): { config?: VisualizationConfig; error?: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { error: `Not valid JSON: ${(error as Error).message}` };
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) return { error: "The configuration must be a JSON object." };
  const raw = value as Record<string, unknown>;
  if (raw.type !== "classification" && raw.type !== "regression") return { error: 'type must be "classification" or "regression".' };
  if (!Array.isArray(raw.labels)) return { error: "labels must be a list of {id, color, label}." };
  const ids = new Set<number>();
  for (const [index, label] of raw.labels.entries()) {
    const item = label as Record<string, unknown>;
    if (!Number.isInteger(item?.id) || (item.id as number) < 0) return { error: `labels[${index}].id must be an output position (0, 1, ...).` };
    if (typeof item.color !== "string" || !/^#[0-9a-fA-F]{6}$/.test(item.color)) return { error: `labels[${index}].color must look like #1e88e5.` };
    if (typeof item.label !== "string" || !item.label) return { error: `labels[${index}].label must be a name.` };
    if (ids.has(item.id as number)) return { error: `labels[${index}].id ${String(item.id)} appears twice.` };
    ids.add(item.id as number);
  }
  const window = raw.average_window ?? 10_000;
  if (!Number.isInteger(window) || (window as number) < 1) return { error: "average_window must be a whole number of at least 1." };
  return {
    config: {
      type: raw.type,
      labels: raw.labels as Label[],
      average_updated: Boolean(raw.average_updated),
      average_window: window as number,
    },
  };
}

export function labelFor(config: VisualizationConfig, id: number | null): Label {
  const found = config.labels.find((label) => label.id === id);
  return found ?? { id: id ?? -1, color: "#868e96", label: id === null ? "—" : `class ${id}` };
}
