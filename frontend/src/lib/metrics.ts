/** Learning curves from a result's per-epoch metrics (`epochs: [{epoch, train, validation}]`). */
export type Epoch = { epoch: number; train?: Record<string, number>; validation?: Record<string, number> };

export function epochsOf(value: unknown): Epoch[] {
  return Array.isArray(value) ? (value as Epoch[]).filter((epoch) => typeof epoch?.epoch === "number") : [];
}

/** Metric names in first-seen order across train and validation. */
export function metricNames(epochs: Epoch[]): string[] {
  const names = new Set<string>();
  for (const epoch of epochs) {
    Object.keys(epoch.train ?? {}).forEach((name) => names.add(name));
    Object.keys(epoch.validation ?? {}).forEach((name) => names.add(name));
  }
  return [...names];
}

/** [epoch, value] points of one metric on one split; epochs without it are skipped. */
export function curve(epochs: Epoch[], metric: string, split: "train" | "validation"): [number, number][] {
  return epochs.flatMap((epoch) => {
    const value = epoch[split]?.[metric];
    return typeof value === "number" ? [[epoch.epoch + 1, value] as [number, number]] : [];
  });
}

/** Last value of each metric in `{name: number | number[]}` (test metrics come either way). */
export function lastValues(metrics: unknown): [string, number][] {
  if (!metrics || typeof metrics !== "object") return [];
  return Object.entries(metrics as Record<string, unknown>).flatMap(([name, value]) => {
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    return typeof last === "number" ? [[name, last] as [string, number]] : [];
  });
}
