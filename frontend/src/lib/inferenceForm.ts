/**
 * The inference form's state and its client-side checks; the API validates again and has the
 * last word (its field errors are shown at the same keys).
 */
import type { FieldErrors, Schemas } from "../api/client";
import { parseJsonObject } from "./deployForm";

export type Delivery = Schemas["DeliveryEnum"];
export type InferenceRequest = Schemas["InferenceCreateInputRequest"];

/** The delivery choices, with the one line that tells them apart (docs/delivery.md). */
export const DELIVERY_OPTIONS: { value: Delivery; label: string; help: string }[] = [
  { value: "exactly-once", label: "Exactly once", help: "One Kafka transaction per micro-batch; read the outputs with read_committed (confluent-kafka, Java)." },
  { value: "at-least-once", label: "At least once", help: "No transactions, for consumers that can't skip transaction markers (kafka-python); a crash may answer inputs twice." },
];

export const INPUT_FORMATS: Schemas["InputFormatEnum"][] = ["RAW", "AVRO", "JSON", "TELEGRAF_STR_JSON"];

export type InferenceForm = {
  replicas: number | string;
  input_format: Schemas["InputFormatEnum"];
  input_config: string;
  input_topic: string;
  output_topic: string;
  input_bootstrap: string;
  output_bootstrap: string;
  upper_bootstrap: string;
  upper_topic: string;
  limit: number | string;
  delivery: Delivery;
};

export function defaultInferenceForm(resultId: number): InferenceForm {
  return {
    replicas: 1,
    input_format: "RAW",
    input_config: "{}",
    input_topic: `kafkaml-in-${resultId}`,
    output_topic: `kafkaml-out-${resultId}`,
    input_bootstrap: "",
    output_bootstrap: "",
    upper_bootstrap: "",
    upper_topic: "",
    limit: "",
    delivery: "exactly-once",
  };
}

/** The request body for `POST /api/inferences`, or field errors keyed like the API's. */
export function buildInferenceRequest(form: InferenceForm, resultId: number): { body?: InferenceRequest; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const replicas = Number(form.replicas);
  if (form.replicas === "" || !Number.isInteger(replicas) || replicas < 1 || replicas > 100) errors.replicas = "Must be a whole number between 1 and 100.";
  const config = parseJsonObject(form.input_config);
  if (config.error) errors.input_config = config.error;
  if (!form.input_topic.trim()) errors.input_topic = "Required.";
  if (!form.output_topic.trim()) errors.output_topic = "Required.";
  const limit = form.limit === "" ? null : Number(form.limit);
  if (limit !== null && !Number.isFinite(limit)) errors.limit = "Must be a number.";
  if (!DELIVERY_OPTIONS.some((option) => option.value === form.delivery)) errors.delivery = "Choose exactly-once or at-least-once.";
  if (Object.keys(errors).length > 0) return { errors };
  return {
    errors,
    body: {
      result_id: resultId,
      replicas,
      input_format: form.input_format,
      input_config: config.value,
      input_topic: form.input_topic.trim(),
      output_topic: form.output_topic.trim(),
      input_bootstrap: form.input_bootstrap,
      output_bootstrap: form.output_bootstrap,
      upper_bootstrap: form.upper_bootstrap,
      upper_topic: form.upper_topic,
      limit,
      delivery: form.delivery,
    },
  };
}
