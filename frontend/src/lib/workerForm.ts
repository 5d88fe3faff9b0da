/**
 * The federated worker form: a name and the worker's datasets, checked here first; the API
 * validates again and has the last word (its field errors use the same keys, e.g.
 * `datasets.0.input_shape`).
 */
import type { FieldErrors, Schemas } from "../api/client";
import { parseJsonObject } from "./deployForm";

export type WorkerRequest = Schemas["WorkerCreateInputRequest"];

export type DatasetRow = { name: string; input_shape: string; samples: number | string; dataset_restrictions: string };

export function emptyDataset(): DatasetRow {
  return { name: "", input_shape: "", samples: "", dataset_restrictions: "{}" };
}

/** "28 28", "28,28" or "[28, 28]": one sample's shape, without the batch dimension. */
export function parseShape(text: string): number[] | string {
  const parts = text.replace(/[[\]]/g, " ").split(/[\s,]+/).filter(Boolean);
  if (parts.length === 0) return "Required: one sample's shape, like 28 28.";
  const shape = parts.map(Number);
  if (shape.some((size) => !Number.isInteger(size) || size < 1)) return "Whole numbers of at least 1, like 28 28.";
  return shape;
}

/** The request body for `POST /api/federated/workers`, or field errors keyed like the API's. */
export function buildWorkerRequest(name: string, rows: DatasetRow[]): { body?: WorkerRequest; errors: FieldErrors } {
  const errors: FieldErrors = {};
  if (!name.trim()) errors.name = "Required.";
  if (rows.length === 0) errors.datasets = "Add at least one dataset.";
  const datasets = rows.map((row, index) => {
    const key = `datasets.${index}`;
    if (!row.name.trim()) errors[`${key}.name`] = "Required.";
    const shape = parseShape(row.input_shape);
    if (typeof shape === "string") errors[`${key}.input_shape`] = shape;
    const samples = Number(row.samples);
    if (row.samples === "" || !Number.isInteger(samples) || samples < 0) errors[`${key}.samples`] = "A whole number of training samples.";
    const restrictions = parseJsonObject(row.dataset_restrictions);
    if (restrictions.error) errors[`${key}.dataset_restrictions`] = restrictions.error;
    return { name: row.name.trim(), input_shape: typeof shape === "string" ? [] : shape, samples, dataset_restrictions: restrictions.value ?? {} };
  });
  if (Object.keys(errors).length > 0) return { errors };
  return { body: { name: name.trim(), datasets }, errors };
}
