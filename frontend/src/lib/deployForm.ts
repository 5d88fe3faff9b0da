/**
 * The Deploy form's state and its client-side checks. The API validates again and has the last
 * word; these checks only catch what the browser can see (JSON that does not parse, a number
 * out of range) before a round trip.
 */
import type { FieldErrors, Schemas } from "../api/client";

export type Mode = Schemas["ModeEnum"];
export type DeployRequest = Schemas["DeploymentCreateInputRequest"];

export type DeployForm = {
  description: string;
  mode: Mode;
  batch_size: number | string;
  fit_kwargs: string;
  eval_kwargs: string;
  gpus: number | string;
  reader: Schemas["ReaderEnum"];
  confusion_matrix: boolean;
  target: Schemas["TargetEnum"];
  incremental: { stream_timeout_ms: number | string; indefinite: boolean; monitoring_metric: string; change: "up" | "down"; window: number | string; improvement: number | string };
  distributed: { optimizer: string; learning_rate: number | string; loss: string; metrics: string };
  semi_supervised: { rounds: number | string; confidence: number | string };
  federated: {
    rounds: number | string;
    local_epochs: number | string;
    min_clients: number | string;
    min_data: number | string;
    data_restrictions: string;
    round_timeout_s: number | string;
    strategy: Strategy;
    /** FedProx's proximal weight; empty: the API's default (0.01 for fedprox, else 0). */
    mu: number | string;
    /** FedAdam's server step size; empty: the API's default (0.01). */
    server_learning_rate: number | string;
  };
};

export type Strategy = Schemas["StrategyEnum"];

export const DEFAULT_FORM: DeployForm = {
  description: "",
  mode: "classic",
  batch_size: 32,
  fit_kwargs: '{"epochs": 5}',
  eval_kwargs: "{}",
  gpus: 0,
  reader: "native",
  confusion_matrix: true,
  target: "label",
  incremental: { stream_timeout_ms: 60000, indefinite: false, monitoring_metric: "", change: "up", window: 1000, improvement: 0.05 },
  distributed: { optimizer: "adam", learning_rate: 0.001, loss: "sparse_categorical_crossentropy", metrics: "accuracy" },
  semi_supervised: { rounds: 5, confidence: 0.9 },
  federated: { rounds: 15, local_epochs: 1, min_clients: 1, min_data: 1, data_restrictions: "{}", round_timeout_s: 300, strategy: "fedavg", mu: "", server_learning_rate: "" },
};

/** A JSON object from text, or the reason it is not one. */
export function parseJsonObject(text: string): { value?: Record<string, unknown>; error?: string } {
  if (!text.trim()) return { value: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { error: `Not valid JSON: ${(error as Error).message}` };
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) return { error: "Must be a JSON object, like {\"epochs\": 5}." };
  return { value: value as Record<string, unknown> };
}

function integer(value: number | string, min: number, max: number): number | string {
  const number = typeof value === "number" ? value : Number(value);
  if (value === "" || !Number.isInteger(number)) return "Must be a whole number.";
  if (number < min || number > max) return `Must be between ${min} and ${max}.`;
  return number;
}

function decimal(value: number | string, min: number, max = Infinity): number | string {
  const number = typeof value === "number" ? value : Number(value);
  if (value === "" || !Number.isFinite(number)) return "Must be a number.";
  if (number < min || number > max) return max === Infinity ? `Must be at least ${min}.` : `Must be between ${min} and ${max}.`;
  return number;
}

/**
 * The request body for the API, or field errors keyed like the API's (`incremental.window`).
 */
export function buildDeployRequest(form: DeployForm, configurationId: number): { body?: DeployRequest; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const take = <T,>(key: string, checked: T | string): T | undefined => {
    if (typeof checked === "string") {
      errors[key] = checked;
      return undefined;
    }
    return checked;
  };
  const fit = parseJsonObject(form.fit_kwargs);
  if (fit.error) errors.fit_kwargs = fit.error;
  const evaluation = parseJsonObject(form.eval_kwargs);
  if (evaluation.error) errors.eval_kwargs = evaluation.error;
  const body: DeployRequest = {
    configuration_id: configurationId,
    description: form.description,
    mode: form.mode,
    batch_size: take<number>("batch_size", integer(form.batch_size, 1, 1_000_000)) ?? 0,
    fit_kwargs: fit.value,
    eval_kwargs: evaluation.value,
    gpus: take<number>("gpus", integer(form.gpus, 0, 16)) ?? 0,
    reader: form.reader,
    confusion_matrix: form.confusion_matrix,
    target: form.target,
  };
  if (form.mode === "incremental") {
    const options = form.incremental;
    if (options.indefinite && !options.monitoring_metric.trim()) errors["incremental.monitoring_metric"] = "Required for indefinite training.";
    body.incremental = {
      stream_timeout_ms: take<number>("incremental.stream_timeout_ms", integer(options.stream_timeout_ms, 1, 2_147_483_647)) ?? 0,
      indefinite: options.indefinite,
      monitoring_metric: options.monitoring_metric.trim(),
      change: options.change,
      window: take<number>("incremental.window", integer(options.window, 1, 2_147_483_647)) ?? 0,
      improvement: take<number>("incremental.improvement", decimal(options.improvement, 0)) ?? 0,
    };
  } else if (form.mode === "distributed") {
    const options = form.distributed;
    const metrics = options.metrics.split(",").map((metric) => metric.trim()).filter(Boolean);
    body.distributed = {
      optimizer: options.optimizer,
      learning_rate: take<number>("distributed.learning_rate", decimal(options.learning_rate, 0)) ?? 0,
      loss: options.loss,
      metrics,
    };
  } else if (form.mode === "semi-supervised") {
    body.semi_supervised = {
      rounds: take<number>("semi_supervised.rounds", integer(form.semi_supervised.rounds, 1, 1000)) ?? 0,
      confidence: take<number>("semi_supervised.confidence", decimal(form.semi_supervised.confidence, 0, 1)) ?? 0,
    };
  } else if (form.mode === "federated") {
    const options = form.federated;
    const restrictions = parseJsonObject(options.data_restrictions);
    if (restrictions.error) errors["federated.data_restrictions"] = restrictions.error;
    // mu only means something to FedProx, the server's rate only to FedAdam; left empty, the
    // API's defaults (0.01 each).
    const mu = options.strategy === "fedprox" && options.mu !== "" ? take<number>("federated.mu", decimal(options.mu, 0)) : undefined;
    const rate =
      options.strategy === "fedadam" && options.server_learning_rate !== ""
        ? take<number>("federated.server_learning_rate", decimal(options.server_learning_rate, 1e-9, 100))
        : undefined;
    body.federated = {
      rounds: take<number>("federated.rounds", integer(options.rounds, 1, 10_000)) ?? 0,
      local_epochs: take<number>("federated.local_epochs", integer(options.local_epochs, 1, 10_000)) ?? 0,
      min_clients: take<number>("federated.min_clients", integer(options.min_clients, 1, 10_000)) ?? 0,
      min_data: take<number>("federated.min_data", integer(options.min_data, 1, 2_147_483_647)) ?? 0,
      data_restrictions: restrictions.value,
      round_timeout_s: take<number>("federated.round_timeout_s", decimal(options.round_timeout_s, 1, 86_400)) ?? 0,
      strategy: options.strategy,
      server_learning_rate: rate ?? 0.01,
      ...(mu !== undefined ? { mu } : {}),
    };
  }
  return Object.keys(errors).length > 0 ? { errors } : { body, errors };
}

/** The Python a producer runs to send training data to this deployment (RawSink). */
export function rawSinkSnippet(options: { deploymentId: number; bootstrap: string; inputShape: (number | null)[] | undefined; controlTopic?: string }): string {
  const shape = (options.inputShape ?? []).slice(1).map((size) => size ?? 1);
  const reshape = shape.length > 0 ? shape.join(" ") : "1";
  const control = options.controlTopic && options.controlTopic !== "KAFKA_ML_CONTROL_TOPIC" ? `,\n    control_topic="${options.controlTopic}"` : "";
  return [
    "import numpy as np",
    "from kafkaml.datasources import RawSink",
    "",
    `# x: float32 samples of shape (n, ${shape.join(", ") || "features"}), y: integer labels of shape (n,)`,
    "with RawSink(",
    `    "${options.bootstrap}", "kafkaml-data-${options.deploymentId}", deployment_id=${options.deploymentId},`,
    `    data_type="float32", label_type="int64", data_reshape="${reshape}", label_reshape="1",`,
    `    validation_rate=0.1, test_rate=0.1${control},`,
    ") as sink:",
    "    sink.send_many(x.astype(np.float32), y.astype(np.int64))",
    "# leaving the block announces the stream: training starts",
  ].join("\n");
}

/**
 * What a data owner runs for a federated deployment (docs/federated.md): its data announced on
 * its own broker under a dataset id of its choosing, then a worker that trains it each round.
 */
export function federatedWorkerSnippet(options: { deploymentId: number; bootstrap: string; framework?: string; controlTopic?: string }): string {
  const control = options.controlTopic || "KAFKA_ML_CONTROL_TOPIC";
  return [
    "# 1. Announce your data on your broker with a sink (RawSink, AvroSink, JsonSink) and a",
    "#    deployment_id of your choosing (your dataset id, here 100): see docs/federated.md.",
    "# 2. Run a worker with the id and secret registered with the coordinator",
    "#    (KAFKAML_FEDERATED_CREDENTIALS in the backend's environment):",
    `KAFKAML_KAFKA_BOOTSTRAP_SERVERS=${options.bootstrap} \\`,
    "KAFKAML_WORKER_ID=worker-a KAFKAML_WORKER_CREDENTIAL=secret-a \\",
    `KAFKAML_FEDERATED_DEPLOYMENT_ID=${options.deploymentId} \\`,
    `KAFKAML_DATASET_CONTROL_TOPIC=${control} KAFKAML_DATASET_ID=100 \\`,
    ...(options.framework ? [`KAFKAML_WORKER_FRAMEWORK=${options.framework} \\`] : []),
    "kafkaml federated-worker",
  ].join("\n");
}
